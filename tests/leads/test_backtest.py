"""The backtest: leads open at an earlier date, scored through a bundle, and what they did later."""

from __future__ import annotations

import pandas as pd
import pytest

from insightos_utils.config import PipelineConfig
from insightos_utils.leads.backtest import BacktestSkipped, lead_lifetime, users_known_at
from insightos_utils.leads.backtest import backtest as run_backtest


def test_backtest_top_grade_converts_more_than_the_bottom(synthetic_lead_models) -> None:
    data = synthetic_lead_models["data"]
    backtest = run_backtest(data.users, data.events, synthetic_lead_models["as_of"])
    rates = backtest.by_grade.set_index("grade")["conversion_rate"]
    assert backtest.by_grade["leads"].sum() == len(backtest.leads) > 0
    assert rates["A"] > rates["D"]
    assert backtest.top_decile_rate > backtest.rest_rate
    assert backtest.trained_as_of == synthetic_lead_models["as_of"] - pd.Timedelta(days=60)
    # the outcome is read at as-of, after the leads were graded: some converted since
    assert 0 < backtest.leads["converted_later"].sum() < len(backtest.leads)
    document = backtest.to_dict()
    assert document["top_decile_lift"] > 1
    # no future knowledge in who was open then: every user who signed up within a lead's
    # lifetime before that date and had not converted by it is scored, lost-by-today included
    users = data.users.set_index("user_id")
    then = backtest.trained_as_of
    lifetime = lead_lifetime(data.users, synthetic_lead_models["as_of"], 60)
    open_then = users[
        (users["created_at"] <= then)
        & (users["created_at"] > then - lifetime)
        & ~(users["converted_at"] <= then)
    ]
    assert set(open_then.index) <= set(backtest.leads.index)
    assert (open_then["status"] == "lost").sum() > 0


def test_users_known_at_reopens_only_young_lost_users() -> None:
    then = pd.Timestamp("2026-03-01")
    users = pd.DataFrame(
        {
            "user_id": ["old_lost", "young_lost", "converted", "lead"],
            "created_at": pd.to_datetime(["2025-12-01", "2026-02-20", "2026-02-25", "2026-02-27"]),
            "status": ["lost", "lost", "converted", "lead"],
            "converted_at": pd.to_datetime([None, None, "2026-03-05", None]),
        }
    )
    known = users_known_at(users, then, pd.Timedelta(days=45))
    assert known["status"].tolist() == ["lost", "lead", "converted", "lead"]
    assert users["status"].tolist() == ["lost", "lost", "converted", "lead"]  # input untouched
    assert lead_lifetime(users, pd.Timestamp("2026-03-10"), 60) == pd.Timedelta(days=11)


def needing(outcomes: int, conversions: int) -> PipelineConfig:
    """The default settings with other minimums for the backtest window and its training."""
    return PipelineConfig().with_overrides(
        backtest_min_conversions=outcomes, min_conversions=conversions
    )


def test_a_backtest_window_with_too_few_outcomes_is_skipped_with_the_reason(
    synthetic_lead_models,
) -> None:
    data = synthetic_lead_models["data"]
    with pytest.raises(BacktestSkipped, match="converted by") as skipped:
        run_backtest(data.users, data.events, synthetic_lead_models["as_of"], needing(10**6, 40))
    assert "needs at least 1,000,000" in skipped.value.reason
    assert "backtest_lookback_days" in skipped.value.fix
    with pytest.raises(BacktestSkipped, match="cannot be trained") as thin:
        run_backtest(data.users, data.events, synthetic_lead_models["as_of"], needing(1, 10**6))
    assert "1,000,000 conversions" in thin.value.reason
