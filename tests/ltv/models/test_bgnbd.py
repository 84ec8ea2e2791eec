"""BG/NBD: likelihood and predictions against the paper and lifetimes, the fit against
lifetimes on the same rows, recovery of simulated parameters, and the a + b < 1 guard."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy.integrate import quad
from scipy.special import beta as beta_fn
from scipy.special import gammaln

from insightos_utils.ltv.models import bgnbd
from insightos_utils.ltv.models.base import FitError
from insightos_utils.ltv.models.bgnbd import BgNbd, BgNbdParams, Nbd, Poisson
from insightos_utils.ltv.rfm import rfm_summary
from insightos_utils.ltv.simulate import simulate_subscription, simulate_transactions

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


def test_no_repeat_buyer_cannot_identify_the_model() -> None:
    summary = pd.DataFrame({"frequency": [0, 0, 0], "recency": 0.0, "T": [3.0, 5.0, 8.0]})
    with pytest.raises(FitError, match="none of the 3 customers bought again"):
        BgNbd().fit(summary)
    with pytest.raises(FitError, match="no customers"):
        BgNbd().fit(summary.iloc[:0])


def test_the_limits_are_the_models_limits() -> None:
    """NBD = BG/NBD as a/(a+b) -> 0; Poisson = NBD as r -> infinity with r/alpha fixed."""
    x = np.array([0.0, 1.0, 4.0, 10.0])
    t_x = np.array([0.0, 3.0, 20.0, 30.0])
    age = np.array([5.0, 25.0, 30.0, 31.0])
    nbd = Nbd(r=0.7, alpha=9.0)
    nearly = BgNbdParams(r=0.7, alpha=9.0, a=1e-9, b=5.0)
    for t in (1.0, 13.0, 52.0):
        np.testing.assert_allclose(
            nbd.expected_purchases(t, x, t_x, age),
            bgnbd.expected_purchases(nearly, t, x, t_x, age),
            rtol=1e-6,
        )
    np.testing.assert_allclose(bgnbd.prob_alive(nearly, x, t_x, age), 1.0, atol=1e-8)
    np.testing.assert_allclose(
        nbd.log_likelihood_rows(x, t_x, age), bgnbd.log_likelihood(nearly, x, t_x, age), rtol=1e-7
    )
    poisson = Poisson(rate=0.25)
    huge = Nbd(r=1e9, alpha=4e9)
    np.testing.assert_allclose(
        poisson.expected_purchases(13.0, x, t_x, age),
        huge.expected_purchases(13.0, x, t_x, age),
        rtol=1e-6,
    )
    constant = gammaln(1e9 + x) - gammaln(1e9) - x * np.log(1e9)  # the Poisson drops x log r
    np.testing.assert_allclose(  # plugging r = 1e9 in costs digits: why the limit is its own model
        poisson.log_likelihood_rows(x, t_x, age),
        huge.log_likelihood_rows(x, t_x, age) - constant,
        atol=1e-4,
    )


def test_subscription_company_lands_on_the_no_dropout_boundary() -> None:
    transactions = simulate_subscription(2000, seed=5)
    summary = rfm_summary(transactions, "2025-03-31", None, "W")
    model = BgNbd().fit(summary)
    assert model.convergence.converged and model.convergence.model == "NBD"
    assert [(b.parameter, b.limit) for b in model.boundary] == [("a/(a+b)", "0")]
    assert "no evidence of dropout" in model.boundary[0].meaning
    assert model.params.a == 0.0 and math.isnan(model.params.b)
    assert model.standard_errors["a"] is None and model.standard_errors["r"] > 0
    assert model.limit is not None and model.params.r == model.limit.r
    np.testing.assert_array_equal(model.prob_alive(summary["frequency"], 1.0, 2.0), 1.0)
    # a monthly subscriber buys about 12 times a year; the NBD forecast says so
    yearly = model.expected_purchases(52.18, summary["frequency"], summary["recency"], summary["T"])
    assert 10 < float(np.median(yearly)) < 14


def test_one_purchase_rate_for_everyone_is_the_poisson() -> None:
    transactions = simulate_subscription(2000, period_spread=0.0, seed=6)
    summary = rfm_summary(transactions, "2025-03-31", None, "W")
    model = BgNbd().fit(summary)
    assert [(b.parameter, b.limit) for b in model.boundary] == [("a/(a+b)", "0"), ("r", "infinity")]
    assert model.limit is not None and model.limit.limit is not None
    closed_form = summary["frequency"].sum() / summary["T"].sum()  # the Poisson MLE
    assert model.limit.limit.rate == pytest.approx(closed_form, rel=1e-6)
    assert 0.9 * 7 / 30.4375 < closed_form < 7 / 30.4375  # about one a month, in weeks
    assert math.isinf(model.params.r) and model.convergence.model == "Poisson"


def test_a_plus_b_below_1_is_named_and_predictions_stay_finite() -> None:
    world = BgNbdParams(r=0.5, alpha=10.0, a=0.15, b=0.25)  # U-shaped dropout
    transactions = simulate_transactions(
        8000, world, WORLD_GAMMA_GAMMA, end="2025-06-30", seed=1, time_unit="D"
    )
    summary = rfm_summary(transactions, "2025-06-30", None, "D")
    model = BgNbd().fit(summary)
    assert model.params.a + model.params.b < 1 and model.a_plus_b_below_1
    assert [(b.parameter, b.limit) for b in model.boundary] == [("a + b", "below 1")]
    assert model.params.a == pytest.approx(world.a, rel=0.25)
    forecast = model.expected_purchases(
        365.0, summary["frequency"], summary["recency"], summary["T"]
    )
    assert np.isfinite(forecast).all() and (forecast >= 0).all()
