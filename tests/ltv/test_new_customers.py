"""The value of a just-acquired customer, by hand: first purchase plus the discounted margin of
the repeat purchases a customer with no history is expected to make."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from insightos_utils.config import LtvConfig
from insightos_utils.ltv.analysis import fit_models
from insightos_utils.ltv.models import bgnbd
from insightos_utils.ltv.new_customers import ALL_CAMPAIGNS, new_customer_value
from insightos_utils.ltv.rfm import rfm_summary
from insightos_utils.ltv.simulate import simulate_subscription, simulate_transactions
from insightos_utils.ltv.value import new_customer_ltv

from .data import WORLD_BGNBD, WORLD_GAMMA_GAMMA


def test_repeat_value_of_a_new_customer_by_hand() -> None:
    transactions = simulate_transactions(
        3000, WORLD_BGNBD, WORLD_GAMMA_GAMMA, end="2025-06-30", seed=21
    )
    summary = rfm_summary(transactions, "2025-06-30")
    models = fit_models(summary, LtvConfig())
    settings = LtvConfig(horizon_months=6, monthly_discount_rate=0.02, gross_margin=0.5)
    month = 30.4375 / 7
    params = models.bgnbd.params
    cumulative = [float(bgnbd.expected_purchases(params, i * month, 0, 0, 0)) for i in range(7)]
    p, q, v = (getattr(models.gamma_gamma.params, k) for k in ("p", "q", "v"))
    value = p * v / (q - 1)  # a customer with no repeat purchase: the population mean
    by_hand = sum(0.5 * value * (cumulative[i] - cumulative[i - 1]) / 1.02**i for i in range(1, 7))
    ours = new_customer_ltv(models.bgnbd, models.gamma_gamma, settings)
    assert ours.shape == (1,) and ours[0] == pytest.approx(by_hand, rel=1e-10)


def test_table_has_the_all_row_and_intervals_that_hold_the_value() -> None:
    transactions = simulate_subscription(900, seed=22)
    summary = rfm_summary(transactions, "2025-06-30")
    campaigns = pd.Series(np.where(np.arange(len(summary)) < 600, "big", "small_one"))
    campaigns.iloc[-20:] = "tiny"
    settings = LtvConfig(
        bootstrap_samples=300, min_campaign_customers=50, interval_method="sampling"
    )
    table = new_customer_value(summary, campaigns, fit_models(summary, settings), settings)
    rows = table.set_index("campaign")
    assert list(rows.index) == [ALL_CAMPAIGNS, "big", "small_one", "tiny"]
    assert rows.loc["tiny", "fallback"] and not rows.loc["big", "fallback"]
    assert rows.loc["tiny", "value"] == rows.loc[ALL_CAMPAIGNS, "value"]
    assert (rows["value_low"] <= rows["value"]).all() and (
        rows["value"] <= rows["value_high"]
    ).all()
    # subscribers at $49 a month who never leave: first purchase + about 12 more, discounted
    assert 12 * 49 < rows.loc[ALL_CAMPAIGNS, "value"] < 14 * 49


def test_campaigns_with_their_own_fit_get_refit_intervals() -> None:
    transactions = simulate_transactions(
        700, WORLD_BGNBD, WORLD_GAMMA_GAMMA, end="2025-06-30", seed=23
    )
    summary = rfm_summary(transactions, "2025-06-30")
    names = np.where(np.arange(len(summary)) % 2 == 0, "even", "odd")
    names[:15] = "tiny"
    settings = LtvConfig(bootstrap_samples=300, refit_samples=40, min_campaign_customers=50)
    overall = fit_models(summary, settings, "bgnbd")
    table = new_customer_value(summary, pd.Series(names), overall, settings).set_index("campaign")
    own = table.loc[["even", "odd"]]
    assert (own["interval_method"] == "refit").all() and not own["fallback"].any()
    assert own["interval"].str.contains("refitted").all()
    assert ((own["value_low"] < own["value"]) & (own["value"] < own["value_high"])).all()
    # the sampling-only interval is kept beside; the models' uncertainty widens it
    refit_width = own["value_high"] - own["value_low"]
    sampling_width = own["value_high_sampling"] - own["value_low_sampling"]
    assert (refit_width > sampling_width).all()
    # a campaign too small for its own fit falls back to the overall value and says so
    tiny = table.loc["tiny"]
    assert tiny["fallback"] and tiny["basis"].startswith("overall value")
    assert tiny["value_low"] == table.loc[ALL_CAMPAIGNS, "value_low"]
    assert tiny["interval"].startswith("the overall value's")
    # without the refit method the campaign rows keep the asymptotic interval
    asymptotic = new_customer_value(
        summary, pd.Series(names), overall, LtvConfig(interval_method="sampling")
    ).set_index("campaign")
    assert set(asymptotic.loc[["even", "odd"], "interval_method"]) == {"asymptotic"}
