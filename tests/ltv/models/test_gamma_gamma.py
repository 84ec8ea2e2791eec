"""Gamma-Gamma: predictions and the fit against lifetimes, recovery of simulated parameters,
and the independence check (on the data alone, no fit involved)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from insightos_utils.ltv.models import gamma_gamma
from insightos_utils.ltv.models.gamma_gamma import GammaGamma, GammaGammaParams, independence
from insightos_utils.ltv.rfm import rfm_summary
from insightos_utils.ltv.simulate import simulate_transactions

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
