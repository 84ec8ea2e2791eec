"""The corpus of company shapes: each shape is made as its description says (these tests check
the generator; the pipeline's behaviour on each shape is checked in tests/test_corpus.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from insightos_utils.cli import main
from insightos_utils.errors import InputError
from insightos_utils.ingest.fastpath import parse_timestamps
from insightos_utils.synth import DEFAULT_AS_OF, SHAPES, shape_company, write_company

AS_OF = pd.Timestamp(DEFAULT_AS_OF).tz_convert(None)
N = 3_000


def company(shape: str, n_users: int = N) -> dict[str, pd.DataFrame]:
    return shape_company(shape, n_users=n_users, seed=5).tables


def campaigns(users: pd.DataFrame) -> pd.Series:
    def campaign(text: object) -> str:
        if not isinstance(text, str) or not text:
            return "(none)"
        return json.loads(text).get("utm_campaign", "(none)")

    return users["marketing"].map(campaign)


def test_default_shape_is_the_profile_as_it_is() -> None:
    from insightos_utils.synth import generate_company

    default = company("default")
    plain = generate_company(n_users=N, seed=5)
    for name, table in plain.items():
        pd.testing.assert_frame_equal(default[name], table)


def test_no_events_has_an_empty_events_table_with_the_contract_columns(tmp_path: Path) -> None:
    written = write_company(tmp_path, n_users=500, seed=1, shape="no_events", show_progress=False)
    events = pd.read_csv(written["events"])
    assert events.empty
    assert list(events.columns) == [
        "event_id",
        "user_id",
        "event_name",
        "occurred_at",
        "properties",
    ]
    assert len(pd.read_csv(written["users"])) == 500


@pytest.mark.parametrize(
    ("shape", "missing"),
    [("no_transactions", "transactions"), ("no_campaign_spend", "campaign_spend")],
)
def test_dropped_tables_are_not_written_and_stale_files_go(
    tmp_path: Path, shape: str, missing: str
) -> None:
    write_company(tmp_path, n_users=300, seed=1, show_progress=False)
    assert (tmp_path / f"{missing}.csv").exists()
    written = write_company(tmp_path, n_users=300, seed=1, shape=shape, show_progress=False)
    assert missing not in written and not (tmp_path / f"{missing}.csv").exists()


def test_one_campaign_and_many_campaigns() -> None:
    one = company("one_campaign")
    assert set(campaigns(one["users"])) - {"(none)"} == {"google_gestao_agil"}
    assert list(one["campaign_spend"]["campaign"]) == ["google_gestao_agil"]
    many = company("many_campaigns", n_users=20_000)
    used = set(campaigns(many["users"])) - {"(none)"}
    assert len(many["campaign_spend"]) == 500 and len(used) > 300
    counts = campaigns(many["users"]).value_counts()
    assert counts.drop("(none)").min() <= 5  # a long tail of tiny campaigns


def test_conversion_timing_shapes() -> None:
    none_recent = company("no_recent_conversions")["users"]
    converted_at = none_recent["converted_at"].dropna()
    assert len(converted_at) > 100 and (converted_at < AS_OF - pd.Timedelta(days=60)).all()
    only_recent = company("recent_conversions_only")["users"]
    converted_at = only_recent["converted_at"].dropna()
    assert len(converted_at) > 50 and (converted_at >= AS_OF - pd.Timedelta(days=121)).all()


@pytest.mark.parametrize(
    ("shape", "share"), [("conversion_1pct", 0.01), ("conversion_50pct", 0.5), ("default", 0.101)]
)
def test_conversion_shares(shape: str, share: float) -> None:
    users = company(shape, n_users=10_000)["users"]
    assert (users["status"] == "converted").mean() == pytest.approx(share, abs=0.005)


def test_tiny_has_200_users_whatever_is_asked() -> None:
    assert len(company("tiny", n_users=9_999)["users"]) == 200


def _intervals_days(transactions: pd.DataFrame) -> pd.Series:
    ordered = transactions.sort_values(["user_id", "occurred_at"])
    gaps = ordered.groupby("user_id")["occurred_at"].diff().dropna()
    return gaps.dt.total_seconds() / 86_400


def test_subscription_pays_monthly_at_a_plan_price_and_nobody_stops() -> None:
    tables = company("subscription")
    transactions = tables["transactions"]
    gaps = _intervals_days(transactions)
    assert gaps.between(28.4, 32.5).all()
    per_customer = transactions.groupby("user_id")["amount"]
    assert (per_customer.std().fillna(0) / per_customer.mean() < 0.03).all()  # similar amounts
    plans = np.array([29.0, 49.0, 99.0])
    assert (np.abs(transactions["amount"].to_numpy()[:, None] / plans - 1).min(axis=1) < 0.03).all()
    last = transactions.groupby("user_id")["occurred_at"].max()
    assert (last > AS_OF - pd.Timedelta(days=33)).all()  # nobody stopped paying


def test_single_purchase_and_heavy_tail() -> None:
    single = company("single_purchase")
    assert single["transactions"]["user_id"].is_unique
    assert set(single["transactions"]["user_id"]) == set(
        single["users"].query("status == 'converted'")["user_id"]
    )
    heavy = company("heavy_tail")["transactions"]["amount"]
    assert heavy.max() / heavy.median() > 300
    assert (heavy > 100 * heavy.median()).mean() < 0.01  # a few orders, not many


def test_mixed_offsets_write_the_same_instants_in_several_offsets(tmp_path: Path) -> None:
    write_company(tmp_path / "utc", n_users=800, seed=2, show_progress=False)
    write_company(
        tmp_path / "mixed", n_users=800, seed=2, shape="mixed_offsets", show_progress=False
    )
    for table, column in (
        ("users", "created_at"),
        ("events", "occurred_at"),
        ("transactions", "occurred_at"),
    ):
        utc = pd.read_csv(tmp_path / "utc" / f"{table}.csv", dtype=str)[column]
        mixed = pd.read_csv(tmp_path / "mixed" / f"{table}.csv", dtype=str)[column]
        assert mixed.str[-6:].nunique() == 5, "five different UTC offsets"
        pd.testing.assert_series_equal(parse_timestamps(mixed), parse_timestamps(utc))


def test_accented_campaign_names_round_trip_as_utf8(tmp_path: Path) -> None:
    written = write_company(
        tmp_path, n_users=800, seed=2, shape="accented_campaigns", show_progress=False
    )
    users = pd.read_csv(written["users"], encoding="utf-8", keep_default_na=False)
    names = set(campaigns(users)) - {"(none)"}
    assert "google_gestão_ágil" in names and all(not n.isascii() for n in names)
    assert set(pd.read_csv(written["campaign_spend"])["campaign"]) <= names


def test_crm_leads_have_attributes_a_leak_and_no_events_or_payments() -> None:
    tables = company("crm_leads", n_users=6_000)
    users = tables["users"]
    assert tables["events"].empty and "transactions" not in tables
    for column in (
        "company_size",
        "employees",
        "landing_page",
        "industry",
        "country",
        "sales_owner",
        "lead_quality",
    ):
        assert column in users.columns
    open_leads = users["status"].isin(["lead", "trial"])
    assert (users.loc[open_leads, "lead_quality"] == "").all()  # filled in only after the outcome
    assert (users.loc[users["status"] == "converted", "lead_quality"] == "hot").mean() > 0.8
    assert users["employees"].isna().mean() == pytest.approx(0.05, abs=0.02)
    paid = users["marketing"].dropna()
    assert paid.str.contains("utm_content").any()
    assert all(isinstance(json.loads(text), dict) for text in paid)
    converted_at = users["converted_at"].dropna()
    assert (converted_at >= AS_OF - pd.Timedelta(days=121)).all()
    # company size carries real signal: bigger companies convert more often
    rates = users.assign(won=users["status"] == "converted").groupby("company_size")["won"].mean()
    assert rates["1000+"] > rates["1-10"]


def test_unknown_shape_is_an_input_error() -> None:
    with pytest.raises(InputError, match="unknown synth shape 'nope'"):
        shape_company("nope")


def test_cli_lists_and_writes_shapes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["synth", "--list-shapes"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in SHAPES)
    assert main(["synth", "--out", str(tmp_path), "--users", "300", "--shape", "no_events"]) == 0
    assert pd.read_csv(tmp_path / "events.csv").empty
    assert main(["synth", "--shape", "tiny"]) == 2  # no --out
