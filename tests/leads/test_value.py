"""Expected value per lead: the campaign join, the fallback, intervals, both rankings, ties,
a skipped LTV stage, and the in-place rewrite of scored_leads.csv."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from insightos_utils.leads.value import (
    add_expected_value,
    calling_order,
    campaigns_from_source,
    rewrite_scored_leads,
    skipped_ltv_reason,
)


def new_customer_value() -> pd.DataFrame:
    """(all) worth 100; google its own fit at 300; tiny borrows the overall value."""
    return pd.DataFrame(
        {
            "campaign": ["(all)", "google", "tiny"],
            "customers": [500, 120, 4],
            "value": [100.0, 300.0, 100.0],
            "value_low": [80.0, 240.0, 80.0],
            "value_high": [130.0, 390.0, 130.0],
            "fallback": [False, False, True],
            "basis": [
                "overall fit, every customer",
                "campaign's own fit",
                "overall value: 4 customer(s), fewer than min_campaign_customers = 30",
            ],
            "interval": "first purchase (bootstrap) and model parameters",
        }
    )


def scored_leads() -> pd.DataFrame:
    """Four leads in scoring's order (score, then user id), as scored_leads.csv holds them."""
    return pd.DataFrame(
        {
            "user_id": ["u4", "u1", "u2", "u3"],
            "score": [0.9, 0.5, 0.5, 0.2],
            "grade": ["A", "B", "B", "D"],
            "rank": [1, 2, 3, 4],
            "top_reasons": "opened the app",
        }
    )


CAMPAIGNS = pd.Series({"u1": "google", "u2": "tiny", "u3": "google", "u4": "newcomer"})


def test_value_is_score_times_the_campaigns_value_with_its_interval() -> None:
    valued = add_expected_value(
        scored_leads(), new_customer_value(), rank_by="value", campaigns=CAMPAIGNS
    )
    table = valued.table.set_index("user_id")
    assert table.loc["u1", "expected_value"] == pytest.approx(0.5 * 300)
    assert table.loc["u1", "expected_value_low"] == pytest.approx(0.5 * 240)
    assert table.loc["u1", "expected_value_high"] == pytest.approx(0.5 * 390)
    assert (table["expected_value_low"] <= table["expected_value"]).all()
    assert (table["expected_value"] <= table["expected_value_high"]).all()
    assert table.loc["u1", "value_basis"] == "campaign's own fit (120 customers)"
    assert table.loc["u1", "campaign"] == "google"


def test_small_and_unknown_campaigns_fall_back_to_the_overall_value_and_say_so() -> None:
    valued = add_expected_value(
        scored_leads(), new_customer_value(), rank_by="value", campaigns=CAMPAIGNS
    )
    table = valued.table.set_index("user_id")
    assert table.loc["u2", "expected_value"] == pytest.approx(0.5 * 100)  # tiny: 4 customers
    assert "fewer than min_campaign_customers" in table.loc["u2", "value_basis"]
    assert table.loc["u4", "expected_value"] == pytest.approx(0.9 * 100)  # no customer yet
    assert table.loc["u4", "value_basis"].startswith("overall value: no customer from")
    assert valued.ranking.leads_on_own_campaign == 2 and valued.ranking.leads_on_overall == 2
    unknown = add_expected_value(scored_leads(), new_customer_value(), rank_by="value")
    assert unknown.table["campaign"].isna().all()  # not known: the overall value, not (none)'s
    assert set(unknown.table["value_basis"]) == {"overall value: the lead's campaign is not known"}
    assert unknown.table["expected_value"].tolist() == pytest.approx([90, 50, 50, 20])


def test_rank_by_value_or_probability_decides_rank() -> None:
    by_value = add_expected_value(
        scored_leads(), new_customer_value(), rank_by="value", campaigns=CAMPAIGNS
    )
    # u1 150, u4 90, u3 60, u2 50: the google leads move up past likelier leads
    assert by_value.table["user_id"].tolist() == ["u1", "u4", "u3", "u2"]
    assert by_value.table["rank"].tolist() == [1, 2, 3, 4]
    assert by_value.ranking.rank_by == "value" and by_value.ranking.reason is None
    by_probability = add_expected_value(
        scored_leads(), new_customer_value(), rank_by="probability", campaigns=CAMPAIGNS
    )
    assert by_probability.table["user_id"].tolist() == ["u4", "u1", "u2", "u3"]
    assert by_probability.table["expected_value"].notna().all()  # computed all the same
    assert by_probability.ranking.reason == "[scoring] rank_by = probability"
    with pytest.raises(ValueError, match="rank_by"):
        add_expected_value(scored_leads(), None, rank_by="revenue")


def test_ties_break_by_user_id_whatever_the_input_order() -> None:
    leads = pd.DataFrame({"user_id": ["b", "c", "a", "d"], "score": [0.4, 0.4, 0.4, 0.7]})
    leads["expected_value"] = [10.0, 20.0, 10.0, 10.0]
    assert leads["user_id"].iloc[calling_order(leads, "probability")].tolist() == list("dabc")
    # equal value: the likelier lead first (d), then equal score too: by user id (a before b)
    assert leads["user_id"].iloc[calling_order(leads, "value")].tolist() == list("cdab")
    in_scoring_order = leads.iloc[calling_order(leads, "probability")].reset_index(drop=True)
    assert in_scoring_order["user_id"].iloc[calling_order(in_scoring_order, "value")].tolist() == (
        list("cdab")
    )  # the fast path (rows already in probability order) agrees with the full sort
    shuffled = leads.sample(frac=1.0, random_state=3).reset_index(drop=True)
    assert shuffled["user_id"].iloc[calling_order(shuffled, "value")].tolist() == list("cdab")


def test_the_fast_path_agrees_with_a_full_sort_on_many_ties() -> None:
    rng = np.random.default_rng(5)
    n = 2_000
    leads = pd.DataFrame(
        {"user_id": [f"u{i}" for i in rng.permutation(n)], "score": rng.integers(0, 5, n) / 4}
    )
    leads["expected_value"] = leads["score"] * rng.choice([10.0, 20.0], n)
    expected = leads.sort_values(
        ["expected_value", "score", "user_id"], ascending=[False, False, True]
    )["user_id"].tolist()
    assert leads["user_id"].iloc[calling_order(leads, "value")].tolist() == expected
    presorted = leads.sort_values(["score", "user_id"], ascending=[False, True])
    assert presorted["user_id"].iloc[calling_order(presorted, "value")].tolist() == expected


def test_a_skipped_ltv_stage_leaves_the_values_empty_and_ranks_by_probability() -> None:
    reason = skipped_ltv_reason(
        {"state": "skipped", "reason": "The company has no transactions."}, "this run"
    )
    assert reason == "the LTV stage was skipped in this run (The company has no transactions)"
    assert skipped_ltv_reason({"state": "ok"}, "this run") is None
    valued = add_expected_value(
        scored_leads(), new_customer_value(), rank_by="value", skipped_reason=reason
    )
    assert valued.table["expected_value"].isna().all()
    assert valued.table["expected_value_high"].isna().all()
    assert valued.table["user_id"].tolist() == ["u4", "u1", "u2", "u3"]
    assert valued.ranking.rank_by == "probability" and valued.ranking.requested == "value"
    assert "no transactions" in (valued.ranking.reason or "")
    assert valued.table["value_basis"].str.startswith("not computed: the LTV stage").all()
    header_only = new_customer_value().iloc[:0]
    assert add_expected_value(scored_leads(), header_only, rank_by="value").ranking.rank_by == (
        "probability"
    )


def test_rewrite_keeps_every_column_and_reads_campaigns_only_when_needed(tmp_path: Path) -> None:
    scored = scored_leads().assign(trend="new", user_id=["007", "001", "002", "003"])
    path = tmp_path / "scored_leads.csv"
    scored.to_csv(path, index=False)
    values = tmp_path / "new_customer_value.csv"
    asked: list[int] = []

    def campaigns() -> pd.Series:
        asked.append(1)
        return pd.Series({"001": "google", "003": "google"})

    skipped = rewrite_scored_leads(path, values, rank_by="value", campaigns=campaigns)
    assert skipped.rank_by == "probability" and "no new_customer_value.csv" in skipped.reason
    assert asked == []
    new_customer_value().to_csv(values, index=False)
    ranking = rewrite_scored_leads(path, values, rank_by="value", campaigns=campaigns)
    written = pd.read_csv(path, dtype={"user_id": str})
    assert ranking.rank_by == "value" and asked == [1]
    assert written["user_id"].tolist() == ["001", "007", "003", "002"]  # leading zeros kept
    assert written["rank"].tolist() == [1, 2, 3, 4] and (written["trend"] == "new").all()
    assert not list(tmp_path.glob(".*.tmp"))


def test_rewrite_uses_the_campaign_scoring_wrote_without_a_lookup(tmp_path: Path) -> None:
    campaigns = ["newcomer", "google", "NA", "google"]  # "NA" is a name here, not a gap
    scored = scored_leads().assign(campaign=campaigns, trend="new")
    path, values = tmp_path / "scored_leads.csv", tmp_path / "new_customer_value.csv"
    scored.to_csv(path, index=False)
    table = new_customer_value()
    table.loc[len(table)] = ["NA", 50, 200.0, 150.0, 250.0, False, "campaign's own fit", ""]
    table.to_csv(values, index=False)

    def no_lookup() -> pd.Series:
        raise AssertionError("the file's own campaign column should be used")

    ranking = rewrite_scored_leads(path, values, rank_by="value", campaigns=no_lookup)
    written = pd.read_csv(path, keep_default_na=False)
    assert ranking.rank_by == "value" and ranking.leads_on_own_campaign == 3
    assert written["user_id"].tolist() == ["u1", "u2", "u4", "u3"]
    assert written["expected_value"].tolist() == [150, 100, 90, 60]
    assert written["campaign"].tolist() == ["google", "NA", "newcomer", "google"]


def test_score_only_runs_read_campaigns_from_the_raw_users(tmp_path: Path) -> None:
    (tmp_path / "users.csv").write_text(
        "user_id,created_at,status,converted_at,marketing\n"
        'u1,2026-01-01,lead,,"{""utm_campaign"": ""google""}"\n'
        "u2,2026-01-02,lead,,\n"
    )
    campaigns = campaigns_from_source(tmp_path, None)
    assert campaigns.to_dict() == {"u1": "google", "u2": "(none)"}


def test_the_fast_csv_writer_reads_back_as_pandas_own_output(tmp_path: Path) -> None:
    from insightos_utils.leads.value import write_leads_csv

    table = pd.DataFrame(
        {
            "user_id": ["007", "u2", "u3"],
            "score": [1e-05, np.nan, 0.123456],
            "rank": [1, 2, 3],
            "top_reasons": ['with, a comma and "quotes"', "two\nlines", ""],
            "window_complete": [True, False, True],
            "value_basis": pd.Categorical(["overall value: x", "own", "own"]),
        }
    )
    write_leads_csv(table, tmp_path / "fast.csv")
    table.to_csv(tmp_path / "pandas.csv", index=False)
    fast = pd.read_csv(tmp_path / "fast.csv", dtype={"user_id": str})
    pandas_own = pd.read_csv(tmp_path / "pandas.csv", dtype={"user_id": str})
    pd.testing.assert_frame_equal(fast, pandas_own)
