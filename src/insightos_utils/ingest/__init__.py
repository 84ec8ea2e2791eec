"""Ingestion: a raw folder (CSV/Parquet) or a SQL database → validated, deduplicated, typed Parquet.

The bad-input rules of the contract (section 1), as ``ingest`` applies them:

- A missing required file/table or column, or a file that cannot be parsed, raises
  ``InputError`` before anything is written; so does a ``users`` table with no rows.
- Row-level violations never vanish: each bad row goes to ``rejected_<table>.csv`` with its
  original columns plus ``reason`` and ``line``; the counts go to ``ingest_report.json``
  (``checks``). An event delivered twice (same ``event_id``, identical content) is kept once and
  counted as a duplicate, not a reject. A rejected user takes its events and transactions with it
  (``user_rejected``, counted apart and named by its users line).
- Timestamps before ``earliest_timestamp`` or later than the time of the ingest plus
  ``future_tolerance_hours`` are rejected as ``implausible_timestamp``.
- When a table's own rejected share exceeds ``max_reject_share``, the rejected files and the
  report (``status: failed``) are still written, the previous Parquet is left as it was, and
  ``InputError`` names the table, the share and the first offending lines.

Modules: ``sources`` (folders and databases), ``checks`` (the row rules), ``fastpath`` (the
vectorised column helpers: string hash, JSON grammar, timestamp parsing), ``report`` (what is
written and said). On a SQL source, rows are read in reverse dependency order (events before
users) so that a database being written to meanwhile cannot make an event look orphaned.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm import tqdm

from insightos_utils import contract
from insightos_utils.config import DataConfig
from insightos_utils.contract import TABLES
from insightos_utils.engines.choice import EngineSettings
from insightos_utils.errors import InputError
from insightos_utils.ingest.checks import Plausible, TableResult, check_table
from insightos_utils.ingest.database import engine_record, ingest_in_database
from insightos_utils.ingest.report import (
    REPORT_NAME,
    events_per_week,
    report_summary,
    report_tables,
    threshold_message,
    write_outputs,
)
from insightos_utils.ingest.sources import (
    RawTable,
    connection_url,
    open_source,
    redact_url,
    require_columns,
    split_password,
)
from insightos_utils.io_utils import utc_now

__all__ = [
    "REPORT_NAME",
    "ProcessedData",
    "connection_url",
    "events_per_week",
    "ingest",
    "read_processed",
    "read_report",
    "redact_url",
    "report_summary",
    "report_tables",
    "split_password",
    "threshold_message",
]


@dataclass
class ProcessedData:
    """The typed tables ingest wrote; optional tables are None when the company has none."""

    users: pd.DataFrame
    events: pd.DataFrame
    transactions: pd.DataFrame | None = None
    campaign_spend: pd.DataFrame | None = None


def read_processed(processed_dir: str | Path) -> ProcessedData:
    """Load the Parquet tables written by ``ingest`` from ``processed_dir``.

    When ingest chose an engine other than ``memory`` (its report's ``"engine"``), the tables
    carry it (``engines.pipeline.engine_of``) and the feature table, as-of, RFM summary, weekly
    event counts and data fingerprint are computed there. The events are then never loaded:
    ``events`` is an empty table with the contract's columns carrying the engine (under
    ``source`` they stay in the database; under ``duckdb`` and ``spark`` in the processed
    ``events.parquet``, which the engine reads), so that nothing downstream holds every event.
    """
    from insightos_utils.engines import pipeline

    processed_dir = Path(processed_dir)

    def optional(name: str) -> pd.DataFrame | None:
        path = processed_dir / f"{name}.parquet"
        return pd.read_parquet(path) if path.exists() else None

    ref = pipeline.ref_from_report(read_report(processed_dir), processed_dir)
    events = None if ref is not None else optional("events")
    if ref is not None and (ref.engine == "source" or (processed_dir / "events.parquet").exists()):
        events = pd.DataFrame(
            {
                "event_id": pd.Series([], dtype="str"),
                "user_id": pd.Series([], dtype="str"),
                "event_name": pd.Series([], dtype="str"),
                "occurred_at": pd.Series([], dtype="datetime64[us]"),
                "properties": pd.Series([], dtype="str"),
            }
        )
    elif events is None:
        events = pd.read_parquet(processed_dir / "events.parquet")  # says what is missing
    data = ProcessedData(
        users=pd.read_parquet(processed_dir / "users.parquet"),
        events=events,
        transactions=optional("transactions"),
        campaign_spend=optional("campaign_spend"),
    )
    pipeline.attach(ref, data.users, data.events, data.transactions)
    return data


def read_report(folder: str | Path | None) -> dict[str, Any] | None:
    """The ``ingest_report.json`` in ``folder``, or None when there is none (or it is unreadable)."""
    import json

    if not folder:
        return None
    try:
        document = json.loads((Path(folder) / REPORT_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return document if isinstance(document, dict) else None


def _engine_record(
    config: DataConfig, raw_dir: str | Path | None, source_url: str | None, out_dir: Path
) -> dict[str, Any]:
    """Which engine will compute the per-user tables (``[data] engine``, ``choose_engine``):
    decided here, on the raw source, and recorded in the report for the later stages."""
    from insightos_utils.engines.choice import choose_engine

    location = (source_url or None) or (raw_dir or None)
    if location is None:
        raise InputError("give exactly one of a raw folder (--raw) or a database URL (--source)")
    chosen = choose_engine(config.engine, location if source_url else Path(location))
    where = str(source_url) if chosen == "source" else str(out_dir.resolve())
    return engine_record(chosen, config.engine, where, out_dir)


# --- public entry point --------------------------------------------------------------------------


def ingest(
    out_dir: str | Path,
    raw_dir: str | Path | None = None,
    source_url: str | None = None,
    config: DataConfig | None = None,
    *,
    show_progress: bool = True,
    now: pd.Timestamp | None = None,
    previous_report: dict[str, Any] | None = None,
    engine_settings: EngineSettings | None = None,
) -> dict[str, Any]:
    """Validate, deduplicate and type the raw tables into ``out_dir``; return the ingest report.

    Exactly one of ``raw_dir`` (a folder with ``<table>.csv`` or ``<table>.parquet``) and
    ``source_url`` (a SQLAlchemy URL). ``config`` is the ``[data]`` section (reject share,
    plausible time range, warnings); ``now`` the run's clock (default: the current time);
    ``previous_report`` the report of an earlier ingest to compare table sizes with (default: the
    one already in ``out_dir``); ``engine_settings``: DuckDB's memory limit, spill folder and
    threads when the folder is checked there (``[data] engine = "duckdb"`` or ``"spark"``; default: the
    memory limit of ``[data] engine_memory_limit``, recorded in the report for the later
    stages' engine). Writes ``<table>.parquet``, ``ingest_report.json`` and
    ``rejected_<table>.csv`` (tables with rejects). Raises ``InputError`` on bad input.
    """
    config = config or DataConfig()
    clock = pd.Timestamp(now if now is not None else utc_now())
    if clock.tzinfo is not None:
        clock = clock.tz_convert("UTC").tz_localize(None)
    plausible = Plausible(
        earliest=contract.parse_timestamp(config.earliest_timestamp),
        latest=clock + pd.Timedelta(hours=config.future_tolerance_hours),
    )
    out_dir = Path(out_dir)
    previous = previous_report if previous_report is not None else read_report(out_dir)
    engine = _engine_record(config, raw_dir, source_url, out_dir)
    if config.engine_memory_limit:
        engine["memory_limit"] = config.engine_memory_limit
    engine_settings = engine_settings or EngineSettings(
        memory_limit=config.engine_memory_limit or None
    )
    if engine["name"] == "source":  # the checks run in the database, the events stay there
        assert source_url
        return ingest_in_database(out_dir, source_url, config, clock, plausible, previous, engine)
    if engine["name"] in ("duckdb", "spark") and raw_dir:
        # the events are checked and written by an embedded DuckDB (out of core); under spark
        # Spark then reads the processed Parquet: ingest needs no more memory than the users
        from insightos_utils.ingest.folder_engine import ingest_folder_in_duckdb

        return ingest_folder_in_duckdb(
            out_dir, raw_dir, config, clock, plausible, previous, engine,
            show_progress=show_progress, settings=engine_settings,
        )  # fmt: skip
    source = open_source(raw_dir, source_url)
    try:
        located = {spec.name: source.locate(spec) for spec in TABLES}
        for spec in TABLES:
            where = located[spec.name]
            if where is not None:
                header = source.header(spec, where)  # type: ignore[arg-type]  # each source's own kind
                require_columns(spec, str(where), header)
        present = [spec for spec in TABLES if located[spec.name]]
        with tqdm(
            total=2 * len(present) + 1,
            desc="ingest",
            unit="step",
            file=sys.stderr,
            disable=not show_progress,
        ) as bar:
            # Dependents first, users last: a database being written to meanwhile can only
            # gain users, so no event is reported as an orphan because of the reading order.
            raw: dict[str, RawTable] = {}
            held_events = source.held_events()
            for spec in reversed(present):
                bar.set_postfix_str(f"reading {spec.name}")
                raw[spec.name] = source.read(spec, located[spec.name])  # type: ignore[arg-type]
                bar.update()
            if not len(raw[contract.USERS.name].frame):
                raise InputError(
                    f"{raw[contract.USERS.name].label}: the users table has a header and no "
                    "rows; every event and transaction belongs to a user, so there is nothing to "
                    "ingest (export the users, or check the export's filter)"
                )
            results: dict[str, TableResult | None] = dict.fromkeys(located)
            users: TableResult | None = None
            for spec in present:
                bar.set_postfix_str(f"checking {spec.name}")
                results[spec.name] = check_table(spec, raw.pop(spec.name), users, plausible)
                users = users or results[spec.name]
                bar.update()
            bar.set_postfix_str("writing")
            report = write_outputs(
                out_dir, source.description, results, config, clock, previous, held_events,
                engine,
            )  # fmt: skip
            bar.update()
    finally:
        source.close()
    if report["status"] != "ok":
        raise InputError(report["error"])
    return report
