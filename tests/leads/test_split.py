"""The time-based holdout: the latest signups with a known outcome, both classes in each part."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from insightos_utils.errors import InputError, InsightOSError
from insightos_utils.leads.split import time_split

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
