"""sBG: the recursion and closed forms against each other, the paper's estimates from its
survival tables (counts and shares), recovery of a simulated cohort with censoring, and the
no-churn case the data cannot identify."""

from __future__ import annotations

import numpy as np
import pytest

from insightos_utils.ltv.models import sbg
from insightos_utils.ltv.models.base import FitError
from insightos_utils.ltv.models.sbg import SbgParams, ShiftedBetaGeometric, cohort_rows

# Fader and Hardie (2007), "How to project customer retention", survival after years 1-7
REGULAR = [1.0, 0.631, 0.468, 0.382, 0.326, 0.289, 0.262, 0.241]
HIGH_END = [1.0, 0.869, 0.743, 0.653, 0.593, 0.551, 0.517, 0.491]
PAPER = {"Regular": (REGULAR, 0.704, 1.182, -1680.3), "High End": (HIGH_END, 0.668, 3.806, -1611.2)}


def test_closed_forms_agree_with_the_recursion() -> None:
    params = SbgParams(0.7, 1.2)
    t = np.arange(1, 30)
    churn = [params.alpha / (params.alpha + params.beta)]
    for k in t[1:]:
        churn.append(churn[-1] * (params.beta + k - 2) / (params.alpha + params.beta + k - 1))
    np.testing.assert_allclose(sbg.churn_probability(params, t), churn, rtol=1e-12)
    np.testing.assert_allclose(sbg.survival(params, t), 1 - np.cumsum(churn), rtol=1e-10)
    surv = sbg.survival(params, np.arange(0, 30))
    np.testing.assert_allclose(sbg.retention_rates(params, t), surv[1:] / surv[:-1], rtol=1e-12)
    # DEL and DERL against their sums
    d = 0.1
    horizon = np.arange(0, 4000)
    total = (sbg.survival(params, horizon) / (1 + d) ** horizon).sum()
    assert sbg.discounted_expected_lifetime(params, d) == pytest.approx(total, rel=1e-9)
    n = 4
    residual = sbg.survival(params, n + horizon[1:]) / sbg.survival(params, n)
    derl = (residual / (1 + d) ** horizon[1:]).sum()
    assert float(sbg.discounted_expected_residual_lifetime(params, n, d)) == pytest.approx(
        derl, rel=1e-9
    )
    heavy = SbgParams(2.5, 3.0)
    long_run = sbg.survival(heavy, np.arange(0, 200000)).sum()
    assert sbg.expected_lifetime(heavy) == pytest.approx(long_run, rel=1e-4)
    np.testing.assert_allclose(
        sbg.expected_payments_by_period(params, [n], 3)[0], residual[:3], rtol=1e-12
    )


@pytest.mark.parametrize("cohort", sorted(PAPER))
@pytest.mark.parametrize("scale", [1000.0, 1.0])
def test_reproduces_the_paper(cohort: str, scale: float) -> None:
    values, alpha, beta, log_likelihood = PAPER[cohort]
    model = ShiftedBetaGeometric().fit(cohort_rows(np.array(values) * scale))
    assert model.params.alpha == pytest.approx(alpha, rel=0.01)
    assert model.params.beta == pytest.approx(beta, rel=0.01)
    assert model.convergence.converged
    if scale == 1000.0:  # the paper's cohorts of 1,000 customers
        assert model.log_likelihood == pytest.approx(log_likelihood, abs=0.1)


def test_recovers_a_simulated_cohort_with_censoring() -> None:
    rng = np.random.default_rng(5)
    true = SbgParams(1.5, 4.0)
    n = 20000
    theta = rng.beta(true.alpha, true.beta, n)
    lifetime = rng.geometric(theta)  # periods paid: churn at the end of that period
    observed = rng.integers(1, 13, n)  # customers joined at different times
    dead = lifetime <= observed
    periods = np.where(dead, lifetime, observed)
    keys, counts = np.unique(np.c_[periods, dead], axis=0, return_counts=True)
    rows = sbg.survival_rows(keys[:, 0], keys[:, 1], counts)
    model = ShiftedBetaGeometric().fit(rows)
    for name in ("alpha", "beta"):
        error = model.standard_errors[name]
        assert error is not None
        assert abs(getattr(model.params, name) - getattr(true, name)) < 3.5 * error


def test_no_churn_is_not_identified() -> None:
    with pytest.raises(FitError, match="nobody in the data has left"):
        ShiftedBetaGeometric().fit(cohort_rows([100.0, 100.0, 100.0]))
