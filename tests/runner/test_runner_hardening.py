"""Runs that survive crashes, keep their secrets and do not pile up (issue 10 situations 1 and 2,
issue 14 items 4 and 7), on quick fixture notebooks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from test_runner import (
    FIXTURE_NOTEBOOKS,
    cli_run,
    fake_scoring,
    fixture_config,
    run_fixture,
    write_users,
)

from insightos_utils import reports as portal
from insightos_utils import runner
from insightos_utils.cli import main
from insightos_utils.config import RunConfig
from insightos_utils.runner.prune import runs_to_prune

HOLD_FLAG = "hold-the-run"


def _notebook(folder: Path, name: str, parameters: str, body: str) -> Path:
    cell = nbformat.v4.new_code_cell(parameters)
    cell.metadata["tags"] = ["parameters"]
    notebook = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_markdown_cell(f"# {name}"), cell, nbformat.v4.new_code_cell(body)]
    )
    notebook.metadata["kernelspec"] = {"name": "insightos", "display_name": "InsightOS (.venv)",
                                       "language": "python"}  # fmt: skip
    path = folder / f"{name}.ipynb"
    nbformat.write(notebook, path)
    return path


def staged_notebooks(folder: Path) -> Path:
    """The fixture notebooks, then one that records stages and waits while ``HOLD_FLAG``
    exists in the working directory (so a test can kill a run in the middle of it)."""
    folder.mkdir(parents=True, exist_ok=True)
    for source in FIXTURE_NOTEBOOKS.glob("*.ipynb"):
        (folder / source.name).write_bytes(source.read_bytes())
    _notebook(
        folder,
        "03_stages",
        'run_dir = ""\nprevious_run_dir = ""\nprevious_scores_dir = ""',
        "import pathlib, time\n"
        "from insightos_utils.stages import StageSkipped, run_stage\n"
        "run_stage(run_dir, 'ingest', lambda: None)\n"
        "def no_spend():\n"
        "    raise StageSkipped('no campaign_spend table.', 'Add campaign_spend.csv.')\n"
        "run_stage(run_dir, 'ltv', no_spend)\n"
        "pathlib.Path(run_dir, 'previous.txt').write_text(previous_run_dir)\n"
        "pathlib.Path(run_dir, 'previous_scores.txt').write_text(previous_scores_dir)\n"
        f"while pathlib.Path({HOLD_FLAG!r}).exists():\n"
        "    pathlib.Path(run_dir, 'waiting').write_text('x')\n"
        "    time.sleep(0.2)",
    )
    return folder


def _run_args(workspace: Path, notebooks: Path, *extra: str) -> list[str]:
    return ["run", "--notebooks", str(notebooks), "--reports-dir", str(workspace / "reports"),
            "--no-progress", "--raw", str(workspace / "raw"), *extra]  # fmt: skip


@pytest.mark.notebook
@pytest.mark.slow
def test_a_run_killed_mid_notebook_does_not_break_the_next_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    workspace = tmp_path
    write_users(workspace / "raw", 40)
    notebooks = staged_notebooks(workspace / "notebooks")
    monkeypatch.chdir(workspace)
    assert main(_run_args(workspace, notebooks)) == 0
    reports = workspace / "reports"
    first = (reports / "latest").resolve()
    # a leftover written by an older version: no start time at all
    legacy = reports / "runs" / f"{runner.new_run_id()}.failed"
    legacy.mkdir()
    (legacy / "run.json").write_text(json.dumps({"run_id": legacy.name, "started_at": None}))

    (workspace / HOLD_FLAG).write_text("x")
    killed = subprocess.Popen(
        [sys.executable, "-m", "insightos_utils", *_run_args(workspace, notebooks)],
        cwd=workspace,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 180
    while not list((reports / "runs").glob(".*.partial/waiting")):
        assert time.monotonic() < deadline and killed.poll() is None, "the run never got going"
        time.sleep(0.2)
    os.killpg(killed.pid, signal.SIGKILL)  # the whole process group, as an OOM killer or kill -9
    killed.wait(30)
    (workspace / HOLD_FLAG).unlink()

    capsys.readouterr()
    assert main(_run_args(workspace, notebooks)) == 0, capsys.readouterr().err
    second = (reports / "latest").resolve()
    assert second != first
    (interrupted,) = (reports / "runs").glob("*.interrupted")
    meta = json.loads((interrupted / "run.json").read_text())
    assert meta["status"] == "interrupted" and meta["started_at"]
    assert [nb["status"] for nb in meta["notebooks"]][:2] == ["ok", "ok"]
    assert meta["stages"]["ingest"]["state"] == "ok"  # what it had recorded
    assert meta["stages"]["product"]["state"] == "failed"  # what it never reached
    assert "killed" in (interrupted / "index.html").read_text()
    index = (reports / "index.html").read_text()
    assert f"runs/{interrupted.name}/index.html" in index and second.name in index
    assert legacy.name in index

    calls: list[dict] = []
    fake_scoring(monkeypatch, calls)
    assert main(_run_args(workspace, notebooks, "--score-only")) == 0
    assert calls and (reports / "latest_scores").resolve().name.endswith("-score")
    assert not list((reports / "runs").glob(".*.partial"))


@pytest.mark.notebook
def test_stages_previous_run_and_not_computed_sections(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Also: each run's trend compares with the most recent published scoring run of either
    kind (a full run with a newer score-only run, a score-only run with a newer full run)."""
    write_users(tmp_path / "raw", 40)
    notebooks = staged_notebooks(tmp_path / "notebooks")
    config = fixture_config(tmp_path / "raw")
    first = run_fixture(tmp_path, config, notebooks_dir=notebooks)
    meta = json.loads((first / "run.json").read_text())
    assert meta["stages"]["ingest"] == {"state": "ok"}
    assert meta["stages"]["ltv"] == {
        "state": "skipped",
        "reason": "no campaign_spend table.",
        "fix": "Add campaign_spend.csv.",
    }
    assert (first / "previous.txt").read_text() == ""  # no previous published run
    assert (first / "previous_scores.txt").read_text() == ""
    assert meta["trend_compared_with"] is None
    page = (first / "index.html").read_text()
    assert "Not computed" in page and "Add campaign_spend.csv." in page
    for path in first.rglob("*"):  # personal data is not world-readable ([run] umask 0027)
        assert path.stat().st_mode & 0o007 == 0, path

    seen: list[dict] = []
    fake_scoring(monkeypatch, [], options_seen=seen)
    scores = run_fixture(tmp_path, config, score_only=True)
    assert seen[-1]["previous_run_dir"] == first  # the only scoring run so far: the full one
    second = run_fixture(tmp_path, config, notebooks_dir=notebooks)
    assert (second / "previous.txt").read_text() == str(first)  # ingest: the last full run
    assert (second / "previous_scores.txt").read_text() == str(scores)  # trend: the newer run
    compared = json.loads((second / "run.json").read_text())["trend_compared_with"]
    assert compared["run_id"] == scores.name and compared["kind"] == "score"
    run_fixture(tmp_path, config, score_only=True)
    assert seen[-1]["previous_run_dir"] == second  # newer than the last score-only run
    latest_scores = (tmp_path / "reports" / "latest_scores").resolve()
    compared = json.loads((latest_scores / "run.json").read_text())["trend_compared_with"]
    assert compared["run_id"] == second.name and compared["kind"] == "full"


@pytest.mark.notebook
def test_a_published_run_never_fails_on_bookkeeping(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    write_users(tmp_path / "raw", 40)

    def broken_index(*_args, **_kwargs):
        raise TypeError("'<' not supported between instances of 'NoneType' and 'str'")

    original = portal.write_index
    monkeypatch.setattr(portal, "write_index", broken_index)
    monkeypatch.chdir(tmp_path)
    assert main(cli_run(tmp_path, "--raw", "raw")) == 0
    err = capsys.readouterr().err
    assert "index.html was not rebuilt" in err
    run_dir = (tmp_path / "reports" / "latest").resolve()
    assert json.loads((run_dir / "run.json").read_text())["status"] == "ok"
    monkeypatch.setattr(portal, "write_index", original)
    assert main(cli_run(tmp_path, "--raw", "raw")) == 0  # the next run rebuilds it from disk
    assert run_dir.name in (tmp_path / "reports" / "index.html").read_text()


def _fake_run(runs: Path, run_id: str, **meta) -> Path:
    folder = runs / run_id
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps({"run_id": run_id, **meta}))
    return folder


def test_the_latest_scoring_run_is_the_newest_published_one_of_either_kind(
    tmp_path: Path,
) -> None:
    from insightos_utils.runner.folders import latest_scoring_run, publish

    runs = tmp_path / "runs"
    assert latest_scoring_run(tmp_path) is None
    full = _fake_run(runs, "20260601T000000Z-f1", kind="full", started_at="2026-06-01T00:00:00",
                     finished_at="2026-06-01T00:05:00+00:00")  # fmt: skip
    publish(tmp_path, full, portal.LATEST)
    assert latest_scoring_run(tmp_path) == (full.resolve(), portal.read_run_meta(full))
    score = _fake_run(runs, "20260601T000500Z-s1-score", kind="score",
                      started_at="2026-06-01T00:05:00+00:00",
                      finished_at="2026-06-01T00:05:00+00:00")  # fmt: skip
    publish(tmp_path, score, portal.LATEST_SCORES)  # finished in the same second: started later
    assert latest_scoring_run(tmp_path) == (score.resolve(), portal.read_run_meta(score))
    newer = _fake_run(runs, "20260602T000000Z-f2", kind="full")  # no times: its run id's
    publish(tmp_path, newer, portal.LATEST)
    assert latest_scoring_run(tmp_path) == (newer.resolve(), portal.read_run_meta(newer))


def test_old_runs_are_pruned_but_never_the_published_ones(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    reports, now = tmp_path, datetime(2026, 6, 30, tzinfo=UTC)
    runs = reports / "runs"

    def stamp(days_ago: float) -> str:
        return (now - timedelta(days=days_ago)).isoformat()

    full = [_fake_run(runs, f"2026060{d}T000000Z-f{d}", kind="full", status="ok",
                      started_at=stamp(30 - d)) for d in range(1, 6)]  # fmt: skip
    score = [_fake_run(runs, f"2026061{d}T000000Z-s{d}-score", kind="score", status="ok",
                       started_at=stamp(20 - d)) for d in range(1, 6)]  # fmt: skip
    old_failed = _fake_run(runs, "20260501T000000Z-x1.failed", status="failed",
                           started_at=stamp(60))  # fmt: skip
    recent_failed = _fake_run(runs, "20260629T000000Z-x2.failed", status="failed",
                              started_at=stamp(1))  # fmt: skip
    no_time = _fake_run(runs, "20260401T000000Z-x3.interrupted", status="interrupted")
    (reports / "latest").symlink_to(f"runs/{full[0].name}")  # the oldest full run is published
    (reports / "latest_scores").symlink_to(f"runs/{score[-1].name}")

    settings = RunConfig(keep_runs=2, keep_score_runs=3, keep_failed_days=14)
    doomed = set(runs_to_prune(reports, settings, now=now))
    assert full[0] not in doomed and score[-1] not in doomed  # published: never removed
    assert {f for f in full if f not in doomed} == {full[0], full[4]}  # latest + newest
    assert {s for s in score if s not in doomed} == {score[4], score[3], score[2]}
    assert old_failed in doomed and no_time in doomed and recent_failed not in doomed
    assert runs_to_prune(reports, RunConfig(keep_runs=0, keep_score_runs=0, keep_failed_days=365),
                         now=now) == []  # fmt: skip


def test_readers_of_run_json_tolerate_missing_and_null_fields(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    _fake_run(runs, "20260101T000000Z-aaaa.failed", started_at=None, notebooks=None, config=None)
    _fake_run(runs, "20260102T000000Z-bbbb", status="ok", started_at="2026-01-02T00:00:00+00:00")
    (runs / "20260103T000000Z-cccc.interrupted").mkdir()
    (runs / "20260103T000000Z-cccc.interrupted" / "run.json").write_text("[1, 2]")
    listed = [folder.name for folder, _ in portal.list_runs(tmp_path)]
    assert listed == ["20260102T000000Z-bbbb", "20260101T000000Z-aaaa.failed"]
    (tmp_path / "latest").symlink_to("runs/20260101T000000Z-aaaa.failed")
    index = portal.write_index(tmp_path).read_text()
    assert "20260101T000000Z-aaaa.failed" in index
    portal.write_run_summary(runs / "20260101T000000Z-aaaa.failed", {"started_at": None})


def test_ingest_warnings_reach_run_json_and_the_summary_and_as_of_never_lies_ahead(
    tmp_path: Path,
) -> None:
    from insightos_utils.config import PipelineConfig
    from insightos_utils.runner.notebooks import RunLog
    from insightos_utils.runner.run import _after_ingest

    (tmp_path / "processed").mkdir()
    shrank = {"kind": "table_shrank", "table": "events", "message": "events has 10 rows, 90% fewer"}
    report = {
        "latest_timestamp": "2026-06-30T05:00:00",  # within the tolerance, past the clock
        "as_of_default": "2026-06-30T02:00:00",
        "warnings": [shrank],
    }
    (tmp_path / "processed" / "ingest_report.json").write_text(json.dumps(report))
    meta: dict = {"run_id": tmp_path.name, "status": "ok"}
    log = RunLog(tmp_path / "run.log")
    config = _after_ingest(PipelineConfig(), tmp_path, meta, log)
    log.close()
    assert config.data.as_of == "2026-06-30T02:00:00" and meta["as_of"] == config.data.as_of
    assert meta["ingest_warnings"] == [shrank]
    assert "90% fewer" in (tmp_path / "run.log").read_text()
    page = portal.write_run_summary(tmp_path, meta).read_text()
    assert "Check the data first" in page and "90% fewer" in page
    given = PipelineConfig().with_overrides(as_of="2026-01-01")  # an explicit as-of is kept
    assert _after_ingest(given, tmp_path, {}, RunLog(tmp_path / "x.log")).data.as_of == "2026-01-01"
