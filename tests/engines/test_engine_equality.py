"""Every engine gives the in-memory path's event aggregates, vocabulary and RFM summary.

The reference is today's pandas code (``features.build_feature_table``, ``ltv.rfm_summary``)
on the same typed tables; the engines read them from Parquet (DuckDB, Spark) or from
PostgreSQL (``timestamp`` and ``timestamptz`` columns, the latter in a Tokyo session).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from insightos_utils import engines
from insightos_utils.engines.sources import EngineTables, open_source
from insightos_utils.leads import features
from insightos_utils.ltv.rfm import rfm_summary
from insightos_utils.ltv.transactions import calibration_end_for

from .conftest import (
    AS_OF,
    CALIBRATION_END,
    OBSERVATION_END,
    ODD_NAMES,
    WINDOW_DAYS,
    edge_company,
    to_folder,
    to_postgres,
)

ENGINE_CASES = [
    "duckdb",
    pytest.param("postgres", marks=pytest.mark.postgres),
    pytest.param("postgres_tz", marks=pytest.mark.postgres),
    # a local SparkSession: ~25 s to start, seconds per query; `make test-slow` runs these
    pytest.param("spark", marks=[pytest.mark.slow, pytest.mark.extended]),
]


@pytest.fixture
def open_on(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[..., EngineTables]:
    """``open_on(case, tables)``: the tables put where engine ``case`` reads them, opened."""
    opened: list[EngineTables] = []

    def open_case(case: str, tables: dict[str, pd.DataFrame]) -> EngineTables:
        if case.startswith("postgres"):
            url = request.getfixturevalue("postgres_schema_url")
            to_postgres(tables, url, timezone_aware=case == "postgres_tz")
            if case == "postgres_tz":  # a session zone far from UTC must not matter
                url = url.replace("options=", "options=-ctimezone%3DAsia/Tokyo%20")
            source = open_source(url, "source")
        else:
            folder = to_folder(tables, tmp_path / f"lake-{len(opened)}")
            spark = request.getfixturevalue("spark") if case == "spark" else None
            source = open_source(folder, case, spark=spark)
        opened.append(source)
        return source

    yield open_case
    for source in opened:
        source.close()


def memory_event_columns(
    tables: dict[str, pd.DataFrame], spec: features.FeatureSpec, as_of: pd.Timestamp
) -> pd.DataFrame:
    table = features.build_feature_table(tables["users"], tables["events"], spec, as_of)
    columns = [*spec.event_feature_columns, *features.BEHAVIOURAL_COLUMNS, *spec.key_events]
    return table[columns].sort_index()


def assert_same_aggregates(expected: pd.DataFrame, got: pd.DataFrame) -> None:
    assert list(got.columns) == list(expected.columns)
    pd.testing.assert_frame_equal(
        got.sort_index(), expected, check_index_type=False, rtol=0, atol=0
    )


@pytest.mark.parametrize("case", ENGINE_CASES)
def test_event_aggregates_equal_memory_on_edge_cases(case: str, open_on) -> None:
    tables = edge_company()
    source = open_on(case, tables)
    keyed = ["sign'up", "project_created"]
    for window_days, key_events in ((WINDOW_DAYS, None), (3, keyed), (90, None)):  # 90: no mask
        spec = features.fit_feature_spec(
            tables["users"], tables["events"], AS_OF, window_days, min_event_users=3,
            key_events=key_events,
        )  # fmt: skip
        assert spec.excluded_events == ("invoice_paid",)
        assert "events_other" in spec.event_feature_columns
        expected = memory_event_columns(tables, spec, AS_OF)
        got = engines.event_aggregates(source, spec, AS_OF)
        assert_same_aggregates(expected, got)
    # the boundaries themselves: u0003 has logins at signup and 1 us before the window's end
    assert got.loc["u0001":"u0001"].empty  # created after as-of: no row
    assert "ghost" not in got.index


@pytest.mark.slow
def test_spark_event_aggregates_equal_memory(open_on) -> None:
    """The default suite's one Spark case (the session starts in ~25 s): the event columns of
    the edge cases in the 14-day window; `make test-slow` runs every case on Spark."""
    tables = edge_company()
    source = open_on("spark", tables)
    spec = features.fit_feature_spec(
        tables["users"], tables["events"], AS_OF, WINDOW_DAYS, min_event_users=3
    )
    got = engines.event_aggregates(source, spec, AS_OF)
    assert_same_aggregates(memory_event_columns(tables, spec, AS_OF), got)
    assert got.loc["u0003", "days_active"] >= 1 and "ghost" not in got.index


def test_edge_counts_follow_the_window_rule(tmp_path: Path) -> None:
    """Not only equal to memory: the counts are the ones the rule says (hand-checked rows)."""
    tables = edge_company()
    events = tables["events"]
    events = events[~events["user_id"].isin(["u0003"])]
    users = tables["users"]
    created = users.set_index("user_id")["created_at"]
    rows = [
        ("u0003", pd.Timedelta(0)),
        ("u0003", pd.Timedelta(days=WINDOW_DAYS)),
        ("u0003", pd.Timedelta(days=WINDOW_DAYS) - pd.Timedelta(microseconds=1)),
        ("u0003", pd.Timedelta(microseconds=-1)),
    ]
    extra = pd.DataFrame(
        {
            "event_id": [f"x{i}" for i in range(len(rows))],
            "user_id": [u for u, _ in rows],
            "event_name": "login",
            "occurred_at": [created[u] + d for u, d in rows],
        }
    ).astype({"occurred_at": "datetime64[us]"})
    tables["events"] = pd.concat([events, extra], ignore_index=True)
    spec = features.fit_feature_spec(users, tables["events"], AS_OF, WINDOW_DAYS, min_event_users=3)
    got = engines.event_aggregates(
        to_folder(tables, tmp_path / "lake"), spec, AS_OF, engine="duckdb"
    )
    assert got.loc["u0003", "events_login"] == 2  # at signup and 1 us before the end
    assert got.loc["u0003", "days_active"] == 2  # day 0 and day 13
    assert got.loc["u0003", "distinct_event_types"] == 1


@pytest.mark.parametrize("case", ENGINE_CASES)
def test_empty_events_table(case: str, open_on) -> None:
    tables = edge_company()
    tables["events"] = tables["events"].iloc[:0]
    spec = features.fit_feature_spec(tables["users"], tables["events"], AS_OF, WINDOW_DAYS)
    source = open_on(case, tables)
    got = engines.event_aggregates(source, spec, AS_OF)
    assert_same_aggregates(memory_event_columns(tables, spec, AS_OF), got)
    assert (got["events_other"] == 0).all() and len(got) == 119
    vocabulary = engines.fit_vocabulary(source, AS_OF, WINDOW_DAYS)
    assert vocabulary.names.empty and vocabulary.n_users == 119


def reference_vocabulary(
    tables: dict[str, pd.DataFrame], as_of: pd.Timestamp, window_days: int
) -> pd.DataFrame:
    """A plain pandas reading of the rule (merge and group by; slow, obviously right)."""
    users = tables["users"]
    users = users[users["created_at"] <= as_of]
    known = (users["status"] == "converted") & (users["converted_at"] <= as_of)
    users = users.assign(conversion_at=users["converted_at"].where(known))
    events = tables["events"].dropna(subset=["event_name"])
    events = events[events["occurred_at"] <= as_of].merge(users, on="user_id")
    before = events["conversion_at"].isna() | (events["occurred_at"] < events["conversion_at"])
    window = (
        (events["occurred_at"] >= events["created_at"])
        & (events["occurred_at"] < events["created_at"] + pd.Timedelta(days=window_days))
        & before
    )
    names = pd.DataFrame(
        {
            "events": events.groupby("event_name").size(),
            "pre_conversion_events": before.groupby(events["event_name"]).sum(),
            "window_users": events[window].groupby("event_name")["user_id"].nunique(),
        }
    )
    return names.fillna(0).astype(np.int64).sort_index().rename_axis("event_name")


@pytest.mark.parametrize("case", ENGINE_CASES)
def test_vocabulary_equals_the_rule(case: str, open_on) -> None:
    tables = edge_company()
    source = open_on(case, tables)
    vocabulary = engines.fit_vocabulary(source, AS_OF, WINDOW_DAYS)
    expected = reference_vocabulary(tables, AS_OF, WINDOW_DAYS)
    pd.testing.assert_frame_equal(vocabulary.names, expected, check_index_type=False)
    assert vocabulary.n_users == 119
    assert set(ODD_NAMES) <= set(vocabulary.names.index)
    assert vocabulary.names.loc["billing_paid", "pre_conversion_events"] == 1  # u0000's
    assert "ghost_only" not in vocabulary.names.index


def memory_rfm(transactions: pd.DataFrame, observation_end: Any, unit: str) -> pd.DataFrame:
    return rfm_summary(transactions, CALIBRATION_END, observation_end, unit).sort_index()


@pytest.mark.parametrize("case", ENGINE_CASES)
def test_rfm_equals_memory(case: str, open_on) -> None:
    tables = edge_company()
    source = open_on(case, tables)
    for unit in ("D", "W", "M"):
        for observation_end in (None, OBSERVATION_END):
            expected = memory_rfm(tables["transactions"], observation_end, unit)
            got = engines.rfm(source, CALIBRATION_END, observation_end, unit)
            pd.testing.assert_frame_equal(got, expected, check_index_type=False, rtol=1e-12)
    got = engines.rfm(source, CALIBRATION_END, OBSERVATION_END, "D")
    assert got.loc["u0006", ["frequency", "recency", "T"]].tolist() == [0, 0.0, 0.0]
    assert got.loc["u0008", "frequency_holdout"] == 1
    assert "u0009" not in got.index


@pytest.mark.parametrize("case", ["duckdb", "postgres"])
def test_synthetic_company_equal_memory(
    case: str, synthetic_processed: Path, request: pytest.FixtureRequest
) -> None:
    """The default synthetic company (10,000 users): every column equal, and the same as-of."""
    from insightos_utils.ingest import read_processed

    data = read_processed(synthetic_processed)
    as_of = features.resolve_as_of(data.users, data.events, None)
    spec = features.fit_feature_spec(data.users, data.events, as_of)
    expected = memory_event_columns(vars(data), spec, as_of)
    calibration_end = calibration_end_for(as_of, 90)
    expected_rfm = rfm_summary(data.transactions, calibration_end, as_of, "W").sort_index()
    if case == "postgres":
        url = request.getfixturevalue("postgres_schema_url")
        tables = {"users": data.users, "events": data.events, "transactions": data.transactions}
        source = open_source(to_postgres(tables, url), "source")
    else:
        source = open_source(synthetic_processed, "duckdb")
    with source:
        assert_same_aggregates(expected, engines.event_aggregates(source, spec, as_of))
        got_rfm = engines.rfm(source, calibration_end, as_of, "W")
        pd.testing.assert_frame_equal(got_rfm, expected_rfm, check_index_type=False, rtol=1e-12)
        assert engines.latest_timestamp(source) == as_of
