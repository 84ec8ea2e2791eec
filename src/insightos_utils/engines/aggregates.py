"""The event-derived feature columns and the event vocabulary, as Ibis expressions.

The same rule as the in-memory feature table (``features.build_feature_table``): a user exists
at as-of when ``created_at <= as_of``; one of their events counts when it is not after as-of,
lies in ``[created_at, created_at + window_days)`` and, when a conversion is known at as-of
(status ``converted``, ``converted_at <= as_of``), strictly before it. Events of unknown users
(or of users created after as-of) and events without a name count nowhere.

Per user (``event_aggregates``): one count per ``events_*`` column of the spec (names the spec
does not know go to ``events_other``, excluded post-conversion names nowhere),
``distinct_event_types`` (how many of those columns are non-zero), ``days_active`` (distinct
whole days since signup with a counted event) and ``hours_to_first_<key>`` (hours from signup
to the first counted key event, capped at the window's length, which doubles as "never").

Per event name (``fit_vocabulary``): what ``features.fit_feature_spec`` learns from events —
how often the name occurs (existing users, up to as-of), how often before the user's known
conversion, and how many users did it inside their window. Slugs, thresholds and the choice
of key events stay with the feature spec.

Every aggregation is a plain hash aggregate (no COUNT DISTINCT, no window function), so DuckDB
can spill all of it to disk and Spark can shuffle it. Only per-user (or per-name) rows leave
the engine.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd

from insightos_utils.contract import parse_timestamp
from insightos_utils.engines.choice import EngineSettings
from insightos_utils.engines.sources import USERS_COLUMNS, EngineTables, opened, typed
from insightos_utils.errors import InputError

OTHER_COLUMN = "events_other"  # the spec's catch-all column (features.OTHER_COLUMN)
US_PER_DAY = 86_400 * 10**6
_NS_PER_HOUR = 3_600 * 10**9


class EventSpec(Protocol):
    """What the counting needs from a feature spec (``features.FeatureSpec`` has it)."""

    @property
    def window_days(self) -> int: ...
    @property
    def event_columns(self) -> Mapping[str, str]: ...
    @property
    def excluded_events(self) -> Sequence[str]: ...
    @property
    def key_events(self) -> Mapping[str, str]: ...
    @property
    def event_feature_columns(self) -> tuple[str, ...]: ...


@dataclass(frozen=True)
class Vocabulary:
    """The event names seen at as-of: ``names`` indexed by event_name with ``events``,
    ``pre_conversion_events`` and ``window_users``; ``n_users`` = users existing at as-of."""

    names: pd.DataFrame
    n_users: int
    as_of: pd.Timestamp
    window_days: int


def _as_of(as_of: str | pd.Timestamp) -> pd.Timestamp:
    try:
        return parse_timestamp(as_of)
    except (ValueError, TypeError) as error:
        raise InputError(f"as_of: cannot parse {as_of!r} as an ISO 8601 timestamp") from error


def _existing_users(
    tables: EngineTables, users: pd.DataFrame | None, as_of: pd.Timestamp
) -> ir.Table:
    """Users existing at as-of, with the conversion time known at as-of (else NULL)."""
    table = tables.users
    if users is not None:
        table = typed(ibis.memtable(users[list(USERS_COLUMNS)]), USERS_COLUMNS, "users")
    stamp = ibis.literal(as_of.to_pydatetime())
    known = (
        (table.status == "converted") & table.converted_at.notnull() & (table.converted_at <= stamp)
    )
    return table.filter(table.created_at <= stamp).select(
        "user_id",
        "created_at",
        conversion_at=ibis.ifelse(known, table.converted_at, ibis.null(table.converted_at.type())),
    )


def user_events(tables: EngineTables, users: ir.Table, as_of: pd.Timestamp) -> ir.Table:
    """Named events of existing users up to as-of, with their user's signup and conversion,
    ``since_signup_us`` (microseconds from signup) and ``before_conversion``."""
    stamp = ibis.literal(as_of.to_pydatetime())
    events = tables.events
    events = events.filter(events.occurred_at <= stamp, events.event_name.notnull())
    joined = events.inner_join(users, "user_id")
    return joined.mutate(
        since_signup_us=joined.occurred_at.delta(joined.created_at, unit="microsecond"),
        before_conversion=joined.conversion_at.isnull()
        | (joined.occurred_at < joined.conversion_at),
    )


def in_window(events: ir.Table, window_days: int) -> ir.BooleanValue:
    """The counting rule on ``user_events`` rows: in [signup, signup + window), before a
    known conversion (not after as-of: ``user_events`` already cut there)."""
    if int(window_days) < 1:
        raise InputError(f"feature_window_days must be at least 1 day, got {window_days}")
    end = events.created_at + ibis.interval(days=int(window_days))
    return (
        (events.occurred_at >= events.created_at)
        & (events.occurred_at < end)
        & events.before_conversion
    )


def _column_codes(spec: EventSpec, name: ir.StringValue) -> tuple[ir.IntegerValue, list[str], int]:
    """Each event's column position in ``spec.event_feature_columns`` (-1: excluded)."""
    columns = list(spec.event_feature_columns)
    if OTHER_COLUMN not in columns:
        raise InputError(f"feature spec: no {OTHER_COLUMN} column among {columns}")
    position = {column: i for i, column in enumerate(columns)}
    other = position[OTHER_COLUMN]
    names_of: dict[int, list[str]] = {}
    for raw, column in spec.event_columns.items():
        if column != OTHER_COLUMN and raw not in spec.excluded_events:
            names_of.setdefault(position[column], []).append(raw)
    branches = []
    if spec.excluded_events:
        branches.append((name.isin(sorted(spec.excluded_events)), -1))
    for code, raws in sorted(names_of.items()):
        branches.append((name.isin(sorted(raws)), code))
    code = ibis.cases(*branches, else_=other) if branches else ibis.literal(other)
    return code, columns, other


BITMASK_DAYS = 62  # windows up to this many days count active days in one 64-bit mask


@ibis.udf.agg.builtin(name="bit_or")
def _bit_or(value: int) -> int:  # type: ignore[empty-body]
    """SQL's BIT_OR aggregate (DuckDB, PostgreSQL and Spark all have it)."""


def user_name_pairs(
    tables: EngineTables, as_of: pd.Timestamp, window_days: int, users: pd.DataFrame | None = None
) -> ir.Table:
    """Per (user, event name) — everything the vocabulary and the event columns need, from one
    pass over the events: ``events``, ``pre_conversion_events``, ``window_events``,
    ``first_us`` (first counted event, microseconds since signup) and ``days_mask`` (bit d:
    a counted event on day d since signup). Materialised once per open source and as-of
    (a temporary table in the engine), so the vocabulary and the aggregates share it."""
    key = ("pairs", as_of, int(window_days), None if users is None else id(users))
    if key not in tables.cache:
        events = user_events(tables, _existing_users(tables, users, as_of), as_of)
        counted = in_window(events, window_days)
        day = (events.since_signup_us // US_PER_DAY).cast("int32")
        bit = ibis.ifelse(counted, ibis.literal(1).cast("int64") << day, 0)
        pairs = events.group_by(["user_id", "event_name"]).aggregate(
            events=events.count(),
            pre_conversion_events=events.count(where=events.before_conversion),
            window_events=events.count(where=counted),
            first_us=events.since_signup_us.min(where=counted),
            days_mask=_bit_or(bit),
        )
        tables.cache[key] = pairs.cache()
    return tables.cache[key]


def event_aggregates_expr(
    tables: EngineTables, spec: EventSpec, as_of: pd.Timestamp, users: pd.DataFrame | None = None
) -> tuple[ir.Table, list[str], dict[str, int]]:
    """The per-user aggregate as one expression: ``c<i>`` (count of column i), ``k<j>`` (first
    microsecond of key j) and ``days_mask`` (windows up to ``BITMASK_DAYS``, from the shared
    ``user_name_pairs``) or ``days_active`` (longer windows: distinct days counted directly).
    Positional names keep long slugs clear of identifier limits. Also returns the event
    columns and each key column's position (-1 when its name has no own column)."""
    key_position = {}
    columns = list(spec.event_feature_columns)
    for key_column, raw in spec.key_events.items():
        target = spec.event_columns.get(raw, "")
        found = columns.index(target) if target in columns else -1
        key_position[key_column] = -1 if target == OTHER_COLUMN else found
    if int(spec.window_days) <= BITMASK_DAYS:
        pairs = user_name_pairs(tables, as_of, spec.window_days, users)
        code, columns, _ = _column_codes(spec, pairs.event_name)
        coded = pairs.filter(pairs.window_events > 0).mutate(column=code)
        coded = coded.filter(coded.column >= 0)
        metrics: dict[str, ir.Scalar] = {
            f"c{i}": coded.window_events.sum(where=coded.column == i) for i in range(len(columns))
        }
        for j, position in enumerate(key_position.values()):
            if position >= 0:
                metrics[f"k{j}"] = coded.first_us.min(where=coded.column == position)
        metrics["days_mask"] = _bit_or(coded.days_mask)
        return coded.group_by("user_id").aggregate(**metrics), columns, key_position
    existing = _existing_users(tables, users, as_of)
    events = user_events(tables, existing, as_of)
    code, columns, _ = _column_codes(spec, events.event_name)
    counted = events.filter(in_window(events, spec.window_days)).mutate(column=code)
    counted = counted.filter(counted.column >= 0)
    metrics = {f"c{i}": counted.count(where=counted.column == i) for i in range(len(columns))}
    for j, position in enumerate(key_position.values()):
        if position >= 0:
            metrics[f"k{j}"] = counted.since_signup_us.min(where=counted.column == position)
    per_user = counted.group_by("user_id").aggregate(**metrics)
    days = (
        counted.select("user_id", day=counted.since_signup_us // US_PER_DAY)
        .distinct()
        .group_by("user_id")
        .aggregate(days_active=ibis._.count())
    )
    return per_user.inner_join(days, "user_id"), columns, key_position


def _popcount(masks: np.ndarray) -> np.ndarray:
    """Set bits of each int64 (the active days of a mask)."""
    bits = masks.astype(np.uint64)
    count = np.zeros(len(bits), dtype=np.int64)
    for shift in range(64):
        count += ((bits >> np.uint64(shift)) & np.uint64(1)).astype(np.int64)
    return count


def _existing_ids(
    tables: EngineTables, users: pd.DataFrame | None, as_of: pd.Timestamp
) -> pd.Index:
    if users is not None:
        created = pd.to_datetime(users["created_at"])
        return pd.Index(
            users.loc[(created <= as_of).to_numpy(), "user_id"].to_numpy(), name="user_id"
        )
    existing = _existing_users(tables, None, as_of).select("user_id")
    frame = tables.execute(existing)
    return pd.Index(np.sort(frame["user_id"].to_numpy(dtype=object)), name="user_id")


def event_aggregates(
    source: str | Path | EngineTables,
    spec: EventSpec,
    as_of: str | pd.Timestamp,
    users: pd.DataFrame | None = None,
    engine: str = "auto",
    settings: EngineSettings | None = None,
) -> pd.DataFrame:
    """The event-derived columns of the feature table, computed on ``engine``.

    One row per user existing at ``as_of`` (index ``user_id``: ``users``' order when given,
    else sorted), columns ``spec.event_feature_columns`` (int32), ``distinct_event_types``,
    ``days_active`` (int32) and ``spec.key_events``' columns (float64 hours, capped at the
    window). ``users``: the users table as a DataFrame (else the source's users table).
    Equal, value for value, to those columns of ``features.build_feature_table``.
    """
    as_of = _as_of(as_of)
    with opened(source, engine, settings) as tables:
        expression, columns, key_position = event_aggregates_expr(tables, spec, as_of, users)
        result = tables.execute(expression)
        index = _existing_ids(tables, users, as_of)
    result = result.set_index("user_id").reindex(index)
    table = pd.DataFrame(index=index)
    for i, column in enumerate(columns):
        table[column] = result[f"c{i}"].fillna(0).to_numpy(dtype=np.int64).astype(np.int32)
    counts = table[columns].to_numpy()
    table["distinct_event_types"] = (counts > 0).sum(axis=1).astype(np.int32)
    if "days_mask" in result.columns:
        masks = result["days_mask"].fillna(0).to_numpy(dtype=np.int64)
        table["days_active"] = _popcount(masks).astype(np.int32)
    else:
        days_active = result["days_active"].fillna(0).to_numpy(dtype=np.int64)
        table["days_active"] = days_active.astype(np.int32)
    cap_hours = float(int(spec.window_days) * 24)
    for j, (key_column, position) in enumerate(key_position.items()):
        hours = np.full(len(table), np.inf)
        if position >= 0:
            first_us = result[f"k{j}"].to_numpy(dtype=float, na_value=np.nan)
            reached = ~np.isnan(first_us)
            # the in-memory path divides nanoseconds by 3.6e12: do the very same division
            first_ns = first_us[reached].astype(np.int64) * 1_000
            hours[reached] = first_ns / _NS_PER_HOUR
        table[key_column] = np.minimum(hours, cap_hours)
    return table


def vocabulary_expr(
    tables: EngineTables, as_of: pd.Timestamp, window_days: int, users: pd.DataFrame | None = None
) -> ir.Table:
    """Per event name: ``events``, ``pre_conversion_events``, ``window_users`` (a small
    aggregate over ``user_name_pairs``)."""
    pairs = user_name_pairs(tables, as_of, window_days, users)
    return pairs.group_by("event_name").aggregate(
        events=pairs.events.sum(),
        pre_conversion_events=pairs.pre_conversion_events.sum(),
        window_users=pairs.count(where=pairs.window_events > 0),
    )


def fit_vocabulary(
    source: str | Path | EngineTables,
    as_of: str | pd.Timestamp,
    window_days: int,
    users: pd.DataFrame | None = None,
    engine: str = "auto",
    settings: EngineSettings | None = None,
) -> Vocabulary:
    """What the feature spec learns from events at ``as_of``, counted on ``engine``.

    ``names`` (index event_name, sorted): ``events`` (occurrences by existing users up to
    as-of), ``pre_conversion_events`` (those strictly before the user's conversion known at
    as-of; a name with none is a post-conversion name), ``window_users`` (users with it inside
    their window). A name with no event up to as-of is absent.
    """
    as_of = _as_of(as_of)
    with opened(source, engine, settings) as tables:
        frame = tables.execute(vocabulary_expr(tables, as_of, window_days, users))
        if users is not None:
            n_users = int((pd.to_datetime(users["created_at"]) <= as_of).sum())
        else:
            n_users = int(tables.execute(_existing_users(tables, None, as_of).count()))
    names = frame.set_index("event_name").sort_index()
    names = names.fillna(0).astype(np.int64)
    return Vocabulary(names=names, n_users=n_users, as_of=as_of, window_days=int(window_days))


def latest_timestamp(
    source: str | Path | EngineTables, engine: str = "auto", settings: EngineSettings | None = None
) -> pd.Timestamp | None:
    """The latest of users.created_at, users.converted_at and events.occurred_at (the default
    as-of), computed on the engine; None when the data has no timestamps."""
    with opened(source, engine, settings) as tables:
        stamps = [
            tables.execute(tables.users.created_at.max()),
            tables.execute(tables.users.converted_at.max()),
            tables.execute(tables.events.occurred_at.max()),
        ]
    found = [pd.Timestamp(s) for s in stamps if s is not None and pd.notna(s)]
    return parse_timestamp(max(found)) if found else None
