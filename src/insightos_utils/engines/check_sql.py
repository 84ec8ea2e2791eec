"""The SQL of ingest's row rules, shared by the engines that run them where the data lives.

One column's SQL (``Column``: its text, typed value, emptiness, JSON validity) and the ordered
``WHEN condition THEN 'reason'`` branches (``reason_branches``: the file path's order of
precedence, first reason wins) are written once; PostgreSQL (``validation``) and DuckDB
(``folder_checks``) differ only in how a column is typed and tested (``Column`` subclasses).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from insightos_utils import contract
from insightos_utils.contract import TableSpec
from insightos_utils.ingest.checks import Plausible

P = "__insightos_"  # prefix of the columns the checks add (never a user's column)
TS_PATTERN = (
    r"^\s*\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}([.,]\d+)?)?)?\s*(Z|z|[+-]\d{2}(:?\d{2})?)?\s*$"
)
NUMBER_PATTERN = r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$"
BLANK_PATTERN = r"^\s*$"
TEXT_TYPES = ("text", "character varying", "character", "name", "citext")


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@dataclass(frozen=True)
class Column:
    """One contract column's SQL: its text, typed value, emptiness and validity."""

    name: str
    kind: str  # contract kind
    db_type: str  # information_schema data_type

    @property
    def raw(self) -> str:
        return f"src.{quote(self.name)}"

    @property
    def is_text(self) -> bool:
        return self.db_type in TEXT_TYPES

    @property
    def text(self) -> str:
        return self.raw if self.is_text else f"{self.raw}::text"

    @property
    def empty(self) -> str:
        if self.is_text or self.db_type in ("json", "jsonb"):
            return f"({self.raw} IS NULL OR {self.text} ~ '{BLANK_PATTERN}')"
        return f"({self.raw} IS NULL)"

    @property
    def value(self) -> str:
        """The typed value (NULL where empty or unparseable)."""
        if self.kind == "timestamp":
            if self.db_type == "timestamp with time zone":
                return f"({self.raw} AT TIME ZONE 'UTC')"
            if self.db_type in ("timestamp without time zone", "date"):
                return f"{self.raw}::timestamp"
            return f"pg_temp.insightos_timestamp({self.text})"
        if self.kind == "number":
            if self.db_type in (
                "double precision",
                "real",
                "numeric",
                "integer",
                "bigint",
                "smallint",
            ):
                return (
                    f"(CASE WHEN {self.raw}::float8 IN ('NaN'::float8, 'Infinity'::float8, "
                    f"'-Infinity'::float8) THEN NULL ELSE {self.raw}::float8 END)"
                )
            return f"pg_temp.insightos_number({self.text})"
        return self.text

    @property
    def json_ok(self) -> str:
        if self.db_type in ("json", "jsonb"):
            return f"({self.raw} IS NULL OR jsonb_typeof({self.raw}::jsonb) IN ('object', 'null'))"
        return f"pg_temp.insightos_json_object({self.text})"


def reason_branches(
    spec: TableSpec, columns: Mapping[str, Column], has_users: bool, plausible: Plausible
) -> list[str]:
    """``WHEN condition THEN 'reason'`` in ingest's order of precedence (first reason wins)."""
    branches = []
    for column in spec.columns:
        if column.name not in columns:  # an optional column the table does not have
            continue
        sql = columns[column.name]
        if column.kind == "json":
            branches.append(f"WHEN NOT {sql.json_ok} THEN 'bad_{column.name}'")
            continue
        if not column.nullable:
            branches.append(f"WHEN {sql.empty} THEN 'empty_{column.name}'")
        if column.kind in ("timestamp", "number"):
            branches.append(
                f"WHEN NOT {sql.empty} AND {sql.value} IS NULL THEN 'bad_{column.name}'"
            )
    for sql in columns.values():
        if sql.kind == "timestamp":
            branches.append(f"WHEN {outside(sql.value, plausible)} THEN 'implausible_timestamp'")
    if spec is contract.USERS:
        statuses = ", ".join(literal(s) for s in sorted(contract.STATUSES))
        status, converted, created = (columns[n] for n in ("status", "converted_at", "created_at"))
        branches += [
            f"WHEN {status.text} IS NOT NULL AND {status.text} NOT IN ({statuses}) THEN 'unknown_status'",
            f"WHEN {status.text} = 'converted' AND {converted.value} IS NULL "
            "THEN 'converted_without_converted_at'",
            f"WHEN {converted.value} < {created.value} THEN 'converted_before_created'",
        ]
        if "closed_at" in columns:
            closed = columns["closed_at"].value
            branches.append(f"WHEN {closed} < {created.value} THEN 'closed_before_created'")
    if "user_id" in columns and spec is not contract.USERS and has_users:
        branches += [
            "WHEN kept.user_id IS NULL AND known.user_id IS NOT NULL THEN 'user_rejected'",
            "WHEN kept.user_id IS NULL THEN 'orphan_user_id'",
        ]
    if spec is contract.TRANSACTIONS:
        branches.append(f"WHEN {columns['amount'].value} <= 0 THEN 'non_positive_amount'")
    if spec is contract.CAMPAIGN_SPEND:
        branches.append(f"WHEN {columns['spend'].value} < 0 THEN 'negative_spend'")
    return branches


def stamp(value: pd.Timestamp) -> str:
    return f"TIMESTAMP '{pd.Timestamp(value).isoformat(sep=' ')}'"


def outside(value: str, plausible: Plausible) -> str:
    """SQL: a present timestamp outside ingest's plausible range."""
    low, high = stamp(plausible.earliest), stamp(plausible.latest)
    return f"({value} < {low} OR {value} > {high})"
