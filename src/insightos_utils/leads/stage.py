"""The lead-scoring stage of a run: the calls 03_lead_scoring makes.

``feature_inputs`` reads the feature spec and decisions 02_eda wrote into the run folder (or
decides them when absent) and builds the feature table; ``time_to_conversion`` gives the
Kaplan–Meier curves by grade and ``with_trend`` each lead's trend since the previous run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from insightos_utils.errors import InputError
from insightos_utils.leads import eda, features
from insightos_utils.leads.grades import assign_grades
from insightos_utils.leads.labels import CENSORED, horizon_labels, label_counts
from insightos_utils.leads.survival import conversion_curves_by_grade, share_converted_by
from insightos_utils.leads.train import TrainingResult
from insightos_utils.leads.trend import previous_scores, score_trend, trend_summary


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
    holdout_fraction: float = 0.2,
    horizon_days: int | None = None,
    attribute_max_levels: int = 20,
    attribute_min_users: int = 30,
    include_attributes: Sequence[str] = (),
    exclude_attributes: Sequence[str] = (),
) -> FeatureInputs:
    """Reuse ``feature_spec.json`` and ``feature_decisions.json`` that 02_eda wrote into
    ``run_dir``; when they are absent, decide them here with the same package functions
    (lead attributes by ``leads.attributes``' rule, the label by ``horizon_days``)."""
    spec_path = Path(run_dir) / "feature_spec.json" if run_dir else None
    decisions_path = Path(run_dir) / "feature_decisions.json" if run_dir else None
    if spec_path and decisions_path and spec_path.exists() and decisions_path.exists():
        spec = features.FeatureSpec.from_json(spec_path)
        if spec.window_days != window_days:
            raise InputError(
                f"{spec_path}: window_days {spec.window_days} differs from "
                f"feature_window_days={window_days}; rerun 02_eda with the same parameters"
            )
        if spec.horizon_days != horizon_days:
            raise InputError(
                f"{spec_path}: horizon_days {spec.horizon_days} differs from "
                f"horizon_days={horizon_days}; rerun 02_eda with the same parameters"
            )
        decisions = eda.FeatureDecisions.from_json(decisions_path)
        table = features.build_feature_table(users, events, spec, as_of)
        return FeatureInputs(
            spec,
            decisions,
            table,
            "read from this run's 02_eda outputs (feature_spec.json, feature_decisions.json)",
        )
    spec = features.fit_feature_spec(
        users,
        events,
        as_of,
        window_days,
        min_event_users,
        horizon_days=horizon_days,
        attribute_max_levels=attribute_max_levels,
        attribute_min_users=attribute_min_users,
        include_attributes=include_attributes,
        exclude_attributes=exclude_attributes,
    )
    table = features.build_feature_table(users, events, spec, as_of)
    decisions = eda.decide_feature_drops(
        table, spec, corr_threshold, vif_threshold, leakage_feature_auc, holdout_fraction
    )
    return FeatureInputs(spec, decisions, table, "decided here (no 02_eda outputs in run_dir)")


# --- the horizon, time to conversion and trend (issue 12.2/12.3) --------------------------------


@dataclass
class TimeToConversion:
    """Kaplan–Meier of days from signup to conversion by grade, and its reading at the horizon."""

    curves: pd.DataFrame  # leads.survival.conversion_curves_by_grade
    at_horizon: pd.DataFrame  # grade, days, share_converted, ci_low, ci_high, users
    label_counts: pd.DataFrame  # leads.labels.label_counts
    population: str

    def to_dict(self) -> dict[str, Any]:
        """For the model card."""
        return {
            "method": "Kaplan–Meier (Greenwood log(-log) 95% interval); event = conversion "
            "known at as-of, everyone else followed up to as-of",
            "population": self.population,
            "share_converted_at_horizon": _records(self.at_horizon),
        }


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [
        {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}
        for row in frame.to_dict(orient="records")
    ]


def time_to_conversion(
    users: pd.DataFrame,
    as_of: pd.Timestamp,
    horizon_days: int,
    result: TrainingResult,
    scored: pd.DataFrame,
) -> TimeToConversion:
    """Days from signup to conversion by grade, on users the champion never trained on: the
    holdout (graded by their holdout scores) and the open leads younger than the horizon
    (censored, graded as scored)."""
    labels = horizon_labels(users, as_of, horizon_days)
    holdout = pd.Series(
        assign_grades(result.holdout_scores["champion"].to_numpy(), result.cutoffs["champion"]),
        index=result.holdout_scores.index.astype(str),
    )
    censored = labels.index[labels["label_reason"] == CENSORED].astype(str)
    open_grades = pd.Series(scored["grade"].to_numpy(), index=scored["user_id"].astype(str))
    open_grades = open_grades[open_grades.index.isin(censored)]
    grades = pd.concat([holdout, open_grades[~open_grades.index.isin(holdout.index)]])
    labels.index = labels.index.astype(str)
    curves = conversion_curves_by_grade(labels, grades)
    at_horizon = share_converted_by(curves.rename(columns={"grade": "group"}), horizon_days)
    return TimeToConversion(
        curves=curves,
        at_horizon=at_horizon.rename(columns={"group": "grade"}),
        label_counts=label_counts(labels),
        population=(
            f"{len(holdout):,} holdout users (graded by their holdout scores) and "
            f"{len(open_grades):,} open leads younger than {horizon_days} days (censored)"
        ),
    )


def with_trend(
    scored: pd.DataFrame, previous_run_dir: str | Path | None, threshold: float
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """``scored`` with ``trend`` against the previous scoring run's ``scored_leads.csv``, and a
    summary (counts per trend, leads no longer open, where the comparison came from)."""
    previous, note = previous_scores(previous_run_dir)
    trend = score_trend(scored["user_id"], scored["score"], previous, threshold)
    summary = {
        **trend_summary(trend, scored["user_id"], previous),
        "threshold": threshold,
        "compared_with": note,
    }
    return scored.assign(trend=pd.array(np.asarray(trend, dtype=object), dtype="str")), summary
