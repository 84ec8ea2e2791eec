"""BG/NBD (Fader, Hardie and Lee 2005, "Counting your customers the easy way"): while alive a
customer buys at Poisson rate lambda ~ Gamma(r, alpha) and drops out after each repeat purchase
with probability p ~ Beta(a, b).

Formulas are vectorised numpy of our own, tested equal to ``lifetimes`` where it gives numbers.
The fit is the base's bounded maximum likelihood on a clock rescaled so that the oldest
customer's T is 1 (as lifetimes does; alpha is scaled back after). Where the data show no
evidence of customers stopping, the optimum lies at a/(a+b) -> 0: the model becomes its limit,
the NBD (everyone stays alive), which is fitted and used for predictions (``Nbd``).

The NBD and its Poisson limit live in ``models.nbd`` (re-exported here).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from scipy.special import digamma, expit, gammaln, hyp2f1

from insightos_utils.ltv.models.base import (
    Boundary,
    LikelihoodModel,
    WeightedRows,
    unique_index,
)
from insightos_utils.ltv.models.nbd import (
    LIMIT_TOLERANCE,
    Nbd,
    Poisson,
    _arrays,
    _rescale_error,
    horizon_columns,
    purchase_data,
)
from insightos_utils.ltv.rfm import distinct_rows

# The no-dropout boundary: the BG/NBD optimum is its limit, the NBD, when the NBD fits at least
# as well as the best interior point (to LIMIT_TOLERANCE log-likelihood units) and that point's
# mean dropout probability a / (a + b) is below DROPOUT_LIMIT.
DROPOUT_LIMIT = 1e-3
SINGULAR_STEP = 1e-8  # relative change of the forecast there: about 1e-8


@dataclass(frozen=True)
class BgNbdParams:
    """BG/NBD parameters: purchase rate ~ Gamma(r, alpha), dropout probability ~ Beta(a, b)."""

    r: float
    alpha: float
    a: float
    b: float


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
    odds_dead = (a / (b + np.maximum(x, 1) - 1)) * ((alpha + age) / (alpha + t_x)) ** (r + x)
    if np.ndim(r) == 0 and horizon.size > 4096:
        # the hypergeometric part depends on (x, T, t) only, not on recency: compute it once
        # per distinct triple (a few thousand for a million customers)
        (ux, uT, uh), inverse, _ = distinct_rows(x.ravel(), age.ravel(), horizon.ravel())
        unique_part = _remaining_purchases(params, uh, ux, uT)
        return unique_part[inverse].reshape(x.shape) / (1 + (x > 0) * odds_dead)
    return _remaining_purchases(params, horizon, x, age) / (1 + (x > 0) * odds_dead)


def expected_purchases_by_horizon(
    params: BgNbdParams, horizons: Any, frequency: Any, recency: Any, T: Any
) -> np.ndarray:
    """``expected_purchases`` at each of ``horizons``, shape (rows, horizons): the dropout
    odds once per row, the hypergeometric part once per distinct (x, T) pair and horizon."""
    x, t_x, age = (a.ravel() for a in np.broadcast_arrays(*_arrays(frequency, recency, T)))
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    odds_dead = (a / (b + np.maximum(x, 1) - 1)) * ((alpha + age) / (alpha + t_x)) ** (r + x)
    (ux, uT), inverse, _ = distinct_rows(x, age)
    window = np.asarray(horizons, dtype=float)[None, :]
    remaining = _remaining_purchases(params, window, ux[:, None], uT[:, None])
    return remaining[inverse] / (1 + (x > 0) * odds_dead)[:, None]


def _remaining_purchases(params: BgNbdParams, horizon: Any, x: Any, age: Any) -> np.ndarray:
    """The numerator of FHL 2005 eq. 10: (a+b+x-1)/(a-1) [1 - ((alpha+T)/(alpha+T+t))^(r+x)
    2F1(r+x, b+x; a+b+x-1; t/(alpha+T+t))]."""
    horizon, x, age = np.broadcast_arrays(*_arrays(horizon, x, age))
    r, alpha = params.r, params.alpha
    # a = 1 and a + b = 1 are removable singularities (0/0 and 0 * infinity): step off them
    a = np.asarray(params.a, dtype=float)
    a = np.where(np.abs(a - 1) < SINGULAR_STEP, 1 + SINGULAR_STEP, a)
    b = np.asarray(params.b, dtype=float)
    b = np.where(np.abs(a + b - 1) < SINGULAR_STEP, 1 - a + SINGULAR_STEP, b)
    hyp_a, hyp_b, hyp_c = r + x, b + x, a + b + x - 1
    z = horizon / (alpha + age + horizon)
    log_decay = (r + x) * np.log((alpha + age) / (alpha + age + horizon))
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        hyp = np.asarray(hyp2f1(hyp_a, hyp_b, hyp_c, z))
        remaining = np.asarray(hyp * np.exp(log_decay), dtype=float)
        overflow = ~np.isfinite(hyp)
        if overflow.any():
            c, za = hyp_c[overflow], z[overflow]
            euler = hyp2f1(c - hyp_a[overflow], c - hyp_b[overflow], c, za)
            remaining[overflow] = np.sign(euler) * np.exp(
                np.log(np.abs(euler))
                + (c - hyp_a[overflow] - hyp_b[overflow]) * np.log(1 - za)
                + log_decay[overflow]
            )
    return (a + b + x - 1) / (a - 1) * (1 - remaining)


def _time_index(rows: WeightedRows) -> None:
    """Distinct frequencies, recencies and ages of the rows, and the weight sums over them,
    computed once per fit: the likelihood then needs per-row work only for repeat buyers."""
    aux, w, x = rows.aux, rows.weights, rows.columns["x"]
    for column in ("x", "t", "T"):
        distinct, inverse = unique_index(rows.columns[column])
        aux[f"u{column}"], aux[f"i{column}"] = distinct, inverse
    aux["w_by_x"] = np.bincount(aux["ix"], weights=w, minlength=len(aux["ux"]))
    aux["w_by_T"] = np.bincount(aux["iT"], weights=w, minlength=len(aux["uT"]))
    aux["wx_by_T"] = np.bincount(aux["iT"], weights=w * x, minlength=len(aux["uT"]))
    repeat = x > 0
    for key in ("ix", "it", "iT"):
        aux[f"rep_{key}"] = aux[key][repeat]
    aux["rep_x"], aux["rep_w"] = x[repeat], w[repeat]


def _rows(summary: pd.DataFrame, scale: float) -> WeightedRows:
    """The distinct (x, t_x, T) rows of a summary's customers, clock scaled."""
    x, t_x, age = (summary[c].to_numpy(float) for c in ("frequency", "recency", "T"))
    return _weighted_rows(x, t_x, age, np.ones(len(summary)), scale)


def _weighted_rows(
    x: np.ndarray,
    t_x: np.ndarray,
    age: np.ndarray,
    w: np.ndarray,
    scale: float,
    distinct: bool = False,
) -> WeightedRows:
    """The distinct (x, t_x, T) rows of customers (or of rows weighted by ``w``), clock scaled;
    ``distinct``: the rows are already distinct (a bootstrap re-weighting of them)."""
    if distinct:
        ux, ut, uT, counts = x, t_x, age, w
    else:
        (ux, ut, uT), inverse, _ = distinct_rows(x, t_x, age)
        counts = np.bincount(inverse, weights=w, minlength=len(ux))
    rows = WeightedRows({"x": ux, "t": ut * scale, "T": uT * scale}, counts)
    _time_index(rows)
    return rows


class BgNbd(LikelihoodModel):
    """The BG/NBD purchase model: ``fit`` on (frequency, recency, T), then predict.

    After a fit: ``params``, ``standard_errors`` (in ``fitted()``), ``log_likelihood``,
    ``convergence``, ``boundary`` (findings) and ``limit`` (the NBD where dropout vanished).
    """

    name: ClassVar[str] = "bgnbd"
    title: ClassVar[str] = "BG/NBD"
    parameter_names: ClassVar[tuple[str, ...]] = ("r", "alpha", "a", "b")

    def __init__(self, params: BgNbdParams | None = None, penalizer: float = 0.0) -> None:
        super().__init__(penalizer)
        self._params = params
        self.limit: Nbd | None = None
        self.time_scale = 1.0
        self.interior: BgNbdParams | None = None  # the best interior point, where a limit won

    @property
    def params(self) -> BgNbdParams:
        if self._params is None:
            raise ValueError("BG/NBD model has not been fitted")
        return self._params

    # --- likelihood on the rows (natural = r, alpha on the rescaled clock, a, b) --------------

    def row_terms(self, natural: np.ndarray, rows: WeightedRows) -> tuple[np.ndarray, np.ndarray]:
        r, alpha, a, b = natural
        x, t, age = rows.columns["x"], rows.columns["t"], rows.columns["T"]
        aux = rows.aux
        ux, ix = aux["ux"], aux["ix"]
        log_age = np.log(alpha + aux["uT"])[aux["iT"]]
        log_rec = np.log(alpha + aux["ut"])[aux["it"]]
        repeat = x > 0
        per_x = np.log(a) - np.log(b + np.maximum(ux, 1) - 1)
        rate_part = (gammaln(r + ux) - gammaln(r))[ix] + r * np.log(alpha)
        dropout_part = (gammaln(a + b) + gammaln(b + ux) - gammaln(b) - gammaln(a + b + ux))[ix]
        alive = -(r + x) * log_age
        dead = per_x[ix] - (r + x) * log_rec
        mixed = np.where(repeat, np.logaddexp(alive, np.where(repeat, dead, -np.inf)), alive)
        ll = rate_part + dropout_part + mixed
        w_dead = np.where(repeat, np.exp(dead - mixed), 0.0)
        w_alive = 1.0 - w_dead
        d_r = (
            (digamma(r + ux) - digamma(r))[ix]
            + np.log(alpha)
            - w_alive * log_age
            - w_dead * log_rec
        )
        d_alpha = r / alpha - (r + x) * (w_alive / (alpha + age) + w_dead / (alpha + t))
        psi_ab = digamma(a + b)
        d_a = (psi_ab - digamma(a + b + ux))[ix] + w_dead / a
        d_b = (psi_ab + digamma(b + ux) - digamma(b) - digamma(a + b + ux))[ix] - w_dead / (
            b + np.maximum(x, 1) - 1
        )
        return ll, np.column_stack([d_r, d_alpha, d_a, d_b])

    def mean_terms(self, natural: np.ndarray, rows: WeightedRows) -> tuple[float, np.ndarray]:
        """``row_terms`` summed: what depends on a distinct frequency or age is summed over its
        weights once; only the alive/dead mixture of repeat buyers needs every row."""
        r, alpha, a, b = natural
        aux = rows.aux
        ux, total = aux["ux"], rows.total_weight
        log_age, inv_age = np.log(alpha + aux["uT"]), 1.0 / (alpha + aux["uT"])
        log_rec, inv_rec = np.log(alpha + aux["ut"]), 1.0 / (alpha + aux["ut"])
        per_x_ll = (
            gammaln(r + ux)
            - gammaln(r)
            + gammaln(a + b)
            + gammaln(b + ux)
            - gammaln(b)
            - gammaln(a + b + ux)
        )
        psi_ab = digamma(a + b)
        psi_abx = digamma(a + b + ux)
        dead_gap = 1.0 / (b + np.maximum(ux, 1) - 1)
        log_dead = np.where(ux > 0, np.log(a) + np.log(dead_gap), -np.inf)
        # repeat buyers: d = log odds of having dropped out, from the dead and alive terms
        iT, it, ix = aux["rep_iT"], aux["rep_it"], aux["rep_ix"]
        shape = r + aux["rep_x"]
        gap = log_rec[it] - log_age[iT]
        d = log_dead[ix] - shape * gap
        # softplus(d) and expit(d) from one exponential: e = exp(-|d|)
        e = np.exp(-np.abs(d))
        softplus = np.maximum(d, 0.0) + np.log1p(e)
        weighted_dead = aux["rep_w"] * np.where(d >= 0, 1.0, e) / (1.0 + e)
        w_by_T, wx_by_T, w_by_x = aux["w_by_T"], aux["wx_by_T"], aux["w_by_x"]
        ll = (
            w_by_x @ per_x_ll
            + total * r * np.log(alpha)
            - (r * w_by_T + wx_by_T) @ log_age
            + aux["rep_w"] @ softplus
        )
        d_r = (
            w_by_x @ (digamma(r + ux) - digamma(r))
            + total * np.log(alpha)
            - w_by_T @ log_age
            - weighted_dead @ gap
        )
        d_alpha = (
            total * r / alpha
            - (r * w_by_T + wx_by_T) @ inv_age
            - (weighted_dead * shape) @ (inv_rec[it] - inv_age[iT])
        )
        dead_by_x = np.bincount(ix, weights=weighted_dead, minlength=len(ux))
        d_a = w_by_x @ (psi_ab - psi_abx) + dead_by_x.sum() / a
        d_b = w_by_x @ (psi_ab + digamma(b + ux) - digamma(b) - psi_abx) - dead_by_x @ dead_gap
        return float(ll) / total, np.array([d_r, d_alpha, d_a, d_b]) / total

    def starting_points(self, rows: WeightedRows) -> list[np.ndarray]:
        w = rows.weights
        rate = max(float(w @ rows.columns["x"]) / float(w @ rows.columns["T"]), 1e-6)
        return [
            np.exp(np.full(4, 0.1)),  # lifetimes' own start
            np.array([1.0, 1.0 / rate, 1.0, 3.0]),
            np.array([0.3, 0.3 / rate, 0.2, 10.0]),
        ]

    # --- the fit ----------------------------------------------------------------------------

    def fit(self, summary: pd.DataFrame) -> BgNbd:
        """Fit on the distinct (frequency, recency, T) rows of ``summary``, weighted by count.

        Fails only where the data cannot identify the model: no customers, every customer's
        age zero, or no repeat purchase at all.
        """
        return self.fit_weighted(summary["frequency"], summary["recency"], summary["T"])

    def fit_weighted(
        self,
        frequency: Any,
        recency: Any,
        T: Any,
        weights: Any = None,
        warm: BgNbdParams | None = None,
        distinct: bool = False,
        bootstrap: bool = False,
    ) -> BgNbd:
        """Fit on (frequency, recency, T) rows each standing for ``weights`` customers (default
        one each; rows may repeat): a bootstrap resample of customers is a re-weighting of the
        distinct rows, the same objective as its materialised customers. ``warm``: parameters
        (e.g. the full data's fit) to start the optimiser from (``fit_rows``); ``distinct``: the
        rows are distinct already (they are not looked for again); ``bootstrap``: a bootstrap
        refit (``bootstrap_refit``), where the NBD limit is fitted only if the converged optimum
        is not clearly interior (it cannot win there)."""
        x, t_x, age, w, n_customers = purchase_data(self.title, frequency, recency, T, weights)
        self.time_scale = 1.0 / float(age.max())
        if bootstrap:
            self.bootstrap_refit()
        rows = _weighted_rows(x, t_x, age, w, self.time_scale, distinct)
        start = None
        if warm is not None:
            start = np.array([warm.r, warm.alpha * self.time_scale, warm.a, warm.b], dtype=float)
        optimum = self.fit_rows(rows, n_customers, warm=start)
        r, alpha_scaled, a, b = (float(v) for v in optimum.natural)
        record = self.fitted()
        _rescale_error(record.standard_errors, "alpha", 1 / self.time_scale)
        record.log_likelihood = float(
            rows.weights
            @ log_likelihood(
                BgNbdParams(r, alpha_scaled / self.time_scale, a, b),
                rows.columns["x"],
                rows.columns["t"] / self.time_scale,
                rows.columns["T"] / self.time_scale,
            )
        )
        self._params = self.interior = BgNbdParams(r, alpha_scaled / self.time_scale, a, b)
        interior = optimum.convergence.converged and a / (a + b) >= 10 * DROPOUT_LIMIT
        if not (bootstrap and interior):
            self._check_dropout_limit(rows, n_customers)
        if self.limit is None and a + b < 1:
            record.boundary.append(
                Boundary(
                    self.name,
                    "a + b",
                    "below 1",
                    f"a + b = {a + b:.3f} < 1: the dropout probabilities are pushed towards 0 and "
                    "1 (U-shaped Beta); lifetimes' predictions are NaN for customers without "
                    "repeat purchases here (lifetimes #442), ours compute the hypergeometric term "
                    "directly and stay finite",
                )
            )
        return self

    def _check_dropout_limit(self, rows: WeightedRows, n_customers: int) -> None:
        """Fit the NBD limit; adopt it where it is the maximum (see ``DROPOUT_LIMIT``)."""
        params, record = self.params, self.fitted()
        limit = Nbd(penalizer=self.penalizer).fit_scaled(rows, self.time_scale, n_customers)
        dropout = params.a / (params.a + params.b)
        gain = record.log_likelihood - limit.log_likelihood
        if not (gain <= LIMIT_TOLERANCE and dropout < DROPOUT_LIMIT) and gain >= -LIMIT_TOLERANCE:
            return
        self.limit = limit
        limit_record = limit.fitted()
        if limit.limit is None:
            self._params = BgNbdParams(limit.r, limit.alpha, 0.0, math.nan)
        else:  # r -> infinity too: one Poisson rate, r and alpha not identified
            self._params = BgNbdParams(math.inf, math.inf, 0.0, math.nan)
        record.log_likelihood = limit_record.log_likelihood
        record.standard_errors = {**limit_record.standard_errors, "a": None, "b": None}
        record.standard_error_note = (
            "BG/NBD: a and b have no standard errors at the no-dropout boundary (the likelihood "
            "is flat along a / (a + b) -> 0); r and alpha's are the NBD's"
            + (f". {limit_record.standard_error_note}" if limit_record.standard_error_note else "")
        )
        record.convergence = limit_record.convergence
        # the interior fit ran towards the limit and could not settle: the limit's record stands
        record.notes = list(limit_record.notes)
        record.boundary = []
        record.boundary.append(
            Boundary(
                self.name,
                "a/(a+b)",
                "0",
                "no evidence of dropout in the calibration window: the mean dropout "
                f"probability a/(a+b) goes to 0 (best interior point {dropout:.2g}, "
                f"log-likelihood gain over the NBD {gain:+.4f}), so BG/NBD becomes the NBD: "
                "every customer stays alive and buys at their own Poisson rate; LTV uses the NBD",
            )
        )
        record.boundary.extend(limit_record.boundary)

    # --- predictions ------------------------------------------------------------------------

    def draws(self, n: int, rng: np.random.Generator) -> BgNbd | Nbd | Poisson | None:
        """The model used for predictions (or its limit) with ``n`` parameter vectors drawn from
        the fit's sampling distribution, vectorised; None without a covariance."""
        if self.limit is not None:
            return self.limit.draws(n, rng)
        natural = self.natural_draws(n, rng)
        if natural is None:
            return None
        r, alpha, a, b = natural.T
        return BgNbd(BgNbdParams(r, alpha / self.time_scale, a, b))

    @property
    def a_plus_b_below_1(self) -> bool:
        return self.limit is None and self.params.a + self.params.b < 1

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


__all__ = ["BgNbd", "BgNbdParams", "Nbd", "Poisson", "horizon_columns"]
