"""Campaign economics: LTV by acquisition campaign with bootstrap intervals, CAC, LTV/CAC,
payback, and the reference campaign's value against everyone else's.

``customers`` counts customers (anyone with a purchase) acquired by a campaign; CAC is the
campaign's total spend divided by them (NaN without spend, e.g. ``(none)``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from insightos_utils.ltv.intervals import RefitDraws

from insightos_utils.config import LtvConfig
from insightos_utils.contract import NO_CAMPAIGN

UNKNOWN_USER_CAMPAIGN = "(unknown user)"
CONFIDENCE = 0.95
CAMPAIGN_LTV_COLUMNS = [
    "campaign",
    "customers",
    "ltv_mean",
    "ltv_ci_low",
    "ltv_ci_high",
    "spend",
    "cac",
    "ltv_to_cac",
    "ltv_to_cac_ci_low",
    "ltv_to_cac_ci_high",
    "payback_months",
    "payback_ci_low",
    "payback_ci_high",
    "interval_method",
    "ltv_ci_low_sampling",
    "ltv_ci_high_sampling",
]


def customer_campaigns(customer_ltv: pd.DataFrame, users: pd.DataFrame) -> pd.Series:
    """Each customer's acquisition campaign (``(none)`` when absent, ``(unknown user)`` when the
    customer is not in the users table), aligned with ``customer_ltv``'s rows."""
    lookup = (
        users.assign(user_id=users["user_id"].astype(str))
        .drop_duplicates("user_id")
        .set_index("user_id")["campaign"]
    )
    ids = customer_ltv["user_id"].astype(str)
    mapped = ids.map(lookup).where(~ids.isin(lookup.index) | ids.map(lookup).notna(), NO_CAMPAIGN)
    return mapped.fillna(UNKNOWN_USER_CAMPAIGN).astype(str).replace("", NO_CAMPAIGN)


def bootstrap_means(
    values: np.ndarray, samples: int, rng: np.random.Generator, chunk_cells: int = 4_000_000
) -> np.ndarray:
    """Means of ``samples`` bootstrap resamples of ``values`` (vectorised in memory-bound chunks)."""
    values = np.asarray(values, dtype=float)
    n = len(values)
    if n == 0:
        return np.full(samples, np.nan)
    rows = max(1, chunk_cells // n)
    means = np.empty(samples)
    for start in range(0, samples, rows):
        stop = min(samples, start + rows)
        means[start:stop] = values[rng.integers(0, n, size=(stop - start, n))].mean(axis=1)
    return means


def percentile_interval(draws: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The central ``confidence`` percentile interval of the finite draws (NaN when none)."""
    finite = draws[np.isfinite(draws)]
    if len(finite) == 0:
        return float("nan"), float("nan")
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return float(low), float(high)


def cac(spend: float, customers: int) -> float:
    """Spend per customer acquired: NaN without spend, inf for spend that acquired nobody."""
    if not spend > 0:
        return float("nan")
    return spend / customers if customers else float("inf")


def payback_months(cumulative_margin: np.ndarray, cac: float) -> float:
    """Months until the mean cumulative (undiscounted) margin reaches CAC, interpolated."""
    if not math.isfinite(cac):
        return float("nan")
    if cac <= 0:
        return 0.0
    reached = np.flatnonzero(cumulative_margin >= cac)
    if len(reached) == 0:
        return float("inf")
    month = int(reached[0])
    before = cumulative_margin[month - 1] if month > 0 else 0.0
    gained = cumulative_margin[month] - before
    return month + (cac - before) / gained if gained > 0 else float(month + 1)


def payback_interval(
    monthly_draws: np.ndarray | None, cac: float, confidence: float = CONFIDENCE
) -> tuple[float, float]:
    """The central ``confidence`` interval of the payback month over refit replicates
    (``monthly_draws``: each replicate's mean monthly margin, NaN rows for failed ones). A
    replicate that does not reach CAC within the horizon counts as inf, so the upper end is inf
    when enough of them do not; no interpolation across it (``inverted_cdf``)."""
    if monthly_draws is None or not math.isfinite(cac):
        return float("nan"), float("nan")
    finite = monthly_draws[np.isfinite(monthly_draws).all(axis=1)]
    if not len(finite):
        return float("nan"), float("nan")
    paybacks = np.array([payback_months(row.cumsum(), cac) for row in finite])
    tail = (1 - confidence) / 2
    low, high = np.quantile(paybacks, [tail, 1 - tail], method="inverted_cdf")
    return float(low), float(high)


def spend_by_campaign(campaign_spend: pd.DataFrame | None) -> pd.Series:
    """Total spend per campaign (empty without a spend table)."""
    if campaign_spend is None or not len(campaign_spend):
        return pd.Series(dtype=float)
    return campaign_spend.groupby("campaign")["spend"].sum()


def campaign_ltv(
    customer_ltv: pd.DataFrame,
    users: pd.DataFrame,
    campaign_spend: pd.DataFrame | None,
    settings: LtvConfig,
    seed: int = 42,
    refit: RefitDraws | None = None,
) -> pd.DataFrame:
    """Mean LTV per acquisition campaign with a percentile bootstrap interval, CAC and payback.

    With ``refit`` (draws aligned with ``customer_ltv``'s rows, ``intervals.refit_bootstrap``)
    the interval is the refit bootstrap's (sampling + parameters, ``interval_method`` "refit");
    the sampling-only interval is kept beside it (``ltv_ci_*_sampling``) either way.

    ``ltv_to_cac`` carries the LTV interval divided by CAC; ``payback_months`` is when the
    campaign's mean cumulative expected margin (undiscounted) reaches CAC (inf: not within the
    horizon); ``payback_ci_low`` / ``payback_ci_high`` its interval over the refits (with
    ``refit`` grouped by campaign, ``refit_bootstrap(groups=...)``; NaN otherwise).
    """
    campaigns = customer_campaigns(customer_ltv, users)
    margin_columns = [c for c in customer_ltv.columns if c.startswith("margin_month_")]
    spend = spend_by_campaign(campaign_spend)
    rng = np.random.default_rng(seed)
    ltv = customer_ltv["ltv"].to_numpy(float)
    rows = []
    for name in sorted(set(campaigns) | set(spend.index)):
        members = (campaigns == name).to_numpy()
        n = int(members.sum())
        draws = bootstrap_means(ltv[members], settings.bootstrap_samples, rng)
        sampling_low, sampling_high = percentile_interval(draws)
        low, high, method = sampling_low, sampling_high, "sampling"
        if refit is not None and n and refit.samples:
            low, high = percentile_interval(refit.group_means(members))
            method = "refit"
        campaign_spent = float(spend.get(name, float("nan")))
        campaign_cac = cac(campaign_spent, n)
        payback_low, payback_high = payback_interval(
            refit.group_margins(name) if refit is not None and n else None, campaign_cac
        )
        mean = float(ltv[members].mean()) if n else float("nan")
        cumulative = (
            customer_ltv.loc[members, margin_columns].to_numpy(float).mean(axis=0).cumsum()
            if n and margin_columns
            else np.array([])
        )
        rows.append(
            {
                "campaign": name,
                "customers": n,
                "ltv_mean": mean,
                "ltv_ci_low": low,
                "ltv_ci_high": high,
                "spend": campaign_spent,
                "cac": campaign_cac,
                # spend that acquired nobody returned nothing per dollar
                "ltv_to_cac": (
                    mean / campaign_cac if n else (0.0 if campaign_spent > 0 else float("nan"))
                ),
                "ltv_to_cac_ci_low": low / campaign_cac,
                "ltv_to_cac_ci_high": high / campaign_cac,
                "payback_months": payback_months(cumulative, campaign_cac) if n else float("nan"),
                "payback_ci_low": payback_low,
                "payback_ci_high": payback_high,
                "interval_method": method,
                "ltv_ci_low_sampling": sampling_low,
                "ltv_ci_high_sampling": sampling_high,
            }
        )
    table = pd.DataFrame(rows, columns=CAMPAIGN_LTV_COLUMNS)
    return table.sort_values(["ltv_mean", "campaign"], ascending=[False, True]).reset_index(
        drop=True
    )


@dataclass
class ReferenceRatio:
    """Mean LTV of the reference campaign's customers over everyone else's, with its interval."""

    campaign: str
    reference_customers: int
    other_customers: int
    reference_ltv: float
    other_ltv: float
    ratio: float
    ci_low: float
    ci_high: float
    bootstrap_samples: int
    confidence: float = CONFIDENCE
    interval_method: str = "sampling"
    sampling_ci_low: float = float("nan")
    sampling_ci_high: float = float("nan")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def reference_ratio(
    customer_ltv: pd.DataFrame,
    users: pd.DataFrame,
    settings: LtvConfig,
    seed: int = 42,
    refit: RefitDraws | None = None,
) -> ReferenceRatio | None:
    """The reference campaign's mean LTV divided by all other customers', bootstrapped.

    Each replicate resamples both groups independently (a stratified bootstrap). None when the
    reference campaign or the rest has no customers.
    """
    campaigns = customer_campaigns(customer_ltv, users)
    ltv = customer_ltv["ltv"].to_numpy(float)
    is_reference = (campaigns == settings.reference_campaign).to_numpy()
    reference, others = ltv[is_reference], ltv[~is_reference]
    if len(reference) == 0 or len(others) == 0:
        return None
    rng = np.random.default_rng(seed)
    samples = settings.bootstrap_samples
    reference_draws = bootstrap_means(reference, samples, rng)
    other_draws = bootstrap_means(others, samples, rng)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = reference_draws / other_draws
    sampling_low, sampling_high = percentile_interval(ratios)
    low, high, method = sampling_low, sampling_high, "sampling"
    if refit is not None and refit.samples:
        with np.errstate(divide="ignore", invalid="ignore"):
            refit_ratios = refit.group_means(is_reference) / refit.group_means(~is_reference)
        low, high = percentile_interval(refit_ratios)
        method = "refit"
    return ReferenceRatio(
        campaign=settings.reference_campaign,
        reference_customers=len(reference),
        other_customers=len(others),
        reference_ltv=float(reference.mean()),
        other_ltv=float(others.mean()),
        ratio=float(reference.mean() / others.mean()) if others.mean() else float("nan"),
        ci_low=low,
        ci_high=high,
        bootstrap_samples=samples,
        interval_method=method,
        sampling_ci_low=sampling_low,
        sampling_ci_high=sampling_high,
    )
