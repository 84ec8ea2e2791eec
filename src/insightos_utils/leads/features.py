"""The feature table: one row per user that exists at as-of, described by a fixed observation window.

Every user is described by the events in ``[created_at, created_at + window_days)`` that happen
strictly before their conversion (when it is known at as-of) and not after as-of. The same rule
builds the training rows and the open leads, so a lead scored today is described exactly as the
training users were. The event vocabulary is learned from the data (``fit_feature_spec``): names
seen only at or after their user's conversion are excluded (post-conversion events), rare names
are grouped into ``events_other``. Behavioural columns: ``distinct_event_types`` and
``days_active`` in the window, and ``hours_to_first_<key event>`` capped at the window's length
(the cap doubles as "never did it"); none is derived from converted_at or status, and there is
no total count (it would be the exact sum of the ``events_*`` columns: an infinite VIF).
Everything is vectorised over integer codes (no per-user Python), so a million users and fifty
million events fit in seconds.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from insightos_utils.config import FeatureConfig
from insightos_utils.contract import NO_CAMPAIGN, OPEN_STATUSES, STATUSES, parse_timestamp
from insightos_utils.errors import InputError
from insightos_utils.leads.attributes import (
    build_attribute_features,
    fit_attribute_plan,
)
from insightos_utils.leads.feature_spec import FeatureSpec as FeatureSpec
from insightos_utils.leads.feature_spec import read_feature_table as read_feature_table
from insightos_utils.leads.feature_spec import write_feature_table as write_feature_table
from insightos_utils.leads.labels import with_horizon_labels

TARGET = "target_converted"
OTHER_COLUMN = "events_other"
CATEGORICAL_COLUMNS: tuple[str, ...] = ("campaign", "source", "medium")
BEHAVIOURAL_COLUMNS: tuple[str, ...] = ("distinct_event_types", "days_active")
KEY_EVENT_PREFIX = "hours_to_first_"
META_COLUMNS: tuple[str, ...] = (
    "created_at",
    "status_at_as_of",
    "label_known",
    TARGET,
    "window_complete",
)

_NS_PER_HOUR = 3_600 * 10**9
_NS_PER_DAY = 24 * _NS_PER_HOUR
_NEVER = np.iinfo(np.int64).max  # "no conversion cut-off"
_BITMAP_LIMIT = 2**27  # distinct-pair bitmaps up to 128 MB, hashing beyond


# ---------------------------------------------------------------- as-of


def resolve_as_of(
    users: pd.DataFrame, events: pd.DataFrame, as_of: str | pd.Timestamp | None
) -> pd.Timestamp:
    """``as_of`` as a timezone-naive UTC timestamp; None or "" means the latest timestamp in the
    data (users' created_at and converted_at, events' occurred_at)."""
    if as_of is not None and not (isinstance(as_of, str) and not as_of.strip()):
        try:
            return parse_timestamp(as_of)
        except (ValueError, TypeError) as error:
            raise InputError(f"as_of: cannot parse {as_of!r} as an ISO 8601 timestamp") from error
    from insightos_utils.engines import pipeline  # the engine ingest chose, if not memory

    if (engine := pipeline.engine_of(users, events)) is not None:
        return pipeline.latest_timestamp(engine)
    candidates = [
        frame[column].max()
        for frame, column in (
            (users, "created_at"),
            (users, "converted_at"),
            (events, "occurred_at"),
        )
        if column in frame.columns and len(frame)
    ]
    candidates = [c for c in candidates if pd.notna(c)]
    if not candidates:
        raise InputError("as_of: the data has no timestamps (users.created_at is empty)")
    return parse_timestamp(max(candidates))


# ---------------------------------------------------------------- shared preparation


@dataclass
class _Prepared:
    """Users existing at as-of and their events up to as-of, as integer arrays."""

    users: pd.DataFrame  # existing users, original order
    created: np.ndarray  # int64 ns
    conversion_rel: np.ndarray  # int64 ns from signup to a conversion known at as-of, else _NEVER
    ev_user: np.ndarray  # int32 position into users
    ev_rel: np.ndarray  # int64 ns since the user's signup
    ev_name: np.ndarray  # integer code into names (-1: missing name)
    names: np.ndarray  # object array of raw event names
    as_of_ns: int


def _require(frame: pd.DataFrame, table: str, columns: tuple[str, ...]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputError(
            f"{table}: missing column(s) {missing}; load the tables with ingest.read_processed"
        )


def _ns(series: pd.Series, table: str) -> np.ndarray:
    """A datetime column as int64 nanoseconds (NaT → int64 min), whatever its resolution."""
    if not pd.api.types.is_datetime64_any_dtype(series.dtype):
        raise InputError(
            f"{table}.{series.name}: expected timestamps, got {series.dtype}; "
            "load the tables with ingest.read_processed"
        )
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        series = series.dt.tz_convert("UTC").dt.tz_localize(None)
    return series.to_numpy(dtype="datetime64[ns]").view(np.int64)


def _arrow_codes(
    values: pd.Series, max_distinct: int = 100_000
) -> tuple[np.ndarray, np.ndarray] | None:
    """Arrow's dictionary encoding of an Arrow-backed string column with few distinct values
    (about three times faster than ``pd.factorize`` on event names); None when not applicable."""
    if not hasattr(values.array, "__arrow_array__") or values.hasnans:
        return None
    chunked = pa.chunked_array(values.array.__arrow_array__())
    if not (pa.types.is_string(chunked.type) or pa.types.is_large_string(chunked.type)):
        return None
    encoded = pc.dictionary_encode(chunked)
    if encoded.num_chunks == 0:
        return None
    # chunks share one growing dictionary: each chunk's is a prefix of the last one's
    dictionary = encoded.chunk(encoded.num_chunks - 1).dictionary
    if len(dictionary) > max_distinct or not all(
        chunk.dictionary.equals(dictionary.slice(0, len(chunk.dictionary)))
        for chunk in encoded.chunks
    ):
        return None
    codes = np.concatenate(
        [chunk.indices.to_numpy(zero_copy_only=False) for chunk in encoded.chunks]
    )
    return codes, np.asarray(dictionary.to_pylist(), dtype=object)


def _codes(values: pd.Series, few_distinct: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes (-1 for missing) and the distinct values; free for categorical columns,
    Arrow's encoder for a string column with ``few_distinct`` values (event names)."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        return values.cat.codes.to_numpy(), np.asarray(values.cat.categories, dtype=object)
    arrow = _arrow_codes(values) if few_distinct else None
    if arrow is not None:
        return arrow
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    return codes, np.asarray(uniques, dtype=object)


def encode_events(events: pd.DataFrame) -> pd.DataFrame:
    """``events`` with user_id and event_name as categoricals: strings are hashed once here
    instead of in every ``fit_feature_spec`` / ``build_feature_table`` call. Events that stay
    with an engine (an empty placeholder carrying it) are returned as they are."""
    from insightos_utils.engines import pipeline

    if pipeline.engine_of(events) is not None:
        return events
    encoded = {}
    for column in ("user_id", "event_name"):
        if column in events.columns and not isinstance(events[column].dtype, pd.CategoricalDtype):
            codes, uniques = _codes(events[column], few_distinct=column == "event_name")
            encoded[column] = pd.Categorical.from_codes(codes, categories=pd.Index(uniques))
    return events.assign(**encoded) if encoded else events


def _prepare(
    users: pd.DataFrame, events: pd.DataFrame, as_of: pd.Timestamp, window_days: int
) -> _Prepared:
    _require(users, "users", ("user_id", "created_at", "status", "converted_at"))
    _require(events, "events", ("user_id", "event_name", "occurred_at"))
    if int(window_days) < 1:
        raise InputError(f"feature_window_days must be at least 1 day, got {window_days}")
    as_of_ns = int(pd.Timestamp(as_of).as_unit("ns").value)

    created_all = _ns(users["created_at"], "users")
    exists = created_all <= as_of_ns
    existing = users.loc[exists]
    user_index = pd.Index(existing["user_id"])
    if not user_index.is_unique:
        repeated = user_index[user_index.duplicated()].unique()[:5].tolist()
        raise InputError(f"users.user_id: repeated ids {repeated}; run ingest to deduplicate")
    unknown = sorted(set(existing["status"].unique()) - STATUSES)
    if unknown:
        raise InputError(
            f"users.status: unknown values {unknown}; the contract allows {sorted(STATUSES)}"
        )
    created = created_all[exists]
    converted = _ns(existing["converted_at"], "users")
    known = (
        (existing["status"] == "converted").to_numpy()
        & (converted != np.iinfo(np.int64).min)
        & (converted <= as_of_ns)
    )
    conversion_rel = np.where(known, converted - created, _NEVER)

    user_codes, user_values = _codes(events["user_id"])
    # position of each distinct id among existing users; the extra last entry serves code -1
    position = np.append(user_index.get_indexer(pd.Index(user_values)), -1).astype(np.int32)
    ev_user = position[user_codes]
    ev_time = _ns(events["occurred_at"], "events")
    name_codes, names = _codes(events["event_name"], few_distinct=True)
    keep = (ev_user >= 0) & (ev_time <= as_of_ns)
    if keep.all():  # the usual case (as-of = the latest timestamp): no copies needed
        ev_rel = ev_time - created[ev_user]
    else:
        kept = np.flatnonzero(keep)
        ev_user, name_codes = ev_user[kept], name_codes[kept]
        ev_rel = ev_time[kept]
        ev_rel -= created[ev_user]
    return _Prepared(
        users=existing,
        created=created,
        conversion_rel=conversion_rel,
        ev_user=ev_user,
        ev_rel=ev_rel,
        ev_name=name_codes,
        names=names,
        as_of_ns=as_of_ns,
    )


def _in_window(prep: _Prepared, window_days: int) -> np.ndarray:
    """The counting rule: in [signup, signup + window), before conversion, not after as-of."""
    limit = np.minimum(prep.conversion_rel, int(window_days) * _NS_PER_DAY)
    return (prep.ev_rel >= 0) & (prep.ev_rel < limit[prep.ev_user])


def _distinct_pairs(
    a: np.ndarray, b: np.ndarray, n_a: int, n_b: int
) -> tuple[np.ndarray, np.ndarray]:
    """The distinct (a, b) pairs among the given ones, for 0 <= a < n_a and 0 <= b < n_b."""
    keys = a.astype(np.int64) * n_b + b
    if n_a * n_b <= _BITMAP_LIMIT:
        seen = np.zeros(n_a * n_b, dtype=bool)
        seen[keys] = True
        unique = np.flatnonzero(seen)
    else:
        unique = pd.unique(keys)
    return unique // n_b, unique % n_b


def _slug(name: str) -> str:
    slug = re.sub(r"[^0-9a-z]+", "_", str(name).lower()).strip("_")
    return slug or "unnamed"


# ---------------------------------------------------------------- fit


def spec_from_config(
    users: pd.DataFrame,
    events: pd.DataFrame,
    as_of: str | pd.Timestamp | None,
    settings: FeatureConfig,
    horizon_days: int | None = None,
) -> FeatureSpec:
    """``fit_feature_spec`` with the ``[features]`` section's settings (window, vocabulary, key
    events, lead attributes) and the label's horizon: the one way 02_eda, the lead-scoring stage
    and the backtest fit a spec, so they cannot drift apart."""
    return fit_feature_spec(
        users,
        events,
        as_of,
        settings.feature_window_days,
        settings.min_event_users,
        key_events=list(settings.key_events) or None,
        horizon_days=horizon_days,
        attribute_max_levels=settings.attribute_max_levels,
        attribute_min_users=settings.attribute_min_users,
        include_attributes=settings.include_attributes,
        exclude_attributes=settings.exclude_attributes,
    )


def fit_feature_spec(
    users: pd.DataFrame,
    events: pd.DataFrame,
    as_of: str | pd.Timestamp | None,
    window_days: int = 14,
    min_event_users: int = 50,
    key_events: Sequence[str] | None = None,
    n_key_events: int = 2,
    *,
    horizon_days: int | None = None,
    attribute_max_levels: int = 20,
    attribute_min_users: int = 30,
    include_attributes: Sequence[str] = (),
    exclude_attributes: Sequence[str] = (),
) -> FeatureSpec:
    """Learn the event vocabulary from the data as it stood at ``as_of``.

    Excluded: names whose every occurrence (before as-of) is at or after the user's conversion.
    Grouped into ``events_other``: names that fewer than ``min_event_users`` users did inside
    their window. Key events (``hours_to_first_<slug>``): the names given, or else the
    ``n_key_events`` names whose share of users reaching them in the window is closest to one
    half (between 10% and 90%): what nearly everyone or nearly no one does says little through
    its timing. The target is never used, so the spec cannot leak the holdout's outcomes.

    Lead attributes (extra ``users`` columns, extra ``marketing`` keys) join as numeric and
    categorical columns by ``leads.attributes``' rule (their leakage audit is in ``eda``);
    ``horizon_days`` makes the target "converted within that many days of signup"
    (``leads.labels``).
    """
    as_of = resolve_as_of(users, events, as_of)
    from insightos_utils.engines import pipeline  # the engine ingest chose, if not memory

    if (engine := pipeline.engine_of(users, events)) is not None:
        vocabulary = pipeline.fit_feature_spec(
            engine, as_of, window_days, min_event_users, key_events, n_key_events
        )
        existing = users.loc[users["created_at"] <= pd.Timestamp(as_of)]
        plan = fit_attribute_plan(
            existing,
            attribute_max_levels,
            attribute_min_users,
            include_attributes,
            exclude_attributes,
        )  # the lead side is computed in memory on every engine
        return replace(
            vocabulary,
            numeric_columns=vocabulary.numeric_columns + plan.numeric_features,
            categorical_columns=vocabulary.categorical_columns + plan.categorical_features,
            horizon_days=int(horizon_days) if horizon_days is not None else None,
            attributes=plan.to_dict() if plan.specs else {},
        )
    prep = _prepare(users, events, as_of, window_days)
    n_names = len(prep.names)
    named = prep.ev_name >= 0
    seen = np.bincount(prep.ev_name[named], minlength=n_names) > 0
    before_conversion = named & (prep.ev_rel < prep.conversion_rel[prep.ev_user])
    # users converted after as-of are open at as-of: every event they have here is pre-conversion
    pre_count = np.bincount(prep.ev_name[before_conversion], minlength=n_names)
    excluded = seen & (pre_count == 0)

    counted = named & _in_window(prep, window_days)
    user_of_pair, name_of_pair = _distinct_pairs(
        prep.ev_user[counted], prep.ev_name[counted], len(prep.users), n_names
    )
    coverage = np.bincount(name_of_pair, minlength=n_names)
    own_column = seen & ~excluded & (coverage >= int(min_event_users))

    taken = {"other"}
    slug_of: dict[str, str] = {}
    for code in sorted(np.flatnonzero(own_column), key=lambda c: str(prep.names[c])):
        base = slug = _slug(prep.names[code])
        suffix = 2
        while slug in taken:
            slug, suffix = f"{base}_{suffix}", suffix + 1
        taken.add(slug)
        slug_of[str(prep.names[code])] = slug
    event_columns = {
        str(prep.names[code]): (
            f"events_{slug_of[str(prep.names[code])]}" if own_column[code] else OTHER_COLUMN
        )
        for code in np.flatnonzero(seen & ~excluded)
    }
    event_columns = dict(sorted(event_columns.items()))

    n_users = max(len(prep.users), 1)
    given = list(key_events) if key_events is not None else None
    if given is not None:
        unknown = [name for name in given if name not in slug_of]
        if unknown:
            raise InputError(
                f"key events {unknown} are not frequent pre-conversion event names in the data; "
                f"choose among {sorted(slug_of)}"
            )
        milestones = [code for code in np.flatnonzero(own_column) if prep.names[code] in given]
        milestones.sort(key=lambda c: given.index(str(prep.names[c])))
    else:
        share = coverage / n_users
        milestones = [c for c in np.flatnonzero(own_column) if 0.1 <= share[c] <= 0.9]
        milestones.sort(key=lambda c: (abs(share[c] - 0.5), str(prep.names[c])))
    key_columns = {
        f"{KEY_EVENT_PREFIX}{slug_of[str(prep.names[c])]}": str(prep.names[c])
        for c in (milestones if given is not None else milestones[: int(n_key_events)])
    }

    event_feature_columns = sorted(set(slug_of.values()))
    plan = fit_attribute_plan(
        prep.users,
        attribute_max_levels,
        attribute_min_users,
        include_attributes,
        exclude_attributes,
    )
    numeric = (
        tuple(f"events_{slug}" for slug in event_feature_columns)
        + (OTHER_COLUMN,)
        + BEHAVIOURAL_COLUMNS
        + tuple(key_columns)
        + plan.numeric_features
    )
    return FeatureSpec(
        window_days=int(window_days),
        event_columns=event_columns,
        excluded_events=tuple(sorted(str(prep.names[c]) for c in np.flatnonzero(excluded))),
        categorical_columns=CATEGORICAL_COLUMNS + plan.categorical_features,
        numeric_columns=numeric,
        key_events=key_columns,
        as_of=pd.Timestamp(as_of).isoformat(),
        min_event_users=int(min_event_users),
        horizon_days=int(horizon_days) if horizon_days is not None else None,
        attributes=plan.to_dict() if plan.specs else {},
    )


# ---------------------------------------------------------------- build


def _status_at_as_of(prep: _Prepared, window_days: int) -> tuple[np.ndarray, np.ndarray, Any]:
    """(status at as-of, label known, target) per existing user.

    converted by as-of → converted, known, 1; converted after as-of → open ("lead"); lost →
    known, 0, once the whole window has passed (else open); lead/trial → open. A converted user
    without converted_at (ingest rejects those) cannot be cut at conversion: status converted,
    label unknown, so it is neither trained on nor scored.
    """
    status = prep.users["status"].to_numpy(dtype=object)
    is_converted = status == "converted"
    converted_known = is_converted & (prep.conversion_rel != _NEVER)
    no_time = is_converted & (_ns(prep.users["converted_at"], "users") == np.iinfo(np.int64).min)
    old_enough = prep.created <= prep.as_of_ns - int(window_days) * _NS_PER_DAY
    lost_known = (status == "lost") & old_enough
    open_status = np.where(np.isin(status, list(OPEN_STATUSES)), status, "lead")
    status_at = np.where(
        converted_known | no_time, "converted", np.where(lost_known, "lost", open_status)
    )
    label_known = converted_known | lost_known
    target = pd.array(np.where(converted_known, 1, 0), dtype="Int8")
    target[~label_known] = pd.NA
    return status_at, label_known, target


def build_feature_table(
    users: pd.DataFrame,
    events: pd.DataFrame,
    spec: FeatureSpec,
    as_of: str | pd.Timestamp | None,
) -> pd.DataFrame:
    """One row per user existing at ``as_of`` (index ``user_id``): ``spec.numeric_columns``,
    ``spec.categorical_columns``, then created_at, status_at_as_of, label_known, the target
    (Int8, <NA> when the outcome is not known at as-of) and window_complete."""
    as_of = resolve_as_of(users, events, as_of)
    from insightos_utils.engines import pipeline  # the engine ingest chose, if not memory

    if (engine := pipeline.engine_of(users, events)) is not None:
        return pipeline.build_feature_table(engine, users, spec, as_of)  # lead side in memory
    plan = spec.attribute_plan
    attribute_columns = set(plan.features)
    _require(
        users, "users", tuple(c for c in spec.categorical_columns if c not in attribute_columns)
    )
    window_days = spec.window_days
    prep = _prepare(users, events, as_of, window_days)
    n_users = len(prep.users)

    event_columns = list(spec.event_feature_columns)
    column_index = {name: i for i, name in enumerate(event_columns)}
    other = column_index[OTHER_COLUMN]
    excluded = set(spec.excluded_events)
    column_of_name = np.array(
        [
            -1
            if str(name) in excluded
            else column_index[spec.event_columns.get(str(name), OTHER_COLUMN)]
            for name in prep.names
        ]
        + [-1],  # code -1 (missing name) indexes the last entry
        dtype=np.int32,
    )
    ev_column = column_of_name[prep.ev_name]
    counted = _in_window(prep, window_days) & (ev_column >= 0)
    ev_user = prep.ev_user[counted]
    ev_column = ev_column[counted]
    ev_rel = prep.ev_rel[counted]
    n_columns = len(event_columns)
    counts = (
        np.bincount(ev_user.astype(np.int64) * n_columns + ev_column, minlength=n_users * n_columns)
        .reshape(n_users, n_columns)
        .astype(np.int32)
    )

    columns: dict[str, Any] = {name: counts[:, i] for i, name in enumerate(event_columns)}
    columns["distinct_event_types"] = (counts > 0).sum(axis=1).astype(np.int32)
    active_user, _ = _distinct_pairs(ev_user, ev_rel // _NS_PER_DAY, n_users, window_days)
    columns["days_active"] = np.bincount(active_user, minlength=n_users).astype(np.int32)
    cap_hours = float(window_days * 24)
    for column, name in spec.key_events.items():
        key = column_index.get(spec.event_columns.get(name, ""), -1)
        first = np.full(n_users, np.inf)
        if key >= 0 and key != other:
            is_key = ev_column == key
            np.minimum.at(first, ev_user[is_key], ev_rel[is_key] / _NS_PER_HOUR)
        columns[column] = np.minimum(first, cap_hours)

    if attribute_columns:
        attributes = build_attribute_features(prep.users, plan)
        for column in plan.features:
            columns[column] = attributes[column].to_numpy() if column in attributes else np.nan
            if column in plan.categorical_features:
                columns[column] = pd.array(columns[column], dtype="str")
    for column in spec.categorical_columns:
        if column in attribute_columns:
            continue
        values = prep.users[column].astype(object).to_numpy()
        missing = pd.isna(values) | (values == "")
        columns[column] = pd.array(np.where(missing, NO_CAMPAIGN, values), dtype="str")
    columns["created_at"] = prep.users["created_at"].to_numpy()
    status_at, label_known, target = _status_at_as_of(prep, window_days)
    columns["status_at_as_of"] = pd.array(status_at, dtype="str")
    columns["label_known"] = label_known
    columns[TARGET] = target
    columns["window_complete"] = prep.created + window_days * _NS_PER_DAY <= prep.as_of_ns

    table = pd.DataFrame(columns, index=pd.Index(prep.users["user_id"].to_numpy(), name="user_id"))
    order = list(spec.numeric_columns) + list(spec.categorical_columns) + list(META_COLUMNS)
    table = table[order]
    if spec.horizon_days is not None:
        table = with_horizon_labels(table, prep.users, as_of, spec.horizon_days)
    return table


def training_rows(feature_table: pd.DataFrame) -> pd.DataFrame:
    """The users whose outcome is known at as-of (converted, or lost after a full window)."""
    return feature_table.loc[feature_table["label_known"].to_numpy(dtype=bool)]


def open_leads(feature_table: pd.DataFrame) -> pd.DataFrame:
    """The users open at as-of (lead or trial then), including those who converted after it."""
    return feature_table.loc[feature_table["status_at_as_of"].isin(list(OPEN_STATUSES))]
