"""What a just-acquired customer is worth, by acquisition campaign (``new_customer_value.csv``).

For a lead that converts today the question is not what existing customers are worth (their
histories are known) but what a *new* customer of that campaign is expected to bring over the
horizon: the first purchase (at acquisition, undiscounted) plus the discounted margin of the
repeat purchases a customer with no history yet is expected to make (``value.new_customer_ltv``).

Each campaign with at least ``min_campaign_customers`` customers and ``min_repeat_customers``
repeat buyers gets its own fit of the chosen purchase model and Gamma-Gamma (campaigns differ in how often their
customers come back); the others use the overall fit and the overall value (``fallback``), as
does the ``(all)`` row. The interval combines the sampling spread of the campaign's mean first
purchase (bootstrap) with the fitted models' parameter uncertainty (draws from the asymptotic
normal distribution of the fit); where a fit's parameters are not pinned down (a singular
Hessian, or standard errors too wide for a normal approximation) only the first purchase varies,
and ``interval`` says so.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from insightos_utils.config import LtvConfig
from insightos_utils.ltv.analysis import FittedModels, fit_models
from insightos_utils.ltv.economics import bootstrap_means, percentile_interval
from insightos_utils.ltv.models.base import FitError
from insightos_utils.ltv.value import new_customer_ltv

if TYPE_CHECKING:
    from insightos_utils.ltv.intervals import RefitDraws

ALL_CAMPAIGNS = "(all)"
NEW_CUSTOMER_VALUE_FILE = "new_customer_value.csv"
NEW_CUSTOMER_VALUE_COLUMNS = [
    "campaign",
    "customers",
    "value",
    "value_low",
    "value_high",
    "fallback",
    "basis",
    "interval",
    "interval_method",
]


@dataclass(frozen=True)
class NewCustomerValue:
    """One row of the table: the value, its interval, and what it rests on."""

    value: float
    low: float
    high: float
    interval: str
    method: str = "asymptotic"


def value_of_new_customer(
    first_purchases: np.ndarray,
    models: FittedModels,
    settings: LtvConfig,
    rng: np.random.Generator,
) -> NewCustomerValue:
    """Mean first purchase plus the repeat value of a customer with no history, with interval."""
    margin = settings.gross_margin
    repeat = float(new_customer_ltv(models.purchases, models.gamma_gamma, settings)[0])
    value = margin * float(np.mean(first_purchases)) + repeat
    samples = max(int(settings.bootstrap_samples), 1)
    first_draws = margin * bootstrap_means(first_purchases, samples, rng)
    purchases = models.purchases.draws(samples, rng)
    spend = models.gamma_gamma.draws(samples, rng)
    if purchases is None or spend is None:
        draws = first_draws + repeat
        interval = "first purchase only (a model's parameters are not pinned down by the data)"
    else:
        draws = first_draws + new_customer_ltv(purchases, spend, settings)
        interval = "first purchase (bootstrap) and model parameters (asymptotic normal draws)"
    low, high = percentile_interval(draws)
    return NewCustomerValue(value, low, high, interval)


def new_customer_value(
    summary: pd.DataFrame,
    campaigns: pd.Series,
    overall: FittedModels,
    settings: LtvConfig,
    seed: int = 42,
    refit: RefitDraws | None = None,
) -> pd.DataFrame:
    """The table ``new_customer_value.csv``: one row per campaign with customers, and ``(all)``.

    ``summary`` is the RFM summary the customers were valued on (with ``first_purchase_value``),
    ``campaigns`` each of its customers' acquisition campaign (aligned with its rows).
    """
    rng = np.random.default_rng(seed)
    first = summary["first_purchase_value"].to_numpy(float)
    names = campaigns.to_numpy(str)
    everyone = value_of_new_customer(first, overall, settings, rng)
    if refit is not None and refit.samples:
        ok = np.isfinite(refit.new_customer_repeat)
        weights = refit.weights[ok]
        first_means = (weights @ first) / weights.sum(axis=1)
        low, high = percentile_interval(
            settings.gross_margin * first_means + refit.new_customer_repeat[ok]
        )
        everyone = replace(
            everyone,
            low=low,
            high=high,
            interval="customers resampled, both models refitted each time",
            method="refit",
        )
    rows = [_row(ALL_CAMPAIGNS, len(first), everyone, False, "overall fit, every customer")]
    for name in sorted(set(names)):
        members = names == name
        count = int(members.sum())
        repeaters = int((summary["frequency"].to_numpy()[members] > 0).sum())
        basis = None
        if count < settings.min_campaign_customers:
            basis = (
                f"overall value: {count} customer(s), fewer than min_campaign_customers "
                f"= {settings.min_campaign_customers}"
            )
        elif repeaters < settings.min_repeat_customers:
            basis = (
                f"overall value: {repeaters} repeat buyer(s), fewer than "
                f"min_repeat_customers = {settings.min_repeat_customers}"
            )
        if basis is not None:
            rows.append(_row(name, count, everyone, True, basis))
            continue
        try:
            own = fit_models(summary[members], settings, overall.model)
        except FitError as error:
            rows.append(_row(name, count, everyone, True, f"overall value: {error}"))
            continue
        found = value_of_new_customer(first[members], own, settings, rng)
        rows.append(_row(name, count, found, False, "campaign's own fit"))
    return pd.DataFrame(rows, columns=NEW_CUSTOMER_VALUE_COLUMNS)


def _row(
    campaign: str, customers: int, value: NewCustomerValue, fallback: bool, basis: str
) -> dict[str, object]:
    return {
        "campaign": campaign,
        "customers": customers,
        "value": value.value,
        "value_low": value.low,
        "value_high": value.high,
        "fallback": fallback,
        "basis": basis,
        "interval": value.interval,
        "interval_method": value.method,
    }
