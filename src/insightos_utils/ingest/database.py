"""Ingest of a SQL source with ``[data] engine = "source"``: the checks run in the database.

The contract's row rules run as queries inside the database (``engines.validation``); only the
counts by rule, the date ranges and the rejected rows (capped) come out, and the report,
messages and exit status are those of the file path. Then the per-user tables are copied into
the processed folder — ``users`` (the lead attributes the models read), ``transactions`` (one
row per purchase, for the LTV stage's checks) and ``campaign_spend`` — typed by the file path's
own ``check_table``; the events are not: the feature table's event columns, the event
vocabulary and the default as-of are computed in the database later (``engines.pipeline``).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pandas as pd

from insightos_utils.config import DataConfig
from insightos_utils.contract import TABLES
from insightos_utils.errors import InputError
from insightos_utils.ingest.checks import Plausible, TableResult, check_table
from insightos_utils.ingest.report import REPORT_NAME, report_document, threshold_message
from insightos_utils.ingest.sources import DatabaseSource, split_password
from insightos_utils.io_utils import atomic_write, atomic_write_json, atomic_write_many

COPIED = ("users", "transactions", "campaign_spend")  # per-user / small tables copied out


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    frame.to_csv(path, index=False)


def ingest_in_database(
    out_dir: Path,
    source_url: str,
    config: DataConfig,
    clock: pd.Timestamp,
    plausible: Plausible,
    previous: dict[str, Any] | None,
    engine: dict[str, Any],
) -> dict[str, Any]:
    """Check the tables of ``source_url`` in the database, write the report, the rejected
    rows and the per-user tables' Parquet into ``out_dir``; the report (raises ``InputError``
    as the file path does)."""
    from insightos_utils.engines.validation import validate_database
    from insightos_utils.ingest.report import _write_parquet

    validation = validate_database(source_url, config, now=clock, rejected_dir=out_dir)
    tables: dict[str, Any] = validation.report["tables"]
    out_dir.mkdir(parents=True, exist_ok=True)
    failures: list[str] = []
    for spec in TABLES:
        entry = tables[spec.name]
        path = out_dir / f"rejected_{spec.name}.csv"
        rows = validation.rejected.get(spec.name)
        if rows is not None and len(rows):
            atomic_write(path, functools.partial(_write_csv, rows))
            entry["rejected_file"] = path.name
        else:
            path.unlink(missing_ok=True)
        if entry.get("present") and entry["reject_share"] > config.max_reject_share:
            assert rows is not None
            failures.append(threshold_message(spec, entry, rows, path, config.max_reject_share))
    held_events = None
    if not failures:
        source = DatabaseSource(source_url)
        try:
            held_events = source.held_events()
            results: dict[str, TableResult] = {}
            users: TableResult | None = None
            for spec in TABLES:
                if spec.name not in COPIED or not tables[spec.name].get("present"):
                    continue
                label = f"table {spec.name} in {source.description}"
                results[spec.name] = check_table(spec, source.read(spec, label), users, plausible)
                users = users or results[spec.name]
        finally:
            source.close()
        for name, result in results.items():
            if result.report["rows_written"] != tables[name]["rows_written"]:
                raise InputError(  # the tables changed between the checks and the copy
                    f"table {name} in {source.description}: {tables[name]['rows_written']:,} rows "
                    f"passed the checks in the database, {result.report['rows_written']:,} when "
                    "copied out a moment later; is the table being written to? Run again"
                )
        atomic_write_many(
            {
                out_dir / f"{name}.parquet": functools.partial(_write_parquet, result)
                for name, result in results.items()
            }
        )
        for spec in TABLES:  # the events stay in the database; absent tables are gone
            if spec.name not in results:
                (out_dir / f"{spec.name}.parquet").unlink(missing_ok=True)
    report = report_document(
        validation.report["source"],
        tables,
        config,
        clock,
        failures,
        previous,
        held_events,
        engine,
        line_numbering=validation.report["line_numbering"],
    )
    report["validated_in"] = "database"
    atomic_write_json(out_dir / REPORT_NAME, report)
    if failures:
        raise InputError(report["error"])
    return report


def engine_record(chosen: str, requested: str, location: str, out_dir: Path) -> dict[str, Any]:
    """The report's ``"engine"``: which engine computes the per-user tables, over what."""
    where = {
        "memory": "pandas/numpy in the notebooks' process, from the processed Parquet",
        "duckdb": "an embedded DuckDB over the processed Parquet",
        "spark": "Spark over the processed Parquet",
        "source": "the source database (the events stay there)",
    }[chosen]
    if chosen == "source":
        location = split_password(location)[0]
    return {
        "name": chosen,
        "requested": requested,
        "location": location,
        "processed_dir": str(out_dir.resolve()),
        "computes": where,
        "events_copied": chosen != "source",
    }


__all__ = ["engine_record", "ingest_in_database"]
