"""Pareto/NBD: the likelihood against its integral, the CDNOW fit against Fader, Hardie and Lee
(2005) and lifetimes, predictions against lifetimes, recovery of a simulated world, the
no-dropout boundary, and discounted LTV through the one LTV function."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy.integrate import quad
from scipy.special import gammaln

from insightos_utils.config import LtvConfig
from insightos_utils.ltv.models import paretonbd
from insightos_utils.ltv.models.gamma_gamma import GammaGamma
from insightos_utils.ltv.models.paretonbd import ParetoNbd, ParetoNbdParams
from insightos_utils.ltv.rfm import rfm_summary
from insightos_utils.ltv.simulate import simulate_paretonbd, simulate_subscription
from insightos_utils.ltv.value import customer_ltv, new_customer_ltv

from ..data import WORLD_GAMMA_GAMMA

# Fader, Hardie and Lee (2005), "RFM and CLV", CDNOW calibration 1997-01-01..1997-09-30, weeks
PAPER = {"r": 0.553, "alpha": 10.578, "s": 0.606, "beta": 11.669}
PAPER_LL = -9595.0


def _integral_likelihood(params: ParetoNbdParams, x: float, t_x: float, age: float) -> float:
    """The likelihood from its definition: alive at T, or dead at some tau in (t_x, T)."""
    r, alpha, s, beta = params.r, params.alpha, params.s, params.beta
    constant = np.exp(gammaln(r + x) - gammaln(r) + r * np.log(alpha) + s * np.log(beta))
    alive = (alpha + age) ** -(r + x) * (beta + age) ** -s

    def density(u: float) -> float:
        return float(s * (alpha + u) ** -(r + x) * (beta + u) ** -(s + 1))

    dead = quad(density, t_x, age, epsabs=0, epsrel=1e-13, limit=200)[0]
    return float(np.log(constant * (alive + dead)))


@pytest.mark.parametrize(
    "params",
    [
        ParetoNbdParams(0.553, 10.578, 0.606, 11.669),  # alpha < beta
        ParetoNbdParams(0.5, 100.0, 2.0, 1.0),  # alpha >> beta
        ParetoNbdParams(2.0, 1.0, 0.3, 50.0),
        ParetoNbdParams(0.2, 3.0, 1.0, 3.0),  # alpha = beta, s = 1
    ],
)
def test_log_likelihood_equals_its_integral(params: ParetoNbdParams) -> None:
    for x, t_x, age in [(0, 0, 30), (3, 10, 38), (20, 37.5, 38), (1, 0.5, 2), (60, 1, 80)]:
        ours = paretonbd.log_likelihood(params, x, t_x, age)
        assert ours == pytest.approx(_integral_likelihood(params, x, t_x, age), rel=1e-9)


def test_cdnow_fit_reproduces_the_paper(cdnow_summary: pd.DataFrame) -> None:
    model = ParetoNbd().fit(cdnow_summary)
    for name, value in PAPER.items():
        assert getattr(model.params, name) == pytest.approx(value, rel=0.01), name
    assert model.log_likelihood == pytest.approx(PAPER_LL, rel=0.01)
    assert model.log_likelihood == pytest.approx(PAPER_LL, abs=0.1)
    record = model.fitted()
    assert record.convergence.converged
    assert record.n_fit_rows < record.n_customers
    assert model.limit is None and not record.boundary
    assert all(error is not None and error > 0 for error in record.standard_errors.values())


def test_fit_at_least_as_good_as_lifetimes(cdnow_summary: pd.DataFrame) -> None:
    from lifetimes import ParetoNBDFitter

    s = cdnow_summary
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitter = ParetoNBDFitter().fit(s["frequency"], s["recency"], s["T"])
    theirs = ParetoNbdParams(**fitter.params_.to_dict())
    model = ParetoNbd().fit(s)
    their_ll = paretonbd.log_likelihood(theirs, s["frequency"], s["recency"], s["T"]).sum()
    assert model.log_likelihood >= their_ll - 1e-6
    for name in PAPER:
        assert getattr(model.params, name) == pytest.approx(getattr(theirs, name), rel=2e-3)


def test_predictions_equal_lifetimes(cdnow_summary: pd.DataFrame) -> None:
    from lifetimes import ParetoNBDFitter

    s = cdnow_summary
    x, t_x, age = s["frequency"], s["recency"], s["T"]
    fitter = ParetoNBDFitter()
    fitter.params_ = pd.Series(PAPER)
    model = ParetoNbd(ParetoNbdParams(**PAPER))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        np.testing.assert_allclose(
            model.prob_alive(x, t_x, age),
            fitter.conditional_probability_alive(x, t_x, age),
            rtol=1e-9,
        )
        for t in (1.0, 39.0, 104.0):
            np.testing.assert_allclose(
                model.expected_purchases(t, x, t_x, age),
                fitter.conditional_expected_number_of_purchases_up_to_time(t, x, t_x, age),
                rtol=1e-8,
            )


def test_recovers_a_simulated_world() -> None:
    world = ParetoNbdParams(r=0.6, alpha=8.0, s=0.8, beta=10.0)
    table = simulate_paretonbd(6000, world, WORLD_GAMMA_GAMMA, seed=11)
    summary = rfm_summary(table, "2025-06-30", None, "W")
    model = ParetoNbd().fit(summary)
    errors = model.standard_errors
    for name in PAPER:
        fitted, true = getattr(model.params, name), getattr(world, name)
        error = errors[name]
        assert error is not None
        assert abs(fitted - true) < 3.5 * error, (name, fitted, true, error)


def test_no_dropout_becomes_the_nbd() -> None:
    table = simulate_subscription(800, seed=2)
    summary = rfm_summary(table, "2025-06-30", None, "W")
    model = ParetoNbd().fit(summary)
    assert model.limit is not None
    assert [b.parameter for b in model.boundary][0] == "s/beta"
    np.testing.assert_allclose(model.prob_alive([3.0], [20.0], [30.0]), 1.0)


def test_discounted_ltv_through_the_one_function(cdnow_summary: pd.DataFrame) -> None:
    """customer_ltv takes the Pareto/NBD as it takes BG/NBD; with no discount and margin 1 the
    value is expected purchases times the expected value per purchase."""
    model = ParetoNbd(ParetoNbdParams(**PAPER))
    spend = GammaGamma().fit(cdnow_summary)
    settings = LtvConfig(monthly_discount_rate=0.0, horizon_months=12)
    table = customer_ltv(cdnow_summary, model, spend, settings)
    np.testing.assert_allclose(
        table["ltv"], table["expected_purchases"] * table["expected_average_value"], rtol=1e-10
    )
    discounted = customer_ltv(cdnow_summary, model, spend, LtvConfig(monthly_discount_rate=0.01))
    assert (discounted["ltv"] <= table["ltv"] + 1e-12).all()
    # a new customer's value with vectorised parameter draws matches the point value's order
    point = new_customer_ltv(model, spend, settings)[0]
    fitted = ParetoNbd().fit(cdnow_summary)
    draws: Any = fitted.draws(200, np.random.default_rng(0))
    values = new_customer_ltv(draws, spend, settings)
    assert np.isfinite(values).all() and len(values) == 200
    assert np.percentile(values, 2.5) < point < np.percentile(values, 97.5)
