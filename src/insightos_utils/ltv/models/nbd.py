"""The NBD (Ehrenberg) and its Poisson limit: the no-dropout limits of BG/NBD and Pareto/NBD.

Poisson purchases at rate lambda ~ Gamma(r, alpha) and nobody leaves; as r -> infinity the rates
stop differing and the NBD becomes one Poisson rate. Fitted on the purchase models' rows (the
aggregates ``bgnbd._time_index`` prepares), on their rescaled clock.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
from scipy.special import digamma, gammaln

from insightos_utils.ltv.models.base import (
    Boundary,
    FitError,
    LikelihoodModel,
    WeightedRows,
    positive_rows,
)
from insightos_utils.ltv.rfm import float_array

LIMIT_TOLERANCE = 0.01
# The homogeneous-rate boundary of the NBD: r at least this large (the spread of purchase rates,
# coefficient of variation 1/sqrt(r), is gone) with the Poisson as good: the NBD is the Poisson.
RATE_SHAPE_LIMIT = 1e5


def _arrays(*values: Any) -> list[np.ndarray]:
    return [float_array(v) for v in values]


def purchase_data(
    title: str, frequency: Any, recency: Any, T: Any, weights: Any = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """A purchase model's (x, t_x, T) rows with a positive weight, their weights and the
    customers they stand for; ``FitError`` where the data cannot identify the model: no
    customers, every customer's age zero, or no repeat purchase at all."""
    (x, t_x, age), w = positive_rows([frequency, recency, T], weights)
    n_customers = int(round(float(w.sum())))
    if not len(w):
        raise FitError(f"{title}: no customers in the calibration period to fit on")
    if not (age > 0).any():
        raise FitError(
            f"{title}: every customer's first purchase is on the calibration end's day, so "
            "nothing shows how often they buy; choose a later calibration end"
        )
    if not (x > 0).any():
        raise FitError(
            f"{title}: none of the {n_customers:,} customers bought again in the calibration "
            "period, so the data cannot tell how often customers repeat or when they stop; "
            "it needs customers with at least two purchase days (a later calibration end, or "
            "a longer history)"
        )
    return x, t_x, age, w, n_customers


def _rescale_error(errors: dict[str, float | None], name: str, factor: float) -> None:
    """A standard error moved to the data's clock (None stays None)."""
    error = errors.get(name)
    if error is not None:
        errors[name] = error * factor


def horizon_columns(model: Any, horizons: Any, frequency: Any, recency: Any, T: Any) -> np.ndarray:
    """``model.expected_purchases`` at each of ``horizons`` as columns (rows, horizons)."""
    columns = [
        np.ravel(model.expected_purchases(float(h), frequency, recency, T)) for h in horizons
    ]
    return np.column_stack(columns)


class Poisson(LikelihoodModel):
    """Everyone buys at one Poisson rate ``rate`` and nobody leaves: the NBD's limit as
    r -> infinity (no heterogeneity in purchase rates)."""

    name: ClassVar[str] = "poisson"
    title: ClassVar[str] = "Poisson"
    parameter_names: ClassVar[tuple[str, ...]] = ("rate",)

    def __init__(self, rate: Any = math.nan, penalizer: float = 0.0):
        super().__init__(penalizer)
        self.rate = rate
        self.time_scale = 1.0

    def draws(self, n: int, rng: np.random.Generator) -> Poisson | None:
        """The model with ``n`` rates drawn from the fit's sampling distribution."""
        natural = self.natural_draws(n, rng)
        return None if natural is None else Poisson(rate=natural[:, 0] * self.time_scale)

    def row_terms(self, natural: np.ndarray, rows: WeightedRows) -> tuple[np.ndarray, np.ndarray]:
        (rate,) = natural
        x, age = rows.columns["x"], rows.columns["T"]
        ll = x * np.log(rate) - rate * age
        return ll, (x / rate - age)[:, None]

    def starting_points(self, rows: WeightedRows) -> list[np.ndarray]:
        w = rows.weights
        return [np.array([float(w @ rows.columns["x"]) / float(w @ rows.columns["T"])])]

    def prob_alive(self, frequency: Any, recency: Any, T: Any) -> np.ndarray:
        return np.ones(np.broadcast(*_arrays(frequency, recency, T)).shape)

    def expected_purchases(self, t: Any, frequency: Any, recency: Any, T: Any) -> np.ndarray:
        """E[purchases in (T, T + t]] = rate * t for everyone: one rate, nothing to learn."""
        horizon = np.broadcast_arrays(*_arrays(t, frequency, recency, T))[0]
        return np.asarray(self.rate) * horizon

    def log_likelihood_rows(self, frequency: Any, recency: Any, T: Any) -> np.ndarray:
        x, _, age = _arrays(frequency, recency, T)
        return x * np.log(self.rate) - self.rate * age


class Nbd(LikelihoodModel):
    """The NBD (Ehrenberg): Poisson purchases at rate lambda ~ Gamma(r, alpha), nobody leaves.

    BG/NBD's limit as a / (a + b) -> 0, used where the data show no dropout.
    """

    name: ClassVar[str] = "nbd"
    title: ClassVar[str] = "NBD"
    parameter_names: ClassVar[tuple[str, ...]] = ("r", "alpha")

    def __init__(self, r: Any = math.nan, alpha: Any = math.nan, penalizer: float = 0.0):
        super().__init__(penalizer)
        self.r, self.alpha = r, alpha
        self.limit: Poisson | None = None
        self.time_scale = 1.0

    def draws(self, n: int, rng: np.random.Generator) -> Nbd | Poisson | None:
        """The model (or its Poisson limit) with ``n`` parameter draws, vectorised."""
        if self.limit is not None:
            return self.limit.draws(n, rng)
        natural = self.natural_draws(n, rng)
        if natural is None:
            return None
        return Nbd(r=natural[:, 0], alpha=natural[:, 1] / self.time_scale)

    def row_terms(self, natural: np.ndarray, rows: WeightedRows) -> tuple[np.ndarray, np.ndarray]:
        r, alpha = natural
        x, aux = rows.columns["x"], rows.aux
        log_age = np.log(alpha + aux["uT"])[aux["iT"]]
        ll = (
            (gammaln(r + aux["ux"]) - gammaln(r))[aux["ix"]] + r * np.log(alpha) - (r + x) * log_age
        )
        d_r = (digamma(r + aux["ux"]) - digamma(r))[aux["ix"]] + np.log(alpha) - log_age
        d_alpha = r / alpha - (r + x) / (alpha + rows.columns["T"])
        return ll, np.column_stack([d_r, d_alpha])

    def mean_terms(self, natural: np.ndarray, rows: WeightedRows) -> tuple[float, np.ndarray]:
        """``row_terms`` summed over distinct frequencies and ages: no per-row work."""
        r, alpha = natural
        aux, total = rows.aux, rows.total_weight
        ux, w_by_x, w_by_T, wx_by_T = aux["ux"], aux["w_by_x"], aux["w_by_T"], aux["wx_by_T"]
        log_age = np.log(alpha + aux["uT"])
        ll = (
            w_by_x @ (gammaln(r + ux) - gammaln(r))
            + total * r * np.log(alpha)
            - (r * w_by_T + wx_by_T) @ log_age
        )
        d_r = w_by_x @ (digamma(r + ux) - digamma(r)) + total * np.log(alpha) - w_by_T @ log_age
        d_alpha = total * r / alpha - (r * w_by_T + wx_by_T) @ (1.0 / (alpha + aux["uT"]))
        return float(ll) / total, np.array([d_r, d_alpha]) / total

    def starting_points(self, rows: WeightedRows) -> list[np.ndarray]:
        w = rows.weights
        rate = max(float(w @ rows.columns["x"]) / float(w @ rows.columns["T"]), 1e-6)
        return [np.array([1.0, 1.0 / rate]), np.array([0.3, 0.3 / rate])]

    def fit_scaled(self, rows: WeightedRows, scale: float, n_customers: int) -> Nbd:
        """Fit on rows whose clock is multiplied by ``scale``; parameters on the data's clock."""
        self.time_scale = scale
        optimum = self.fit_rows(rows, n_customers)
        self.r, self.alpha = float(optimum.natural[0]), float(optimum.natural[1] / scale)
        record = self.fitted()
        _rescale_error(record.standard_errors, "alpha", 1 / scale)
        record.log_likelihood += float(rows.weights @ rows.columns["x"]) * math.log(scale)
        if self.r >= RATE_SHAPE_LIMIT:
            self._check_rate_limit(rows, scale, n_customers)
        return self

    def _check_rate_limit(self, rows: WeightedRows, scale: float, n_customers: int) -> None:
        """Adopt the Poisson where the NBD's r runs to infinity and the Poisson fits as well."""
        record = self.fitted()
        limit = Poisson(penalizer=self.penalizer)
        limit.time_scale = scale
        optimum = limit.fit_rows(rows, n_customers)
        limit.rate = float(optimum.natural[0]) * scale
        limit_record = limit.fitted()
        limit_record.log_likelihood += float(rows.weights @ rows.columns["x"]) * math.log(scale)
        _rescale_error(limit_record.standard_errors, "rate", scale)
        gain = record.log_likelihood - limit_record.log_likelihood
        if gain > LIMIT_TOLERANCE:
            return
        interior_r = self.r
        self.limit = limit
        record.log_likelihood = limit_record.log_likelihood
        record.convergence = limit_record.convergence
        record.notes = list(limit_record.notes)
        record.standard_errors = {"r": None, "alpha": None}
        record.standard_error_note = (
            f"NBD: r and alpha have no standard errors at the homogeneous-rate boundary; the "
            f"common rate is {limit.rate:.4g} purchases per time unit "
            f"(standard error {limit_record.standard_errors.get('rate')})"
        )
        record.boundary = list(limit_record.boundary)  # r's edge of the search is this limit
        record.boundary.append(
            Boundary(
                "bgnbd",
                "r",
                "infinity",
                "no heterogeneity in purchase rates: customers buy at one common Poisson rate "
                f"of {limit.rate:.4g} purchases per time unit (best NBD r = {interior_r:.3g}, "
                f"log-likelihood gain {gain:+.4f}), so the NBD becomes the Poisson and a "
                "customer's own history does not change their forecast; LTV uses the Poisson",
            )
        )

    def prob_alive(self, frequency: Any, recency: Any, T: Any) -> np.ndarray:
        return np.ones(np.broadcast(*_arrays(frequency, recency, T)).shape)

    def expected_purchases(self, t: Any, frequency: Any, recency: Any, T: Any) -> np.ndarray:
        """E[purchases in (T, T + t] | x, T] = (r + x) t / (alpha + T): the Gamma posterior mean
        rate times t."""
        if self.limit is not None:
            return self.limit.expected_purchases(t, frequency, recency, T)
        horizon, x, _, age = np.broadcast_arrays(*_arrays(t, frequency, recency, T))
        return (self.r + x) * horizon / (self.alpha + age)

    def log_likelihood_rows(self, frequency: Any, recency: Any, T: Any) -> np.ndarray:
        if self.limit is not None:
            return self.limit.log_likelihood_rows(frequency, recency, T)
        x, _, age = _arrays(frequency, recency, T)
        r, alpha = self.r, self.alpha
        return gammaln(r + x) - gammaln(r) + r * np.log(alpha) - (r + x) * np.log(alpha + age)
