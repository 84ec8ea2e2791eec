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
Customers sharing (x, t_x, T, m) share a predictive distribution and are simulated once; the
draws run in chunks of about ``CHUNK_CELLS`` (customer, draw) cells, vectorised numpy, seeded.
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


def _gamma_rows(rng: np.random.Generator, shape: np.ndarray, rate: np.ndarray) -> np.ndarray:
    """Gamma(shape, rate) draws; an infinite shape stands for the known value ``rate``."""
    out = np.array(rate, dtype=float)
    finite = np.isfinite(shape)
    out[finite] = rng.standard_gamma(shape[finite]) / rate[finite]
    return out


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
    distribution; only those cells go on: lambda | T1 ~ Gamma(k + 1, beta + T1), then
    exponential gaps, the dropout test after each purchase (BG/NBD), the remaining lifetime
    (Pareto/NBD, Lomax: drawn once), the spend.
    """
    draws, pairs = len(which), int(which.max()) + 1
    rows = len(post["alive"]) // pairs
    horizon = month * len(discount)
    buy = _first_purchase(post, horizon).reshape(rows, pairs)[:, which].ravel()
    u = rng.random(rows * draws)
    cell = np.flatnonzero(u < buy)  # cells with a purchase, in increasing order
    key = (cell // draws) * pairs + which[cell % draws]
    shape, rate = post["rate_shape"][key], post["rate_rate"][key]
    share = u[cell] / buy[cell]  # uniform on (0, 1): T1's quantile given T1 <= horizon
    known = ~np.isfinite(shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        lomax_tail = -np.log1p(-share * -np.expm1(-shape * np.log1p(horizon / rate)))
        clock = np.where(
            known,
            -np.log1p(share * np.expm1(-rate * horizon)) / rate,
            rate * np.expm1(lomax_tail / shape),
        )
    rate = _gamma_rows(rng, shape + 1, rate + np.where(known, 0.0, clock))
    end = np.full(len(cell), horizon)
    dies = post["death_shape"][key] > 0
    if dies.any():
        s, beta = post["death_shape"][key][dies], post["death_rate"][key][dies]
        end[dies] = np.minimum(horizon, beta * np.expm1(-np.log(rng.random(len(s))) / s))
    slot = np.arange(len(cell))
    dropout = np.zeros(len(cell))
    drops = post["drop_a"][key] > 0
    if drops.any():
        dropout[drops] = rng.beta(post["drop_a"][key][drops], post["drop_b"][key][drops])
    who: list[np.ndarray] = []
    when: list[np.ndarray] = []
    while len(slot):
        inside = clock <= end
        slot, clock, rate, end, dropout = (a[inside] for a in (slot, clock, rate, end, dropout))
        who.append(slot)
        when.append(np.ceil(clock / month).astype(np.int64))
        stays = rng.random(len(slot)) >= dropout
        slot, clock, rate, end, dropout = (a[stays] for a in (slot, clock, rate, end, dropout))
        clock = clock + rng.standard_exponential(len(slot)) / rate
    purchases = np.concatenate(who) if who else np.zeros(0, dtype=np.int64)
    mean = np.array(post["spend_a"][key], dtype=float)
    spend_b = post["spend_b"][key]
    drawn = np.isfinite(spend_b)
    mean[drawn] /= rng.standard_gamma(spend_b[drawn])
    value = mean[purchases]
    shape = post["spend_p"][key][purchases]
    finite = np.isfinite(shape)
    value[finite] *= rng.standard_gamma(shape[finite]) / shape[finite]
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


def _simulated_blocks(
    summary: pd.DataFrame,
    pairs: Sequence[Any],
    settings: LtvConfig,
    draws: int,
    seed: int,
    chunk_cells: int,
    month_length: float | None,
) -> Iterator[tuple[slice, np.ndarray]]:
    """The simulation of ``prediction_intervals`` block by block: (slice of the distinct
    (x, t_x, T, m) rows, as ``_customer_rows`` numbers them, their values (rows, draws))."""
    fitted = model_pairs(pairs)
    if not fitted:
        raise ValueError("prediction_intervals needs at least one (purchase, spend) model pair")
    rng = np.random.default_rng(seed)
    month = periods_per_month(settings.time_unit) if month_length is None else month_length
    horizon = int(settings.horizon_months)
    discount = (1 + settings.monthly_discount_rate) ** -np.arange(1, horizon + 1, dtype=float)
    discount = discount * settings.gross_margin
    (ux, ut, uT, um), _, _ = distinct_rows(
        summary["frequency"], summary["recency"], summary["T"], summary["monetary_value"]
    )
    rows = len(ux)
    which = np.arange(draws) % len(fitted)
    step = max(1, chunk_cells // draws)
    for start in range(0, rows, step):
        block = slice(start, min(rows, start + step))
        post = _block_posterior(fitted, (ux[block], ut[block], uT[block], um[block]))
        yield block, _simulate_block(rng, post, which, month, discount)


def _customer_rows(summary: pd.DataFrame) -> tuple[np.ndarray, int]:
    """Each customer's distinct (x, t_x, T, m) row and the number of such rows."""
    (ux, _, _, _), inverse, _ = distinct_rows(
        summary["frequency"], summary["recency"], summary["T"], summary["monetary_value"]
    )
    return inverse, len(ux)


def prediction_intervals(
    summary: pd.DataFrame,
    pairs: Sequence[Any],
    settings: LtvConfig,
    draws: int = PREDICTION_DRAWS,
    level: float = PREDICTION_LEVEL,
    seed: int = 42,
    chunk_cells: int = CHUNK_CELLS,
    month_length: float | None = None,
) -> PredictionIntervals:
    """Simulate each customer's discounted margin over ``settings.horizon_months`` ``draws``
    times (see the module docstring) and summarise it: central ``level`` interval, mean, sd.

    ``pairs``: (purchase model, spend model) pairs (or ``FittedModels``): one pair for the point
    fit, or the refit bootstrap's replicates (draw j uses pair j mod len(pairs)).
    """
    inverse, rows = _customer_rows(summary)
    tail = (1 - level) / 2
    low, high, mean, sd = (np.empty(rows) for _ in range(4))
    blocks = _simulated_blocks(summary, pairs, settings, draws, seed, chunk_cells, month_length)
    for block, values in blocks:
        low[block], high[block] = np.quantile(values, [tail, 1 - tail], axis=1)
        mean[block] = values.mean(axis=1)
        sd[block] = values.std(axis=1, ddof=1) if draws > 1 else 0.0
    return PredictionIntervals(
        low=low[inverse],
        high=high[inverse],
        mean=mean[inverse],
        sd=sd[inverse],
        draws=draws,
        level=level,
        model_pairs=len(model_pairs(pairs)),
        simulated_rows=rows,
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
    inverse, _ = _customer_rows(summary)
    realised = np.asarray(realised, dtype=float)
    below, at_or_below = np.empty(len(realised)), np.empty(len(realised))
    order = np.argsort(inverse, kind="stable")
    bounds = np.searchsorted(inverse[order], np.arange(inverse.max() + 2))
    blocks = _simulated_blocks(summary, pairs, settings, draws, seed, chunk_cells, None)
    for block, values in blocks:
        members = order[bounds[block.start] : bounds[block.stop]]
        sims = values[inverse[members] - block.start]
        y = realised[members][:, None]
        below[members] = (sims < y).mean(axis=1)
        at_or_below[members] = (sims <= y).mean(axis=1)
    u = np.random.default_rng(seed + 1).random(len(realised))
    return below + u * (at_or_below - below)
