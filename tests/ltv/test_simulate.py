"""The simulators draw what they say: a BG/NBD + Gamma-Gamma world, and a subscription-like
company (regular intervals, no churn, similar amounts)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from insightos_utils.ltv.simulate import simulate_subscription, simulate_transactions
from insightos_utils.ltv.transactions import check_transactions

from .data import WORLD_BGNBD, WORLD_GAMMA_GAMMA


def test_subscription_company_buys_regularly_never_stops_and_pays_alike() -> None:
    table = simulate_subscription(400, start="2024-01-01", end="2025-06-30", seed=2)
    check_transactions(table)  # a valid contract table
    assert table["user_id"].nunique() == 400 and table["transaction_id"].is_unique
    gaps = table.groupby("user_id")["occurred_at"].diff().dt.total_seconds().dropna() / 86_400
    per_customer = gaps.groupby(table["user_id"]).agg(["mean", "std"])
    assert (per_customer["std"] < 0.5 * per_customer["mean"]).all()  # regular: Poisson gaps CV 1
    assert 20 < per_customer["mean"].median() < 42  # about monthly
    last = table.groupby("user_id")["occurred_at"].max()
    period = per_customer["mean"].reindex(last.index)
    # nobody stops: every customer's last purchase is within about one period of the end
    assert ((pd.Timestamp("2025-06-30") - last).dt.days <= period * 1.2 + 3).all()
    spread = table["amount"].std() / table["amount"].mean()
    assert spread < 0.05 and abs(table["amount"].mean() - 49) < 1


def test_same_seed_same_company_and_a_world_with_dropout() -> None:
    a = simulate_subscription(50, seed=3)
    pd.testing.assert_frame_equal(a, simulate_subscription(50, seed=3))
    world = simulate_transactions(2000, WORLD_BGNBD, WORLD_GAMMA_GAMMA, end="2025-06-30", seed=4)
    check_transactions(world)
    repeats = world.groupby("user_id").size() - 1
    assert 0 < (repeats == 0).mean() < 1 and np.isfinite(world["amount"]).all()
