"""The product stage's early activity counted on each engine equals the in-memory count.

The engine path gets the processed tables as the pipeline hands them over: the users in
memory, the events an empty placeholder carrying the engine reference (``EngineRef``), so a
single event row read into this process would show as a difference. The reference is the
numpy path on the full frames (``product.activity``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from insightos_utils.config import ProductConfig
from insightos_utils.engines import activity as engine_activity
from insightos_utils.engines.pipeline import EngineRef, attach, plain
from insightos_utils.engines.sources import open_source
from insightos_utils.errors import InputError
from insightos_utils.product import activity as product_activity
from insightos_utils.product.activity import EarlyActivity, early_activity
from insightos_utils.product.stage import analyse_product
from insightos_utils.stages import StageSkipped

from .conftest import AS_OF, ODD_NAMES, WINDOW_DAYS, edge_company, to_folder, to_postgres

CASES = [
    "duckdb",
    pytest.param("postgres", marks=pytest.mark.postgres),
    pytest.param("postgres_tz", marks=pytest.mark.postgres),
]
FIELDS = (
    "window_days", "names", "all_event_names", "outside_journey_events", "rare_events",
    "events_read", "events_counted", "users_existing", "users_too_young", "events_present",
)  # fmt: skip


def on_engine(engine: str, location: str, tables: dict[str, pd.DataFrame], folder: Path):
    """The users and an empty events placeholder, both carrying an ``EngineRef`` on
    ``location`` (as ``ingest.read_processed`` hands them over), with the ingest report the
    engine opens by."""
    folder.mkdir(parents=True, exist_ok=True)
    report = {
        "ingested_at": uuid.uuid4().hex,  # a fresh connection per test (open_ref's key)
        "engine": {"name": engine, "location": location},
        "tables": {"transactions": {"present": "transactions" in tables}},
    }
    (folder / "ingest_report.json").write_text(json.dumps(report))
    users, events = tables["users"].copy(), tables["events"].iloc[:0].copy()
    attach(EngineRef(engine, location, str(folder)), users, events)
    return users, events


@pytest.fixture
def put_on(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[..., Any]:
    """``put_on(case, tables)``: the tables where engine ``case`` reads them; the frames
    ``on_engine`` gives."""

    def put(case: str, tables: dict[str, pd.DataFrame]):
        folder = tmp_path / f"processed-{uuid.uuid4().hex[:6]}"
        if case.startswith("postgres"):
            url = to_postgres(tables, request.getfixturevalue("postgres_schema_url"))
            if case == "postgres_tz":  # a session zone far from UTC must not matter
                url = url.replace("options=", "options=-ctimezone%3DAsia/Tokyo%20")
            return on_engine("source", url, tables, folder)
        to_folder(tables, folder)
        return on_engine("duckdb", str(folder), tables, folder)

    return put


def assert_same_activity(got: EarlyActivity, expected: EarlyActivity) -> None:
    for name in FIELDS:
        assert getattr(got, name) == getattr(expected, name), name
    for name in ("user_ids", "campaign", "converted", "conversion_hours"):
        np.testing.assert_array_equal(getattr(got, name), getattr(expected, name), name)
    np.testing.assert_array_equal(got.first_hours, expected.first_hours)  # same division
    np.testing.assert_array_equal(got.counts, expected.counts)
    assert got.counts.dtype == expected.counts.dtype == np.int32


def events_up_to(events: pd.DataFrame, as_of: pd.Timestamp) -> int:
    return int((events["event_name"].notna() & (events["occurred_at"] <= as_of)).sum())


@pytest.mark.parametrize("case", CASES)
def test_early_activity_equals_memory_on_edge_cases(case: str, put_on, monkeypatch) -> None:
    tables = edge_company()
    users, events = put_on(case, tables)
    required = ("ünïcode ✓", "billing_paid")  # billing_paid: no cohort user did it in a window
    expected = early_activity(tables["users"], tables["events"], AS_OF, WINDOW_DAYS, 3, required)
    got = early_activity(users, events, AS_OF, WINDOW_DAYS, 3, required)
    assert_same_activity(got, expected)
    assert got.events_read == events_up_to(tables["events"], AS_OF)  # unknown users' too
    assert set(ODD_NAMES) | {"billing_paid"} <= set(got.names)
    assert {"ghost_only", "invoice_paid"} <= set(got.outside_journey_events)
    monkeypatch.setattr(product_activity, "MAX_EVENT_COLUMNS", 4)  # the cap: commonest names
    expected = early_activity(tables["users"], tables["events"], AS_OF, 3, 1)
    got = early_activity(users, events, AS_OF, 3, 1)  # a 3-day window: another cohort
    assert_same_activity(got, expected)
    assert len(got.names) == 4 and len(got.rare_events) > 4
    with pytest.raises(InputError, match="never occur"):
        early_activity(users, events, AS_OF, WINDOW_DAYS, 3, ("no_such_event",))


@pytest.mark.parametrize("case", CASES)
def test_a_company_without_events_is_the_honest_skip(case: str, put_on) -> None:
    tables = edge_company()
    tables["events"] = tables["events"].iloc[:0]
    users, events = put_on(case, tables)
    activity = early_activity(users, events, AS_OF, WINDOW_DAYS, 3, ("login",))
    assert not activity.events_present and activity.n_users > 0 and not activity.names
    with pytest.raises(StageSkipped, match="CRM-only"):
        analyse_product(users, events, AS_OF, WINDOW_DAYS, ProductConfig())


@pytest.fixture(scope="module")
def small_company(tmp_path_factory: pytest.TempPathFactory) -> dict[str, pd.DataFrame]:
    """A synthetic company of 2,000 users as ingest types it (the default profile)."""
    from insightos_utils.ingest import ingest, read_processed
    from insightos_utils.synth import write_company

    folder = tmp_path_factory.mktemp("product_company")
    write_company(folder / "raw", n_users=2_000, seed=5, show_progress=False)
    ingest(folder / "processed", raw_dir=folder / "raw", show_progress=False)
    data = read_processed(folder / "processed")
    return {"users": plain(data.users), "events": plain(data.events)}


def assert_same_outputs(got, expected) -> None:
    """funnel.csv, activation_drivers.csv, friction and campaign tables: equal (floats to
    rounding: the Wilson and lift intervals are the same arithmetic on the same counts)."""
    pairs = [
        (got.funnel.contract_table(), expected.funnel.contract_table()),
        (got.drivers, expected.drivers),
        (got.friction, expected.friction),
        (got.by_campaign, expected.by_campaign),
    ]
    for table, reference in pairs:
        pd.testing.assert_frame_equal(table, reference, rtol=1e-12)
    assert got.sections == expected.sections


def test_product_outputs_equal_memory_on_duckdb(small_company, put_on) -> None:
    users, events = put_on("duckdb", small_company)
    as_of = max(
        small_company["users"]["created_at"].max(), small_company["events"]["occurred_at"].max()
    )
    expected = analyse_product(
        **small_company, as_of=as_of, window_days=14, settings=ProductConfig()
    )
    got = analyse_product(users, events, as_of, 14, ProductConfig())
    assert len(expected.funnel.steps) >= 3 and len(expected.drivers) >= 3
    assert_same_outputs(got, expected)


@pytest.mark.slow
@pytest.mark.extended  # a local SparkSession: ~25 s to start; `make test-slow`
def test_spark_gives_the_memory_activity_and_outputs(
    small_company, spark, tmp_path: Path, monkeypatch
) -> None:
    """Spark reads the Parquet folder in the test session's SparkSession (the one the
    ``spark`` fixture owns, so the engine's own is not started and stopped here)."""
    for name, tables in (("edge", edge_company()), ("company", small_company)):
        folder = to_folder(tables, tmp_path / name)
        users, events = on_engine("spark", str(folder), tables, folder)
        source = open_source(folder, "spark", spark=spark)
        monkeypatch.setattr(
            engine_activity,
            "activity_counts_on",
            lambda ref, *args, source=source: engine_activity.activity_counts(source, *args),
        )
        as_of = AS_OF if name == "edge" else tables["events"]["occurred_at"].max()
        min_users = 3 if name == "edge" else 30
        expected = early_activity(tables["users"], tables["events"], as_of, 14, min_users)
        assert_same_activity(early_activity(users, events, as_of, 14, min_users), expected)
        if name == "company":
            reference = analyse_product(tables["users"], tables["events"], as_of, 14,
                                        ProductConfig())  # fmt: skip
            assert_same_outputs(analyse_product(users, events, as_of, 14, ProductConfig()),
                                reference)  # fmt: skip
        source.close()
