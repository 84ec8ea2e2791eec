"""``insightos retention``: the paper's two cohorts through the command, shares and counts,
and a survival table that breaks its contract."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from insightos_utils import cli
from insightos_utils.ltv.models import sbg
from insightos_utils.ltv.retention import RETENTION_PARAMS_FILE, cohort_params

FIXTURE = Path(__file__).parent / "fixtures" / "fader_hardie_2007_survival.csv"
PAPER = {"Regular": (0.704, 1.182), "High End": (0.668, 3.806)}


def _run(tmp_path: Path, survival: Path, *extra: str) -> int:
    config = tmp_path / "insightos.toml"
    config.write_text("")
    argv = ["retention", "--survival", str(survival), "--out", str(tmp_path / "out")]
    return cli.main([*argv, "--config", str(config), *extra])


def test_reproduces_the_paper_through_the_command(tmp_path: Path) -> None:
    assert (
        _run(tmp_path, FIXTURE, "--price", "100", "--margin", "0.5", "--discount-rate", "0.1") == 0
    )
    result = json.loads((tmp_path / "out" / RETENTION_PARAMS_FILE).read_text())
    assert set(result["cohorts"]) == set(PAPER)
    for name, (alpha, beta) in PAPER.items():
        entry = result["cohorts"][name]
        assert entry["alpha"] == pytest.approx(alpha, rel=0.01)
        assert entry["beta"] == pytest.approx(beta, rel=0.01)
        assert entry["surviving_kind"] == "share"
        assert entry["standard_errors"] is None  # shares carry no counts
        params = cohort_params(entry)
        assert entry["retention"] == pytest.approx(
            list(sbg.retention_rates(params, range(1, 13))), rel=1e-12
        )
        assert len(entry["survival"]) == 13 and entry["survival"][0] == 1.0
        assert entry["observed_survival"][1:8] == pytest.approx(
            pd.read_csv(FIXTURE).query("cohort == @name")["surviving"].to_numpy()[1:], rel=1e-12
        )
        del_ = sbg.discounted_expected_lifetime(params, 0.1)
        assert entry["discounted_expected_lifetime"] == pytest.approx(del_)
        assert entry["expected_lifetime_value"] == pytest.approx(del_ * 0.5 * 100)
        assert entry["expected_lifetime"] is None  # alpha < 1: a heavy tail of loyal customers


def test_counts_give_standard_errors(tmp_path: Path) -> None:
    table = pd.read_csv(FIXTURE)
    table["surviving"] = (table["surviving"] * 1000).round()
    path = tmp_path / "counts.csv"
    table.to_csv(path, index=False)
    assert _run(tmp_path, path) == 0
    result = json.loads((tmp_path / "out" / RETENTION_PARAMS_FILE).read_text())
    regular = result["cohorts"]["Regular"]
    assert regular["surviving_kind"] == "count"
    assert regular["alpha"] == pytest.approx(0.704, rel=0.01)
    assert all(v > 0 for v in regular["standard_errors"].values())


@pytest.mark.parametrize(
    "rows",
    [
        [("a", 0, 100), ("a", 2, 50)],  # a gap
        [("a", 0, 100), ("a", 1, 120)],  # rises
        [("a", 1, 100), ("a", 2, 50)],  # no period 0
        [("a", 0, 100), ("a", 1, -1)],
    ],
)
def test_bad_tables_exit_2(tmp_path: Path, rows: list[tuple[str, int, float]]) -> None:
    path = tmp_path / "bad.csv"
    pd.DataFrame(rows, columns=["cohort", "period", "surviving"]).to_csv(path, index=False)
    assert _run(tmp_path, path) == 2
