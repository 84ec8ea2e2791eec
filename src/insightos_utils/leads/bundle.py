"""The scoring bundle: everything needed to score leads exactly as in training, saved with joblib.

``ModelBundle.prepare`` applies the fitted preparation steps (``pipelines.prepare``, the one
implementation) and ``predict_prepared`` the classifier and, for the calibrated champion, the
fitted sigmoid: scoring, explanations and the backtest all go through it. ``save_models``
writes the champion and one bundle per model together; ``load_bundle`` reads one back.
"""

from __future__ import annotations

from insightos_utils import _openmp  # noqa: F401  (before scikit-learn and xgboost load)

# isort: split

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.calibration import CalibratedClassifierCV
from sklearn.pipeline import Pipeline

from insightos_utils.errors import InsightOSError
from insightos_utils.io_utils import atomic_write, atomic_write_many, utc_stamp
from insightos_utils.leads.grades import GRADE_RULE, assign_grades
from insightos_utils.leads.pipelines import MODEL, MODEL_NAMES, prepare
from insightos_utils.leads.train import TrainingResult

BUNDLE_FORMAT = 1


@dataclass
class ModelBundle:
    """Everything needed to score leads exactly as in training, saved with joblib."""

    model_name: str
    model_version: str
    pipeline: Pipeline  # fitted: preparation steps + classifier (explanations use it too)
    calibrator: Any | None  # fitted sigmoid: classifier response -> probability, or None
    features: list[str]
    feature_spec: dict[str, Any]
    decisions: dict[str, Any]
    grade_cutoffs: dict[str, float]
    grade_rule: str
    explain_reference: np.ndarray
    window_days: int
    top_reasons: int
    trained_at: str
    trained_as_of: str
    data_hash: str
    format: int = BUNDLE_FORMAT
    grades_withheld: str | None = None  # why no grades are handed out (no usable signal)

    def prepare(self, frame: pd.DataFrame) -> np.ndarray:
        """The fitted preparation steps applied to ``frame`` (a feature table): the model's input."""
        return prepare(self.pipeline, frame, self.features)

    def predict_prepared(self, prepared: np.ndarray) -> np.ndarray:
        """Probability of conversion from already prepared rows (see ``prepare``)."""
        classifier = self.pipeline.named_steps[MODEL]
        if self.calibrator is None:
            return classifier.predict_proba(prepared)[:, 1]
        return np.asarray(self.calibrator.predict(classifier_response(classifier, prepared)))

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Probability of conversion for each row of ``frame`` (a feature table)."""
        return self.predict_prepared(self.prepare(frame))

    def grade(self, score: np.ndarray) -> np.ndarray:
        """Grade letters for scores from this bundle, by its fixed cut-offs; empty when grades
        are withheld (the model is no better than chance, see ``train.signal_check``)."""
        if getattr(self, "grades_withheld", None):
            return np.full(len(score), "", dtype=object)
        return assign_grades(score, self.grade_cutoffs)


def classifier_response(classifier: Any, prepared: np.ndarray) -> np.ndarray:
    """What CalibratedClassifierCV calibrates: the decision function when the classifier has one
    (logistic regression), else the positive-class probability (XGBoost)."""
    if hasattr(classifier, "decision_function"):
        return classifier.decision_function(prepared)
    return classifier.predict_proba(prepared)[:, 1]


def _calibrated_parts(calibrated: CalibratedClassifierCV) -> tuple[Pipeline, Any]:
    """The refit pipeline and the fitted sigmoid inside a CalibratedClassifierCV (ensemble=False),
    so scoring can prepare the rows once for both the probability and the explanation."""
    (inner,) = calibrated.calibrated_classifiers_
    (calibrator,) = inner.calibrators
    return inner.estimator, calibrator


def make_bundle(
    result: TrainingResult,
    name: str,
    *,
    feature_spec: Mapping[str, Any],
    decisions: Mapping[str, Any],
    data_hash: str,
    as_of: pd.Timestamp,
    window_days: int,
    top_reasons: int = 3,
    trained_at: str | None = None,
    champion: bool = False,
) -> ModelBundle:
    """A scoring bundle for model ``name``; ``champion=True`` uses the calibrated champion."""
    if champion and name != result.champion:
        raise ValueError(f"{name} is not the champion ({result.champion})")
    fitted = result.models[name]
    reason = result.signal.get("reason")
    pipeline, calibrator = fitted.pipeline, None
    if champion and result.calibrated_model is not None:
        pipeline, calibrator = _calibrated_parts(result.calibrated_model)
    return ModelBundle(
        model_name=name,
        model_version=f"{name}@{data_hash[:8]}",
        pipeline=pipeline,
        calibrator=calibrator,
        features=list(fitted.features),
        feature_spec=dict(feature_spec),
        decisions=dict(decisions),
        grade_cutoffs=result.cutoffs["champion" if champion else name],
        grade_rule=GRADE_RULE,
        explain_reference=result.explain_reference[name],
        window_days=int(window_days),
        top_reasons=int(top_reasons),
        trained_at=trained_at or utc_stamp(),
        trained_as_of=pd.Timestamp(as_of).isoformat(),
        data_hash=data_hash,
        grades_withheld=None if result.signal.get("better_than_chance", True) else reason,
    )


def save_bundle(bundle: ModelBundle, path: str | Path) -> Path:
    """Write the bundle with joblib, atomically."""
    import joblib

    return atomic_write(path, lambda tmp: joblib.dump(bundle, tmp, compress=3))


def save_models(
    result: TrainingResult,
    models_dir: str | Path,
    **bundle_arguments: Any,
) -> dict[str, Path]:
    """``champion.joblib`` plus one bundle per model (``v1_logreg.joblib``, ``v2_xgboost.joblib``),
    written together: a failure leaves the previous set untouched, never a mix."""
    import joblib

    models_dir = Path(models_dir)
    bundles = {name: make_bundle(result, name, **bundle_arguments) for name in MODEL_NAMES}
    bundles["champion"] = make_bundle(result, result.champion, champion=True, **bundle_arguments)
    paths = {name: models_dir / f"{name}.joblib" for name in bundles}
    atomic_write_many(
        {
            paths[name]: functools.partial(joblib.dump, bundle, compress=3)
            for name, bundle in bundles.items()
        }
    )
    return paths


def load_bundle(path: str | Path) -> ModelBundle:
    """Load a saved bundle; a missing file or anything else than a bundle is a clear error."""
    import joblib

    path = Path(path)
    if not path.is_file():
        raise InsightOSError(
            f"{path}: model file not found; train one with `insightos run` (it writes "
            "<run folder>/models/champion.joblib) and pass it with --model"
        )
    try:
        bundle = joblib.load(path)
    except Exception as error:  # joblib raises many kinds of error on a foreign file
        raise InsightOSError(
            f"{path}: not a saved InsightOS model ({type(error).__name__}: {error})"
        ) from error
    if not isinstance(bundle, ModelBundle):
        raise InsightOSError(
            f"{path}: holds a {type(bundle).__name__}, not an InsightOS model bundle; pass "
            "models/champion.joblib from a run folder"
        )
    if bundle.format != BUNDLE_FORMAT:
        raise InsightOSError(
            f"{path}: model bundle format {bundle.format}, this version reads {BUNDLE_FORMAT}; "
            "retrain with `insightos run`"
        )
    return bundle
