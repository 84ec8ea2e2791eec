"""Lead models: time split, metrics, champion rule, leakage flag, calibration, bundle, card."""

from __future__ import annotations

import json
import math
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from insightos_utils import modeling, scoring
from insightos_utils.errors import InputError, InsightOSError
from insightos_utils.io_utils import json_safe

TOY_FEATURES = ["events_project_created", "events_page_view", "hours_to_first_event", "campaign"]


def labelled(table: pd.DataFrame) -> pd.DataFrame:
    return table[table["label_known"]]


# --- time split ----------------------------------------------------------------------------------


def test_time_split_holds_out_the_latest_signups(toy_feature_table: pd.DataFrame) -> None:
    rows = labelled(toy_feature_table).sample(frac=1.0, random_state=3)  # order must not matter
    split = modeling.time_split(rows, holdout_fraction=0.2)
    assert len(split.holdout) == math.ceil(0.2 * len(rows))
    assert len(split.train) + len(split.holdout) == len(rows)
    assert split.train["created_at"].max() <= split.holdout["created_at"].min()
    latest = rows.sort_values("created_at").index[-len(split.holdout) :]
    assert set(split.holdout.index) == set(latest)
    assert split.train["created_at"].is_monotonic_increasing
    described = split.describe()
    assert described["holdout"]["n"] == len(split.holdout)
    assert described["holdout"]["signups_from"] == split.holdout["created_at"].min().isoformat()


def test_time_split_refuses_unknown_outcomes(toy_feature_table: pd.DataFrame) -> None:
    with pytest.raises(InputError, match="no known 'target_converted'"):
        modeling.time_split(toy_feature_table)  # open leads included


def test_time_split_needs_both_outcomes_in_the_holdout(toy_feature_table: pd.DataFrame) -> None:
    rows = labelled(toy_feature_table).copy()
    late = rows["created_at"] >= rows["created_at"].quantile(0.7)
    rows.loc[late, "target_converted"] = 0
    with pytest.raises(InsightOSError, match="holdout"):
        modeling.time_split(rows, 0.2)


# --- metrics -------------------------------------------------------------------------------------


def test_evaluate_matches_definitions() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random(1_000) < 0.1).astype(int)
    score = np.clip(0.1 + 0.3 * y + rng.normal(0, 0.15, 1_000), 0, 1)
    metrics = modeling.evaluate(y, score)
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
    curve = modeling.gains_curve(y, score, points=10)
    assert curve[0]["fraction_of_conversions"] == 0.5
    assert curve[1]["fraction_of_conversions"] == 1.0
    assert curve[0]["lift"] == 5.0
    assert curve[-1]["fraction_of_conversions"] == 1.0
    gained = [p["fraction_of_conversions"] for p in curve]
    assert gained == sorted(gained)


# --- champion and leakage ------------------------------------------------------------------------


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
    champion, reason = modeling.choose_champion(metrics, margin)
    assert champion == expected
    assert str(margin) in reason and expected in reason


def test_leakage_is_flagged_at_the_threshold() -> None:
    suspected, warning = modeling.leakage_check(0.99, 0.99)
    assert suspected and "SUSPECTED LEAKAGE" in warning
    assert modeling.leakage_check(0.989, 0.99) == (False, None)


def test_a_leaky_feature_makes_the_card_say_suspected_leakage(
    toy_feature_table: pd.DataFrame,
) -> None:
    rows = labelled(toy_feature_table).copy()
    rows["events_subscription_started"] = rows["target_converted"].astype(int)  # the answer
    features = TOY_FEATURES + ["events_subscription_started"]
    result = modeling.train_lead_models(rows, {name: features for name in modeling.MODEL_NAMES})
    assert result.metrics[result.champion]["holdout_roc_auc"] >= 0.99
    assert result.leakage_suspected
    card = _card(result)
    assert card["leakage_suspected"] is True
    assert "SUSPECTED LEAKAGE" in card["leakage_warning"]
    assert card["leakage_audit"]["result"] == "suspected leakage"


# --- training on the hand-built table ------------------------------------------------------------


def test_both_models_learn_the_toy_signal(toy_training: modeling.TrainingResult) -> None:
    for name in modeling.MODEL_NAMES:
        metrics = toy_training.metrics[name]
        assert 0.65 < metrics["holdout_roc_auc"] < 0.95, (name, metrics)
        assert metrics["top_decile_lift"] > 1.5
        assert metrics["n"] == len(toy_training.split.holdout)
    assert toy_training.champion in modeling.MODEL_NAMES
    assert not toy_training.leakage_suspected
    assert toy_training.models["v1_logreg"].best_params["C"] in modeling.LOGREG_GRID["model__C"]
    assert {"max_depth", "learning_rate", "n_estimators"} == set(
        toy_training.models["v2_xgboost"].best_params
    )


def test_calibration_fixes_balanced_weights_without_reordering(
    toy_training: modeling.TrainingResult,
) -> None:
    calibration = toy_training.calibration
    # class-balanced training inflates probabilities: the champion is off and gets calibrated
    assert calibration["applied"] is True
    before, after = calibration["before"], calibration["after"]
    assert before["relative_gap"] > 0.2
    assert after["brier"] < before["brier"]
    assert after["relative_gap"] < before["relative_gap"]
    assert after["holdout_roc_auc"] == pytest.approx(before["holdout_roc_auc"], abs=0.005)


def test_grades_follow_fixed_cutoffs(toy_training: modeling.TrainingResult) -> None:
    scores = toy_training.champion_scores
    cutoffs = toy_training.cutoffs["champion"]
    assert cutoffs["A"] > cutoffs["B"] > cutoffs["C"]
    grades = modeling.assign_grades(scores, cutoffs)
    shares = pd.Series(grades).value_counts(normalize=True)
    for grade, share in modeling.GRADE_SHARES:
        assert shares[grade] == pytest.approx(share, abs=0.02)
    ordered = grades[np.argsort(-scores)]
    assert list(ordered) == sorted(ordered)  # a higher score never gets a worse grade


# --- bundle and card -----------------------------------------------------------------------------


def _bundle_arguments() -> dict:
    return {
        "feature_spec": {"window_days": 14},
        "decisions": {
            "leaky_features": {},
            "dropped_for_linear": {"events_page_view": "r=0.95 with events_project_created"},
            "excluded_events": {"subscription_started": "seen only after conversion"},
        },
        "data_hash": "0123456789abcdef" * 4,
        "as_of": pd.Timestamp("2026-01-01"),
        "window_days": 14,
    }


def _card(result: modeling.TrainingResult) -> dict:
    card = modeling.model_card(result, **_bundle_arguments())
    return json.loads(json.dumps(json_safe(card), allow_nan=False))


def test_saved_bundles_score_exactly_as_in_training(
    toy_training: modeling.TrainingResult, toy_feature_table: pd.DataFrame, tmp_path: Path
) -> None:
    paths = modeling.save_models(toy_training, tmp_path / "models", **_bundle_arguments())
    assert {p.name for p in paths.values()} == {
        "champion.joblib",
        "v1_logreg.joblib",
        "v2_xgboost.joblib",
    }
    assert not list((tmp_path / "models").glob("*.tmp"))
    champion = modeling.load_bundle(paths["champion"])
    assert champion.model_name == toy_training.champion
    assert champion.model_version == f"{toy_training.champion}@01234567"
    assert (champion.calibrator is not None) == toy_training.calibration["applied"]
    holdout = toy_training.split.holdout
    assert np.allclose(champion.predict(holdout), toy_training.champion_scores)
    logreg = modeling.load_bundle(paths["v1_logreg"])
    assert logreg.calibrator is None
    assert np.allclose(logreg.predict(holdout), toy_training.holdout_scores["v1_logreg"])


def test_load_bundle_explains_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(InsightOSError, match="model file not found"):
        modeling.load_bundle(tmp_path / "missing.joblib")
    joblib.dump({"just": "a dict"}, tmp_path / "dict.joblib")
    with pytest.raises(InsightOSError, match="not an InsightOS model bundle"):
        modeling.load_bundle(tmp_path / "dict.joblib")
    (tmp_path / "garbage.joblib").write_bytes(b"\x00not a pickle at all")
    with pytest.raises(InsightOSError, match="not a saved InsightOS model"):
        modeling.load_bundle(tmp_path / "garbage.joblib")


def test_model_card_has_the_contract_keys(toy_training: modeling.TrainingResult) -> None:
    card = _card(toy_training)
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
    reference = modeling.data_hash(users, events)
    assert len(reference) == 64
    shuffled = users.iloc[::-1].copy()
    shuffled["created_at"] = shuffled["created_at"].astype("datetime64[s]")
    assert modeling.data_hash(shuffled, events.iloc[::-1]) == reference
    changed = users.copy()
    changed.loc[0, "status"] = "lost"
    assert modeling.data_hash(changed, events) != reference


# --- the default synthetic company ---------------------------------------------------------------


def test_both_models_beat_a_constant_baseline_on_synthetic_data(synthetic_lead_models) -> None:
    result = synthetic_lead_models["result"]
    table = modeling.metrics_table(result)
    baseline = table.loc["constant baseline"]
    for name in modeling.MODEL_NAMES:
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


def test_backtest_top_grade_converts_more_than_the_bottom(synthetic_lead_models) -> None:
    data = synthetic_lead_models["data"]
    backtest = modeling.backtest(data.users, data.events, synthetic_lead_models["as_of"])
    rates = backtest.by_grade.set_index("grade")["conversion_rate"]
    assert backtest.by_grade["leads"].sum() == len(backtest.leads) > 0
    assert rates["A"] > rates["D"]
    assert backtest.top_decile_rate > backtest.rest_rate
    assert backtest.trained_as_of == synthetic_lead_models["as_of"] - pd.Timedelta(days=60)
    # the outcome is read at as-of, after the leads were graded: some converted since
    assert 0 < backtest.leads["converted_later"].sum() < len(backtest.leads)
    document = backtest.to_dict()
    assert document["top_decile_lift"] > 1
    # no future knowledge in who was open then: every user who signed up within a lead's
    # lifetime before that date and had not converted by it is scored, lost-by-today included
    users = data.users.set_index("user_id")
    then = backtest.trained_as_of
    lifetime = modeling.lead_lifetime(data.users, synthetic_lead_models["as_of"], 60)
    open_then = users[
        (users["created_at"] <= then)
        & (users["created_at"] > then - lifetime)
        & ~(users["converted_at"] <= then)
    ]
    assert set(open_then.index) <= set(backtest.leads.index)
    assert (open_then["status"] == "lost").sum() > 0


def test_users_known_at_reopens_only_young_lost_users() -> None:
    then = pd.Timestamp("2026-03-01")
    users = pd.DataFrame(
        {
            "user_id": ["old_lost", "young_lost", "converted", "lead"],
            "created_at": pd.to_datetime(["2025-12-01", "2026-02-20", "2026-02-25", "2026-02-27"]),
            "status": ["lost", "lost", "converted", "lead"],
            "converted_at": pd.to_datetime([None, None, "2026-03-05", None]),
        }
    )
    known = modeling.users_known_at(users, then, pd.Timedelta(days=45))
    assert known["status"].tolist() == ["lost", "lead", "converted", "lead"]
    assert users["status"].tolist() == ["lost", "lost", "converted", "lead"]  # input untouched
    assert modeling.lead_lifetime(users, pd.Timestamp("2026-03-10"), 60) == pd.Timedelta(days=11)


@pytest.mark.notebook
def test_lead_scoring_notebook_runs_on_a_company_with_other_event_names(
    run_notebook, tmp_path: Path
) -> None:
    """03_lead_scoring end to end on the 'crm' company: other event names and campaigns."""
    from insightos_utils import synth
    from insightos_utils.ingest import ingest

    raw, processed, run_dir = tmp_path / "raw", tmp_path / "processed", tmp_path / "run"
    synth.write_company(raw, n_users=8_000, seed=11, profile="crm", show_progress=False)
    ingest(processed, raw_dir=raw, show_progress=False)
    run_notebook("03_lead_scoring", run_dir, processed_dir=str(processed), run_dir=str(run_dir))

    card = json.loads((run_dir / "model_card.json").read_text())
    assert card["champion"] in modeling.MODEL_NAMES
    for name in modeling.MODEL_NAMES:
        assert 0.75 <= card["models"][name]["holdout_roc_auc"] <= 0.97
    assert card["leakage_suspected"] is False
    assert card["feature_window_days"] == 14
    assert len(card["data_hash"]) == 64
    assert card["backtest"]["open_leads_scored"] > 0
    crm_events = set(synth.PROFILES["crm"].event_names)
    projects_events = set(synth.PROFILES["projects"].event_names) - crm_events
    assert set(card["leakage_audit"]["excluded_post_conversion_events"]) <= crm_events
    scored = pd.read_csv(run_dir / "scored_leads.csv")
    assert list(scored.columns[:7]) == list(scoring.SCORED_COLUMNS)  # (checked in test_scoring)
    assert len(scored) == card["scored_leads"]["open_leads"] > 0
    reasons = " ".join(scored["top_reasons"])
    assert not any(name.replace("_", " ") in reasons for name in projects_events)
    assert any(name.replace("_", " ") in reasons for name in crm_events)
    for name in ("champion", "v1_logreg", "v2_xgboost"):
        assert modeling.load_bundle(run_dir / "models" / f"{name}.joblib").features
    executed = json.loads((run_dir / "03_lead_scoring.ipynb").read_text())
    text = json.dumps(executed["cells"][-1]["outputs"])
    assert "Champion" in text


def test_feature_inputs_reuse_what_02_eda_wrote(synthetic_lead_models, tmp_path: Path) -> None:
    data, as_of = synthetic_lead_models["data"], synthetic_lead_models["as_of"]
    decided = synthetic_lead_models["inputs"]
    assert decided.source.startswith("decided here")
    decided.spec.to_json(tmp_path / "feature_spec.json")
    decisions = type(decided.decisions)(**{**vars(decided.decisions), "dropped_for_linear": {}})
    decisions.to_json(tmp_path / "feature_decisions.json")
    reused = modeling.feature_inputs(data.users, data.events, as_of, tmp_path)
    assert reused.source.startswith("read from")
    assert reused.decisions.dropped_for_linear == {}  # the file's decision, not a new one
    assert reused.spec == decided.spec
    pd.testing.assert_frame_equal(reused.feature_table, decided.feature_table)
    with pytest.raises(InputError, match="window_days 14 differs"):
        modeling.feature_inputs(data.users, data.events, as_of, tmp_path, window_days=7)
