"""Headless runs: the ordered notebooks executed by papermill, published only when all succeeded.

A run stages everything in ``reports/runs/.<run-id>.partial/`` and renames it to
``reports/runs/<run-id>/`` when complete; only then does ``reports/latest`` (a relative symlink,
swapped with ``os.replace``) move to it. A failed run is renamed ``<run-id>.failed/`` with its
``run.log``, ``run.json`` and executed notebooks, and nothing published changes. Each run ingests
into its own ``processed/`` folder inside the run, so two runs never share or clobber
``data/processed``. A file lock on ``reports/.insightos.lock`` makes runs take turns.
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import secrets
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import IO, Any

from insightos_utils import __version__
from insightos_utils import reports as portal
from insightos_utils.config import PipelineConfig, notebook_parameters
from insightos_utils.errors import InputError, InsightOSError
from insightos_utils.io_utils import atomic_write_json, utc_now, utc_stamp

KERNEL_NAME = "insightos"
FALLBACK_KERNEL = "python3"
NOTEBOOK_GLOB = "[0-9][0-9]_*.ipynb"
LOCK_NAME = ".insightos.lock"
DEFAULT_LOCK_TIMEOUT = 900.0
CHAMPION_MODEL = Path("models") / "champion.joblib"
REQUIRED_OUTPUTS = (
    "scored_leads.csv",
    "model_card.json",
    "ltv_params.json",
    "customer_ltv.csv",
    "campaign_ltv.csv",
)
VERSIONED_PACKAGES = (
    "pandas",
    "numpy",
    "scikit-learn",
    "xgboost-cpu",
    "lifetimes",
    "papermill",
    "nbconvert",
)


# --- small pieces ------------------------------------------------------------------------------


def new_run_id(now: datetime | None = None) -> str:
    """A sortable, unique run id: UTC timestamp plus a short random suffix."""
    now = now or utc_now()
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(2)}"


def kernel_name() -> str:
    """The project's Jupyter kernel (registered in .venv by ``make setup``), else ``python3``."""
    from jupyter_client.kernelspec import KernelSpecManager

    specs = KernelSpecManager().find_kernel_specs()
    return KERNEL_NAME if KERNEL_NAME in specs else FALLBACK_KERNEL


def find_notebooks(notebooks_dir: Path) -> list[Path]:
    """The pipeline's notebooks (``NN_name.ipynb``) in their run order."""
    notebooks = sorted(notebooks_dir.glob(NOTEBOOK_GLOB))
    if not notebooks:
        raise InsightOSError(
            f"no notebooks named NN_*.ipynb in {notebooks_dir}; run from the repository root "
            "or pass --notebooks DIR"
        )
    return notebooks


def redact_url(url: str) -> str:
    """A database URL with its password hidden, fit for logs and run.json."""
    if not url:
        return url
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy understands: say nothing about it
        return "<unparsed URL>"


def _versions(cwd: Path) -> dict[str, Any]:
    versions: dict[str, Any] = {"insightos": __version__, "python": platform.python_version()}
    for name in VERSIONED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    try:
        completed = subprocess.run(
            ["git", "-C", str(cwd), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
        versions["git_commit"] = completed.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        versions["git_commit"] = None
    return versions


def _resolve(cwd: Path, path: str | Path) -> Path:
    path = Path(path).expanduser()
    return path if path.is_absolute() else cwd / path


class RunLog:
    """``run.log``: timestamped lines from the runner, and the notebooks' own output in between."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.stream: IO[str] = path.open("a", encoding="utf-8", buffering=1)

    def line(self, message: str) -> None:
        stamp = utc_stamp()
        for text in message.splitlines() or [""]:
            self.stream.write(f"{stamp} {text}\n")

    def close(self) -> None:
        self.stream.close()


@dataclass(frozen=True)
class RunFolders:
    """Where a run stages, where it lands when complete, and where it goes when it fails."""

    staging: Path
    final: Path
    failed: Path
    publish: bool  # False for ``--out DIR`` runs: nothing under reports/ changes

    @classmethod
    def plan(cls, reports_dir: Path, run_id: str, out_dir: Path | None) -> RunFolders:
        final = out_dir if out_dir is not None else reports_dir / portal.RUNS_FOLDER / run_id
        if final.exists() and (not final.is_dir() or any(final.iterdir())):
            raise InsightOSError(f"{final} already exists and is not empty; choose another --out")
        return cls(
            staging=final.parent / f".{final.name}.partial",
            final=final,
            failed=final.parent / f"{final.name}{portal.FAILED_SUFFIX}",
            publish=out_dir is None,
        )


def publish(reports_dir: Path, run_folder: Path, name: str = portal.LATEST) -> Path:
    """Point ``reports_dir/name`` at ``run_folder`` atomically (relative symlink, ``os.replace``)."""
    link = reports_dir / name
    if link.is_dir() and not link.is_symlink():
        raise InsightOSError(f"{link} is a real folder, not a link; move it away and run again")
    tmp = reports_dir / f".{name}.{secrets.token_hex(4)}.tmp"
    os.symlink(os.path.relpath(run_folder, reports_dir), tmp)
    os.replace(tmp, link)
    return link


def _mark_interrupted_runs(reports_dir: Path) -> None:
    """Staging folders left by a killed run (we hold the lock, so none is live): mark them failed."""
    runs_dir = reports_dir / portal.RUNS_FOLDER
    for staging in runs_dir.glob(".*.partial"):
        run_id = staging.name[1 : -len(".partial")]
        meta = portal.read_run_meta(staging) or {"run_id": run_id, "started_at": None}
        meta.update(status="failed", error={"message": "interrupted: the run never finished"})
        atomic_write_json(staging / portal.RUN_META, meta)
        with (staging / "run.log").open("a", encoding="utf-8") as log:
            log.write(f"{utc_now().isoformat()} found unfinished by a later run: marked failed\n")
        staging.rename(runs_dir / f"{run_id}{portal.FAILED_SUFFIX}")


# --- failures ----------------------------------------------------------------------------------


def _source_cell_index(executed: Path, cell_index: int) -> int:
    """The failing cell's index in the source notebook (papermill inserted a parameters cell)."""
    try:
        import nbformat

        cells = nbformat.read(executed, as_version=4).cells[:cell_index]
    except Exception:
        return cell_index
    injected = sum("injected-parameters" in c.get("metadata", {}).get("tags", []) for c in cells)
    return cell_index - injected


def notebook_failure(
    notebook: Path, executed: Path, error: Exception
) -> tuple[InsightOSError, dict[str, Any]]:
    """The error to raise for a failed notebook (naming notebook, cell and error) and its details.

    A notebook stopped by ``InputError`` (bad input) gives an ``InputError`` (exit 2).
    """
    from papermill.exceptions import PapermillExecutionError

    if not isinstance(error, PapermillExecutionError):
        return InsightOSError(f"{notebook.name}: {type(error).__name__}: {error}"), {
            "notebook": notebook.name,
            "ename": type(error).__name__,
            "evalue": str(error),
        }
    cell = _source_cell_index(executed, error.cell_index)
    first_line = next((ln for ln in str(error.source).splitlines() if ln.strip()), "")
    message = (
        f"{notebook.name}: cell {cell} (execution count [{error.exec_count}], "
        f"starting `{first_line.strip()[:80]}`) raised {error.ename}: {error.evalue}"
    )
    failure = InputError(message) if error.ename == "InputError" else InsightOSError(message)
    return failure, {
        "notebook": notebook.name,
        "cell_index": cell,
        "execution_count": error.exec_count,
        "ename": error.ename,
        "evalue": error.evalue,
    }


def _leakage_block(config: PipelineConfig, run_dir: Path, notebook: Path) -> InsightOSError | None:
    """An error when the model card suspects leakage and the configuration says to block on it."""
    if not config.scoring.block_on_leakage:
        return None
    card = portal.read_json(run_dir / "model_card.json")
    if not card or not card.get("leakage_suspected"):
        return None
    champion = card.get("champion")
    auc = card.get("models", {}).get(champion, {}).get("holdout_roc_auc")
    return InsightOSError(
        f"{notebook.name}: suspected leakage (model_card.json leakage_suspected; champion "
        f"{champion} holdout ROC AUC {auc}); block_on_leakage is true, so nothing is published. "
        "Check the feature decisions in 02_eda, or set block_on_leakage = false to publish anyway"
    )


# --- metrics for run.json ----------------------------------------------------------------------


def data_window(processed_dir: Path) -> dict[str, str] | None:
    """First and last timestamps in the processed tables (signups, events, transactions)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    lows: list[str] = []
    highs: list[str] = []
    for table, column in (
        ("users", "created_at"),
        ("events", "occurred_at"),
        ("transactions", "occurred_at"),
    ):
        path = processed_dir / f"{table}.parquet"
        if not path.exists():
            continue
        try:
            values = pq.read_table(path, columns=[column]).column(0)
            low_high = pc.min_max(values)
        except Exception:  # a table without the column: no window from it
            continue
        for value, bucket in ((low_high["min"].as_py(), lows), (low_high["max"].as_py(), highs)):
            if value is not None:
                bucket.append(value.isoformat() if hasattr(value, "isoformat") else str(value))
    if not lows:
        return None
    return {"start": min(lows), "end": max(highs)}


def run_metrics(run_dir: Path, reference_campaign: str) -> dict[str, Any]:
    """Headline numbers of a run for run.json and the index: champion, AUC, leads, LTV ratio."""
    import pandas as pd

    metrics: dict[str, Any] = {}
    card = portal.read_json(run_dir / "model_card.json")
    if card:
        champion = card.get("champion")
        metrics["champion"] = champion
        metrics["holdout_roc_auc"] = card.get("models", {}).get(champion, {}).get("holdout_roc_auc")
        metrics["leakage_suspected"] = bool(card.get("leakage_suspected", False))
        if card.get("as_of"):
            metrics["as_of"] = card["as_of"]
    scored = run_dir / "scored_leads.csv"
    if scored.exists():
        leads = pd.read_csv(scored, usecols=lambda c: c in {"user_id", "model_version"})
        metrics["open_leads"] = len(leads)
        if "model_version" in leads and len(leads):
            metrics["model_version"] = str(leads["model_version"].iloc[0])
    reference = (portal.read_json(run_dir / "ltv_params.json") or {}).get("reference_ratio")
    if isinstance(reference, dict) and reference.get("ratio") is not None:
        # 04_ltv's own figure (with its bootstrap interval): one number everywhere
        metrics["ltv_ratio"] = reference["ratio"]
        metrics["ltv_ratio_ci"] = [reference.get("ci_low"), reference.get("ci_high")]
    elif (run_dir / "campaign_ltv.csv").exists():
        campaign_ltv = pd.read_csv(run_dir / "campaign_ltv.csv")
        metrics["ltv_ratio"] = portal.ltv_ratio(campaign_ltv, reference_campaign)
    return metrics


# --- the runs ----------------------------------------------------------------------------------


def run_pipeline(
    config: PipelineConfig,
    out_dir: str | Path | None = None,
    score_only: bool = False,
    notebooks_dir: str | Path | None = None,
    reports_dir: str | Path | None = None,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    cwd: str | Path | None = None,
    show_progress: bool = True,
    db_url: str | None = None,
) -> Path:
    """Run the pipeline (or only the scoring) once, under the reports lock; the run's folder.

    Relative paths (configuration, ``out_dir``, ``notebooks_dir``) resolve against ``cwd``
    (default: the current directory, the repository root for ``make`` and cron), which is also
    the notebooks' kernel working directory. Raises ``InputError`` when a notebook stopped on bad
    input, ``InsightOSError`` for any other failure; nothing published changes then.
    """
    from filelock import FileLock, Timeout

    cwd = Path(cwd or Path.cwd()).resolve()
    reports = _resolve(cwd, reports_dir or config.run.reports_dir)
    (reports / portal.RUNS_FOLDER).mkdir(parents=True, exist_ok=True)
    out = _resolve(cwd, out_dir) if out_dir is not None else None
    lock = FileLock(str(reports / LOCK_NAME))
    try:
        lock.acquire(timeout=lock_timeout)
    except Timeout:
        raise InsightOSError(
            f"another insightos run is in progress (lock {reports / LOCK_NAME} held for "
            f"{lock_timeout:g} s); try again when it finishes, or raise --lock-timeout"
        ) from None
    try:
        _mark_interrupted_runs(reports)
        if score_only:
            return _score_run(config, reports, out, cwd, db_url, show_progress)
        notebooks = find_notebooks(_resolve(cwd, notebooks_dir or "notebooks"))
        return _full_run(config, reports, out, cwd, notebooks, show_progress)
    finally:
        lock.release()


def _base_meta(run_id: str, kind: str, config: PipelineConfig, cwd: Path) -> dict[str, Any]:
    flat = config.flat()
    flat["source_url"] = redact_url(flat.get("source_url", ""))
    return {
        "run_id": run_id,
        "kind": kind,
        "status": "running",
        "started_at": utc_now().isoformat(),
        "finished_at": None,
        "seconds": None,
        "config": flat,
        "as_of": config.data.as_of or None,
        "versions": _versions(cwd),
        "error": None,
    }


def _notebook_parameters(
    notebook: Path, config: PipelineConfig, staging: Path, cwd: Path
) -> dict[str, Any]:
    """Only the names the notebook's ``parameters`` cell declares; paths made absolute."""
    import papermill

    declared = set(papermill.inspect_notebook(str(notebook)))
    per_run = {
        "raw_dir": str(_resolve(cwd, config.data.raw_dir)),
        "processed_dir": str(staging / "processed"),
        "run_dir": str(staging),
    }
    parameters = notebook_parameters(config, declared)
    parameters.update({name: value for name, value in per_run.items() if name in declared})
    return parameters


@contextmanager
def _failure_recorded(
    folders: RunFolders, meta: dict[str, Any], log: RunLog, reports: Path, started: float
) -> Iterator[None]:
    """On any failure inside: record it, keep the run as ``<id>.failed``, publish nothing, and
    raise an ``InsightOSError`` (``InputError`` for bad input) that says what went wrong."""
    try:
        yield
    except BaseException as error:
        _fail(folders, meta, log, reports, error, started)
        if isinstance(error, InsightOSError | KeyboardInterrupt):
            raise
        raise InsightOSError(
            f"run {meta['run_id']} failed: {type(error).__name__}: {error}"
        ) from error


def _fail(
    folders: RunFolders,
    meta: dict[str, Any],
    log: RunLog,
    reports: Path,
    error: BaseException,
    started: float,
) -> None:
    """Record the failure, move the staging folder to ``<id>.failed``; publish nothing."""
    message = str(error) or type(error).__name__
    failed_notebooks = [nb for nb in meta.get("notebooks", []) if nb.get("status") == "failed"]
    details = failed_notebooks[-1].get("error", {}) if failed_notebooks else {}
    if isinstance(error, KeyboardInterrupt):
        message = "interrupted (Ctrl-C or a signal)"
    meta.update(
        status="failed",
        finished_at=utc_now().isoformat(),
        seconds=round(time.perf_counter() - started, 2),
        error={"message": message, **details},
    )
    log.line(f"FAILED: {message}")
    log.line(f"nothing published; this run is kept in {folders.failed}")
    log.close()
    atomic_write_json(folders.staging / portal.RUN_META, meta)
    portal.write_run_summary(folders.staging, meta)
    folders.staging.rename(folders.failed)
    if folders.publish:
        portal.write_index(reports)


def _succeed(
    folders: RunFolders,
    meta: dict[str, Any],
    log: RunLog,
    reports: Path,
    started: float,
    link_name: str,
    previous: dict[str, Any] | None,
) -> Path:
    """Write run.json and the summary page, rename the run into place, then publish it."""
    meta.update(
        status="ok",
        finished_at=utc_now().isoformat(),
        seconds=round(time.perf_counter() - started, 2),
    )
    meta["previous_run"] = (previous or {}).get("run_id")
    log.line(f"done in {meta['seconds']:.1f} s: {folders.final}")
    log.close()
    atomic_write_json(folders.staging / portal.RUN_META, meta)
    portal.write_run_summary(folders.staging, meta, previous)
    folders.staging.rename(folders.final)
    if folders.publish:
        publish(reports, folders.final, link_name)
        portal.write_index(reports, meta["config"].get("reference_campaign", ""))
    return folders.final


def _full_run(
    config: PipelineConfig,
    reports: Path,
    out: Path | None,
    cwd: Path,
    notebooks: list[Path],
    show_progress: bool,
) -> Path:
    from tqdm import tqdm

    run_id = new_run_id()
    folders = RunFolders.plan(reports, run_id, out)
    folders.staging.mkdir(parents=True)
    started = time.perf_counter()
    meta = _base_meta(run_id, "full", config, cwd)
    meta["kernel"] = kernel_name()
    meta["notebooks"] = []
    log = RunLog(folders.staging / "run.log")
    log.line(f"run {run_id}: {len(notebooks)} notebooks from {notebooks[0].parent}")
    log.line(f"kernel {meta['kernel']}, working directory {cwd}")
    log.line("configuration: " + json.dumps(meta["config"], sort_keys=True))
    previous = portal.read_run_meta(reports / portal.LATEST)
    with _failure_recorded(folders, meta, log, reports, started):
        progress = tqdm(
            total=len(notebooks), desc=f"run {run_id}", unit="notebook", disable=not show_progress
        )
        with progress:
            for notebook in notebooks:
                progress.set_postfix_str(notebook.stem)
                _execute(notebook, config, folders, cwd, meta, log, show_progress)
                blocked = _leakage_block(config, folders.staging, notebook)
                if blocked:
                    raise blocked
                progress.update()
        missing = [name for name in REQUIRED_OUTPUTS if not (folders.staging / name).exists()]
        if missing:
            raise InsightOSError(
                f"the notebooks finished but did not write {', '.join(missing)} into run_dir"
            )
        meta["data_window"] = data_window(folders.staging / "processed")
        meta.update(run_metrics(folders.staging, config.ltv.reference_campaign))
        if not meta.get("as_of"):
            meta["as_of"] = (meta["data_window"] or {}).get("end")
        log.line(
            "results: "
            + json.dumps(
                {k: meta.get(k) for k in ("champion", "holdout_roc_auc", "open_leads", "ltv_ratio")}
            )
        )
    return _succeed(folders, meta, log, reports, started, portal.LATEST, previous)


def _execute(
    notebook: Path,
    config: PipelineConfig,
    folders: RunFolders,
    cwd: Path,
    meta: dict[str, Any],
    log: RunLog,
    show_progress: bool,
) -> None:
    """Execute one notebook into the staging folder and render its HTML; record its timings."""
    import nbformat
    import papermill

    executed = folders.staging / notebook.name
    parameters = _notebook_parameters(notebook, config, folders.staging, cwd)
    shown = {k: redact_url(v) if k == "source_url" else v for k, v in parameters.items()}
    record: dict[str, Any] = {
        "name": notebook.name,
        "title": portal.notebook_title(nbformat.read(notebook, as_version=4), notebook.stem),
        "status": "running",
    }
    meta["notebooks"].append(record)
    log.line(f"--- {notebook.name}: parameters {json.dumps(shown, sort_keys=True)}")
    start = time.perf_counter()
    try:
        papermill.execute_notebook(
            str(notebook),
            str(executed),
            parameters=parameters,
            kernel_name=meta["kernel"],
            cwd=str(cwd),
            progress_bar={"desc": notebook.stem, "leave": False} if show_progress else False,
            stdout_file=log.stream,
            stderr_file=log.stream,
            # the kernel's own start-up chatter (a TCP-on-loopback notice) is not the run's news
            extra_arguments=["--IPKernelApp.log_level=ERROR"],
        )
    except Exception as error:
        failure, details = notebook_failure(notebook, executed, error)
        record.update(status="failed", seconds=round(time.perf_counter() - start, 2), error=details)
        log.line(f"--- {notebook.name}: failed after {record['seconds']:.1f} s")
        raise failure from error
    record["seconds"] = round(time.perf_counter() - start, 2)
    render_start = time.perf_counter()
    html = portal.render_html(executed, executed.with_suffix(".html"))
    record.update(
        status="ok", render_seconds=round(time.perf_counter() - render_start, 2), html=html.name
    )
    log.line(
        f"--- {notebook.name}: ran in {record['seconds']:.1f} s, "
        f"HTML in {record['render_seconds']:.1f} s"
    )


def _score_run(
    config: PipelineConfig,
    reports: Path,
    out: Path | None,
    cwd: Path,
    db_url: str | None,
    show_progress: bool = True,
) -> Path:
    """Score the open leads with the published champion, no retraining; publish latest_scores."""
    model = reports / portal.LATEST / CHAMPION_MODEL
    if not model.exists():
        raise InsightOSError(
            f"no champion model at {model}: run the full pipeline (`insightos run`) once first"
        )
    model_run = portal.read_run_meta(reports / portal.LATEST) or {}
    run_id = f"{new_run_id()}{portal.SCORE_SUFFIX}"
    folders = RunFolders.plan(reports, run_id, out)
    folders.staging.mkdir(parents=True)
    started = time.perf_counter()
    meta = _base_meta(run_id, "score", config, cwd)
    meta["model_run"] = model_run.get("run_id")
    meta["champion"] = model_run.get("champion")
    meta["model_path"] = str(model.resolve())
    log = RunLog(folders.staging / "run.log")
    source_url = config.data.source_url or None
    raw_dir = None if source_url else _resolve(cwd, config.data.raw_dir)
    log.line(f"score-only run {run_id}: champion {meta['champion']} from run {meta['model_run']}")
    log.line(f"model {meta['model_path']}, data {redact_url(source_url or '') or raw_dir}")
    previous = portal.read_run_meta(reports / portal.LATEST_SCORES)
    with _failure_recorded(folders, meta, log, reports, started):
        scoring = importlib.import_module("insightos_utils.scoring")
        scoring.score_command(
            model_path=model.resolve(),
            out_path=folders.staging / "scored_leads.csv",
            raw_dir=raw_dir,
            source_url=source_url,
            as_of=config.data.as_of or None,
            db_url=db_url,
            show_progress=show_progress,
        )
        meta["scoring_seconds"] = round(time.perf_counter() - started, 2)
        meta.update(
            {
                k: v
                for k, v in run_metrics(folders.staging, config.ltv.reference_campaign).items()
                if k in ("open_leads", "model_version")
            }
        )
        log.line(f"scored {meta.get('open_leads')} open leads in {meta['scoring_seconds']:.1f} s")
    return _succeed(folders, meta, log, reports, started, portal.LATEST_SCORES, previous)
