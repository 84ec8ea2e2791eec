"""Every result of a run in a database, for any BI tool (Metabase, Superset, Power BI, psql).

``publish_run(run_dir, db_url, run_meta)`` writes, in ONE transaction:

- the *current* tables, one per result file of the run, each row carrying ``run_id`` and
  ``as_of``: ``insightos_scored_leads`` (scored_leads.csv), ``insightos_campaign_ltv``
  (campaign_ltv.csv), ``insightos_customer_ltv`` (customer_ltv.csv) and ``insightos_funnel``
  (funnel.csv). The published run's rows replace every previous row of a table whose file the
  run wrote (a header-only file, from a skipped stage, leaves the table empty); a table whose
  file the run did not write at all (a score-only run has no funnel.csv) keeps its rows.
- ``insightos_runs``: one row per run, accumulating (publishing a run again replaces its row):
  as-of, when it finished, champion, holdout AUC, open leads, LTV ratio, funnel completion,
  top friction point, the stage states as JSON text: the history a dashboard charts.

All or nothing: any failure (an unreadable file, a value of the wrong type, a lost connection)
rolls the whole transaction back and the database keeps the previous run's rows. SQLite (the
embedded default; transactional DDL switched on) and PostgreSQL (rows by ``COPY``, psycopg 3)
are supported.

Columns: each table is declared with the contract's columns plus the known extras
(``TABLES``). A column a file has and the table lacks (a future extra) is added to the table in
the same transaction (``ALTER TABLE ... ADD COLUMN``), typed from its values (whole numbers,
numbers, true/false, else text); a declared column missing from a file is left empty (NULL).
Nothing is ever dropped. Passwords in the URL never reach a message or the log.
"""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from insightos_utils.errors import InputError, InsightOSError
from insightos_utils.io_utils import utc_now

log = logging.getLogger(__name__)

TEXT, FLOAT, INTEGER, BOOLEAN, TIMESTAMP = "text", "float", "integer", "boolean", "timestamp"
RUNS_TABLE = "insightos_runs"
COPY_CHUNK_ROWS = 200_000  # rows formatted for COPY at a time (bounds memory)


@dataclass(frozen=True)
class CurrentTable:
    """A current table: the run file it holds and its declared columns (name → kind)."""

    name: str
    file: str
    columns: dict[str, str]


TABLES: tuple[CurrentTable, ...] = (
    CurrentTable(
        "insightos_scored_leads",
        "scored_leads.csv",
        {
            "user_id": TEXT,
            "score": FLOAT,
            "grade": TEXT,
            "rank": INTEGER,
            "top_reasons": TEXT,
            "model_version": TEXT,
            "scored_at": TIMESTAMP,
            "campaign": TEXT,
            "expected_value": FLOAT,
            "expected_value_low": FLOAT,
            "expected_value_high": FLOAT,
            "value_basis": TEXT,
            "trend": TEXT,
            "window_complete": BOOLEAN,
        },
    ),
    CurrentTable(
        "insightos_campaign_ltv",
        "campaign_ltv.csv",
        {
            "campaign": TEXT,
            "customers": INTEGER,
            "ltv_mean": FLOAT,
            "ltv_ci_low": FLOAT,
            "ltv_ci_high": FLOAT,
            "spend": FLOAT,
            "cac": FLOAT,
            "ltv_to_cac": FLOAT,
            "ltv_to_cac_ci_low": FLOAT,
            "ltv_to_cac_ci_high": FLOAT,
            "payback_months": FLOAT,
            "payback_ci_low": FLOAT,
            "payback_ci_high": FLOAT,
            "interval_method": TEXT,
        },
    ),
    CurrentTable(
        "insightos_customer_ltv",
        "customer_ltv.csv",
        {
            "user_id": TEXT,
            "frequency": FLOAT,
            "recency": FLOAT,
            "T": FLOAT,
            "monetary_value": FLOAT,
            "prob_alive": FLOAT,
            "expected_purchases": FLOAT,
            "ltv": FLOAT,
            "expected_average_value": FLOAT,
        },
    ),
    CurrentTable(
        "insightos_funnel",
        "funnel.csv",
        {
            "step": INTEGER,
            "event_name": TEXT,
            "users_reached": INTEGER,
            "share_of_signups": FLOAT,
            "share_ci_low": FLOAT,
            "share_ci_high": FLOAT,
            "conversion_if_reached": FLOAT,
            "median_hours_from_signup": FLOAT,
        },
    ),
)
RUN_KEYS = {"run_id": TEXT, "as_of": TIMESTAMP}  # first columns of every current table
RUNS_COLUMNS: dict[str, str] = {
    "run_id": TEXT,
    "kind": TEXT,
    "as_of": TIMESTAMP,
    "started_at": TIMESTAMP,
    "finished_at": TIMESTAMP,
    "published_at": TIMESTAMP,
    "champion": TEXT,
    "model_version": TEXT,
    "holdout_auc": FLOAT,
    "open_leads": INTEGER,
    "ltv_ratio": FLOAT,
    "ltv_ratio_ci_low": FLOAT,
    "ltv_ratio_ci_high": FLOAT,
    "funnel_completed_share": FLOAT,
    "top_friction_step": TEXT,
    "stages": TEXT,
    "published_rows": TEXT,
}


# --- reading a run's files -----------------------------------------------------------------------


def _inferred_kind(values: pd.Series) -> str:
    """The kind of a column the table does not declare, from its (text) values."""
    present = values.dropna()
    if present.empty:
        return TEXT
    lowered = present.str.lower()
    if lowered.isin(["true", "false"]).all():
        return BOOLEAN
    numbers = pd.to_numeric(present, errors="coerce")
    if numbers.notna().all():
        whole = np.isfinite(numbers) & (numbers == np.round(numbers))
        return INTEGER if whole.all() and not present.str.contains(r"[.eE]").any() else FLOAT
    return TEXT


def _typed(values: pd.Series, kind: str, where: str) -> pd.Series:
    """Text values as ``kind``; an unparseable value is an ``InputError`` naming the row."""
    if kind == TEXT:
        return values
    if kind == BOOLEAN:
        lowered = values.str.lower()
        bad = values.notna() & ~lowered.isin(["true", "false", "1", "0"])
        parsed = lowered.isin(["true", "1"]).astype("boolean").where(values.notna(), pd.NA)
    elif kind == TIMESTAMP:
        parsed = pd.to_datetime(values, errors="coerce", utc=True, format="ISO8601")
        bad = values.notna() & parsed.isna()
        parsed = parsed.dt.tz_localize(None)
    else:
        missing = values.isna() | values.str.lower().isin(["nan"])
        parsed = pd.to_numeric(values.where(~missing), errors="coerce")
        bad = ~missing & parsed.isna()
        if kind == INTEGER:
            bad |= parsed.notna() & ~(np.isfinite(parsed) & (parsed == np.round(parsed)))
            if not bad.any():
                parsed = parsed.astype("Int64")
    if bad.any():
        rows = [int(i) + 2 for i in np.flatnonzero(bad.to_numpy())[:5]]
        raise InputError(
            f"{where}: values that are not {kind} at line(s) {rows} (header = line 1), e.g. "
            f"{values[bad].iloc[0]!r}; nothing was published, the database keeps the previous "
            "run's rows"
        )
    return parsed


_READ_DTYPES = {TEXT: "str", FLOAT: "float64", INTEGER: "Int64", BOOLEAN: "boolean"}


def read_run_table(path: Path, table: CurrentTable) -> tuple[pd.DataFrame, dict[str, str]]:
    """A run file as typed columns, and the kind of every column (declared, or inferred for a
    column the table does not declare)."""
    options: dict[str, Any] = {"keep_default_na": False, "na_values": [""]}
    try:
        header = list(pd.read_csv(path, nrows=0).columns)
        declared = {c: table.columns[c] for c in header if c in table.columns}
        dtypes = {c: _READ_DTYPES.get(declared.get(c, TEXT), "str") for c in header}
        try:  # the C parser types the declared columns directly (the usual, fast case)
            raw = pd.read_csv(path, dtype=dtypes, **options)
            text = None
        except (ValueError, TypeError):  # some value is off: read text, find the bad rows
            raw = text = pd.read_csv(path, dtype=str, **options)
    except (OSError, ValueError) as error:
        raise InputError(
            f"{path}: cannot be read as CSV ({error}); nothing was published"
        ) from None
    kinds = {c: declared.get(c) or _inferred_kind(raw[c]) for c in header}
    typed = {}
    for column in header:
        if text is None and column in declared and kinds[column] != TIMESTAMP:
            typed[column] = raw[column]
        else:
            typed[column] = _typed(raw[column], kinds[column], f"{path}, column {column}")
    return pd.DataFrame(typed, index=raw.index), kinds


# --- the database side ---------------------------------------------------------------------------


def _sql_type(kind: str) -> Any:
    import sqlalchemy as sa

    return {
        TEXT: sa.Text(),
        FLOAT: sa.Float(precision=53),
        INTEGER: sa.BigInteger(),
        BOOLEAN: sa.Boolean(),
        TIMESTAMP: sa.DateTime(),
    }[kind]


def _metadata() -> Any:
    import sqlalchemy as sa

    metadata = sa.MetaData()
    for table in TABLES:
        columns = {**RUN_KEYS, **table.columns}
        sa.Table(
            table.name,
            metadata,
            *(sa.Column(name, _sql_type(kind)) for name, kind in columns.items()),
        )
    sa.Table(
        RUNS_TABLE,
        metadata,
        *(
            sa.Column(name, _sql_type(kind), primary_key=name == "run_id")
            for name, kind in RUNS_COLUMNS.items()
        ),
    )
    return metadata


def _engine(db_url: str) -> Any:
    """An engine; SQLite with real transactions around DDL too (SQLAlchemy's pysqlite recipe)."""
    import sqlalchemy as sa

    try:
        url = sa.engine.make_url(db_url)
    except sa.exc.ArgumentError:
        raise InputError(
            "--db: not a database URL SQLAlchemy understands (e.g. sqlite:///results.sqlite "
            "or postgresql+psycopg://user@host/db)"
        ) from None
    if url.get_backend_name() not in ("sqlite", "postgresql"):
        raise InputError(
            f"--db {url.render_as_string(hide_password=True)}: publishing supports SQLite and "
            f"PostgreSQL, not {url.get_backend_name()}"
        )
    engine = sa.create_engine(url)
    if engine.dialect.name == "sqlite":

        @sa.event.listens_for(engine, "connect")
        def _no_implicit_transactions(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None

        @sa.event.listens_for(engine, "begin")
        def _begin(connection: Any) -> None:
            connection.exec_driver_sql("BEGIN")

    return engine


def _add_missing_columns(connection: Any, name: str, kinds: Mapping[str, str]) -> list[str]:
    """Add the columns of ``kinds`` that table ``name`` lacks; returns the added names."""
    import sqlalchemy as sa

    existing = {column["name"] for column in sa.inspect(connection).get_columns(name)}
    quote = connection.dialect.identifier_preparer.quote
    added = []
    for column, kind in kinds.items():
        if column not in existing:
            sql_type = _sql_type(kind).compile(dialect=connection.dialect)
            connection.exec_driver_sql(
                f"ALTER TABLE {quote(name)} ADD COLUMN {quote(column)} {sql_type}"
            )
            added.append(column)
    return added


def _sqlite_values(frame: pd.DataFrame, kinds: Mapping[str, str]) -> list[tuple]:
    columns = []
    for name in frame.columns:
        values = frame[name]
        if kinds[name] == TIMESTAMP:
            text = values.dt.strftime("%Y-%m-%d %H:%M:%S.%f")
            columns.append(text.astype(object).where(values.notna(), None).to_numpy())
        else:
            columns.append(values.astype(object).where(values.notna(), None).to_numpy())
    return list(zip(*columns, strict=True)) if columns else []


def _insert_rows(connection: Any, name: str, frame: pd.DataFrame, kinds: Mapping[str, str]) -> None:
    """All rows of ``frame`` into table ``name``: COPY on PostgreSQL, executemany on SQLite."""
    if frame.empty:
        return
    quote = connection.dialect.identifier_preparer.quote
    names = ", ".join(quote(c) for c in frame.columns)
    if connection.dialect.name == "postgresql":
        # Arrow's CSV writer: nulls unquoted and empty (NULL to COPY), text always quoted,
        # floats in their shortest exact form, timestamps in ISO 8601
        import pyarrow as pa
        import pyarrow.csv as pacsv

        cursor = connection.connection.driver_connection.cursor()
        statement = f"COPY {quote(name)} ({names}) FROM STDIN WITH (FORMAT csv, NULL '')"
        options = pacsv.WriteOptions(include_header=False)
        with cursor.copy(statement) as copy:
            for start in range(0, len(frame), COPY_CHUNK_ROWS):
                chunk = frame.iloc[start : start + COPY_CHUNK_ROWS]
                buffer = io.BytesIO()
                pacsv.write_csv(pa.Table.from_pandas(chunk, preserve_index=False), buffer, options)
                copy.write(buffer.getbuffer())
        return
    marks = ", ".join("?" for _ in frame.columns)
    connection.exec_driver_sql(
        f"INSERT INTO {quote(name)} ({names}) VALUES ({marks})", _sqlite_values(frame, kinds)
    )


# --- the run record ------------------------------------------------------------------------------


def _read_json(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return document if isinstance(document, dict) else {}


def _stamp(value: Any) -> pd.Timestamp | None:
    if value is None or value == "":
        return None
    stamp = pd.Timestamp(value)
    if pd.isna(stamp):
        return None
    return stamp.tz_convert("UTC").tz_localize(None) if stamp.tzinfo else stamp


def run_record(run_dir: Path, run_meta: Mapping[str, Any], rows: Mapping[str, int]) -> dict:
    """The ``insightos_runs`` row: from ``run_meta`` (what run.json holds), completed from the
    run folder's run.json, stages.json and product_summary.json."""
    meta = {
        **_read_json(run_dir / "run.json"),
        **{k: v for k, v in run_meta.items() if v is not None},
    }
    stages = meta.get("stages") or _read_json(run_dir / "stages.json")
    product = _read_json(run_dir / "product_summary.json")
    funnel = product.get("funnel") or []
    friction = product.get("top_friction") or {}
    interval = meta.get("ltv_ratio_ci") or [None, None]
    return {
        "run_id": str(meta.get("run_id") or run_dir.name),
        "kind": meta.get("kind"),
        "as_of": _stamp(meta.get("as_of")),
        "started_at": _stamp(meta.get("started_at")),
        "finished_at": _stamp(meta.get("finished_at")) or _stamp(utc_now()),
        "published_at": _stamp(utc_now()),
        "champion": meta.get("champion"),
        "model_version": meta.get("model_version"),
        "holdout_auc": meta.get("holdout_roc_auc", meta.get("holdout_auc")),
        "open_leads": meta.get("open_leads"),
        "ltv_ratio": meta.get("ltv_ratio"),
        "ltv_ratio_ci_low": interval[0],
        "ltv_ratio_ci_high": interval[1],
        "funnel_completed_share": funnel[-1].get("share_of_signups") if len(funnel) > 1 else None,
        "top_friction_step": (
            f"{friction['previous_step']} → {friction['event_name']}" if friction else None
        ),
        "stages": json.dumps(stages, sort_keys=True),
        "published_rows": json.dumps(dict(rows), sort_keys=True),
    }


# --- publishing ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PublishReport:
    """What ``publish_run`` wrote: rows per table, the columns it added, where, how long."""

    run_id: str
    rows: dict[str, int]
    added_columns: dict[str, list[str]]
    database: str
    seconds: float


def _write_table(
    connection: Any,
    table: CurrentTable,
    frame: pd.DataFrame,
    kinds: Mapping[str, str],
    run_id: str,
    as_of: pd.Timestamp | None,
) -> list[str]:
    """Replace table ``table``'s rows by ``frame``'s (each with run_id and as_of)."""
    quote = connection.dialect.identifier_preparer.quote
    added = _add_missing_columns(connection, table.name, kinds)
    connection.exec_driver_sql(f"DELETE FROM {quote(table.name)}")
    rows = frame.copy()
    rows.insert(0, "as_of", pd.Series(as_of, index=rows.index, dtype="datetime64[us]"))
    rows.insert(0, "run_id", run_id)
    _insert_rows(connection, table.name, rows, {**RUN_KEYS, **kinds})
    return added


def publish_run(
    run_dir: str | Path, db_url: str, run_meta: Mapping[str, Any] | None = None
) -> PublishReport:
    """Write the run's result tables and its ``insightos_runs`` row in one transaction (module
    docstring). Call it only after the run succeeded. Raises ``InputError`` for a bad file
    and ``InsightOSError`` when the database refuses; the database is then as it was."""
    import sqlalchemy as sa

    started = time.perf_counter()
    run_dir = Path(run_dir)
    meta = dict(run_meta or {})
    run_id = str(
        meta.get("run_id") or _read_json(run_dir / "run.json").get("run_id") or run_dir.name
    )
    files = {t.name: run_dir / t.file for t in TABLES if (run_dir / t.file).exists()}
    frames = {t.name: read_run_table(files[t.name], t) for t in TABLES if t.name in files}
    rows = {name: len(frame) for name, (frame, _) in frames.items()}
    record = run_record(run_dir, {**meta, "run_id": run_id}, rows)
    engine = _engine(db_url)
    where = engine.url.render_as_string(hide_password=True)
    added: dict[str, list[str]] = {}
    try:
        with engine.begin() as connection:
            _metadata().create_all(connection, checkfirst=True)
            for table in TABLES:
                if table.name in frames:
                    frame, kinds = frames[table.name]
                    added[table.name] = _write_table(
                        connection, table, frame, kinds, run_id, record["as_of"]
                    )
            runs = _metadata().tables[RUNS_TABLE]
            connection.execute(sa.delete(runs).where(runs.c.run_id == run_id))
            connection.execute(sa.insert(runs), [record])
    except sa.exc.SQLAlchemyError as error:
        reason = getattr(error, "orig", None) or error
        raise InsightOSError(
            f"--db {where}: could not publish run {run_id} ({type(error).__name__}: {reason}); "
            "nothing was written, the database keeps the previous run's rows"
        ) from None
    finally:
        engine.dispose()
    seconds = round(time.perf_counter() - started, 3)
    log.info("published run %s to %s: %s rows in %.1f s", run_id, where, rows, seconds)
    return PublishReport(run_id, rows, {k: v for k, v in added.items() if v}, where, seconds)
