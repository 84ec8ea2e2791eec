"""Shifted-beta-geometric (Fader and Hardie 2007, "How to project customer retention"): a
contractual customer renews at the end of each period with probability 1 - theta and theta ~
Beta(alpha, beta) across customers, so retention rises with tenure as the fragile ones leave.

Period 0 is the start of the contract (the first payment). With ``S(t)`` the share still a
customer after t renewals and ``P(t)`` the share leaving at the end of period t:

    P(1) = alpha / (alpha + beta),  P(t) = (beta + t - 2) / (alpha + beta + t - 1) P(t - 1),
    S(t) = B(alpha, beta + t) / B(alpha, beta),  retention r_t = (beta + t - 1)/(alpha + beta + t - 1)

The fit is the shared base's L-BFGS-B on (log alpha, log beta) over weighted rows: one row per
period with the customers who left then (``dead`` = 1) and one with those still there at the end
of their observation (``dead`` = 0, right-censored), so cohorts observed for different lengths,
or single customers, fit the same way. Where nobody left, the data cannot identify the model
(``FitError``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np
from scipy.special import betaln, digamma, hyp2f1

from insightos_utils.ltv.models.base import FitError, LikelihoodModel, WeightedRows


@dataclass(frozen=True)
class SbgParams:
    """sBG parameters: the churn probability theta ~ Beta(alpha, beta)."""

    alpha: float
    beta: float


def survival(params: SbgParams, periods: Any) -> np.ndarray:
    """S(t): the share of a cohort still customers after ``t`` renewals (S(0) = 1)."""
    t = np.asarray(periods, dtype=float)
    a, b = params.alpha, params.beta
    return np.exp(betaln(a, b + t) - betaln(a, b))


def retention_rates(params: SbgParams, periods: Any) -> np.ndarray:
    """r_t = S(t) / S(t - 1) = (beta + t - 1) / (alpha + beta + t - 1), t >= 1."""
    t = np.asarray(periods, dtype=float)
    return (params.beta + t - 1) / (params.alpha + params.beta + t - 1)


def churn_probability(params: SbgParams, periods: Any) -> np.ndarray:
    """P(t) = S(t - 1) - S(t): the share of a new cohort leaving at the end of period t."""
    t = np.asarray(periods, dtype=float)
    a, b = params.alpha, params.beta
    return np.exp(betaln(a + 1, b + t - 1) - betaln(a, b))


def expected_lifetime(params: SbgParams) -> float:
    """Expected number of periods paid by a new customer, sum of S(t) over t >= 0:
    (alpha + beta - 1) / (alpha - 1), infinite for alpha <= 1 (a heavy tail of loyal ones)."""
    a, b = params.alpha, params.beta
    return (a + b - 1) / (a - 1) if a > 1 else math.inf


def discounted_expected_lifetime(params: SbgParams, discount_rate: float) -> float:
    """DEL = sum_{t>=0} S(t) / (1 + d)^t = 2F1(1, beta; alpha + beta; 1 / (1 + d)) (Fader and
    Hardie 2010): payments at the start of each period, the first one undiscounted."""
    if discount_rate <= 0:
        return expected_lifetime(params)
    a, b = params.alpha, params.beta
    return float(hyp2f1(1.0, b, a + b, 1.0 / (1.0 + discount_rate)))


def discounted_expected_residual_lifetime(
    params: SbgParams, renewals: Any, discount_rate: float
) -> np.ndarray:
    """Discounted expected residual lifetime of a customer active after ``renewals`` = n
    renewals (the payments still to come, the next one a period away):
    sum_{k>=1} S(n+k)/S(n) z^k = (beta+n)/(alpha+beta+n) z 2F1(1, beta+n+1; alpha+beta+n+1; z)
    with z = 1/(1+d); undiscounted (d = 0) it is (beta+n)/(alpha-1), infinite for alpha <= 1."""
    n = np.asarray(renewals, dtype=float)
    a, b = params.alpha, params.beta
    if discount_rate <= 0:
        return np.where(a > 1, (b + n) / (a - 1), np.inf)
    z = 1.0 / (1.0 + discount_rate)
    return (b + n) / (a + b + n) * np.asarray(hyp2f1(1.0, b + n + 1, a + b + n + 1, z)) * z


def expected_payments_by_period(params: SbgParams, renewals: Any, horizon: int) -> np.ndarray:
    """P(still a customer k periods on | active after ``renewals`` renewals) for k = 1..horizon:
    S(n + k) / S(n), shape (customers, horizon)."""
    n = np.atleast_1d(np.asarray(renewals, dtype=float))[:, None]
    k = np.arange(1, horizon + 1, dtype=float)[None, :]
    a, b = params.alpha, params.beta
    return np.exp(betaln(a, b + n + k) - betaln(a, b + n))


def survival_rows(periods: np.ndarray, dead: np.ndarray, weights: np.ndarray) -> WeightedRows:
    """Rows of the likelihood: ``periods`` t (>= 1 where dead: left at the end of period t;
    >= 0 where censored: still a customer after t renewals), with their customer counts."""
    return WeightedRows(
        {"t": np.asarray(periods, dtype=float), "dead": np.asarray(dead, dtype=float)},
        np.asarray(weights, dtype=float),
    )


def cohort_rows(surviving: Any) -> WeightedRows:
    """Rows from a cohort's survival table: ``surviving[t]`` customers (or shares) after t
    renewals, t = 0..T. Leavers at each period, the last count censored at T."""
    counts = np.asarray(surviving, dtype=float)
    left = counts[:-1] - counts[1:]
    last = len(counts) - 1
    periods = np.r_[np.arange(1, last + 1), last]
    dead = np.r_[np.ones(last), 0.0]
    return survival_rows(periods, dead, np.r_[left, counts[-1]])


class ShiftedBetaGeometric(LikelihoodModel):
    """sBG: ``fit_rows`` via ``fit`` on survival rows, then survival, retention and lifetime."""

    name: ClassVar[str] = "sbg"
    title: ClassVar[str] = "shifted-beta-geometric"
    parameter_names: ClassVar[tuple[str, ...]] = ("alpha", "beta")

    def __init__(self, params: SbgParams | None = None, penalizer: float = 0.0) -> None:
        super().__init__(penalizer)
        self._params = params

    @property
    def params(self) -> SbgParams:
        if self._params is None:
            raise ValueError("sBG model has not been fitted")
        return self._params

    def row_terms(self, natural: np.ndarray, rows: WeightedRows) -> tuple[np.ndarray, np.ndarray]:
        a, b = natural
        t, dead = rows.columns["t"], rows.columns["dead"] > 0
        base = betaln(a, b)
        psi_ab, psi_a, psi_b = digamma(a + b), digamma(a), digamma(b)
        psi_abt = digamma(a + b + t)
        # dead at t: log B(a+1, b+t-1) - log B(a, b); survived t: log B(a, b+t) - log B(a, b)
        t_dead = np.where(dead, t, 1.0)
        ll = np.where(dead, betaln(a + 1, b + t_dead - 1), betaln(a, b + t)) - base
        d_a = np.where(dead, digamma(a + 1) - psi_a, 0.0) + psi_ab - psi_abt
        d_b = np.where(dead, digamma(b + t_dead - 1), digamma(b + t)) - psi_abt - psi_b + psi_ab
        return ll, np.column_stack([d_a, d_b])

    def starting_points(self, rows: WeightedRows) -> list[np.ndarray]:
        return [np.array([1.0, 1.0]), np.array([0.5, 3.0]), np.array([2.0, 10.0])]

    def fit(
        self, rows: WeightedRows, warm: SbgParams | None = None, bootstrap: bool = False
    ) -> ShiftedBetaGeometric:
        """Fit on survival rows; fails where nobody left or nobody was observed to renew.
        ``warm``: parameters to start the optimiser from; ``bootstrap``: a bootstrap refit
        (``bootstrap_refit``: no standard errors)."""
        dead = rows.columns["dead"] > 0
        if not (rows.weights[dead] > 0).any():
            raise FitError(
                "sBG: nobody in the data has left, so the churn rate cannot be estimated (it may "
                "be near 0); a longer observation period would show the first cancellations"
            )
        if not (rows.weights[rows.columns["t"] > (~dead)] > 0).any():
            raise FitError("sBG: nobody was observed to renew even once")
        if bootstrap:
            self.bootstrap_refit()
        start = None if warm is None else np.array([warm.alpha, warm.beta], dtype=float)
        optimum = self.fit_rows(rows, int(round(rows.total_weight)), warm=start)
        self._params = SbgParams(float(optimum.natural[0]), float(optimum.natural[1]))
        return self

    def params_dict(self) -> dict[str, float]:
        return asdict(self.params)
