"""Ingest's contract checks as SQL inside the database (PostgreSQL): counts and rejects only.

For a SQL source the rules of ``ingest`` run where the rows are: every row of every contract
table gets its first reason (the same reasons, in the same order of precedence, as the file
path: empty and unparseable values column by column, unknown status, conversion rules, orphan
and rejected-user references, non-positive amounts, negative spend, repeated ids; an event
delivered twice with identical content is a duplicate, not a reject). Only the counts by rule,
the date ranges and the rejected rows (up to ``reject_cap``, first lines first) leave the
database; the report has the structure of ``ingest_report.json``.

The checks are temporary views of the session (``insightos_checked_<table>``), and the rows
that pass are ``insightos_clean_<table>`` (typed: text ids, UTC timestamps, float amounts), so
the engines can compute per-user tables on exactly the rows the file path would have written.

Row order: "line" is a row's position in the table's physical order (``ctid``) + 1, the order
``SELECT *`` returns and the file path numbers (first row = line 2). Timestamps in text columns
must be ISO 8601 (``YYYY-MM-DD``, optionally ``[T ]hh:mm[:ss[.fraction]]`` and ``Z`` or
``±hh[:mm]``); without a zone they are UTC. Text JSON is checked by PostgreSQL's JSON parser
(Python's also accepts ``NaN`` and ``Infinity`` literals; PostgreSQL rejects them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from insightos_utils import contract
from insightos_utils.config import DataConfig
from insightos_utils.contract import DEPENDENT_REASONS, TABLES, TableSpec
from insightos_utils.engines.check_sql import NUMBER_PATTERN as _NUMBER_PATTERN
from insightos_utils.engines.check_sql import TS_PATTERN as _TS_PATTERN
from insightos_utils.engines.check_sql import Column as _Column
from insightos_utils.engines.check_sql import P as _P
from insightos_utils.engines.check_sql import literal as _literal
from insightos_utils.engines.check_sql import outside as _outside
from insightos_utils.engines.check_sql import quote as _quote
from insightos_utils.engines.check_sql import reason_branches as _reason_branches
from insightos_utils.errors import InputError, InsightOSError
from insightos_utils.ingest.checks import CAUSES_SHOWN, Plausible
from insightos_utils.ingest.report import threshold_message
from insightos_utils.io_utils import utc_now

REJECT_CAP = 10_000  # rejected rows returned per table (the counts are always complete)
FIRST_ROWS_SHOWN = 5

FUNCTIONS = (
    rf"""
CREATE OR REPLACE FUNCTION pg_temp.insightos_timestamp(value text) RETURNS timestamp
LANGUAGE plpgsql IMMUTABLE SET TimeZone TO 'UTC' AS $$
BEGIN
  IF value IS NULL OR value !~ '{_TS_PATTERN}' THEN RETURN NULL; END IF;
  RETURN (replace(btrim(value), ',', '.')::timestamptz AT TIME ZONE 'UTC');
EXCEPTION WHEN others THEN RETURN NULL;
END $$""",
    rf"""
CREATE OR REPLACE FUNCTION pg_temp.insightos_number(value text) RETURNS double precision
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE parsed double precision;
BEGIN
  IF value IS NULL OR value !~ '{_NUMBER_PATTERN}' THEN RETURN NULL; END IF;
  parsed := btrim(value)::double precision;
  IF parsed IN ('Infinity'::float8, '-Infinity'::float8) THEN RETURN NULL; END IF;
  RETURN parsed;
EXCEPTION WHEN others THEN RETURN NULL;
END $$""",
    r"""
CREATE OR REPLACE FUNCTION pg_temp.insightos_json_object(value text) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  IF value IS NULL OR value ~ '^[ \t\n\r]*(null[ \t\n\r]*)?$' THEN RETURN true; END IF;
  RETURN json_typeof(value::json) = 'object';
EXCEPTION WHEN others THEN RETURN false;
END $$""",
)


@dataclass
class DatabaseValidation:
    """What the database checks found: the report (``ingest_report.json``'s structure) and,
    per table, its rejected rows (original values as text, ``reason``, ``line``; capped)."""

    report: dict[str, Any]
    rejected: dict[str, pd.DataFrame] = field(default_factory=dict)

    @property
    def drops_rows(self) -> bool:
        """True when some row is rejected or redelivered (the clean views then differ from the
        tables, and the engines must read the clean views)."""
        return any(
            entry.get("rejected_rows", 0) or entry.get("duplicates", 0)
            for entry in self.report["tables"].values()
            if entry.get("present")
        )


def checked_view_sql(
    spec: TableSpec,
    db_types: dict[str, str],
    all_columns: list[str],
    has_users: bool,
    plausible: Plausible,
) -> str:
    """``CREATE TEMP VIEW insightos_checked_<table>``: every row with its line, typed values
    (``__insightos_v_<column>``), ``__insightos_reason`` and ``__insightos_redelivered``."""
    columns = {
        c.name: _Column(c.name, c.kind, db_types[c.name])
        for c in spec.columns
        if c.name in db_types
    }
    typed = ", ".join(f"{sql.value} AS {_quote(_P + 'v_' + name)}" for name, sql in columns.items())
    joins = ""
    if "user_id" in columns and spec is not contract.USERS and has_users:
        user_text = columns["user_id"].text
        joins = (
            " LEFT JOIN (SELECT DISTINCT user_id FROM insightos_clean_users) AS kept"
            f" ON kept.user_id = {user_text}"
            f" LEFT JOIN (SELECT DISTINCT {_quote(_P + 'v_user_id')} AS user_id"
            f" FROM insightos_checked_users WHERE NOT {_quote(_P + 'empty_key')}) AS known"
            f" ON known.user_id = {user_text}"
        )
    branches = _reason_branches(spec, columns, has_users, plausible)
    base_reason = "CASE " + " ".join(branches) + " END"
    key = columns[spec.key] if spec.key else None
    everything = ", ".join(f"src.{_quote(name)}::text" for name in all_columns)
    key_text = key.text if key else "NULL"
    key_empty = key.empty if key else "true"
    redelivery = "true" if spec.name in contract.REDELIVERED_TABLES else "false"
    line = f"{_quote(_P + 'line')}"
    return f"""
CREATE OR REPLACE TEMP VIEW insightos_checked_{spec.name} AS
WITH numbered AS (
  SELECT t.*, (row_number() OVER (ORDER BY t.ctid) + 1)::bigint AS {line}
  FROM {_quote(spec.name)} AS t
), flagged AS (
  SELECT src.*, {typed},
    {base_reason} AS {_quote(_P + "base_reason")},
    {key_empty} AS {_quote(_P + "empty_key")},
    count(*) OVER (PARTITION BY {key_text}) AS {_quote(_P + "key_count")},
    row_number() OVER (PARTITION BY {key_text} ORDER BY src.{line}) AS {_quote(_P + "key_rank")},
    row_number() OVER (PARTITION BY {everything} ORDER BY src.{line}) AS {_quote(_P + "same_rank")}
  FROM numbered AS src{joins}
), marked AS (
  SELECT flagged.*,
    (NOT {_quote(_P + "empty_key")} AND {_quote(_P + "key_rank")} > 1) AS {_quote(_P + "later")}
  FROM flagged
)
SELECT marked.*,
  ({redelivery} AND {_quote(_P + "later")} AND {_quote(_P + "same_rank")} > 1)
    AS {_quote(_P + "redelivered")},
  CASE WHEN ({redelivery} AND {_quote(_P + "later")} AND {_quote(_P + "same_rank")} > 1) THEN NULL
       WHEN {_quote(_P + "base_reason")} IS NOT NULL THEN {_quote(_P + "base_reason")}
       WHEN {_quote(_P + "later")} THEN {_literal("duplicate_" + (spec.key or ""))}
  END AS {_quote(_P + "reason")}
FROM marked"""


def clean_view_sql(spec: TableSpec) -> str:
    """``CREATE TEMP VIEW insightos_clean_<table>``: the rows that pass, typed."""
    selected = ", ".join(
        f"{_quote(_P + 'v_' + c.name)} AS {_quote(c.name)}" for c in spec.columns if not c.optional
    )
    return (
        f"CREATE OR REPLACE TEMP VIEW insightos_clean_{spec.name} AS SELECT {selected} "
        f"FROM insightos_checked_{spec.name} "
        f"WHERE {_quote(_P + 'reason')} IS NULL AND NOT {_quote(_P + 'redelivered')}"
    )


def _columns_of(cursor: Any, table: str) -> dict[str, str]:
    cursor.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_name = %(table)s AND table_schema = current_schema() "
        "ORDER BY ordinal_position",
        {"table": table},
    )
    return {str(name): str(kind) for name, kind in cursor.fetchall()}


CLEAN_ROWS = "insightos_clean_rows_"  # materialised clean rows (temporary tables)


def create_views(
    dbapi_connection: Any,
    description: str,
    plausible: Plausible | None = None,
    materialize: bool = False,
) -> dict[str, dict[str, str]]:
    """Install the check functions and the checked/clean views on a psycopg connection to
    PostgreSQL (session-scoped); the column types of each present table. ``plausible``: the
    timestamp range ingest accepts (default: ``[data]``'s defaults at the current time).
    ``materialize``: also copy each clean view into a temporary table ``CLEAN_ROWS<table>``
    (analysed): the engines' aggregates over the views' window functions get planner estimates
    so poor (a few rows for thousands) that PostgreSQL picks nested loops, minutes for a
    few thousand events; over the tables it hashes, as on the raw tables."""
    plausible = plausible or plausible_range(DataConfig(), None)
    cursor = dbapi_connection.cursor()
    for statement in FUNCTIONS:
        cursor.execute(statement)
    present: dict[str, dict[str, str]] = {}
    for spec in TABLES:
        db_types = _columns_of(cursor, spec.name)
        if not db_types:
            if spec.required:
                raise InputError(
                    f"{description}: required table '{spec.name}' is missing "
                    f"(it needs columns {', '.join(spec.column_names)})"
                )
            continue
        missing = [name for name in spec.required_names if name not in db_types]
        if missing:
            raise InputError(
                f"table {spec.name} in {description}: required column(s) "
                f"{', '.join(repr(m) for m in missing)} missing (found {', '.join(db_types)}; "
                f"the '{spec.name}' table needs {', '.join(spec.required_names)})"
            )
        present[spec.name] = db_types
    for spec in TABLES:
        if spec.name in present:
            sql = checked_view_sql(
                spec, present[spec.name], list(present[spec.name]), "users" in present, plausible
            )
            cursor.execute(sql)
            cursor.execute(clean_view_sql(spec))
    if materialize:
        for spec in TABLES:
            if spec.name in present:
                table = CLEAN_ROWS + spec.name
                cursor.execute(f"DROP TABLE IF EXISTS pg_temp.{table}")
                cursor.execute(
                    f"CREATE TEMP TABLE {table} AS SELECT * FROM insightos_clean_{spec.name}"
                )
                cursor.execute(f"ANALYZE {table}")
    cursor.close()
    return present


def plausible_range(config: DataConfig, now: pd.Timestamp | None) -> Plausible:
    """Ingest's plausible timestamps: ``earliest_timestamp`` to the clock + tolerance."""
    clock = pd.Timestamp(now if now is not None else utc_now())
    if clock.tzinfo is not None:
        clock = clock.tz_convert("UTC").tz_localize(None)
    return Plausible(
        earliest=contract.parse_timestamp(config.earliest_timestamp),
        latest=clock + pd.Timedelta(hours=config.future_tolerance_hours),
    )


def report_plausible(report: dict[str, Any]) -> Plausible | None:
    """The plausible range an ingest report recorded (None when it has none): the clean views
    of a later session must keep exactly the rows that ingest kept."""
    found = report.get("plausible_timestamps") or {}
    if not found.get("from") or not found.get("to"):
        return None
    return Plausible(
        earliest=contract.parse_timestamp(found["from"]),
        latest=contract.parse_timestamp(found["to"]),
    )


def _rows(cursor: Any, sql: str) -> list[Any]:
    cursor.execute(sql)
    return list(cursor.fetchall())


def _iso(value: Any) -> str | None:
    return None if value is None else pd.Timestamp(value).isoformat()


def _implausible(
    cursor: Any, spec: TableSpec, db_types: dict[str, str], plausible: Plausible
) -> dict[str, dict[str, Any]]:
    """Per timestamp column: rows outside the plausible range, their earliest and latest."""
    found: dict[str, dict[str, Any]] = {}
    for column in spec.columns:
        if column.kind != "timestamp" or column.name not in db_types:
            continue
        value = _quote(_P + "v_" + column.name)
        n, low, high = _rows(
            cursor,
            f"SELECT count(*), min({value}), max({value}) FROM insightos_checked_{spec.name} "
            f"WHERE {_outside(value, plausible)}",
        )[0]
        if n:
            found[column.name] = {
                "rows": int(n),
                "min": _iso(low),
                "max": _iso(high),
                "plausible_from": plausible.earliest.isoformat(),
                "plausible_to": plausible.latest.isoformat(),
            }
    return found


def _cascade_cause(cursor: Any, spec: TableSpec, description: str, dependent: int) -> str:
    """Which users rows (line, reason) took dependent rows with them (ingest's wording)."""
    rows = _rows(
        cursor,
        f"""SELECT d.uid, d.n, u.line, u.reason FROM (
              SELECT {_quote(_P + "v_user_id")} AS uid, count(*) AS n, min({_quote(_P + "line")}) AS first
              FROM insightos_checked_{spec.name} WHERE {_quote(_P + "reason")} = 'user_rejected'
              GROUP BY 1) AS d
            LEFT JOIN (SELECT DISTINCT ON ({_quote(_P + "v_user_id")}) {_quote(_P + "v_user_id")} AS uid,
                         {_quote(_P + "line")} AS line, {_quote(_P + "reason")} AS reason
                       FROM insightos_checked_users WHERE {_quote(_P + "reason")} IS NOT NULL
                       ORDER BY {_quote(_P + "v_user_id")}, {_quote(_P + "line")}) AS u
              ON u.uid = d.uid
            ORDER BY d.n DESC, d.first""",
    )
    causes = [
        f"line {line} ({reason or ''}) took {n:,} row(s)"
        for _, n, line, reason in rows[:CAUSES_SHOWN]
    ]
    if len(rows) > CAUSES_SHOWN:
        causes.append(f"and {len(rows) - CAUSES_SHOWN:,} more users")
    return (
        f"{dependent:,} row(s) rejected only because their user was rejected in "
        f"table users in {description}: " + "; ".join(causes)
    )


def _table_report(
    cursor: Any,
    spec: TableSpec,
    db_types: dict[str, str],
    description: str,
    cap: int,
    plausible: Plausible,
) -> tuple[dict[str, Any], pd.DataFrame]:
    view = f"insightos_checked_{spec.name}"
    reason, redelivered = _quote(_P + "reason"), _quote(_P + "redelivered")
    line = _quote(_P + "line")
    rows_read, duplicates = _rows(
        cursor, f"SELECT count(*), count(*) FILTER (WHERE {redelivered}) FROM {view}"
    )[0]
    counts = _rows(
        cursor,
        f"SELECT {reason}, count(*) FROM {view} WHERE {reason} IS NOT NULL "
        f"GROUP BY {reason} ORDER BY count(*) DESC, min({line})",
    )
    rejected_rows = sum(int(n) for _, n in counts)
    dependent = sum(int(n) for name, n in counts if name in DEPENDENT_REASONS)
    stamp_column = contract.TIMESTAMP_COLUMNS.get(spec.name)
    date_range = None
    if stamp_column is not None:
        low, high = _rows(
            cursor,
            f"SELECT min({_quote(stamp_column)}), max({_quote(stamp_column)}) "
            f"FROM insightos_clean_{spec.name}",
        )[0]
        date_range = {"column": stamp_column, "min": _iso(low), "max": _iso(high)}
    originals = ", ".join(f"{_quote(name)}::text AS {_quote(name)}" for name in db_types)
    cursor.execute(
        f"SELECT {originals}, {reason} AS reason, {line} AS line FROM {view} "
        f"WHERE {reason} IS NOT NULL ORDER BY {line} LIMIT {int(cap)}"
    )
    names = [column.name for column in cursor.description]
    rejected = pd.DataFrame(cursor.fetchall(), columns=names).astype({"line": "int64"})
    extras = [name for name in db_types if name not in spec.column_names]
    output = [name for name in spec.column_names if name in db_types]
    if spec is contract.USERS:
        at = output.index("marketing") + 1
        output[at:at] = list(contract.MARKETING_FIELDS)
    output += [name if name not in output else f"raw_{name}" for name in extras]
    report: dict[str, Any] = {
        "present": True,
        "source": f"table {spec.name} in {description}",
        "format": "sql",
        "validated_in": "database",
        "rows_read": int(rows_read),
        "duplicates": int(duplicates),
        "rejected": {str(name): int(n) for name, n in counts},
        "rejected_rows": rejected_rows,
        "user_rejected_rows": dependent,
        "reject_share": (rejected_rows - dependent) / rows_read if rows_read else 0.0,
        "rows_written": int(rows_read) - rejected_rows - int(duplicates),
        "date_range": date_range,
        "columns": output,
        "extra_columns": extras,
    }
    implausible = _implausible(cursor, spec, db_types, plausible)
    if implausible:
        report["implausible_timestamps"] = implausible
    if dependent:
        report["user_rejected_cause"] = _cascade_cause(cursor, spec, description, dependent)
    if rejected_rows > len(rejected):
        report["rejected_rows_returned"] = len(rejected)
    return report, rejected


def validate_database(
    url: str,
    config: DataConfig | None = None,
    *,
    now: pd.Timestamp | None = None,
    reject_cap: int = REJECT_CAP,
    rejected_dir: str | Path = "",
) -> DatabaseValidation:
    """Run ingest's contract checks inside the database of ``url`` (PostgreSQL); counts, date
    ranges and up to ``reject_cap`` rejected rows per table come back, no other row.

    ``config``: the ``[data]`` section (reject share, plausible range); ``now``: the run's
    clock. Raises ``InputError`` for a missing required table or column, or an empty users
    table (as the file path does); a reject share above ``max_reject_share`` gives ``status:
    failed`` and ingest's message in ``error`` (the caller writes the rejects and raises);
    ``rejected_dir``: where the caller writes ``rejected_<table>.csv`` (named in the message).
    """
    import sqlalchemy as sa

    config = config or DataConfig()
    plausible = plausible_range(config, now)
    parsed = sa.engine.make_url(url)
    description = parsed.render_as_string(hide_password=True)
    if parsed.get_backend_name() != "postgresql":
        raise InputError(f"{description}: checks in the database need PostgreSQL")
    engine = sa.create_engine(parsed)
    tables: dict[str, Any] = {}
    rejected: dict[str, pd.DataFrame] = {}
    failures = []
    try:
        with engine.connect() as connection:
            dbapi = connection.connection.driver_connection
            assert dbapi is not None  # an open psycopg connection
            present = create_views(dbapi, description, plausible)
            cursor = dbapi.cursor()
            if not _rows(cursor, "SELECT count(*) FROM users")[0][0]:
                raise InputError(
                    f"table users in {description}: the users table has a header and no rows; "
                    "every event and transaction belongs to a user, so there is nothing to "
                    "ingest (export the users, or check the export's filter)"
                )
            for spec in TABLES:
                if spec.name not in present:
                    tables[spec.name] = {
                        "present": False,
                        "note": f"no {spec.name} table in the source",
                    }
                    continue
                report, rows = _table_report(
                    cursor, spec, present[spec.name], description, reject_cap, plausible
                )
                tables[spec.name], rejected[spec.name] = report, rows
                if report["reject_share"] > config.max_reject_share:
                    path = Path(rejected_dir) / f"rejected_{spec.name}.csv"
                    failures.append(
                        threshold_message(spec, report, rows, path, config.max_reject_share)
                    )
            cursor.close()
            connection.rollback()
    except sa.exc.SQLAlchemyError as error:
        raise InsightOSError(
            f"{description}: the checks failed in the database ({error})"
        ) from None
    finally:
        engine.dispose()
    report = {
        "status": "failed" if failures else "ok",
        "source": description,
        "ingested_at": pd.Timestamp(now if now is not None else utc_now()).isoformat(),
        "max_reject_share": config.max_reject_share,
        "plausible_timestamps": {
            "from": plausible.earliest.isoformat(),
            "to": plausible.latest.isoformat(),
        },
        "parquet_written": False,
        "line_numbering": "SQL: row position in the table's physical order, first row = 2",
        "error": "\n".join(failures) if failures else None,
        "tables": tables,
    }
    return DatabaseValidation(report=report, rejected=rejected)
