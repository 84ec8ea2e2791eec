"""Score trend against the previous scoring run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from insightos_utils.leads.trend import previous_scores, score_trend, trend_summary


def test_each_trend_and_the_threshold_edge() -> None:
    previous = pd.DataFrame({"user_id": ["a", "b", "c", "d", "gone"], "score": [0.5] * 5})
    ids = ["a", "b", "c", "d", "new"]
    scores = [0.6, 0.4, 0.52, 0.55, 0.9]  # d: exactly the threshold = steady
    trend = score_trend(ids, scores, previous, threshold=0.05)
    assert list(trend) == ["improving", "declining", "steady", "steady", "new"]
    summary = trend_summary(trend, ids, previous)
    assert summary == {
        "improving": 1, "steady": 2, "declining": 1, "new": 1, "no_longer_open": 1,
    }  # fmt: skip


def test_no_previous_run_means_every_lead_is_new(tmp_path: Path) -> None:
    for where in (None, "", tmp_path / "missing_run", tmp_path):
        previous, note = previous_scores(where)
        assert previous is None and "every lead is new" in note
    trend = score_trend(["a", "b"], [0.1, 0.2], None)
    assert set(trend) == {"new"}
    assert trend_summary(trend, ["a", "b"], None)["no_longer_open"] is None


def test_previous_file_is_read_and_cleaned(tmp_path: Path) -> None:
    pd.DataFrame(
        {
            "user_id": ["001", "002", "002", "003"],
            "score": ["0.2", "0.3", "0.9", "oops"],
            "grade": list("ABCD"),
        }
    ).to_csv(tmp_path / "scored_leads.csv", index=False)
    previous, note = previous_scores(tmp_path)
    assert previous is not None and "2 leads" in note
    assert previous["user_id"].tolist() == ["001", "002"]  # ids stay text: "001" is not 1
    trend = score_trend(["001", "002", "003"], [0.3, 0.3, 0.3], previous, threshold=0.05)
    assert list(trend) == ["improving", "steady", "new"]
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "scored_leads.csv").write_text("x,y\n1,2\n")
    assert previous_scores(tmp_path / "bad")[0] is None


def test_vectorised_on_many_leads() -> None:
    rng = np.random.default_rng(0)
    n = 200_000
    ids = np.char.add("u", np.arange(n).astype(str))
    before = rng.random(n)
    previous = pd.DataFrame({"user_id": ids[n // 10 :], "score": before[n // 10 :]})
    after = np.clip(before + rng.normal(0, 0.05, n), 0, 1)
    trend = np.asarray(score_trend(ids, after, previous, threshold=0.05))
    change = after - before
    expected = np.where(change > 0.05, "improving", np.where(change < -0.05, "declining", "steady"))
    expected[: n // 10] = "new"
    assert (trend == expected).all()


@pytest.mark.parametrize("threshold", [0.0, 0.2])
def test_threshold_moves_the_split(threshold: float) -> None:
    previous = pd.DataFrame({"user_id": ["a"], "score": [0.5]})
    trend = score_trend(["a"], [0.6], previous, threshold=threshold)
    assert list(trend) == (["improving"] if threshold < 0.1 else ["steady"])
