"""Simulated companies with known parameters, for checks and benchmarks (never for results).

``simulate_transactions`` draws a BG/NBD + Gamma-Gamma world, ``simulate_paretonbd`` a
Pareto/NBD + Gamma-Gamma one; ``simulate_subscription``
draws a subscription-like company (regular intervals, no churn, similar amounts), the shape
where both models' optima lie on a boundary.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from insightos_utils.contract import parse_timestamp
from insightos_utils.ltv.models.bgnbd import BgNbdParams
from insightos_utils.ltv.models.gamma_gamma import GammaGammaParams
from insightos_utils.ltv.models.paretonbd import ParetoNbdParams
from insightos_utils.ltv.units import unit_days


def simulate_transactions(
    n_customers: int,
    bgnbd: BgNbdParams,
    gamma_gamma: GammaGammaParams,
    start: str | pd.Timestamp = "2024-01-01",
    acquisition_days: int = 84,
    end: str | pd.Timestamp = "2025-06-30",
    time_unit: str = "W",
    seed: int = 0,
    id_prefix: str = "c",
) -> pd.DataFrame:
    """Contract transactions drawn from a BG/NBD + Gamma-Gamma world (for checks and benchmarks).

    Customers make their first purchase uniformly over ``acquisition_days`` from ``start``, then
    buy at Poisson rate lambda ~ Gamma(r, alpha) per ``time_unit`` and drop out after each
    repeat purchase with probability p ~ Beta(a, b); purchase values are Gamma(p, nu) with
    nu ~ Gamma(q, v). Vectorised over customers, one loop step per purchase number.
    """
    rng = np.random.default_rng(seed)
    length_days = unit_days(time_unit)
    start, end = parse_timestamp(start), parse_timestamp(end)
    rate = rng.gamma(bgnbd.r, 1 / bgnbd.alpha, n_customers)
    dropout = rng.beta(bgnbd.a, bgnbd.b, n_customers)
    spend_rate = rng.gamma(gamma_gamma.q, 1 / gamma_gamma.v, n_customers)
    first_days = rng.uniform(0, acquisition_days, n_customers)
    span_units = ((end - start) / pd.Timedelta(days=1) - first_days) / length_days
    customers = [np.arange(n_customers)]
    offsets = [first_days]
    clock = np.zeros(n_customers)
    active = np.flatnonzero(span_units > 0)
    while len(active):
        clock[active] += rng.exponential(1.0, len(active)) / rate[active]
        active = active[clock[active] <= span_units[active]]
        customers.append(active)
        offsets.append(first_days[active] + clock[active] * length_days)
        active = active[rng.random(len(active)) >= dropout[active]]
    return _as_transactions(rng, customers, offsets, spend_rate, gamma_gamma, start, id_prefix)


def simulate_paretonbd(
    n_customers: int,
    paretonbd: ParetoNbdParams,
    gamma_gamma: GammaGammaParams,
    start: str | pd.Timestamp = "2024-01-01",
    acquisition_days: int = 84,
    end: str | pd.Timestamp = "2025-06-30",
    time_unit: str = "W",
    seed: int = 0,
    id_prefix: str = "p",
) -> pd.DataFrame:
    """Contract transactions drawn from a Pareto/NBD + Gamma-Gamma world: Poisson purchases at
    rate lambda ~ Gamma(r, alpha) per ``time_unit`` during an exponential lifetime of rate
    mu ~ Gamma(s, beta); acquisition and spend as in ``simulate_transactions``."""
    rng = np.random.default_rng(seed)
    length_days = unit_days(time_unit)
    start, end = parse_timestamp(start), parse_timestamp(end)
    rate = rng.gamma(paretonbd.r, 1 / paretonbd.alpha, n_customers)
    lifetime = rng.exponential(1.0, n_customers) / rng.gamma(
        paretonbd.s, 1 / paretonbd.beta, n_customers
    )
    spend_rate = rng.gamma(gamma_gamma.q, 1 / gamma_gamma.v, n_customers)
    first_days = rng.uniform(0, acquisition_days, n_customers)
    span_units = ((end - start) / pd.Timedelta(days=1) - first_days) / length_days
    horizon = np.minimum(span_units, lifetime)
    customers = [np.arange(n_customers)]
    offsets = [first_days]
    clock = np.zeros(n_customers)
    active = np.flatnonzero(horizon > 0)
    while len(active):
        clock[active] += rng.exponential(1.0, len(active)) / rate[active]
        active = active[clock[active] <= horizon[active]]
        customers.append(active)
        offsets.append(first_days[active] + clock[active] * length_days)
    return _as_transactions(rng, customers, offsets, spend_rate, gamma_gamma, start, id_prefix)


def _as_transactions(
    rng: np.random.Generator,
    customers: list[np.ndarray],
    offsets: list[np.ndarray],
    spend_rate: np.ndarray,
    gamma_gamma: GammaGammaParams,
    start: pd.Timestamp,
    id_prefix: str,
) -> pd.DataFrame:
    who = np.concatenate(customers)
    when = np.concatenate(offsets)
    value = rng.gamma(gamma_gamma.p, 1 / spend_rate[who])
    order = np.lexsort((when, who))
    who, when, value = who[order], when[order], value[order]
    stamps = np.datetime64(start.to_datetime64(), "us") + (when * 86_400e6).astype(
        "timedelta64[us]"
    )
    return pd.DataFrame(
        {
            "transaction_id": np.char.add(f"{id_prefix}t", np.arange(len(who)).astype(str)),
            "user_id": np.char.add(id_prefix, who.astype(str)),
            "occurred_at": stamps,
            "amount": np.maximum(np.round(value, 2), 0.01),
        }
    )


def simulate_subscription(
    n_customers: int,
    start: str | pd.Timestamp = "2024-01-01",
    acquisition_days: int = 365,
    end: str | pd.Timestamp = "2025-06-30",
    period_days: float = 30.4375,
    period_spread: float = 0.3,
    jitter_days: float = 2.0,
    price: float = 49.0,
    price_noise: float = 0.03,
    seed: int = 0,
    id_prefix: str = "s",
    churn: tuple[float, float] | None = None,
) -> pd.DataFrame:
    """Contract transactions of a subscription-like company: regular purchases, no churn, similar
    amounts (the shape where BG/NBD's dropout and Gamma-Gamma's spread vanish). With ``churn``
    = (alpha, beta) an sBG world instead: each customer cancels after each period with
    probability theta ~ Beta(alpha, beta) (they pay a Geometric(theta) number of periods).

    Customers sign up uniformly over ``acquisition_days`` from ``start`` and buy every
    ``period`` days until ``end``, never stopping; each customer's period is ``period_days``
    times a lognormal factor of spread ``period_spread`` (plans of different lengths), each
    renewal lands ``jitter_days`` (normal) off its due date; every amount is ``price`` times a
    lognormal factor of spread ``price_noise`` (taxes, currencies, small upgrades), the same
    distribution for everyone.
    """
    rng = np.random.default_rng(seed)
    start, end = parse_timestamp(start), parse_timestamp(end)
    span_days = (end - start) / pd.Timedelta(days=1)
    first = rng.uniform(0, acquisition_days, n_customers)
    period = period_days * np.exp(rng.normal(0.0, period_spread, n_customers))
    renewals = np.floor((span_days - first) / period).astype(np.int64)
    counts = np.maximum(renewals, 0) + 1
    if churn is not None:
        counts = np.minimum(counts, rng.geometric(rng.beta(churn[0], churn[1], n_customers)))
    who = np.repeat(np.arange(n_customers), counts)
    number = np.arange(len(who)) - np.repeat(np.cumsum(counts) - counts, counts)
    when = (
        first[who]
        + number * period[who]
        + np.where(number > 0, rng.normal(0.0, jitter_days, len(who)), 0.0)
    )
    keep = (when >= 0) & (when <= span_days)
    who, when = who[keep], when[keep]
    amount = price * np.exp(rng.normal(0.0, price_noise, len(who)))
    order = np.lexsort((when, who))
    who, when, amount = who[order], when[order], amount[order]
    stamps = np.datetime64(start.to_datetime64(), "us") + (when * 86_400e6).astype(
        "timedelta64[us]"
    )
    return pd.DataFrame(
        {
            "transaction_id": np.char.add(f"{id_prefix}t", np.arange(len(who)).astype(str)),
            "user_id": np.char.add(id_prefix, who.astype(str)),
            "occurred_at": stamps,
            "amount": np.round(amount, 2),
        }
    )
