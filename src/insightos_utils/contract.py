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


@dataclass(frozen=True)
class TableSpec:
    name: str
    required: bool
    key: str | None
    columns: tuple[Column, ...]

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]


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


def parse_timestamp(value: str | pd.Timestamp) -> pd.Timestamp:
    """One ISO 8601 timestamp as timezone-naive UTC (a value without a zone is UTC)."""
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return stamp
