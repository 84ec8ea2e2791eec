import json
from pathlib import Path

import pytest

from insightos_utils import stages
from insightos_utils.errors import InputError


def test_a_stage_that_works_is_ok_and_returns_its_result(tmp_path: Path) -> None:
    outcome = stages.run_stage(tmp_path, "ltv", lambda: 42)
    assert outcome.ok and outcome.result == 42 and outcome.not_computed() == ""
    assert json.loads((tmp_path / stages.STAGES_FILE).read_text()) == {"ltv": {"state": "ok"}}


def test_a_skipped_stage_says_why_and_what_would_fix_it(tmp_path: Path) -> None:
    def no_transactions() -> None:
        raise stages.StageSkipped("the company has no transactions table.", "Add transactions.csv.")

    outcome = stages.run_stage(tmp_path, "ltv", no_transactions)
    assert outcome.skipped and outcome.result is None
    assert "Not computed: ltv" in outcome.not_computed()
    assert "Add transactions.csv." in outcome.not_computed()
    recorded = stages.read_stages(tmp_path)["ltv"]
    assert recorded == {
        "state": "skipped",
        "reason": "the company has no transactions table.",
        "fix": "Add transactions.csv.",
    }


def test_bad_input_and_bugs_are_recorded_as_failed_and_raised(tmp_path: Path) -> None:
    def bad() -> None:
        raise InputError("users.csv: column status")

    with pytest.raises(InputError):
        stages.run_stage(tmp_path, "ingest", bad)
    assert stages.read_stages(tmp_path)["ingest"]["state"] == "failed"
    with pytest.raises(ZeroDivisionError):
        stages.run_stage(tmp_path, "features", lambda: 1 / 0)
    recorded = stages.read_stages(tmp_path)
    assert (
        recorded["features"]["state"] == "failed"
        and "ZeroDivisionError" in recorded["features"]["reason"]
    )
    assert recorded["ingest"]["state"] == "failed"  # records of other stages are kept


def test_unknown_stage_names_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown stage"):
        stages.run_stage(tmp_path, "lead scoring", lambda: None)


def test_without_a_run_folder_nothing_is_written(tmp_path: Path) -> None:
    assert stages.run_stage("", "ltv", lambda: 1).ok
    assert stages.read_stages("") == {}
    assert not list(tmp_path.iterdir())
