"""Subscription companies: recognising monthly payers, and valuing them with the sBG per
acquisition campaign (``models.sbg``) instead of BG/NBD.

**The rule** (``RULE``): a customer is a *subscriber* when they have at least
``MIN_PAYMENTS`` payment days, the median gap between consecutive ones is ``MONTHLY_DAYS``
(a monthly plan), the gaps vary by at most ``GAP_CV_LIMIT`` (coefficient of variation) and the
amounts by at most ``AMOUNT_CV_LIMIT``. The company is a subscription business when at least
``SUBSCRIBER_SHARE`` of its customers with ``MIN_PAYMENTS`` or more payment days are subscribers,
or when ``[ltv] business = "subscription"`` says so.

**Valuing.** A month is one period. A customer with n payment days has survived n - 1 renewals;
they have *cancelled* when more than ``GRACE_PERIODS`` periods have passed since their last
payment by the as-of moment (they then contribute "left at the end of period n"), otherwise
they are still subscribed (right-censored after n - 1 renewals). Each campaign with at least
``min_campaign_customers`` customers and one cancellation gets its own sBG fit; the others use
the overall fit. A still-subscribed customer's expected payment in month k ahead is
S(n - 1 + k) / S(n - 1), at their mean payment, times the gross margin, discounted at the end of
month k: the same discounted sum as ``value.discounted_margins``. Where nobody has cancelled, the
churn rate is not identified and its limit is used: everyone keeps paying (a boundary, recorded).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from insightos_utils.config import LtvConfig
from insightos_utils.contract import NO_CAMPAIGN
from insightos_utils.ltv.economics import bootstrap_means, percentile_interval
from insightos_utils.ltv.models.base import FitError
from insightos_utils.ltv.models.sbg import (
    SbgParams,
    ShiftedBetaGeometric,
    expected_payments_by_period,
    retention_rates,
    survival,
    survival_rows,
)
from insightos_utils.ltv.units import DAYS_PER_MONTH
from insightos_utils.ltv.value import discount_factors, discounted_margins, margin_column

MIN_PAYMENTS = 3
MONTHLY_DAYS = (25.0, 35.0)
GAP_CV_LIMIT = 0.25
AMOUNT_CV_LIMIT = 0.10
SUBSCRIBER_SHARE = 0.5
GRACE_PERIODS = 1.5
CURVE_PERIODS = 24
RULE = (
    f"a customer is a subscriber when they have at least {MIN_PAYMENTS} payment days, the median "
    f"gap between them is {MONTHLY_DAYS[0]:g}-{MONTHLY_DAYS[1]:g} days (monthly), the gaps vary "
    f"by at most {GAP_CV_LIMIT:.0%} and the amounts by at most {AMOUNT_CV_LIMIT:.0%} "
    "(coefficient of variation); the company is a subscription business when at least "
    f"{SUBSCRIBER_SHARE:.0%} of its customers with {MIN_PAYMENTS}+ payment days are subscribers"
)


@dataclass(frozen=True)
class BusinessKind:
    """What kind of business the transactions show, and why."""

    kind: str  # "subscription" or "non-contractual"
    requested: str
    reason: str
    subscribers: int
    eligible: int
    rule: str = RULE

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def payment_days(transactions: pd.DataFrame) -> pd.DataFrame:
    """One row per customer and UTC payment day: ``user_id``, ``day`` (datetime), ``amount``."""
    stamps = pd.to_datetime(transactions["occurred_at"])
    if isinstance(stamps.dtype, pd.DatetimeTZDtype):
        stamps = stamps.dt.tz_convert("UTC").dt.tz_localize(None)
    days = pd.DataFrame(
        {
            "user_id": transactions["user_id"].astype(str),
            "day": stamps.dt.floor("D"),
            "amount": transactions["amount"].astype(float),
        }
    )
    return days.groupby(["user_id", "day"], as_index=False)["amount"].sum()


def customer_pattern(days: pd.DataFrame) -> pd.DataFrame:
    """Per customer: payment days, first and last, median gap, gap and amount variation."""
    days = days.sort_values(["user_id", "day"])
    gap = days.groupby("user_id")["day"].diff().dt.total_seconds() / 86_400
    days = days.assign(gap=gap)
    grouped = days.groupby("user_id")
    table = grouped.agg(
        payments=("day", "size"),
        first=("day", "min"),
        last=("day", "max"),
        mean_amount=("amount", "mean"),
        amount_sd=("amount", "std"),
        median_gap=("gap", "median"),
        gap_mean=("gap", "mean"),
        gap_sd=("gap", "std"),
    )
    table["amount_cv"] = table["amount_sd"].fillna(0.0) / table["mean_amount"]
    table["gap_cv"] = table["gap_sd"].fillna(0.0) / table["gap_mean"]
    table["subscriber"] = (
        (table["payments"] >= MIN_PAYMENTS)
        & table["median_gap"].between(*MONTHLY_DAYS)
        & (table["gap_cv"] <= GAP_CV_LIMIT)
        & (table["amount_cv"] <= AMOUNT_CV_LIMIT)
    )
    return table


def recognise(pattern: pd.DataFrame, requested: str) -> BusinessKind:
    """The business kind by ``RULE``, or as ``[ltv] business`` declares it."""
    eligible = int((pattern["payments"] >= MIN_PAYMENTS).sum())
    subscribers = int(pattern["subscriber"].sum())
    share = subscribers / eligible if eligible else 0.0
    found = (
        f"{subscribers:,} of the {eligible:,} customers with {MIN_PAYMENTS}+ payment days "
        f"({share:.0%}) pay monthly, at regular intervals and similar amounts"
    )
    if requested != "auto":
        return BusinessKind(
            requested,
            requested,
            f'set by [ltv] business = "{requested}" ({found})',
            subscribers,
            eligible,
        )
    kind = "subscription" if eligible and share >= SUBSCRIBER_SHARE else "non-contractual"
    verdict = (
        "a subscription business: customers are valued with the sBG by campaign"
        if kind == "subscription"
        else "a non-contractual business: customers are valued with the purchase model"
    )
    return BusinessKind(kind, requested, f"{found}: {verdict}", subscribers, eligible)


def renewal_rows(pattern: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """Each customer's sBG row: ``t`` (periods) and ``dead`` (cancelled)."""
    since_last = (as_of - pattern["last"]).dt.total_seconds() / 86_400 / DAYS_PER_MONTH
    dead = since_last > GRACE_PERIODS
    payments = pattern["payments"].to_numpy(float)
    return pd.DataFrame(
        {"t": np.where(dead, payments, payments - 1), "dead": dead.to_numpy()},
        index=pattern.index,
    )


def observed_survival(rows: pd.DataFrame, periods: int) -> list[float | None]:
    """Kaplan-Meier share still subscribed after t renewals, t = 0..periods (None once nobody
    is at risk)."""
    t, dead = rows["t"].to_numpy(float), rows["dead"].to_numpy(bool)
    curve: list[float | None] = [1.0]
    level = 1.0
    for j in range(1, periods + 1):
        at_risk = int(((t >= j) & dead).sum() + ((t >= j) & ~dead).sum())
        if at_risk == 0:
            curve.append(None)
            continue
        level *= 1 - int(((t == j) & dead).sum()) / at_risk
        curve.append(level)
    return curve


def fit_rows(rows: pd.DataFrame, settings: LtvConfig) -> ShiftedBetaGeometric:
    keys = rows.groupby(["t", "dead"]).size().reset_index(name="n")
    weighted = survival_rows(keys["t"].to_numpy(), keys["dead"].to_numpy(float), keys["n"])
    return ShiftedBetaGeometric(penalizer=settings.penalizer).fit(weighted)


def new_subscriber_factor(params: SbgParams | None, settings: LtvConfig) -> float:
    """A just-acquired subscriber's discounted expected payments, the first one (now) included:
    1 + sum_k S(k) / (1 + d)^k over the horizon."""
    horizon = int(settings.horizon_months)
    return 1.0 + float(
        _payments(params, np.zeros(1), horizon)[0] @ discount_factors(settings, horizon)
    )


def refit_factors(
    rows: pd.DataFrame,
    params: SbgParams,
    settings: LtvConfig,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """The refit bootstrap of a group of subscribers: ``[ltv] refit_samples`` Poisson(1)
    resamples of them (each with their observed renewals and cancellation, or censoring), the
    survival counts rebuilt (weights summed onto the distinct (t, dead) rows), the sBG refitted
    (warm from ``params``) and a new subscriber's payment factor recomputed. Returns the factors
    (NaN where nobody in a resample cancelled: the sBG cannot be fitted) and the weights."""
    keys, codes = np.unique(
        np.column_stack([rows["t"].to_numpy(float), rows["dead"].to_numpy(float)]),
        axis=0,
        return_inverse=True,
    )
    codes = codes.reshape(-1)
    samples = int(settings.refit_samples)
    factors = np.full(samples, np.nan)
    weights = rng.poisson(1.0, (samples, len(rows))).astype(float)
    for b in range(samples):
        counts = np.bincount(codes, weights=weights[b], minlength=len(keys))
        try:
            model = ShiftedBetaGeometric(penalizer=settings.penalizer).fit(
                survival_rows(keys[:, 0], keys[:, 1], counts), params, bootstrap=True
            )
        except FitError:
            continue
        factors[b] = new_subscriber_factor(model.params, settings)
    return factors, weights


def _resampled_means(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    totals = weights.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (weights @ values) / totals


@dataclass
class SubscriptionValue:
    """The sBG valuation: the customer table, per-campaign records and new-customer values."""

    customer_ltv: pd.DataFrame
    campaigns: dict[str, Any]
    new_customer_value: pd.DataFrame


def _payments(params: SbgParams | None, renewals: np.ndarray, horizon: int) -> np.ndarray:
    if params is None:  # nobody cancelled: the no-churn limit
        return np.ones((len(renewals), horizon))
    return expected_payments_by_period(params, renewals, horizon)


def value_subscribers(
    pattern: pd.DataFrame,
    campaigns: pd.Series,
    as_of: pd.Timestamp,
    settings: LtvConfig,
    seed: int = 42,
) -> SubscriptionValue:
    """Value every customer with the sBG of their acquisition campaign (or the overall one)."""
    from insightos_utils.ltv.new_customers import (
        ALL_CAMPAIGNS,
        MIN_REFIT_SHARE,
        NEW_CUSTOMER_VALUE_COLUMNS,
    )

    horizon = int(settings.horizon_months)
    rows = renewal_rows(pattern, as_of)
    names = campaigns.reindex(pattern.index).fillna(NO_CAMPAIGN).astype(str).to_numpy()

    def fitted(members: np.ndarray) -> tuple[SbgParams | None, dict[str, Any]]:
        part = rows[members]
        try:
            model = fit_rows(part, settings)
        except FitError as error:
            return None, {"state": "no churn observed", "reason": str(error)}
        record = model.fitted()
        return model.params, {
            "state": "ok",
            "alpha": model.params.alpha,
            "beta": model.params.beta,
            "log_likelihood": record.log_likelihood,
            "standard_errors": record.standard_errors,
            "convergence": record.convergence.as_dict(),
        }

    overall_params, overall_record = fitted(np.ones(len(rows), dtype=bool))
    records: dict[str, Any] = {}
    monthly = np.zeros((len(rows), horizon))
    renewals = rows["t"].to_numpy(float)
    active = ~rows["dead"].to_numpy(bool)
    rng = np.random.default_rng(seed)
    new_rows = []
    price = pattern["mean_amount"].to_numpy(float)
    overall_factors: np.ndarray | None = None
    for name in [ALL_CAMPAIGNS, *sorted(set(names))]:
        members = np.ones(len(rows), dtype=bool) if name == ALL_CAMPAIGNS else names == name
        count = int(members.sum())
        params, record = overall_params, dict(overall_record)
        basis = "overall fit"
        if name != ALL_CAMPAIGNS and count >= settings.min_campaign_customers:
            own, own_record = fitted(members)
            if own is not None or overall_params is None:
                params, record, basis = own, own_record, "campaign's own fit"
        elif name != ALL_CAMPAIGNS:
            basis = (
                f"overall fit: {count} customer(s), fewer than min_campaign_customers = "
                f"{settings.min_campaign_customers}"
            )
        if params is None:
            basis = "no cancellation observed: the sBG's no-churn limit (everyone keeps paying)"
        if name != ALL_CAMPAIGNS:
            index = members & active
            monthly[index] = _payments(params, renewals[index], horizon)
        curve = observed_survival(rows[members], CURVE_PERIODS)
        fitted_curve = (
            [1.0] * (CURVE_PERIODS + 1)
            if params is None
            else survival(params, np.arange(CURVE_PERIODS + 1)).tolist()
        )
        records[name] = {
            **record,
            "customers": count,
            "cancelled": int((~active[members]).sum()),
            "basis": basis,
            "observed_survival": curve,
            "fitted_survival": fitted_curve,
            "retention": (
                [1.0] * CURVE_PERIODS
                if params is None
                else retention_rates(params, np.arange(1, CURVE_PERIODS + 1)).tolist()
            ),
        }
        # a just-acquired subscriber: the first payment now, then S(k) in month k
        first = price[members]
        factor = new_subscriber_factor(params, settings)
        samples = max(int(settings.bootstrap_samples), 1)
        draws = settings.gross_margin * factor * bootstrap_means(first, samples, rng)
        sampling_low, sampling_high = percentile_interval(draws)
        low, high, method = sampling_low, sampling_high, "sampling"
        interval = "mean payment (bootstrap); sBG parameters held at the fit"
        fallback = basis.startswith("overall") and name != ALL_CAMPAIGNS
        if settings.interval_method == "refit" and params is not None:
            if fallback and overall_factors is not None:  # the overall sBG's refits
                factors = overall_factors
                weights = rng.poisson(1.0, (len(factors), count)).astype(float)
                interval = (
                    "the overall sBG refitted on resamples of every subscriber, the campaign's "
                    "mean payment resampled"
                )
            else:
                factors, weights = refit_factors(rows[members], params, settings, rng)
                interval = "subscribers resampled (renewals, cancellations), sBG refitted each time"
                if name == ALL_CAMPAIGNS:
                    overall_factors = factors
            refits = settings.gross_margin * factors * _resampled_means(first, weights)
            kept = refits[np.isfinite(refits)]
            if len(kept) >= MIN_REFIT_SHARE * len(refits):
                low, high = percentile_interval(kept)
                method = "refit"
                interval += f" ({len(kept)} of {len(refits)} resamples fitted)"
            else:
                interval += (
                    f": only {len(kept)} of {len(refits)} resamples could be fitted (nobody "
                    "cancelled in the others), so the interval is the sampling-only one"
                )
        elif params is None:
            interval = "mean payment (bootstrap); no churn observed, so no sBG to refit"
        new_rows.append(
            {
                "campaign": name,
                "customers": count,
                "value": settings.gross_margin * factor * float(first.mean()),
                "value_low": low,
                "value_high": high,
                "fallback": fallback,
                "basis": f"sBG: {basis}",
                "interval": interval,
                "interval_method": method,
                "value_low_sampling": sampling_low,
                "value_high_sampling": sampling_high,
            }
        )
    ltv, margins = discounted_margins(monthly, price, settings)
    table = pd.DataFrame(
        {
            "user_id": pattern.index.astype(str),
            "frequency": pattern["payments"].to_numpy() - 1,
            "recency": (pattern["last"] - pattern["first"]).dt.days.to_numpy() / DAYS_PER_MONTH,
            "T": (as_of - pattern["first"]).dt.days.to_numpy() / DAYS_PER_MONTH,
            "monetary_value": price,
            "prob_alive": active.astype(float),
            "expected_purchases": monthly.sum(axis=1),
            "ltv": ltv,
            "expected_average_value": price,
        }
    )
    for i in range(horizon):
        table[margin_column(i + 1)] = margins[:, i]
    return SubscriptionValue(
        table, records, pd.DataFrame(new_rows, columns=NEW_CUSTOMER_VALUE_COLUMNS)
    )
