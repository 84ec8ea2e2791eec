"""Scoring bundles: saved together, loaded back, scoring exactly as in training."""

from __future__ import annotations

from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest

from insightos_utils.errors import InsightOSError
from insightos_utils.leads.bundle import load_bundle, save_models
from insightos_utils.leads.train import TrainingResult

from .data import bundle_arguments


def test_saved_bundles_score_exactly_as_in_training(
    toy_training: TrainingResult, toy_feature_table: pd.DataFrame, tmp_path: Path
) -> None:
    paths = save_models(toy_training, tmp_path / "models", **bundle_arguments())
    assert {p.name for p in paths.values()} == {
        "champion.joblib",
        "v1_logreg.joblib",
        "v2_xgboost.joblib",
    }
    assert not list((tmp_path / "models").glob("*.tmp"))
    champion = load_bundle(paths["champion"])
    assert champion.model_name == toy_training.champion
    assert champion.model_version == f"{toy_training.champion}@01234567"
    assert (champion.calibrator is not None) == toy_training.calibration["applied"]
    holdout = toy_training.split.holdout
    assert np.allclose(champion.predict(holdout), toy_training.champion_scores)
    logreg = load_bundle(paths["v1_logreg"])
    assert logreg.calibrator is None
    assert np.allclose(logreg.predict(holdout), toy_training.holdout_scores["v1_logreg"])


def test_load_bundle_explains_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(InsightOSError, match="model file not found"):
        load_bundle(tmp_path / "missing.joblib")
    joblib.dump({"just": "a dict"}, tmp_path / "dict.joblib")
    with pytest.raises(InsightOSError, match="not an InsightOS model bundle"):
        load_bundle(tmp_path / "dict.joblib")
    (tmp_path / "garbage.joblib").write_bytes(b"\x00not a pickle at all")
    with pytest.raises(InsightOSError, match="not a saved InsightOS model"):
        load_bundle(tmp_path / "garbage.joblib")
