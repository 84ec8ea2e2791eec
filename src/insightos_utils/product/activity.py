"""Each signup's early product activity: the one table the funnel, the drivers and the friction
points read.

Who is in it (the *cohort*): users who exist at as-of and whose first ``window_days`` days are
over by then. A younger signup has not had the time to do things yet and would drag every share
down. Converted = converted by as-of (``status`` converted and ``converted_at`` <= as-of); a
conversion after as-of does not exist yet.

What is counted: for each user and event name, the first time (hours after signup) and the
number of times they did it inside ``[signup, signup + window)``, strictly before their
conversion and not after as-of, the rule the lead features follow, so a behaviour is never
"explained" by what customers do because they already pay. Events before signup are not part of
the journey. So a post-conversion event (one only ever seen at or after its user's conversion:
billing, invoices, seats) can never count: it lands in ``outside_journey_events``, the names
nobody did in their first days before converting, with anything done only later in life.
Names done by fewer than ``min_users`` signups of the cohort get no column, nor, beyond
``MAX_EVENT_COLUMNS`` names, the least common ones.

Where it is counted: when the processed tables name an engine (``[data] engine`` = duckdb,
source or spark; ``engines.pipeline.engine_of``), on that engine (``engines.activity``: the
same rule as one Ibis expression); only the per-name summary and, per cohort user, the counts
and first times of the described names come back, never the event rows. Otherwise here:

Speed in memory: for text ids, DuckDB joins the events to the cohort's users (no Python hashing), keeps
only the counted ones and hashes their names in the same scan; for categorical ids (encoded
once already) the categories are looked up once. Everything after is numpy over integer codes
(first times by ``np.minimum.at``, counts by ``np.bincount``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa

from insightos_utils.contract import NO_CAMPAIGN
from insightos_utils.errors import InputError

if TYPE_CHECKING:
    from insightos_utils.engines.pipeline import EngineRef

MAX_EVENT_COLUMNS = 64  # event names described per user (1M users x 64 names: about 0.8 GB)
US_PER_HOUR = 3_600 * 10**6
CHUNK_ROWS = 1 << 21  # rows handled at a time (temporaries the allocator reuses)
_NEVER = np.iinfo(np.int64).max
_BITMAP_LIMIT = 2**28  # distinct (user, name) pairs by a bitmap up to 256 MB, hashing beyond


@dataclass
class EarlyActivity:
    """The cohort (one row per user) and what each did in the window, per event name (column).

    ``first_hours`` is inf where the user never did the event in the window; ``counts`` is 0 there.
    """

    as_of: pd.Timestamp
    window_days: int
    user_ids: np.ndarray
    campaign: np.ndarray
    converted: np.ndarray
    conversion_hours: np.ndarray  # hours from signup to conversion; nan when not converted
    names: tuple[str, ...]
    first_hours: np.ndarray  # (users, names) float64
    counts: np.ndarray  # (users, names) int32
    users_existing: int = 0
    users_too_young: int = 0
    events_read: int = 0  # events up to as-of
    events_counted: int = 0  # of those, inside a cohort user's window before conversion
    outside_journey_events: tuple[str, ...] = ()  # never done in a window before converting
    rare_events: tuple[str, ...] = ()  # done by fewer than min_users signups (or beyond the cap)
    all_event_names: tuple[str, ...] = ()
    events_present: bool = True  # False: the events table has no rows at all (CRM-only)
    notes: list[str] = field(default_factory=list)

    @property
    def n_users(self) -> int:
        return int(self.user_ids.size)

    @property
    def n_converted(self) -> int:
        return int(self.converted.sum())

    def column(self, name: str) -> int:
        """The column of event ``name`` (``KeyError`` when it is not described)."""
        try:
            return self.names.index(name)
        except ValueError:
            raise KeyError(name) from None

    def users_who_did(self) -> np.ndarray:
        """Per event name: how many cohort users did it in their window."""
        return (self.counts > 0).sum(axis=0)

    def undecided_mask(self) -> np.ndarray:
        """The users who had not converted by the end of their window (the *landmark* group)."""
        return ~(self.conversion_hours < self.window_days * 24)  # nan (never): undecided

    def subset(self, mask: np.ndarray) -> EarlyActivity:
        """The same activity for the users of ``mask`` only."""
        return replace(
            self,
            user_ids=self.user_ids[mask],
            campaign=self.campaign[mask],
            converted=self.converted[mask],
            conversion_hours=self.conversion_hours[mask],
            first_hours=self.first_hours[mask],
            counts=self.counts[mask],
            notes=list(self.notes),
        )

    def undecided(self) -> EarlyActivity:
        """The landmark group: everyone in it had the whole window to do things, and converted
        (or not) after it, so comparing what they did is fair. A user who converts on day 2
        cannot do anything "before converting" on day 5: keeping them would make every later
        behaviour look worse than it is."""
        return self.subset(self.undecided_mask())


def _naive_utc(values: pd.Series, where: str) -> pd.Series:
    if not pd.api.types.is_datetime64_any_dtype(values.dtype):
        raise InputError(
            f"{where}: expected timestamps, got {values.dtype}; load the tables with "
            "insightos_utils.ingest.read_processed"
        )
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        values = values.dt.tz_convert("UTC").dt.tz_localize(None)
    return values


def _microseconds(values: pd.Series, where: str) -> np.ndarray:
    """Timestamps as int64 microseconds since the epoch (NaT: int64 min)."""
    return _naive_utc(values, where).to_numpy(dtype="datetime64[us]").view(np.int64)


def _require(frame: pd.DataFrame, table: str, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputError(
            f"{table}: missing column(s) {missing}; load the tables with "
            "insightos_utils.ingest.read_processed"
        )


@dataclass
class _Counted:
    """The counted events (cohort user, name code, microseconds after signup), the distinct
    event names up to as-of (sorted), and how many events there are up to as-of."""

    user: np.ndarray
    code: np.ndarray
    rel: np.ndarray
    names: list[str]
    events_total: int


def _time_codes(values: pd.Series, where: str) -> tuple[np.ndarray, int]:
    """Timestamps as int64 in their own unit (no converted copy) and that unit's ticks per
    microsecond (1 for microseconds, 1000 for nanoseconds...)."""
    array = _naive_utc(values, where).to_numpy()
    unit, _ = np.datetime_data(array.dtype)
    per_us = {"ns": 1000, "us": 1}.get(unit)
    if per_us is None:  # seconds or milliseconds: rare; convert once
        return array.astype("datetime64[us]").view(np.int64), 1
    return array.view(np.int64), per_us


def _counted_by_codes(events: pd.DataFrame, cohort: pd.DataFrame, as_of_us: int) -> _Counted:
    """The counting for categorical user_id and event_name (encoded once already): no join,
    the categories are looked up once and the rest is integer arithmetic, chunk by chunk
    (small temporaries are reused by the allocator instead of faulting in fresh pages)."""
    lookup = np.append(
        pd.Index(cohort["user_id"]).get_indexer(events["user_id"].cat.categories), -1
    ).astype(np.int32)
    user_codes = events["user_id"].cat.codes.to_numpy()
    name_codes = events["event_name"].cat.codes.to_numpy()
    ticks, per_us = _time_codes(events["occurred_at"], "events.occurred_at")
    created = cohort["created_us"].to_numpy() * per_us
    limit = cohort["limit_us"].to_numpy() * per_us
    as_of_ticks = as_of_us * per_us
    categories = np.asarray(events["event_name"].cat.categories.astype(str), dtype=object)
    present = np.zeros(len(categories), dtype=np.int64)
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for start in range(0, len(events), CHUNK_ROWS):
        stop = start + CHUNK_ROWS
        at, name = ticks[start:stop], name_codes[start:stop]
        up_to = (at <= as_of_ticks) & (name >= 0)
        present += np.bincount(name[up_to], minlength=len(categories))
        user = lookup[user_codes[start:stop]]
        keep = np.flatnonzero(up_to & (user >= 0))
        user, at, name = user[keep], at[keep], name[keep]
        rel = at - created[user]
        inside = np.flatnonzero((rel >= 0) & (rel < limit[user]))
        parts.append((user[inside], name[inside], rel[inside] // per_us))
    order = sorted(np.flatnonzero(present), key=lambda c: categories[c])
    recode = np.full(len(categories), -1, dtype=np.int32)
    recode[order] = np.arange(len(order))
    return _Counted(
        user=np.concatenate([p[0] for p in parts]),
        code=recode[np.concatenate([p[1] for p in parts])],
        rel=np.concatenate([p[2] for p in parts]),
        names=[str(categories[c]) for c in order],
        events_total=int(present.sum()),
    )


def _counted_by_duckdb(events: pd.DataFrame, cohort: pd.DataFrame, as_of: pd.Timestamp) -> _Counted:
    """The counting for text ids: DuckDB joins the events to the cohort's users, keeps the
    counted ones and hashes their names; a second, join-free scan lists the names."""
    import duckdb

    event_table = pa.Table.from_pandas(
        events[["user_id", "event_name", "occurred_at"]].assign(
            occurred_at=_naive_utc(events["occurred_at"], "events.occurred_at")
        ),
        preserve_index=False,
    )
    moment = [as_of.to_pydatetime()]
    with duckdb.connect() as connection:
        connection.register("events", event_table)
        connection.register("cohort_users", pa.Table.from_pandas(cohort, preserve_index=False))
        names = connection.execute(
            "SELECT CAST(event_name AS VARCHAR) AS name, hash(event_name) AS h, "
            "count(*) AS total FROM events WHERE event_name IS NOT NULL AND occurred_at <= ? "
            "GROUP BY ALL",
            moment,
        ).fetchnumpy()
        counted = connection.execute(
            "SELECT cohort_pos, h, at_us - created_us AS rel FROM ("
            "  SELECT u.cohort_pos, u.created_us, u.limit_us, hash(e.event_name) AS h, "
            "  epoch_us(e.occurred_at) AS at_us "
            "  FROM events e JOIN cohort_users u ON CAST(e.user_id AS VARCHAR) = u.user_id "
            "  WHERE e.event_name IS NOT NULL AND e.occurred_at <= ?"
            ") WHERE at_us >= created_us AND at_us - created_us < limit_us",
            moment,
        ).fetchnumpy()
    order = sorted(range(len(names["name"])), key=lambda i: str(names["name"][i]))  # Python's
    name_hashes = pd.Index(np.asarray(names["h"], dtype=np.uint64)[order])  # order, as ever
    if not name_hashes.is_unique:  # pragma: no cover - a 64-bit collision among a few names
        raise RuntimeError("two event names share a DuckDB hash; report this data set")
    return _Counted(
        user=np.asarray(counted["cohort_pos"], dtype=np.int32),
        code=name_hashes.get_indexer(np.asarray(counted["h"], dtype=np.uint64)).astype(np.int32),
        rel=np.asarray(counted["rel"], dtype=np.int64),
        names=[str(names["name"][i]) for i in order],
        events_total=int(np.asarray(names["total"], dtype=np.int64).sum()),
    )


def _counted_events(events: pd.DataFrame, cohort: pd.DataFrame, as_of: pd.Timestamp) -> _Counted:
    """The events counted in the cohort's windows (see the module docstring)."""
    if not len(events):
        empty = np.zeros(0, dtype=np.int32)
        return _Counted(empty, empty, np.zeros(0, dtype=np.int64), [], 0)
    if all(isinstance(events[c].dtype, pd.CategoricalDtype) for c in ("user_id", "event_name")):
        as_of_us = int(np.datetime64(as_of.to_datetime64(), "us").astype(np.int64))
        return _counted_by_codes(events, cohort, as_of_us)
    return _counted_by_duckdb(events, cohort, as_of)


def _chunks(size: int) -> range:
    return range(0, size, CHUNK_ROWS)


def _distinct_users_per_name(user: np.ndarray, name: np.ndarray, n_users: int, n_names: int):
    """How many distinct users did each name (over the given (user, name) rows)."""
    if n_users * n_names <= _BITMAP_LIMIT:
        seen = np.zeros(n_users * n_names, dtype=bool)
        for start in _chunks(user.size):
            stop = start + CHUNK_ROWS
            seen[user[start:stop].astype(np.int64) * n_names + name[start:stop]] = True
        return seen.reshape(n_users, n_names).sum(axis=0)
    keys = pd.unique(user.astype(np.int64) * n_names + name)
    return np.bincount(keys % n_names, minlength=n_names)


def _first_and_counts(
    user: np.ndarray, column: np.ndarray, rel: np.ndarray, n: int, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per (user, column): the earliest ``rel`` (``_NEVER`` when none) and the number of rows,
    in place over chunks (``np.minimum.at`` and ``np.add.at``, no full-size temporaries)."""
    first = np.full(n * k, _NEVER, dtype=np.int64)
    counts = np.zeros(n * k, dtype=np.int64)
    ones = np.ones(min(CHUNK_ROWS, max(user.size, 1)), dtype=np.int64)
    for start in _chunks(user.size):
        stop = start + CHUNK_ROWS
        columns = column[start:stop]
        keep = np.flatnonzero(columns >= 0)
        keys = user[start:stop][keep].astype(np.int64) * k + columns[keep]
        np.minimum.at(first, keys, rel[start:stop][keep])
        np.add.at(counts, keys, ones[: keys.size])
    return first.reshape(n, k), counts.astype(np.int32).reshape(n, k)


@dataclass
class _Cohort:
    """The users existing at as-of, which of them are in the cohort, and the cohort's table
    (``user_id``, ``cohort_pos``, ``created_us``, ``limit_us``: where each window ends)."""

    as_of: pd.Timestamp
    existing: pd.DataFrame
    in_cohort: np.ndarray
    converted: np.ndarray
    conversion_rel: np.ndarray  # microseconds from signup to a conversion at as-of, else _NEVER
    table: pd.DataFrame


def _cohort(users: pd.DataFrame, as_of: pd.Timestamp, window_days: int) -> _Cohort:
    as_of_us = int(np.datetime64(as_of.to_datetime64(), "us").astype(np.int64))
    window_us = int(window_days) * 24 * US_PER_HOUR
    created_all = _microseconds(users["created_at"], "users.created_at")
    exists = (created_all != np.iinfo(np.int64).min) & (created_all <= as_of_us)
    existing = users.loc[exists]
    created = created_all[exists]
    converted_at = _microseconds(existing["converted_at"], "users.converted_at")
    converted = (
        (existing["status"].astype(str) == "converted").to_numpy()
        & (converted_at != np.iinfo(np.int64).min)
        & (converted_at <= as_of_us)
    )
    conversion_rel = np.where(converted, converted_at - created, _NEVER)
    in_cohort = created + window_us <= as_of_us
    ids = existing["user_id"].astype(str).to_numpy(dtype=object)
    table = pd.DataFrame(
        {
            "user_id": pd.array(ids[in_cohort], dtype="str"),
            "cohort_pos": np.arange(int(in_cohort.sum()), dtype=np.int32),
            "created_us": created[in_cohort],
            "limit_us": np.minimum(conversion_rel[in_cohort], window_us),
        }
    )
    return _Cohort(as_of, existing, in_cohort, converted, conversion_rel, table)


def _described_names(
    all_names: Sequence[str],
    coverage: np.ndarray,
    min_users: int,
    required_names: Sequence[str],
    as_of: pd.Timestamp,
) -> list[int]:
    """The positions (into ``all_names``, sorted by name) of the names that get a column: done
    by at least ``min_users`` cohort users or required, the most common ``MAX_EVENT_COLUMNS``.
    A required name that never occurs up to as-of is an ``InputError`` naming the others."""
    names = list(all_names)
    unknown = [name for name in required_names if name not in names]
    if unknown:
        shown = ", ".join(names[:30]) or "none"
        raise InputError(
            f"[product] funnel_steps: {unknown} never occur in the events up to as-of "
            f"{as_of}; the event names are: {shown}"
        )
    required = {names.index(name) for name in required_names}
    frequent = [c for c in range(len(names)) if coverage[c] >= int(min_users) or c in required]
    frequent.sort(key=lambda c: (c not in required, -coverage[c], names[c]))
    return sorted(frequent[:MAX_EVENT_COLUMNS], key=lambda c: names[c])


def _activity(
    cohort: _Cohort,
    window_days: int,
    all_names: Sequence[str],
    coverage: np.ndarray,
    kept: Sequence[int],
    first_us: np.ndarray,
    counts: np.ndarray,
    events_read: int,
    events_counted: int,
    events_present: bool = True,
) -> EarlyActivity:
    """The ``EarlyActivity`` of ``cohort`` from what either path counted."""
    existing, in_cohort = cohort.existing, cohort.in_cohort
    n = int(in_cohort.sum())
    members = existing.loc[in_cohort]
    if "campaign" in members.columns:
        campaign = members["campaign"].astype(object).to_numpy()
        campaign = np.where(pd.isna(campaign) | (campaign == ""), NO_CAMPAIGN, campaign)
    else:
        campaign = np.full(n, NO_CAMPAIGN, dtype=object)
    conversion_hours = np.where(
        cohort.converted[in_cohort], cohort.conversion_rel[in_cohort] / US_PER_HOUR, np.nan
    )
    return EarlyActivity(
        as_of=cohort.as_of,
        window_days=int(window_days),
        user_ids=members["user_id"].astype(str).to_numpy(dtype=object),
        campaign=campaign.astype(str).astype(object),
        converted=cohort.converted[in_cohort],
        conversion_hours=conversion_hours,
        names=tuple(all_names[c] for c in kept),
        first_hours=np.where(first_us == _NEVER, np.inf, first_us / US_PER_HOUR),
        counts=counts.astype(np.int32, copy=False),
        users_existing=int(len(existing)),
        users_too_young=int(len(existing) - n),
        events_read=int(events_read),
        events_counted=int(events_counted),
        outside_journey_events=tuple(
            all_names[c] for c in range(len(all_names)) if coverage[c] == 0
        ),
        rare_events=tuple(
            all_names[c] for c in range(len(all_names)) if coverage[c] > 0 and c not in kept
        ),
        all_event_names=tuple(all_names),
        events_present=events_present,
    )


def _in_memory(
    cohort: _Cohort,
    events: pd.DataFrame,
    window_days: int,
    min_users: int,
    required_names: Sequence[str],
) -> EarlyActivity:
    """The numpy path (events in this process)."""
    n = len(cohort.table)
    if not len(events):
        empty = np.zeros((n, 0), dtype=np.int64)
        return _activity(cohort, window_days, [], np.zeros(0), [], empty, empty, 0, 0, False)
    counted = _counted_events(events, cohort.table, cohort.as_of)
    all_names = counted.names
    n_names = len(all_names)
    user, code, rel = counted.user, counted.code, counted.rel
    coverage = _distinct_users_per_name(user, code, n, n_names) if n_names else np.zeros(0)
    kept = _described_names(all_names, coverage, min_users, required_names, cohort.as_of)
    column_of = np.full(n_names + 1, -1, dtype=np.int32)
    column_of[kept] = np.arange(len(kept), dtype=np.int32)
    first_us, counts = _first_and_counts(user, column_of[code], rel, n, len(kept))
    return _activity(
        cohort, window_days, all_names, coverage, kept, first_us, counts,
        counted.events_total, rel.size,
    )  # fmt: skip


def _on_engine(
    cohort: _Cohort,
    ref: EngineRef,
    window_days: int,
    min_users: int,
    required_names: Sequence[str],
) -> EarlyActivity:
    """The engine path: the events are counted where they live (``engines.activity``), only
    the name summary and the per-user columns come back."""
    from insightos_utils.engines.activity import activity_counts_on

    chosen: list[int] = []

    def choose(names: pd.DataFrame) -> list[str]:
        coverage = names["users"].to_numpy(dtype=np.int64)
        all_names = [str(name) for name in names.index]
        chosen[:] = _described_names(all_names, coverage, min_users, required_names, cohort.as_of)
        return [all_names[c] for c in chosen]

    found = activity_counts_on(ref, cohort.as_of, window_days, choose)
    n, k = len(cohort.table), len(found.columns)
    if not found.events_present:
        empty = np.zeros((n, 0), dtype=np.int64)
        return _activity(cohort, window_days, [], np.zeros(0), [], empty, empty, 0, 0, False)
    # the engine's numbers for its cohort users -> rows here (-1: a user not in this table)
    row_of_key = pd.Index(cohort.table["user_id"]).get_indexer(found.user_ids)
    rows = row_of_key[found.user_key]
    known = rows >= 0
    first_us = np.full((n, k), _NEVER, dtype=np.int64)
    counts = np.zeros((n, k), dtype=np.int64)
    first_us[rows[known], found.column[known]] = found.first_us[known]
    counts[rows[known], found.column[known]] = found.counts[known]
    names = found.names
    activity = _activity(
        cohort, window_days, [str(name) for name in names.index],
        names["users"].to_numpy(dtype=np.int64), chosen, first_us, counts,
        int(names["events"].sum()), int(names["counted"].sum()),
    )  # fmt: skip
    where = {"source": "in the source database", "duckdb": "by DuckDB", "spark": "by Spark"}
    activity.notes.append(
        f"The {activity.events_read:,} events were counted {where.get(ref.engine, ref.engine)} "
        "where they are stored ([data] engine); only per-user counts came into this notebook."
    )
    return activity


def early_activity(
    users: pd.DataFrame,
    events: pd.DataFrame,
    as_of: pd.Timestamp,
    window_days: int,
    min_users: int,
    required_names: Sequence[str] = (),
) -> EarlyActivity:
    """The cohort at ``as_of`` and its early activity (see the module docstring).

    ``required_names`` always get a column (the funnel steps a user listed), however rare.
    Where the processed tables name an engine (``engines.pipeline.engine_of``: DuckDB, the
    source database, Spark), the events are counted there and their rows never come into this
    process; otherwise (``memory``) from the ``events`` frame, by numpy.
    """
    from insightos_utils.engines.pipeline import engine_of

    _require(users, "users", ("user_id", "created_at", "status", "converted_at"))
    if int(window_days) < 1:
        raise InputError(f"feature_window_days must be at least 1 day, got {window_days}")
    as_of = pd.Timestamp(as_of)
    if as_of.tzinfo is not None:
        as_of = as_of.tz_convert("UTC").tz_localize(None)
    cohort = _cohort(users, as_of, window_days)
    if (ref := engine_of(users, events)) is not None:
        return _on_engine(cohort, ref, window_days, min_users, required_names)
    _require(events, "events", ("user_id", "event_name", "occurred_at"))
    return _in_memory(cohort, events, window_days, min_users, required_names)
