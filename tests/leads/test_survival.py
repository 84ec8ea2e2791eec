"""Kaplan–Meier against a published table and a simulated world with a known answer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from insightos_utils.leads.labels import horizon_labels
from insightos_utils.leads.survival import (
    KM_COLUMNS,
    conversion_curves_by_grade,
    kaplan_meier,
    share_converted_by,
)
from insightos_utils.plots.survival import conversion_curves

# Freireich et al. (1963), 6-MP arm: weeks of remission, 0 = censored
SIX_MP_WEEKS = [6, 6, 6, 6, 7, 9, 10, 10, 11, 13, 16, 17, 19, 20, 22, 23, 25, 32, 32, 34, 35]
SIX_MP_EVENT = [1, 1, 1, 0, 1, 0, 1, 0, 0, 1, 1, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0]
# the textbook table (Kleinbaum & Klein, Survival Analysis, table 2.2): S(t) and Greenwood SE
PUBLISHED = {
    6: (0.857, 0.076),
    7: (0.807, 0.087),
    10: (0.753, 0.096),
    13: (0.690, 0.107),
    16: (0.627, 0.114),
    22: (0.538, 0.128),
    23: (0.448, 0.135),
}


def test_reproduces_the_published_six_mp_table() -> None:
    table = kaplan_meier(SIX_MP_WEEKS, np.array(SIX_MP_EVENT, dtype=bool)).set_index("days")
    assert list(table.columns) == [c for c in KM_COLUMNS if c != "days"]
    for week, (survival, _) in PUBLISHED.items():
        assert table.loc[week, "survival"] == pytest.approx(survival, abs=5e-4)
    assert table.loc[0.0, "survival"] == 1.0
    assert table["at_risk"].tolist() == [21, 21, 17, 15, 12, 11, 7, 6, 1]
    assert table["censored"].sum() + table["conversions"].sum() == 21


def test_log_log_interval_by_hand() -> None:
    """At week 6: S = 18/21, Greenwood sum 3/(21*18); the log(-log) interval computed by hand
    (R survival, conf.type = "log-log", prints 0.620 to 0.952)."""
    table = kaplan_meier(SIX_MP_WEEKS, np.array(SIX_MP_EVENT, dtype=bool)).set_index("days")
    s = 18 / 21
    se = np.sqrt(3 / (21 * 18)) / abs(np.log(s))
    z = 1.959963984540054
    low = np.exp(-np.exp(np.log(-np.log(s)) + z * se))
    high = np.exp(-np.exp(np.log(-np.log(s)) - z * se))
    assert table.loc[6, "ci_low"] == pytest.approx(low, rel=1e-9)
    assert table.loc[6, "ci_high"] == pytest.approx(high, rel=1e-9)
    assert (round(low, 3), round(high, 3)) == (0.620, 0.952)
    # the Greenwood standard error of S itself matches the published column
    for week, (_, published_se) in PUBLISHED.items():
        row = table.loc[week]
        greenwood = sum(
            d / (n * (n - d))
            for d, n, t in zip(table["conversions"], table["at_risk"], table.index, strict=True)
            if 0 < t <= week
        )
        assert row["survival"] * np.sqrt(greenwood) == pytest.approx(published_se, abs=6e-4)


def test_simulated_world_recovers_a_known_curve() -> None:
    """Exponential times to conversion (rate 1/50 per day) censored at random: the estimate at
    day 30 is within its interval of the true 1 - exp(-30/50)."""
    rng = np.random.default_rng(11)
    n = 20_000
    event_time = rng.exponential(50, n)
    censor_time = rng.uniform(0, 120, n)
    durations = np.minimum(event_time, censor_time)
    events = event_time <= censor_time
    table = kaplan_meier(durations, events)
    at_30 = share_converted_by(table, 30).iloc[0]
    truth = 1 - np.exp(-30 / 50)
    assert at_30["ci_low"] <= truth <= at_30["ci_high"]
    assert at_30["share_converted"] == pytest.approx(truth, abs=0.01)
    assert np.isnan(share_converted_by(table, 500).iloc[0]["share_converted"])


def test_groups_and_edge_cases() -> None:
    table = kaplan_meier([1, 2, 3, 4], [False, False, False, False], groups=["x", "x", "y", "y"])
    assert set(table["group"]) == {"x", "y"}
    assert (table["survival"] == 1.0).all() and (table["ci_low"] == 1.0).all()
    everyone = kaplan_meier([1, 2], [True, True])
    assert everyone["survival"].iloc[-1] == 0.0 and everyone["ci_high"].iloc[-1] == 0.0
    with pytest.raises(ValueError):
        kaplan_meier([1, -1], [True, False])


def test_by_grade_from_horizon_labels_and_plot() -> None:
    as_of = pd.Timestamp("2025-06-30")
    rng = np.random.default_rng(2)
    n = 2_000
    grade = rng.choice(["A", "B", "C", "D"], n)
    rate = pd.Series(grade).map({"A": 1 / 30, "B": 1 / 90, "C": 1 / 300, "D": 1 / 1000})
    created = as_of - pd.to_timedelta(rng.uniform(0, 300, n), unit="D")
    converted = created + pd.to_timedelta(rng.exponential(1 / rate.to_numpy()), unit="D")
    users = pd.DataFrame(
        {
            "user_id": [f"u{i}" for i in range(n)],
            "created_at": created,
            "status": np.where(converted <= as_of, "converted", "lead"),
            "converted_at": pd.Series(converted).where(converted <= as_of),
        }
    )
    labels = horizon_labels(users, as_of, 90)
    grades = pd.Series(grade, index=users["user_id"])
    curves = conversion_curves_by_grade(labels, grades)
    at_90 = share_converted_by(curves.rename(columns={"grade": "group"}), 90).set_index("group")
    assert list(at_90.index) == ["A", "B", "C", "D"]
    assert at_90["share_converted"].is_monotonic_decreasing
    assert at_90.loc["A", "share_converted"] == pytest.approx(1 - np.exp(-3), abs=0.05)
    figure = conversion_curves(curves, horizon_days=90)
    assert "within 90 days" in figure.axes[0].get_title()
