"""Ingest of a raw folder with ``[data] engine = "duckdb"``: the events never pass through pandas.

The users, transactions and campaign spend (per-user and per-purchase tables: millions of rows,
not billions) are read and checked by the file path's own code (``sources``, ``checks``); the
events file is exposed to an embedded DuckDB and checked there with the same rules
(``engines.folder_checks``), and DuckDB writes its rejected rows and its clean Parquet. The
report, the messages, the exit status and the all-or-nothing replacement of the processed
Parquet (``report.write_outputs``) are the file path's.
"""

from __future__ import annotations

import sys
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
from insightos_utils.ingest.report import write_outputs
from insightos_utils.ingest.sources import FolderSource, require_columns

IN_DUCKDB = frozenset({contract.EVENTS.name})  # the tables checked and written by DuckDB


def ingest_folder_in_duckdb(
    out_dir: Path,
    raw_dir: str | Path,
    config: DataConfig,
    clock: pd.Timestamp,
    plausible: Plausible,
    previous: dict[str, Any] | None,
    engine: dict[str, Any],
    *,
    show_progress: bool = True,
    settings: EngineSettings | None = None,
) -> dict[str, Any]:
    """Validate, deduplicate and type ``raw_dir`` into ``out_dir`` with the events checked in
    DuckDB; the ingest report (raises ``InputError`` as the file path does)."""
    from insightos_utils.engines.folder_checks import FileChecks, check_file, connect

    source = FolderSource(Path(raw_dir))
    located = {spec.name: source.locate(spec) for spec in TABLES}
    headers: dict[str, list[str]] = {}
    for spec in TABLES:
        where = located[spec.name]
        if where is not None:
            headers[spec.name] = source.header(spec, where)
            require_columns(spec, str(where), headers[spec.name])
    present = [spec for spec in TABLES if located[spec.name] is not None]
    connection = connect(settings)
    try:
        with tqdm(
            total=len(present) + 1,
            desc="ingest",
            unit="step",
            file=sys.stderr,
            disable=not show_progress,
        ) as bar:
            results: dict[str, TableResult | FileChecks | None] = dict.fromkeys(located)
            users: TableResult | None = None
            for spec in present:  # users first: the others are checked against them
                path = located[spec.name]
                assert path is not None
                bar.set_postfix_str(f"checking {spec.name}")
                if spec.name in IN_DUCKDB:
                    results[spec.name] = check_file(
                        connection, spec, path, headers[spec.name], users, plausible
                    )
                else:
                    raw = source.read(spec, path)
                    if spec is contract.USERS and not len(raw.frame):
                        raise InputError(
                            f"{raw.label}: the users table has a header and no rows; every "
                            "event and transaction belongs to a user, so there is nothing to "
                            "ingest (export the users, or check the export's filter)"
                        )
                    checked = check_table(spec, raw, users, plausible)
                    results[spec.name] = checked
                    users = users or checked
                bar.update()
            bar.set_postfix_str("writing")
            report = write_outputs(
                out_dir, source.description, results, config, clock, previous, None, engine
            )
            bar.update()
    finally:
        connection.close()
    if report["status"] != "ok":
        raise InputError(report["error"])
    return report


__all__ = ["IN_DUCKDB", "ingest_folder_in_duckdb"]
