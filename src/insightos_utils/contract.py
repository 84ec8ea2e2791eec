"""The raw-data contract (shared/CONTRACT.md section 1) as data: tables, columns, kinds, rules.

``synth`` writes it, ``ingest`` validates it, ``collector`` stores it. Timestamps everywhere in
the package are timezone-naive UTC (``datetime64``, any resolution): an input timestamp without a
zone is UTC, one with a zone is converted to UTC and the zone dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

OPEN_STATUSES: frozenset[str] = frozenset({"lead", "trial"})
CLOSED_STATUSES: frozenset[str] = frozenset({"converted", "lost"})
STATUSES: frozenset[str] = OPEN_STATUSES | CLOSED_STATUSES
NO_CAMPAIGN = "(none)"


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # "text" | "timestamp" | "number" | "json"
    nullable: bool = False
    optional: bool = False  # the column may be absent from the header (typed when present)


@dataclass(frozen=True)
class TableSpec:
    name: str
    required: bool
    key: str | None
    columns: tuple[Column, ...]

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def required_names(self) -> list[str]:
        """The columns every source of this table must have."""
        return [c.name for c in self.columns if not c.optional]


USERS = TableSpec(
    "users",
    required=True,
    key="user_id",
    columns=(
        Column("user_id", "text"),
        Column("created_at", "timestamp"),
        Column("status", "text"),
        Column("converted_at", "timestamp", nullable=True),
        Column("marketing", "json", nullable=True),
        Column("closed_at", "timestamp", nullable=True, optional=True),  # when a lost lead closed
    ),
)
EVENTS = TableSpec(
    "events",
    required=True,
    key="event_id",
    columns=(
        Column("event_id", "text"),
        Column("user_id", "text"),
        Column("event_name", "text"),
        Column("occurred_at", "timestamp"),
        Column("properties", "json", nullable=True),
    ),
)
TRANSACTIONS = TableSpec(
    "transactions",
    required=False,
    key="transaction_id",
    columns=(
        Column("transaction_id", "text"),
        Column("user_id", "text"),
        Column("occurred_at", "timestamp"),
        Column("amount", "number"),
    ),
)
CAMPAIGN_SPEND = TableSpec(
    "campaign_spend",
    required=False,
    key="campaign",
    columns=(Column("campaign", "text"), Column("spend", "number")),
)

TABLES: tuple[TableSpec, ...] = (USERS, EVENTS, TRANSACTIONS, CAMPAIGN_SPEND)
HELD_EVENTS = "held_events"
"""Not a contract table: the collector's events (``EVENTS`` columns) for users it has not seen
yet; ingest reports how many there are and reads none of them."""


def parse_timestamp(value: str | pd.Timestamp) -> pd.Timestamp:
    """One ISO 8601 timestamp as timezone-naive UTC (a value without a zone is UTC)."""
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return stamp


# --- rules ingest applies -----------------------------------------------------------------------

REDELIVERED_TABLES: frozenset[str] = frozenset({"events"})  # same id + same content = kept once
MARKETING_FIELDS: tuple[str, ...] = ("campaign", "source", "medium")  # derived users columns
TIMESTAMP_COLUMNS: dict[str, str] = {
    "users": "created_at",
    "events": "occurred_at",
    "transactions": "occurred_at",
}  # the column each table's date range is measured on

REJECT_REASONS: dict[str, str] = {
    "unknown_status": "status is not one of lead, trial, converted, lost",
    "converted_without_converted_at": "status is converted but converted_at is empty",
    "converted_before_created": "converted_at is earlier than created_at",
    "orphan_user_id": "user_id does not exist in users",
    "user_rejected": "user_id exists in users, but that user's row was rejected",
    "non_positive_amount": "amount is zero or negative (it must be > 0)",
    "negative_spend": "spend is negative (it must be >= 0)",
    "closed_before_created": "closed_at is earlier than created_at",
    "implausible_timestamp": (
        "a timestamp lies before [data] earliest_timestamp or after the run's clock plus "
        "future_tolerance_hours"
    ),
}
DEPENDENT_REASONS: frozenset[str] = frozenset({"user_rejected"})
"""Reasons that are another table's fault: counted apart, not in the dependent's reject share."""
_KIND_PROBLEM = {
    "timestamp": "is not an ISO 8601 timestamp",
    "number": "is not a finite number",
    "json": "is not a JSON object",
    "text": "is not text",
}


def column_kind(spec: TableSpec, name: str) -> Column:
    """The contract's definition of column ``name`` in ``spec``."""
    return next(c for c in spec.columns if c.name == name)


def describe_reason(reason: str, spec: TableSpec | None = None) -> str:
    """A reject reason in words (``bad_<column>``, ``empty_<column>``, ``duplicate_<key>``...)."""
    if reason in REJECT_REASONS:
        return REJECT_REASONS[reason]
    problem, _, column = reason.partition("_")
    if problem == "empty":
        return f"{column} is empty"
    if problem == "duplicate":
        return f"{column} repeats an earlier row's {column} with different content"
    if problem == "bad":
        kind = column_kind(spec, column).kind if spec and column in spec.column_names else ""
        return f"{column} {_KIND_PROBLEM.get(kind, 'is not valid')}"
    return reason
