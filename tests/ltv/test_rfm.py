"""The RFM summary by hand and against lifetimes, in days, weeks and months."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from insightos_utils.errors import InputError
from insightos_utils.ltv.rfm import distinct_rows, rfm_summary
from insightos_utils.ltv.units import UNIT_DAYS

from .data import (
    calibration_and_holdout_data,
    messy_transactions,
    summary_data_from_transaction_data,
)


def test_rfm_summary_counts_one_purchase_per_day_by_hand() -> None:
    transactions = pd.DataFrame(
        {
            "user_id": ["a", "a", "a", "a", "a", "b", "a"],
            "occurred_at": pd.to_datetime(
                [
                    "2020-01-01 10:00",
                    "2020-01-01 15:00",  # same day: one purchase of $15
                    "2020-01-08 09:00",
                    "2020-01-15 08:00",
                    "2020-01-15 20:00",  # same day: one purchase of $40
                    "2020-01-22 12:00",
                    "2020-02-05 12:00",  # after the calibration end: holdout
                ]
            ),
            "amount": [10.0, 5.0, 20.0, 30.0, 10.0, 7.0, 50.0],
        }
    )
    summary = rfm_summary(transactions, "2020-01-29", "2020-02-12", time_unit="W")
    a, b = summary.loc["a"], summary.loc["b"]
    assert (a["frequency"], a["recency"], a["T"], a["monetary_value"]) == (2, 2.0, 4.0, 30.0)
    assert (b["frequency"], b["recency"], b["T"], b["monetary_value"]) == (0, 0.0, 1.0, 0.0)
    assert (a["first_purchase_value"], b["first_purchase_value"]) == (15.0, 7.0)
    assert (a["frequency_holdout"], a["monetary_value_holdout"]) == (1, 50.0)
    assert a["duration_holdout"] == 2.0 and b["frequency_holdout"] == 0
    days = rfm_summary(transactions, "2020-01-29", time_unit="D")
    months = rfm_summary(transactions, "2020-01-29", time_unit="M")
    assert days.loc["a", "T"] == 28 and months.loc["a", "T"] == pytest.approx(28 / 30.4375)


@pytest.mark.parametrize("time_unit", ["D", "W", "M"])
def test_rfm_summary_equals_lifetimes(time_unit: str) -> None:
    transactions = messy_transactions()
    calibration_end = pd.Timestamp("2024-09-30 23:59:59.999999")
    observation_end = pd.Timestamp("2025-01-31 23:59:59.999999")
    ours = rfm_summary(transactions, calibration_end, observation_end, time_unit)
    length = UNIT_DAYS[time_unit]

    theirs = calibration_and_holdout_data(
        transactions,
        "user_id",
        "occurred_at",
        calibration_period_end=calibration_end,
        observation_period_end=observation_end,
        freq="D",
        monetary_value_col="amount",  # pandas 3: without it lifetimes fails to concatenate
    ).reindex(ours.index)
    assert len(theirs) == len(ours) and not theirs.isna().any().any()
    np.testing.assert_array_equal(ours["frequency"], theirs["frequency_cal"])
    np.testing.assert_allclose(ours["recency"], theirs["recency_cal"] / length, rtol=1e-12)
    np.testing.assert_allclose(ours["T"], theirs["T_cal"] / length, rtol=1e-12)
    np.testing.assert_allclose(ours["monetary_value"], theirs["monetary_value_cal"], rtol=1e-12)
    np.testing.assert_array_equal(ours["frequency_holdout"], theirs["frequency_holdout"])
    np.testing.assert_allclose(ours["duration_holdout"], theirs["duration_holdout"] / length)

    plain = summary_data_from_transaction_data(
        transactions[transactions["occurred_at"] <= calibration_end],
        "user_id",
        "occurred_at",
        observation_period_end=calibration_end,
        freq="D",
        monetary_value_col="amount",
    ).reindex(ours.index)
    np.testing.assert_allclose(ours["T"], plain["T"] / length, rtol=1e-12)
    np.testing.assert_allclose(ours["monetary_value"], plain["monetary_value"], rtol=1e-12)

    # lifetimes averages single holdout transactions; we average day totals, as in calibration.
    # On transactions already summed per day the two agree.
    daily = (
        transactions.assign(day=transactions["occurred_at"].dt.floor("D"))
        .groupby(["user_id", "day"], as_index=False)["amount"]
        .sum()
    )
    daily_theirs = calibration_and_holdout_data(
        daily,
        "user_id",
        "day",
        calibration_period_end=calibration_end,
        observation_period_end=observation_end,
        freq="D",
        monetary_value_col="amount",
    ).reindex(ours.index)
    np.testing.assert_allclose(
        ours["monetary_value_holdout"], daily_theirs["monetary_value_holdout"], rtol=1e-12
    )


def test_rfm_summary_rejects_impossible_periods() -> None:
    transactions = messy_transactions(customers=5)
    with pytest.raises(InputError, match="before calibration end"):
        rfm_summary(transactions, "2024-09-30", "2024-06-30")
    with pytest.raises(InputError, match="no purchase on or before"):
        rfm_summary(transactions, "2000-01-01")


def test_distinct_rows_rebuild_every_row_and_count_it() -> None:
    x = np.array([1, 0, 1, 2, 0, 1])
    t = np.array([3.0, 0.0, 3.0, 5.0, 0.0, 4.0])
    (ux, ut), inverse, counts = distinct_rows(x, t)
    np.testing.assert_array_equal(ux[inverse], x)
    np.testing.assert_array_equal(ut[inverse], t)
    assert counts.sum() == len(x) and len(ux) == 4
    assert counts[inverse[0]] == 2 and counts[inverse[1]] == 2 and counts[inverse[3]] == 1
