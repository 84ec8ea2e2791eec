"""Run folders: staged in ``.<id>.partial``, renamed into place, published by a symlink swap.

A run stages everything in ``reports/runs/.<run-id>.partial/`` and renames it to
``reports/runs/<run-id>/`` when complete; only then does ``reports/latest`` (a relative symlink,
swapped with ``os.replace``) move to it. A failed run is renamed ``<run-id>.failed/``; the
leftover of a run that was killed (a staging folder found by the next run, which holds the lock,
so it cannot be live) is labelled ``interrupted`` and renamed ``<run-id>.interrupted/``.
Files a run writes may hold personal data: the run sets ``[run] umask`` while it works.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from insightos_utils import reports as portal
from insightos_utils.errors import InsightOSError
from insightos_utils.io_utils import atomic_write_json, utc_now

RUN_ID_TIME = "%Y%m%dT%H%M%SZ"


def new_run_id(now: datetime | None = None) -> str:
    """A sortable, unique run id: UTC timestamp plus a short random suffix."""
    now = now or utc_now()
    return f"{now:{RUN_ID_TIME}}-{secrets.token_hex(2)}"


def run_id_time(run_id: str) -> datetime | None:
    """When a run started, read from its id (None for an id not made by ``new_run_id``)."""
    try:
        return datetime.strptime(run_id[:16], RUN_ID_TIME).replace(tzinfo=UTC)
    except ValueError:
        return None


def resolve(cwd: Path, path: str | Path) -> Path:
    """``path`` made absolute against ``cwd`` (``~`` expanded)."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else cwd / path


@contextmanager
def run_umask(mask: str) -> Iterator[None]:
    """Files and folders created inside are not world-readable (``"0027"``: 0640 / 0750)."""
    previous = os.umask(int(mask, 8))
    try:
        yield
    finally:
        os.umask(previous)


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


def published_folder(reports_dir: Path, name: str = portal.LATEST) -> Path | None:
    """The run folder ``reports_dir/name`` points at, None when there is none."""
    link = reports_dir / name
    if not link.exists():
        return None
    target = link.resolve()
    return target if target.is_dir() else None


def _stamp(meta: dict[str, Any], key: str) -> datetime:
    """A run.json time (whole seconds), the earliest possible time when missing or unreadable."""
    try:
        stamp = datetime.fromisoformat(str(meta.get(key) or ""))
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


def run_order(meta: dict[str, Any]) -> tuple[datetime, datetime]:
    """What orders published runs in time: when each finished, then (runs finishing in the same
    second) when it started; a run.json without times falls back on its run id."""
    started = _stamp(meta, "started_at")
    if started == datetime.min.replace(tzinfo=UTC):
        started = run_id_time(str(meta.get("run_id") or "")) or started
    finished = _stamp(meta, "finished_at")
    return (finished if finished > started else started), started


def latest_scoring_run(reports_dir: Path) -> tuple[Path, dict[str, Any]] | None:
    """The most recent published scoring run of either kind (``latest``: a full run;
    ``latest_scores``: a score-only run), by the time its run.json records, with that run.json;
    None before the first run. Each run's trend compares with it."""
    found = []
    for name in (portal.LATEST, portal.LATEST_SCORES):
        folder = published_folder(reports_dir, name)
        if folder is None:
            continue
        meta = portal.read_run_meta(folder) or {"run_id": folder.name}
        found.append((run_order(meta), folder, meta))
    if not found:
        return None
    _, folder, meta = max(found, key=lambda entry: entry[0])
    return folder, meta


def mark_interrupted_runs(reports_dir: Path) -> list[Path]:
    """Staging folders left by killed runs (we hold the lock, so none is live): label each
    ``interrupted`` in its run.json, say so in its run.log, rename it ``<id>.interrupted``."""
    from insightos_utils.runner.meta import stage_states

    runs_dir = reports_dir / portal.RUNS_FOLDER
    found = []
    for staging in sorted(runs_dir.glob(".*.partial")):
        run_id = staging.name[1 : -len(".partial")]
        meta = portal.read_run_meta(staging) or {}
        started = run_id_time(run_id)
        meta.setdefault("run_id", run_id)
        if not meta.get("started_at") and started is not None:
            meta["started_at"] = started.isoformat()
        meta.update(
            status="interrupted",
            error={
                "message": "interrupted: the run was killed before it finished (found by a "
                f"later run at {utc_now().isoformat()})"
            },
        )
        meta["stages"] = stage_states(staging, finished=False)
        target = runs_dir / f"{run_id}{portal.INTERRUPTED_SUFFIX}"
        try:
            atomic_write_json(staging / portal.RUN_META, meta)
            with (staging / "run.log").open("a", encoding="utf-8") as log:
                log.write(f"{utc_now().isoformat()} found unfinished by a later run: interrupted\n")
            portal.write_run_summary(staging, meta)
        except (OSError, ValueError, TypeError):  # a label is a courtesy; the rename matters
            pass
        staging.rename(target)
        found.append(target)
    return found
