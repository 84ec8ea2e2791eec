"""Training: tuning, the champion rule, the leakage alarm, calibration, the synthetic company."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from insightos_utils.leads import scoring
from insightos_utils.leads.bundle import make_bundle
from insightos_utils.leads.narrative import metrics_table, summary_markdown
from insightos_utils.leads.pipelines import MODEL_NAMES, model_param
from insightos_utils.leads.split import NotEnoughOutcomes
from insightos_utils.leads.train import (
    LOGREG_GRID,
    TrainingResult,
    choose_champion,
    leakage_check,
    signal_check,
    train_lead_models,
)

from .data import TOY_FEATURES, bundle_arguments, card_of


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


def test_conversions_only_late_train_without_a_crash_and_say_what_was_left_out(
    toy_feature_table: pd.DataFrame,
) -> None:
    """The CRM situation: wins only in the latest months, so the early time-ordered folds and
    calibration blocks hold one outcome; they are left out (and said so), never a crash."""
    rows = toy_feature_table[toy_feature_table["label_known"]].sort_values("created_at").copy()
    early = np.arange(len(rows)) < len(rows) // 2
    rows.loc[early, "target_converted"] = 0
    result = train_lead_models(rows, {name: TOY_FEATURES for name in MODEL_NAMES})
    for name in MODEL_NAMES:
        note = result.models[name].tuning_note
        assert note is not None and "folds left out" in note, (name, note)
        assert 0.6 < result.metrics[name]["holdout_roc_auc"] < 1.0
    calibration = result.calibration
    assert calibration["applied"] is False
    if calibration["before"]["relative_gap"] > 0.2:  # off, but cannot be calibrated honestly
        assert "one outcome only" in calibration["skipped"]


def test_too_few_conversions_are_not_trained_on(toy_feature_table: pd.DataFrame) -> None:
    rows = toy_feature_table[toy_feature_table["label_known"]]
    conversions = int(rows["target_converted"].sum())
    with pytest.raises(NotEnoughOutcomes, match=f"{conversions:,} converted"):
        train_lead_models(
            rows,
            {name: TOY_FEATURES for name in MODEL_NAMES},
            min_conversions=conversions + 1,
        )


def test_a_model_no_better_than_chance_says_so() -> None:
    rng = np.random.default_rng(5)
    y = (rng.random(800) < 0.2).astype(int)
    noise = signal_check(y, rng.random(800))
    assert noise["better_than_chance"] is False
    low, high = noise["auc_ci"]
    assert low <= 0.5 and low < high
    assert "NO USABLE SIGNAL" in noise["reason"] and "withheld" in noise["reason"]
    useful = signal_check(y, y + rng.normal(0, 0.8, 800))
    assert useful["better_than_chance"] is True and useful["reason"] is None
    assert useful["auc_ci"][0] > 0.5


def test_the_toy_champion_is_better_than_chance(toy_training: TrainingResult) -> None:
    signal = toy_training.signal
    assert signal["better_than_chance"] is True
    assert (
        signal["holdout_roc_auc"] == toy_training.metrics[toy_training.champion]["holdout_roc_auc"]
    )
    low, high = signal["auc_ci"]
    assert 0.5 < low < signal["holdout_roc_auc"] < high


def test_a_world_without_signal_gets_no_grades(toy_feature_table: pd.DataFrame) -> None:
    """Outcomes drawn independently of every feature (a known zero signal): the card says the
    champion is no better than chance and its bundle withholds grades."""
    rows = toy_feature_table[toy_feature_table["label_known"]].copy()
    rng = np.random.default_rng(11)
    rows["target_converted"] = pd.array((rng.random(len(rows)) < 0.2).astype(int), dtype="Int8")
    result = train_lead_models(rows, {name: TOY_FEATURES for name in MODEL_NAMES})
    assert result.signal["better_than_chance"] is False
    assert result.signal["auc_ci"][0] <= 0.5
    card = card_of(result)
    assert card["signal"]["better_than_chance"] is False
    assert card["grades"]["withheld"] is True
    assert "NO USABLE SIGNAL" in summary_markdown(card)
    bundle = make_bundle(result, result.champion, champion=True, **bundle_arguments())
    assert bundle.grades_withheld and "NO USABLE SIGNAL" in bundle.grades_withheld
    leads = toy_feature_table[~toy_feature_table["label_known"]]
    assert (scoring.score_leads(bundle, leads)["grade"] == "").all()
