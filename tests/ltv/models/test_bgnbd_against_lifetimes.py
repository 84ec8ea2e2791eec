"""Our BG/NBD and Gamma-Gamma fits against lifetimes' on data shapes we did not tune to: equal
parameters (1e-4 relative) wherever lifetimes converges, a log-likelihood at least as good
everywhere, and a fit of ours where lifetimes stops with "precision loss"."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from insightos_utils.ltv.models import bgnbd, gamma_gamma
from insightos_utils.ltv.models.bgnbd import BgNbd, BgNbdParams
from insightos_utils.ltv.models.gamma_gamma import GammaGamma, GammaGammaParams
from insightos_utils.ltv.rfm import rfm_summary
from insightos_utils.ltv.simulate import simulate_subscription, simulate_transactions
from insightos_utils.ltv.transactions import (
    calibration_end_for,
    check_transactions,
    read_transactions,
)

from ..data import cdnow_contract_transactions, lifetimes_fit, uci_transactions


def _cdnow(unit: str) -> Callable[[Path], pd.DataFrame]:
    def summary(_: Path) -> pd.DataFrame:
        transactions = check_transactions(cdnow_contract_transactions())
        return rfm_summary(transactions, "1997-09-30T23:59:59", None, unit)

    return summary


def _world(params: BgNbdParams, seed: int, unit: str) -> Callable[[Path], pd.DataFrame]:
    spend = GammaGammaParams(4.0, 3.0, 20.0)

    def summary(_: Path) -> pd.DataFrame:
        table = simulate_transactions(4000, params, spend, end="2025-06-30", seed=seed)
        return rfm_summary(table, "2025-03-31", None, unit)

    return summary


def _synthetic(raw: Path) -> pd.DataFrame:
    transactions = read_transactions(raw / "transactions.csv")
    as_of = transactions["occurred_at"].max()
    return rfm_summary(transactions, calibration_end_for(as_of, 90), None, "W")


def _uci(unit: str) -> Callable[[Path], pd.DataFrame]:
    return lambda _: rfm_summary(uci_transactions(), "2011-09-09T23:59:59", None, unit)


def _subscription(_: Path) -> pd.DataFrame:
    return rfm_summary(simulate_subscription(2000, seed=3), "2025-03-31", None, "W")


SHAPES = {
    "cdnow-W": _cdnow("W"),
    "cdnow-D": _cdnow("D"),
    "cdnow-M": _cdnow("M"),
    "world-slow-dropout-W": _world(BgNbdParams(0.8, 6.0, 0.5, 6.0), 1, "W"),
    "world-a+b<1-D": _world(BgNbdParams(0.4, 20.0, 0.3, 0.5), 2, "D"),
    "synthetic-company-W": _synthetic,
    "uci-D": _uci("D"),
    "uci-W": _uci("W"),
    "uci-M": _uci("M"),
    "subscription-W": _subscription,
}


@pytest.fixture(params=sorted(SHAPES), scope="module")
def shape(request: pytest.FixtureRequest) -> tuple[str, pd.DataFrame]:
    name = request.param
    raw = request.getfixturevalue("synthetic_raw") if name.startswith("synthetic") else Path()
    return name, SHAPES[name](raw)


def test_bgnbd_equals_lifetimes_where_it_converges_and_is_never_worse(
    shape: tuple[str, pd.DataFrame],
) -> None:
    name, summary = shape
    ours = BgNbd().fit(summary)
    assert ours.convergence.converged, (name, ours.convergence)
    theirs = lifetimes_fit("bgnbd", summary)
    if theirs is None:  # lifetimes stops with "precision loss": ours must still be an optimum
        assert ours.convergence.gradient_norm <= ours.convergence.gradient_tolerance
        return
    x, t, age = summary["frequency"], summary["recency"], summary["T"]
    their_ll = float(bgnbd.log_likelihood(BgNbdParams(**theirs), x, t, age).sum())
    assert ours.log_likelihood >= their_ll - 1e-6 * abs(their_ll), name
    if ours.limit is None:
        for key in ("r", "alpha", "a", "b"):
            assert getattr(ours.params, key) == pytest.approx(theirs[key], rel=1e-4), (name, key)
    else:  # lifetimes stopped somewhere on the flat ridge towards a/(a+b) -> 0
        assert theirs["a"] / (theirs["a"] + theirs["b"]) < bgnbd.DROPOUT_LIMIT
        if ours.limit.limit is None:
            assert ours.params.r == pytest.approx(theirs["r"], rel=1e-4), name
            assert ours.params.alpha == pytest.approx(theirs["alpha"], rel=1e-4), name


def test_gamma_gamma_equals_lifetimes_where_it_converges_and_is_never_worse(
    shape: tuple[str, pd.DataFrame],
) -> None:
    name, summary = shape
    ours = GammaGamma().fit(summary)
    assert ours.convergence.converged, (name, ours.convergence)
    theirs = lifetimes_fit("gamma_gamma", summary)
    if theirs is None:
        return
    repeaters = summary[summary["frequency"] > 0]
    model = GammaGamma()
    rows = gamma_gamma._rows(repeaters)
    their_ll = model.total_log_likelihood(np.array([theirs["p"], theirs["q"], theirs["v"]]), rows)
    assert ours.log_likelihood >= their_ll - 1e-6 * abs(their_ll), name
    if ours.limit is None:
        for key in ("p", "q", "v"):
            assert getattr(ours.params, key) == pytest.approx(theirs[key], rel=1e-4), (name, key)
    else:
        assert theirs["q"] > gamma_gamma.Q_LIMIT / 10, name


def test_aggregated_likelihoods_equal_the_row_by_row_ones() -> None:
    """Each model's fast ``mean_terms`` against the base's weighted mean of ``row_terms``."""
    from insightos_utils.ltv.models.base import LikelihoodModel

    summary = _cdnow("W")(Path())
    scale = 1 / summary["T"].max()
    rows = bgnbd._rows(summary, scale)
    spend_rows = gamma_gamma._rows(summary[summary["frequency"] > 0])
    cases = [
        (BgNbd(), rows, [0.24, 0.1, 0.79, 2.4]),
        (BgNbd(), rows, [1.3, 0.5, 1e-6, 300.0]),
        (bgnbd.Nbd(), rows, [0.5, 0.2]),
        (GammaGamma(), spend_rows, [6.2, 3.7, 15.4]),
        (gamma_gamma.HomogeneousSpend(), spend_rows, [6.0, 0.3]),
    ]
    for model, model_rows, point in cases:
        natural = np.array(point)
        fast = model.mean_terms(natural, model_rows)
        slow = LikelihoodModel.mean_terms(model, natural, model_rows)
        assert fast[0] == pytest.approx(slow[0], rel=1e-12), type(model).__name__
        np.testing.assert_allclose(fast[1], slow[1], rtol=1e-9, atol=1e-12)
    assert math.isfinite(fast[0])
