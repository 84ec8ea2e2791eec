"""Explanations: contributions add up to the margin, signs and order are right, words are generic."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xgboost

from insightos_utils.leads import explain
from insightos_utils.leads.pipelines import build_pipeline, prepare
from insightos_utils.leads.train import TrainingResult


def tiny_logistic() -> tuple:
    """A hand-built logistic model on two features with known signs: more invites raise the
    odds, more help views lower them, and campaign 'paid' raises them."""
    rng = np.random.default_rng(1)
    n = 600
    frame = pd.DataFrame(
        {
            "events_teammate_invited": rng.poisson(2, n),
            "events_help_viewed": rng.poisson(2, n),
            "campaign": pd.Series(rng.choice(["paid", "organic"], n), dtype="str"),
        }
    )
    logit = (
        1.2 * (frame["events_teammate_invited"] - 2)
        - 0.8 * (frame["events_help_viewed"] - 2)
        + np.where(frame["campaign"] == "paid", 1.0, -1.0)
    )
    target = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    features = list(frame.columns)
    pipeline = build_pipeline(
        "v1_logreg", ["events_teammate_invited", "events_help_viewed"], ["campaign"]
    )
    pipeline.set_params(model__C=100.0)
    pipeline.fit(frame, target)
    reference = pipeline[:-1].transform(frame).mean(axis=0)
    return pipeline, frame, features, reference


def test_logistic_contributions_are_coefficient_times_standardized_value() -> None:
    pipeline, frame, features, reference = tiny_logistic()
    prepared = prepare(pipeline, frame, features)
    contributions, base, _ = explain.feature_contributions(pipeline, prepared, features, reference)
    scaler = pipeline.named_steps["prepare"].named_transformers_["num"].named_steps["scale"]
    coef = pipeline[-1].coef_[0]
    standardized = (frame["events_teammate_invited"] - scaler.mean_[0]) / scaler.scale_[0]
    assert np.allclose(contributions[:, 0], coef[0] * standardized)
    assert coef[0] > 0 > coef[1]  # the model learned the built-in signs
    # contributions plus the base value are the model's own margin
    assert np.allclose(contributions.sum(axis=1) + base, pipeline.decision_function(frame))


def test_logistic_contributions_are_measured_from_the_training_mean() -> None:
    """Against the mean training lead, not against zero: a one-hot category contributes
    coefficient x (indicator - its training share), so over the training rows every feature's
    contribution averages zero, and a lead at the mean has no reasons."""
    pipeline, frame, features, reference = tiny_logistic()
    prepared = prepare(pipeline, frame, features)
    contributions, base, _ = explain.feature_contributions(pipeline, prepared, features, reference)
    assert np.allclose(contributions.mean(axis=0), 0.0, atol=1e-9)
    coef = pipeline[-1].coef_[0]
    columns = explain.transformed_columns(pipeline)
    paid = [i for i, c in enumerate(columns) if c.category == "paid"][0]
    organic = [i for i, c in enumerate(columns) if c.category == "organic"][0]
    share_paid = (frame["campaign"] == "paid").mean()
    is_paid = (frame["campaign"] == "paid").to_numpy(dtype=float)
    expected = coef[paid] * (is_paid - share_paid) + coef[organic] * (
        (1 - is_paid) - (1 - share_paid)
    )
    assert np.allclose(contributions[:, features.index("campaign")], expected)
    assert np.allclose(base, pipeline[-1].intercept_[0] + reference @ coef)


def test_training_keeps_the_mean_prepared_row_as_the_reference(
    toy_training: TrainingResult,
) -> None:
    fitted = toy_training.models["v1_logreg"]
    train = toy_training.split.train
    prepared = prepare(fitted.pipeline, train, fitted.features)
    reference = toy_training.explain_reference["v1_logreg"]
    assert np.allclose(reference, prepared.mean(axis=0))
    explained = explain.explain_leads(
        fitted.pipeline, train, fitted.features, window_days=14, reference=reference
    )
    assert np.allclose(explained.contributions["campaign"].mean(), 0.0, atol=1e-9)


def test_reasons_have_the_right_sign_and_order() -> None:
    pipeline, frame, features, reference = tiny_logistic()
    lead = pd.DataFrame(
        {
            "events_teammate_invited": [9],  # far above average: strongly raises
            "events_help_viewed": [3],  # a little above average: lowers a little
            "campaign": ["paid"],
        },
        index=pd.Index(["u1"], name="user_id"),
    )
    explained = explain.explain_leads(
        pipeline, lead, features, window_days=14, top_n=3, reference=reference
    )
    top = explained.top_features.iloc[0].tolist()
    values = explained.top_contributions.iloc[0].to_numpy()
    assert top[0] == "events_teammate_invited"
    assert list(np.abs(values)) == sorted(np.abs(values), reverse=True)
    signs = dict(zip(top, np.sign(values), strict=True))
    assert signs["events_teammate_invited"] > 0
    assert signs["events_help_viewed"] < 0
    assert signs["campaign"] > 0
    text = explained.text.iloc[0]
    assert text.startswith("teammate invited 9 times in the first 14 days (raises)")
    assert "help viewed 3 times in the first 14 days (lowers)" in text
    assert "came from campaign paid (raises)" in text
    assert text.count(";") == 2


@pytest.mark.parametrize(
    ("max_exact_rows", "method"),
    [(10**9, "XGBoost TreeSHAP"), (10, "XGBoost path contributions (Saabas)")],
)
def test_xgboost_contributions_sum_to_the_margin(
    toy_training: TrainingResult, monkeypatch, max_exact_rows: int, method: str
) -> None:
    monkeypatch.setattr(explain, "EXACT_SHAP_MAX_ROWS", max_exact_rows)
    fitted = toy_training.models["v2_xgboost"]
    holdout = toy_training.split.holdout
    prepared = prepare(fitted.pipeline, holdout, fitted.features)
    contributions, base, used = explain.feature_contributions(
        fitted.pipeline, prepared, fitted.features
    )
    assert used == method
    margin = (
        fitted.pipeline[-1].get_booster().predict(xgboost.DMatrix(prepared), output_margin=True)
    )
    assert contributions.shape == (len(holdout), len(fitted.features))
    assert np.allclose(contributions.sum(axis=1) + base, margin, atol=1e-4)


def test_identical_rows_are_explained_once_with_the_same_answer() -> None:
    rng = np.random.default_rng(2)
    matrix = rng.integers(0, 3, size=(500, 4)).astype(float)
    matrix[::7, 1] = np.nan
    unique_rows, inverse = explain.distinct_rows(matrix)
    assert len(unique_rows) < len(matrix)
    assert np.array_equal(unique_rows[inverse], matrix, equal_nan=True)


def test_one_hot_columns_map_back_to_their_feature(toy_training: TrainingResult) -> None:
    pipeline = toy_training.models["v1_logreg"].pipeline
    columns = explain.transformed_columns(pipeline)
    categories = {c.category for c in columns if c.feature == "campaign"}
    assert categories == {"google_a", "meta_b", "(none)"}
    assert any(c.kind == "missing" and c.feature == "hours_to_first_event" for c in columns)
    assert len(columns) == pipeline[:-1].transform(toy_training.split.holdout).shape[1]


@pytest.mark.parametrize(
    ("feature", "value", "categorical", "expected"),
    [
        ("events_project_created", 0, False, "no project created in the first 14 days"),
        ("events_project_created", 1, False, "project created once in the first 14 days"),
        ("events_deal-stage.changed", 3, False, "deal stage changed 3 times in the first 14 days"),
        ("events_DealWon", 2, False, "deal won 2 times in the first 14 days"),
        ("campaign", "google_gestao_agil", True, "came from campaign google_gestao_agil"),
        ("campaign", "(none)", True, "no campaign recorded"),
        ("medium", "cpc", True, "came via medium cpc"),
        ("plan_tier", "gold", True, "plan tier is gold"),
        ("seats_requested", float("nan"), False, "seats requested: not yet"),
        ("seats_requested", 2.25, False, "seats requested: 2.2"),
        ("days_active", 4.0, False, "active on 4 of the first 14 days"),
        ("distinct_event_types", 6, False, "6 different kinds of activity in the first 14 days"),
        ("hours_to_first_task_created", 2.4, False, "first task created 2 hours after signup"),
        ("hours_to_first_task_created", 0.5, False, "first task created within an hour of signup"),
        ("hours_to_first_task_created", 72.0, False, "first task created 3 days after signup"),
        ("hours_to_first_task_created", 336.0, False, "no task created in the first 14 days"),
        ("events_other", 2, False, "other events 2 times in the first 14 days"),
    ],
)
def test_reasons_read_like_words(feature, value, categorical, expected) -> None:
    assert explain.describe_value(feature, value, 14, categorical) == expected


def test_reason_frequency_counts_directions(toy_training: TrainingResult) -> None:
    fitted = toy_training.models["v1_logreg"]
    explained = explain.explain_leads(
        fitted.pipeline,
        toy_training.split.holdout,
        fitted.features,
        window_days=14,
        top_n=2,
        reference=toy_training.explain_reference["v1_logreg"],
    )
    frequency = explain.reason_frequency(explained)
    assert frequency["total"].sum() == (explained.top_features != "").to_numpy().sum()
    assert (frequency["total"] == frequency["raises"] + frequency["lowers"]).all()
    assert frequency["total"].is_monotonic_decreasing


def plain_reason_text(explained: explain.LeadExplanations, frame: pd.DataFrame) -> list[str]:
    """The top reasons phrased row by row, one ``describe_value`` call per reason: the slow,
    obvious version of what ``explain_leads`` builds once per distinct phrase."""
    texts = []
    for user in frame.index:
        names = explained.top_features.loc[user]
        values = explained.top_contributions.loc[user]
        parts = []
        for name, value in zip(names, values, strict=True):
            if name == "":
                continue
            raw = frame.at[user, name]
            if pd.api.types.is_numeric_dtype(frame[name]):
                raw = np.nan if pd.isna(raw) else np.round(float(raw), 1)
            phrase = explain.describe_value(
                name, raw, 14, not pd.api.types.is_numeric_dtype(frame[name])
            )
            parts.append(f"{phrase} ({explain.RAISES if value > 0 else explain.LOWERS})")
        texts.append("; ".join(parts))
    return texts


@pytest.mark.parametrize("name", ["v1_logreg", "v2_xgboost"])
def test_reason_text_is_the_plain_row_by_row_phrasing(
    toy_training: TrainingResult, name: str
) -> None:
    fitted = toy_training.models[name]
    holdout = toy_training.split.holdout
    explained = explain.explain_leads(
        fitted.pipeline,
        holdout,
        fitted.features,
        window_days=14,
        top_n=3,
        reference=toy_training.explain_reference[name],
    )
    assert explained.text.nunique() > 10  # many different reason texts are compared
    assert explained.text.tolist() == plain_reason_text(explained, holdout)


def test_tree_contributions_of_distinct_rows_are_every_rows_contributions(
    toy_training: TrainingResult,
) -> None:
    fitted = toy_training.models["v2_xgboost"]
    holdout = toy_training.split.holdout
    prepared = prepare(fitted.pipeline, holdout, fitted.features)
    doubled = np.vstack([prepared, prepared[::-1]])  # every row twice
    distinct = explain.distinct_rows(doubled)
    assert len(distinct[0]) <= len(prepared)
    contributions, base, _ = explain.feature_contributions(
        fitted.pipeline, doubled, fitted.features, distinct=distinct
    )
    per_column = (
        fitted.pipeline[-1].get_booster().predict(xgboost.DMatrix(doubled), pred_contribs=True)
    )
    matrix = explain._feature_matrix(explain.transformed_columns(fitted.pipeline), fitted.features)
    assert np.allclose(contributions, per_column[:, :-1].astype(np.float64) @ matrix, atol=1e-6)
    assert np.allclose(base, per_column[:, -1], atol=1e-6)


def test_largest_columns_are_a_stable_descending_sort() -> None:
    rng = np.random.default_rng(3)
    magnitude = rng.integers(0, 4, size=(300, 7)).astype(float)  # many ties
    expected = np.argsort(-magnitude, axis=1, kind="stable")[:, :3]
    assert np.array_equal(explain._largest_columns(magnitude, 3), expected)
    assert explain._largest_columns(magnitude, 0).shape == (300, 0)


def test_reason_joining_handles_no_rows_and_no_reasons() -> None:
    assert len(explain._join_reasons(np.zeros((0, 3), dtype=np.int64), [""])) == 0
    ids = np.array([[1, 2, 0], [0, 0, 0], [2, 0, 0], [1, 2, 0]])
    joined = explain._join_reasons(ids, ["", "a (raises)", "b (lowers)"])
    assert joined.tolist() == ["a (raises); b (lowers)", "", "b (lowers)", "a (raises); b (lowers)"]
