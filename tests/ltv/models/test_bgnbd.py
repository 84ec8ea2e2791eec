"""BG/NBD: likelihood and predictions against the paper and lifetimes, the fit against
lifetimes on the same rows, recovery of simulated parameters, and the a + b < 1 guard."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy.integrate import quad
from scipy.special import beta as beta_fn

from insightos_utils.ltv.models import bgnbd
from insightos_utils.ltv.models.bgnbd import BgNbd, BgNbdParams
from insightos_utils.ltv.rfm import rfm_summary
from insightos_utils.ltv.simulate import simulate_transactions

from ..data import PAPER_LOG_LIKELIHOOD, WORLD_BGNBD, WORLD_GAMMA_GAMMA, BetaGeoFitter


def test_log_likelihood_matches_paper_and_lifetimes(
    cdnow_summary: pd.DataFrame, cdnow_lifetimes: tuple[Any, Any]
) -> None:
    bgf, _ = cdnow_lifetimes
    s = cdnow_summary
    params = BgNbdParams(**bgf.params_.to_dict())
    total = bgnbd.log_likelihood(params, s["frequency"], s["recency"], s["T"]).sum()
    # lifetimes keeps the per-customer mean on time scaled by 1 / max(T); undo both.
    from_lifetimes = -len(s) * bgf._negative_log_likelihood_ - s["frequency"].sum() * np.log(
        s["T"].max()
    )
    assert total == pytest.approx(from_lifetimes, rel=1e-10)
    assert total == pytest.approx(PAPER_LOG_LIKELIHOOD, abs=0.05)


def test_predictions_equal_lifetimes(
    cdnow_summary: pd.DataFrame, cdnow_lifetimes: tuple[Any, Any]
) -> None:
    bgf, _ = cdnow_lifetimes
    s = cdnow_summary
    x, t_x, age = s["frequency"], s["recency"], s["T"]
    model = BgNbd(BgNbdParams(**bgf.params_.to_dict()))
    np.testing.assert_allclose(
        model.prob_alive(x, t_x, age), bgf.conditional_probability_alive(x, t_x, age), rtol=1e-10
    )
    for t in (1.0, 4.345, 39.0, 104.0):
        np.testing.assert_allclose(
            model.expected_purchases(t, x, t_x, age),
            bgf.conditional_expected_number_of_purchases_up_to_time(t, x, t_x, age),
            rtol=1e-8,
        )


def test_fit_equals_lifetimes_per_customer_fit(
    cdnow_summary: pd.DataFrame, cdnow_lifetimes: tuple[Any, Any]
) -> None:
    bgf, _ = cdnow_lifetimes
    model = BgNbd().fit(cdnow_summary)
    record = model.fitted()
    assert record.n_fit_rows < record.n_customers / 2  # distinct rows do shrink the data
    for name in ("r", "alpha", "a", "b"):
        assert getattr(model.params, name) == pytest.approx(bgf.params_[name], rel=1e-4), name
    assert model.log_likelihood == pytest.approx(PAPER_LOG_LIKELIHOOD, abs=0.05)
    for name, error in bgf.standard_errors_.items():
        assert model.standard_errors[name] == pytest.approx(error, rel=1e-3), name


def test_expected_purchases_stays_finite_when_a_plus_b_below_1() -> None:
    """lifetimes #442: with a + b < 1 lifetimes returns NaN for x = 0; ours match the integral."""
    params = BgNbdParams(r=0.5, alpha=5.0, a=0.3, b=0.5)
    x = np.array([0.0, 0.0, 1.0, 3.0])
    t_x = np.array([0.0, 0.0, 2.0, 10.0])
    age = np.array([0.5, 40.0, 20.0, 30.0])
    bgf = BetaGeoFitter()
    bgf.params_ = pd.Series(params.__dict__)
    for t in (52.0, 200.0):
        ours = bgnbd.expected_purchases(params, t, x, t_x, age)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs = bgf.conditional_expected_number_of_purchases_up_to_time(t, x, t_x, age)
        assert np.isnan(theirs[:2]).all() and np.isfinite(ours).all()
        np.testing.assert_allclose(ours[2:], theirs[2:], rtol=1e-8)
        for i in (0, 1):  # x = 0: E = integral over p of (1 - (A / (A + p t))^r) / p, A = alpha + T
            big_a = params.alpha + age[i]

            def smooth(p: float, big_a: float = big_a, t: float = t) -> float:
                if p == 0:  # the limit p -> 0: r t / A
                    return params.r * t / big_a / beta_fn(params.a, params.b)
                return (1 - (big_a / (big_a + p * t)) ** params.r) / p / beta_fn(params.a, params.b)

            # the Beta density's p^(a-1) (1-p)^(b-1) is handled exactly by the 'alg' weight
            exact = quad(smooth, 0, 1, weight="alg", wvar=(params.a - 1, params.b - 1))[0]
            assert ours[i] == pytest.approx(exact, rel=1e-7)


def test_fit_recovers_simulated_parameters() -> None:
    transactions = simulate_transactions(
        6000, WORLD_BGNBD, WORLD_GAMMA_GAMMA, end="2025-06-30", seed=7
    )
    model = BgNbd().fit(rfm_summary(transactions, "2025-06-30"))
    assert model.params.r == pytest.approx(WORLD_BGNBD.r, rel=0.15)
    assert model.params.alpha == pytest.approx(WORLD_BGNBD.alpha, rel=0.25)
