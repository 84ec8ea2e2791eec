"""Subscriptions: the written rule recognises monthly payers, the sBG by campaign recovers a
simulated churn world, and the stage values a subscription company with it (synth --shape
subscription: nobody cancels, the no-churn limit)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from insightos_utils import cli
from insightos_utils.config import LtvConfig, PipelineConfig
from insightos_utils.ingest import read_processed
from insightos_utils.ltv.models.sbg import SbgParams, expected_payments_by_period
from insightos_utils.ltv.simulate import simulate_subscription, simulate_transactions
from insightos_utils.ltv.stage import run_ltv_stage
from insightos_utils.ltv.subscription import (
    customer_pattern,
    payment_days,
    recognise,
    renewal_rows,
    value_subscribers,
)

from .data import WORLD_BGNBD, WORLD_GAMMA_GAMMA

AS_OF = pd.Timestamp("2025-06-30")


def _pattern(table: pd.DataFrame) -> pd.DataFrame:
    return customer_pattern(payment_days(table))


def test_the_rule_tells_subscriptions_from_retail() -> None:
    monthly = _pattern(simulate_subscription(400, period_spread=0.02, seed=1))
    assert recognise(monthly, "auto").kind == "subscription"
    retail = _pattern(simulate_transactions(800, WORLD_BGNBD, WORLD_GAMMA_GAMMA, seed=1))
    found = recognise(retail, "auto")
    assert found.kind == "non-contractual"
    assert found.subscribers < 0.1 * found.eligible
    declared = recognise(retail, "subscription")
    assert declared.kind == "subscription" and "set by [ltv] business" in declared.reason


def test_sbg_by_campaign_recovers_a_churn_world() -> None:
    true = SbgParams(1.2, 3.0)
    table = simulate_subscription(
        4000, acquisition_days=400, period_spread=0.02, churn=(true.alpha, true.beta), seed=4
    )
    pattern = _pattern(table)
    campaigns = pd.Series("paid", index=pattern.index)
    settings = LtvConfig(bootstrap_samples=200)
    valued = value_subscribers(pattern, campaigns, AS_OF, settings)
    record = valued.campaigns["paid"]
    assert record["state"] == "ok" and record["basis"] == "campaign's own fit"
    for name in ("alpha", "beta"):
        error = record["standard_errors"][name]
        assert abs(record[name] - getattr(true, name)) < 3.5 * error, (name, record[name])
    customers = valued.customer_ltv.set_index("user_id")
    rows = renewal_rows(pattern, AS_OF)
    gone = rows.index[rows["dead"]].astype(str)
    assert (customers.loc[gone, "ltv"] == 0).all() and len(gone) > 100
    # a still-subscribed customer: price x margin x S(n-1+k)/S(n-1), discounted monthly
    stay = rows.index[~rows["dead"]][0]
    fitted = SbgParams(record["alpha"], record["beta"])
    chances = expected_payments_by_period(fitted, [rows.loc[stay, "t"]], 12)[0]
    discount = 1.01 ** -np.arange(1, 13)
    expected = pattern.loc[stay, "mean_amount"] * chances @ discount
    assert customers.loc[str(stay), "ltv"] == pytest.approx(expected, rel=1e-10)
    observed = [v for v in record["observed_survival"][:10] if v is not None]
    np.testing.assert_allclose(observed, record["fitted_survival"][: len(observed)], atol=0.03)


def test_stage_values_the_subscription_shape_with_sbg(tmp_path: Path) -> None:
    raw, processed, out = tmp_path / "raw", tmp_path / "processed", tmp_path / "out"
    assert cli.main(["synth", "--shape", "subscription", "--out", str(raw)]) == 0
    assert cli.main(["ingest", "--raw", str(raw), "--out", str(processed)]) == 0
    config = PipelineConfig().with_overrides(bootstrap_samples=100)
    outcome = run_ltv_stage(out, read_processed(processed), config)
    assert not outcome.skipped
    params = json.loads((out / "ltv_params.json").read_text())
    assert params["business"]["kind"] == "subscription"
    assert params["valued_with"] == "sbg"
    campaigns = params["subscription"]["campaigns"]
    assert campaigns["(all)"]["state"] == "no churn observed"
    assert "no-churn limit" in campaigns["(all)"]["basis"]
    customers = pd.read_csv(out / "customer_ltv.csv")
    assert customers["ltv"].mean() == pytest.approx(params["mean_ltv"])
    assert (customers["ltv"] > 0).all()
    campaign_table = pd.read_csv(out / "campaign_ltv.csv")
    assert len(campaign_table) > 1


def test_new_subscriber_values_carry_the_sbg_refit_beside_the_sampling_interval() -> None:
    """A churn world with four campaigns: each campaign's sBG is refitted on resamples of its
    subscribers; the interval holds the value and is at least as wide as the sampling-only one
    (the parameters' uncertainty added) in most campaigns."""
    table = simulate_subscription(
        1600, acquisition_days=400, period_spread=0.02, churn=(1.2, 3.0), seed=8
    )
    pattern = _pattern(table)
    campaigns = pd.Series(
        np.array(["a", "b", "c", "d"])[np.arange(len(pattern)) % 4], index=pattern.index
    )
    settings = LtvConfig(bootstrap_samples=300, refit_samples=60)
    values = value_subscribers(pattern, campaigns, AS_OF, settings).new_customer_value
    rows = values.set_index("campaign")
    assert set(rows["interval_method"]) == {"refit"}
    assert ((rows["value_low"] <= rows["value"]) & (rows["value"] <= rows["value_high"])).all()
    refit = rows["value_high"] - rows["value_low"]
    sampling = rows["value_high_sampling"] - rows["value_low_sampling"]
    assert (refit >= sampling).mean() >= 0.75
    assert rows["interval"].str.contains("sBG refitted").all()
    held = value_subscribers(
        pattern, campaigns, AS_OF, LtvConfig(bootstrap_samples=300, interval_method="sampling")
    ).new_customer_value
    assert set(held["interval_method"]) == {"sampling"}
