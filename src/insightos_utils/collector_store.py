"""Storage for the event collector: the raw contract's ``users`` and ``events`` tables in SQL.

One code path for both databases the contract names: an SQLite file (the embedded default, WAL
mode) and PostgreSQL by URL. Tables are built from ``contract.USERS`` / ``contract.EVENTS`` so
that ``insightos ingest --source URL`` reads exactly what the collector wrote. Timestamps are
stored in UTC (PostgreSQL ``timestamptz``; SQLite text without a zone, which the contract reads
as UTC). Every statement is parameterised; each request's writes are one transaction.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from insightos_utils.contract import EVENTS, USERS, TableSpec
from insightos_utils.errors import InputError

SQLITE_BUSY_TIMEOUT_MS = 5_000
_COLUMN_TYPES: dict[str, Any] = {
    "text": sa.Text,
    "json": sa.Text,  # JSON object as text, exactly as the raw contract says
    "timestamp": lambda: sa.DateTime(timezone=True),
    "number": sa.Float,
}


def _table(spec: TableSpec, metadata: sa.MetaData) -> sa.Table:
    columns = [
        sa.Column(
            column.name,
            _COLUMN_TYPES[column.kind](),
            primary_key=column.name == spec.key,
            nullable=column.nullable,
        )
        for column in spec.columns
    ]
    return sa.Table(spec.name, metadata, *columns)


METADATA = sa.MetaData()
USERS_TABLE = _table(USERS, METADATA)
EVENTS_TABLE = _table(EVENTS, METADATA)


class UnknownUser(LookupError):
    """A status change for a user_id the collector has never seen."""


class ConversionBeforeSignup(ValueError):
    """A ``converted_at`` earlier than the user's ``created_at``."""


@dataclass(frozen=True)
class IdentifyResult:
    created: bool


def as_utc(value: datetime) -> datetime:
    """A timestamp as an aware UTC datetime (a value without a zone is UTC, as in the contract)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def make_engine(db_url: str) -> Engine:
    """An engine for an SQLite file (WAL, busy timeout, durable commits) or PostgreSQL."""
    url = sa.engine.make_url(db_url)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        )

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            # FULL: a commit (and so a 202) survives a power loss, not only a killed process.
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.close()

        return engine
    if url.get_backend_name() == "postgresql":
        return sa.create_engine(
            url,
            pool_size=8,
            max_overflow=8,
            pool_pre_ping=True,
            connect_args={"connect_timeout": 5},
        )
    raise InputError(
        f"--db {url.render_as_string(hide_password=True)}: unsupported database "
        f"'{url.get_backend_name()}'; use sqlite:///path/file.sqlite or postgresql+psycopg://..."
    )


class EventStore:
    """The collector's tables in one database; safe to call from many threads."""

    def __init__(self, db_url: str) -> None:
        self.engine = make_engine(db_url)
        self.dialect = self.engine.dialect.name
        # SQLite has one writer at a time: queue writers here instead of in SQLite's busy
        # handler, whose sleeps (up to 100 ms each) would dominate the latency under load.
        self._write_lock = threading.Lock() if self.dialect == "sqlite" else None
        insert = sqlite.insert if self.dialect == "sqlite" else postgresql.insert
        self._insert_events = (
            insert(EVENTS_TABLE)
            .on_conflict_do_nothing(index_elements=[EVENTS.key])
            .returning(EVENTS_TABLE.c.event_id)
        )
        self._insert_user = (
            insert(USERS_TABLE)
            .on_conflict_do_nothing(index_elements=[USERS.key])
            .returning(USERS_TABLE.c.user_id)
        )

    def create_schema(self) -> None:
        """Create the tables when missing (idempotent)."""
        METADATA.create_all(self.engine, checkfirst=True)

    def dispose(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        if self._write_lock is None:
            with self.engine.begin() as connection:
                yield connection
            return
        with self._write_lock, self.engine.begin() as connection:
            yield connection

    def ping(self) -> bool:
        """True when the database answers a trivial query."""
        try:
            with self.engine.connect() as connection:
                connection.execute(sa.text("SELECT 1"))
        except sa.exc.SQLAlchemyError:
            return False
        return True

    def insert_events(self, rows: Sequence[Mapping[str, Any]]) -> int:
        """Insert events in one transaction, skipping known event_ids; returns how many were new."""
        unique: dict[str, Mapping[str, Any]] = {}
        for row in rows:
            unique.setdefault(row["event_id"], row)
        if not unique:
            return 0
        with self._transaction() as connection:
            inserted = connection.execute(self._insert_events, list(unique.values())).fetchall()
        return len(inserted)

    def identify(self, user_id: str, created_at: datetime, marketing: str) -> IdentifyResult:
        """Create the user as a ``lead``, or update a known one.

        A known user keeps the earliest ``created_at`` seen and its first non-empty marketing
        (first-touch attribution), so replays and later page loads never move either.
        """
        with self._transaction() as connection:
            row = {
                "user_id": user_id,
                "created_at": created_at,
                "status": "lead",
                "converted_at": None,
                "marketing": marketing,
            }
            if connection.execute(self._insert_user, [row]).fetchall():
                return IdentifyResult(created=True)
            current = connection.execute(
                sa.select(USERS_TABLE.c.created_at, USERS_TABLE.c.marketing)
                .where(USERS_TABLE.c.user_id == user_id)
                .with_for_update()
            ).one()
            changes: dict[str, Any] = {}
            if as_utc(created_at) < as_utc(current.created_at):
                changes["created_at"] = created_at
            if current.marketing in (None, "", "{}") and marketing not in ("", "{}"):
                changes["marketing"] = marketing
            if changes:
                connection.execute(
                    sa.update(USERS_TABLE).where(USERS_TABLE.c.user_id == user_id).values(changes)
                )
        return IdentifyResult(created=False)

    def set_status(self, user_id: str, status: str, converted_at: datetime | None) -> None:
        """Record a status change from the company's back end."""
        with self._transaction() as connection:
            current = connection.execute(
                sa.select(USERS_TABLE.c.created_at)
                .where(USERS_TABLE.c.user_id == user_id)
                .with_for_update()
            ).one_or_none()
            if current is None:
                raise UnknownUser(user_id)
            if converted_at is not None and as_utc(converted_at) < as_utc(current.created_at):
                raise ConversionBeforeSignup(user_id)
            connection.execute(
                sa.update(USERS_TABLE)
                .where(USERS_TABLE.c.user_id == user_id)
                .values(status=status, converted_at=converted_at)
            )

    def count_rows(self, table: str) -> int:
        """Rows in ``users`` or ``events`` (for health figures and the load script)."""
        target = {"users": USERS_TABLE, "events": EVENTS_TABLE}[table]
        with self.engine.connect() as connection:
            return int(connection.execute(sa.select(sa.func.count()).select_from(target)).one()[0])
