"""What ``run.json`` says about a run: versions, data window, headline numbers, stages, warnings.

Everything here reads what the notebooks wrote into the run folder and tolerates what is
missing: a run that failed half-way still gets an honest record.
"""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from insightos_utils import __version__
from insightos_utils import reports as portal
from insightos_utils.config import PipelineConfig
from insightos_utils.errors import InsightOSError
from insightos_utils.ingest import REPORT_NAME, redact_url
from insightos_utils.io_utils import utc_now
from insightos_utils.stages import STAGES, read_stages

VERSIONED_PACKAGES = (
    "pandas",
    "numpy",
    "scikit-learn",
    "xgboost-cpu",
    "lifetimes",
    "papermill",
    "nbconvert",
)


def versions(cwd: Path) -> dict[str, Any]:
    """The package versions and git commit a run used."""
    found: dict[str, Any] = {"insightos": __version__, "python": platform.python_version()}
    for name in VERSIONED_PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    try:
        completed = subprocess.run(
            ["git", "-C", str(cwd), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
        found["git_commit"] = completed.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        found["git_commit"] = None
    return found


def shown_config(config: PipelineConfig) -> dict[str, Any]:
    """Every setting as run.json and run.log show it: database URLs without their password."""
    flat = config.flat()
    for key, value in flat.items():
        if key.endswith("_url") and isinstance(value, str):
            flat[key] = redact_url(value)
    return flat


def base_meta(run_id: str, kind: str, config: PipelineConfig, cwd: Path) -> dict[str, Any]:
    """The run.json a run starts with (status ``running``)."""
    return {
        "run_id": run_id,
        "kind": kind,
        "status": "running",
        "started_at": utc_now().isoformat(),
        "finished_at": None,
        "seconds": None,
        "config": shown_config(config),
        "as_of": config.data.as_of or None,
        "versions": versions(cwd),
        "error": None,
    }


def stage_states(run_dir: Path, finished: bool) -> dict[str, dict[str, Any]]:
    """``run.json["stages"]``: what the notebooks recorded in stages.json; when the run did not
    finish, every stage without a record is ``failed`` (it never completed)."""
    recorded = read_stages(run_dir)
    states: dict[str, dict[str, Any]] = {}
    for name in STAGES:
        record = recorded.get(name)
        if isinstance(record, dict) and record.get("state") in ("ok", "skipped", "failed"):
            states[name] = dict(record)
        elif not finished:
            states[name] = {"state": "failed", "reason": "the run stopped before this stage"}
    return states


def ingest_findings(run_dir: Path) -> dict[str, Any]:
    """From the run's ingest report: its warnings, and the as-of it suggests (never future)."""
    report = portal.read_json(run_dir / "processed" / REPORT_NAME) or {}
    return {
        "warnings": [w for w in report.get("warnings") or [] if isinstance(w, dict)],
        "latest_timestamp": report.get("latest_timestamp"),
        "as_of_default": report.get("as_of_default"),
        "engine": report.get("engine"),  # where the per-user tables are computed
    }


def leakage_block(config: PipelineConfig, run_dir: Path, notebook: Path) -> InsightOSError | None:
    """An error when the model card suspects leakage and the configuration says to block on it."""
    if not config.scoring.block_on_leakage:
        return None
    card = portal.read_json(run_dir / "model_card.json")
    if not card or not card.get("leakage_suspected"):
        return None
    champion = card.get("champion")
    auc = (card.get("models") or {}).get(champion, {}).get("holdout_roc_auc")
    return InsightOSError(
        f"{notebook.name}: suspected leakage (model_card.json leakage_suspected; champion "
        f"{champion} holdout ROC AUC {auc}); block_on_leakage is true, so nothing is published. "
        "Check the feature decisions in 02_eda, or set block_on_leakage = false to publish anyway"
    )


def _column_range(path: Path, column: str) -> tuple[Any, Any]:
    """(min, max) of one Parquet column: from the row groups' statistics when every row group
    has them (no data read: a 200,000,000-event file costs nothing), else from the column."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    metadata = pq.ParquetFile(path).metadata
    index = metadata.schema.names.index(column)
    stats = [metadata.row_group(i).column(index).statistics for i in range(metadata.num_row_groups)]
    if stats and all(s is not None and s.has_min_max for s in stats):
        present = [s for s in stats if s.num_values]
        if not present:
            return None, None
        return min(s.min for s in present), max(s.max for s in present)
    low_high = pc.min_max(pq.read_table(path, columns=[column]).column(0))
    return low_high["min"].as_py(), low_high["max"].as_py()


def data_window(processed_dir: Path) -> dict[str, str] | None:
    """First and last timestamps in the processed tables (signups, events, transactions)."""

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
            low, high = _column_range(path, column)
        except Exception:  # a table without the column: no window from it
            continue
        for value, bucket in ((low, lows), (high, highs)):
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
        models: dict[str, Any] = card["models"] if isinstance(card.get("models"), dict) else {}
        metrics["holdout_roc_auc"] = (models.get(str(champion)) or {}).get("holdout_roc_auc")
        metrics["leakage_suspected"] = bool(card.get("leakage_suspected", False))
        signal = card.get("signal") if isinstance(card.get("signal"), dict) else {}
        if signal and signal.get("better_than_chance") is False:
            metrics["signal_warning"] = str(signal.get("reason") or "no usable signal")
        if card.get("as_of"):
            metrics["as_of"] = card["as_of"]
    scored = run_dir / "scored_leads.csv"
    if scored.exists():
        try:
            leads = pd.read_csv(scored, usecols=lambda c: c in {"user_id", "model_version"})
        except (OSError, ValueError):  # header-only or empty: no leads
            leads = pd.DataFrame(columns=["user_id"])
        metrics["open_leads"] = len(leads)
        if "model_version" in leads and len(leads):
            metrics["model_version"] = str(leads["model_version"].iloc[0])
    reference: Any = (portal.read_json(run_dir / "ltv_params.json") or {}).get("reference_ratio")
    if isinstance(reference, dict) and reference.get("ratio") is not None:
        # 04_ltv's own figure (with its bootstrap interval): one number everywhere
        metrics["ltv_ratio"] = reference["ratio"]
        metrics["ltv_ratio_ci"] = [reference.get("ci_low"), reference.get("ci_high")]
    elif (run_dir / "campaign_ltv.csv").exists():
        try:
            campaign_ltv = pd.read_csv(run_dir / "campaign_ltv.csv")
        except (OSError, ValueError):
            campaign_ltv = pd.DataFrame()
        metrics["ltv_ratio"] = portal.ltv_ratio(campaign_ltv, reference_campaign)
    return metrics
