"""Headless runs: the ordered notebooks executed by papermill, published only when all succeeded.

Each run ingests into its own ``processed/`` folder inside the run, so two runs never share or
clobber ``data/processed``. A file lock on ``reports/.insightos.lock`` makes runs take turns.
The run's ``run.json`` is written when it starts and after every notebook, so the leftover of a
killed run says how far it got; the next run labels it ``interrupted`` (``folders``). Once a run
is published, nothing afterwards (the index, pruning) can make it exit non-zero: the index is
rebuilt from what is on disk by the next run anyway.
"""

from __future__ import annotations

import importlib
import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from insightos_utils import reports as portal
from insightos_utils.config import PipelineConfig
from insightos_utils.errors import InsightOSError
from insightos_utils.ingest import redact_url
from insightos_utils.io_utils import atomic_write_json, utc_now
from insightos_utils.leads import value as lead_value
from insightos_utils.runner.folders import (
    RunFolders,
    latest_scoring_run,
    mark_interrupted_runs,
    new_run_id,
    publish,
    published_folder,
    resolve,
    run_umask,
)
from insightos_utils.runner.meta import (
    base_meta,
    data_window,
    ingest_findings,
    leakage_block,
    run_metrics,
    stage_states,
)
from insightos_utils.runner.notebooks import (
    RunLog,
    execute,
    find_notebooks,
    kernel_name,
    parameters_for,
)
from insightos_utils.runner.prune import prune_runs

LOCK_NAME = ".insightos.lock"
DEFAULT_LOCK_TIMEOUT = 900.0
CHAMPION_MODEL = Path("models") / "champion.joblib"
REQUIRED_OUTPUTS = (
    "scored_leads.csv",
    "model_card.json",
    "ltv_params.json",
    "customer_ltv.csv",
    "campaign_ltv.csv",
    "funnel.csv",
)


def _warn(message: str) -> None:
    print(f"insightos run: warning: {message}", file=sys.stderr)


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
    reports = resolve(cwd, reports_dir or config.run.reports_dir)
    (reports / portal.RUNS_FOLDER).mkdir(parents=True, exist_ok=True)
    out = resolve(cwd, out_dir) if out_dir is not None else None
    lock = FileLock(str(reports / LOCK_NAME))
    try:
        lock.acquire(timeout=lock_timeout)
    except Timeout:
        raise InsightOSError(
            f"another insightos run is in progress (lock {reports / LOCK_NAME} held for "
            f"{lock_timeout:g} s); try again when it finishes, or raise --lock-timeout"
        ) from None
    try:
        with run_umask(config.run.umask):
            mark_interrupted_runs(reports)
            try:
                if score_only:
                    return _score_run(config, reports, out, cwd, db_url, show_progress)
                notebooks = find_notebooks(resolve(cwd, notebooks_dir or "notebooks"))
                return _full_run(config, reports, out, cwd, notebooks, show_progress, db_url)
            finally:
                _tidy(reports, config)
    finally:
        lock.release()


def _tidy(reports: Path, config: PipelineConfig) -> None:
    """Prune old runs and rebuild the index from disk; bookkeeping never fails a run."""
    try:
        prune_runs(reports, config.run)
    except Exception as error:
        _warn(f"old runs were not pruned ({type(error).__name__}: {error})")
    try:
        portal.write_index(reports, config.ltv.reference_campaign)
    except Exception as error:
        _warn(f"{reports / 'index.html'} was not rebuilt ({type(error).__name__}: {error})")


@contextmanager
def _failure_recorded(folders: RunFolders, meta: dict[str, Any], log: RunLog) -> Iterator[None]:
    """On any failure inside: record it, keep the run as ``<id>.failed``, publish nothing, and
    raise an ``InsightOSError`` (``InputError`` for bad input) that says what went wrong."""
    started = time.perf_counter()
    try:
        yield
    except BaseException as error:
        _fail(folders, meta, log, error, started)
        if isinstance(error, InsightOSError | KeyboardInterrupt):
            raise
        raise InsightOSError(
            f"run {meta['run_id']} failed: {type(error).__name__}: {error}"
        ) from error


def _fail(
    folders: RunFolders, meta: dict[str, Any], log: RunLog, error: BaseException, started: float
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
    meta["stages"] = stage_states(folders.staging, finished=False)
    log.line(f"FAILED: {message}")
    log.line(f"nothing published; this run is kept in {folders.failed}")
    log.close()
    atomic_write_json(folders.staging / portal.RUN_META, meta)
    try:
        portal.write_run_summary(folders.staging, meta)
    except Exception as summary_error:  # the failure itself is what must be reported
        _warn(f"no summary page for the failed run ({type(summary_error).__name__})")
    folders.staging.rename(folders.failed)


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
    try:
        portal.write_run_summary(folders.staging, meta, previous)
    except Exception as error:  # the results are good; the page is a convenience
        _warn(f"the run's summary page was not written ({type(error).__name__}: {error})")
    folders.staging.rename(folders.final)
    if folders.publish:
        publish(reports, folders.final, link_name)
    return folders.final


def _full_run(
    config: PipelineConfig,
    reports: Path,
    out: Path | None,
    cwd: Path,
    notebooks: list[Path],
    show_progress: bool,
    db_url: str | None = None,
) -> Path:
    from tqdm import tqdm

    run_id = new_run_id()
    folders = RunFolders.plan(reports, run_id, out)
    folders.staging.mkdir(parents=True)
    started = time.perf_counter()
    meta = base_meta(run_id, "full", config, cwd)
    meta["kernel"] = kernel_name()
    meta["notebooks"] = []
    previous_dir = published_folder(reports, portal.LATEST)
    meta["previous_run_dir"] = str(previous_dir) if previous_dir else None
    previous_scores_dir = _trend_baseline(reports, meta)
    atomic_write_json(folders.staging / portal.RUN_META, meta)
    log = RunLog(folders.staging / "run.log")
    log.line(f"run {run_id}: {len(notebooks)} notebooks from {notebooks[0].parent}")
    log.line(f"kernel {meta['kernel']}, working directory {cwd}")
    log.line("configuration: " + json.dumps(meta["config"], sort_keys=True))
    previous = portal.read_run_meta(reports / portal.LATEST)
    per_run = {
        "raw_dir": str(resolve(cwd, config.data.raw_dir)),
        "processed_dir": str(folders.staging / "processed"),
        "run_dir": str(folders.staging),
        "previous_run_dir": str(previous_dir) if previous_dir else "",
        "previous_scores_dir": str(previous_scores_dir) if previous_scores_dir else "",
    }
    with _failure_recorded(folders, meta, log):
        progress = tqdm(
            total=len(notebooks), desc=f"run {run_id}", unit="notebook", disable=not show_progress
        )
        with progress:
            for notebook in notebooks:
                progress.set_postfix_str(notebook.stem)
                parameters, password = parameters_for(notebook, config, per_run)
                execute(
                    notebook, parameters, password, folders.staging, cwd, meta, log, show_progress
                )
                config = _after_ingest(config, folders.staging, meta, log)
                meta["stages"] = stage_states(folders.staging, finished=True)
                atomic_write_json(folders.staging / portal.RUN_META, meta)
                blocked = leakage_block(config, folders.staging, notebook)
                if blocked:
                    raise blocked
                progress.update()
        missing = [name for name in REQUIRED_OUTPUTS if not (folders.staging / name).exists()]
        if missing:
            raise InsightOSError(
                f"the notebooks finished but did not write {', '.join(missing)} into run_dir"
            )
        _value_leads(
            folders.staging,
            folders.staging,
            meta.get("stages", {}).get("ltv"),
            config,
            meta,
            log,
            campaigns=lambda: lead_value.campaigns_from_processed(folders.staging / "processed"),
        )
        meta["data_window"] = data_window(folders.staging / "processed")
        meta.update(run_metrics(folders.staging, config.ltv.reference_campaign))
        if not meta.get("as_of"):
            meta["as_of"] = (meta["data_window"] or {}).get("end")
        meta["stages"] = stage_states(folders.staging, finished=True)
        log.line(
            "results: "
            + json.dumps(
                {k: meta.get(k) for k in ("champion", "holdout_roc_auc", "open_leads", "ltv_ratio")}
            )
        )
        _publish_to_database(folders.staging, meta, db_url or config.run.publish_url, log)
    return _succeed(folders, meta, log, reports, started, portal.LATEST, previous)


def _trend_baseline(reports: Path, meta: dict[str, Any]) -> Path | None:
    """The folder whose ``scored_leads.csv`` this run's trend compares with: the most recent
    published scoring run of either kind (a full or a score-only run), recorded in run.json as
    ``trend_compared_with``."""
    found = latest_scoring_run(reports)
    if found is None:
        meta["trend_compared_with"] = None
        return None
    folder, previous = found
    meta["trend_compared_with"] = {
        "run_id": previous.get("run_id") or folder.name,
        "kind": previous.get("kind"),
        "finished_at": previous.get("finished_at"),
    }
    return folder


def _publish_to_database(run_dir: Path, meta: dict[str, Any], url: str | None, log: RunLog) -> None:
    """Write every result table of a run that succeeded to ``url`` (``--db`` or ``[run]
    publish_url``), in one transaction, before the run is published locally: a database that
    refuses fails the run, and nothing is published anywhere."""
    if not url:
        return
    from insightos_utils.publish import publish_run

    report = publish_run(run_dir, url, {**meta, "finished_at": utc_now().isoformat()})
    meta["published_to"] = {"database": redact_url(url), "rows": dict(report.rows)}
    log.line(f"published to {redact_url(url)}: {json.dumps(report.rows, sort_keys=True)}")


def _value_leads(
    run_dir: Path,
    ltv_dir: Path,
    ltv_stage: dict[str, Any] | None,
    config: PipelineConfig,
    meta: dict[str, Any],
    log: RunLog,
    campaigns: Callable[[], Any],
) -> None:
    """Rewrite ``scored_leads.csv`` with each lead's expected value and the ``[scoring]
    rank_by`` ranking, from the new-customer values the LTV stage wrote into ``ltv_dir`` (this
    run's folder; for a score-only run the published full run's ``models/``). Without them (the
    LTV stage skipped) the ranking is by probability and run.json's ``ranking`` says why."""
    from insightos_utils.ltv.outputs import MODELS_FOLDER, NEW_CUSTOMER_VALUE_FILE

    scored = run_dir / "scored_leads.csv"
    if not scored.exists():
        return
    source = "this run" if ltv_dir == run_dir else f"the published run {meta.get('model_run')}"
    ranking = lead_value.rewrite_scored_leads(
        scored,
        ltv_dir / MODELS_FOLDER / NEW_CUSTOMER_VALUE_FILE,
        rank_by=config.scoring.rank_by,
        campaigns=campaigns,
        skipped_reason=lead_value.skipped_ltv_reason(ltv_stage, source),
    )
    meta["ranking"] = ranking.as_dict()
    because = f" ({ranking.reason})" if ranking.reason else ""
    log.line(f"scored_leads.csv ranked by {ranking.rank_by}{because}")


def _after_ingest(
    config: PipelineConfig, staging: Path, meta: dict[str, Any], log: RunLog
) -> PipelineConfig:
    """Once the ingest report exists: keep its warnings, and when the data reaches past the
    run's clock (within the plausible tolerance) stand the later notebooks at the clock."""
    if "ingest_warnings" in meta:
        return config
    findings = ingest_findings(staging)
    if findings["engine"]:
        meta["engine"] = {k: findings["engine"].get(k) for k in ("name", "requested", "location")}
    if findings["latest_timestamp"] is None and not findings["warnings"]:
        return config
    meta["ingest_warnings"] = findings["warnings"]
    for warning in findings["warnings"]:
        log.line(f"warning: {warning.get('message')}")
    latest, default = findings["latest_timestamp"], findings["as_of_default"]
    if not config.data.as_of and latest and default and latest > default:
        log.line(f"the data reaches {latest}, past the run's clock: as-of set to {default}")
        meta["as_of"] = default
        return config.with_overrides(source="the run's clock", as_of=default)
    return config


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
    meta = base_meta(run_id, "score", config, cwd)
    meta["model_run"] = model_run.get("run_id")
    meta["champion"] = model_run.get("champion")
    meta["model_path"] = str(model.resolve())
    atomic_write_json(folders.staging / portal.RUN_META, meta)
    log = RunLog(folders.staging / "run.log")
    source_url = config.data.source_url or None
    raw_dir = None if source_url else resolve(cwd, config.data.raw_dir)
    log.line(f"score-only run {run_id}: champion {meta['champion']} from run {meta['model_run']}")
    log.line(f"model {meta['model_path']}, data {redact_url(source_url or '') or raw_dir}")
    previous = portal.read_run_meta(reports / portal.LATEST_SCORES)
    previous_scores_dir = _trend_baseline(reports, meta)
    with _failure_recorded(folders, meta, log):
        scoring = importlib.import_module("insightos_utils.leads.scoring")
        scoring.score_command(
            model_path=model.resolve(),
            out_path=folders.staging / "scored_leads.csv",
            raw_dir=raw_dir,
            source_url=source_url,
            as_of=config.data.as_of or None,
            show_progress=show_progress,
            previous_run_dir=previous_scores_dir,
            trend_threshold=config.scoring.trend_threshold,
        )
        meta["scoring_seconds"] = round(time.perf_counter() - started, 2)
        _value_leads(
            folders.staging,
            reports / portal.LATEST,
            model_run.get("stages", {}).get("ltv"),
            config,
            meta,
            log,
            campaigns=lambda: lead_value.campaigns_from_source(raw_dir, source_url),
        )
        meta.update(
            {
                k: v
                for k, v in run_metrics(folders.staging, config.ltv.reference_campaign).items()
                if k in ("open_leads", "model_version")
            }
        )
        log.line(f"scored {meta.get('open_leads')} open leads in {meta['scoring_seconds']:.1f} s")
        _publish_to_database(folders.staging, meta, db_url or config.run.publish_url, log)
    return _succeed(folders, meta, log, reports, started, portal.LATEST_SCORES, previous)
