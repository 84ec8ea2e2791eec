"""Training the lead models: tuning, the champion rule, the leakage alarm, calibration.

Tuning uses time-ordered cross-validation on the earlier part of the time split only. XGBoost
becomes champion only when it beats the logistic regression by a stated holdout ROC AUC margin.
A champion that looks too good (holdout ROC AUC >= ``suspect_holdout_auc``) is reported as
suspected leakage, never celebrated. The champion is Platt-scaled when its probabilities are
off; grade cut-offs come from the holdout scores.
"""

from __future__ import annotations

from insightos_utils import _openmp  # noqa: F401  (before scikit-learn and xgboost load)

# isort: split

import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import Pipeline
from tqdm import tqdm

from insightos_utils.config import ScoringConfig
from insightos_utils.errors import InsightOSError
from insightos_utils.leads import eda, features
from insightos_utils.leads.features import TARGET
from insightos_utils.leads.grades import grade_cutoffs
from insightos_utils.leads.metrics import (
    auc_interval,
    calibration_summary,
    calibration_table,
    evaluate,
    gains_curve,
    safe_auc,
)
from insightos_utils.leads.pipelines import (
    LOGREG,
    MODEL,
    MODEL_FAMILY,
    MODEL_NAMES,
    PREPARE,
    XGBOOST,
    build_pipeline,
    model_param,
    prepare,
    split_columns,
)
from insightos_utils.leads.split import (
    CV_SPLITS,
    NotEnoughOutcomes,
    TimeSplit,
    both_outcomes,
    require_outcomes,
    time_folds,
    time_split,
)

# Small grids: training both models on 100,000 users must stay under a minute on 2 cores.
LOGREG_GRID: dict[str, list[Any]] = {model_param("C"): [0.01, 0.1, 1.0]}
XGBOOST_GRID: dict[str, list[Any]] = {
    "max_depth": [3, 5],
    "learning_rate": [0.05, 0.15],
    "n_estimators": [100, 200, 300],  # evaluated from one fit per fold (iteration_range)
}
DEFAULT_PARAMS: dict[str, dict[str, Any]] = {  # used when no time-ordered fold can tune
    LOGREG: {"C": 0.1},
    XGBOOST: {"max_depth": 4, "learning_rate": 0.1, "n_estimators": 200},
}
TUNING_ROWS = 30_000  # tuning uses at most the latest this many training rows (speed)
CALIBRATION_TOLERANCE = 0.20  # mean predicted vs observed conversion rate, relative


@dataclass
class FittedModel:
    """One tuned, fitted pipeline and how it was tuned."""

    name: str
    pipeline: Pipeline
    features: list[str]
    numeric: list[str]
    categorical: list[str]
    best_params: dict[str, Any]
    cv_roc_auc: float
    cv_results: list[dict[str, Any]]
    fit_seconds: float
    tuning_note: str | None = None  # folds left out, or why the model was not tuned

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Probability of conversion, uncalibrated."""
        return self.pipeline.predict_proba(frame[self.features])[:, 1]


def _negative_per_positive(y: np.ndarray) -> float:
    positives = max(int(y.sum()), 1)
    return (len(y) - positives) / positives


Folds = list[tuple[np.ndarray, np.ndarray]]


def _tune_logreg(
    train: pd.DataFrame,
    y: np.ndarray,
    numeric: list[str],
    categorical: list[str],
    seed: int,
    folds: Folds,
) -> tuple[dict[str, Any], float, list[dict[str, Any]]]:
    search = GridSearchCV(
        build_pipeline(LOGREG, numeric, categorical, seed),
        LOGREG_GRID,
        cv=folds,
        scoring="roc_auc",
        refit=False,
        error_score="raise",
    )
    search.fit(train, y)
    results = [
        {"C": params[model_param("C")], "cv_roc_auc": round(float(score), 4)}
        for params, score in zip(
            search.cv_results_["params"], search.cv_results_["mean_test_score"], strict=True
        )
    ]
    best = {"C": search.best_params_[model_param("C")]}
    return best, float(search.best_score_), results


def _tune_xgboost(
    train: pd.DataFrame,
    y: np.ndarray,
    numeric: list[str],
    categorical: list[str],
    seed: int,
    folds: Folds,
) -> tuple[dict[str, Any], float, list[dict[str, Any]]]:
    """Time-ordered CV over depth x learning rate; each fold's single fit also scores every
    candidate n_estimators (predicting with the first k trees), so the grid costs few fits."""
    counts = sorted(XGBOOST_GRID["n_estimators"])
    scores: dict[tuple[int, float, int], list[float]] = {}
    for fold_train, fold_test in folds:
        y_fold = y[fold_train]
        weight = _negative_per_positive(y_fold)
        prepare = build_pipeline(XGBOOST, numeric, categorical, seed).named_steps[PREPARE]
        x_fit = prepare.fit_transform(train.iloc[fold_train])
        x_test = prepare.transform(train.iloc[fold_test])
        for depth in XGBOOST_GRID["max_depth"]:
            for rate in XGBOOST_GRID["learning_rate"]:
                model = build_pipeline(XGBOOST, numeric, categorical, seed).named_steps[MODEL]
                model.set_params(
                    max_depth=depth,
                    learning_rate=rate,
                    n_estimators=counts[-1],
                    scale_pos_weight=weight,
                )
                model.fit(x_fit, y_fold)
                for count in counts:
                    proba = model.predict_proba(x_test, iteration_range=(0, count))[:, 1]
                    auc = safe_auc(y[fold_test], proba)
                    scores.setdefault((depth, rate, count), []).append(auc)
    results = [
        {
            "max_depth": depth,
            "learning_rate": rate,
            "n_estimators": count,
            "cv_roc_auc": round(float(np.nanmean(values)), 4),
        }
        for (depth, rate, count), values in scores.items()
    ]
    best = max(results, key=lambda r: (r["cv_roc_auc"], -r["n_estimators"], -r["max_depth"]))
    best_params = {k: best[k] for k in ("max_depth", "learning_rate", "n_estimators")}
    return best_params, float(best["cv_roc_auc"]), results


def fit_model(
    name: str,
    train: pd.DataFrame,
    features: Sequence[str],
    random_seed: int = 42,
) -> FittedModel:
    """Tune ``name`` by time-ordered cross-validation on the latest ``TUNING_ROWS`` rows of
    ``train`` (sorted by signup) and refit the best setting on all of it."""
    features = list(features)
    if not features:
        raise InsightOSError(f"{name}: no features left to train on (all were dropped)")
    numeric, categorical = split_columns(train, features)
    y = train[TARGET].astype(int).to_numpy()
    start = time.perf_counter()
    recent = slice(max(0, len(train) - TUNING_ROWS), len(train))
    folds, left_out = time_folds(y[recent])
    tuning_note = None
    if left_out:
        tuning_note = (
            f"{left_out} of {CV_SPLITS} time-ordered folds left out: their fitting or test "
            "part held one outcome only"
        )
    if folds:
        tune = _tune_logreg if name == LOGREG else _tune_xgboost
        best, cv_auc, results = tune(
            train[features].iloc[recent], y[recent], numeric, categorical, random_seed, folds
        )
    else:  # no fold holds both outcomes: the default setting, said plainly
        best, cv_auc, results = dict(DEFAULT_PARAMS[name]), float("nan"), []
        tuning_note = (
            f"not tuned: none of the {CV_SPLITS} time-ordered folds held both outcomes in its "
            f"fitting and test part; the default setting {best} is used"
        )
    pipeline = build_pipeline(
        name, numeric, categorical, random_seed, scale_pos_weight=_negative_per_positive(y)
    )
    pipeline.set_params(**{model_param(k): v for k, v in best.items()})
    pipeline.fit(train[features], y)
    return FittedModel(
        name=name,
        pipeline=pipeline,
        features=features,
        numeric=numeric,
        categorical=categorical,
        best_params=best,
        cv_roc_auc=round(cv_auc, 4),
        cv_results=results,
        fit_seconds=round(time.perf_counter() - start, 2),
        tuning_note=tuning_note,
    )


# --- champion ------------------------------------------------------------------------------------


def choose_champion(
    metrics: Mapping[str, Mapping[str, float]], champion_auc_margin: float = 0.01
) -> tuple[str, str]:
    """The champion and the sentence explaining why.

    Rule: the logistic regression (interpretable) unless XGBoost's holdout ROC AUC is higher by
    at least ``champion_auc_margin``.
    """
    logreg_auc = float(metrics[LOGREG]["holdout_roc_auc"])
    xgb_auc = float(metrics[XGBOOST]["holdout_roc_auc"])
    if not (np.isfinite(logreg_auc) and np.isfinite(xgb_auc)):
        raise NotEnoughOutcomes(
            "no champion is chosen: the holdout holds one outcome only, so its ROC AUC is "
            "undefined",
            "Bring more history or move as-of later, so the holdout holds both outcomes.",
        )
    gain = xgb_auc - logreg_auc
    if gain >= champion_auc_margin - 1e-12:
        return XGBOOST, (
            f"{XGBOOST} is champion: its holdout ROC AUC {xgb_auc:.3f} beats {LOGREG}'s "
            f"{logreg_auc:.3f} by {gain:.3f}, at least the required margin {champion_auc_margin}"
        )
    return LOGREG, (
        f"{LOGREG} is champion: {XGBOOST}'s holdout ROC AUC {xgb_auc:.3f} is not better than "
        f"{LOGREG}'s {logreg_auc:.3f} by the required margin {champion_auc_margin} "
        f"(difference {gain:+.3f}); the interpretable model is preferred"
    )


def leakage_check(
    champion_auc: float, suspect_holdout_auc: float = 0.99
) -> tuple[bool, str | None]:
    """Suspected leakage when the champion's holdout ROC AUC is implausibly high."""
    if champion_auc >= suspect_holdout_auc:
        return True, (
            f"SUSPECTED LEAKAGE: the champion's holdout ROC AUC is {champion_auc:.3f} "
            f"(>= {suspect_holdout_auc}). Lead models on honest, time-split data rarely pass "
            "0.9; a feature probably records the outcome itself (an event caused by the "
            "conversion, or data from after it). Do not use these scores until the feature "
            "list is audited."
        )
    return False, None


# --- the whole training step ---------------------------------------------------------------------


@dataclass
class TrainingResult:
    """Everything training produced: models, holdout predictions, metrics, champion, calibration."""

    split: TimeSplit
    models: dict[str, FittedModel]
    holdout_scores: pd.DataFrame  # index user_id: target, created_at, one column per model
    metrics: dict[str, dict[str, Any]]
    curves: dict[str, dict[str, list[dict[str, float]]]]
    champion: str
    champion_reason: str
    champion_auc_margin: float
    calibration: dict[str, Any]
    calibrated_model: CalibratedClassifierCV | None
    leakage_suspected: bool
    leakage_warning: str | None
    suspect_holdout_auc: float
    cutoffs: dict[str, dict[str, float]]
    explain_reference: dict[str, np.ndarray]
    random_seed: int
    signal: dict[str, Any] = field(default_factory=dict)  # see signal_check
    training_seconds: float = 0.0
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def champion_scores(self) -> np.ndarray:
        """The champion's final (calibrated when calibration was applied) holdout scores."""
        return self.holdout_scores["champion"].to_numpy()


def train_lead_models(
    training_rows: pd.DataFrame,
    features_by_model: Mapping[str, Sequence[str]],
    *,
    holdout_fraction: float = 0.2,
    champion_auc_margin: float = 0.01,
    suspect_holdout_auc: float = 0.99,
    random_seed: int = 42,
    show_progress: bool = False,
    min_conversions: int = ScoringConfig.min_conversions,
    min_non_conversions: int = ScoringConfig.min_non_conversions,
) -> TrainingResult:
    """Split by time, tune and fit both models, evaluate on the holdout, pick and calibrate the
    champion, flag suspected leakage, learn grade cut-offs.

    ``training_rows`` are the feature-table rows whose outcome is known at as-of
    (``features.training_rows``); ``features_by_model`` the columns each model may use
    (``model_features``). Too few conversions or non-conversions (``min_conversions``,
    ``min_non_conversions``), or a time split part with one outcome only, raise
    ``NotEnoughOutcomes`` with the counts.
    """
    start = time.perf_counter()
    require_outcomes(training_rows, "The labelled data", min_conversions, min_non_conversions)
    split = time_split(training_rows, holdout_fraction)
    y_holdout = split.holdout[TARGET].astype(int).to_numpy()
    holdout_scores = pd.DataFrame(
        {TARGET: y_holdout, "created_at": split.holdout["created_at"].to_numpy()},
        index=split.holdout.index,
    )
    models: dict[str, FittedModel] = {}
    metrics: dict[str, dict[str, Any]] = {}
    curves: dict[str, dict[str, list[dict[str, float]]]] = {}
    explain_reference: dict[str, np.ndarray] = {}
    steps = tqdm(
        MODEL_NAMES, desc="training lead models", disable=not show_progress, file=sys.stderr
    )
    for name in steps:
        steps.set_postfix_str(name)
        fitted = fit_model(name, split.train, features_by_model[name], random_seed)
        models[name] = fitted
        score = fitted.predict(split.holdout)
        holdout_scores[name] = score
        metrics[name] = {
            **evaluate(y_holdout, score),
            "cv_roc_auc": fitted.cv_roc_auc,
            "best_params": fitted.best_params,
            "fit_seconds": fitted.fit_seconds,
            "n_features": len(fitted.features),
        }
        curves[name] = {
            "gains": gains_curve(y_holdout, score),
            "calibration": calibration_table(y_holdout, score),
        }
        explain_reference[name] = prepare(fitted.pipeline, split.train, fitted.features).mean(
            axis=0
        )

    champion, reason = choose_champion(metrics, champion_auc_margin)
    calibration, calibrated = _calibrate_champion(models[champion], split, holdout_scores[champion])
    holdout_scores["champion"] = (
        calibrated.predict_proba(split.holdout[models[champion].features])[:, 1]
        if calibrated is not None
        else holdout_scores[champion]
    )
    if calibrated is not None:
        calibration["after"] = calibration_summary(y_holdout, holdout_scores["champion"])
        calibration["after"]["holdout_roc_auc"] = round(
            safe_auc(y_holdout, holdout_scores["champion"].to_numpy()), 4
        )
        calibration["after_curve"] = calibration_table(y_holdout, holdout_scores["champion"])
    suspected, warning = leakage_check(metrics[champion]["holdout_roc_auc"], suspect_holdout_auc)
    signal = signal_check(y_holdout, holdout_scores["champion"].to_numpy(), random_seed)
    cutoffs = {name: grade_cutoffs(holdout_scores[name].to_numpy()) for name in MODEL_NAMES}
    cutoffs["champion"] = grade_cutoffs(holdout_scores["champion"].to_numpy())
    return TrainingResult(
        split=split,
        models=models,
        holdout_scores=holdout_scores,
        metrics=metrics,
        curves=curves,
        champion=champion,
        champion_reason=reason,
        champion_auc_margin=champion_auc_margin,
        calibration=calibration,
        calibrated_model=calibrated,
        leakage_suspected=suspected,
        leakage_warning=warning,
        suspect_holdout_auc=suspect_holdout_auc,
        cutoffs=cutoffs,
        explain_reference=explain_reference,
        random_seed=random_seed,
        signal=signal,
        training_seconds=round(time.perf_counter() - start, 2),
    )


SIGNAL_RULE = (
    "the champion carries a usable signal for ranking when the lower end of the 95% bootstrap "
    "interval of its holdout ROC AUC (1,000 resamples of the holdout, seeded) is above 0.5; "
    "otherwise its ranking is not distinguishable from chance and grades are withheld"
)


def signal_check(
    y_holdout: np.ndarray, champion_scores: np.ndarray, seed: int = 42
) -> dict[str, Any]:
    """Is the champion better than chance? (``SIGNAL_RULE``), for the model card."""
    auc = safe_auc(y_holdout, champion_scores)
    low, high = auc_interval(y_holdout, champion_scores, seed=seed)
    better = bool(np.isfinite(low) and low > 0.5)
    reason = None
    if not better:
        reason = (
            f"NO USABLE SIGNAL: the champion's holdout ROC AUC is {auc:.3f} and its 95% "
            f"bootstrap interval [{low:.3f}, {high:.3f}] includes 0.5 (chance). The data carry "
            "no usable signal for ranking these leads, so grades are withheld; the scores are "
            "not a call order. More history, more outcomes, or more informative data (product "
            "events, lead attributes) would fix it."
        )
    return {
        "better_than_chance": better,
        "holdout_roc_auc": round(auc, 4),
        "auc_ci": [round(low, 4), round(high, 4)],
        "rule": SIGNAL_RULE,
        "reason": reason,
    }


def _calibrate_champion(
    champion: FittedModel, split: TimeSplit, holdout_score: pd.Series
) -> tuple[dict[str, Any], CalibratedClassifierCV | None]:
    """Platt-scale the champion when its probabilities are off; the holdout is never used to fit.

    Class-balanced training inflates probabilities, so the champion is usually off. The sigmoid is
    fitted on out-of-fold predictions over the training part (3 contiguous time blocks) and
    applied to a refit on the whole training part, so the ranking and the ROC AUC are unchanged.
    """
    y_holdout = split.holdout[TARGET].astype(int).to_numpy()
    before = calibration_summary(y_holdout, holdout_score.to_numpy())
    before["holdout_roc_auc"] = round(safe_auc(y_holdout, holdout_score.to_numpy()), 4)
    gap = before["relative_gap"]
    off = gap is not None and gap > CALIBRATION_TOLERANCE
    report: dict[str, Any] = {
        "rule": (
            f"calibrate the champion (sigmoid / Platt, CalibratedClassifierCV fitted on "
            f"out-of-fold predictions over the training part, never the holdout) when its mean "
            f"predicted probability on the holdout differs from the observed conversion rate by "
            f"more than {CALIBRATION_TOLERANCE:.0%}"
        ),
        "model": champion.name,
        "applied": bool(off),
        "method": "sigmoid" if off else None,
        "before": before,
        "before_curve": calibration_table(y_holdout, holdout_score.to_numpy()),
    }
    if not off:
        return report, None
    y_train = split.train[TARGET].astype(int).to_numpy()
    blocks = list(KFold(n_splits=CV_SPLITS).split(y_train))
    if not all(
        both_outcomes(y_train[fit]) and both_outcomes(y_train[test]) for fit, test in blocks
    ):
        report.update(
            applied=False,
            method=None,
            skipped=(
                f"not calibrated although off: one of the {CV_SPLITS} time blocks of the "
                "training part holds one outcome only, so the sigmoid cannot be fitted honestly"
            ),
        )
        return report, None
    calibrated = CalibratedClassifierCV(
        clone(champion.pipeline), method="sigmoid", cv=KFold(n_splits=CV_SPLITS), ensemble=False
    )
    calibrated.fit(split.train[champion.features], split.train[TARGET].astype(int).to_numpy())
    return report, calibrated


def model_features(
    decisions: eda.FeatureDecisions, spec: features.FeatureSpec
) -> dict[str, list[str]]:
    """Each model's feature list from the EDA decisions (linear drops collinear features)."""
    return {name: list(decisions.features_for(MODEL_FAMILY[name], spec)) for name in MODEL_NAMES}
