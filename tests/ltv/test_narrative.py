"""The next-dollar recommendation in words, every number from the campaign table."""

from __future__ import annotations

import numpy as np

from insightos_utils.config import LtvConfig
from insightos_utils.ltv.economics import campaign_ltv, reference_ratio
from insightos_utils.ltv.narrative import next_dollar_recommendation

from .data import constructed_customers


def test_recommendation_names_the_best_the_losers_and_the_waste() -> None:
    customer_ltv, users, spend = constructed_customers()
    settings = LtvConfig(bootstrap_samples=500)
    ratio = reference_ratio(customer_ltv, users, settings, seed=2)
    table = campaign_ltv(customer_ltv, users, spend, settings, seed=3)
    text = next_dollar_recommendation(table, ratio, horizon_months=12)
    google = table.set_index("campaign").loc["google_gestao_agil"]
    assert ratio is not None
    assert text.startswith("Put the next dollar into google_gestao_agil")
    assert f"${google['ltv_mean']:,.2f}" in text and f"{google['ltv_to_cac']:.1f}" in text
    assert f"{ratio.ratio:.1f}× the others" in text
    assert "do not recover their CAC within 12 months: meta_broad" in text
    assert "Spend that acquired no customer: dead_campaign ($500.00)" in text

    no_spend = next_dollar_recommendation(table.assign(cac=np.nan), None)
    assert "No campaign has recorded spend" in no_spend
    expensive = table.assign(cac=table["cac"] * 100, ltv_to_cac=table["ltv_to_cac"] / 100)
    assert "No paid campaign recovers" in next_dollar_recommendation(expensive, ratio)


def test_new_customer_sentence_names_the_overall_and_the_extremes() -> None:
    import pandas as pd

    from insightos_utils.ltv.narrative import new_customer_sentence

    table = pd.DataFrame(
        {
            "campaign": ["(all)", "a", "b", "c"],
            "customers": [300, 150, 120, 30],
            "value": [90.0, 150.0, 50.0, 90.0],
            "value_low": [80.0, 120.0, 40.0, 80.0],
            "value_high": [100.0, 180.0, 60.0, 100.0],
            "fallback": [False, False, False, True],
        }
    )
    text = new_customer_sentence(table, 12)
    assert text.startswith("A customer acquired today is worth $90.00 over 12 months")
    assert "a new a customer $150.00, a new b customer $50.00." in text
