"""What a just-acquired customer is worth, by acquisition campaign (``new_customer_value.csv``).

For a lead that converts today the question is not what existing customers are worth (their
histories are known) but what a *new* customer of that campaign is expected to bring over the
horizon: the first purchase (at acquisition, undiscounted) plus the discounted margin of the
repeat purchases a customer with no history yet is expected to make (``value.new_customer_ltv``).

Each campaign with at least ``min_campaign_customers`` customers and ``min_repeat_customers``
repeat buyers gets its own fit of the chosen purchase model and Gamma-Gamma (campaigns differ in how often their
customers come back); the others use the overall value and its interval (``fallback``, ``basis``
says why). The ``(all)`` row rests on the overall fit.

**Intervals** (``interval_method``). With ``[ltv] interval_method = "refit"`` a campaign with its
own fit is resampled ``[ltv] refit_samples`` times (its customers, Poisson(1) weights), both
models refitted on each resample (``intervals.refit_new_customer``) and a just-acquired
customer valued again: the resample's mean first purchase plus the refitted models' repeat
value, so sampling and parameter uncertainty together ("refit"); the ``(all)`` row uses the
pipeline's refit bootstrap of every customer. Otherwise, or where fewer than
``MIN_REFIT_SHARE`` of a campaign's resamples could be fitted, the first purchase is
bootstrapped and the parameters drawn from the fit's asymptotic normal distribution
("asymptotic"; where a fit's parameters are not pinned down only the first purchase varies, and
``interval`` says so). ``value_low_sampling`` / ``value_high_sampling`` keep the sampling-only
interval beside (the first purchase resampled, the models held at the fit), as
``campaign_ltv.csv`` does.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from insightos_utils.config import LtvConfig
from insightos_utils.ltv.analysis import FittedModels, fit_models
from insightos_utils.ltv.economics import bootstrap_means, percentile_interval
from insightos_utils.ltv.intervals import RefitDraws, refit_new_customer
from insightos_utils.ltv.models.base import FitError
from insightos_utils.ltv.value import new_customer_ltv

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
    "value_low_sampling",
    "value_high_sampling",
]
MIN_REFIT_SHARE = 0.5


@dataclass(frozen=True)
class NewCustomerValue:
    """One row of the table: the value, its interval, and what it rests on."""

    value: float
    low: float
    high: float
    interval: str
    method: str = "asymptotic"
    sampling_low: float = float("nan")
    sampling_high: float = float("nan")


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
    sampling_low, sampling_high = percentile_interval(first_draws + repeat)
    return NewCustomerValue(value, low, high, interval, "asymptotic", sampling_low, sampling_high)


def refit_interval(
    found: NewCustomerValue,
    summary: pd.DataFrame,
    own: FittedModels,
    settings: LtvConfig,
    seed: int,
) -> NewCustomerValue:
    """``found`` with the interval of a refit bootstrap of ``summary`` (one campaign's
    customers), warm-started from its own fit; unchanged, and saying so, where fewer than
    ``MIN_REFIT_SHARE`` of the resamples could be fitted."""
    samples = int(settings.refit_samples)
    draws, failed = refit_new_customer(
        summary, settings, own.model, seed, samples, (own.purchases, own.gamma_gamma)
    )
    fitted = draws[np.isfinite(draws)]
    if len(fitted) < MIN_REFIT_SHARE * samples:
        return replace(
            found,
            interval=f"{found.interval}; the refit bootstrap could fit only {len(fitted)} of "
            f"{samples} resamples of the campaign's customers",
        )
    low, high = percentile_interval(fitted)
    return replace(
        found,
        low=low,
        high=high,
        interval=f"the campaign's customers resampled, both models refitted each time "
        f"({len(fitted)} refits"
        + (f", {failed} resamples could not be fitted)" if failed else ")"),
        method="refit",
    )


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
    overall_value = replace(everyone, interval=f"the overall value's: {everyone.interval}")
    for index, name in enumerate(sorted(set(names))):
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
            rows.append(_row(name, count, overall_value, True, basis))
            continue
        try:
            own = fit_models(summary[members], settings, overall.model)
        except FitError as error:
            rows.append(_row(name, count, overall_value, True, f"overall value: {error}"))
            continue
        found = value_of_new_customer(first[members], own, settings, rng)
        if settings.interval_method == "refit":
            found = refit_interval(found, summary[members], own, settings, seed + 1 + index)
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
        "value_low_sampling": value.sampling_low,
        "value_high_sampling": value.sampling_high,
    }
