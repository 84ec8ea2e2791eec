"""The one LTV function against lifetimes' customer_lifetime_value, and by hand."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest

from insightos_utils.config import LtvConfig
from insightos_utils.ltv.models.bgnbd import BgNbd, BgNbdParams
from insightos_utils.ltv.models.gamma_gamma import GammaGamma, GammaGammaParams
from insightos_utils.ltv.rfm import rfm_summary
from insightos_utils.ltv.transactions import read_transactions
from insightos_utils.ltv.value import CUSTOMER_LTV_COLUMNS, customer_ltv, margin_column

from .data import BetaGeoFitter, GammaGammaFitter
from .lifetimes_reference import lifetimes_clv


def _models(bgf: Any, ggf: Any) -> tuple[BgNbd, GammaGamma]:
    return (
        BgNbd(BgNbdParams(**bgf.params_.to_dict())),
        GammaGamma(GammaGammaParams(**ggf.params_.to_dict())),
    )


def test_ltv_equals_lifetimes_with_its_month(
    cdnow_summary: pd.DataFrame, cdnow_lifetimes: tuple[Any, Any]
) -> None:
    bgf, ggf = cdnow_lifetimes
    purchases, spend = _models(bgf, ggf)
    s = cdnow_summary
    with_lifetimes_month = customer_ltv(s, purchases, spend, LtvConfig(), month_length=4.345)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = ggf.customer_lifetime_value(
            bgf, s["frequency"], s["recency"], s["T"], s["monetary_value"], 12, 0.01, freq="W"
        )
    np.testing.assert_allclose(with_lifetimes_month["ltv"], theirs.to_numpy(), rtol=1e-8)
    halved = customer_ltv(s, purchases, spend, LtvConfig(gross_margin=0.5), month_length=4.345)
    np.testing.assert_allclose(halved["ltv"], 0.5 * theirs.to_numpy(), rtol=1e-8)


def test_ltv_with_our_month_equals_lifetimes_on_a_rescaled_clock(
    cdnow_summary: pd.DataFrame, cdnow_lifetimes: tuple[Any, Any]
) -> None:
    bgf, ggf = cdnow_lifetimes
    purchases, spend = _models(bgf, ggf)
    settings = LtvConfig(horizon_months=6, monthly_discount_rate=0.02)
    ours = customer_ltv(cdnow_summary, purchases, spend, settings)
    theirs = lifetimes_clv(
        bgf.params_.to_dict(), ggf.params_.to_dict(), cdnow_summary, "W", 6, 0.02
    )
    np.testing.assert_allclose(ours["ltv"], theirs, rtol=1e-8)
    # our month (30.4375 days) is a little longer than lifetimes' 4.345 weeks
    lifetimes_month = customer_ltv(cdnow_summary, purchases, spend, settings, month_length=4.345)
    assert 1.0 < ours["ltv"].sum() / lifetimes_month["ltv"].sum() < 1.01


def test_ltv_in_days_equals_lifetimes(cdnow_csv: Any, cdnow_lifetimes: tuple[Any, Any]) -> None:
    s = rfm_summary(read_transactions(cdnow_csv), "1997-09-30", time_unit="D")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bgf = BetaGeoFitter().fit(s["frequency"], s["recency"], s["T"])
        repeaters = s[s["frequency"] > 0]
        ggf = GammaGammaFitter().fit(repeaters["frequency"], repeaters["monetary_value"])
        theirs = ggf.customer_lifetime_value(
            bgf, s["frequency"], s["recency"], s["T"], s["monetary_value"], 6, 0.02, freq="D"
        )
    purchases, spend = _models(bgf, ggf)
    settings = LtvConfig(time_unit="D", horizon_months=6, monthly_discount_rate=0.02)
    ours = customer_ltv(s, purchases, spend, settings, month_length=30)
    np.testing.assert_allclose(ours["ltv"], theirs.to_numpy(), rtol=1e-8)
    own = customer_ltv(s, purchases, spend, settings)
    rescaled = lifetimes_clv(bgf.params_.to_dict(), ggf.params_.to_dict(), s, "D", 6, 0.02)
    np.testing.assert_allclose(own["ltv"], rescaled, rtol=1e-8)


def test_ltv_by_hand_counts_months_of_30_4375_days() -> None:
    """Kills 'doubling the month length': a Poisson buyer who never leaves (a -> tiny) buys
    rate * month purchases a month, so LTV is a plain discounted sum of equal months."""
    r, alpha = 2.0, 8.0  # rate ~ Gamma(2, 8) per day: 0.25 purchases a day on average
    purchases = BgNbd(BgNbdParams(r=r, alpha=alpha, a=1e-9, b=1.0))
    spend = GammaGamma(GammaGammaParams(p=1.0, q=1e9, v=1e9 * 20.0))  # every purchase $20
    summary = pd.DataFrame(
        {"frequency": [0], "recency": [0.0], "T": [0.0], "monetary_value": [0.0]},
        index=pd.Index(["u"], name="user_id"),
    )
    settings = LtvConfig(time_unit="D", horizon_months=3, monthly_discount_rate=0.05)
    table = customer_ltv(summary, purchases, spend, settings)
    per_month = r / alpha * 30.4375
    np.testing.assert_allclose(table[[margin_column(m) for m in (1, 2, 3)]], [[per_month * 20] * 3])
    expected = sum(per_month * 20 / 1.05**m for m in (1, 2, 3))
    assert table.loc[0, "ltv"] == pytest.approx(expected, rel=1e-6)
    assert table.loc[0, "expected_purchases"] == pytest.approx(3 * per_month, rel=1e-6)
    assert list(table.columns[:8]) == CUSTOMER_LTV_COLUMNS
