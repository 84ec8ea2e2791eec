"""Per-customer lifetime value: the ONE function that values customers (``customer_ltv``).

LTV over a horizon of ``horizon_months`` months of ``DAYS_PER_MONTH`` days, discounted at the
end of each month: ``sum_i margin * E[value per purchase] * E[purchases in month i] / (1+d)**i``.
It takes any purchase model with ``expected_purchases`` and ``prob_alive`` and any spend model
with ``expected_average_value``, so a limiting model at a boundary optimum values customers the
same way.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import pandas as pd

from insightos_utils.config import LtvConfig
from insightos_utils.errors import InsightOSError
from insightos_utils.ltv.rfm import distinct_rows
from insightos_utils.ltv.units import periods_per_month

CUSTOMER_LTV_COLUMNS = [
    "user_id",
    "frequency",
    "recency",
    "T",
    "monetary_value",
    "prob_alive",
    "expected_purchases",
    "ltv",
]


class PurchaseModel(Protocol):
    """What valuing a customer needs from a purchase model (BG/NBD or a limit of it)."""

    def expected_purchases(self, t: Any, frequency: Any, recency: Any, T: Any) -> np.ndarray: ...

    def prob_alive(self, frequency: Any, recency: Any, T: Any) -> np.ndarray: ...


class SpendModel(Protocol):
    """What valuing a customer needs from a spend model (Gamma-Gamma or a limit of it)."""

    def expected_average_value(self, frequency: Any, monetary_value: Any) -> np.ndarray: ...


def margin_column(month: int) -> str:
    """Name of the customer_ltv column with the expected margin of month ``month`` (1-based)."""
    return f"margin_month_{month:02d}"


def purchases_by_horizon(
    purchases: PurchaseModel, horizons: np.ndarray, frequency: Any, recency: Any, T: Any
) -> np.ndarray:
    """Expected repeat purchases by each of ``horizons``: (rows, horizons), rows being the
    customers, or a model's parameter draws for one customer. A model with
    ``expected_purchases_by_horizon`` computes what does not depend on the horizon once."""
    by_horizon = getattr(purchases, "expected_purchases_by_horizon", None)
    if by_horizon is not None:
        return np.atleast_2d(by_horizon(horizons, frequency, recency, T))
    columns = [np.ravel(purchases.expected_purchases(h, frequency, recency, T)) for h in horizons]
    return np.column_stack(columns)


def monthly_expected_purchases(
    purchases: PurchaseModel,
    frequency: Any,
    recency: Any,
    T: Any,
    horizon_months: int,
    month_length: float,
    distinct: bool = False,
) -> np.ndarray:
    """Expected repeat purchases in each of the next months: shape (customers, horizon_months).

    ``month_length`` is one month in the data's time units. Computed once per distinct
    (x, t_x, T) row, then spread back to the customers (``distinct``: the rows are distinct).
    """
    if distinct:
        (ux, ut, uT), inverse = (np.asarray(c, dtype=float) for c in (frequency, recency, T)), None
    else:
        (ux, ut, uT), inverse, _ = distinct_rows(frequency, recency, T)
    horizons = month_length * np.arange(1, horizon_months + 1, dtype=float)
    by_month = purchases_by_horizon(purchases, horizons, ux, ut, uT)
    monthly = np.diff(np.column_stack([np.zeros(len(ux)), by_month]), axis=1)
    return monthly if inverse is None else monthly[inverse]


def discounted_margins(
    monthly_purchases: np.ndarray, value_per_purchase: np.ndarray, settings: LtvConfig
) -> tuple[np.ndarray, np.ndarray]:
    """The LTV arithmetic, in one place: expected margin of each month (rows, months) and its
    sum discounted at the end of each month (rows,)."""
    margins = monthly_purchases * (settings.gross_margin * value_per_purchase)[:, None]
    return margins @ discount_factors(settings, monthly_purchases.shape[1]), margins


def discount_factors(settings: LtvConfig, horizon: int) -> np.ndarray:
    """1 / (1 + d)^i for the end of months i = 1..horizon."""
    return (1 + settings.monthly_discount_rate) ** -np.arange(1, horizon + 1, dtype=float)


def discounted_purchases(
    purchases: PurchaseModel,
    frequency: Any,
    recency: Any,
    T: Any,
    settings: LtvConfig,
    month_length: float | None = None,
    distinct: bool = False,
) -> np.ndarray:
    """Per row: the expected repeat purchases of each month of the horizon, discounted and
    summed. A customer's ``customer_ltv`` value is gross margin x expected value per purchase x
    this, so the refit bootstrap values its distinct (x, t_x, T) rows with it, not customers:
    ``distinct`` says the rows are distinct already."""
    horizon = int(settings.horizon_months)
    month = periods_per_month(settings.time_unit) if month_length is None else month_length
    monthly = monthly_expected_purchases(purchases, frequency, recency, T, horizon, month, distinct)
    return monthly @ discount_factors(settings, horizon)


def new_customer_ltv(
    purchases: PurchaseModel,
    spend: SpendModel,
    settings: LtvConfig,
    month_length: float | None = None,
) -> np.ndarray:
    """Discounted margin of the repeat purchases a just-acquired customer (x = t_x = T = 0) is
    expected to make over the horizon, for models whose parameters may be vectors (draws):
    the same arithmetic as ``customer_ltv`` (``discounted_margins``). The first purchase is not
    included: it has happened at acquisition."""
    horizon = int(settings.horizon_months)
    month = periods_per_month(settings.time_unit) if month_length is None else month_length
    horizons = month * np.arange(1, horizon + 1, dtype=float)
    by_month = purchases_by_horizon(purchases, horizons, 0.0, 0.0, 0.0)
    monthly = np.diff(np.column_stack([np.zeros(len(by_month)), by_month]), axis=1)
    value = np.atleast_1d(spend.expected_average_value(0.0, 0.0)).astype(float)
    rows = max(len(monthly), len(value))
    ltv, _ = discounted_margins(
        np.broadcast_to(monthly, (rows, horizon)), np.broadcast_to(value, (rows,)), settings
    )
    return ltv


def customer_ltv(
    summary: pd.DataFrame,
    purchases: PurchaseModel,
    spend: SpendModel,
    settings: LtvConfig,
    month_length: float | None = None,
) -> pd.DataFrame:
    """One row per customer: the contract's customer_ltv columns, the expected value per
    purchase, and the (undiscounted) expected margin of each month of the horizon (payback).

    ``expected_purchases`` counts the repeat purchases over the whole horizon. ``month_length``
    (time units per month) defaults to ``DAYS_PER_MONTH`` days; lifetimes' ``customer_lifetime_value``
    is this with 30 days (D) or 4.345 weeks (W) and ``gross_margin`` 1.
    """
    horizon = int(settings.horizon_months)
    month = periods_per_month(settings.time_unit) if month_length is None else month_length
    x = summary["frequency"].to_numpy(float)
    t_x = summary["recency"].to_numpy(float)
    age = summary["T"].to_numpy(float)
    m = summary["monetary_value"].to_numpy(float)
    monthly = monthly_expected_purchases(purchases, x, t_x, age, horizon, month)
    value = spend.expected_average_value(x, m)
    ltv, margins = discounted_margins(monthly, value, settings)
    table = pd.DataFrame(
        {
            "user_id": summary.index.astype(str),
            "frequency": summary["frequency"].to_numpy(),
            "recency": t_x,
            "T": age,
            "monetary_value": m,
            "prob_alive": purchases.prob_alive(x, t_x, age),
            "expected_purchases": monthly.sum(axis=1),
            "ltv": ltv,
            "expected_average_value": value,
        }
    )
    for i in range(horizon):
        table[margin_column(i + 1)] = margins[:, i]
    finite = np.isfinite(table["ltv"].to_numpy())
    if not finite.all():
        raise InsightOSError(
            f"LTV is not finite for {int((~finite).sum())} customer(s); the purchase model's "
            "predictions broke down (please report this with the data's shape)."
        )
    return table
