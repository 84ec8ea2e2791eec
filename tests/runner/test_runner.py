"""Headless runs on small fixture notebooks: complete runs, failures that publish nothing,
the lock, score-only runs; and the notebooks under nbval."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import types
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest

from insightos_utils import reports as portal
from insightos_utils import runner
from insightos_utils.cli import main
from insightos_utils.config import PipelineConfig
from insightos_utils.errors import InputError, InsightOSError

FIXTURE_NOTEBOOKS = Path(__file__).parents[1] / "fixtures" / "notebooks"
NBVAL_USERS = 2_000
CONTRACT_FILES = (
    "scored_leads.csv",
    "model_card.json",
    "ltv_params.json",
    "customer_ltv.csv",
    "campaign_ltv.csv",
    "funnel.csv",
    "run.log",
    "run.json",
    "index.html",
)


def write_users(raw_dir: Path, n_users: int) -> Path:
    """The raw users table the fixture notebooks read."""
    raw_dir.mkdir(parents=True, exist_ok=True)
    statuses = ["lead", "trial", "converted", "lost"]
    campaigns = ["google_gestao_agil", "facebook", "(none)"]
    with (raw_dir / "users.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["user_id", "created_at", "status", "campaign"])
        for i in range(1, n_users + 1):
            created = f"2026-0{1 + i % 5}-{10 + i % 18}T10:00:00"
            writer.writerow([f"u{i}", created, statuses[i % 4], campaigns[i % 3]])
    return raw_dir


def fixture_config(raw_dir: Path, **overrides) -> PipelineConfig:
    return PipelineConfig().with_overrides(raw_dir=str(raw_dir), **overrides)


def run_fixture(workspace: Path, config: PipelineConfig, **kwargs) -> Path:
    kwargs.setdefault("notebooks_dir", FIXTURE_NOTEBOOKS)
    return runner.run_pipeline(
        config,
        reports_dir=workspace / "reports",
        cwd=workspace,
        show_progress=False,
        lock_timeout=60,
        **kwargs,
    )


def cli_run(workspace: Path, *args: str) -> list[str]:
    return [
        "run",
        "--notebooks",
        str(FIXTURE_NOTEBOOKS),
        "--reports-dir",
        str(workspace / "reports"),
        "--no-progress",
        *args,
    ]


@pytest.fixture(scope="module")
def good_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One successful run of the fixture notebooks; the tests below build on its workspace."""
    workspace = tmp_path_factory.mktemp("workspace")
    raw = write_users(workspace / "raw", 40)
    return run_fixture(workspace, fixture_config(raw))


def latest_of(run_dir: Path) -> Path:
    return run_dir.parents[1] / "latest"


@pytest.mark.notebook
def test_a_run_writes_a_complete_folder_and_publishes_it(good_run: Path) -> None:
    reports = good_run.parents[1]
    for name in CONTRACT_FILES:
        assert (good_run / name).is_file(), name
    for stem in ("01_ingest", "02_report"):
        assert (good_run / f"{stem}.ipynb").is_file() and (good_run / f"{stem}.html").is_file()
    assert (good_run / "models" / "champion.joblib").is_file()
    assert (good_run / "processed" / "users.parquet").is_file()  # the run's own processed data
    assert not list((reports / "runs").glob(".*.partial"))
    latest = reports / "latest"
    assert latest.is_symlink() and os.readlink(latest) == f"runs/{good_run.name}"
    assert f"runs/{good_run.name}/index.html" in (reports / "index.html").read_text()

    meta = json.loads((good_run / "run.json").read_text())
    assert meta["status"] == "ok" and meta["run_id"] == good_run.name
    assert [nb["name"] for nb in meta["notebooks"]] == ["01_ingest.ipynb", "02_report.ipynb"]
    assert all(nb["seconds"] > 0 and nb["status"] == "ok" for nb in meta["notebooks"])
    assert meta["open_leads"] == 20  # 40 users, half lead or trial
    assert meta["holdout_roc_auc"] == pytest.approx(0.6 + 40 % 30 / 100)
    assert meta["ltv_ratio"] == pytest.approx(70 / 30)
    assert meta["data_window"]["start"].startswith("2026-01")
    assert meta["as_of"] == meta["data_window"]["end"]
    assert meta["versions"]["papermill"] and meta["config"]["raw_dir"].endswith("raw")

    log = (good_run / "run.log").read_text()
    assert "01_ingest.ipynb: parameters" in log and "02_report.ipynb: ran in" in log
    assert "40 users ingested" in log  # the notebooks' own output is kept in the log


@pytest.mark.notebook
def test_each_notebook_gets_only_the_parameters_it_declares(good_run: Path) -> None:
    executed = nbformat.read(good_run / "01_ingest.ipynb", as_version=4)
    injected = next(
        c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])
    )
    assert "raw_dir = " in injected.source and "processed_dir = " in injected.source
    assert "feature_window_days" not in injected.source
    assert str(good_run.parent / f".{good_run.name}.partial" / "processed") in injected.source


@pytest.mark.notebook
def test_a_failing_notebook_names_the_cell_and_publishes_nothing(
    good_run: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    workspace = good_run.parents[2]
    reports = workspace / "reports"
    latest_before = os.readlink(reports / "latest")
    scores_before = (good_run / "scored_leads.csv").read_bytes()
    monkeypatch.chdir(workspace)
    status = main(cli_run(workspace, "--raw", "raw", "--feature-window-days", "400"))

    assert status == 1
    stderr = capsys.readouterr().err
    assert "02_report.ipynb: cell 3" in stderr and "ValueError" in stderr
    assert "feature_window_days must be at most a year" in stderr
    assert os.readlink(reports / "latest") == latest_before
    assert (good_run / "scored_leads.csv").read_bytes() == scores_before
    failed = sorted((reports / "runs").glob("*.failed"))
    assert failed, "the failed run is kept, marked failed"
    folder = failed[-1]
    log = (folder / "run.log").read_text()
    assert "FAILED: 02_report.ipynb: cell 3" in log and "ValueError" in log
    assert (folder / "02_report.ipynb").is_file()  # the executed notebook, with the error
    assert not (folder / "02_report.html").exists()
    meta = json.loads((folder / "run.json").read_text())
    assert meta["status"] == "failed" and meta["error"]["cell_index"] == 3
    assert meta["error"]["ename"] == "ValueError"
    assert f"runs/{folder.name}/index.html" in (reports / "index.html").read_text()


@pytest.mark.notebook
def test_bad_input_in_a_notebook_exits_2(
    good_run: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    workspace = good_run.parents[2]
    latest_before = os.readlink(workspace / "reports" / "latest")
    (workspace / "empty_raw").mkdir()
    monkeypatch.chdir(workspace)
    status = main(cli_run(workspace, "--raw", "empty_raw"))
    assert status == 2
    stderr = capsys.readouterr().err
    assert "01_ingest.ipynb: cell" in stderr and "raised InputError" in stderr
    assert "users.csv: required file is missing" in stderr
    assert os.readlink(workspace / "reports" / "latest") == latest_before


@pytest.mark.notebook
def test_suspected_leakage_blocks_publishing_when_configured(
    good_run: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    workspace = good_run.parents[2]
    latest_before = os.readlink(workspace / "reports" / "latest")
    notebooks = write_light_notebook(workspace / "light")
    monkeypatch.chdir(workspace)
    args = ["run", "--notebooks", str(notebooks), "--reports-dir", "reports", "--no-progress"]
    assert main([*args, "--block-on-leakage"]) == 1
    assert "01_all.ipynb: suspected leakage" in capsys.readouterr().err
    assert os.readlink(workspace / "reports" / "latest") == latest_before


def test_a_second_run_waits_for_the_lock_then_gives_up_clearly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from filelock import FileLock

    (tmp_path / "reports").mkdir()
    with FileLock(str(tmp_path / "reports" / runner.LOCK_NAME)):
        status = main(cli_run(tmp_path, "--raw", str(tmp_path), "--lock-timeout", "0.2"))
    assert status == 1
    assert "another insightos run is in progress" in capsys.readouterr().err


def write_light_notebook(folder: Path) -> Path:
    """One quick notebook (no pandas, one kernel) that writes every contract output.

    Its model card reports a holdout AUC of 0.995, so a low ``suspect_holdout_auc`` makes it
    suspect leakage.
    """
    folder.mkdir(parents=True, exist_ok=True)
    parameters = nbformat.v4.new_code_cell('run_dir = "."\nsuspect_holdout_auc = 0.99')
    parameters.metadata["tags"] = ["parameters"]
    body = nbformat.v4.new_code_cell(
        "import json, pathlib\n"
        "out = pathlib.Path(run_dir)\n"
        "for name in ['customer_ltv.csv', 'campaign_ltv.csv', 'funnel.csv', 'ltv_params.json']:\n"
        "    (out / name).write_text('{}' if name.endswith('json') else 'user_id\\n')\n"
        "card = {'champion': 'v2_xgboost', 'models': {'v2_xgboost': {'holdout_roc_auc': 0.995}},\n"
        "        'leakage_suspected': 0.995 > suspect_holdout_auc}\n"
        "(out / 'model_card.json').write_text(json.dumps(card))\n"
        "(out / 'scored_leads.csv').write_text('user_id,score\\nu1,0.5\\nu2,0.4\\n')"
    )
    notebook = nbformat.v4.new_notebook(cells=[parameters, body])
    notebook.metadata["kernelspec"] = {"name": "insightos", "display_name": "InsightOS (.venv)",
                                       "language": "python"}  # fmt: skip
    nbformat.write(notebook, folder / "01_all.ipynb")
    return folder


@pytest.mark.notebook
@pytest.mark.slow
def test_two_runs_started_together_take_turns(tmp_path: Path) -> None:
    notebooks = write_light_notebook(tmp_path / "light")
    command = [
        sys.executable, "-m", "insightos_utils", "run", "--notebooks", str(notebooks),
        "--reports-dir", "reports", "--raw", "raw", "--no-progress",
    ]  # fmt: skip
    processes = [
        subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    outputs = [process.communicate(timeout=180) for process in processes]
    assert [p.returncode for p in processes] == [0, 0], [err.decode() for _, err in outputs]
    run_dirs = sorted(Path(out.decode().strip()) for out, _ in outputs)
    assert len(set(run_dirs)) == 2
    metas = [json.loads((run_dir / "run.json").read_text()) for run_dir in run_dirs]
    assert all(meta["status"] == "ok" and meta["open_leads"] == 2 for meta in metas)
    assert all(meta["leakage_suspected"] for meta in metas)  # reported, not blocking by default
    first, second = metas
    assert first["finished_at"] <= second["started_at"]  # one after the other
    assert second["previous_run"] == first["run_id"]
    assert (tmp_path / "reports" / "latest").resolve() == run_dirs[1].resolve()
    assert not list((tmp_path / "reports" / "runs").glob(".*"))


def fake_scoring(
    monkeypatch: pytest.MonkeyPatch,
    calls: list[dict],
    fail: Exception | None = None,
    options_seen: list[dict] | None = None,
):
    """A stand-in for ``scoring.score_command``, so these tests need no trained model."""

    def score_command(
        model_path, out_path, raw_dir=None, source_url=None, as_of=None, db_url=None, **options
    ):
        calls.append(
            {"model_path": model_path, "raw_dir": raw_dir, "as_of": as_of, "db_url": db_url}
        )
        if options_seen is not None:
            options_seen.append(options)
        if fail is not None:
            raise fail
        Path(out_path).write_text(
            "user_id,score,grade,rank,top_reasons,model_version,scored_at\n"
            "u7,0.91,A,1,came back twice,v1_logreg@fixture,2026-06-30\n"
            "u3,0.42,C,2,one session,v1_logreg@fixture,2026-06-30\n"
        )
        return Path(out_path)

    module = types.ModuleType("insightos_utils.leads.scoring")
    module.score_command = score_command
    monkeypatch.setitem(sys.modules, "insightos_utils.leads.scoring", module)


@pytest.mark.notebook
def test_score_only_uses_the_published_champion_and_leaves_latest_alone(
    good_run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workspace = good_run.parents[2]
    reports = workspace / "reports"
    latest_before = os.readlink(reports / "latest")
    champion = (reports / "latest" / "models" / "champion.joblib").resolve()
    calls: list[dict] = []
    fake_scoring(monkeypatch, calls)
    score_dir = run_fixture(workspace, fixture_config(workspace / "raw"), score_only=True)

    assert score_dir.name.endswith("-score") and score_dir.parent == reports / "runs"
    assert calls == [
        {"model_path": champion, "raw_dir": workspace / "raw", "as_of": None, "db_url": None}
    ]
    assert (score_dir / "scored_leads.csv").read_text().count("\n") == 3
    meta = json.loads((score_dir / "run.json").read_text())
    assert meta["kind"] == "score" and meta["status"] == "ok" and meta["open_leads"] == 2
    assert meta["model_run"] == Path(latest_before).name
    assert os.readlink(reports / "latest") == latest_before
    assert os.readlink(reports / "latest_scores") == f"runs/{score_dir.name}"
    index = (reports / "index.html").read_text()
    assert f"runs/{score_dir.name}/index.html" in index
    assert "latest_scores/scored_leads.csv" in index

    calls.clear()
    fake_scoring(monkeypatch, calls, fail=InputError("users.csv: column 'status' is missing"))
    monkeypatch.chdir(workspace)
    assert main(cli_run(workspace, "--score-only", "--raw", "raw")) == 2
    assert os.readlink(reports / "latest_scores") == f"runs/{score_dir.name}"


def test_score_only_without_a_champion_says_run_the_pipeline_first(tmp_path: Path) -> None:
    with pytest.raises(InsightOSError, match="run the full pipeline"):
        run_fixture(tmp_path, fixture_config(tmp_path), score_only=True)


def test_an_explicit_out_folder_is_used_and_nothing_is_published(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reports = tmp_path / "reports"
    champion_run = reports / "runs" / "20260101T000000Z-aaaa"
    (champion_run / "models").mkdir(parents=True)
    (champion_run / "models" / "champion.joblib").write_bytes(b"model")
    (champion_run / "run.json").write_text(json.dumps({"run_id": champion_run.name}))
    (reports / "latest").symlink_to(f"runs/{champion_run.name}")
    stale_id = runner.new_run_id()
    stale = reports / "runs" / f".{stale_id}.partial"  # left by a killed run, no run.json
    stale.mkdir()
    fake_scoring(monkeypatch, [])

    out = run_fixture(tmp_path, fixture_config(tmp_path), score_only=True, out_dir="mine")
    assert out == tmp_path / "mine" and (out / "scored_leads.csv").is_file()
    assert not (reports / "latest_scores").exists()
    labelled = reports / "runs" / f"{stale_id}.interrupted"
    assert not stale.exists() and labelled.is_dir()
    meta = json.loads((labelled / "run.json").read_text())
    assert meta["status"] == "interrupted" and meta["started_at"]  # read from the run id
    with pytest.raises(InsightOSError, match="already exists and is not empty"):
        run_fixture(tmp_path, fixture_config(tmp_path), score_only=True, out_dir="mine")


def test_notebook_failure_maps_input_errors_to_exit_2(tmp_path: Path) -> None:
    from papermill.exceptions import PapermillExecutionError

    executed = tmp_path / "01_ingest.ipynb"
    notebook = nbformat.v4.new_notebook()
    injected = nbformat.v4.new_code_cell("raw_dir = 'x'")
    injected.metadata["tags"] = ["injected-parameters"]
    notebook.cells = [nbformat.v4.new_markdown_cell("# t"), injected, nbformat.v4.new_code_cell()]
    nbformat.write(notebook, executed)

    def error(ename: str) -> PapermillExecutionError:
        return PapermillExecutionError(2, 3, "ingest(raw_dir)\n", ename, "users.csv: bad", [])

    failure, details = runner.notebook_failure(executed, executed, error("InputError"))
    assert isinstance(failure, InputError) and failure.exit_status == 2
    assert str(failure).startswith("01_ingest.ipynb: cell 1 (execution count [3]")
    assert details["cell_index"] == 1  # the injected parameters cell is not the author's
    failure, _ = runner.notebook_failure(executed, executed, error("KeyError"))
    assert not isinstance(failure, InputError) and failure.exit_status == 1


def test_run_ids_sort_by_time_and_urls_hide_passwords() -> None:
    from datetime import UTC, datetime

    early = runner.new_run_id(datetime(2026, 1, 1, 9, tzinfo=UTC))
    late = runner.new_run_id(datetime(2026, 1, 1, 10, tzinfo=UTC))
    assert early.startswith("20260101T090000Z-") and early < late
    assert "secret" not in runner.redact_url("postgresql+psycopg://bob:secret@db:5432/crm")


@pytest.mark.extended  # `make test-slow`: every notebook already runs in the corpus and pipeline_run
@pytest.mark.notebook
@pytest.mark.slow
def test_notebooks_pass_nbval_on_small_parameters(repo_root: Path, tmp_path: Path) -> None:
    """The repository's notebooks, parameters made small with papermill, pass ``--nbval-lax``.

    A small synthetic company stands in for data/raw; each notebook receives only the names its
    ``parameters`` cell declares, as ``insightos run`` would pass them.
    """
    import papermill
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    from insightos_utils.synth import write_company

    notebooks = sorted((repo_root / "notebooks").glob(runner.NOTEBOOK_GLOB))
    assert len(notebooks) >= 5, notebooks  # 01..05: a missing notebook fails
    raw = tmp_path / "raw"
    write_company(raw, n_users=NBVAL_USERS, seed=7)
    small = {
        "raw_dir": str(raw),
        "processed_dir": str(tmp_path / "processed"),
        "run_dir": str(tmp_path / "run"),
        "bootstrap_samples": 200,
    }
    copies = []
    for source in notebooks:
        declared = set(papermill.inspect_notebook(str(source)))
        values = {name: value for name, value in small.items() if name in declared}
        copies.append(tmp_path / source.name)
        nbformat.write(parameterize_notebook(load_notebook_node(str(source)), values), copies[-1])
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", "-q", "-p", "no:cacheprovider",
         f"--nbval-kernel-name={runner.kernel_name()}", f"--rootdir={tmp_path}",
         *map(str, copies)],
        cwd=repo_root, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stdout[-4000:]
    code_cells = sum(
        cell.cell_type == "code" for copy in copies for cell in nbformat.read(copy, 4).cells
    )
    assert f"{code_cells} passed" in completed.stdout  # every code cell ran as a test
    assert (tmp_path / "run" / "scored_leads.csv").is_file()
    assert (tmp_path / "run" / "campaign_ltv.csv").is_file()


def test_run_metrics_prefer_the_ltv_notebooks_own_ratio(tmp_path: Path) -> None:
    (tmp_path / "model_card.json").write_text(
        json.dumps({"champion": "v1_logreg", "models": {"v1_logreg": {"holdout_roc_auc": 0.71}}})
    )
    (tmp_path / "scored_leads.csv").write_text("user_id,model_version\nu1,v1\nu2,v1\n")
    (tmp_path / "campaign_ltv.csv").write_text(
        "campaign,customers,ltv_mean\ngoogle_gestao_agil,10,60\nfacebook,10,30\n"
    )
    computed = runner.run_metrics(tmp_path, "google_gestao_agil")
    assert computed["ltv_ratio"] == pytest.approx(2.0)
    assert (computed["champion"], computed["holdout_roc_auc"]) == ("v1_logreg", 0.71)
    assert (computed["open_leads"], computed["model_version"]) == (2, "v1")
    ratio = {"ratio": 2.3, "ci_low": 1.9, "ci_high": 2.8}
    (tmp_path / "ltv_params.json").write_text(json.dumps({"reference_ratio": ratio}))
    stated = runner.run_metrics(tmp_path, "google_gestao_agil")
    assert stated["ltv_ratio"] == 2.3 and stated["ltv_ratio_ci"] == [1.9, 2.8]


@pytest.mark.notebook
@pytest.mark.slow
def test_end_to_end_run_writes_every_contract_file(pipeline_run: Path) -> None:
    """`insightos run` on the default synthetic company: every output the contract names."""
    import pandas as pd

    reports = pipeline_run.parents[1]
    assert os.readlink(reports / "latest") == f"runs/{pipeline_run.name}"
    assert f"runs/{pipeline_run.name}/index.html" in (reports / "index.html").read_text()
    meta = json.loads((pipeline_run / "run.json").read_text())
    assert meta["status"] == "ok"
    assert [nb["name"] for nb in meta["notebooks"]] == [
        "01_ingest.ipynb",
        "02_eda.ipynb",
        "03_lead_scoring.ipynb",
        "04_ltv.ipynb",
        "05_product.ipynb",
    ]
    log = (pipeline_run / "run.log").read_text()
    for nb in meta["notebooks"]:
        assert nb["seconds"] > 0 and (pipeline_run / nb["html"]).is_file()
        assert (pipeline_run / nb["name"]).is_file()
        assert f"--- {nb['name']}: ran in" in log

    scored = pd.read_csv(pipeline_run / "scored_leads.csv")
    contract = ["user_id", "score", "grade", "rank", "top_reasons", "model_version", "scored_at"]
    assert set(contract) <= set(scored.columns)
    assert len(scored) == meta["open_leads"] > 0 and scored["user_id"].is_unique
    assert scored["score"].between(0, 1).all() and set(scored["grade"]) <= set("ABCD")
    assert sorted(scored["rank"]) == list(range(1, len(scored) + 1))

    card = json.loads((pipeline_run / "model_card.json").read_text())
    assert {"champion", "models", "feature_window_days", "trained_at", "data_hash"} <= set(card)
    assert card["champion"] in {"v1_logreg", "v2_xgboost"} <= set(card["models"])
    for figures in card["models"].values():
        assert 0 < figures["holdout_roc_auc"] < 1 and 0 < figures["holdout_pr_auc"] < 1
    assert meta["holdout_roc_auc"] == card["models"][card["champion"]]["holdout_roc_auc"]
    assert (pipeline_run / "models" / "champion.joblib").is_file()

    params = json.loads((pipeline_run / "ltv_params.json").read_text())
    assert {"r", "alpha", "a", "b"} <= set(params["bgnbd"])
    assert {"p", "q", "v"} <= set(params["gamma_gamma"]) and params["time_unit"] == "W"
    customer_ltv = pd.read_csv(pipeline_run / "customer_ltv.csv", nrows=5)
    assert {"user_id", "frequency", "recency", "T", "monetary_value", "prob_alive",
            "expected_purchases", "ltv"} <= set(customer_ltv.columns)  # fmt: skip
    campaign_ltv = pd.read_csv(pipeline_run / "campaign_ltv.csv")
    assert {"campaign", "customers", "ltv_mean", "ltv_ci_low", "ltv_ci_high", "cac",
            "ltv_to_cac"} <= set(campaign_ltv.columns)  # fmt: skip
    assert meta["ltv_ratio"] > 0 and meta["data_window"]["start"] < meta["data_window"]["end"]


@pytest.mark.notebook
@pytest.mark.slow
def test_end_to_end_scored_leads_carry_expected_value_in_a_consistent_rank(
    pipeline_run: Path,
) -> None:
    """The default company has transactions: every open lead gets an expected value (score ×
    its campaign's new-customer value, or the overall one, said in value_basis), and rank is
    the calling order run.json names (by default: expected value, then score, then user id)."""
    scored = pd.read_csv(pipeline_run / "scored_leads.csv", dtype={"user_id": str})
    values = pd.read_csv(pipeline_run / "new_customer_value.csv").set_index("campaign")
    ranking = json.loads((pipeline_run / "run.json").read_text())["ranking"]
    assert ranking["rank_by"] == "value" and ranking["requested"] == "value"
    assert scored["expected_value"].notna().all() and scored["value_basis"].notna().all()
    assert (scored["expected_value_low"] <= scored["expected_value"]).all()
    assert (scored["expected_value"] <= scored["expected_value_high"]).all()
    own = scored["value_basis"].str.startswith("campaign's own fit")
    per_lead = np.where(
        own,
        scored["campaign"].map(values["value"]),
        values.loc["(all)", "value"],
    )
    assert np.allclose(scored["expected_value"], scored["score"] * per_lead, atol=1e-3)
    assert ranking["leads_on_own_campaign"] == int(own.sum())
    expected = scored.sort_values(
        ["expected_value", "score", "user_id"], ascending=[False, False, True]
    )
    assert expected["rank"].tolist() == list(range(1, len(scored) + 1))
    assert scored["rank"].tolist() == list(range(1, len(scored) + 1))  # rows in rank order
    page = (pipeline_run / "index.html").read_text()
    assert 'id="call-first-by-value"' in page and 'id="call-first-by-probability"' in page


@pytest.mark.notebook
def test_score_only_values_leads_with_the_published_runs_new_customer_values(
    good_run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A score-only run reads models/new_customer_value.csv of the published full run and the
    campaigns from the raw users; rank follows expected value."""
    workspace = good_run.parents[2]
    models = (workspace / "reports" / "latest").resolve() / "models"
    pd.DataFrame(
        {
            "campaign": ["(all)", "google_gestao_agil", "facebook"],
            "customers": [40, 30, 3],
            "value": [100.0, 1000.0, 100.0],
            "value_low": [80.0, 700.0, 80.0],
            "value_high": [120.0, 1300.0, 120.0],
            "fallback": [False, False, True],
            "basis": ["overall fit, every customer", "campaign's own fit", "overall value: few"],
        }
    ).to_csv(models / "new_customer_value.csv", index=False)
    try:
        fake_scoring(monkeypatch, [])  # u7 0.91 (facebook), u3 0.42 (google_gestao_agil)
        score_dir = run_fixture(workspace, fixture_config(workspace / "raw"), score_only=True)
    finally:
        (models / "new_customer_value.csv").unlink()
    scored = pd.read_csv(score_dir / "scored_leads.csv")
    assert scored["user_id"].tolist() == ["u3", "u7"] and scored["rank"].tolist() == [1, 2]
    assert scored["expected_value"].tolist() == pytest.approx([0.42 * 1000, 0.91 * 100])
    assert scored["campaign"].tolist() == ["google_gestao_agil", "facebook"]
    assert scored["value_basis"].tolist() == [
        "campaign's own fit (30 customers)",
        "overall value: few",
    ]
    meta = json.loads((score_dir / "run.json").read_text())
    assert meta["ranking"]["rank_by"] == "value"
    assert "ranked by value" in (score_dir / "run.log").read_text()


@pytest.mark.notebook
def test_a_run_without_new_customer_values_ranks_by_probability_and_says_why(
    good_run: Path,
) -> None:
    meta = json.loads((good_run / "run.json").read_text())
    assert meta["ranking"]["rank_by"] == "probability"
    assert "new_customer_value.csv" in meta["ranking"]["reason"]
    scored = pd.read_csv(good_run / "scored_leads.csv")
    assert scored["expected_value"].isna().all() and scored["rank"].tolist() == list(
        range(1, len(scored) + 1)
    )
    assert scored.sort_values("rank")["score"].is_monotonic_decreasing
    page = (good_run / "index.html").read_text()
    assert "by <strong>chance to convert</strong>" in page and "new_customer_value.csv" in page


@pytest.mark.notebook
def test_run_with_db_publishes_every_result_table_with_the_rows_of_the_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlalchemy as sa

    raw = write_users(tmp_path / "raw", 30)
    database = tmp_path / "bi.sqlite"
    monkeypatch.chdir(tmp_path)
    assert main(cli_run(tmp_path, "--raw", str(raw), "--db", f"sqlite:///{database}")) == 0
    run_dir = (tmp_path / "reports" / "latest").resolve()
    engine = sa.create_engine(f"sqlite:///{database}")
    with engine.connect() as connection:
        for table, file in (
            ("insightos_scored_leads", "scored_leads.csv"),
            ("insightos_campaign_ltv", "campaign_ltv.csv"),
            ("insightos_customer_ltv", "customer_ltv.csv"),
            ("insightos_funnel", "funnel.csv"),
        ):
            stored = pd.read_sql_table(table, connection)
            written = pd.read_csv(run_dir / file)
            assert len(stored) == len(written) > 0, table
            assert set(stored["run_id"]) == {run_dir.name}
            key = written.columns[0]
            assert sorted(stored[key].astype(str)) == sorted(written[key].astype(str)), table
        runs = pd.read_sql_table("insightos_runs", connection)
    engine.dispose()
    assert list(runs["run_id"]) == [run_dir.name]
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["published_to"]["rows"]["insightos_scored_leads"] == 15


@pytest.mark.notebook
def test_a_database_that_refuses_fails_the_run_and_publishes_nothing(
    good_run: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    workspace = good_run.parents[2]
    latest_before = os.readlink(workspace / "reports" / "latest")
    monkeypatch.chdir(workspace)
    status = main(cli_run(workspace, "--raw", "raw", "--db", "sqlite:////nonexistent/dir/bi.db"))
    assert status == 1
    assert "could not publish" in capsys.readouterr().err
    assert os.readlink(workspace / "reports" / "latest") == latest_before


def test_a_model_no_better_than_chance_is_a_warning_on_the_run_summary(tmp_path: Path) -> None:
    reason = "NO USABLE SIGNAL: the champion's holdout ROC AUC is 0.470 ..."
    card = {"champion": "v1_logreg", "models": {"v1_logreg": {"holdout_roc_auc": 0.47}}}
    (tmp_path / "model_card.json").write_text(
        json.dumps({**card, "signal": {"better_than_chance": False, "reason": reason}})
    )
    metrics = runner.run_metrics(tmp_path, "google_gestao_agil")
    assert metrics["signal_warning"] == reason
    meta = {"run_id": "r", "status": "ok", "started_at": "2026-01-02T00:00:00", **metrics}
    page = portal.write_run_summary(tmp_path, meta).read_text()
    warnings = page[page.index('id="warnings"') :]
    assert "NO USABLE SIGNAL" in warnings
    (tmp_path / "model_card.json").write_text(
        json.dumps({**card, "signal": {"better_than_chance": True, "reason": None}})
    )
    assert "signal_warning" not in runner.run_metrics(tmp_path, "google_gestao_agil")
