"""Score trend against the previous scoring run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from insightos_utils.leads.trend import first_of_each_id, previous_scores, score_trend, with_trend


def test_each_trend_and_the_threshold_edge() -> None:
    previous = pd.DataFrame({"user_id": ["a", "b", "c", "d", "gone"], "score": [0.5] * 5})
    ids = ["a", "b", "c", "d", "new"]
    scores = [0.6, 0.4, 0.52, 0.55, 0.9]  # d: exactly the threshold = steady
    compared = score_trend(ids, scores, previous, threshold=0.05)
    assert list(compared.trend) == ["improving", "declining", "steady", "steady", "new"]
    assert compared.counts() == {
        "improving": 1, "steady": 2, "declining": 1, "new": 1, "no_longer_open": 1,
    }  # fmt: skip


def test_no_previous_run_means_every_lead_is_new(tmp_path: Path) -> None:
    for where in (None, "", tmp_path / "missing_run", tmp_path):
        previous, note = previous_scores(where)
        assert previous is None and "every lead is new" in note
    compared = score_trend(["a", "b"], [0.1, 0.2], None)
    assert set(compared.trend) == {"new"}
    assert compared.counts()["no_longer_open"] is None


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
    compared = score_trend(["001", "002", "003"], [0.3, 0.3, 0.3], previous, threshold=0.05)
    assert list(compared.trend) == ["improving", "steady", "new"]
    assert compared.no_longer_open == 0
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
    compared = score_trend(ids, after, previous, threshold=0.05)
    trend = np.asarray(compared.trend)
    change = after - before
    expected = np.where(change > 0.05, "improving", np.where(change < -0.05, "declining", "steady"))
    expected[: n // 10] = "new"
    assert (trend == expected).all()
    gone = score_trend(ids[: n // 2], after[: n // 2], previous, threshold=0.05).no_longer_open
    assert gone == n - n // 2  # previous leads with no row today, from the same lookup


@pytest.mark.parametrize("threshold", [0.0, 0.2])
def test_threshold_moves_the_split(threshold: float) -> None:
    previous = pd.DataFrame({"user_id": ["a"], "score": [0.5]})
    trend = score_trend(["a"], [0.6], previous, threshold=threshold).trend
    assert list(trend) == (["improving"] if threshold < 0.1 else ["steady"])


def test_first_of_each_id_keeps_the_earliest_row() -> None:
    assert first_of_each_id(pd.Series(["a", "b", "c"], dtype="str")) is None
    kept = first_of_each_id(pd.Series(["b", "a", "b", "c", "a", "b"], dtype="str"))
    assert kept is not None and kept.tolist() == [0, 1, 3]


def test_with_trend_against_a_previous_run(tmp_path: Path) -> None:
    scored = pd.DataFrame({"user_id": ["a", "b", "c"], "score": [0.9, 0.1, 0.5], "grade": "B"})
    pd.DataFrame({"user_id": ["a", "b", "z"], "score": [0.5, 0.5, 0.5]}).to_csv(
        tmp_path / "scored_leads.csv", index=False
    )
    trended, summary = with_trend(scored, tmp_path, 0.05)
    assert trended["trend"].tolist() == ["improving", "declining", "new"]
    assert summary["no_longer_open"] == 1 and summary["threshold"] == 0.05
    assert summary["improving"] == 1 and summary["new"] == 1
    first, summary = with_trend(scored, None, 0.05)
    assert set(first["trend"]) == {"new"} and "no previous" in summary["compared_with"]


def test_trend_as_text_matches_the_categories() -> None:
    previous = pd.DataFrame({"user_id": ["a", "b", "c"], "score": [0.5, 0.5, 0.5]})
    compared = score_trend(["a", "b", "c", "d"], [0.9, 0.1, 0.5, 0.5], previous)
    text = compared.as_text()
    assert text.dtype == "str" and list(text) == list(compared.trend)
    assert list(text) == ["improving", "declining", "steady", "new"]
