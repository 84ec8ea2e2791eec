"""Gamma-Gamma (Fader, Hardie and Lee 2005, "RFM and CLV"; Fader-Hardie note 025): a customer's
purchase values are Gamma(p, nu) with nu ~ Gamma(q, v) across customers; it assumes spend per
purchase is independent of how often one buys, which ``independence`` checks on the data alone.

The fit works on (log p, log q, log(v / q)): v / q is the scale of a typical customer's mean
spend, which stays finite when the data show no heterogeneity in spend and q runs to infinity.
That limit is the homogeneous-spend model (every purchase Gamma(p, nu) with one common nu,
``HomogeneousSpend``): one common expected value per purchase, used for predictions there.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from scipy.special import digamma, gammaln

from insightos_utils.ltv.models.base import (
    Boundary,
    FitError,
    LikelihoodModel,
    WeightedRows,
    positive_rows,
    unique_index,
)
from insightos_utils.ltv.rfm import distinct_rows, float_array

INDEPENDENCE_WARN_CORRELATION = 0.3
# q at least this large with the homogeneous model as good (to LIMIT_TOLERANCE log-likelihood
# units): the spread of customers' mean spend (coefficient of variation 1/sqrt(q)) is gone.
Q_LIMIT = 1e4
LIMIT_TOLERANCE = 0.01
# p at least this large (a customer's purchase values vary by under 1% around their own mean,
# coefficient of variation 1/sqrt(p)) with the constant-spend model as good: p -> infinity.
P_LIMIT = 1e4


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
    repeaters = summary[summary["frequency"].to_numpy() > 0]
    if len(repeaters) < 3:
        return float("nan")
    x = repeaters["frequency"].to_numpy(float)
    m = repeaters["monetary_value"].to_numpy(float)
    if x.std() == 0 or m.std() == 0:
        return float("nan")
    return float(np.corrcoef(x, m)[0, 1])


def independence(summary: pd.DataFrame) -> IndependenceCheck:
    """Gamma-Gamma's independence assumption checked on the data alone (no fit involved)."""
    repeaters = int((summary["frequency"].to_numpy() > 0).sum())
    return IndependenceCheck(frequency_monetary_correlation(summary), repeaters)


def expected_average_value(
    params: GammaGammaParams, frequency: Any, monetary_value: Any
) -> np.ndarray:
    """Gamma-Gamma expected spend per purchase: individual mean shrunk to the population mean."""
    x, m = float_array(frequency), float_array(monetary_value)
    p, q, v = params.p, params.q, params.v
    weight = p * x / (p * x + q - 1)
    return (1 - weight) * (v * p / (q - 1)) + weight * m


def _rows(repeaters: pd.DataFrame) -> WeightedRows:
    """The distinct (frequency, monetary value) rows of repeat customers."""
    x, m = repeaters["frequency"].to_numpy(float), repeaters["monetary_value"].to_numpy(float)
    return _weighted_rows(x, m, np.ones(len(repeaters)))


def _weighted_rows(
    x: np.ndarray, m: np.ndarray, w: np.ndarray, distinct: bool = False
) -> WeightedRows:
    """The distinct (frequency, monetary value) rows of repeat customers, weighted by ``w``;
    ``distinct``: the rows are already distinct (a bootstrap re-weighting of them)."""
    if distinct:
        ux, um, counts = x, m, w
    else:
        (ux, um), inverse, _ = distinct_rows(x, m)
        counts = np.bincount(inverse, weights=w, minlength=len(ux))
    rows = WeightedRows({"x": ux, "m": um}, counts)
    rows.aux["ux"], rows.aux["ix"] = unique_index(ux)
    aux = rows.aux
    aux["log_m"], aux["log_x"] = np.log(um), np.log(ux)
    aux["spend"] = ux * um
    aux["w_by_x"] = np.bincount(aux["ix"], weights=counts, minlength=len(aux["ux"]))
    aux["wx"] = counts * ux
    # sums that do not depend on the parameters
    aux["sums"] = np.array(
        [counts @ aux["log_m"], aux["wx"] @ aux["log_m"], aux["wx"] @ aux["log_x"]]
    )
    return rows


class HomogeneousSpend(LikelihoodModel):
    """Every purchase value is Gamma(p, nu) with one nu for all customers: Gamma-Gamma's limit
    as q -> infinity (no heterogeneity in spend). Its expected value per purchase, p / nu, is the
    same for every customer."""

    name: ClassVar[str] = "homogeneous_spend"
    title: ClassVar[str] = "homogeneous spend"
    parameter_names: ClassVar[tuple[str, ...]] = ("p", "nu")

    def __init__(self, p: Any = math.nan, nu: Any = math.nan, penalizer: float = 0.0):
        super().__init__(penalizer)
        self.p, self.nu = p, nu

    @property
    def mean_value(self) -> Any:
        return self.p / self.nu

    def draws(self, n: int, rng: np.random.Generator) -> HomogeneousSpend | None:
        natural = self.natural_draws(n, rng)
        return None if natural is None else HomogeneousSpend(p=natural[:, 0], nu=natural[:, 1])

    def row_terms(self, natural: np.ndarray, rows: WeightedRows) -> tuple[np.ndarray, np.ndarray]:
        p, nu = natural
        x, m, aux = rows.columns["x"], rows.columns["m"], rows.aux
        px = p * x
        ll = (
            px * (np.log(nu) + aux["log_x"])
            + (px - 1) * aux["log_m"]
            - nu * x * m
            - gammaln(p * aux["ux"])[aux["ix"]]
        )
        d_p = x * (np.log(nu) + aux["log_x"] + aux["log_m"]) - x * digamma(p * aux["ux"])[aux["ix"]]
        d_nu = px / nu - x * m
        return ll, np.column_stack([d_p, d_nu])

    def mean_terms(self, natural: np.ndarray, rows: WeightedRows) -> tuple[float, np.ndarray]:
        """``row_terms`` summed: everything reduces to fixed sums and sums over frequencies."""
        p, nu = natural
        aux, w, total = rows.aux, rows.weights, rows.total_weight
        ux, w_by_x = aux["ux"], aux["w_by_x"]
        sum_log_m, sum_wx_log_m, sum_wx_log_x = aux["sums"]
        sum_wx = float(aux["wx"].sum())
        sum_spend = float(w @ aux["spend"])
        ll = (
            p * (sum_wx * math.log(nu) + sum_wx_log_x + sum_wx_log_m)
            - sum_log_m
            - nu * sum_spend
            - w_by_x @ gammaln(p * ux)
        )
        d_p = sum_wx * math.log(nu) + sum_wx_log_x + sum_wx_log_m - (w_by_x * ux) @ digamma(p * ux)
        d_nu = p * sum_wx / nu - sum_spend
        return float(ll) / total, np.array([d_p, d_nu]) / total

    def starting_points(self, rows: WeightedRows) -> list[np.ndarray]:
        w, x, m = rows.weights, rows.columns["x"], rows.columns["m"]
        mean = float(w @ (x * m)) / float(w @ x)
        return [np.array([1.0, 1.0 / mean]), np.array([10.0, 10.0 / mean])]

    def fit(self, rows: WeightedRows, n_customers: int) -> HomogeneousSpend:
        optimum = self.fit_rows(rows, n_customers)
        self.p, self.nu = (float(v) for v in optimum.natural)
        return self

    def expected_average_value(self, frequency: Any, monetary_value: Any) -> np.ndarray:
        shape = np.broadcast(np.asarray(frequency), np.asarray(monetary_value)).shape
        return np.asarray(self.mean_value, dtype=float) * np.ones(shape)


class ConstantSpend(LikelihoodModel):
    """Each customer spends the same amount every time; those amounts differ across customers
    as an inverse gamma with shape q and scale s: Gamma-Gamma's limit as p -> infinity with
    p v = s fixed. A repeat customer's expected value per purchase is their own mean; one with no
    repeat purchase gets the population mean s / (q - 1)."""

    name: ClassVar[str] = "constant_spend"
    title: ClassVar[str] = "constant spend per customer"
    parameter_names: ClassVar[tuple[str, ...]] = ("q", "s")

    def __init__(self, q: Any = math.nan, s: Any = math.nan, penalizer: float = 0.0):
        super().__init__(penalizer)
        self.q, self.s = q, s

    def row_terms(self, natural: np.ndarray, rows: WeightedRows) -> tuple[np.ndarray, np.ndarray]:
        q, scale = natural
        m, log_m = rows.columns["m"], rows.aux["log_m"]
        ll = q * math.log(scale) - gammaln(q) - (q + 1) * log_m - scale / m
        d_q = math.log(scale) - digamma(q) - log_m
        d_s = q / scale - 1 / m
        return ll, np.column_stack([d_q, d_s])

    def mean_terms(self, natural: np.ndarray, rows: WeightedRows) -> tuple[float, np.ndarray]:
        q, scale = natural
        w, total = rows.weights, rows.total_weight
        sum_log_m = float(rows.aux["sums"][0])
        sum_inverse = float(w @ (1 / rows.columns["m"]))
        ll = total * (q * math.log(scale) - gammaln(q)) - (q + 1) * sum_log_m - scale * sum_inverse
        d_q = total * (math.log(scale) - digamma(q)) - sum_log_m
        d_s = total * q / scale - sum_inverse
        return ll / total, np.array([d_q, d_s]) / total

    def starting_points(self, rows: WeightedRows) -> list[np.ndarray]:
        w, m = rows.weights, rows.columns["m"]
        mean = float(w @ m) / float(w.sum())
        return [np.array([3.0, 2.0 * mean]), np.array([20.0, 19.0 * mean])]

    def fit(self, rows: WeightedRows, n_customers: int) -> ConstantSpend:
        optimum = self.fit_rows(rows, n_customers)
        self.q, self.s = (float(v) for v in optimum.natural)
        return self

    def draws(self, n: int, rng: np.random.Generator) -> ConstantSpend | None:
        natural = self.natural_draws(n, rng)
        return None if natural is None else ConstantSpend(q=natural[:, 0], s=natural[:, 1])

    def expected_average_value(self, frequency: Any, monetary_value: Any) -> np.ndarray:
        x, m = float_array(frequency), float_array(monetary_value)
        population = np.asarray(self.s) / (np.asarray(self.q) - 1)
        return np.where(x > 0, m, population)


class GammaGamma(LikelihoodModel):
    """The Gamma-Gamma spend model: ``fit`` on the repeat customers, then predict.

    After a fit: ``params``, ``log_likelihood``, ``convergence``, ``boundary`` and ``limit``
    (the homogeneous-spend model where q ran to infinity).
    """

    name: ClassVar[str] = "gamma_gamma"
    title: ClassVar[str] = "Gamma-Gamma"
    parameter_names: ClassVar[tuple[str, ...]] = ("p", "q", "v")

    def __init__(self, params: GammaGammaParams | None = None, penalizer: float = 0.0) -> None:
        super().__init__(penalizer)
        self._params = params
        self.limit: HomogeneousSpend | ConstantSpend | None = None
        self.interior: GammaGammaParams | None = None  # the best interior point, where a limit won

    @property
    def params(self) -> GammaGammaParams:
        if self._params is None:
            raise ValueError("Gamma-Gamma model has not been fitted")
        return self._params

    # --- working parameters: log p, log q, log(v / q) ----------------------------------------

    def to_natural(self, theta: np.ndarray) -> np.ndarray:
        return np.array([math.exp(theta[0]), math.exp(theta[1]), math.exp(theta[1] + theta[2])])

    def to_working(self, natural: np.ndarray) -> np.ndarray:
        p, q, v = natural
        return np.array([math.log(p), math.log(q), math.log(v / q)])

    def jacobian(self, theta: np.ndarray) -> np.ndarray:
        p, q, v = self.to_natural(theta)
        return np.array([[p, 0.0, 0.0], [0.0, q, 0.0], [0.0, v, v]])

    def bounds(self) -> list[tuple[float, float]]:
        return [(-18.42, 18.42), (-18.42, 18.42), (-40.0, 40.0)]

    def row_terms(self, natural: np.ndarray, rows: WeightedRows) -> tuple[np.ndarray, np.ndarray]:
        p, q, v = natural
        x, m, aux = rows.columns["x"], rows.columns["m"], rows.aux
        ux, ix = aux["ux"], aux["ix"]
        px = p * x
        log_total = np.log(x * m + v)
        ll = (
            (gammaln(p * ux + q) - gammaln(p * ux))[ix]
            - gammaln(q)
            + q * math.log(v)
            + (px - 1) * aux["log_m"]
            + px * aux["log_x"]
            - (px + q) * log_total
        )
        psi_pxq = digamma(p * ux + q)[ix]
        d_p = x * (psi_pxq - digamma(p * ux)[ix] + aux["log_m"] + aux["log_x"] - log_total)
        d_q = psi_pxq - digamma(q) + math.log(v) - log_total
        d_v = q / v - (px + q) / (x * m + v)
        return ll, np.column_stack([d_p, d_q, d_v])

    def mean_terms(self, natural: np.ndarray, rows: WeightedRows) -> tuple[float, np.ndarray]:
        """``row_terms`` summed: per distinct frequency where possible; per row only
        log(x m + v) and 1 / (x m + v)."""
        p, q, v = natural
        aux, w, total = rows.aux, rows.weights, rows.total_weight
        ux, w_by_x, wx = aux["ux"], aux["w_by_x"], aux["wx"]
        sum_log_m, sum_wx_log_m, sum_wx_log_x = aux["sums"]
        log_total = np.log(aux["spend"] + v)
        inverse_total = 1.0 / (aux["spend"] + v)
        wx_log, w_log = wx @ log_total, w @ log_total
        wx_inv, w_inv = wx @ inverse_total, w @ inverse_total
        ll = (
            w_by_x @ (gammaln(p * ux + q) - gammaln(p * ux))
            - total * gammaln(q)
            + total * q * math.log(v)
            + p * sum_wx_log_m
            - sum_log_m
            + p * sum_wx_log_x
            - p * wx_log
            - q * w_log
        )
        psi_pxq = digamma(p * ux + q)
        d_p = (w_by_x * ux) @ (psi_pxq - digamma(p * ux)) + sum_wx_log_m + sum_wx_log_x - wx_log
        d_q = w_by_x @ psi_pxq - total * digamma(q) + total * math.log(v) - w_log
        d_v = total * q / v - p * wx_inv - q * w_inv
        return float(ll) / total, np.array([d_p, d_q, d_v]) / total

    def starting_points(self, rows: WeightedRows) -> list[np.ndarray]:
        w, x, m = rows.weights, rows.columns["x"], rows.columns["m"]
        mean = float(w @ (x * m)) / float(w @ x)
        return [
            np.exp(np.full(3, 0.1)),  # lifetimes' own start
            np.array([2.0, 3.0, 2.0 * mean]),  # population mean p v / (q - 1) = mean
            np.array([10.0, 100.0, 99.0 * mean / 10.0]),
        ]

    # --- the fit ----------------------------------------------------------------------------

    def fit(self, summary: pd.DataFrame) -> GammaGamma:
        """Fit on the repeat customers' distinct (frequency, monetary value) rows, weighted.

        Money comes in cents, so many customers share a row, and the objective is unchanged.
        """
        return self.fit_weighted(summary["frequency"], summary["monetary_value"])

    def fit_weighted(
        self,
        frequency: Any,
        monetary_value: Any,
        weights: Any = None,
        warm: GammaGammaParams | None = None,
        distinct: bool = False,
        bootstrap: bool = False,
    ) -> GammaGamma:
        """Fit on the repeat buyers among rows each standing for ``weights`` customers (default
        one each): a bootstrap resample is a re-weighting. ``warm``: parameters to start the
        optimiser from (``fit_rows``); ``distinct``: the rows are distinct already (they are not
        looked for again); ``bootstrap``: a bootstrap refit (``bootstrap_refit``), where the
        homogeneous-spend limit is fitted only if the converged optimum is not clearly interior
        (it cannot win there)."""
        (x, m), w = positive_rows([frequency, monetary_value], weights)
        repeat = x > 0
        x, m, w = x[repeat], m[repeat], w[repeat]
        n_repeaters = int(round(float(w.sum())))
        if n_repeaters < 2:
            raise FitError(
                f"Gamma-Gamma: {n_repeaters} customer(s) bought again in the calibration "
                "period; spend per repeat purchase cannot be modelled without at least two repeat "
                "buyers (a later calibration end, or a longer history)"
            )
        if bootstrap:
            self.bootstrap_refit()
        rows = _weighted_rows(x, m, w, distinct)
        start = None if warm is None else np.array([warm.p, warm.q, warm.v], dtype=float)
        optimum = self.fit_rows(rows, n_repeaters, warm=start)
        self._params = self.interior = GammaGammaParams(*(float(v) for v in optimum.natural))
        interior = optimum.convergence.converged and self.params.q <= Q_LIMIT / 10
        if not (bootstrap and interior):
            self._check_homogeneous_limit(rows, n_repeaters)
        if self.limit is None and self.params.p >= P_LIMIT:
            self._check_constant_limit(rows, n_repeaters)
        q = self.limit.q if isinstance(self.limit, ConstantSpend) else self.params.q
        if not isinstance(self.limit, HomogeneousSpend) and q <= 1:
            raise FitError(
                f"Gamma-Gamma: the fitted q = {q:.3f} <= 1, so the population mean "
                "spend p·v/(q-1) is infinite: spend per purchase is too heavy-tailed for this "
                "model. Check the largest purchase values (refunds recorded as sales, bulk "
                "orders, amounts in cents) before valuing customers."
            )
        return self

    def _check_homogeneous_limit(self, rows: WeightedRows, n_customers: int) -> None:
        record = self.fitted()
        limit = HomogeneousSpend(penalizer=self.penalizer).fit(rows, n_customers)
        gain = record.log_likelihood - limit.log_likelihood
        interior_q = self.params.q
        near = interior_q >= Q_LIMIT
        if not (gain <= LIMIT_TOLERANCE and near) and gain >= -LIMIT_TOLERANCE:
            return
        self.limit = limit
        self._params = GammaGammaParams(limit.p, math.inf, math.inf)
        limit_record = limit.fitted()
        record.log_likelihood = limit_record.log_likelihood
        record.standard_errors = {"p": limit_record.standard_errors.get("p"), "q": None, "v": None}
        record.standard_error_note = (
            "Gamma-Gamma: q and v have no standard errors at the homogeneous-spend boundary "
            "(q -> infinity); p's is the homogeneous model's"
        )
        record.convergence = limit_record.convergence
        # the interior fit ran towards the limit and could not settle: the limit's record stands
        record.notes = list(limit_record.notes)
        record.boundary = []
        record.boundary.append(
            Boundary(
                self.name,
                "q",
                "infinity",
                "homogeneous spend: customers do not differ in their mean spend per purchase "
                f"(best interior q = {interior_q:.3g}, log-likelihood gain over the limit "
                f"{gain:+.4f}), so "
                "Gamma-Gamma becomes one common distribution of purchase values; every customer's "
                f"expected value per purchase is the common mean ${limit.mean_value:,.2f}",
            )
        )

    def _check_constant_limit(self, rows: WeightedRows, n_customers: int) -> None:
        """Adopt the constant-spend limit where p runs to infinity and it fits as well."""
        record = self.fitted()
        limit = ConstantSpend(penalizer=self.penalizer).fit(rows, n_customers)
        gain = record.log_likelihood - limit.log_likelihood
        if gain > LIMIT_TOLERANCE:
            return
        interior_p = self.params.p
        self.limit = limit
        self._params = GammaGammaParams(math.inf, limit.q, 0.0)
        limit_record = limit.fitted()
        record.log_likelihood = limit_record.log_likelihood
        record.standard_errors = {"p": None, "q": limit_record.standard_errors.get("q"), "v": None}
        record.standard_error_note = (
            "Gamma-Gamma: p and v have no standard errors at the constant-spend boundary "
            "(p -> infinity with p·v fixed); q's is the limiting model's"
        )
        record.convergence = limit_record.convergence
        record.notes = list(limit_record.notes)
        record.boundary = [
            Boundary(
                self.name,
                "p",
                "infinity",
                "customers' mean spend does not become less spread out as they buy more often, "
                "so Gamma-Gamma puts all the spread between customers and none between a "
                f"customer's purchases (best interior p = {interior_p:.3g}, log-likelihood gain "
                f"{gain:+.4f}): a repeat customer's expected value per purchase is their own "
                f"mean, a customer without repeat purchases gets the population mean "
                f"${limit.s / (limit.q - 1) if limit.q > 1 else math.inf:,.2f}",
            )
        ]

    # --- predictions ------------------------------------------------------------------------

    def draws(
        self, n: int, rng: np.random.Generator
    ) -> GammaGamma | HomogeneousSpend | ConstantSpend | None:
        """The model used for predictions (or its limit) with ``n`` parameter draws."""
        if self.limit is not None:
            return self.limit.draws(n, rng)
        natural = self.natural_draws(n, rng)
        return None if natural is None else GammaGamma(GammaGammaParams(*natural.T))

    def params_dict(self) -> dict[str, float]:
        return asdict(self.params)

    def expected_average_value(self, frequency: Any, monetary_value: Any) -> np.ndarray:
        if self.limit is not None:
            return self.limit.expected_average_value(frequency, monetary_value)
        return expected_average_value(self.params, frequency, monetary_value)
