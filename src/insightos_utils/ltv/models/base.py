"""The shared base of every model: fitting on distinct weighted rows, parameters, standard
errors, log-likelihood and a measured convergence record.

Each model module adds only its parameters, its likelihood and its predictions, as
``lifetimes``' fitters do over ``BaseFitter``.
"""

from __future__ import annotations

import contextlib
import io
import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from insightos_utils.errors import InsightOSError

FIT_HINT = (
    "Try a small penalizer (--penalizer 0.001, or [ltv] penalizer in insightos.toml), another "
    "time unit (--time-unit D, W or M), or a later calibration end with more repeat purchases."
)


class FitError(InsightOSError):
    """A model could not be fitted: the message says what the data lacks."""


@dataclass
class FitRecord:
    """What one fit measured: the rows it used, its log-likelihood, its precision, its notes."""

    log_likelihood: float
    n_customers: int
    n_fit_rows: int
    standard_errors: dict[str, float]
    convergence: dict[str, Any]
    notes: list[str] = field(default_factory=list)


@contextlib.contextmanager
def quiet_lifetimes() -> Iterator[io.StringIO]:
    """Run lifetimes code without letting it change the process's warning filters.

    lifetimes calls ``warnings.simplefilter("ignore", FutureWarning)`` at import and on every
    likelihood evaluation, sets a pandas option pandas 4 removes, and prints scipy's result to
    stdout when a fit fails; all of that stays inside this block (stdout is captured).
    """
    captured = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(captured):
        warnings.filterwarnings("ignore", module="lifetimes")
        warnings.filterwarnings("ignore", message=".*chained_assignment.*")
        warnings.filterwarnings("ignore", category=RuntimeWarning)
        yield captured


def _scipy_message(captured: io.StringIO) -> str:
    for line in captured.getvalue().splitlines():
        if "message" in line:
            return line.split(":", 1)[-1].strip()
    return "no message"


def _standard_errors(fitter: Any) -> dict[str, float]:
    try:
        errors = fitter.standard_errors_
        return {str(k): float(v) for k, v in errors.items()}
    except Exception:  # a singular Hessian: the point estimate stands, its precision is unknown
        return {}


class LikelihoodModel:
    """A model fitted by maximum likelihood on distinct rows weighted by their counts."""

    name: str = ""
    title: str = ""
    parameter_names: tuple[str, ...] = ()
    lifetimes_class: str = ""

    def __init__(self, penalizer: float = 0.0) -> None:
        self.penalizer = penalizer
        self.record: FitRecord | None = None

    def _fit_rows(
        self, columns: list[np.ndarray], weights: np.ndarray
    ) -> tuple[dict[str, float], dict[str, float]]:
        """Maximise the likelihood on weighted rows: parameters and their standard errors."""
        with quiet_lifetimes() as captured:
            import lifetimes

            fitter = getattr(lifetimes, self.lifetimes_class)(penalizer_coef=self.penalizer)
            try:
                fitter.fit(*columns, weights=weights)
            except Exception as error:
                detail = _scipy_message(captured) if captured.getvalue() else str(error).strip()
                raise FitError(
                    f"{self.title} fit did not converge ({detail}). {FIT_HINT}"
                ) from error
        found = {name: float(fitter.params_[name]) for name in self.parameter_names}
        if not all(math.isfinite(v) and v > 0 for v in found.values()):
            raise FitError(f"{self.title} fit gave unusable parameters {found}. {FIT_HINT}")
        return found, _standard_errors(fitter)

    def fitted(self) -> FitRecord:
        """The fit's record; a model built from parameters has none."""
        if self.record is None:
            raise ValueError(f"{self.title} model has not been fitted")
        return self.record

    @property
    def log_likelihood(self) -> float:
        return self.fitted().log_likelihood

    @property
    def standard_errors(self) -> dict[str, float]:
        return self.fitted().standard_errors

    @property
    def convergence(self) -> dict[str, Any]:
        return self.fitted().convergence

    @property
    def notes(self) -> list[str]:
        return self.fitted().notes
