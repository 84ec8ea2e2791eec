"""Holdout metrics against their definitions (scikit-learn's functions)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from insightos_utils.leads.metrics import evaluate, gains_curve


def test_evaluate_matches_definitions() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random(1_000) < 0.1).astype(int)
    score = np.clip(0.1 + 0.3 * y + rng.normal(0, 0.15, 1_000), 0, 1)
    metrics = evaluate(y, score)
    top = np.argsort(-score)[:100]
    assert metrics["holdout_roc_auc"] == pytest.approx(roc_auc_score(y, score), abs=1e-4)
    assert metrics["holdout_pr_auc"] == pytest.approx(average_precision_score(y, score), abs=1e-4)
    assert metrics["holdout_brier"] == pytest.approx(brier_score_loss(y, score), abs=1e-4)
    assert metrics["top_decile_precision"] == pytest.approx(y[top].mean(), abs=1e-4)
    assert metrics["top_decile_recall"] == pytest.approx(y[top].sum() / y.sum(), abs=1e-4)
    assert metrics["top_decile_lift"] == pytest.approx(y[top].mean() / y.mean(), abs=1e-3)
    assert metrics["base_rate"] == pytest.approx(y.mean(), abs=1e-4)


def test_gains_curve_reaches_every_conversion() -> None:
    y = np.array([1, 1, 0, 0, 0, 0, 0, 0, 0, 0])
    score = np.linspace(1, 0, 10)  # the two converters ranked first
    curve = gains_curve(y, score, points=10)
    assert curve[0]["fraction_of_conversions"] == 0.5
    assert curve[1]["fraction_of_conversions"] == 1.0
    assert curve[0]["lift"] == 5.0
    assert curve[-1]["fraction_of_conversions"] == 1.0
    gained = [p["fraction_of_conversions"] for p in curve]
    assert gained == sorted(gained)
