"""BG/NBD (Fader, Hardie and Lee 2005, "Counting your customers the easy way"): while alive a
customer buys at Poisson rate lambda ~ Gamma(r, alpha) and drops out after each repeat purchase
with probability p ~ Beta(a, b).

Formulas are vectorised numpy of our own, tested equal to ``lifetimes`` where it gives numbers.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit, gammaln, hyp2f1

from insightos_utils.errors import InputError
from insightos_utils.ltv.models.base import FIT_HINT, FitError, FitRecord, LikelihoodModel
from insightos_utils.ltv.rfm import distinct_rows


@dataclass(frozen=True)
class BgNbdParams:
    """BG/NBD parameters: purchase rate ~ Gamma(r, alpha), dropout probability ~ Beta(a, b)."""

    r: float
    alpha: float
    a: float
    b: float


def _arrays(*values: Any) -> list[np.ndarray]:
    return [np.asarray(v, dtype=float) for v in values]


def log_likelihood(params: BgNbdParams, frequency: Any, recency: Any, T: Any) -> np.ndarray:
    """Per-customer BG/NBD log-likelihood on the data's own time scale (FHL 2005, eq. 6)."""
    x, t_x, age = _arrays(frequency, recency, T)
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    rate_part = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    dropout_part = gammaln(a + b) + gammaln(b + x) - gammaln(b) - gammaln(a + b + x)
    alive = -(r + x) * np.log(alpha + age)
    dead = np.log(a) - np.log(b + np.maximum(x, 1) - 1) - (r + x) * np.log(alpha + t_x)
    return rate_part + dropout_part + np.where(x > 0, np.logaddexp(alive, dead), alive)


def prob_alive(params: BgNbdParams, frequency: Any, recency: Any, T: Any) -> np.ndarray:
    """Probability that each customer is still active at T (Fader-Hardie note 021)."""
    x, t_x, age = _arrays(frequency, recency, T)
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    log_odds_dead = (r + x) * np.log((alpha + age) / (alpha + t_x)) + np.log(
        a / (b + np.maximum(x, 1) - 1)
    )
    return np.where(x == 0, 1.0, expit(-log_odds_dead))


def expected_purchases(
    params: BgNbdParams, t: Any, frequency: Any, recency: Any, T: Any
) -> np.ndarray:
    """Expected repeat purchases in the next ``t`` time units given (x, t_x, T) (FHL 2005, eq. 10).

    Computes the Gauss hypergeometric term directly rather than through its logarithm, so that
    a fit with a + b < 1 (where the term is negative for x = 0) gives finite, correct values
    instead of lifetimes' NaN (lifetimes issue #442); falls back to Euler's transformation where
    the term overflows, as lifetimes does.
    """
    horizon, x, t_x, age = np.broadcast_arrays(*_arrays(t, frequency, recency, T))
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    hyp_a, hyp_b, hyp_c = r + x, b + x, a + b + x - 1
    z = horizon / (alpha + age + horizon)
    log_decay = (r + x) * np.log((alpha + age) / (alpha + age + horizon))
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        hyp = hyp2f1(hyp_a, hyp_b, hyp_c, z)
        remaining = hyp * np.exp(log_decay)
        overflow = ~np.isfinite(hyp)
        if overflow.any():
            c, za = hyp_c[overflow], z[overflow]
            euler = hyp2f1(c - hyp_a[overflow], c - hyp_b[overflow], c, za)
            remaining[overflow] = np.sign(euler) * np.exp(
                np.log(np.abs(euler))
                + (c - hyp_a[overflow] - hyp_b[overflow]) * np.log(1 - za)
                + log_decay[overflow]
            )
    numerator = (a + b + x - 1) / (a - 1) * (1 - remaining)
    odds_dead = (a / (b + np.maximum(x, 1) - 1)) * ((alpha + age) / (alpha + t_x)) ** (r + x)
    return numerator / (1 + (x > 0) * odds_dead)


class BgNbd(LikelihoodModel):
    """The BG/NBD purchase model: ``fit`` on (frequency, recency, T), then predict."""

    name = "bgnbd"
    title = "BG/NBD"
    parameter_names = ("r", "alpha", "a", "b")
    lifetimes_class = "BetaGeoFitter"

    def __init__(self, params: BgNbdParams | None = None, penalizer: float = 0.0) -> None:
        super().__init__(penalizer)
        self._params = params

    @property
    def params(self) -> BgNbdParams:
        if self._params is None:
            raise ValueError("BG/NBD model has not been fitted")
        return self._params

    def fit(self, summary: pd.DataFrame) -> BgNbd:
        """Fit on the distinct (frequency, recency, T) rows of ``summary``, weighted by count.

        The weighted fit has the same objective as the per-customer one, so the parameters are
        identical, in a fraction of the time.
        """
        if summary.empty:
            raise InputError("transactions: no customers to fit the BG/NBD model on")
        x = summary["frequency"].to_numpy(float)
        t_x = summary["recency"].to_numpy(float)
        age = summary["T"].to_numpy(float)
        if not (age > 0).any():
            raise InputError(
                "transactions: every customer's first purchase is on the calibration end's day; "
                "choose a later calibration end"
            )
        (ux, ut, uT), _, counts = distinct_rows(x, t_x, age)
        values, errors = self._fit_rows([ux, ut, uT], counts)
        self._params = BgNbdParams(**values)
        total = float(counts @ log_likelihood(self._params, ux, ut, uT))
        if not math.isfinite(total):
            raise FitError(f"BG/NBD fit gave a non-finite log-likelihood. {FIT_HINT}")
        self.record = FitRecord(
            log_likelihood=total,
            n_customers=len(summary),
            n_fit_rows=len(ux),
            standard_errors=errors,
            convergence={"converged": True, "optimizer": "scipy BFGS via lifetimes"},
        )
        if self.a_plus_b_below_1:
            self.record.notes.append(
                f"a + b = {self._params.a + self._params.b:.3f} < 1: lifetimes' predictions are "
                "NaN for customers without repeat purchases here (lifetimes #442); ours compute "
                "the hypergeometric term directly and stay finite."
            )
        return self

    @property
    def a_plus_b_below_1(self) -> bool:
        return self.params.a + self.params.b < 1

    def params_dict(self) -> dict[str, float]:
        return asdict(self.params)

    def log_likelihood_rows(self, frequency: Any, recency: Any, T: Any) -> np.ndarray:
        return log_likelihood(self.params, frequency, recency, T)

    def prob_alive(self, frequency: Any, recency: Any, T: Any) -> np.ndarray:
        return prob_alive(self.params, frequency, recency, T)

    def expected_purchases(self, t: Any, frequency: Any, recency: Any, T: Any) -> np.ndarray:
        return expected_purchases(self.params, t, frequency, recency, T)
