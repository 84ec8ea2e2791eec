"""The engines inside the pipeline: which engine a run's processed tables name, and the feature
build, as-of and RFM summary computed there.

Ingest decides the engine (``[data] engine``, ``choice.choose_engine``) and records it in
``ingest_report.json`` (``"engine"``); ``ingest.read_processed`` hands it on as an
``EngineRef`` in the ``attrs`` of the tables it returns (pandas carries ``attrs`` through copies,
slices and ``assign``). The feature module and the RFM summary dispatch on it with one call
each (``engine_of``): with ``memory`` (or no reference) they run their numpy code; otherwise
the event columns, the event vocabulary, the default as-of and the RFM summary come from the
engine, and everything else (lead attributes, status at as-of, target, window_complete) from the
in-memory code on the per-user rows, so the table is the same, column for column.

Where the engine reads: ``duckdb`` and ``spark`` — the processed Parquet ingest wrote;
``source`` — the database itself (the clean views of ``validation`` when ingest rejected or
deduplicated rows), the events never leave it.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from insightos_utils.errors import InputError

if TYPE_CHECKING:  # Ibis loads only when an engine computes (not on the in-memory path)
    from insightos_utils.engines.aggregates import Vocabulary
    from insightos_utils.engines.sources import EngineTables
    from insightos_utils.leads.features import FeatureSpec

ATTRS_KEY = "insightos_engine"
PUSHDOWN = ("duckdb", "source", "spark")  # engines that compute outside this process


@dataclass(frozen=True)
class EngineRef:
    """Where a run's per-user tables are computed: ``engine`` over ``location`` (the processed
    folder, or the source database's URL without its password); ``processed_dir`` holds the
    ingest report (the database checks' outcome, for the clean views)."""

    engine: str
    location: str
    processed_dir: str

    def as_attrs(self) -> dict[str, str]:
        return asdict(self)


def engine_of(*frames: Any) -> EngineRef | None:
    """The engine reference carried by the first of ``frames`` that has one (None: memory)."""
    for frame in frames:
        found = getattr(frame, "attrs", {}).get(ATTRS_KEY) if frame is not None else None
        if found and found.get("engine") in PUSHDOWN:
            return EngineRef(**found)
    return None


def attach(ref: EngineRef | None, *frames: pd.DataFrame | None) -> None:
    """Mark ``frames`` (read_processed's tables) as computed on ``ref``'s engine."""
    if ref is None:
        return
    for frame in frames:
        if frame is not None:
            frame.attrs[ATTRS_KEY] = ref.as_attrs()


def ref_from_report(report: dict[str, Any] | None, processed_dir: str | Path) -> EngineRef | None:
    """The engine an ingest report recorded, when it computes outside this process, over the
    tables of ``processed_dir`` (where the report is now: a run's folder is renamed when it is
    published) or, for ``source``, the database the report names."""
    engine = (report or {}).get("engine") or {}
    if engine.get("name") not in PUSHDOWN:
        return None
    folder = str(Path(processed_dir).resolve())
    location = str(engine["location"]) if engine["name"] == "source" else folder
    return EngineRef(engine=str(engine["name"]), location=location, processed_dir=folder)


def plain(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` without the engine reference (a shallow copy): the in-memory code path."""
    copy = frame.copy(deep=False)
    copy.attrs = {}
    return copy


# One connection per ingest, reused (the clean tables of the database checks are built once);
# closed with the process.
_OPEN: dict[tuple[EngineRef, str], EngineTables] = {}


@contextlib.contextmanager
def open_ref(ref: EngineRef) -> Iterator[EngineTables]:
    """The tables ``ref`` names, opened on its engine. Kept open for the process (the as-of,
    the spec and the table share one connection, its clean tables and its cached pairs);
    reopened after another ingest (a new ``ingested_at``), closed when an error goes through."""
    report = _report(ref)
    key = (ref, str(report.get("ingested_at")))
    if key not in _OPEN:
        for stale in [k for k in _OPEN if k[0] == ref]:
            _OPEN.pop(stale).close()
        _OPEN[key] = _open(ref, report)
    tables = _OPEN[key]
    try:
        yield tables
    except BaseException:
        _OPEN.pop(key).close()
        raise
    for cached in tables.cache.values():  # temporary tables of one call: dropped now
        with contextlib.suppress(Exception):
            cached.release()
    tables.cache.clear()


def _report(ref: EngineRef) -> dict[str, Any]:
    from insightos_utils.ingest.report import REPORT_NAME

    path = Path(ref.processed_dir) / REPORT_NAME
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise InputError(f"{path}: the ingest report is needed by the engine ({error})") from None
    return document if isinstance(document, dict) else {}


def _open(ref: EngineRef, report: dict[str, Any]) -> EngineTables:
    from insightos_utils.engines.choice import EngineSettings
    from insightos_utils.engines.sources import open_source

    limit = (report.get("engine") or {}).get("memory_limit")  # [data] engine_memory_limit
    settings = EngineSettings(memory_limit=str(limit) if limit else None)

    if ref.engine == "source":
        from insightos_utils.engines.validation import DatabaseValidation
        from insightos_utils.ingest.sources import connection_url

        url = connection_url(ref.location, os.environ)
        return open_source(url, "source", settings, validation=DatabaseValidation(report=report))
    return open_source(ref.location, ref.engine, settings)


# --------------------------------------------------------------- the feature table


def spec_from_vocabulary(
    vocabulary: Vocabulary,
    min_event_users: int = 50,
    key_events: Sequence[str] | None = None,
    n_key_events: int = 2,
) -> FeatureSpec:
    """``features.fit_feature_spec``'s decisions (exclusion, own columns, slugs, key events)
    applied to an engine's ``Vocabulary``: the same spec as the in-memory fit."""
    from insightos_utils.leads import features

    names = vocabulary.names
    excluded = names.index[names["pre_conversion_events"] == 0]
    kept = names.drop(index=excluded)
    own = kept.index[kept["window_users"] >= int(min_event_users)]
    taken, slug_of = {"other"}, {}
    for name in sorted(map(str, own)):
        base = slug = features._slug(name)
        suffix = 2
        while slug in taken:
            slug, suffix = f"{base}_{suffix}", suffix + 1
        taken.add(slug)
        slug_of[name] = slug
    event_columns = {
        str(name): f"events_{slug_of[name]}" if name in slug_of else features.OTHER_COLUMN
        for name in kept.index
    }
    share = names["window_users"] / max(vocabulary.n_users, 1)
    if key_events is not None:
        unknown = [name for name in key_events if name not in slug_of]
        if unknown:
            raise InputError(
                f"key events {unknown} are not frequent pre-conversion event names in the data; "
                f"choose among {sorted(slug_of)}"
            )
        milestones = [name for name in key_events if name in slug_of]
    else:
        candidates = [name for name in slug_of if 0.1 <= share[name] <= 0.9]
        candidates.sort(key=lambda name: (abs(share[name] - 0.5), name))
        milestones = candidates[: int(n_key_events)]
    key_columns = {f"{features.KEY_EVENT_PREFIX}{slug_of[name]}": name for name in milestones}
    numeric = (
        tuple(f"events_{slug}" for slug in sorted(set(slug_of.values())))
        + (features.OTHER_COLUMN,)
        + features.BEHAVIOURAL_COLUMNS
        + tuple(key_columns)
    )
    return features.FeatureSpec(
        window_days=vocabulary.window_days,
        event_columns=dict(sorted(event_columns.items())),
        excluded_events=tuple(sorted(map(str, excluded))),
        categorical_columns=features.CATEGORICAL_COLUMNS,
        numeric_columns=numeric,
        key_events=key_columns,
        as_of=vocabulary.as_of.isoformat(),
        min_event_users=int(min_event_users),
    )


def latest_timestamp(ref: EngineRef) -> pd.Timestamp:
    """The default as-of (latest created_at, converted_at, occurred_at), on the engine."""
    from insightos_utils.engines.aggregates import latest_timestamp as engine_latest

    with open_ref(ref) as tables:
        latest = engine_latest(tables)
    if latest is None:
        raise InputError("as_of: the data has no timestamps (users.created_at is empty)")
    return latest


def fit_feature_spec(
    ref: EngineRef,
    as_of: pd.Timestamp,
    window_days: int,
    min_event_users: int,
    key_events: Sequence[str] | None,
    n_key_events: int,
) -> FeatureSpec:
    """``features.fit_feature_spec`` with the vocabulary counted on the engine."""
    from insightos_utils.engines.aggregates import fit_vocabulary

    with open_ref(ref) as tables:
        vocabulary = fit_vocabulary(tables, as_of, window_days)
    return spec_from_vocabulary(vocabulary, min_event_users, key_events, n_key_events)


def build_feature_table(
    ref: EngineRef, users: pd.DataFrame, spec: FeatureSpec, as_of: pd.Timestamp
) -> pd.DataFrame:
    """``features.build_feature_table`` with the event columns computed on the engine: the user
    columns from the in-memory code (on no events), the event columns from the engine."""
    from insightos_utils.engines.aggregates import event_aggregates
    from insightos_utils.leads import features

    empty = pd.DataFrame(
        {
            "user_id": pd.Series([], dtype="str"),
            "event_name": pd.Series([], dtype="str"),
            "occurred_at": pd.Series([], dtype="datetime64[us]"),
        }
    )
    table = features.build_feature_table(plain(users), empty, spec, as_of)
    with open_ref(ref) as tables:
        columns = event_aggregates(tables, spec, as_of)
    missing = table.index.difference(columns.index)
    if len(missing):
        raise InputError(
            f"{len(missing)} user(s) of the feature table (e.g. {list(missing[:3])}) are not in "
            f"the users table the {ref.engine} engine reads; run ingest again"
        )
    columns = columns.reindex(table.index)
    for name in columns.columns:
        table[name] = columns[name].to_numpy(dtype=table[name].dtype)
    return table


# --------------------------------------------------------------- the RFM summary


def rfm_summary(
    ref: EngineRef,
    transactions: pd.DataFrame,
    calibration_end: pd.Timestamp,
    observation_end: pd.Timestamp | None,
    time_unit: str,
) -> pd.DataFrame:
    """``ltv.rfm_summary`` computed on the engine (the source's transactions), its rows in the
    in-memory order (customers by first appearance in ``transactions``): the models' fits and
    bootstrap draws see the very same sequence."""
    from insightos_utils.engines.rfm import rfm

    with open_ref(ref) as tables:
        summary = rfm(tables, calibration_end, observation_end, time_unit)
    if "user_id" in transactions.columns and len(transactions):
        order = pd.Index(pd.unique(transactions["user_id"].to_numpy()))
        order = order[order.isin(summary.index)]
        if len(order) == len(summary):
            summary = summary.reindex(order)
            summary.index.name = "user_id"
    return summary


def event_weeks(ref: EngineRef) -> pd.Series:
    """Events per calendar week (Monday starts, UTC) counted on the engine: week start → count."""
    with open_ref(ref) as tables:
        events = tables.events.filter(tables.events.occurred_at.notnull())
        weeks = events.mutate(week=events.occurred_at.truncate("W"))
        frame = tables.execute(weeks.group_by("week").aggregate(events=weeks.count()))
    return pd.Series(
        frame["events"].to_numpy(dtype="int64"),
        index=pd.DatetimeIndex(pd.to_datetime(frame["week"]).astype("datetime64[us]")),
        name="events",
    ).sort_index()


FINGERPRINT_MODULUS = 2_147_483_629  # a prime below 2**31: the sums fit int64 on every engine


def events_fingerprint(ref: EngineRef) -> str:
    """The events a run computes on, summarised where they are (no row leaves the engine):
    engine name, row count, earliest and latest ``occurred_at``, and two order-independent sums
    of the engine's 64-bit hash of ``user_id|event_name|occurred_at`` (reduced modulo
    ``FINGERPRINT_MODULUS``; the second over the hash of the reversed order). The hash function
    is the engine's own, so another engine gives another fingerprint for the same rows."""
    with open_ref(ref) as tables:
        events = tables.events
        text = events.occurred_at.cast("string").fill_null("")
        forward = events.user_id.fill_null("") + "|" + events.event_name.fill_null("") + "|" + text
        backward = text + "|" + events.event_name.fill_null("") + "|" + events.user_id.fill_null("")
        summary = events.aggregate(
            rows=events.count(),
            first=events.occurred_at.min().cast("string"),
            last=events.occurred_at.max().cast("string"),
            forward=(forward.hash() % FINGERPRINT_MODULUS).sum(),
            backward=(backward.hash() % FINGERPRINT_MODULUS).sum(),
        )
        row = tables.execute(summary).iloc[0]
    values = [ref.engine] + [
        ""
        if pd.isna(row[name])
        else str(int(row[name]) if name in ("rows", "forward", "backward") else row[name])
        for name in ("rows", "first", "last", "forward", "backward")
    ]
    return ":".join(values)
