"""Campaign economics on constructed customers whose numbers can be worked out by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from insightos_utils.config import LtvConfig
from insightos_utils.contract import NO_CAMPAIGN
from insightos_utils.ltv.economics import (
    CAMPAIGN_LTV_COLUMNS,
    UNKNOWN_USER_CAMPAIGN,
    bootstrap_means,
    campaign_ltv,
    reference_ratio,
)

from .data import constructed_customers


def test_campaign_ltv_table() -> None:
    customer_ltv, users, spend = constructed_customers()
    settings = LtvConfig(bootstrap_samples=500)
    table = campaign_ltv(customer_ltv, users, spend, settings, seed=3)
    assert list(table.columns) == CAMPAIGN_LTV_COLUMNS
    rows = table.set_index("campaign")
    google = rows.loc["google_gestao_agil"]
    assert google["customers"] == 300
    assert google["ltv_mean"] == pytest.approx(customer_ltv["ltv"][:300].mean())
    assert google["ltv_ci_low"] < google["ltv_mean"] < google["ltv_ci_high"]
    assert google["cac"] == pytest.approx(6000 / 300)
    assert google["ltv_to_cac"] == pytest.approx(google["ltv_mean"] / 20)
    assert google["ltv_to_cac_ci_low"] == pytest.approx(google["ltv_ci_low"] / 20)
    assert google["payback_months"] == pytest.approx(20 / (google["ltv_mean"] / 12))
    assert np.isnan(rows.loc[NO_CAMPAIGN, "cac"]) and np.isnan(
        rows.loc[NO_CAMPAIGN, "payback_months"]
    )
    assert rows.loc[UNKNOWN_USER_CAMPAIGN, "customers"] == 1
    assert rows.loc["dead_campaign", "customers"] == 0
    assert rows.loc["dead_campaign", "cac"] == np.inf
    assert rows.loc["dead_campaign", "ltv_to_cac"] == 0.0
    meta = rows.loc["meta_broad"]  # CAC 50 against about 40 of margin over the 12 months
    assert meta["ltv_to_cac"] < 1 and meta["payback_months"] == np.inf
    again = campaign_ltv(customer_ltv, users, spend, settings, seed=3)
    pd.testing.assert_frame_equal(table, again)  # same seed, same intervals


def test_bootstrap_interval_has_the_textbook_width() -> None:
    values = np.random.default_rng(5).normal(100.0, 20.0, 2000)
    draws = bootstrap_means(values, 2000, np.random.default_rng(6), chunk_cells=100_000)
    low, high = np.percentile(draws, [2.5, 97.5])
    textbook = 2 * 1.96 * values.std() / np.sqrt(len(values))
    assert high - low == pytest.approx(textbook, rel=0.1)
    assert low < values.mean() < high


def test_reference_ratio() -> None:
    customer_ltv, users, _ = constructed_customers()
    ratio = reference_ratio(customer_ltv, users, LtvConfig(bootstrap_samples=1000), seed=2)
    assert ratio is not None
    others = customer_ltv["ltv"][300:]
    assert ratio.ratio == pytest.approx(customer_ltv["ltv"][:300].mean() / others.mean())
    assert 1.6 < ratio.ci_low < ratio.ratio < ratio.ci_high < 2.6
    assert ratio.other_customers == len(others) and ratio.bootstrap_samples == 1000
    missing = LtvConfig(bootstrap_samples=100, reference_campaign="no_such_campaign")
    assert reference_ratio(customer_ltv, users, missing) is None
