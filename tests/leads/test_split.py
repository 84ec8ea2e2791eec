"""The time-based holdout: the latest signups with a known outcome, both classes in each part."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from insightos_utils.errors import InputError, InsightOSError
from insightos_utils.leads.split import (
    NotEnoughOutcomes,
    OutcomeCounts,
    require_outcomes,
    time_folds,
    time_split,
)
from insightos_utils.stages import StageSkipped

from .data import labelled


def test_time_split_holds_out_the_latest_signups(toy_feature_table: pd.DataFrame) -> None:
    rows = labelled(toy_feature_table).sample(frac=1.0, random_state=3)  # order must not matter
    split = time_split(rows, holdout_fraction=0.2)
    assert len(split.holdout) == math.ceil(0.2 * len(rows))
    assert len(split.train) + len(split.holdout) == len(rows)
    assert split.train["created_at"].max() <= split.holdout["created_at"].min()
    latest = rows.sort_values("created_at").index[-len(split.holdout) :]
    assert set(split.holdout.index) == set(latest)
    assert split.train["created_at"].is_monotonic_increasing
    described = split.describe()
    assert described["holdout"]["n"] == len(split.holdout)
    assert described["holdout"]["signups_from"] == split.holdout["created_at"].min().isoformat()


def test_time_split_refuses_unknown_outcomes(toy_feature_table: pd.DataFrame) -> None:
    with pytest.raises(InputError, match="no known 'target_converted'"):
        time_split(toy_feature_table)  # open leads included


def test_time_split_needs_both_outcomes_in_the_holdout(toy_feature_table: pd.DataFrame) -> None:
    rows = labelled(toy_feature_table).copy()
    late = rows["created_at"] >= rows["created_at"].quantile(0.7)
    rows.loc[late, "target_converted"] = 0
    with pytest.raises(InsightOSError, match="holdout"):
        time_split(rows, 0.2)


def test_require_outcomes_says_how_many_there_are_and_how_many_are_needed() -> None:
    rows = pd.DataFrame({"target_converted": [1] * 39 + [0] * 500})
    with pytest.raises(NotEnoughOutcomes) as skipped:
        require_outcomes(rows, "The labelled data", min_conversions=40, min_non_conversions=40)
    assert "39 converted" in skipped.value.reason and "500 did not" in skipped.value.reason
    assert "at least 40 conversions" in skipped.value.reason
    assert "non-conversions" not in skipped.value.reason  # 500 >= 40: not the problem
    assert "min_conversions" in skipped.value.fix
    assert isinstance(skipped.value, StageSkipped)
    counts = require_outcomes(rows, "x", min_conversions=39, min_non_conversions=500)
    assert counts == OutcomeCounts(labelled=539, conversions=39, non_conversions=500)


def test_time_folds_leave_out_folds_with_one_outcome() -> None:
    y = np.array([0] * 60 + [0, 1] * 20)  # conversions only in the latest 40 rows
    folds, left_out = time_folds(y, n_splits=3)
    assert left_out == 2 and len(folds) == 1
    for fit, test in folds:
        assert set(y[fit]) == {0, 1} and set(y[test]) == {0, 1}
        assert fit.max() < test.min()  # time-ordered
    all_mixed = np.array([0, 1] * 50)
    assert time_folds(all_mixed)[1] == 0


def test_a_one_outcome_holdout_skips_the_stage_with_the_counts(
    toy_feature_table: pd.DataFrame,
) -> None:
    rows = labelled(toy_feature_table).copy()
    late = rows["created_at"] >= rows["created_at"].quantile(0.7)
    rows.loc[late, "target_converted"] = 0
    with pytest.raises(NotEnoughOutcomes, match=r"holdout \(.* 0 converted") as skipped:
        time_split(rows, 0.2)
    assert "no champion" in skipped.value.reason
