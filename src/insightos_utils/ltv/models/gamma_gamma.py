"""Gamma-Gamma (Fader, Hardie and Lee 2005, "RFM and CLV"; Fader-Hardie note 025): a customer's
purchase values are Gamma(p, nu) with nu ~ Gamma(q, v) across customers; it assumes spend per
purchase is independent of how often one buys, which ``independence`` checks on the data.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from insightos_utils.ltv.models.base import FIT_HINT, FitError, FitRecord, LikelihoodModel
from insightos_utils.ltv.rfm import distinct_rows

INDEPENDENCE_WARN_CORRELATION = 0.3


@dataclass(frozen=True)
class GammaGammaParams:
    """Gamma-Gamma parameters of the spend per purchase: shape p, and q, v of its Gamma prior."""

    p: float
    q: float
    v: float


@dataclass(frozen=True)
class IndependenceCheck:
    """Pearson correlation of frequency and spend per purchase among repeat customers."""

    correlation: float
    repeat_customers: int
    threshold: float = INDEPENDENCE_WARN_CORRELATION

    @property
    def ok(self) -> bool:
        return not abs(self.correlation) > self.threshold

    def note(self) -> str | None:
        if self.ok:
            return None
        return (
            f"frequency and spend per purchase are correlated (r = {self.correlation:.2f} > "
            f"{self.threshold}): Gamma-Gamma assumes independence, so its expected values are "
            "biased for the most and least frequent buyers."
        )


def frequency_monetary_correlation(summary: pd.DataFrame) -> float:
    """Pearson correlation of frequency and monetary value among repeat customers (NaN if < 3)."""
    repeaters = summary[summary["frequency"] > 0]
    if len(repeaters) < 3:
        return float("nan")
    x = repeaters["frequency"].to_numpy(float)
    m = repeaters["monetary_value"].to_numpy(float)
    if x.std() == 0 or m.std() == 0:
        return float("nan")
    return float(np.corrcoef(x, m)[0, 1])


def independence(summary: pd.DataFrame) -> IndependenceCheck:
    """Gamma-Gamma's independence assumption checked on the data alone (no fit involved)."""
    repeaters = int((summary["frequency"] > 0).sum())
    return IndependenceCheck(frequency_monetary_correlation(summary), repeaters)


def expected_average_value(
    params: GammaGammaParams, frequency: Any, monetary_value: Any
) -> np.ndarray:
    """Gamma-Gamma expected spend per purchase: individual mean shrunk to the population mean."""
    x, m = (np.asarray(v, dtype=float) for v in (frequency, monetary_value))
    p, q, v = params.p, params.q, params.v
    weight = p * x / (p * x + q - 1)
    return (1 - weight) * (v * p / (q - 1)) + weight * m


class GammaGamma(LikelihoodModel):
    """The Gamma-Gamma spend model: ``fit`` on the repeat customers, then predict."""

    name = "gamma_gamma"
    title = "Gamma-Gamma"
    parameter_names = ("p", "q", "v")
    lifetimes_class = "GammaGammaFitter"

    def __init__(self, params: GammaGammaParams | None = None, penalizer: float = 0.0) -> None:
        super().__init__(penalizer)
        self._params = params

    @property
    def params(self) -> GammaGammaParams:
        if self._params is None:
            raise ValueError("Gamma-Gamma model has not been fitted")
        return self._params

    def fit(self, summary: pd.DataFrame) -> GammaGamma:
        """Fit on the repeat customers' distinct (frequency, monetary value) rows, weighted.

        Money comes in cents, so many customers share a row, and the objective is unchanged.
        """
        repeaters = summary[summary["frequency"] > 0]
        if len(repeaters) < 2:
            raise FitError(
                f"Gamma-Gamma needs repeat customers and the calibration period has "
                f"{len(repeaters)}; choose a later calibration end or a longer history"
            )
        (ux, um), _, counts = distinct_rows(
            repeaters["frequency"].to_numpy(float), repeaters["monetary_value"].to_numpy(float)
        )
        values, errors = self._fit_rows([ux, um], counts)
        if values["q"] <= 1:
            raise FitError(
                f"Gamma-Gamma fit gave q = {values['q']:.3f} <= 1, so the population mean spend "
                f"p·v/(q-1) is not finite. Check for extreme purchase values. {FIT_HINT}"
            )
        self._params = GammaGammaParams(**values)
        self.record = FitRecord(
            log_likelihood=float("nan"),
            n_customers=len(repeaters),
            n_fit_rows=len(ux),
            standard_errors=errors,
            convergence={"converged": True, "optimizer": "scipy BFGS via lifetimes"},
        )
        return self

    def params_dict(self) -> dict[str, float]:
        return asdict(self.params)

    def expected_average_value(self, frequency: Any, monetary_value: Any) -> np.ndarray:
        return expected_average_value(self.params, frequency, monetary_value)
