"""The LTV stage degrades honestly: skipped with the reason and the fix (files still written),
or computed without CAC where there is no spend; and new_customer_value.csv where it belongs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from insightos_utils.config import PipelineConfig
from insightos_utils.ingest import read_processed
from insightos_utils.ltv.economics import CAMPAIGN_LTV_COLUMNS
from insightos_utils.ltv.narrative import conclusion
from insightos_utils.ltv.new_customers import ALL_CAMPAIGNS, NEW_CUSTOMER_VALUE_COLUMNS
from insightos_utils.ltv.stage import run_ltv_stage
from insightos_utils.ltv.value import CUSTOMER_LTV_COLUMNS
from insightos_utils.stages import read_stages

from .data import write_processed_company

SMALL = PipelineConfig().with_overrides(bootstrap_samples=200)


@pytest.fixture(scope="module")
def company(tmp_path_factory: pytest.TempPathFactory) -> Path:
    processed = tmp_path_factory.mktemp("processed")
    write_processed_company(processed)
    return processed


def _assert_skipped_files(run_dir: Path) -> dict[str, object]:
    params = json.loads((run_dir / "ltv_params.json").read_text())
    assert params["state"] == "skipped" and params["reason"] and params["fix"]
    headers = {
        "customer_ltv.csv": CUSTOMER_LTV_COLUMNS,
        "campaign_ltv.csv": CAMPAIGN_LTV_COLUMNS,
        "new_customer_value.csv": NEW_CUSTOMER_VALUE_COLUMNS,
        "models/new_customer_value.csv": NEW_CUSTOMER_VALUE_COLUMNS,
    }
    for name, columns in headers.items():
        table = pd.read_csv(run_dir / name)
        assert list(table.columns) == columns and table.empty, name
    stage = read_stages(run_dir)["ltv"]
    assert stage["state"] == "skipped" and stage["reason"] == params["reason"]
    return params


def test_no_transactions_table_is_skipped_with_the_fix(company: Path, tmp_path: Path) -> None:
    data = read_processed(company)
    data.transactions = None
    outcome = run_ltv_stage(tmp_path, data, SMALL)
    assert outcome.skipped and outcome.result is None
    params = _assert_skipped_files(tmp_path)
    assert "no transactions table" in str(params["reason"])
    assert "transaction_id, user_id, occurred_at, amount" in str(params["fix"])
    assert "Not computed: ltv" in outcome.not_computed()


def test_too_few_repeat_buyers_is_skipped_with_the_counts(company: Path, tmp_path: Path) -> None:
    data = read_processed(company)
    assert data.transactions is not None
    # keep every customer's first purchase and the repeat purchases of only five customers
    ordered = data.transactions.sort_values("occurred_at")
    first = ordered.drop_duplicates("user_id")
    few = ordered[ordered["user_id"].isin(first["user_id"].iloc[:5])]
    data.transactions = pd.concat([first, few]).drop_duplicates("transaction_id")
    outcome = run_ltv_stage(tmp_path, data, SMALL)
    assert outcome.skipped
    params = _assert_skipped_files(tmp_path)
    assert "bought more than once" in str(params["reason"])
    assert "at least 20 repeat buyers" in str(params["reason"])
    assert "holdout_days" in str(params["fix"])


def test_holdout_longer_than_the_history_is_skipped(company: Path, tmp_path: Path) -> None:
    config = SMALL.with_overrides(holdout_days=5000)
    outcome = run_ltv_stage(tmp_path, read_processed(company), config)
    assert outcome.skipped and "before the first transaction" in (outcome.record.reason or "")
    _assert_skipped_files(tmp_path)


def test_no_campaign_spend_values_customers_without_cac(company: Path, tmp_path: Path) -> None:
    data = read_processed(company)
    data.campaign_spend = None
    outcome = run_ltv_stage(tmp_path, data, SMALL)
    assert outcome.ok and outcome.result is not None
    params = json.loads((tmp_path / "ltv_params.json").read_text())
    assert params["state"] == "ok" and params["economics"]["state"] == "not computed"
    assert "no campaign_spend table" in params["economics"]["reason"]
    assert "campaign_spend" in params["economics"]["fix"]
    campaigns = pd.read_csv(tmp_path / "campaign_ltv.csv")
    assert campaigns["cac"].isna().all() and campaigns["ltv_mean"].notna().all()
    assert "No campaign has recorded spend" in params["recommendation"]
    (missing,) = outcome.result.not_computed
    assert missing.markdown().startswith("**Not computed: CAC, LTV/CAC and payback.**")
    assert read_stages(tmp_path)["ltv"] == {"state": "ok"}


def test_new_customer_value_by_campaign(company: Path, tmp_path: Path) -> None:
    outcome = run_ltv_stage(tmp_path, read_processed(company), SMALL)
    assert outcome.ok and outcome.result is not None
    table = pd.read_csv(tmp_path / "new_customer_value.csv")
    copy = pd.read_csv(tmp_path / "models" / "new_customer_value.csv")
    pd.testing.assert_frame_equal(table, copy)
    assert list(table.columns) == NEW_CUSTOMER_VALUE_COLUMNS
    rows = table.set_index("campaign")
    customers = pd.read_csv(tmp_path / "customer_ltv.csv")
    assert rows.loc[ALL_CAMPAIGNS, "customers"] == len(customers)
    assert rows.drop(index=ALL_CAMPAIGNS)["customers"].sum() == len(customers)
    assert (table["value_low"] <= table["value"]).all() and (
        table["value"] <= table["value_high"]
    ).all()
    # google_gestao_agil customers buy more often (the constructed world): worth more when new
    assert rows.loc["google_gestao_agil", "value"] > rows.loc["meta_broad", "value"]
    assert not rows["fallback"].any()
    # a new customer's value includes the first purchase: above the mean first purchase
    first = outcome.result.analysis.summary["first_purchase_value"].mean()
    assert rows.loc[ALL_CAMPAIGNS, "value"] > first


def test_small_campaigns_borrow_the_overall_value(company: Path, tmp_path: Path) -> None:
    data = read_processed(company)
    users = data.users.copy()
    users.loc[users.index[:12], "campaign"] = "tiny_campaign"  # 12 customers, below 30
    data.users = users
    run_ltv_stage(tmp_path, data, SMALL)
    rows = pd.read_csv(tmp_path / "new_customer_value.csv").set_index("campaign")
    tiny, everyone = rows.loc["tiny_campaign"], rows.loc[ALL_CAMPAIGNS]
    assert bool(tiny["fallback"]) and tiny["customers"] == 12
    assert "fewer than min_campaign_customers = 30" in tiny["basis"]
    assert (tiny["value"], tiny["value_low"], tiny["value_high"]) == (
        everyone["value"],
        everyone["value_low"],
        everyone["value_high"],
    )
    assert np.isfinite(rows["value"]).all()


def test_subscription_company_runs_with_both_boundaries(tmp_path: Path) -> None:
    processed = tmp_path / "processed"
    write_processed_company(processed, with_spend=True, subscription=True)
    outcome = run_ltv_stage(tmp_path / "run", read_processed(processed), SMALL)
    assert outcome.ok and outcome.result is not None
    params = json.loads((tmp_path / "run" / "ltv_params.json").read_text())
    named = {(b["model"], b["parameter"]) for b in params["boundary"]}
    assert named == {("bgnbd", "a/(a+b)"), ("gamma_gamma", "q")}
    assert (
        params["convergence"]["bgnbd"]["converged"]
        and params["convergence"]["gamma_gamma"]["converged"]
    )
    result = outcome.result
    text = conclusion(result.analysis, result.ratio, result.recommendation)
    assert "No evidence of dropout" in text and "Homogeneous spend" in text
