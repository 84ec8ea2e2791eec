"""Ingest's contract checks on one file of a raw folder, as SQL in an embedded DuckDB.

For ``[data] engine = "duckdb"`` the events file (CSV or Parquet) is never loaded into pandas:
DuckDB reads it (out of core: it spills to a temporary folder beyond its memory limit), gives
every row its first reason with the same rules, precedence and reasons as the file path (the
``check_sql`` branches the PostgreSQL checks use too), counts by rule, and writes the rejected
rows (every one, as ``rejected_<table>.csv``) and the rows that pass (typed, as Parquet) itself.

Row numbers are the file path's: a Parquet row's position + 2 (``file_row_number``); a CSV
record's line (header = 1), counted by DuckDB's order-preserving ``row_number() OVER ()`` over
the file and pushed down by the extra lines of earlier records whose values span lines. Repeated
ids are found by one aggregation over the key (``HAVING count(*) > 1``), so only the rows of
repeated ids are ranked. Text timestamps must be ISO 8601 (as in the database checks); JSON is
checked by DuckDB's parser. A CSV that DuckDB cannot parse (ragged rows, bytes that are not
UTF-8, open quotes) stops ingest with the file path's message (``sources.unparseable_csv``).
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from insightos_utils import contract
from insightos_utils.contract import DEPENDENT_REASONS, TableSpec
from insightos_utils.engines.check_sql import (
    BLANK_PATTERN,
    NUMBER_PATTERN,
    TS_PATTERN,
    Column,
    P,
    literal,
    outside,
    quote,
    reason_branches,
)
from insightos_utils.engines.choice import EngineSettings
from insightos_utils.ingest.checks import Plausible, TableResult, cascade_causes
from insightos_utils.ingest.sources import unparseable_csv

_NUMERIC = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "FLOAT", "DOUBLE", "REAL")
_UNSIGNED = ("UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT")
_JSON_EMPTY = r"^[ \t\n\r]*(null[ \t\n\r]*)?$"
LINE, REASON, REDELIVERED = (quote(P + name) for name in ("line", "reason", "redelivered"))


def _trimmed(text: str) -> str:
    return f"regexp_replace({text}, '^\\s+|\\s+$', '', 'g')"


@dataclass(frozen=True)
class DuckColumn(Column):
    """A contract column's SQL in DuckDB (``db_type``: DuckDB's type name)."""

    @property
    def is_text(self) -> bool:
        return self.db_type == "VARCHAR"

    @property
    def text(self) -> str:
        if self.db_type in ("FLOAT", "DOUBLE"):  # a whole number without ".0", as pandas says
            whole = f"CAST(CAST({self.raw} AS BIGINT) AS VARCHAR)"
            return (
                f"(CASE WHEN isfinite({self.raw}) AND {self.raw} = round({self.raw}) "
                f"AND abs({self.raw}) < 9e15 THEN {whole} ELSE CAST({self.raw} AS VARCHAR) END)"
            )
        return self.raw if self.is_text else f"CAST({self.raw} AS VARCHAR)"

    @property
    def empty(self) -> str:
        if self.is_text or self.db_type == "JSON":
            return f"({self.raw} IS NULL OR regexp_matches({self.text}, '{BLANK_PATTERN}'))"
        return f"({self.raw} IS NULL)"

    @property
    def value(self) -> str:
        """The typed value (NULL where empty or unparseable)."""
        kind, raw, text = self.db_type, self.raw, self.text
        if self.kind == "timestamp":
            if kind.startswith("TIMESTAMP WITH TIME ZONE"):
                return f"timezone('UTC', {raw})"
            if kind.startswith("TIMESTAMP") or kind == "DATE":
                return f"CAST({raw} AS TIMESTAMP)"
            # as the file path parses: a space before the zone is allowed, a comma fraction not
            joined = (
                f"regexp_replace({_trimmed(text)}, '\\s+([Zz]|[+-]\\d{{2}}(:?\\d{{2}})?)$', '\\1')"
            )
            parsed = f"TRY_CAST({joined} AS TIMESTAMPTZ)"
            return f"(CASE WHEN regexp_matches({text}, '{TS_PATTERN}') THEN timezone('UTC', {parsed}) END)"
        if self.kind == "number":
            if kind in _NUMERIC or kind in _UNSIGNED or kind.startswith("DECIMAL"):
                number = f"CAST({raw} AS DOUBLE)"
                return f"(CASE WHEN isfinite({number}) THEN {number} END)"
            number = f"TRY_CAST({_trimmed(text)} AS DOUBLE)"
            return (
                f"(CASE WHEN regexp_matches({text}, '{NUMBER_PATTERN}') AND isfinite({number}) "
                f"THEN {number} END)"
            )
        return text

    @property
    def json_empty(self) -> str:
        return f"({self.raw} IS NULL OR regexp_matches({self.text}, '{_JSON_EMPTY}'))"

    @property
    def json_ok(self) -> str:
        text = self.text
        return (  # not try(json_type(...)): an exception per invalid row, 200x slower
            f"({self.json_empty} OR (CASE WHEN json_valid({text}) "
            f"THEN json_type({text}) = 'OBJECT' ELSE false END))"
        )


def connect(settings: EngineSettings | None = None) -> Any:
    """An embedded DuckDB for the checks: UTC, spilling to the settings' temporary folder."""
    import duckdb

    settings = settings or EngineSettings()
    config: dict[str, Any] = {
        "temp_directory": settings.spill_directory(),
        "preserve_insertion_order": False,
    }
    if settings.memory_limit:
        config["memory_limit"] = settings.memory_limit
    if settings.threads:
        config["threads"] = int(settings.threads)
    connection = duckdb.connect(config=config)
    connection.execute("SET TimeZone = 'UTC'")
    quiet_progress(connection.execute)
    return connection


def quiet_progress(execute: Any) -> None:
    """No DuckDB progress bar. Inside Jupyter (the notebooks) DuckDB refuses to change that
    setting without ipywidgets — and shows none there anyway — so a refusal is fine."""
    with contextlib.suppress(Exception):  # duckdb.InvalidInputException in a kernel
        execute("SET enable_progress_bar = false")


@dataclass
class FileChecks:
    """One file checked in DuckDB: its report entry (``ingest_report.json``'s ``tables``),
    the first own offending rows (reason, line) for the threshold message, and how to write
    its rejected rows and its clean rows."""

    spec: TableSpec
    connection: Any
    report: dict[str, Any]
    first_rows: pd.DataFrame
    originals: list[str]
    outputs: str

    def write_rejected(self, path: Path) -> None:
        names = ", ".join(f"{quote(P + 'o_' + n)} AS {quote(n)}" for n in self.originals)
        self.connection.execute(
            f"COPY (SELECT {names}, {REASON} AS reason, {LINE} AS line "
            f"FROM insightos_bad_{self.spec.name} WHERE {REASON} IS NOT NULL ORDER BY {LINE}) "
            f"TO {literal(str(path))} (FORMAT csv, HEADER)"
        )

    def write_clean(self, path: Path) -> None:
        self.connection.execute(
            f"COPY (SELECT {self.outputs} FROM {_clean(self.spec)} AS src) "
            f"TO {literal(str(path))} (FORMAT parquet)"
        )


def _clean(spec: TableSpec) -> str:
    """The rows that pass: the typed rows without the ones the verdict pass set apart (a
    join with that small table, no rule evaluated again)."""
    return (
        f"(SELECT * FROM insightos_typed_{spec.name} AS t WHERE t.{LINE} NOT IN "
        f"(SELECT b.{P}row FROM insightos_bad_{spec.name} AS b))"
    )


def _source(connection: Any, spec: TableSpec, path: Path, header: list[str]) -> str:
    """A relation over the file with every column as read plus ``__insightos_line`` (the
    order-preserving position; for CSV the record's line before multi-line corrections)."""
    where = literal(str(path))
    if path.suffix == ".parquet":
        return f"(SELECT *, file_row_number + 2 AS {LINE} FROM read_parquet({where}, file_row_number = true))"
    columns = "{" + ", ".join(f"{literal(n)}: 'VARCHAR'" for n in header) + "}"
    reader = (
        f"read_csv({where}, auto_detect = false, header = true, delim = ',', quote = '\"', "
        f"escape = '\"', columns = {columns})"
    )
    texts = ", ".join(f"coalesce({quote(n)}, '') AS {quote(n)}" for n in header)
    table = f"insightos_raw_{spec.name}"
    connection.execute("SET preserve_insertion_order = true")  # row_number() in file order
    try:
        connection.execute(
            f"CREATE OR REPLACE TEMP TABLE {table} AS "
            f"SELECT {texts}, row_number() OVER () + 1 AS {LINE} FROM {reader}"
        )
    except Exception as error:  # duckdb's own error types: the file path's message
        said = [line for line in str(error).splitlines() if line.strip()]
        reason = "; ".join(said[:1] + [line for line in said[2:3] if "fix" not in line])
        raise unparseable_csv(path, header, RuntimeError(reason)) from None
    finally:
        connection.execute("SET preserve_insertion_order = false")
    return table


def _multiline_offsets(connection: Any, source: str, header: list[str]) -> bool:
    """For a CSV: records whose values span lines (``insightos_multiline``); True when any."""
    newlines = " + ".join(
        f"(length({quote(n)}) - length(replace({quote(n)}, chr(10), '')))" for n in header
    )
    connection.execute(
        f"CREATE OR REPLACE TEMP TABLE insightos_multiline AS SELECT {LINE} AS rn, n FROM "
        f"(SELECT {LINE}, {newlines or '0'} AS n FROM {source}) WHERE n > 0"
    )
    return bool(connection.execute("SELECT count(*) FROM insightos_multiline").fetchone()[0])


def _register_users(connection: Any, users: TableResult) -> None:
    """The users ingest keeps and every user id it read, as DuckDB tables for the joins."""
    import pyarrow as pa

    all_ids = users.all_ids if users.all_ids is not None else users.kept_values("user_id")
    for table, values in (
        ("insightos_kept_users", users.kept_values("user_id")),
        ("insightos_known_users", all_ids),
    ):
        arrow = pa.table({"user_id": pa.array(values.astype("str").to_numpy(), pa.string())})
        connection.register(f"{table}_arrow", arrow)
        connection.execute(
            f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT DISTINCT user_id FROM {table}_arrow"
        )
        connection.unregister(f"{table}_arrow")


def _checked_view(
    connection: Any,
    spec: TableSpec,
    source: str,
    db_types: dict[str, str],
    has_users: bool,
    plausible: Plausible,
) -> dict[str, DuckColumn]:
    """``insightos_checked_<table>``: every row, its typed values, reason and redelivery."""
    columns = {
        c.name: DuckColumn(c.name, c.kind, db_types[c.name])
        for c in spec.columns
        if c.name in db_types
    }
    typed = ", ".join(f"{sql.value} AS {quote(P + 'v_' + name)}" for name, sql in columns.items())
    connection.execute(
        f"CREATE OR REPLACE TEMP VIEW insightos_typed_{spec.name} AS "
        f"SELECT src.*, {typed} FROM {source} AS src"
    )
    joins = ""
    if "user_id" in columns and spec is not contract.USERS and has_users:
        user_text = columns["user_id"].text
        joins = (
            f" LEFT JOIN insightos_kept_users AS kept ON kept.user_id = {user_text}"
            f" LEFT JOIN insightos_known_users AS known ON known.user_id = {user_text}"
        )
    base_reason = "CASE " + " ".join(reason_branches(spec, columns, has_users, plausible)) + " END"
    ranked = f"insightos_ranked_{spec.name}"
    if spec.key:
        key = columns[spec.key]
        everything = ", ".join(f"CAST(src.{quote(name)} AS VARCHAR)" for name in db_types)
        connection.execute(
            f"""CREATE OR REPLACE TEMP TABLE {ranked} AS
            WITH repeated AS (
              SELECT {key.text} AS k FROM {source} AS src WHERE NOT {key.empty}
              GROUP BY 1 HAVING count(*) > 1)
            SELECT src.{LINE} AS l,
              row_number() OVER (PARTITION BY {key.text} ORDER BY src.{LINE}) AS key_rank,
              row_number() OVER (PARTITION BY {everything} ORDER BY src.{LINE}) AS same_rank
            FROM {source} AS src WHERE {key.text} IN (SELECT k FROM repeated)"""
        )
    else:
        connection.execute(
            f"CREATE OR REPLACE TEMP TABLE {ranked} (l BIGINT, key_rank BIGINT, same_rank BIGINT)"
        )
    redelivery = "true" if spec.name in contract.REDELIVERED_TABLES else "false"
    later = "coalesce(r.key_rank, 1) > 1"
    again = f"({redelivery} AND {later} AND coalesce(r.same_rank, 1) > 1)"
    duplicate = literal("duplicate_" + (spec.key or ""))
    base, is_later = quote(P + "base_reason"), quote(P + "later")
    connection.execute(
        f"""CREATE OR REPLACE TEMP VIEW insightos_checked_{spec.name} AS
        SELECT flagged.*,
          CASE WHEN {REDELIVERED} THEN NULL WHEN {base} IS NOT NULL THEN {base}
               WHEN {is_later} THEN {duplicate} END AS {REASON}
        FROM (
          SELECT src.*, {base_reason} AS {base}, {later} AS {is_later},
            {again} AS {REDELIVERED}
          FROM insightos_typed_{spec.name} AS src{joins}
          LEFT JOIN {ranked} AS r ON r.l = src.{LINE}
        ) AS flagged"""
    )
    return columns


def _outputs(spec: TableSpec, columns: dict[str, DuckColumn], db_types: dict[str, str]) -> str:
    """The clean rows' columns as the file path writes them: typed contract columns (empty
    JSON as ""), then the extra columns as they came."""
    selected = []
    for name, sql in columns.items():
        if sql.kind == "json":
            value = f"CASE WHEN {sql.json_empty} THEN '' ELSE {sql.text} END"
        else:
            value = quote(P + "v_" + name)
        selected.append(f"{value} AS {quote(name)}")
    selected += [f"src.{quote(name)}" for name in db_types if name not in spec.column_names]
    return ", ".join(selected)


def _iso(value: Any) -> str | None:
    return None if value is None or pd.isna(value) else pd.Timestamp(value).isoformat()


def check_file(
    connection: Any,
    spec: TableSpec,
    path: Path,
    header: list[str],
    users: TableResult | None,
    plausible: Plausible,
) -> FileChecks:
    """Check ``path`` (``spec``'s table, ``header`` its columns) in DuckDB against ``users``
    (the checked users table): the report entry and the writers of its outputs."""
    source = _source(connection, spec, path, header)
    described = connection.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()
    db_types = {str(row[0]): str(row[1]) for row in described if row[0] != P + "line"}
    db_types.pop("file_row_number", None)
    for name in [n for n in db_types if re.fullmatch(r"__index_level_\d+__", n)]:
        db_types.pop(name)  # a pandas index stored as a column: pandas reads it as the index
    if users is not None:
        _register_users(connection, users)
    columns = _checked_view(connection, spec, source, db_types, users is not None, plausible)
    stamps = [name for name, sql in columns.items() if sql.kind == "timestamp"]

    # the one pass that evaluates the rules: the rows with a reason or redelivered (few) are
    # set apart with their original and typed values; everything else is read from them
    originals = list(db_types)
    kept = ", ".join(f"src.{quote(n)} AS {quote(P + 'o_' + n)}" for n in originals)
    kept += "".join(f", src.{quote(P + 'v_' + name)}" for name in stamps)
    user_value = quote(P + "v_user_id") if "user_id" in columns else "NULL"
    line = f"src.{LINE}"
    if path.suffix == ".csv" and _multiline_offsets(connection, source, header):
        line += (
            " + coalesce((SELECT sum(m.n) FROM insightos_multiline AS m "
            f"WHERE m.rn < src.{LINE}), 0)"
        )
    bad = f"insightos_bad_{spec.name}"
    connection.execute(
        f"CREATE OR REPLACE TEMP TABLE {bad} AS SELECT {kept}, {REASON}, {REDELIVERED}, "
        f"CAST({line} AS BIGINT) AS {LINE}, src.{LINE} AS {P}row, {user_value} AS uid "
        f"FROM insightos_checked_{spec.name} AS src "
        f"WHERE {REASON} IS NOT NULL OR {REDELIVERED}"
    )
    (rows_read,) = connection.execute(f"SELECT count(*) FROM {source}").fetchone()
    measures = [f"count(*) FILTER (WHERE {REDELIVERED})"]
    for name in stamps:  # rows outside the plausible range, whatever else is wrong with them
        value = quote(P + "v_" + name)
        out = outside(value, plausible)
        measures += [f"count(*) FILTER (WHERE {out})", f"min({value}) FILTER (WHERE {out})"]
        measures.append(f"max({value}) FILTER (WHERE {out})")
    found = list(connection.execute(f"SELECT {', '.join(measures)} FROM {bad}").fetchone())
    duplicates = int(found.pop(0))
    implausible = {}
    for name in stamps:
        n, low, high = found.pop(0), found.pop(0), found.pop(0)
        if n:
            implausible[name] = {
                "rows": int(n),
                "min": _iso(low),
                "max": _iso(high),
                "plausible_from": plausible.earliest.isoformat(),
                "plausible_to": plausible.latest.isoformat(),
            }
    date_range = None
    stamp_column = contract.TIMESTAMP_COLUMNS.get(spec.name)
    if stamp_column is not None:
        typed = quote(P + "v_" + stamp_column)
        low, high = connection.execute(
            f"SELECT min({typed}), max({typed}) FROM {_clean(spec)}"
        ).fetchone()
        date_range = {"column": stamp_column, "min": _iso(low), "max": _iso(high)}
    counts = connection.execute(
        f"SELECT {REASON}, count(*) FROM {bad} WHERE {REASON} IS NOT NULL "
        f"GROUP BY 1 ORDER BY count(*) DESC, min({LINE})"
    ).fetchall()
    rejected_rows = sum(int(n) for _, n in counts)
    dependent = sum(int(n) for name, n in counts if name in DEPENDENT_REASONS)
    others = ", ".join(literal(name) for name in sorted(DEPENDENT_REASONS))
    first_rows = connection.execute(
        f"SELECT {REASON} AS reason, {LINE} AS line FROM {bad} "
        f"WHERE {REASON} NOT IN ({others}) ORDER BY {LINE} LIMIT 5"
    ).df()
    extras = [name for name in db_types if name not in spec.column_names]
    report: dict[str, Any] = {
        "present": True,
        "source": str(path),
        "format": path.suffix.lstrip("."),
        "validated_in": "duckdb",
        "rows_read": int(rows_read),
        "duplicates": duplicates,
        "rejected": {str(name): int(n) for name, n in counts},
        "rejected_rows": rejected_rows,
        "user_rejected_rows": dependent,
        "reject_share": (rejected_rows - dependent) / rows_read if rows_read else 0.0,
        "rows_written": int(rows_read) - rejected_rows - duplicates,
        "date_range": date_range,
        "columns": [name for name in spec.column_names if name in db_types] + extras,
        "extra_columns": extras,
    }
    if implausible:
        report["implausible_timestamps"] = implausible
    if dependent and users is not None:
        per_user = connection.execute(
            f"SELECT uid, count(*) AS n FROM {bad} WHERE {REASON} IN ({others}) "
            f"GROUP BY uid ORDER BY n DESC, min({LINE})"
        ).fetchall()
        series = pd.Series([int(n) for _, n in per_user], index=[str(u) for u, _ in per_user])
        report["user_rejected_cause"] = (
            f"{dependent:,} row(s) rejected only because their user was rejected in "
            f"{users.label}: " + "; ".join(cascade_causes(series, users))
        )
    return FileChecks(
        spec, connection, report, first_rows, originals, _outputs(spec, columns, db_types)
    )


__all__ = ["DuckColumn", "FileChecks", "check_file", "connect"]
