"""Time units and the LTV month: the conventions every LTV module shares.

``frequency``, ``recency`` and ``T`` are whole UTC days divided by the unit length: D = 1,
W = 7 (Fader, Hardie and Lee's weeks), M = 30.4375 (an average Gregorian month). The LTV horizon
counts months of ``DAYS_PER_MONTH`` days, whatever the unit. (``lifetimes`` uses 30 days for D
and 4.345 weeks for W; the LTV function takes a month length to match it.)
"""

from __future__ import annotations

from insightos_utils.errors import InputError

UNIT_DAYS: dict[str, float] = {"D": 1.0, "W": 7.0, "M": 30.4375}
DAYS_PER_MONTH = 30.4375
PURCHASE_CONVENTION = "at most one purchase per customer per UTC day (day totals)"


def unit_days(time_unit: str) -> float:
    """Length in days of one time unit (D, W or M)."""
    if time_unit not in UNIT_DAYS:
        raise InputError(f"time unit '{time_unit}' is not one of D, W, M (days, weeks, months)")
    return UNIT_DAYS[time_unit]


def periods_per_month(time_unit: str) -> float:
    """How many time units make one LTV month of ``DAYS_PER_MONTH`` days."""
    return DAYS_PER_MONTH / unit_days(time_unit)


def month_convention(time_unit: str) -> str:
    """The month convention in words, as ltv_params.json and the report state it."""
    return (
        f"a month is {DAYS_PER_MONTH} days ({periods_per_month(time_unit):.6g} {time_unit}); "
        "cash flows are discounted at the end of each month"
    )
