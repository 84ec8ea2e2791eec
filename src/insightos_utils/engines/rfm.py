"""The RFM summary (frequency, recency, T, monetary value) as Ibis expressions.

The conventions of ``ltv.rfm_summary``: one purchase per customer per UTC calendar day, worth
the day's total; ``frequency`` = repeat purchase days, ``recency`` = first to last purchase day,
``T`` = first purchase day to the calibration end's day, both whole days divided by the unit
length (D = 1, W = 7, M = 30.4375); ``monetary_value`` = mean of the repeat days' totals (0 when
there is none). A transaction belongs to the calibration period when ``occurred_at <=
calibration_end``, to the holdout when it lies in ``(calibration_end, observation_end]``; the
holdout columns describe calibration customers only.

The engine returns one row per customer (whole days as dates, day counts and sums); the unit
lengths are applied here, in pandas, on the same integers the in-memory path uses. Day totals
are summed by the engine in its own order, so monetary values agree with the in-memory path to
floating-point rounding (relative 1e-12), not bit for bit.
"""

from __future__ import annotations

from pathlib import Path

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd

from insightos_utils.contract import parse_timestamp
from insightos_utils.engines.choice import EngineSettings
from insightos_utils.engines.sources import EngineTables, opened
from insightos_utils.errors import InputError
from insightos_utils.ltv.units import UNIT_DAYS


def _daily(transactions: ir.Table) -> ir.Table:
    """One row per (customer, UTC day): the day's total."""
    days = transactions.mutate(day=transactions.occurred_at.date())
    return days.group_by(["user_id", "day"]).aggregate(total=days.amount.sum())


def rfm_expr(
    transactions: ir.Table, calibration_end: pd.Timestamp, observation_end: pd.Timestamp | None
) -> ir.Table:
    """Per calibration customer: first_day, last_day, purchase_days, repeat_sum, first_value
    and (with an observation end) holdout_days, holdout_sum."""
    calibration_stamp = ibis.literal(calibration_end.to_pydatetime())
    daily = _daily(transactions.filter(transactions.occurred_at <= calibration_stamp))
    spans = daily.group_by("user_id").aggregate(
        first_day=daily.day.min(), last_day=daily.day.max(), purchase_days=daily.count()
    )
    joined = daily.inner_join(spans, "user_id")
    repeat = joined.group_by("user_id").aggregate(
        repeat_sum=joined.total.sum(where=joined.day > joined.first_day),
        first_value=joined.total.sum(where=joined.day == joined.first_day),
    )
    summary = spans.inner_join(repeat, "user_id")
    if observation_end is None:
        return summary
    observation_stamp = ibis.literal(observation_end.to_pydatetime())
    later = transactions.filter(
        (transactions.occurred_at > calibration_stamp)
        & (transactions.occurred_at <= observation_stamp)
    )
    holdout_daily = _daily(later)
    holdout = holdout_daily.group_by("user_id").aggregate(
        holdout_days=holdout_daily.count(), holdout_sum=holdout_daily.total.sum()
    )
    return summary.left_join(holdout, "user_id").select(
        "user_id",
        "first_day",
        "last_day",
        "purchase_days",
        "repeat_sum",
        "first_value",
        "holdout_days",
        "holdout_sum",
    )


def _day_numbers(values: pd.Series) -> np.ndarray:
    """Dates (datetime.date or datetime64) as whole days since 1970-01-01."""
    return np.asarray(pd.to_datetime(values).to_numpy().astype("datetime64[D]").astype(np.int64))


def _day_of(stamp: pd.Timestamp) -> int:
    return int(np.datetime64(stamp.to_datetime64(), "D").astype(np.int64))


def rfm(
    source: str | Path | EngineTables,
    calibration_end: str | pd.Timestamp,
    observation_end: str | pd.Timestamp | None = None,
    time_unit: str = "W",
    engine: str = "auto",
    settings: EngineSettings | None = None,
) -> pd.DataFrame:
    """``ltv.rfm_summary`` of the source's transactions, computed on ``engine``.

    Index ``user_id`` (sorted): ``frequency`` (int64), ``recency``, ``T``, ``monetary_value``,
    ``first_purchase_value``;
    with ``observation_end`` also ``frequency_holdout``, ``monetary_value_holdout`` and
    ``duration_holdout``.
    """
    if time_unit not in UNIT_DAYS:
        raise InputError(f"time unit '{time_unit}' is not one of D, W, M (days, weeks, months)")
    length = UNIT_DAYS[time_unit]
    calibration_end = parse_timestamp(calibration_end)
    observation_end = None if observation_end is None else parse_timestamp(observation_end)
    if observation_end is not None and observation_end < calibration_end:
        raise InputError(
            f"observation end {observation_end} is before calibration end {calibration_end}"
        )
    with opened(source, engine, settings) as tables:
        if tables.transactions is None:
            raise InputError(f"{tables.description}: no transactions table (needed for LTV)")
        frame = tables.execute(rfm_expr(tables.transactions, calibration_end, observation_end))
    if frame.empty:
        raise InputError(
            f"transactions: no purchase on or before the calibration end {calibration_end}; "
            "choose a later calibration end"
        )
    frame = frame.sort_values("user_id", kind="stable")
    first, last = _day_numbers(frame["first_day"]), _day_numbers(frame["last_day"])
    frequency = frame["purchase_days"].to_numpy(dtype=np.int64) - 1
    repeat_sum = frame["repeat_sum"].to_numpy(dtype=float, na_value=0.0)
    monetary = np.divide(repeat_sum, frequency, out=np.zeros(len(frame)), where=frequency > 0)
    calibration_day = _day_of(calibration_end)
    summary = pd.DataFrame(
        {
            "frequency": frequency,
            "recency": (last - first) / length,
            "T": (calibration_day - first) / length,
            "monetary_value": monetary,
            "first_purchase_value": frame["first_value"].to_numpy(dtype=float),
        },
        index=pd.Index(frame["user_id"].to_numpy(dtype=object), name="user_id"),
    )
    if observation_end is None:
        return summary
    holdout_days = frame["holdout_days"].to_numpy(dtype=float, na_value=0.0).astype(np.int64)
    holdout_sum = frame["holdout_sum"].to_numpy(dtype=float, na_value=0.0)
    summary["frequency_holdout"] = holdout_days
    summary["monetary_value_holdout"] = np.divide(
        holdout_sum, holdout_days, out=np.zeros(len(frame)), where=holdout_days > 0
    )
    summary["duration_holdout"] = (_day_of(observation_end) - calibration_day) / length
    return summary
