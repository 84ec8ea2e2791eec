"""Storage for the event collector: the raw contract's ``users`` and ``events`` tables in SQL.

One code path for both databases the contract names: an SQLite file (the embedded default, WAL
mode) and PostgreSQL by URL. Tables are built from ``contract.USERS`` / ``contract.EVENTS`` so
that ``insightos ingest --source URL`` reads exactly what the collector wrote. Timestamps are
stored in UTC (PostgreSQL ``timestamptz``; SQLite text without a zone, which the contract reads
as UTC). Every statement is parameterised; each request's writes are one transaction.

Events for a user the collector has never seen are held in ``held_events`` (same columns) instead
of ``events``, so that ingest never meets them as orphans; identifying the user releases them.
An ``event_id`` seen before is a redelivery when its content is the same, and a *conflict* when
it differs: the first content stays, the conflict is counted and logged.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from insightos_utils.contract import EVENTS, HELD_EVENTS, USERS, TableSpec
from insightos_utils.errors import InputError

SQLITE_BUSY_TIMEOUT_MS = 5_000
GROUP_ROWS = 5_000  # most events written by one group commit
KNOWN_USERS_CACHED = 1_000_000  # user_ids remembered as existing (the cache restarts beyond)
# FULL: every commit (and so every 202) is on disk before the answer, surviving a power loss
# as well as a killed collector.
SQLITE_SYNCHRONOUS = "FULL"
SQLITE_CHECKPOINT_SECONDS = 1.0
LOGGER = logging.getLogger("insightos.collector")
_COLUMN_TYPES: dict[str, Any] = {
    "text": sa.Text,
    "json": sa.Text,  # JSON object as text, exactly as the raw contract says
    "timestamp": lambda: sa.DateTime(timezone=True),
    "number": sa.Float,
}


def _table(spec: TableSpec, metadata: sa.MetaData, name: str | None = None) -> sa.Table:
    columns = [
        sa.Column(
            column.name,
            _COLUMN_TYPES[column.kind](),
            primary_key=column.name == spec.key,
            nullable=column.nullable,
        )
        for column in spec.columns
        if not column.optional  # optional contract columns the collector does not capture
    ]
    return sa.Table(name or spec.name, metadata, *columns)


METADATA = sa.MetaData()
USERS_TABLE = _table(USERS, METADATA)
EVENTS_TABLE = _table(EVENTS, METADATA)
HELD_EVENTS_TABLE = _table(EVENTS, METADATA, HELD_EVENTS)
sa.Index("ix_held_events_user_id", HELD_EVENTS_TABLE.c.user_id)
EVENT_CONTENT = ("user_id", "event_name", "occurred_at", "properties")


# PostgreSQL's fast path: a multi-row insert from parallel arrays (unnest) is one short statement
# whatever the batch size, where a VALUES list grows five parameters per row. Built from the
# contract's column names only; every value is a bound parameter.
_PG_ARRAY_TYPES = {"text": "text", "json": "text", "timestamp": "timestamptz"}


def _pg_unnest_insert(table: str) -> sa.TextClause:
    return sa.text(
        f"INSERT INTO {table} ({', '.join(EVENTS.column_names)}) "
        "SELECT * FROM unnest("
        + ", ".join(f"CAST(:{c.name} AS {_PG_ARRAY_TYPES[c.kind]}[])" for c in EVENTS.columns)
        + f") ON CONFLICT ({EVENTS.key}) DO NOTHING RETURNING {EVENTS.key}"
    )


_PG_UNNEST_INSERT = {EVENTS.name: _pg_unnest_insert(EVENTS.name)}
_PG_UNNEST_INSERT[HELD_EVENTS] = _pg_unnest_insert(HELD_EVENTS)


class UnknownUser(LookupError):
    """A status change for a user_id the collector has never seen."""


class ConversionBeforeSignup(ValueError):
    """A ``converted_at`` earlier than the user's ``created_at``."""


@dataclass(eq=False)
class _Ticket:
    """One caller's batch waiting for a group commit."""

    rows: list[Mapping[str, Any]]
    done: bool = False
    new_ids: set[str] = field(default_factory=set)  # ids this batch was the first to store
    held: int = 0
    known: dict[str, Mapping[str, Any]] = field(default_factory=dict)  # content seen before
    error: Exception | None = None


@dataclass(frozen=True)
class InsertResult:
    """What became of a request's events: new (``held`` of them for unknown users), seen before
    with the same content (duplicates), seen before with other content (conflicts)."""

    accepted: int
    duplicates: int
    conflicts: int
    held: int


@dataclass(frozen=True)
class IdentifyResult:
    created: bool
    changed: tuple[str, ...] = ()  # fields of a known user that were changed
    ignored: tuple[str, ...] = ()  # fields the key was not trusted to change
    released: int = 0  # held events of this user moved into events


def same_content(stored: Mapping[str, Any], sent: Mapping[str, Any]) -> bool:
    """True when a stored event and a sent one with the same event_id say the same thing."""
    for name in EVENT_CONTENT:
        old, new = stored[name], sent[name]
        if name == "occurred_at":
            if old is None or new is None or as_utc(_as_datetime(old)) != as_utc(new):
                return False
        elif name == "properties":
            if _json_value(old) != _json_value(new):
                return False
        elif old != new:
            return False
    return True


def _as_datetime(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def _json_value(text: Any) -> Any:
    try:
        return json.loads(text) if text not in (None, "") else {}
    except (TypeError, ValueError):
        return text


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
            cursor.execute(f"PRAGMA synchronous={SQLITE_SYNCHRONOUS}")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            # Checkpoints run in EventStore's background thread, not inside a request's commit
            # (an automatic checkpoint syncs the database file: 100-250 ms stalls measured here).
            cursor.execute("PRAGMA wal_autocheckpoint=0")
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
        self._commit_lock = threading.Lock()
        self._queue_lock = threading.Lock()
        self._queue: deque[_Ticket] = deque()
        self._known: set[str] = set()  # user_ids known to exist (written under the commit lock)
        self._stopping = threading.Event()
        self._checkpointer: threading.Thread | None = None
        if self.dialect == "sqlite":
            self._checkpointer = threading.Thread(
                target=self._checkpoint_loop, name="insightos-sqlite-checkpoint", daemon=True
            )
            self._checkpointer.start()
        insert = sqlite.insert if self.dialect == "sqlite" else postgresql.insert
        self._insert_events = {
            table.name: insert(table)
            .on_conflict_do_nothing(index_elements=[str(EVENTS.key)])
            .returning(table.c.event_id)
            for table in (EVENTS_TABLE, HELD_EVENTS_TABLE)
        }
        self._insert_user = (
            insert(USERS_TABLE)
            .on_conflict_do_nothing(index_elements=[str(USERS.key)])
            .returning(USERS_TABLE.c.user_id)
        )

    def create_schema(self) -> None:
        """Create the tables when missing (idempotent)."""
        METADATA.create_all(self.engine, checkfirst=True)

    def dispose(self) -> None:
        """Stop the checkpointer, fold the WAL into the database file, close connections."""
        if self._checkpointer is not None:
            self._stopping.set()
            self._checkpointer.join(10)
            self._checkpoint("TRUNCATE")
        self.engine.dispose()

    def _checkpoint_loop(self) -> None:
        while not self._stopping.wait(SQLITE_CHECKPOINT_SECONDS):
            self._checkpoint("PASSIVE")  # copies the WAL into the file without blocking writers

    def _checkpoint(self, mode: str) -> None:
        try:
            with self.engine.connect() as connection:
                connection.exec_driver_sql(f"PRAGMA wal_checkpoint({mode})")
        except sa.exc.SQLAlchemyError as error:  # retried on the next tick
            LOGGER.warning("SQLite checkpoint failed: %s", type(error).__name__)

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

    def insert_events(self, rows: Sequence[Mapping[str, Any]]) -> InsertResult:
        """Insert events in one transaction, skipping known event_ids; what became of them.

        Group commit: callers arriving while a commit is under way queue up, and the next one
        to get the commit lock writes every queued batch in a single transaction. One durable
        commit (one fsync) then serves many requests; each caller still returns only after the
        transaction holding its rows has committed, and a failed commit fails all of them.
        """
        unique: dict[str, Mapping[str, Any]] = {}
        for row in rows:
            unique.setdefault(row["event_id"], row)
        if not unique:
            return InsertResult(0, 0, 0, 0)
        ticket = _Ticket(list(unique.values()))
        with self._queue_lock:
            self._queue.append(ticket)
        with self._commit_lock:
            while not ticket.done:
                self._commit_group()
        if ticket.error is not None:
            raise ticket.error
        accepted = duplicates = conflicts = 0
        reference: dict[str, Mapping[str, Any]] = dict(ticket.known)
        for row in rows:
            event_id = row["event_id"]
            if event_id in ticket.new_ids and event_id not in reference:
                accepted += 1
                reference[event_id] = row
            elif same_content(reference.get(event_id, row), row):
                duplicates += 1
            else:
                conflicts += 1
        return InsertResult(accepted, duplicates, conflicts, ticket.held)

    def _commit_group(self) -> None:
        with self._queue_lock:
            group: list[_Ticket] = []
            size = 0
            while self._queue and (not group or size + len(self._queue[0].rows) <= GROUP_ROWS):
                group.append(self._queue.popleft())
                size += len(group[-1].rows)
        try:
            first_seen: dict[str, Mapping[str, Any]] = {}
            for ticket in group:
                for row in ticket.rows:
                    first_seen.setdefault(row["event_id"], row)
            with self._transaction() as connection:
                known = self._known_users(connection, {r["user_id"] for r in first_seen.values()})
                rows = list(first_seen.values())
                new_ids = self._insert_new(
                    connection, EVENTS.name, [r for r in rows if r["user_id"] in known]
                )
                held_ids = self._insert_new(
                    connection, HELD_EVENTS, [r for r in rows if r["user_id"] not in known]
                )
                new_ids |= held_ids
                seen_before = [r for r in rows if r["event_id"] not in new_ids]
                stored = self._stored_events(connection, [r["event_id"] for r in seen_before])
            for ticket in group:  # a new id counts for the first batch that carried it
                ids = [row["event_id"] for row in ticket.rows]
                ticket.new_ids = {event_id for event_id in ids if event_id in new_ids}
                ticket.held = sum(1 for event_id in ids if event_id in held_ids)
                ticket.known = {
                    event_id: stored[event_id] for event_id in ids if event_id in stored
                }
                new_ids.difference_update(ids)
                held_ids.difference_update(row["event_id"] for row in ticket.rows)
                for row in ticket.rows:  # a later batch in the group compares with this one
                    stored.setdefault(row["event_id"], row)
        except Exception as error:  # every caller of the group sees the failure
            for ticket in group:
                ticket.error = error
        finally:
            for ticket in group:
                ticket.done = True

    def _known_users(self, connection: Connection, user_ids: set[str]) -> set[str]:
        """The user_ids among ``user_ids`` that the users table holds.

        Users are never deleted, so a user once seen stays known: the ids found are remembered
        (up to ``KNOWN_USERS_CACHED``) and only unseen ids are looked up."""
        unseen = user_ids - self._known
        if unseen:
            column = USERS_TABLE.c.user_id
            found = connection.execute(sa.select(column).where(column.in_(sorted(unseen))))
            if len(self._known) > KNOWN_USERS_CACHED:
                self._known.clear()
            self._known.update(user_id for (user_id,) in found)
        return user_ids & self._known

    def _stored_events(
        self, connection: Connection, event_ids: list[str]
    ) -> dict[str, Mapping[str, Any]]:
        """The stored content of events already known (in events or held), by event_id."""
        stored: dict[str, Mapping[str, Any]] = {}
        if not event_ids:
            return stored
        for table in (EVENTS_TABLE, HELD_EVENTS_TABLE):
            query = sa.select(table).where(table.c.event_id.in_(event_ids))
            for row in connection.execute(query).mappings():
                stored.setdefault(row["event_id"], dict(row))
        return stored

    def _insert_new(
        self, connection: Connection, table: str, rows: list[Mapping[str, Any]]
    ) -> set[str]:
        """Insert rows whose event_id is unknown; the event_ids actually inserted."""
        if not rows:
            return set()
        if self.dialect == "postgresql":  # one statement with five array parameters
            arrays = {name: [row[name] for row in rows] for name in EVENTS.column_names}
            result = connection.execute(_PG_UNNEST_INSERT[table], arrays)
        else:
            result = connection.execute(self._insert_events[table], rows)
        return {event_id for (event_id,) in result}

    def identify(
        self, user_id: str, created_at: datetime, marketing: str, trusted: bool = False
    ) -> IdentifyResult:
        """Create the user as a ``lead``, or complete a known one.

        A browser key (``trusted`` False) may create a user and fill its marketing when that is
        empty; it never moves ``created_at`` nor replaces first-touch marketing (a public key
        must not rewrite attribution). The server key (``trusted``) may change both. Creating a
        user releases the events held for it.
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
                released = self._release_held(connection, user_id)
                return IdentifyResult(created=True, released=released)
            current = connection.execute(
                sa.select(USERS_TABLE.c.created_at, USERS_TABLE.c.marketing)
                .where(USERS_TABLE.c.user_id == user_id)
                .with_for_update()
            ).one()
            changes: dict[str, Any] = {}
            ignored: list[str] = []
            if as_utc(created_at) != as_utc(_as_datetime(current.created_at)):
                if trusted:
                    changes["created_at"] = created_at
                else:
                    ignored.append("created_at")
            empty_now = current.marketing in (None, "", "{}")
            if marketing not in ("", "{}") and _json_value(marketing) != _json_value(
                current.marketing
            ):
                if empty_now or trusted:
                    changes["marketing"] = marketing
                else:
                    ignored.append("marketing")
            if changes:
                connection.execute(
                    sa.update(USERS_TABLE).where(USERS_TABLE.c.user_id == user_id).values(changes)
                )
            # events held while a concurrent identify was not yet committed (PostgreSQL)
            released = self._release_held(connection, user_id)
        return IdentifyResult(
            created=False, changed=tuple(changes), ignored=tuple(ignored), released=released
        )

    def _release_held(self, connection: Connection, user_id: str) -> int:
        """Move the held events of a newly known user into events (known ids are kept)."""
        held: list[Mapping[str, Any]] = [
            dict(row)
            for row in connection.execute(
                sa.select(HELD_EVENTS_TABLE).where(HELD_EVENTS_TABLE.c.user_id == user_id)
            ).mappings()
        ]
        if not held:
            return 0
        released = self._insert_new(connection, EVENTS.name, held)
        connection.execute(
            sa.delete(HELD_EVENTS_TABLE).where(HELD_EVENTS_TABLE.c.user_id == user_id)
        )
        return len(released)

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
        """Rows in ``users``, ``events`` or ``held_events`` (for health figures and the load script)."""
        target = {"users": USERS_TABLE, "events": EVENTS_TABLE, HELD_EVENTS: HELD_EVENTS_TABLE}[
            table
        ]
        with self.engine.connect() as connection:
            return int(connection.execute(sa.select(sa.func.count()).select_from(target)).one()[0])
