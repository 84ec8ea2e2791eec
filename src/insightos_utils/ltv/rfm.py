"""The RFM summary: frequency, recency, T and monetary value per customer at a calibration end.

Purchases are counted per customer per calendar day (UTC): several transactions on one day are
one purchase whose value is their sum, as in Fader, Hardie and Lee (2005). ``frequency`` = repeat
purchase days; ``recency`` = first to last purchase day; ``T`` = first purchase day to the
calibration end's day; both in time units (``units``). ``monetary_value`` = mean of the repeat
purchase days' totals (0 when frequency is 0). A transaction belongs to the calibration period
when ``occurred_at <= calibration_end``, to the holdout when it falls in
``(calibration_end, observation_end]``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from insightos_utils.contract import parse_timestamp
from insightos_utils.errors import InputError
from insightos_utils.ltv.units import unit_days

SUMMARY_COLUMNS = ("frequency", "recency", "T", "monetary_value")


def _day_numbers(stamps: pd.Series) -> np.ndarray:
    """Whole UTC days since 1970-01-01 for a naive datetime column of any resolution."""
    values = stamps
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        values = values.dt.tz_convert("UTC").dt.tz_localize(None)
    return values.to_numpy().astype("datetime64[D]").astype(np.int64)


def _day_of(stamp: pd.Timestamp) -> int:
    return int(np.datetime64(stamp.to_datetime64(), "D").astype(np.int64))


def _daily_purchases(
    codes: np.ndarray, days: np.ndarray, amounts: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Collapse transactions to one purchase per (customer code, day): codes, days, day totals.

    The result is sorted by customer code, then day.
    """
    first_day = int(days.min())
    span = int(days.max()) - first_day + 1
    key = codes.astype(np.int64) * span + (days - first_day)
    if (key[1:] >= key[:-1]).all():  # already in customer, time order: no sort needed
        sorted_key, sorted_amounts = key, amounts
    else:
        order = np.argsort(key)
        sorted_key, sorted_amounts = key[order], amounts[order]
    starts = np.flatnonzero(np.r_[True, sorted_key[1:] != sorted_key[:-1]])
    totals = np.add.reduceat(sorted_amounts, starts)
    unique_key = sorted_key[starts]
    return unique_key // span, unique_key % span + first_day, totals


def _customer_starts(codes: np.ndarray) -> np.ndarray:
    return np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])


def rfm_summary(
    transactions: pd.DataFrame,
    calibration_end: str | pd.Timestamp,
    observation_end: str | pd.Timestamp | None = None,
    time_unit: str = "W",
) -> pd.DataFrame:
    """Frequency, recency, T and monetary value per customer at ``calibration_end``.

    One row per customer with a purchase on or before ``calibration_end`` (index ``user_id``),
    plus ``first_purchase_value`` (the first purchase day's total). With ``observation_end``,
    adds the holdout columns ``frequency_holdout`` (purchase days in the holdout),
    ``monetary_value_holdout`` (mean day total there, 0 when none) and ``duration_holdout``.
    Equal to ``lifetimes.utils.calibration_and_holdout_data(freq="D")`` divided by the unit
    length, except that the holdout monetary value also sums per day.
    """
    length = unit_days(time_unit)
    calibration_end = parse_timestamp(calibration_end)
    observation_end = None if observation_end is None else parse_timestamp(observation_end)
    from insightos_utils.engines import pipeline  # the engine ingest chose, if not memory

    if (engine := pipeline.engine_of(transactions)) is not None:
        return pipeline.rfm_summary(
            engine, transactions, calibration_end, observation_end, time_unit
        )
    if observation_end is not None and observation_end < calibration_end:
        raise InputError(
            f"observation end {observation_end} is before calibration end {calibration_end}"
        )
    stamps = transactions["occurred_at"]
    if isinstance(stamps.dtype, pd.DatetimeTZDtype):
        stamps = stamps.dt.tz_convert("UTC").dt.tz_localize(None)
    moments = stamps.to_numpy()
    in_calibration = moments <= calibration_end.to_datetime64()
    if not in_calibration.any():
        raise InputError(
            f"transactions: no purchase on or before the calibration end {calibration_end}; "
            "choose a later calibration end"
        )
    amounts = transactions["amount"].to_numpy(dtype=float)
    days = _day_numbers(stamps)
    # One integer per user (factorising the column is fast for Arrow strings), then the
    # calibration customers renumbered 0..n-1 in order of first appearance in the table.
    user_codes, user_ids = pd.factorize(transactions["user_id"])
    if (user_codes < 0).any():
        raise InputError("transactions: column 'user_id' has empty values")
    compact = np.full(len(user_ids), -1, dtype=np.int64)
    seen = np.zeros(len(user_ids), dtype=bool)
    seen[user_codes[in_calibration]] = True
    present = np.flatnonzero(seen)
    compact[present] = np.arange(len(present))
    customers = user_ids[present]
    codes = compact[user_codes[in_calibration]]
    code, day, total = _daily_purchases(codes, days[in_calibration], amounts[in_calibration])
    starts = _customer_starts(code)
    ends = np.r_[starts[1:], len(code)] - 1
    purchase_days = np.diff(np.r_[starts, len(code)])
    repeat_total = total.copy()
    repeat_total[starts] = 0.0
    frequency = purchase_days - 1
    repeat_sum = np.add.reduceat(repeat_total, starts)
    monetary = np.divide(repeat_sum, frequency, out=np.zeros(len(starts)), where=frequency > 0)
    calibration_day = _day_of(calibration_end)
    summary = pd.DataFrame(
        {
            "frequency": frequency.astype(np.int64),
            "recency": (day[ends] - day[starts]) / length,
            "T": (calibration_day - day[starts]) / length,
            "monetary_value": monetary,
            "first_purchase_value": total[starts],
        },
        index=pd.Index(customers, name="user_id"),
    )
    if observation_end is None:
        return summary

    in_holdout = (moments > calibration_end.to_datetime64()) & (
        moments <= observation_end.to_datetime64()
    )
    holdout_codes = compact[user_codes[in_holdout]]
    known = holdout_codes >= 0
    frequency_holdout = np.zeros(len(customers), dtype=np.int64)
    monetary_holdout = np.zeros(len(customers))
    if known.any():
        h_code, _, h_total = _daily_purchases(
            holdout_codes[known], days[in_holdout][known], amounts[in_holdout][known]
        )
        h_starts = _customer_starts(h_code)
        h_count = np.diff(np.r_[h_starts, len(h_code)])
        frequency_holdout[h_code[h_starts]] = h_count
        monetary_holdout[h_code[h_starts]] = np.add.reduceat(h_total, h_starts) / h_count
    summary["frequency_holdout"] = frequency_holdout
    summary["monetary_value_holdout"] = monetary_holdout
    summary["duration_holdout"] = (_day_of(observation_end) - calibration_day) / length
    return summary


def float_array(values: Any) -> np.ndarray:
    """A column as a float array. A pandas Series goes through ``to_numpy``: ``np.asarray`` on
    a Series with a large string index costs a scan of that index (about 0.1 s a million)."""
    if isinstance(values, pd.Series | pd.Index):
        return values.to_numpy(dtype=float)
    return np.asarray(values, dtype=float)


def distinct_rows(*columns: Any) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Distinct rows of equal-length columns: their values, each row's group, and group sizes.

    Groups are numbered in order of first appearance. The models fit these rows weighted by
    their sizes: the same objective as one row per customer, on far fewer rows (many customers
    share a (frequency, recency, T)).
    """
    arrays = [float_array(c) for c in columns]
    inverse = np.zeros(len(arrays[0]), dtype=np.int64)
    groups = 1
    for values in arrays:  # combine one column at a time: codes stay far below 2**63
        codes, distinct = pd.factorize(values)
        inverse, uniques = pd.factorize(inverse * len(distinct) + codes)
        groups = len(uniques)
    counts = np.bincount(inverse, minlength=groups)
    first = np.zeros(groups, dtype=np.int64)
    first[inverse[::-1]] = np.arange(len(inverse))[::-1]
    return [c[first] for c in arrays], inverse, counts.astype(float)
