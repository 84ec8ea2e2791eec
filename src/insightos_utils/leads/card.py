"""``model_card.json``: the contract's model card plus everything a reviewer needs.

What was trained on (data fingerprint, feature spec and decisions, the time split), how each
model was tuned and measured, why the champion won, calibration, the leakage audit, the grade
rule, the backtest and the scored leads, with the library versions that shape the numbers.
"""

from __future__ import annotations

import hashlib
import platform
from collections.abc import Mapping
from dataclasses import asdict, is_dataclass
from importlib import metadata
from typing import Any

import pandas as pd

from insightos_utils.io_utils import utc_stamp
from insightos_utils.leads.backtest import BacktestResult
from insightos_utils.leads.grades import GRADE_RULE, GRADES
from insightos_utils.leads.pipelines import LOGREG, MODEL_FAMILY, MODEL_NAMES, XGBOOST
from insightos_utils.leads.split import CV_SPLITS
from insightos_utils.leads.train import LOGREG_GRID, TUNING_ROWS, XGBOOST_GRID, TrainingResult

DATA_HASH_RULE = (
    "sha256 over pandas.util.hash_pandas_object of users (user_id, created_at, status, "
    "converted_at, marketing) sorted by user_id, then events (event_id, user_id, event_name, "
    "occurred_at) sorted by event_id; timestamps at microsecond resolution, text as str"
)


ENGINE_DATA_HASH_RULE = (
    "sha256 over users as in the in-memory rule (pandas.util.hash_pandas_object of user_id, "
    "created_at, status, converted_at, marketing sorted by user_id), then the events' "
    "fingerprint computed by the {engine} engine where the events are "
    "(engines.pipeline.events_fingerprint: row count, earliest and latest occurred_at, two "
    "order-independent sums of the engine's hash of user_id|event_name|occurred_at); the hash "
    "function is the engine's own, so the same data on another engine gives another data_hash"
)
_USERS_HASHED = ("user_id", "created_at", "status", "converted_at", "marketing")
_EVENTS_HASHED = ("event_id", "user_id", "event_name", "occurred_at")


def _on_engine(events: pd.DataFrame) -> Any:
    """The engine reference of ``events`` when its rows stay with an engine, else None."""
    from insightos_utils.engines.pipeline import engine_of

    ref = engine_of(events)
    return ref if ref is not None and not len(events) else None


def data_hash_rule(events: pd.DataFrame) -> str:
    """How ``data_hash`` fingerprinted these events (``"data_hash_rule"`` of the model card)."""
    ref = _on_engine(events)
    return DATA_HASH_RULE if ref is None else ENGINE_DATA_HASH_RULE.format(engine=ref.engine)


def data_hash(users: pd.DataFrame, events: pd.DataFrame) -> str:
    """A stable fingerprint of the processed users and events a model was trained on.

    Row order, timestamp resolution and string dtype do not change it (see ``DATA_HASH_RULE``).
    When the events stay with an engine (``[data] engine`` duckdb, spark or source), their part
    is computed there (``ENGINE_DATA_HASH_RULE``): no event row is loaded.
    """
    digest = hashlib.sha256()
    ref = _on_engine(events)
    parts: list[tuple[pd.DataFrame, str, tuple[str, ...]]] = [(users, "user_id", _USERS_HASHED)]
    if ref is None:
        parts.append((events, "event_id", _EVENTS_HASHED))
    for frame, key, columns in parts:
        present = [c for c in columns if c in frame.columns]
        normal = pd.DataFrame(index=range(len(frame)))
        for column in present:
            values = frame[column].reset_index(drop=True)
            if pd.api.types.is_datetime64_any_dtype(values):
                normal[column] = values.astype("datetime64[us]").astype("int64")
            else:
                normal[column] = values.astype("str").fillna("")
        if key in normal.columns:
            normal = normal.sort_values(key, kind="mergesort")
        digest.update(",".join(present).encode())
        digest.update(pd.util.hash_pandas_object(normal, index=False).to_numpy().tobytes())
    if ref is not None:
        from insightos_utils.engines.pipeline import events_fingerprint

        digest.update(events_fingerprint(ref).encode())
    return digest.hexdigest()


def library_versions() -> dict[str, str | None]:
    """Versions of the libraries that shape a model's numbers."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in ("insightos", "scikit-learn", "xgboost-cpu", "xgboost", "pandas", "numpy"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def model_card(
    result: TrainingResult,
    *,
    feature_spec: Mapping[str, Any],
    decisions: Mapping[str, Any],
    as_of: pd.Timestamp,
    data_hash: str,
    window_days: int,
    trained_at: str | None = None,
    backtest: BacktestResult | Mapping[str, Any] | None = None,
    model_version: str | None = None,
    scored: pd.DataFrame | None = None,
    time_to_conversion: Mapping[str, Any] | None = None,
    trend: Mapping[str, Any] | None = None,
    data_hash_rule: str = DATA_HASH_RULE,
) -> dict[str, Any]:
    """The contract's ``model_card.json`` (section 3) plus everything a reviewer needs.

    ``horizon_days`` (from the feature spec) says what ``score`` means: the probability of
    converting within that many days of signup; ``label`` states the rule and its counts."""
    horizon = feature_spec.get("horizon_days")
    champion_auc = result.metrics[result.champion]["holdout_roc_auc"]
    leaky = dict(decisions.get("leaky_features", {}) or {})
    dropped_for_linear = dict(decisions.get("dropped_for_linear", {}) or {})
    return {
        "champion": result.champion,
        "model_version": model_version or f"{result.champion}@{data_hash[:8]}",
        "models": {
            name: {
                **result.metrics[name],
                "features": result.models[name].features,
                "family": MODEL_FAMILY[name],
                "dropped_features": {
                    **{f: f"leakage audit: {why}" for f, why in leaky.items()},
                    **(dropped_for_linear if MODEL_FAMILY[name] == "linear" else {}),
                },
                "tuning": {
                    "method": f"time-ordered cross-validation (TimeSeriesSplit, {CV_SPLITS} "
                    f"splits) on the latest {TUNING_ROWS:,} rows of the training part at most, "
                    "rows sorted by created_at, scored by ROC AUC; best setting refit on the "
                    "whole training part",
                    "grid": LOGREG_GRID if name == LOGREG else XGBOOST_GRID,
                    "results": result.models[name].cv_results,
                    "note": result.models[name].tuning_note,
                },
                "gains": result.curves[name]["gains"],
                "calibration_curve": result.curves[name]["calibration"],
            }
            for name in MODEL_NAMES
        },
        "champion_rule": {
            "rule": (
                f"{LOGREG} unless {XGBOOST}'s holdout ROC AUC is higher by at least the margin"
            ),
            "margin": result.champion_auc_margin,
            "decision": result.champion_reason,
        },
        "calibration": result.calibration,
        "leakage_suspected": result.leakage_suspected,
        "leakage_warning": result.leakage_warning,
        "leakage_audit": {
            "champion_holdout_roc_auc": champion_auc,
            "suspect_holdout_auc": result.suspect_holdout_auc,
            "leaky_features_removed": leaky,
            "excluded_post_conversion_events": dict(decisions.get("excluded_events", {}) or {}),
            "result": "suspected leakage" if result.leakage_suspected else "no leakage signal",
        },
        "signal": result.signal,
        "grades": {
            "rule": GRADE_RULE,
            "cutoffs": result.cutoffs["champion"],
            "withheld": not result.signal.get("better_than_chance", True),
        },
        "horizon_days": horizon,
        "label": _label_rule(horizon),
        "lead_attributes": list(decisions.get("lead_attributes", []) or []),
        "time_to_conversion": dict(time_to_conversion) if time_to_conversion else None,
        "trend": dict(trend) if trend else None,
        "feature_window_days": int(window_days),
        "as_of": pd.Timestamp(as_of).isoformat(),
        "feature_spec": dict(feature_spec),
        "feature_decisions": dict(decisions),
        "holdout": result.split.describe(),
        "trained_at": trained_at or utc_stamp(),
        "training_seconds": result.training_seconds,
        "data_hash": data_hash,
        "data_hash_rule": data_hash_rule,
        "random_seed": result.random_seed,
        "library_versions": library_versions(),
        "backtest": backtest.to_dict() if isinstance(backtest, BacktestResult) else backtest,
        "scored_leads": _scored_summary(scored) if scored is not None else None,
    }


def _label_rule(horizon: int | None) -> str:
    if horizon is None:
        return (
            "converted by as-of = 1; lost once the feature window has passed = 0; "
            "everyone else open (not trained on)"
        )
    return (
        f"score = probability of converting within {horizon} days of signup: converted within "
        f"{horizon} days = 1; lost, converted later, or open past {horizon} days without "
        f"converting = 0; open and younger than {horizon} days = censored (scored, not "
        "trained on)"
    )


def _scored_summary(scored: pd.DataFrame) -> dict[str, Any]:
    grades = scored["grade"].value_counts().reindex(list(GRADES), fill_value=0)
    return {
        "open_leads": len(scored),
        "by_grade": {g: int(n) for g, n in grades.items()},
        "ungraded": int((scored["grade"] == "").sum()),
        "scored_at": str(scored["scored_at"].iloc[0]) if len(scored) else None,
    }


def as_plain_dict(value: Any) -> dict[str, Any]:
    """A spec or decisions object (``to_dict`` or a dataclass) or a mapping as a plain dict."""
    if isinstance(value, Mapping):
        return dict(value)
    if hasattr(value, "to_dict"):
        return dict(value.to_dict())
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    raise TypeError(f"cannot turn a {type(value).__name__} into a dict")
