"""The lead-scoring stage of a run: the calls 03_lead_scoring makes.

``feature_inputs`` reads the feature spec and decisions 02_eda wrote into the run folder (or
decides them when absent) and builds the feature table.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from insightos_utils.errors import InputError
from insightos_utils.leads import eda, features


@dataclass
class FeatureInputs:
    """The feature spec, the EDA decisions and the feature table modelling uses."""

    spec: features.FeatureSpec
    decisions: eda.FeatureDecisions
    feature_table: pd.DataFrame
    source: str  # where spec and decisions came from


def feature_inputs(
    users: pd.DataFrame,
    events: pd.DataFrame,
    as_of: pd.Timestamp,
    run_dir: str | Path | None = None,
    *,
    window_days: int = 14,
    min_event_users: int = 50,
    corr_threshold: float = 0.9,
    vif_threshold: float = 10.0,
    leakage_feature_auc: float = 0.95,
) -> FeatureInputs:
    """Reuse ``feature_spec.json`` and ``feature_decisions.json`` that 02_eda wrote into
    ``run_dir``; when they are absent, decide them here with the same package functions."""
    spec_path = Path(run_dir) / "feature_spec.json" if run_dir else None
    decisions_path = Path(run_dir) / "feature_decisions.json" if run_dir else None
    if spec_path and decisions_path and spec_path.exists() and decisions_path.exists():
        spec = features.FeatureSpec.from_json(spec_path)
        if spec.window_days != window_days:
            raise InputError(
                f"{spec_path}: window_days {spec.window_days} differs from "
                f"feature_window_days={window_days}; rerun 02_eda with the same parameters"
            )
        decisions = eda.FeatureDecisions.from_json(decisions_path)
        table = features.build_feature_table(users, events, spec, as_of)
        return FeatureInputs(
            spec,
            decisions,
            table,
            "read from this run's 02_eda outputs (feature_spec.json, feature_decisions.json)",
        )
    spec = features.fit_feature_spec(users, events, as_of, window_days, min_event_users)
    table = features.build_feature_table(users, events, spec, as_of)
    decisions = eda.decide_feature_drops(
        table, spec, corr_threshold, vif_threshold, leakage_feature_auc
    )
    return FeatureInputs(spec, decisions, table, "decided here (no 02_eda outputs in run_dir)")
