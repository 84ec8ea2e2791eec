"""model_card.json: the contract's keys, the leakage audit, the data fingerprint."""

from __future__ import annotations

import pandas as pd

from insightos_utils.leads.card import data_hash
from insightos_utils.leads.pipelines import MODEL_NAMES
from insightos_utils.leads.train import TrainingResult, train_lead_models

from .data import TOY_FEATURES, card_of, labelled


def test_model_card_has_the_contract_keys(toy_training: TrainingResult) -> None:
    card = card_of(toy_training)
    assert card["champion"] == toy_training.champion
    for name in ("v1_logreg", "v2_xgboost"):
        assert 0 < card["models"][name]["holdout_roc_auc"] < 1
        assert 0 < card["models"][name]["holdout_pr_auc"] < 1
        assert card["models"][name]["features"] == TOY_FEATURES
    assert card["feature_window_days"] == 14
    assert card["data_hash"] == "0123456789abcdef" * 4
    assert card["trained_at"].endswith("Z")
    assert card["champion_rule"]["margin"] == 0.01
    assert card["holdout"]["holdout"]["n"] == len(toy_training.split.holdout)
    assert card["leakage_suspected"] is False
    assert card["leakage_audit"]["excluded_post_conversion_events"] == {
        "subscription_started": "seen only after conversion"
    }
    assert "events_page_view" in card["models"]["v1_logreg"]["dropped_features"]
    assert "events_page_view" not in card["models"]["v2_xgboost"]["dropped_features"]
    assert "scikit-learn" in card["library_versions"]


def test_a_leaky_feature_makes_the_card_say_suspected_leakage(
    toy_feature_table: pd.DataFrame,
) -> None:
    rows = labelled(toy_feature_table).copy()
    rows["events_subscription_started"] = rows["target_converted"].astype(int)  # the answer
    features = TOY_FEATURES + ["events_subscription_started"]
    result = train_lead_models(rows, {name: features for name in MODEL_NAMES})
    assert result.metrics[result.champion]["holdout_roc_auc"] >= 0.99
    assert result.leakage_suspected
    card = card_of(result)
    assert card["leakage_suspected"] is True
    assert "SUSPECTED LEAKAGE" in card["leakage_warning"]
    assert card["leakage_audit"]["result"] == "suspected leakage"


def test_data_hash_is_stable_and_sensitive() -> None:
    users = pd.DataFrame(
        {
            "user_id": ["u1", "u2"],
            "created_at": pd.to_datetime(["2026-01-01", "2026-01-02"]),
            "status": ["lead", "converted"],
            "converted_at": pd.to_datetime([None, "2026-01-05"]),
            "marketing": ["", '{"utm_campaign": "x"}'],
        }
    )
    events = pd.DataFrame(
        {
            "event_id": ["e1", "e2"],
            "user_id": ["u1", "u2"],
            "event_name": ["a", "b"],
            "occurred_at": pd.to_datetime(["2026-01-01 10:00", "2026-01-02 11:00"]),
        }
    )
    reference = data_hash(users, events)
    assert len(reference) == 64
    shuffled = users.iloc[::-1].copy()
    shuffled["created_at"] = shuffled["created_at"].astype("datetime64[s]")
    assert data_hash(shuffled, events.iloc[::-1]) == reference
    changed = users.copy()
    changed.loc[0, "status"] = "lost"
    assert data_hash(changed, events) != reference
