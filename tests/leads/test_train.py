"""Training: tuning, the champion rule, the leakage alarm, calibration, the synthetic company."""

from __future__ import annotations

import pytest

from insightos_utils.leads.narrative import metrics_table
from insightos_utils.leads.pipelines import MODEL_NAMES, model_param
from insightos_utils.leads.train import LOGREG_GRID, TrainingResult, choose_champion, leakage_check


@pytest.mark.parametrize(
    ("logreg_auc", "xgb_auc", "margin", "expected"),
    [
        (0.80, 0.805, 0.01, "v1_logreg"),  # better, but not by the margin
        (0.80, 0.81, 0.01, "v2_xgboost"),  # exactly the margin
        (0.80, 0.86, 0.01, "v2_xgboost"),
        (0.82, 0.79, 0.01, "v1_logreg"),
        (0.80, 0.83, 0.05, "v1_logreg"),  # a larger stated margin
    ],
)
def test_champion_rule(logreg_auc: float, xgb_auc: float, margin: float, expected: str) -> None:
    metrics = {
        "v1_logreg": {"holdout_roc_auc": logreg_auc},
        "v2_xgboost": {"holdout_roc_auc": xgb_auc},
    }
    champion, reason = choose_champion(metrics, margin)
    assert champion == expected
    assert str(margin) in reason and expected in reason


def test_leakage_is_flagged_at_the_threshold() -> None:
    suspected, warning = leakage_check(0.99, 0.99)
    assert suspected and "SUSPECTED LEAKAGE" in warning
    assert leakage_check(0.989, 0.99) == (False, None)


def test_both_models_learn_the_toy_signal(toy_training: TrainingResult) -> None:
    for name in MODEL_NAMES:
        metrics = toy_training.metrics[name]
        assert 0.65 < metrics["holdout_roc_auc"] < 0.95, (name, metrics)
        assert metrics["top_decile_lift"] > 1.5
        assert metrics["n"] == len(toy_training.split.holdout)
    assert toy_training.champion in MODEL_NAMES
    assert not toy_training.leakage_suspected
    assert toy_training.models["v1_logreg"].best_params["C"] in LOGREG_GRID[model_param("C")]
    assert {"max_depth", "learning_rate", "n_estimators"} == set(
        toy_training.models["v2_xgboost"].best_params
    )


def test_calibration_fixes_balanced_weights_without_reordering(
    toy_training: TrainingResult,
) -> None:
    calibration = toy_training.calibration
    # class-balanced training inflates probabilities: the champion is off and gets calibrated
    assert calibration["applied"] is True
    before, after = calibration["before"], calibration["after"]
    assert before["relative_gap"] > 0.2
    assert after["brier"] < before["brier"]
    assert after["relative_gap"] < before["relative_gap"]
    assert after["holdout_roc_auc"] == pytest.approx(before["holdout_roc_auc"], abs=0.005)


def test_both_models_beat_a_constant_baseline_on_synthetic_data(synthetic_lead_models) -> None:
    result = synthetic_lead_models["result"]
    table = metrics_table(result)
    baseline = table.loc["constant baseline"]
    for name in MODEL_NAMES:
        metrics = result.metrics[name]
        # a sound model on honest, time-split data: clearly useful, never perfect
        assert 0.75 <= metrics["holdout_roc_auc"] <= 0.97, (name, metrics)
        assert metrics["holdout_pr_auc"] > 2 * baseline["holdout_pr_auc"]
        assert metrics["top_decile_lift"] > 2.0
    assert not result.leakage_suspected
    inputs = synthetic_lead_models["inputs"]
    excluded = set(inputs.spec.excluded_events)
    assert excluded, "the synthetic company logs post-conversion events; they must be excluded"
    for fitted in result.models.values():
        assert not {f"events_{name}" for name in excluded} & set(fitted.features)
