"""Per-customer prediction intervals of the value over the horizon, simulated from the models.

``customer_ltv`` gives each customer's *expected* discounted margin over the horizon. What the
customer will actually bring is one draw of a very skewed quantity (most buy nothing, a few buy
a lot), and its spread is what ``prediction_intervals`` simulates: for each draw, from the
posterior of the customer's own parameters given their history (x, t_x, T, mean spend) under
the fitted models,

- **BG/NBD**: alive at T with probability P(alive | x, t_x, T); if alive, lambda ~ Gamma(r + x,
  alpha + T) and p ~ Beta(a, b + x) (independent given alive); purchases are a Poisson process
  of rate lambda and the customer drops out with probability p after each purchase;
- **Pareto/NBD**: alive with P(alive); if alive, lambda ~ Gamma(r + x, alpha + T) and
  mu ~ Gamma(s, beta + T); the remaining lifetime is exponential of rate mu (memoryless);
- their limits: the **NBD** (no dropout) and the **Poisson** (one common rate);
- **Gamma-Gamma** spend: nu | x, m ~ Gamma(p x + q, v + x m) (rate v, as ``gamma_gamma``;
  x = 0 gives the prior Gamma(q, v)), each purchase's value ~ Gamma(p, nu); its limits: one
  common nu (homogeneous spend) and a constant amount per customer (m for a repeat customer,
  s / Gamma(q) drawn once for one without repeat purchases).

A purchase at time tau after T (in time units) falls in month ceil(tau / month) and is
discounted by (1 + d) ** -month, then multiplied by the gross margin: exactly ``value``'s
arithmetic, so the simulated mean is ``customer_ltv``'s expected LTV up to Monte-Carlo error.

With a sequence of refitted model pairs (the refit bootstrap's replicates) draw ``j`` uses pair
``j mod len(pairs)``: the interval is then the full predictive one (parameters + process).
Customers sharing a history share a predictive distribution and are simulated once: with one
model pair a history is (x, t_x, T) and the customer's mean spend only scales it (``_Histories``),
with several it is (x, t_x, T, m). The draws run in chunks of about ``CHUNK_CELLS`` (history,
draw) cells, vectorised numpy, seeded.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from insightos_utils.config import LtvConfig
from insightos_utils.ltv.models.bgnbd import BgNbd, Nbd, Poisson
from insightos_utils.ltv.models.gamma_gamma import ConstantSpend, GammaGamma, HomogeneousSpend
from insightos_utils.ltv.models.paretonbd import ParetoNbd
from insightos_utils.ltv.rfm import distinct_rows
from insightos_utils.ltv.units import periods_per_month

PREDICTION_DRAWS = 200
# Past CELL_BUDGET / PREDICTION_DRAWS distinct histories (200,000) the default draws shrink to
# keep at most CELL_BUDGET simulated (history, draw) cells, never below MIN_DRAWS: a company of
# a million customers stays within seconds (benchmarks/bench_ltv.py, stage ltv_chain).
MIN_DRAWS = 100
CELL_BUDGET = 40_000_000
PREDICTION_LEVEL = 0.80
CHUNK_CELLS = 1_000_000
MEANING = (
    "ltv_low_80 / ltv_high_80 in customer_ltv.csv: the central 80% prediction interval of the "
    "customer's realised discounted margin over the horizon, simulated from the fitted models "
    "given the customer's history ({draws} draws: alive or not, their purchase and dropout "
    "rates from the posterior, the purchases as the model's process, each purchase's value from "
    "the spend posterior){parameters}"
)

# the posterior of one model pair on a block of rows: name -> (rows,) array
Posterior = dict[str, np.ndarray]


@dataclass
class PredictionIntervals:
    """Per customer: the central ``level`` interval, mean and standard deviation of the
    simulated discounted margin over the horizon; how many draws and model pairs made them."""

    low: np.ndarray
    high: np.ndarray
    mean: np.ndarray
    sd: np.ndarray
    draws: int
    level: float
    model_pairs: int
    simulated_rows: int

    def meaning(self) -> str:
        parameters = (
            f"; each draw uses one of {self.model_pairs} refitted model pairs, so the interval "
            "carries the parameters' uncertainty too"
            if self.model_pairs > 1
            else "; the fitted parameters are held at their point estimates"
        )
        return MEANING.format(draws=self.draws, parameters=parameters)


def model_pairs(items: Sequence[Any]) -> list[tuple[Any, Any]]:
    """(purchase model, spend model) pairs from pairs or from objects with ``purchases`` and
    ``gamma_gamma`` (``analysis.FittedModels``); None entries (failed refits) are dropped."""
    pairs = []
    for item in items:
        if item is None:
            continue
        if hasattr(item, "purchases") and hasattr(item, "gamma_gamma"):
            pairs.append((item.purchases, item.gamma_gamma))
        else:
            purchase, spend = item
            pairs.append((purchase, spend))
    return pairs


def _purchase_posterior(model: Any, x: np.ndarray, t_x: np.ndarray, age: np.ndarray) -> Posterior:
    """P(alive), the purchase rate's Gamma (shape, rate; shape inf: ``rate`` is the known
    rate itself), the dropout Beta after each purchase (a = 0: none) and the death rate's Gamma
    (shape 0: none)."""
    n = len(x)
    zeros, ones = np.zeros(n), np.ones(n)
    alive = np.broadcast_to(np.asarray(model.prob_alive(x, t_x, age), dtype=float), (n,))
    target = model
    while getattr(target, "limit", None) is not None:
        target = target.limit
    post: Posterior = {
        "alive": np.clip(alive, 0.0, 1.0),
        "drop_a": zeros,
        "drop_b": ones,
        "death_shape": zeros,
        "death_rate": ones,
    }
    if isinstance(target, Poisson):
        post["rate_shape"] = np.full(n, math.inf)
        post["rate_rate"] = np.full(n, float(target.rate))
        return post
    if isinstance(target, Nbd):
        r, alpha = float(target.r), float(target.alpha)
    elif isinstance(target, BgNbd | ParetoNbd):
        r, alpha = float(target.params.r), float(target.params.alpha)
    else:
        raise TypeError(f"no predictive simulation for purchase model {type(target).__name__}")
    post["rate_shape"] = r + x
    post["rate_rate"] = alpha + age
    if isinstance(target, BgNbd):
        post["drop_a"] = np.full(n, float(target.params.a))
        post["drop_b"] = float(target.params.b) + x
    elif isinstance(target, ParetoNbd):
        post["death_shape"] = np.full(n, float(target.params.s))
        post["death_rate"] = float(target.params.beta) + age
    return post


def _spend_posterior(model: Any, x: np.ndarray, m: np.ndarray) -> Posterior:
    """Per purchase value = customer mean * Gamma(p) / p (p inf: the mean itself); the
    customer's mean = spend_a / Gamma(spend_b) (spend_b inf: spend_a itself)."""
    n = len(x)
    target = model.limit if getattr(model, "limit", None) is not None else model
    if isinstance(target, GammaGamma):
        p, q, v = target.params.p, target.params.q, target.params.v
        return {
            "spend_p": np.full(n, float(p)),
            "spend_a": p * (v + x * m),
            "spend_b": p * x + q,
        }
    if isinstance(target, HomogeneousSpend):
        return {
            "spend_p": np.full(n, float(target.p)),
            "spend_a": np.full(n, float(target.mean_value)),
            "spend_b": np.full(n, math.inf),
        }
    if isinstance(target, ConstantSpend):
        repeat = x > 0
        return {
            "spend_p": np.full(n, math.inf),
            "spend_a": np.where(repeat, m, float(target.s)),
            "spend_b": np.where(repeat, math.inf, float(target.q)),
        }
    raise TypeError(f"no predictive simulation for spend model {type(target).__name__}")


def _first_purchase(post: Posterior, horizon: float) -> np.ndarray:
    """P(a purchase within the horizon, death aside) = P(alive) * P(first arrival <= horizon),
    the first arrival of a Poisson process whose rate is Gamma(k, beta) being Lomax:
    P(T1 > t) = (beta / (beta + t)) ** k (exp(-rate t) for a known rate)."""
    shape, rate = post["rate_shape"], post["rate_rate"]
    with np.errstate(divide="ignore", invalid="ignore"):
        lomax = -np.expm1(-shape * np.log1p(horizon / rate))
    known = -np.expm1(-rate * horizon)
    return post["alive"] * np.where(np.isfinite(shape), lomax, known)


def _next_gaps(
    rng: np.random.Generator, shape: np.ndarray, scale: np.ndarray, known: np.ndarray
) -> np.ndarray:
    """The time to each cell's next purchase, the rate integrated out: after n purchases up
    to time tau the rate is Gamma(k + n, beta + tau), so the gap is Lomax, P(G > g) =
    (scale / (scale + g)) ** shape with shape = k + n, scale = beta + tau; where the rate is
    known (``known``, the Poisson limit; ``scale`` is then the rate) it is exponential."""
    with np.errstate(divide="ignore", invalid="ignore"):
        gaps = scale * np.expm1(rng.standard_exponential(len(shape)) / shape)
    if known.any():
        gaps[known] = rng.standard_exponential(int(known.sum())) / scale[known]
    return gaps


def _simulate_block(
    rng: np.random.Generator,
    post: Posterior,
    which: np.ndarray,
    month: float,
    discount: np.ndarray,
) -> np.ndarray:
    """Discounted values (rows, draws) of a block: ``post`` holds each (row, pair) posterior
    flattened row-major over ``pairs = max(which) + 1`` columns; draw j uses pair which[j].

    One uniform per cell decides whether the customer is alive and buys within the horizon
    (``_first_purchase``) and, when so, gives the first arrival T1 by inverting its
    distribution; only those cells go on. The purchase rate and the dropout probability are
    integrated out exactly (their posteriors are updated as the simulated purchases come):
    the gaps are Lomax (``_next_gaps``), and after the j-th future purchase a BG/NBD customer
    drops out with probability a / (a + b + x + j - 1), the mean of p ~ Beta(a, b + x + j - 1)
    given the j - 1 purchases survived. The Pareto/NBD remaining lifetime (rate
    mu ~ Gamma(s, beta + T) integrated out: Lomax) is drawn once; then the spend.
    """
    draws, pairs = len(which), int(which.max()) + 1
    rows = len(post["alive"]) // pairs
    horizon = month * len(discount)
    buy = _first_purchase(post, horizon).reshape(rows, pairs)[:, which].ravel()
    u = rng.random(rows * draws)
    cell = np.flatnonzero(u < buy)  # cells with a purchase, in increasing order
    key = (cell // draws) * pairs + which[cell % draws]
    shape, scale = post["rate_shape"][key], post["rate_rate"][key]
    share = u[cell] / buy[cell]  # uniform on (0, 1): T1's quantile given T1 <= horizon
    known = ~np.isfinite(shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        lomax_tail = -np.log1p(-share * -np.expm1(-shape * np.log1p(horizon / scale)))
        clock = scale * np.expm1(lomax_tail / shape)
    if known.any():
        rate = scale[known]
        clock[known] = -np.log1p(share[known] * np.expm1(-rate * horizon)) / rate
    end = np.full(len(cell), horizon)
    dies = post["death_shape"][key] > 0
    if dies.any():
        s, beta = post["death_shape"][key][dies], post["death_rate"][key][dies]
        end[dies] = np.minimum(horizon, beta * np.expm1(rng.standard_exponential(len(s)) / s))
    slot = np.arange(len(cell))
    drop_a, drop_b = post["drop_a"][key], post["drop_b"][key]
    shape = shape + 1  # one arrival seen (at T1); the scale beta + tau moves with the clock
    state = (slot, clock, shape, scale, end, drop_a, drop_b, known)
    who: list[np.ndarray] = []
    when: list[np.ndarray] = []
    while len(state[0]):
        inside = state[1] <= state[4]
        state = tuple(a[inside] for a in state)
        slot, clock, shape, scale, end, drop_a, drop_b, known = state
        who.append(slot)
        when.append(np.ceil(clock / month).astype(np.int64))
        stays = rng.random(len(slot)) * (drop_a + drop_b) >= drop_a
        state = tuple(a[stays] for a in state)
        slot, clock, shape, scale, end, drop_a, drop_b, known = state
        gaps = _next_gaps(rng, shape, np.where(known, scale, scale + clock), known)
        state = (slot, clock + gaps, shape + 1, scale, end, drop_a, drop_b + 1, known)
    purchases = np.concatenate(who) if who else np.zeros(0, dtype=np.int64)
    mean = np.array(post["spend_a"][key], dtype=float)
    spend_b = post["spend_b"][key]
    drawn = np.isfinite(spend_b)
    mean[drawn] /= rng.standard_gamma(spend_b[drawn])
    value = mean[purchases]
    spend_p = post["spend_p"][key][purchases]
    for p in np.unique(spend_p[np.isfinite(spend_p)]):  # one shape per model pair: scalar draws
        same = spend_p == p
        value[same] *= rng.standard_gamma(p, int(same.sum())) / p
    months = np.clip(np.concatenate(when) if when else purchases, 1, len(discount))
    totals = np.bincount(purchases, weights=value * discount[months - 1], minlength=len(cell))
    values = np.zeros(rows * draws)
    values[cell] = totals
    return values.reshape(rows, draws)


def _block_posterior(
    pairs: list[tuple[Any, Any]],
    columns: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
) -> Posterior:
    """Every (row, pair) posterior of a block, flattened row-major (rows, pairs)."""
    x, t_x, age, m = columns
    per_pair = [
        {**_purchase_posterior(purchase, x, t_x, age), **_spend_posterior(spend, x, m)}
        for purchase, spend in pairs
    ]
    if len(per_pair) == 1:
        return per_pair[0]
    return {k: np.column_stack([post[k] for post in per_pair]).ravel() for k in per_pair[0]}


@dataclass
class _Histories:
    """The distinct histories simulated, each customer's one and the customer's spend scale.

    With one model pair a customer's value is spend_a(x, m) times a variable that depends on
    (x, t_x, T) only: the customer's mean spend per purchase is spend_a / Gamma(spend_b) and
    spend_b, the purchases and their Gamma(p) / p factors depend on x alone. So the distinct
    (x, t_x, T) rows are simulated with spend_a = 1 and each customer's quantiles, mean and sd
    are that variable's times their spend_a (> 0). With several pairs spend_a differs between
    draws, and the distinct (x, t_x, T, m) rows are simulated as they are (scale 1)."""

    columns: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
    inverse: np.ndarray
    scale: np.ndarray
    unit_spend: bool

    @property
    def rows(self) -> int:
        return len(self.columns[0])


def _histories(summary: pd.DataFrame, fitted: list[tuple[Any, Any]]) -> _Histories:
    columns = ("frequency", "recency", "T", "monetary_value")
    x, t_x, age, m = (summary[c].to_numpy(float) for c in columns)
    if len(fitted) == 1:
        (ux, ut, uT), inverse, _ = distinct_rows(x, t_x, age)
        scale = np.asarray(_spend_posterior(fitted[0][1], x, m)["spend_a"], dtype=float)
        return _Histories((ux, ut, uT, np.zeros(len(ux))), inverse, scale, True)
    (ux, ut, uT, um), inverse, _ = distinct_rows(x, t_x, age, m)
    return _Histories((ux, ut, uT, um), inverse, np.ones(len(x)), False)


def _simulated_blocks(
    histories: _Histories,
    fitted: list[tuple[Any, Any]],
    settings: LtvConfig,
    draws: int,
    seed: int,
    chunk_cells: int,
    month_length: float | None,
) -> Iterator[tuple[slice, np.ndarray]]:
    """The simulation block by block: (slice of ``histories``' rows, their values (rows,
    draws), per unit of spend scale where ``histories.unit_spend``)."""
    rng = np.random.default_rng(seed)
    month = periods_per_month(settings.time_unit) if month_length is None else month_length
    horizon = int(settings.horizon_months)
    discount = (1 + settings.monthly_discount_rate) ** -np.arange(1, horizon + 1, dtype=float)
    discount = discount * settings.gross_margin
    ux, ut, uT, um = histories.columns
    which = np.arange(draws) % len(fitted)
    step = max(1, chunk_cells // draws)
    for start in range(0, histories.rows, step):
        block = slice(start, min(histories.rows, start + step))
        post = _block_posterior(fitted, (ux[block], ut[block], uT[block], um[block]))
        if histories.unit_spend:
            post["spend_a"] = np.ones(len(post["spend_a"]))
        yield block, _simulate_block(rng, post, which, month, discount)


def default_draws(rows: int) -> int:
    """Draws per customer for ``rows`` distinct histories: ``PREDICTION_DRAWS``, fewer past
    the ``CELL_BUDGET`` (never below ``MIN_DRAWS``)."""
    return int(min(PREDICTION_DRAWS, max(MIN_DRAWS, CELL_BUDGET // max(rows, 1))))


def _fitted_pairs(pairs: Sequence[Any]) -> list[tuple[Any, Any]]:
    fitted = model_pairs(pairs)
    if not fitted:
        raise ValueError("prediction_intervals needs at least one (purchase, spend) model pair")
    return fitted


def prediction_intervals(
    summary: pd.DataFrame,
    pairs: Sequence[Any],
    settings: LtvConfig,
    draws: int | None = None,
    level: float = PREDICTION_LEVEL,
    seed: int = 42,
    chunk_cells: int = CHUNK_CELLS,
    month_length: float | None = None,
) -> PredictionIntervals:
    """Simulate each customer's discounted margin over ``settings.horizon_months`` ``draws``
    times (default ``default_draws``; see the module docstring) and summarise it: central
    ``level`` interval, mean, sd.

    ``pairs``: (purchase model, spend model) pairs (or ``FittedModels``): one pair for the point
    fit, or the refit bootstrap's replicates (draw j uses pair j mod len(pairs)).
    """
    fitted = _fitted_pairs(pairs)
    histories = _histories(summary, fitted)
    draws = default_draws(histories.rows) if draws is None else draws
    tail = (1 - level) / 2
    low, high, mean, sd = (np.empty(histories.rows) for _ in range(4))
    blocks = _simulated_blocks(histories, fitted, settings, draws, seed, chunk_cells, month_length)
    for block, values in blocks:
        low[block], high[block] = np.quantile(values, [tail, 1 - tail], axis=1)
        mean[block] = values.mean(axis=1)
        sd[block] = values.std(axis=1, ddof=1) if draws > 1 else 0.0
    scale, inverse = histories.scale, histories.inverse
    return PredictionIntervals(
        low=scale * low[inverse],
        high=scale * high[inverse],
        mean=scale * mean[inverse],
        sd=scale * sd[inverse],
        draws=draws,
        level=level,
        model_pairs=len(fitted),
        simulated_rows=histories.rows,
    )


def randomised_pit(
    summary: pd.DataFrame,
    pairs: Sequence[Any],
    settings: LtvConfig,
    realised: np.ndarray,
    draws: int = PREDICTION_DRAWS,
    seed: int = 42,
    chunk_cells: int = CHUNK_CELLS,
) -> np.ndarray:
    """The randomised probability integral transform of each customer's ``realised`` value
    under the simulated predictive distribution: F(y-) + V (F(y) - F(y-)), V uniform. For a
    calibrated predictive it is uniform on (0, 1), atoms (most customers' zero) included, so
    the share in (0.1, 0.9) is 80%; a closed central interval [q10, q90] covers at least that
    (an atom at an end counts whole)."""
    fitted = _fitted_pairs(pairs)
    histories = _histories(summary, fitted)
    inverse = histories.inverse
    realised = np.asarray(realised, dtype=float)
    below, at_or_below = np.empty(len(realised)), np.empty(len(realised))
    order = np.argsort(inverse, kind="stable")
    bounds = np.searchsorted(inverse[order], np.arange(histories.rows + 1))
    blocks = _simulated_blocks(histories, fitted, settings, draws, seed, chunk_cells, None)
    for block, values in blocks:
        members = order[bounds[block.start] : bounds[block.stop]]
        sims = values[inverse[members] - block.start]
        y = (realised[members] / histories.scale[members])[:, None]
        below[members] = (sims < y).mean(axis=1)
        at_or_below[members] = (sims <= y).mean(axis=1)
    u = np.random.default_rng(seed + 1).random(len(realised))
    return below + u * (at_or_below - below)
