"""What ingest writes and says: Parquet, rejected rows, ``ingest_report.json`` and its reading.

Rejected files and the report are always written; Parquet only when every table is within
``max_reject_share`` (then all tables are renamed into place together, never a mixed set). The
report also carries warnings a person should see before trusting the data: data that ends long
before today (``stale_after_days``), and a table that shrank against the previous ingest of the
same source (``shrink_warning_share``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from insightos_utils import contract
from insightos_utils.config import DataConfig
from insightos_utils.contract import TABLES
from insightos_utils.ingest.checks import TableResult
from insightos_utils.io_utils import atomic_write, atomic_write_json, atomic_write_many

if TYPE_CHECKING:
    from insightos_utils.engines.folder_checks import FileChecks

REPORT_NAME = "ingest_report.json"
FIRST_ROWS_SHOWN = 5  # offending lines named in a threshold error


def _write_rejected(result: TableResult, path: Path) -> None:
    result.rejected.to_csv(path, index=False)


def _write_parquet(result: TableResult, path: Path) -> None:
    """The kept rows, filtered batch by batch while writing (no full filtered copy in memory).

    Dictionary encoding only for text columns that repeat (not ids, timestamps or JSON)."""
    table = pa.Table.from_pandas(result.output, preserve_index=False)
    spec = result.spec
    unique_like = {spec.key} | {c.name for c in spec.columns if c.kind in ("timestamp", "json")}
    dictionary = [name for name in table.column_names if name not in unique_like]
    with pq.ParquetWriter(path, table.schema, use_dictionary=dictionary) as writer:
        start = 0
        for batch in table.to_batches(max_chunksize=1 << 20):
            keep = result.keep[start : start + len(batch)]
            start += len(batch)
            writer.write_batch(batch if keep.all() else batch.filter(pa.array(keep)))


def _rejected_writer(result: TableResult | FileChecks) -> Callable[[Path], Any]:
    if isinstance(result, TableResult):
        return functools.partial(_write_rejected, result)
    return result.write_rejected  # checked in DuckDB: DuckDB writes the rows


def _parquet_writer(result: TableResult | FileChecks) -> Callable[[Path], Any]:
    if isinstance(result, TableResult):
        return functools.partial(_write_parquet, result)
    return result.write_clean


def write_outputs(
    out_dir: Path,
    description: str,
    results: Mapping[str, TableResult | FileChecks | None],
    config: DataConfig,
    now: pd.Timestamp,
    previous: dict[str, Any] | None,
    held_events: int | None = None,
    engine: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Rejected files and the report always; Parquet only when every table is within bounds.
    ``engine``: where the per-user tables will be computed (``"engine"`` in the report). A
    result is a table checked in pandas (``TableResult``) or a file checked in DuckDB
    (``engines.folder_checks.FileChecks``), which writes its own rows."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tables: dict[str, Any] = {}
    failures: list[str] = []
    for name, result in results.items():
        rejected_path = out_dir / f"rejected_{name}.csv"
        if result is None:
            tables[name] = {"present": False, "note": f"no {name} table in the source"}
            rejected_path.unlink(missing_ok=True)
            continue
        tables[name] = result.report
        if result.report["rejected_rows"]:
            atomic_write(rejected_path, _rejected_writer(result))
            result.report["rejected_file"] = rejected_path.name
        else:
            rejected_path.unlink(missing_ok=True)
        if result.report["reject_share"] > config.max_reject_share:
            first = result.rejected if isinstance(result, TableResult) else result.first_rows
            failures.append(
                threshold_message(
                    result.spec, result.report, first, rejected_path, config.max_reject_share
                )
            )

    ok = not failures
    if ok:  # all Parquet under temporary names first, then renamed: never a mixed set
        atomic_write_many(
            {
                out_dir / f"{name}.parquet": _parquet_writer(result)
                for name, result in results.items()
                if result is not None
            }
        )
        for name, result in results.items():
            if result is None:  # a table the company no longer provides
                (out_dir / f"{name}.parquet").unlink(missing_ok=True)

    report = report_document(
        description, tables, config, now, failures, previous, held_events, engine
    )
    atomic_write_json(out_dir / REPORT_NAME, report)
    return report


def report_document(
    description: str,
    tables: dict[str, Any],
    config: DataConfig,
    now: pd.Timestamp,
    failures: list[str],
    previous: dict[str, Any] | None,
    held_events: int | None = None,
    engine: dict[str, Any] | None = None,
    line_numbering: str = (
        "CSV: line in the file (header = 1); Parquet/SQL: row position, first row = 2"
    ),
) -> dict[str, Any]:
    """``ingest_report.json``'s document for the tables' entries (both ingest paths)."""
    ok = not failures
    latest = latest_timestamp(tables)
    report = {
        "status": "ok" if ok else "failed",
        "source": description,
        "ingested_at": now.isoformat(),
        "max_reject_share": config.max_reject_share,
        "plausible_timestamps": {
            "from": pd.Timestamp(contract.parse_timestamp(config.earliest_timestamp)).isoformat(),
            "to": (now + pd.Timedelta(hours=config.future_tolerance_hours)).isoformat(),
        },
        "latest_timestamp": latest.isoformat() if latest is not None else None,
        "as_of_default": min(latest, now).isoformat() if latest is not None else None,
        "parquet_written": ok,
        "line_numbering": line_numbering,
        "error": None if ok else "\n".join(failures),
        "tables": tables,
        "held_events": held_events,
    }
    if engine is not None:
        report["engine"] = engine
    report["warnings"] = data_warnings(report, config, now, previous)
    return report


def threshold_message(
    spec: contract.TableSpec,
    report: dict[str, Any],
    rejected: pd.DataFrame,
    rejected_path: Path | str,
    max_share: float,
) -> str:
    """Ingest's error for a table whose own rejected share exceeds ``max_share``: the share,
    the first offending lines (from ``rejected``: reason and line per row) and where the
    rejected rows are. The file path and the database checks (``engines.validation``) share it."""
    own = rejected[~rejected["reason"].isin(list(contract.DEPENDENT_REASONS))]
    first = own.sort_values("line").head(FIRST_ROWS_SHOWN)
    rows = "; ".join(
        f"line {line}: {contract.describe_reason(reason, spec)} ({reason})"
        for line, reason in zip(first["line"], first["reason"], strict=True)
    )
    n_own = report["rejected_rows"] - report["user_rejected_rows"]
    implausible = "".join(
        f" Implausible {column}: {found['rows']:,} row(s) from {found['min']} to {found['max']} "
        f"(plausible: {found['plausible_from']} to {found['plausible_to']}; see [data] "
        "earliest_timestamp and future_tolerance_hours)."
        for column, found in (report.get("implausible_timestamps") or {}).items()
    )
    return (
        f"{report['source']}: {n_own} of {report['rows_read']} rows rejected "
        f"({report['reject_share']:.1%}), more than max_reject_share {max_share:.1%}. "
        f"First offending rows: {rows}.{implausible} "
        + (f"Not counted here: {cause}. " if (cause := report.get("user_rejected_cause")) else "")
        + f"Every rejected row and its reason is in {rejected_path}; "
        "fix the source, or raise --max-reject-share to accept them. "
        "The processed Parquet was not replaced."
    )


def latest_timestamp(tables: dict[str, Any]) -> pd.Timestamp | None:
    """The latest timestamp kept in any table (the end of the data), None when there is none."""
    ends = [
        pd.Timestamp(entry["date_range"]["max"])
        for entry in tables.values()
        if entry.get("present") and (entry.get("date_range") or {}).get("max")
    ]
    return max(ends) if ends else None


def data_warnings(
    report: dict[str, Any],
    config: DataConfig,
    now: pd.Timestamp,
    previous: dict[str, Any] | None,
) -> list[dict[str, Any]]:
    """What a person should know before trusting the data: stale data, shrunken tables,
    events held by the collector for users it has not seen."""
    warnings: list[dict[str, Any]] = []
    latest = report.get("latest_timestamp")
    if latest:
        age_days = (now - pd.Timestamp(latest)) / pd.Timedelta(days=1)
        if age_days > config.stale_after_days:
            warnings.append(
                {
                    "kind": "stale_data",
                    "message": (
                        f"the data ends on {latest[:10]}, {age_days:,.0f} days before the time "
                        f"of this ingest ({now:%Y-%m-%d}); more than stale_after_days "
                        f"{config.stale_after_days}: is the export or the tracking still running?"
                    ),
                    "days": round(age_days, 1),
                }
            )
    if previous and previous.get("source") == report.get("source"):
        for name, entry in report["tables"].items():
            before = (previous.get("tables") or {}).get(name) or {}
            was, now_rows = before.get("rows_written"), entry.get("rows_written")
            if not entry.get("present") or not isinstance(was, int) or not was:
                continue
            shrink = 1 - (now_rows or 0) / was
            if shrink > config.shrink_warning_share:
                warnings.append(
                    {
                        "kind": "table_shrank",
                        "table": name,
                        "message": (
                            f"{name} has {now_rows:,} rows, {shrink:.0%} fewer than the "
                            f"{was:,} of the previous ingest of this source "
                            f"({previous.get('ingested_at', '?')[:10]}); more than "
                            f"shrink_warning_share {config.shrink_warning_share:.0%}: a partial "
                            "export?"
                        ),
                        "previous_rows": was,
                        "rows": now_rows,
                    }
                )
    held = report.get("held_events")
    if held:
        warnings.append(
            {
                "kind": "held_events",
                "message": (
                    f"the collector holds {held:,} events for users it has never seen (table "
                    "held_events); they are not ingested until those users are identified"
                ),
                "rows": held,
            }
        )
    return warnings


# --- the report as tables (for 01_ingest) ---------------------------------------------------------


def report_tables(report: dict[str, Any]) -> dict[str, pd.DataFrame]:
    """The ingest report as three small tables: ``rows`` per table, ``rejects`` by reason,
    ``date_ranges``."""
    rows, rejects, ranges = [], [], []
    for name, entry in report["tables"].items():
        if not entry.get("present"):
            rows.append({"table": name, "present": False})
            continue
        rows.append(
            {
                "table": name,
                "present": True,
                "rows_read": entry["rows_read"],
                "duplicates": entry["duplicates"],
                "rejected": entry["rejected_rows"],
                "of_which_user_rejected": entry.get("user_rejected_rows", 0),
                "rows_written": entry["rows_written"],
                "reject_share": round(entry["reject_share"], 4),
            }
        )
        spec = next(s for s in TABLES if s.name == name)
        for reason, count in entry["rejected"].items():
            meaning = contract.describe_reason(reason, spec)
            rejects.append({"table": name, "reason": reason, "rows": count, "meaning": meaning})
        if entry["date_range"]:
            ranges.append({"table": name, **entry["date_range"]})
    return {
        "rows": pd.DataFrame(rows).set_index("table"),
        "rejects": pd.DataFrame(rejects, columns=["table", "reason", "rows", "meaning"]),
        "date_ranges": pd.DataFrame(ranges, columns=["table", "column", "min", "max"]),
    }


def report_summary(report: dict[str, Any]) -> str:
    """The report in a few sentences (Markdown), numbers inline."""
    tables = {name: entry for name, entry in report["tables"].items() if entry["present"]}
    written = ", ".join(f"{entry['rows_written']:,} {name}" for name, entry in tables.items())
    absent = [name for name in report["tables"] if name not in tables]
    duplicates = sum(entry["duplicates"] for entry in tables.values())
    rejects = [
        f"{name} {entry['rejected_rows']:,} ("
        + ", ".join(f"{reason} {count:,}" for reason, count in entry["rejected"].items())
        + ")"
        for name, entry in tables.items()
        if entry["rejected_rows"]
    ]
    outcome = "written as Parquet" if report["parquet_written"] else "NOT written (see the error)"
    lines = [
        f"Ingest **{report['status']}** from `{report['source']}`: {written} rows passed the "
        f"contract and were {outcome}.",
        "Rejected rows, kept with their reason in `rejected_<table>.csv`: "
        + ("; ".join(rejects) if rejects else "none")
        + f". Redelivered events dropped as duplicates: {duplicates:,}.",
    ]
    events_range = tables["events"].get("date_range") or {}
    if events_range.get("min"):
        lines.append(f"Events run from {events_range['min']} to {events_range['max']}.")
    elif "events" in tables:
        lines.append(
            "The events table has no rows (a CRM-only company): the lead models stand on the "
            "leads' own attributes."
        )
    for name, entry in tables.items():
        if entry.get("user_rejected_cause"):
            lines.append(f"In {name}: {entry['user_rejected_cause']}.")
        for column, found in (entry.get("implausible_timestamps") or {}).items():
            lines.append(
                f"{found['rows']:,} {name} row(s) have an implausible {column} (from "
                f"{found['min'][:10]} to {found['max'][:10]}; plausible is "
                f"{found['plausible_from'][:10]} to {found['plausible_to'][:10]}): rejected."
            )
    if absent:
        lines.append(f"Optional tables not provided: {', '.join(absent)}.")
    for warning in report.get("warnings") or []:
        message = str(warning["message"]).rstrip(".")
        lines.append(f"**Check the data:** {message}{'' if message.endswith('?') else '.'}")
    return " ".join(lines)


def events_per_week(events: pd.DataFrame) -> pd.Series:
    """Number of events per calendar week (weeks start on Monday, UTC), empty weeks as 0.
    Counted by the engine when the events stay with it (``[data] engine`` source, duckdb or
    spark: ``read_processed`` then gives an empty placeholder carrying the engine)."""
    from insightos_utils.engines import pipeline

    ref = pipeline.engine_of(events)
    if ref is not None and not len(events):
        counts = pipeline.event_weeks(ref)
    else:
        stamps = events["occurred_at"].dropna()
        weeks = stamps.dt.to_period("W-SUN").dt.start_time
        counts = weeks.value_counts().sort_index()
    if len(counts):
        every_week = pd.date_range(counts.index.min(), counts.index.max(), freq="7D")
        counts = counts.reindex(every_week, fill_value=0)
    counts.index.name = "week"
    return counts.rename("events")
