"""One analysis end to end on a simulated world: without a holdout, LTV stands at the
calibration end; with one and a refit, the calibration fit is kept under validation."""

from __future__ import annotations

import pandas as pd

from insightos_utils.config import LtvConfig
from insightos_utils.ltv.analysis import analyse_ltv
from insightos_utils.ltv.simulate import simulate_transactions
from insightos_utils.ltv.value import margin_column

from .data import WORLD_BGNBD, WORLD_GAMMA_GAMMA


def test_analysis_without_holdout_values_customers_at_calibration_end() -> None:
    transactions = simulate_transactions(
        1500, WORLD_BGNBD, WORLD_GAMMA_GAMMA, end="2025-06-30", seed=11
    )
    analysis = analyse_ltv(
        transactions, "2025-06-30T23:59:59", None, LtvConfig(time_unit="M"), refit=True
    )
    assert analysis.holdout is None and analysis.params["holdout"] is None
    assert analysis.params["refit"] is False and analysis.params["validation"] is None
    assert analysis.params["month_convention"].startswith("a month is 30.4375 days (1 M)")
    assert len(analysis.customer_ltv) == transactions["user_id"].nunique()
    margins = analysis.customer_ltv[[margin_column(m) for m in range(1, 13)]].sum(axis=1)
    assert (analysis.customer_ltv["ltv"] < margins).all()  # discounting lowers every value


def test_refit_values_customers_at_the_observation_end() -> None:
    transactions = simulate_transactions(
        1500, WORLD_BGNBD, WORLD_GAMMA_GAMMA, end="2025-06-30", seed=12
    )
    analysis = analyse_ltv(transactions, "2025-03-31", "2025-06-30", LtvConfig(), refit=True)
    params = analysis.params
    assert params["refit"] is True and params["fitted_through"].startswith("2025-06-30")
    assert params["validation"]["calibration_end"].startswith("2025-03-31")
    assert params["holdout"]["customers"] == params["validation"]["n_customers"]
    assert params["n_customers"] == len(analysis.customer_ltv) >= params["holdout"]["customers"]
    assert params["mean_ltv"] == analysis.customer_ltv["ltv"].mean()
    assert pd.Timestamp(params["observation_end"]) == pd.Timestamp("2025-06-30")
