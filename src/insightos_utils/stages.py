"""What each stage of a run did: ``ok``, ``skipped`` (why, and what data would fix it) or ``failed``.

A stage the data cannot support (no transactions, too few conversions, no campaign spend...) is
skipped, not fatal: package code raises ``StageSkipped`` with the reason and the fix, the
notebook shows a "not computed" section, and the rest of the run still publishes. Contract
violations (``InputError``) and unexpected errors still fail the run.

Each notebook records its stages in ``run_dir/stages.json`` through ``run_stage``; the runner
copies them into ``run.json`` (``"stages": {NAME: {"state", "reason", "fix"}}``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

from insightos_utils.errors import InsightOSError
from insightos_utils.io_utils import atomic_write_json

STAGES: tuple[str, ...] = ("ingest", "features", "lead_scoring", "backtest", "ltv", "product")
STAGES_FILE = "stages.json"
State = Literal["ok", "skipped", "failed"]
T = TypeVar("T")


class StageSkipped(InsightOSError):
    """The data cannot support this stage: ``reason`` says why, ``fix`` what data would help."""

    def __init__(self, reason: str, fix: str = "") -> None:
        super().__init__(reason if not fix else f"{reason} {fix}")
        self.reason = reason
        self.fix = fix


@dataclass(frozen=True)
class StageRecord:
    """One stage's state as run.json shows it."""

    state: State
    reason: str | None = None
    fix: str | None = None


@dataclass
class StageOutcome(Generic[T]):
    """What ``run_stage`` returns: the stage's result, or why there is none."""

    name: str
    result: T | None
    record: StageRecord

    @property
    def skipped(self) -> bool:
        return self.record.state == "skipped"

    @property
    def ok(self) -> bool:
        return self.record.state == "ok"

    def not_computed(self) -> str:
        """The "not computed" section a report shows for a skipped stage (Markdown)."""
        if not self.skipped:
            return ""
        return not_computed_markdown(self.name, self.record)


def not_computed_markdown(name: str, record: StageRecord) -> str:
    """A skipped stage in words: what was not computed, why, and what data would fix it."""
    title = name.replace("_", " ")
    text = f"**Not computed: {title}.** {record.reason}"
    if record.fix:
        text += f" *What would fix it:* {record.fix}"
    return text


def _check_name(name: str) -> None:
    if name not in STAGES:
        raise ValueError(f"unknown stage {name!r}; stages are {', '.join(STAGES)}")


def read_stages(run_dir: str | Path | None) -> dict[str, dict[str, Any]]:
    """The stages recorded in ``run_dir`` (empty when none, or no run folder)."""
    if not run_dir:
        return {}
    path = Path(run_dir) / STAGES_FILE
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return document if isinstance(document, dict) else {}


def record_stage(run_dir: str | Path | None, name: str, record: StageRecord) -> None:
    """Add (or replace) one stage's record in ``run_dir/stages.json``; no-op without a folder."""
    _check_name(name)
    if not run_dir:
        return
    stages = read_stages(run_dir)
    stages[name] = {k: v for k, v in asdict(record).items() if v is not None}
    atomic_write_json(Path(run_dir) / STAGES_FILE, stages)


def run_stage(run_dir: str | Path | None, name: str, compute: Callable[[], T]) -> StageOutcome[T]:
    """Run one stage: ``ok`` with its result, ``skipped`` when ``compute`` raises
    ``StageSkipped``; any other error is recorded as ``failed`` and raised again."""
    _check_name(name)
    try:
        result = compute()
    except StageSkipped as skipped:
        record = StageRecord("skipped", skipped.reason, skipped.fix or None)
        record_stage(run_dir, name, record)
        return StageOutcome(name, None, record)
    except BaseException as error:
        message = f"{type(error).__name__}: {error}"
        record_stage(run_dir, name, StageRecord("failed", message))
        raise
    record = StageRecord("ok")
    record_stage(run_dir, name, record)
    return StageOutcome(name, result, record)


def skip_stage(
    run_dir: str | Path | None, name: str, reason: str, fix: str = ""
) -> StageOutcome[Any]:
    """Record a stage as skipped without running it (e.g. it depends on a skipped stage)."""
    record = StageRecord("skipped", reason, fix or None)
    record_stage(run_dir, name, record)
    return StageOutcome(name, None, record)
