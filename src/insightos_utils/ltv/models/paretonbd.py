"""Pareto/NBD (Schmittlein, Morrison and Colombo 1987; Fader, Hardie and Lee 2005, "RFM and
CLV"): while alive a customer buys at Poisson rate lambda ~ Gamma(r, alpha) and stays alive for
an exponential lifetime of rate mu ~ Gamma(s, beta), at any moment (BG/NBD drops out only just
after a purchase).

**The likelihood, in a form that cannot cancel.** The textbook expression (FHL 2005 note,
eq. 19) subtracts two hypergeometric terms and is unstable where they are close (lifetimes
works around it with signed log-sum-exp). With ``M(p, q; t) = integral_t^inf (alpha + u)^-p
(beta + u)^-q du`` the likelihood of (x, t_x, T) is

    L = Gamma(r+x) alpha^r beta^s / Gamma(r) * [(r + x) M(r+x+1, s; T) + s M(r+x, s+1; t_x)]

(alive at T, or dead between t_x and T: integrating the alive term by parts makes both terms
positive), so the log-likelihood is a ``logaddexp`` of two finite logarithms. ``M`` has a closed
form with the larger of alpha and beta as the pivot (``_log_tail``): a Gauss hypergeometric
2F1(1, b; c; z) with 0 <= z < 1 and c > b > 0, which is positive and well inside scipy's range.

The gradient in alpha and beta is analytic (``M``'s derivatives are ``M``'s with p or q one
higher); in r and s it is central differences of that exact log-likelihood in the
log-parameters (the hypergeometric term has no cheap derivatives in its parameters); all
computed once per distinct (x, T) and (x, t_x) pair. The fit runs on a clock rescaled so the oldest customer's T is 1, as BG/NBD's.
Where the data show no dropout (mean death rate s / beta -> 0) the optimum is the NBD, which is
then fitted and used for predictions, as for BG/NBD.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from scipy.special import gammaln, hyp2f1

from insightos_utils.ltv.models.base import (
    Boundary,
    LikelihoodModel,
    WeightedRows,
)
from insightos_utils.ltv.models.bgnbd import Nbd, _rescale_error, _weighted_rows, horizon_columns
from insightos_utils.ltv.models.nbd import purchase_data
from insightos_utils.ltv.rfm import distinct_rows, float_array

# The no-dropout boundary: the NBD fits at least as well (LIMIT_TOLERANCE log-likelihood units)
# and the best interior point's mean lifetime beta / s is above DEATH_LIMIT times the oldest
# customer's age (nobody is expected to die within the data).
DEATH_LIMIT = 1e3
LIMIT_TOLERANCE = 0.01
FD_STEP = 1e-5  # central-difference step on the log-parameters


@dataclass(frozen=True)
class ParetoNbdParams:
    """Pareto/NBD parameters: purchase rate ~ Gamma(r, alpha), death rate ~ Gamma(s, beta)."""

    r: float
    alpha: float
    s: float
    beta: float


def _arrays(*values: Any) -> list[np.ndarray]:
    return [float_array(v) for v in values]


def _log_tail(p: Any, q: Any, alpha: Any, beta: Any, t: Any) -> np.ndarray:
    """log M(p, q; t) = log of the integral from t to infinity of (alpha+u)^-p (beta+u)^-q du,
    for p + q > 1: with the larger of alpha, beta as pivot (here alpha),
    M = (alpha+t)^-p (beta+t)^(1-q) 2F1(1, p; p+q; (alpha-beta)/(alpha+t)) / (p+q-1)."""
    p, q, alpha, beta, t = np.broadcast_arrays(*_arrays(p, q, alpha, beta, t))
    pivot_alpha = alpha >= beta
    # the same formula with the roles of (alpha, p) and (beta, q) swapped
    big = np.where(pivot_alpha, alpha, beta)
    small = np.where(pivot_alpha, beta, alpha)
    p_big = np.where(pivot_alpha, p, q)
    q_small = np.where(pivot_alpha, q, p)
    with np.errstate(all="ignore"):
        z = (big - small) / (big + t)
        hyp = np.asarray(hyp2f1(1.0, p_big, p + q, z), dtype=float)
        return (
            -p_big * np.log(big + t)
            + (1.0 - q_small) * np.log(small + t)
            + np.log(hyp)
            - np.log(p + q - 1.0)
        )


def _log_terms(
    params: ParetoNbdParams, x: np.ndarray, t_x: np.ndarray, age: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """log of the constant, of the alive-at-T term and of the died-in-(t_x, T) term."""
    r, alpha, s, beta = params.r, params.alpha, params.s, params.beta
    constant = gammaln(r + x) - gammaln(r) + r * np.log(alpha) + s * np.log(beta)
    alive = np.log(r + x) + _log_tail(r + x + 1, s, alpha, beta, age)
    dead = np.log(s) + _log_tail(r + x, s + 1, alpha, beta, t_x)
    return constant, alive, dead


def log_likelihood(params: ParetoNbdParams, frequency: Any, recency: Any, T: Any) -> np.ndarray:
    """Per-customer Pareto/NBD log-likelihood on the data's own time scale."""
    x, t_x, age = np.broadcast_arrays(*_arrays(frequency, recency, T))
    constant, alive, dead = _log_terms(params, x, t_x, age)
    return constant + np.logaddexp(alive, dead)


def prob_alive(params: ParetoNbdParams, frequency: Any, recency: Any, T: Any) -> np.ndarray:
    """P(alive at T | x, t_x, T) = (alpha+T)^-(r+x) (beta+T)^-s / (L / constant)."""
    x, t_x, age = np.broadcast_arrays(*_arrays(frequency, recency, T))
    r, alpha, s, beta = params.r, params.alpha, params.s, params.beta
    _, alive, dead = _log_terms(params, x, t_x, age)
    log_alive_path = -(r + x) * np.log(alpha + age) - s * np.log(beta + age)
    return np.minimum(np.exp(log_alive_path - np.logaddexp(alive, dead)), 1.0)


def _lifetime_factor(s: Any, beta_t: Any, horizon: Any) -> np.ndarray:
    """(beta+T) / (s-1) [1 - ((beta+T)/(beta+T+t))^(s-1)], its limit (beta+T) log(...) at s=1."""
    s, beta_t, horizon = np.broadcast_arrays(*_arrays(s, beta_t, horizon))
    log_ratio = np.log1p(horizon / beta_t)
    shape = s - 1.0
    near_one = np.abs(shape) < 1e-8
    safe = np.where(near_one, 1.0, shape)
    with np.errstate(all="ignore"):
        general = -np.expm1(-shape * log_ratio) / safe
    return beta_t * np.where(near_one, log_ratio * (1 - shape * log_ratio / 2), general)


def expected_purchases(
    params: ParetoNbdParams, t: Any, frequency: Any, recency: Any, T: Any
) -> np.ndarray:
    """Expected purchases in (T, T + t] given (x, t_x, T) (FHL 2005 note, eq. 22): the alive
    probability times (r+x)/(alpha+T) times the expected alive time in the window."""
    horizon, x, t_x, age = np.broadcast_arrays(*_arrays(t, frequency, recency, T))
    r, alpha, s, beta = params.r, params.alpha, params.s, params.beta
    alive = prob_alive(params, x, t_x, age)
    return alive * (r + x) / (alpha + age) * _lifetime_factor(s, beta + age, horizon)


def expected_purchases_by_horizon(
    params: ParetoNbdParams, horizons: Any, frequency: Any, recency: Any, T: Any
) -> np.ndarray:
    """``expected_purchases`` at each of ``horizons``, shape (rows, horizons): the alive
    probability (the costly part) once per row, not once per horizon."""
    x, t_x, age = (a.ravel() for a in np.broadcast_arrays(*_arrays(frequency, recency, T)))
    r, alpha, s, beta = params.r, params.alpha, params.s, params.beta
    rate = prob_alive(params, x, t_x, age) * (r + x) / (alpha + age)
    window = np.asarray(horizons, dtype=float)[None, :]
    return rate[:, None] * _lifetime_factor(s, (beta + age)[:, None], window)


def _pair_index(rows: WeightedRows) -> None:
    """Distinct (x, T) and (x, t_x) pairs: the hypergeometric terms are computed once each."""
    aux, x = rows.aux, rows.columns["x"]
    (aux["xT_x"], aux["xT_T"]), aux["xT_i"], _ = distinct_rows(x, rows.columns["T"])
    (aux["xt_x"], aux["xt_t"]), aux["xt_i"], _ = distinct_rows(x, rows.columns["t"])


class ParetoNbd(LikelihoodModel):
    """The Pareto/NBD purchase model: ``fit`` on (frequency, recency, T), then predict.

    After a fit: ``params``, ``fitted()`` (log-likelihood, standard errors, convergence,
    boundary findings) and ``limit`` (the NBD where dropout vanished).
    """

    name: ClassVar[str] = "paretonbd"
    title: ClassVar[str] = "Pareto/NBD"
    parameter_names: ClassVar[tuple[str, ...]] = ("r", "alpha", "s", "beta")
    gradient: ClassVar[str] = "central-difference gradient of the exact log-likelihood"

    def __init__(self, params: ParetoNbdParams | None = None, penalizer: float = 0.0) -> None:
        super().__init__(penalizer)
        self._params = params
        self.limit: Nbd | None = None
        self.time_scale = 1.0

    @property
    def params(self) -> ParetoNbdParams:
        if self._params is None:
            raise ValueError("Pareto/NBD model has not been fitted")
        return self._params

    # --- likelihood on the rows (natural = r, alpha, s, beta on the rescaled clock) ------------

    def _row_ll(self, natural: np.ndarray, rows: WeightedRows) -> np.ndarray:
        r, alpha, s, beta = natural
        aux = rows.aux
        # log Gamma(r + x) is shared by a row's two terms: added per distinct pair, not per row
        # (gammaln over every row was two thirds of the fit's time)
        alive = (
            gammaln(r + aux["xT_x"])
            + np.log(r + aux["xT_x"])
            + _log_tail(r + aux["xT_x"] + 1, s, alpha, beta, aux["xT_T"])
        )
        dead = (
            gammaln(r + aux["xt_x"])
            + math.log(s)
            + _log_tail(r + aux["xt_x"], s + 1, alpha, beta, aux["xt_t"])
        )
        constant = -gammaln(r) + r * math.log(alpha) + s * math.log(beta)
        return constant + np.logaddexp(alive[aux["xT_i"]], dead[aux["xt_i"]])

    def row_terms(self, natural: np.ndarray, rows: WeightedRows) -> tuple[np.ndarray, np.ndarray]:
        """Per-row log-likelihood and gradient: alpha's and beta's derivatives analytic
        (d M(p, q; t) / d alpha = -p M(p + 1, q; t), d / d beta = -q M(p, q + 1; t): one more
        tail per term and parameter, on the distinct pairs), r's and s's by central differences
        (the hypergeometric term has no cheap derivative in its parameters)."""
        natural = np.asarray(natural, dtype=float)
        r, alpha, s, beta = natural
        aux = rows.aux
        xa, age, xd, rec = aux["xT_x"], aux["xT_T"], aux["xt_x"], aux["xt_t"]
        alive_tail = _log_tail(r + xa + 1, s, alpha, beta, age)
        dead_tail = _log_tail(r + xd, s + 1, alpha, beta, rec)
        alive = (gammaln(r + xa) + np.log(r + xa) + alive_tail)[aux["xT_i"]]
        dead = (gammaln(r + xd) + math.log(s) + dead_tail)[aux["xt_i"]]
        mixed = np.logaddexp(alive, dead)
        ll = -gammaln(r) + r * math.log(alpha) + s * math.log(beta) + mixed
        w_alive = np.exp(alive - mixed)
        w_dead = 1.0 - w_alive

        def ratio(log_tail: np.ndarray, log_base: np.ndarray, index: np.ndarray) -> np.ndarray:
            return np.exp(log_tail - log_base)[index]

        d_alpha = (
            r / alpha
            - w_alive
            * ((r + xa + 1)[aux["xT_i"]])
            * ratio(_log_tail(r + xa + 2, s, alpha, beta, age), alive_tail, aux["xT_i"])
            - w_dead
            * ((r + xd)[aux["xt_i"]])
            * ratio(_log_tail(r + xd + 1, s + 1, alpha, beta, rec), dead_tail, aux["xt_i"])
        )
        d_beta = (
            s / beta
            - w_alive
            * s
            * ratio(_log_tail(r + xa + 1, s + 1, alpha, beta, age), alive_tail, aux["xT_i"])
            - w_dead
            * (s + 1)
            * ratio(_log_tail(r + xd, s + 2, alpha, beta, rec), dead_tail, aux["xt_i"])
        )
        gradient = np.empty((len(ll), len(natural)))
        gradient[:, 1], gradient[:, 3] = d_alpha, d_beta
        for i in (0, 2):
            up, down = natural.copy(), natural.copy()
            up[i] *= math.exp(FD_STEP)
            down[i] *= math.exp(-FD_STEP)
            d_log = (self._row_ll(up, rows) - self._row_ll(down, rows)) / (2 * FD_STEP)
            gradient[:, i] = d_log / natural[i]
        return ll, gradient

    def starting_points(self, rows: WeightedRows) -> list[np.ndarray]:
        w = rows.weights
        rate = max(float(w @ rows.columns["x"]) / float(w @ rows.columns["T"]), 1e-6)
        return [
            np.ones(4),  # lifetimes' own start
            np.array([0.5, 0.5 / rate, 0.5, 0.5]),
            np.array([1.0, 1.0 / rate, 1.0, 5.0]),
        ]

    # --- the fit ----------------------------------------------------------------------------

    def fit(self, summary: pd.DataFrame) -> ParetoNbd:
        """Fit on the distinct (frequency, recency, T) rows of ``summary``, weighted by count."""
        return self.fit_weighted(summary["frequency"], summary["recency"], summary["T"])

    def fit_weighted(
        self,
        frequency: Any,
        recency: Any,
        T: Any,
        weights: Any = None,
        warm: ParetoNbdParams | None = None,
        distinct: bool = False,
        bootstrap: bool = False,
    ) -> ParetoNbd:
        """Fit on (frequency, recency, T) rows each standing for ``weights`` customers (default
        one each), as ``BgNbd.fit_weighted``; ``warm``, ``distinct`` and ``bootstrap`` as
        there (Pareto/NBD fits its NBD limit only where the optimum is not clearly interior)."""
        x, t_x, age, w, n_customers = purchase_data(self.title, frequency, recency, T, weights)
        self.time_scale = 1.0 / float(age.max())
        if bootstrap:
            self.bootstrap_refit()
        rows = _weighted_rows(x, t_x, age, w, self.time_scale, distinct)
        _pair_index(rows)
        start = None
        if warm is not None:
            scale = self.time_scale
            start = np.array([warm.r, warm.alpha * scale, warm.s, warm.beta * scale], dtype=float)
        return self.fit_prepared(rows, n_customers, warm=start)

    def fit_prepared(
        self,
        rows: WeightedRows,
        n_customers: int,
        starts: list[np.ndarray] | None = None,
        warm: np.ndarray | None = None,
    ) -> ParetoNbd:
        """Fit on prepared rows (clock already scaled by ``time_scale``); ``starts`` (natural
        parameters on that clock) replace the default starting points, ``warm`` is tried first."""
        optimum = self.fit_rows(rows, n_customers, starts, warm)
        record = self.fitted()
        r, alpha, s, beta = (float(v) for v in optimum.natural)
        scale = self.time_scale
        for name in ("alpha", "beta"):
            _rescale_error(record.standard_errors, name, 1 / scale)
        record.log_likelihood += float(rows.weights @ rows.columns["x"]) * math.log(scale)
        self._params = ParetoNbdParams(r, alpha / scale, s, beta / scale)
        self._check_dropout_limit(rows, n_customers)
        return self

    def _check_dropout_limit(self, rows: WeightedRows, n_customers: int) -> None:
        """Fit the NBD limit; adopt it where it is the maximum and nobody is expected to die."""
        params, record = self.params, self.fitted()
        oldest = 1.0 / self.time_scale
        lifetime = params.beta / params.s if params.s > 0 else math.inf
        if lifetime < DEATH_LIMIT * oldest / 10:  # clearly interior: no need for the NBD
            return
        limit = Nbd(penalizer=self.penalizer).fit_scaled(rows, self.time_scale, n_customers)
        gain = record.log_likelihood - limit.log_likelihood
        if not (gain <= LIMIT_TOLERANCE and lifetime > DEATH_LIMIT * oldest) and (
            gain >= -LIMIT_TOLERANCE
        ):
            return
        self.limit = limit
        limit_record = limit.fitted()
        record.log_likelihood = limit_record.log_likelihood
        record.standard_errors = {**limit_record.standard_errors, "s": None, "beta": None}
        record.standard_error_note = (
            "Pareto/NBD: s and beta have no standard errors at the no-dropout boundary (the "
            "likelihood is flat along s / beta -> 0); r and alpha's are the NBD's"
        )
        record.convergence = limit_record.convergence
        record.notes = list(limit_record.notes)
        record.boundary = [
            Boundary(
                self.name,
                "s/beta",
                "0",
                "no evidence of dropout: the mean death rate s/beta goes to 0 (best interior "
                f"mean lifetime {lifetime:.3g} time units, log-likelihood gain over the NBD "
                f"{gain:+.4f}), so Pareto/NBD becomes the NBD; LTV uses the NBD",
            ),
            *limit_record.boundary,
        ]

    # --- predictions ------------------------------------------------------------------------

    def draws(self, n: int, rng: np.random.Generator) -> ParetoNbd | Nbd | Any | None:
        """The model (or its limit) with ``n`` parameter vectors from the fit's asymptotic
        normal distribution, vectorised; None without a covariance."""
        if self.limit is not None:
            return self.limit.draws(n, rng)
        natural = self.natural_draws(n, rng)
        if natural is None:
            return None
        r, alpha, s, beta = natural.T
        scale = self.time_scale
        return ParetoNbd(ParetoNbdParams(r, alpha / scale, s, beta / scale))

    def params_dict(self) -> dict[str, float]:
        return asdict(self.params)

    def log_likelihood_rows(self, frequency: Any, recency: Any, T: Any) -> np.ndarray:
        if self.limit is not None:
            return self.limit.log_likelihood_rows(frequency, recency, T)
        return log_likelihood(self.params, frequency, recency, T)

    def prob_alive(self, frequency: Any, recency: Any, T: Any) -> np.ndarray:
        if self.limit is not None:
            return self.limit.prob_alive(frequency, recency, T)
        return prob_alive(self.params, frequency, recency, T)

    def expected_purchases(self, t: Any, frequency: Any, recency: Any, T: Any) -> np.ndarray:
        if self.limit is not None:
            return self.limit.expected_purchases(t, frequency, recency, T)
        return expected_purchases(self.params, t, frequency, recency, T)

    def expected_purchases_by_horizon(
        self, horizons: Any, frequency: Any, recency: Any, T: Any
    ) -> np.ndarray:
        """``expected_purchases`` at each of ``horizons`` (rows, horizons), computed at once."""
        if self.limit is not None or np.ndim(self.params.r):
            return horizon_columns(self, horizons, frequency, recency, T)
        return expected_purchases_by_horizon(self.params, horizons, frequency, recency, T)
