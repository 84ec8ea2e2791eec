"""Gamma-Gamma: predictions and the fit against lifetimes, recovery of simulated parameters,
and the independence check (on the data alone, no fit involved)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from insightos_utils.ltv.models import gamma_gamma
from insightos_utils.ltv.models.base import FitError
from insightos_utils.ltv.models.gamma_gamma import (
    GammaGamma,
    GammaGammaParams,
    HomogeneousSpend,
    independence,
)
from insightos_utils.ltv.rfm import rfm_summary
from insightos_utils.ltv.simulate import simulate_subscription, simulate_transactions

from ..data import PAPER_GAMMA_GAMMA, WORLD_BGNBD, WORLD_GAMMA_GAMMA


def test_expected_average_value_equals_lifetimes(
    cdnow_summary: pd.DataFrame, cdnow_lifetimes: tuple[Any, Any]
) -> None:
    _, ggf = cdnow_lifetimes
    s = cdnow_summary
    params = GammaGammaParams(**ggf.params_.to_dict())
    np.testing.assert_allclose(
        gamma_gamma.expected_average_value(params, s["frequency"], s["monetary_value"]),
        ggf.conditional_expected_average_profit(s["frequency"], s["monetary_value"]),
        rtol=1e-10,
    )


def test_fit_equals_lifetimes_and_the_paper(
    cdnow_summary: pd.DataFrame, cdnow_lifetimes: tuple[Any, Any]
) -> None:
    _, ggf = cdnow_lifetimes
    model = GammaGamma().fit(cdnow_summary)
    record = model.fitted()
    assert record.n_fit_rows <= record.n_customers == 946
    for name in ("p", "q", "v"):
        assert getattr(model.params, name) == pytest.approx(ggf.params_[name], rel=1e-4), name
        assert getattr(model.params, name) == pytest.approx(PAPER_GAMMA_GAMMA[name], rel=0.01)


def test_fit_recovers_simulated_parameters() -> None:
    transactions = simulate_transactions(
        6000, WORLD_BGNBD, WORLD_GAMMA_GAMMA, end="2025-06-30", seed=7
    )
    summary = rfm_summary(transactions, "2025-06-30")
    model = GammaGamma().fit(summary)
    assert model.params.p == pytest.approx(WORLD_GAMMA_GAMMA.p, rel=0.25)
    assert abs(independence(summary).correlation) < 0.1


def test_correlated_frequency_and_spend_is_flagged() -> None:
    rng = np.random.default_rng(0)
    frequency = rng.integers(1, 15, 400)
    summary = pd.DataFrame(
        {
            "frequency": frequency,
            "recency": frequency * 2.0,
            "T": 40.0,
            "monetary_value": 10 + 3 * frequency + rng.gamma(2, 2, 400),
        }
    )
    check = independence(summary)
    assert check.correlation == pytest.approx(
        np.corrcoef(summary["frequency"], summary["monetary_value"])[0, 1]
    )
    assert check.correlation > 0.3 and not check.ok and check.repeat_customers == 400
    assert "correlated (r = " in (check.note() or "")
    uncorrelated = summary.assign(monetary_value=10 + rng.gamma(2, 2, 400))
    assert independence(uncorrelated).ok and independence(uncorrelated).note() is None


def test_subscription_company_lands_on_homogeneous_spend() -> None:
    transactions = simulate_subscription(2000, seed=5)
    summary = rfm_summary(transactions, "2025-03-31", None, "W")
    model = GammaGamma().fit(summary)
    assert [(b.parameter, b.limit) for b in model.boundary] == [("q", "infinity")]
    assert model.limit is not None and model.convergence.model == "homogeneous spend"
    assert math.isinf(model.params.q) and model.params.p == model.limit.p
    assert model.standard_errors["q"] is None and model.standard_errors["p"] > 0
    # one common value per purchase: the spend-weighted mean of every repeat purchase
    repeaters = summary[summary["frequency"] > 0]
    pooled = (repeaters["frequency"] * repeaters["monetary_value"]).sum() / repeaters[
        "frequency"
    ].sum()
    assert model.limit.mean_value == pytest.approx(pooled, rel=1e-6)
    np.testing.assert_allclose(model.expected_average_value([0, 3, 9], [0, 10, 90]), pooled)
    assert f"${pooled:,.2f}" in model.boundary[0].meaning


def test_homogeneous_spend_is_gamma_gamma_as_q_grows() -> None:
    limit = HomogeneousSpend(p=3.0, nu=0.1)
    x, m = np.array([1.0, 4.0, 9.0]), np.array([20.0, 35.0, 28.0])
    for q in (1e6, 1e8):
        nearly = GammaGammaParams(p=3.0, q=q, v=q / 0.1)
        np.testing.assert_allclose(
            gamma_gamma.expected_average_value(nearly, x, m),
            limit.expected_average_value(x, m),
            rtol=10 / q,
        )


def test_spend_too_heavy_tailed_for_a_finite_mean_is_named() -> None:
    transactions = simulate_transactions(
        3000, WORLD_BGNBD, WORLD_GAMMA_GAMMA, end="2025-06-30", seed=1
    )
    big = np.random.default_rng(0).random(len(transactions)) < 0.05
    transactions.loc[big, "amount"] *= 1000  # one order in twenty is 1,000 times larger
    with pytest.raises(FitError, match=r"q = 0\.\d+ <= 1.*heavy-tailed.*largest purchase"):
        GammaGamma().fit(rfm_summary(transactions, "2025-06-30"))


def test_fewer_than_two_repeat_buyers_cannot_identify_spend() -> None:
    summary = pd.DataFrame(
        {"frequency": [0, 3], "recency": [0.0, 4.0], "T": 9.0, "monetary_value": [0.0, 12.0]}
    )
    with pytest.raises(FitError, match="1 customer.*at least two repeat buyers"):
        GammaGamma().fit(summary)
