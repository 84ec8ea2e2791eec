"""Each signup's early product activity (``product.activity``) counted where the events live.

The rule is the in-memory one (``product.activity``'s module docstring): the cohort is the
users existing at as-of whose first ``window_days`` days are over by then (``created_at <=
as_of - window``); one of their events counts when it has a name, is not after as-of, lies in
``[created_at, created_at + window)`` and, when a conversion is known at as-of (status
``converted``, ``converted_at <= as_of``), strictly before it (``aggregates.user_events`` and
``aggregates.in_window``, the lead features' own counting).

Small results leave the engine, from one pass over the events (the counted (user, name)
pairs, kept as a temporary table) and one join-free count by name:

- per event name up to as-of (any user), ``events``; and among the cohort,
  ``users`` (distinct users who did it in their window) and ``counted`` (events counted);
- per (cohort user, name the caller keeps) with a counted event: the number of counted
  events and the first one (microseconds after signup), the user as a number; and, once per
  cohort user, that number's user_id.

Which names get a column (``min_users``, the cap) stays with ``product.activity``: the
caller passes ``choose`` and the engine computes only those columns.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from insightos_utils.engines.aggregates import _as_of, _existing_users, in_window, user_events
from insightos_utils.engines.choice import EngineSettings
from insightos_utils.engines.sources import EngineTables, opened

if TYPE_CHECKING:
    from insightos_utils.engines.pipeline import EngineRef


@dataclass(frozen=True)
class ActivityCounts:
    """What the engine counted. ``names``: index event_name (sorted), ``events``, ``users``,
    ``counted`` (empty when no event up to as-of). ``user_ids``: the cohort's users as the
    engine numbered them (``user_ids[key]``). For the ``columns`` chosen, one row per (user,
    column) with a counted event: ``user_key``, ``column`` (position in ``columns``),
    ``counts`` and ``first_us`` (microseconds after signup), int64 arrays."""

    events_present: bool
    names: pd.DataFrame
    columns: tuple[str, ...]
    user_ids: np.ndarray
    user_key: np.ndarray
    column: np.ndarray
    counts: np.ndarray
    first_us: np.ndarray


def cohort_users(tables: EngineTables, as_of: pd.Timestamp, window_days: int) -> ir.Table:
    """Users whose first ``window_days`` days are over at as-of, with their known conversion
    and ``key``, a number (0, 1, ...) in user_id order: the pairs are grouped and sent back by
    it, and the text ids travel once per user."""
    existing = _existing_users(tables, None, as_of)
    cutoff = ibis.literal((as_of - pd.Timedelta(days=int(window_days))).to_pydatetime())
    cohort = existing.filter(existing.created_at <= cutoff)
    return cohort.mutate(key=ibis.row_number().over(order_by=cohort.user_id).cast("int64"))


def counted_pairs(tables: EngineTables, cohort: ir.Table, as_of: pd.Timestamp, window_days: int):
    """Per (cohort user ``key``, event name) with a counted event: ``events`` (how many were
    counted) and ``first_us`` (the first, microseconds after signup)."""
    events = user_events(tables, cohort, as_of)
    counted = events.filter(in_window(events, window_days))
    return counted.group_by(["key", "event_name"]).aggregate(
        events=counted.count().cast("int64"),
        first_us=counted.since_signup_us.min().cast("int64"),
    )


def name_totals(tables: EngineTables, as_of: pd.Timestamp) -> ir.Table:
    """Per event name: the events up to as-of, of any user (known or not)."""
    events = tables.events
    events = events.filter(
        events.occurred_at <= ibis.literal(as_of.to_pydatetime()), events.event_name.notnull()
    )
    return events.group_by("event_name").aggregate(events=events.count().cast("int64"))


def name_summary_expr(pairs: ir.Table) -> ir.Table:
    """Per event name done by a cohort user in their window: ``users`` and ``counted``."""
    return pairs.group_by("event_name").aggregate(
        users=pairs.count().cast("int64"), counted=pairs.events.sum().cast("int64")
    )


def column_rows_expr(pairs: ir.Table, columns: Sequence[str]) -> ir.Table:
    """The pairs of the names in ``columns``, the name as its position (``column``)."""
    kept = pairs.filter(pairs.event_name.isin(list(columns)))
    code = ibis.cases(*((kept.event_name == name, i) for i, name in enumerate(columns)))
    return kept.select("key", "events", "first_us", column=code.cast("int64"))


def _int64(table: pa.Table, name: str) -> np.ndarray:
    return pc.fill_null(table.column(name).cast(pa.int64()), 0).to_numpy()


def activity_counts(
    source: str | Path | EngineTables,
    as_of: str | pd.Timestamp,
    window_days: int,
    choose: Callable[[pd.DataFrame], Sequence[str]],
    engine: str = "auto",
    settings: EngineSettings | None = None,
) -> ActivityCounts:
    """The cohort's early activity counted on ``engine`` (see the module docstring).

    ``choose(names)`` gets the name summary and returns the names to compute columns for (it
    may raise, e.g. for a required name that never occurs)."""
    as_of = _as_of(as_of)
    nothing = pa.table({name: pa.array([], pa.int64()) for name in _ROWS})
    with opened(source, engine, settings) as tables:
        present = int(tables.execute(tables.events.limit(1).count())) > 0
        if not present:
            empty = pd.DataFrame(
                {"events": [], "users": [], "counted": []}, dtype="int64"
            ).rename_axis("event_name")
            return _counts(False, empty, (), np.zeros(0, dtype=object), nothing)
        cohort = cohort_users(tables, as_of, window_days).cache()
        pairs = counted_pairs(tables, cohort, as_of, window_days).cache()
        try:
            totals = tables.execute(name_totals(tables, as_of)).set_index("event_name")
            done = tables.execute(name_summary_expr(pairs)).set_index("event_name")
            names = totals.join(done, how="left").fillna(0).astype("int64")
            names = names.reindex(sorted(map(str, names.index))).rename_axis("event_name")
            columns = tuple(choose(names))
            rows = nothing
            if columns:
                rows = tables.backend.to_pyarrow(column_rows_expr(pairs, columns))
            keys = tables.backend.to_pyarrow(cohort.select("key", "user_id"))
        finally:
            tables.release(pairs)
            tables.release(cohort)
    user_ids = np.empty(len(keys), dtype=object)
    user_ids[_int64(keys, "key")] = keys.column("user_id").to_numpy(zero_copy_only=False)
    return _counts(True, names, columns, user_ids, rows)


_ROWS = ("key", "column", "events", "first_us")


def _counts(
    present: bool,
    names: pd.DataFrame,
    columns: tuple[str, ...],
    user_ids: np.ndarray,
    rows: pa.Table,
) -> ActivityCounts:
    key, column, events, first_us = (_int64(rows, name) for name in _ROWS)
    return ActivityCounts(present, names, columns, user_ids, key, column, events, first_us)


def activity_counts_on(
    ref: EngineRef,
    as_of: pd.Timestamp,
    window_days: int,
    choose: Callable[[pd.DataFrame], Sequence[str]],
) -> ActivityCounts:
    """``activity_counts`` on the engine a run's processed tables name (``pipeline.open_ref``)."""
    from insightos_utils.engines.pipeline import open_ref

    with open_ref(ref) as tables:
        return activity_counts(tables, as_of, window_days, choose)
