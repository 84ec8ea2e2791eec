"""Open the company's tables on an engine as Ibis table expressions, typed the same way.

``open_source(location, engine)`` gives an ``EngineTables``: the users, events and (when
present) transactions tables of a folder (``<table>.parquet`` or ``<table>.csv``, as ingest
writes them or as a lake holds them) or of a database (SQL URL), each reduced to the contract
columns the per-user computations need and typed alike on every engine: ids and names as text,
timestamps as timezone-naive UTC, amounts as float64. Nothing is read until an expression is
executed; the engine reads only the columns it needs.

What runs where: ``duckdb`` — an embedded DuckDB over the files (multi-threaded, spilling to a
temporary folder beyond its memory limit); ``spark`` — a local-mode SparkSession (or the one
given) over the files; ``source`` — the database itself (PostgreSQL tested), whose session time
zone is set to UTC so that ``timestamptz`` columns come out in UTC.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir

from insightos_utils.engines.choice import EngineSettings, choose_engine, is_lake_uri
from insightos_utils.errors import InputError, InsightOSError

USERS_COLUMNS = ("user_id", "created_at", "status", "converted_at")
EVENTS_COLUMNS = ("user_id", "event_name", "occurred_at")
TRANSACTIONS_COLUMNS = ("user_id", "occurred_at", "amount")
_TIMESTAMPS = frozenset({"created_at", "converted_at", "occurred_at"})
_NUMBERS = frozenset({"amount"})


@dataclass
class EngineTables:
    """The tables of one source, opened on one engine (a connection held until ``close``)."""

    engine: str
    backend: Any  # an ibis backend (duckdb, postgres or pyspark)
    users: ir.Table
    events: ir.Table
    transactions: ir.Table | None
    description: str
    _closers: list[Callable[[], None]] = field(default_factory=list, repr=False)
    cache: dict[Any, Any] = field(default_factory=dict, repr=False)  # results reused by calls

    def execute(self, expression: ir.Expr) -> Any:
        """Run ``expression`` on this engine; a pandas DataFrame (or scalar) comes back.

        Tables travel as Arrow (ibis' own pandas conversion goes through Python lists for
        columns with nulls: seconds per million rows)."""
        if isinstance(expression, ir.Table):
            return self.backend.to_pyarrow(expression).to_pandas()
        return self.backend.execute(expression)

    def release(self, cached: ir.Table) -> None:
        """Drop a table ``cached`` by ``Table.cache()`` from the engine now.

        ibis 12's ``release`` renders ``DROP TABLE IF EXISTS`` without the table's name under
        sqlglot 30 (a syntax error on DuckDB and PostgreSQL): the table is then dropped here."""
        name = getattr(cached.op(), "name", None)
        try:
            cached.release()  # an ibis CachedTable
        except Exception:
            if self.engine not in ("duckdb", "source") or not isinstance(name, str):
                return
            quoted = '"' + name.replace('"', '""') + '"'
            with contextlib.suppress(Exception):
                cursor = self.backend.raw_sql(f"DROP TABLE IF EXISTS {quoted}")
                if self.engine == "source":
                    cursor.close()

    def close(self) -> None:
        """Release the connection (and a Spark session this module started)."""
        for cached in self.cache.values():
            self.release(cached)
        self.cache.clear()
        while self._closers:
            with contextlib.suppress(Exception):
                self._closers.pop()()

    def __enter__(self) -> EngineTables:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def typed(table: ir.Table, columns: tuple[str, ...], label: str) -> ir.Table:
    """``table`` reduced to ``columns`` with the package's types: text ids and names,
    timezone-naive UTC timestamps (a zone-aware column is converted, text is parsed), float64
    amounts. A missing column is an ``InputError`` naming the table."""
    missing = [name for name in columns if name not in table.columns]
    if missing:
        raise InputError(
            f"{label}: missing column(s) {', '.join(missing)} (needs {', '.join(columns)}); "
            "run `insightos ingest` first or check the table"
        )
    selected = {}
    for name in columns:
        column = table[name]
        kind = column.type()
        if name in _TIMESTAMPS:
            if kind.is_string():
                column = column.cast(dt.Timestamp(timezone="UTC"))
                kind = column.type()
            if kind.is_timestamp() and kind.timezone is not None or kind.is_date():
                column = column.cast(dt.Timestamp())
        elif name in _NUMBERS:
            column = column.cast(dt.float64)
        elif not kind.is_string():
            column = column.cast(dt.string)
        selected[name] = column
    return table.select(**selected)


def _table_file(folder: Path, name: str, required: bool) -> Path | None:
    found = [p for p in (folder / f"{name}.parquet", folder / f"{name}.csv") if p.exists()]
    if len(found) > 1:
        raise InputError(f"{found[0]} and {found[1]} both exist: keep exactly one file per table")
    if not found and required:
        raise InputError(f"{folder / (name + '.parquet')}: required table '{name}' is missing")
    return found[0] if found else None


def _open_duckdb(folder: Path, settings: EngineSettings) -> tuple[Any, Callable[[Path | str], Any]]:
    config: dict[str, Any] = {
        "temp_directory": settings.spill_directory(),
        "preserve_insertion_order": False,  # lets aggregations stream and spill
    }
    if settings.memory_limit:
        config["memory_limit"] = settings.memory_limit
    if settings.threads:
        config["threads"] = int(settings.threads)
    backend = ibis.duckdb.connect(**config)
    from insightos_utils.engines.folder_checks import quiet_progress

    quiet_progress(backend.raw_sql)  # raises inside a Jupyter kernel: the notebooks

    def read(path: Path | str) -> Any:
        path = Path(path)
        if path.suffix == ".parquet":
            return backend.read_parquet(path)
        return backend.read_csv(path, all_varchar=True)

    return backend, read


def spark_session(settings: EngineSettings) -> Any:
    """A local-mode SparkSession in UTC (``local[threads]``, driver memory = memory_limit)."""
    from pyspark.sql import SparkSession

    builder = (
        SparkSession.builder.master(f"local[{settings.threads or '*'}]")
        .appName("insightos")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", str(max(2, 2 * (settings.threads or 2))))
        .config("spark.local.dir", settings.spill_directory())
    )
    if settings.memory_limit:
        builder = builder.config("spark.driver.memory", settings.memory_limit.replace("B", ""))
    return builder.getOrCreate()


def _open_spark(
    settings: EngineSettings, session: Any | None
) -> tuple[Any, Callable[[Path | str], Any], Callable[[], None] | None]:
    spark = session or spark_session(settings)
    backend = ibis.pyspark.connect(spark)

    def read(path: Path | str) -> Any:
        name = str(path).rstrip("/").rsplit("/", 1)[-1]
        stem, _, suffix = name.rpartition(".")
        view = f"insightos_{stem}"
        if suffix == "parquet":
            frame = spark.read.parquet(str(path))
        else:
            frame = spark.read.option("header", True).option("multiLine", True).csv(str(path))
        frame.createOrReplaceTempView(view)
        return backend.table(view)

    return backend, read, (None if session is not None else spark.stop)


def connect_database(url: str) -> Any:
    """An Ibis backend on the database of a SQLAlchemy URL, its session time zone UTC.

    PostgreSQL (``postgresql://`` or ``postgresql+psycopg://``) is the tested case; query
    parameters (``options=-csearch_path=...``) are passed to the driver."""
    import sqlalchemy as sa

    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        raise InputError(f"--source {url!r} is not a SQLAlchemy URL") from None
    backend_name = parsed.get_backend_name()
    if backend_name != "postgresql":
        raise InputError(
            f"{parsed.render_as_string(hide_password=True)}: engine 'source' computes inside "
            f"PostgreSQL; {backend_name} is not supported for pushdown — use engine 'memory'"
        )
    query = {key: value for key, value in parsed.query.items() if isinstance(value, str)}
    options = " ".join(filter(None, [query.pop("options", ""), "-ctimezone=UTC"]))
    try:
        return ibis.postgres.connect(
            host=parsed.host or None,
            port=parsed.port or 5432,
            user=parsed.username,
            password=parsed.password,
            database=parsed.database,
            options=options,
            **query,
        )
    except Exception as error:  # the driver's own error types; name the database
        raise InsightOSError(
            f"{parsed.render_as_string(hide_password=True)}: cannot connect ({error})"
        ) from None


def open_source(
    location: str | Path,
    engine: str = "auto",
    settings: EngineSettings | None = None,
    spark: Any | None = None,
    validation: Any | None = None,
) -> EngineTables:
    """The users, events and transactions of ``location`` (folder or SQL URL) on ``engine``.

    ``engine`` follows ``choose_engine``; ``"memory"`` is refused here (the in-memory path is
    the pandas code in the feature and RFM modules). ``spark``: an existing SparkSession to use
    (e.g. one on a cluster); by default a local one is started and stopped on ``close``.
    ``validation``: the ``validation.DatabaseValidation`` of this database; when it rejected
    or deduplicated rows, the engine reads the clean views (the rows ingest would keep).
    """
    settings = settings or EngineSettings()
    chosen = choose_engine(engine, location)
    if chosen == "memory":
        raise InputError(
            f"engine 'memory' was chosen for {location}: compute with the in-memory (pandas) "
            "path, or ask for engine 'duckdb' / 'source' / 'spark'"
        )
    closers: list[Callable[[], None]] = []
    if chosen == "source":
        backend = connect_database(str(location))
        closers.append(backend.disconnect)
        description = str(location).split("@")[-1]
        names = {"users": "users", "events": "events", "transactions": "transactions"}
        if validation is not None and validation.drops_rows:
            from insightos_utils.engines.validation import (
                CLEAN_ROWS,
                create_views,
                report_plausible,
            )

            plausible = report_plausible(validation.report)
            create_views(backend.con, description, plausible, materialize=True)
            names = {name: f"{CLEAN_ROWS}{name}" for name in names}
        users = backend.table(names["users"])
        events = backend.table(names["events"])
        has_transactions = validation is None and "transactions" in backend.list_tables()
        if validation is not None:
            has_transactions = validation.report["tables"]["transactions"]["present"]
        transactions = backend.table(names["transactions"]) if has_transactions else None
    elif is_lake_uri(location):  # a lake on a cluster: Spark reads <table>.parquet there
        backend, read, stop = _open_spark(settings, spark)
        if stop is not None:
            closers.append(stop)
        description = str(location).rstrip("/")
        users = read(f"{description}/users.parquet")
        events = read(f"{description}/events.parquet")
        try:
            transactions = read(f"{description}/transactions.parquet")
        except Exception:  # Spark's AnalysisException: the optional table is not there
            transactions = None
    else:
        folder = Path(location)
        if not folder.is_dir():
            raise InputError(f"{folder}: folder not found (expected users/events Parquet or CSV)")
        if chosen == "duckdb":
            backend, read = _open_duckdb(folder, settings)
            closers.append(backend.disconnect)
        else:
            backend, read, stop = _open_spark(settings, spark)
            if stop is not None:
                closers.append(stop)
        paths = {
            name: _table_file(folder, name, name != "transactions")
            for name in ("users", "events", "transactions")
        }
        users_path, events_path = paths["users"], paths["events"]
        assert users_path is not None and events_path is not None  # required: located or raised
        users, events = read(users_path), read(events_path)
        transactions = read(paths["transactions"]) if paths["transactions"] else None
        description = str(folder)
    return EngineTables(
        engine=chosen,
        backend=backend,
        users=typed(users, USERS_COLUMNS, f"{description}: users"),
        events=typed(events, EVENTS_COLUMNS, f"{description}: events"),
        transactions=(
            None
            if transactions is None
            else typed(transactions, TRANSACTIONS_COLUMNS, f"{description}: transactions")
        ),
        description=description,
        _closers=closers,
    )


@contextlib.contextmanager
def opened(
    source: str | Path | EngineTables, engine: str = "auto", settings: EngineSettings | None = None
) -> Iterator[EngineTables]:
    """``source`` itself when already open (left open), else ``open_source`` closed after use."""
    if isinstance(source, EngineTables):
        yield source
        return
    tables = open_source(source, engine, settings)
    try:
        yield tables
    finally:
        tables.close()
