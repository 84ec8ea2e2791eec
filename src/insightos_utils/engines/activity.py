"""Each signup's early product activity (``product.activity``) counted where the events live.

The rule is the in-memory one (``product.activity``'s module docstring): the cohort is the
users existing at as-of whose first ``window_days`` days are over by then (``created_at <=
as_of - window``); one of their events counts when it has a name, is not after as-of, lies in
``[created_at, created_at + window)`` and, when a conversion is known at as-of (status
``converted``, ``converted_at <= as_of``), strictly before it (``aggregates.user_events`` and
``aggregates.in_window``, the lead features' own counting).

Three small results leave the engine, from one pass over the events (the counted
(user, name) pairs, kept as a temporary table) and one join-free count by name:

- ``name_summary``: per event name up to as-of (any user), ``events``; and among the cohort,
  ``users`` (distinct users who did it in their window) and ``counted`` (events counted);
- ``user_columns``: per cohort user with a counted event, for each name the caller keeps,
  the number of counted events and the first one (microseconds after signup).

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

NEVER = np.iinfo(np.int64).max  # "never did it in the window" (product.activity's _NEVER)


@dataclass(frozen=True)
class ActivityCounts:
    """What the engine counted: ``names`` (index event_name, sorted: ``events``, ``users``,
    ``counted``; empty when no event up to as-of), and for the ``columns`` chosen, per user of
    ``user_ids`` (cohort users with a counted event in one of them) the ``counts`` and the
    ``first_us`` (``NEVER`` where none), both (users, columns) int64."""

    events_present: bool
    names: pd.DataFrame
    columns: tuple[str, ...]
    user_ids: np.ndarray
    counts: np.ndarray
    first_us: np.ndarray


def cohort_users(tables: EngineTables, as_of: pd.Timestamp, window_days: int) -> ir.Table:
    """Users whose first ``window_days`` days are over at as-of, with their known conversion."""
    existing = _existing_users(tables, None, as_of)
    cutoff = ibis.literal((as_of - pd.Timedelta(days=int(window_days))).to_pydatetime())
    return existing.filter(existing.created_at <= cutoff)


def counted_pairs(tables: EngineTables, as_of: pd.Timestamp, window_days: int) -> ir.Table:
    """Per (cohort user, event name) with a counted event: ``events`` (how many were counted)
    and ``first_us`` (the first, microseconds after signup)."""
    events = user_events(tables, cohort_users(tables, as_of, window_days), as_of)
    counted = events.filter(in_window(events, window_days))
    return counted.group_by(["user_id", "event_name"]).aggregate(
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


def user_columns_expr(pairs: ir.Table, columns: Sequence[str]) -> ir.Table:
    """Per cohort user: ``n<i>`` (counted events) and ``f<i>`` (first microsecond) of
    ``columns[i]`` (NULL where the user did not do it). Positional names keep long or odd event
    names clear of identifier rules; the name is coded once per pair row."""
    kept = pairs.filter(pairs.event_name.isin(list(columns)))
    code = ibis.cases(*((kept.event_name == name, i) for i, name in enumerate(columns)))
    coded = kept.mutate(column=code)
    metrics: dict[str, ir.Scalar] = {}
    for i in range(len(columns)):
        metrics[f"n{i}"] = coded.events.sum(where=coded.column == i).cast("int64")
        metrics[f"f{i}"] = coded.first_us.min(where=coded.column == i).cast("int64")
    return coded.group_by("user_id").aggregate(**metrics)


def _filled(table: pa.Table, name: str, fill: int) -> np.ndarray:
    column = table.column(name).cast(pa.int64())
    return pc.fill_null(column, fill).to_numpy()


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
    with opened(source, engine, settings) as tables:
        present = int(tables.execute(tables.events.limit(1).count())) > 0
        if not present:
            empty = pd.DataFrame(
                {"events": [], "users": [], "counted": []}, dtype="int64"
            ).rename_axis("event_name")
            return _counts(False, empty, (), pa.table({"user_id": pa.array([], pa.string())}))
        pairs = counted_pairs(tables, as_of, window_days).cache()
        try:
            totals = tables.execute(name_totals(tables, as_of)).set_index("event_name")
            done = tables.execute(name_summary_expr(pairs)).set_index("event_name")
            names = totals.join(done, how="left").fillna(0).astype("int64")
            names = names.reindex(sorted(map(str, names.index))).rename_axis("event_name")
            columns = tuple(choose(names))
            if columns:
                wide = tables.backend.to_pyarrow(user_columns_expr(pairs, columns))
            else:
                wide = pa.table({"user_id": pa.array([], pa.string())})
        finally:
            tables.release(pairs)
    return _counts(True, names, columns, wide)


def _counts(
    present: bool, names: pd.DataFrame, columns: tuple[str, ...], wide: pa.Table
) -> ActivityCounts:
    size = wide.num_rows
    counts = np.zeros((size, len(columns)), dtype=np.int64)
    first_us = np.full((size, len(columns)), NEVER, dtype=np.int64)
    for i in range(len(columns)):
        counts[:, i] = _filled(wide, f"n{i}", 0)
        first_us[:, i] = _filled(wide, f"f{i}", NEVER)
    user_ids = wide.column("user_id").to_numpy(zero_copy_only=False)
    return ActivityCounts(present, names, columns, user_ids, counts, first_us)


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
