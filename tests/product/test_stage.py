"""The product stage end to end: outputs, skips, and the fast path against a plain pandas
reference on companies the code was not tuned to (the crm vocabulary, other shapes)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from insightos_utils.config import PipelineConfig, ProductConfig
from insightos_utils.ingest import ingest, read_processed
from insightos_utils.product.drivers import DRIVER_COLUMNS
from insightos_utils.product.friction import FRICTION_COLUMNS
from insightos_utils.product.funnel import FUNNEL_COLUMNS
from insightos_utils.product.stage import (
    CAMPAIGN_COLUMNS,
    DRIVERS_FILE,
    FUNNEL_FILE,
    OUTPUT_FILES,
    SUMMARY_FILE,
    analyse_product,
    run_product,
)
from insightos_utils.stages import StageSkipped, read_stages
from insightos_utils.synth import CRM, PROJECTS, write_company

from .conftest import AS_OF, SIGNUP, WINDOW_DAYS, Company, hours


def _company(tmp: Path, profile: str = "projects", shape: str | None = None, n: int = 3_000):
    write_company(tmp / "raw", n_users=n, seed=5, profile=profile, shape=shape, show_progress=False)
    ingest(tmp / "processed", raw_dir=tmp / "raw", show_progress=False)
    return tmp / "processed"


@pytest.fixture(scope="module")
def crm_processed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _company(tmp_path_factory.mktemp("crm"), profile="crm")


def _config(processed: Path, **overrides) -> PipelineConfig:
    return PipelineConfig().with_overrides(processed_dir=str(processed), **overrides)


def reference_first_times(users, events, as_of, window_days) -> tuple[pd.DataFrame, pd.Series]:
    """Plain pandas, one obvious step at a time: each mature signup's first time (hours after
    signup) per event name in the window before converting, and whether they converted."""
    window = pd.Timedelta(days=window_days)
    users = users[users["created_at"] <= as_of].copy()
    converted = (
        (users["status"] == "converted")
        & users["converted_at"].notna()
        & (users["converted_at"] <= as_of)
    )
    users["conv_at"] = users["converted_at"].where(converted)
    cohort = users[users["created_at"] + window <= as_of].set_index("user_id")
    merged = events[events["occurred_at"] <= as_of].merge(
        cohort[["created_at", "conv_at"]], left_on="user_id", right_index=True
    )
    # a name seen only at or after its user's conversion is a post-conversion event
    before = merged["conv_at"].isna() | (merged["occurred_at"] < merged["conv_at"])
    all_users = events[events["occurred_at"] <= as_of].merge(
        users[["user_id", "created_at", "conv_at"]], on="user_id"
    )
    pre = all_users["conv_at"].isna() | (all_users["occurred_at"] < all_users["conv_at"])
    post_only = set(all_users["event_name"]) - set(all_users.loc[pre, "event_name"])
    inside = (
        before
        & (merged["occurred_at"] >= merged["created_at"])
        & (merged["occurred_at"] < merged["created_at"] + window)
        & ~merged["event_name"].isin(post_only)
    )
    merged = merged[inside]
    first = (
        ((merged["occurred_at"] - merged["created_at"]).dt.total_seconds() / 3600)
        .groupby([merged["user_id"], merged["event_name"]])
        .min()
        .unstack()
    )
    first = first.reindex(cohort.index)
    return first, cohort["conv_at"].notna()


@pytest.mark.parametrize("source", ["crm", "default"])
def test_funnel_matches_a_plain_pandas_reference(
    source: str, crm_processed: Path, synthetic_processed: Path
) -> None:
    processed = crm_processed if source == "crm" else synthetic_processed
    data = read_processed(processed)
    as_of = max(data.users["created_at"].max(), data.events["occurred_at"].max())
    analysis = analyse_product(data.users, data.events, as_of, WINDOW_DAYS, ProductConfig())
    first, converted = reference_first_times(data.users, data.events, as_of, WINDOW_DAYS)
    table = analysis.funnel.table
    steps = list(table["event_name"].iloc[1:])
    assert len(steps) >= 3
    reached = pd.Series(True, index=first.index)
    latest = pd.Series(0.0, index=first.index)
    for k, name in enumerate(steps, start=1):
        reached &= first[name].notna()
        latest = np.maximum(latest, first[name])
        row = table.iloc[k]
        assert row["users_reached"] == reached.sum(), name
        assert row["conversion_if_reached"] == pytest.approx(converted[reached].mean())
        assert row["median_hours_from_signup"] == pytest.approx(latest[reached].median())
    assert table["users_reached"].iloc[0] == len(first)
    # drivers: the landmark group (not converted within the window), any name
    undecided = ~(analysis.activity.conversion_hours < WINDOW_DAYS * 24)
    drivers = analysis.drivers.set_index("behaviour")
    for row in analysis.drivers[analysis.drivers["min_times"] == 1].itertuples():
        did = first.loc[undecided, row.event_name].notna()
        assert drivers.loc[row.behaviour, "users_with"] == did.sum()
        assert drivers.loc[row.behaviour, "converted_with"] == converted[undecided][did].sum()


def test_crm_vocabulary_is_learned_not_assumed(crm_processed: Path, tmp_path: Path) -> None:
    outcome = run_product(tmp_path, _config(crm_processed))
    assert outcome.ok
    funnel = pd.read_csv(tmp_path / FUNNEL_FILE)
    assert list(funnel.columns) == list(FUNNEL_COLUMNS)
    events = read_processed(crm_processed).events
    steps = set(funnel["event_name"].iloc[1:])
    assert steps <= set(events["event_name"])
    assert not steps & (set(PROJECTS.event_names) - set(CRM.event_names))  # no default names
    assert not steps & set(outcome.result.activity.outside_journey_events)
    post_conversion = {"plan_activated", "payment_succeeded", "license_added"}
    assert post_conversion <= set(outcome.result.activity.outside_journey_events)
    assert (np.diff(funnel["users_reached"]) <= 0).all()
    assert ((funnel["share_ci_low"] <= funnel["share_of_signups"])
            & (funnel["share_of_signups"] <= funnel["share_ci_high"])).all()  # fmt: skip
    summary = json.loads((tmp_path / SUMMARY_FILE).read_text())
    assert summary["state"] == "ok"
    assert summary["top_friction"]["event_name"] in steps
    assert summary["top_friction"]["event_name"] in summary["top_friction_in_words"]
    assert [row["event_name"] for row in summary["funnel"]] == list(funnel["event_name"])
    assert read_stages(tmp_path)["product"] == {"state": "ok"}


def _assert_skipped_outputs(run_dir: Path, reason_part: str) -> dict:
    for name, columns in (
        (FUNNEL_FILE, FUNNEL_COLUMNS),
        (DRIVERS_FILE, DRIVER_COLUMNS),
        ("friction_points.csv", FRICTION_COLUMNS),
        ("funnel_by_campaign.csv", CAMPAIGN_COLUMNS),
    ):
        table = pd.read_csv(run_dir / name)
        assert list(table.columns) == list(columns) and table.empty, name
    summary = json.loads((run_dir / SUMMARY_FILE).read_text())
    assert summary["state"] == "skipped" and reason_part in summary["reason"] and summary["fix"]
    stage = read_stages(run_dir)["product"]
    assert stage["state"] == "skipped" and stage["reason"] == summary["reason"]
    return summary


def test_a_company_without_events_is_skipped_with_header_only_outputs(tmp_path: Path) -> None:
    processed = _company(tmp_path, shape="no_events", n=500)
    assert read_processed(processed).events.empty
    outcome = run_product(tmp_path / "run", _config(processed))
    assert outcome.skipped
    assert "CRM-only" in outcome.not_computed()
    summary = _assert_skipped_outputs(tmp_path / "run", "no rows")
    assert "/v1/events" in summary["fix"]


def _tiny(n_users: int, created: pd.Timestamp) -> tuple[pd.DataFrame, pd.DataFrame]:
    company = Company()
    for i in range(n_users):
        company.add_user(i, created)
        company.add_event(i, "open_app", created + hours(1))
    return company.frames()


def test_no_signup_old_enough_is_a_skip_with_the_fix() -> None:
    users, events = _tiny(50, AS_OF - pd.Timedelta(days=3))
    with pytest.raises(StageSkipped, match="first 14 days") as raised:
        analyse_product(users, events, AS_OF, WINDOW_DAYS, ProductConfig())
    assert "feature_window_days" in raised.value.fix


def test_too_few_users_per_event_is_a_skip_with_the_fix() -> None:
    users, events = _tiny(20, SIGNUP)
    with pytest.raises(StageSkipped, match="at least 30") as raised:
        analyse_product(users, events, AS_OF, WINDOW_DAYS, ProductConfig())
    assert "min_step_users" in raised.value.fix
    # the same company passes with a lower threshold
    analysis = analyse_product(users, events, AS_OF, WINDOW_DAYS, ProductConfig(min_step_users=5))
    assert list(analysis.funnel.table["users_reached"]) == [20, 20]


def test_run_writes_every_output_and_the_stage(known, tmp_path: Path) -> None:
    users, events = known
    processed = tmp_path / "processed"
    processed.mkdir()
    users.to_parquet(processed / "users.parquet")
    events.to_parquet(processed / "events.parquet")
    outcome = run_product(tmp_path / "run", _config(processed, as_of=str(AS_OF)))
    assert outcome.ok
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == sorted(
        [*OUTPUT_FILES, "stages.json"]
    )
    summary = json.loads((tmp_path / "run" / SUMMARY_FILE).read_text())
    assert summary["top_friction"]["event_name"] == "share_thing"
    assert summary["signups"] == 200 and summary["compared_signups"] == 199
    drivers = pd.read_csv(tmp_path / "run" / DRIVERS_FILE)
    assert list(drivers.columns) == list(DRIVER_COLUMNS)
    assert summary["caution"] in summary["drivers_in_words"]


@pytest.mark.parametrize("shape", ["conversion_1pct", "recent_conversions_only", "tiny"])
def test_other_company_shapes_give_a_consistent_funnel_or_an_honest_skip(
    shape: str, tmp_path: Path
) -> None:
    processed = _company(tmp_path, shape=shape, n=2_000)
    outcome = run_product(tmp_path / "run", _config(processed))
    funnel = pd.read_csv(tmp_path / "run" / FUNNEL_FILE)
    if outcome.skipped:
        assert funnel.empty and outcome.record.reason and outcome.record.fix
        return
    assert (np.diff(funnel["users_reached"]) <= 0).all()
    assert funnel["users_reached"].iloc[1:].min() >= ProductConfig().min_step_users
    assert funnel["conversion_if_reached"].between(0, 1).all()
    summary = json.loads((tmp_path / "run" / SUMMARY_FILE).read_text())
    assert summary["funnel_in_words"] and summary["top_friction_in_words"]
