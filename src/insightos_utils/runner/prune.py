"""Runs do not pile up: the oldest runs beyond ``[run] keep_runs`` / ``keep_score_runs`` go,
failed and interrupted runs after ``keep_failed_days``; the targets of ``latest`` and
``latest_scores`` are never removed. Pruning never fails a run: what cannot be removed stays.
"""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from insightos_utils import reports as portal
from insightos_utils.config import RunConfig
from insightos_utils.io_utils import utc_now


def _started(meta: dict[str, Any], folder: Path) -> datetime:
    from insightos_utils.runner.folders import run_id_time

    for value in (meta.get("finished_at"), meta.get("started_at")):
        try:
            moment = datetime.fromisoformat(str(value))
        except (TypeError, ValueError):
            continue
        return moment if moment.tzinfo else moment.replace(tzinfo=utc_now().tzinfo)
    return run_id_time(folder.name) or datetime.fromtimestamp(
        folder.stat().st_mtime, tz=utc_now().tzinfo
    )


def runs_to_prune(
    reports_dir: Path, settings: RunConfig, now: datetime | None = None
) -> list[Path]:
    """The run folders that the keep settings let go, oldest first."""
    now = now or utc_now()
    protected = {
        (reports_dir / name).resolve()
        for name in (portal.LATEST, portal.LATEST_SCORES)
        if (reports_dir / name).exists()
    }
    good: dict[str, list[Path]] = {"full": [], "score": []}
    doomed: list[Path] = []
    for folder, meta in portal.list_runs(reports_dir):  # newest first
        if folder.resolve() in protected:
            continue
        if meta.get("status") == "ok":
            good["score" if meta.get("kind") == "score" else "full"].append(folder)
        elif meta.get("status") != "running":
            age = now - _started(meta, folder)
            if age > timedelta(days=settings.keep_failed_days):
                doomed.append(folder)
    for kind, keep in (("full", settings.keep_runs), ("score", settings.keep_score_runs)):
        if keep:
            # the published run counts toward the number kept
            published = portal.LATEST if kind == "full" else portal.LATEST_SCORES
            kept_already = 1 if (reports_dir / published).exists() else 0
            doomed.extend(good[kind][max(keep - kept_already, 0) :])
    return sorted(doomed, key=lambda folder: folder.name)


def prune_runs(reports_dir: Path, settings: RunConfig) -> list[Path]:
    """Remove the runs ``runs_to_prune`` names; the folders removed."""
    removed = []
    for folder in runs_to_prune(reports_dir, settings):
        shutil.rmtree(folder, ignore_errors=True)
        if not folder.exists():
            removed.append(folder)
    return removed
