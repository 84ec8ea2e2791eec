"""The lead-scoring stage of a run: the one call 03_lead_scoring makes (``run_lead_scoring``).

``train_and_score`` reads the feature inputs 02_eda wrote into the run folder (``feature_inputs``:
spec, decisions and the feature table; decided and built here when absent), trains both models,
runs the backtest, saves the bundles, scores the open leads with the saved champion (exactly as
``insightos score`` will) and writes ``scored_leads.csv`` and ``model_card.json``.
``time_to_conversion`` gives the
Kaplan–Meier curves by grade; ``leads.trend.with_trend`` each lead's trend since the previous run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from insightos_utils.config import FeatureConfig, PipelineConfig, ScoringConfig
from insightos_utils.errors import InputError
from insightos_utils.io_utils import atomic_write_json, utc_stamp
from insightos_utils.leads import eda, features, scoring
from insightos_utils.leads.backtest import STAGE as BACKTEST_STAGE
from insightos_utils.leads.backtest import BacktestResult, backtest
from insightos_utils.leads.bundle import ModelBundle, load_bundle, save_models
from insightos_utils.leads.card import as_plain_dict, data_hash, data_hash_rule, model_card
from insightos_utils.leads.explain import LeadExplanations
from insightos_utils.leads.grades import assign_grades
from insightos_utils.leads.labels import CENSORED, horizon_labels, label_counts
from insightos_utils.leads.split import require_outcomes
from insightos_utils.leads.survival import conversion_curves_by_grade, share_converted_by
from insightos_utils.leads.train import TrainingResult, model_features, train_lead_models
from insightos_utils.leads.trend import with_trend
from insightos_utils.stages import StageOutcome, StageRecord, run_stage, skip_stage

STAGE = "lead_scoring"
FEATURE_TABLE = "feature_table.parquet"
FEATURE_SPEC = "feature_spec.json"
FEATURE_DECISIONS = "feature_decisions.json"
MODEL_CARD = "model_card.json"
SCORED_LEADS = "scored_leads.csv"


class CompanyTables(Protocol):
    """The processed tables the stage reads (ingest's ``ProcessedData``)."""

    users: pd.DataFrame
    events: pd.DataFrame


@dataclass
class FeatureInputs:
    """The feature spec, the EDA decisions and the feature table modelling uses."""

    spec: features.FeatureSpec
    decisions: eda.FeatureDecisions
    feature_table: pd.DataFrame
    source: str  # where spec, decisions and table came from


def feature_inputs(
    users: pd.DataFrame,
    events: pd.DataFrame,
    as_of: pd.Timestamp,
    run_dir: str | Path | None = None,
    config: PipelineConfig | None = None,
) -> FeatureInputs:
    """What 02_eda wrote into ``run_dir`` (``feature_spec.json``, ``feature_decisions.json``
    and ``feature_table.parquet``: 02 builds the table, 03 reads it); when they are absent,
    decided and built here with the same package functions and ``config``'s ``[features]`` and
    ``[scoring]`` settings (lead attributes by ``leads.attributes``' rule, the label by
    ``horizon_days``; after checking the minimum outcomes, so too little data is a
    ``NotEnoughOutcomes`` before any decision is made). Without ``config``: the default
    settings, the label "converted by as-of" and no minimum outcomes."""
    settings = config.features if config else FeatureConfig()
    scoring = config.scoring if config else ScoringConfig(min_conversions=0, min_non_conversions=0)
    horizon_days = scoring.horizon_days if config else None
    window_days = settings.feature_window_days
    folder = Path(run_dir) if run_dir else None
    if folder and (folder / FEATURE_SPEC).exists() and (folder / FEATURE_DECISIONS).exists():
        spec_path = folder / FEATURE_SPEC
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
        decisions = eda.FeatureDecisions.from_json(folder / FEATURE_DECISIONS)
        table_path = folder / FEATURE_TABLE
        if table_path.exists() and pd.Timestamp(spec.as_of) == pd.Timestamp(as_of):
            table = features.read_feature_table(table_path)
            source = f"read from this run's 02_eda outputs ({FEATURE_SPEC}, {FEATURE_DECISIONS}, "
            return FeatureInputs(spec, decisions, table, source + f"{FEATURE_TABLE})")
        table = features.build_feature_table(users, events, spec, as_of)
        source = f"read from this run's 02_eda outputs ({FEATURE_SPEC}, {FEATURE_DECISIONS})"
        return FeatureInputs(spec, decisions, table, source)
    spec = features.spec_from_config(users, events, as_of, settings, horizon_days)
    table = features.build_feature_table(users, events, spec, as_of)
    require_outcomes(
        features.training_rows(table),
        "The labelled data",
        scoring.min_conversions,
        scoring.min_non_conversions,
    )
    decisions = eda.decisions_from_config(table, spec, scoring)
    return FeatureInputs(spec, decisions, table, "decided here (no 02_eda outputs in run_dir)")


@dataclass
class LeadScoringResult:
    """Everything the stage computed and wrote, for the notebook to show."""

    as_of: pd.Timestamp
    inputs: FeatureInputs
    features_by_model: dict[str, list[str]]
    training: TrainingResult
    backtest: BacktestResult | None  # None when skipped: ``backtest_record`` says why
    backtest_record: StageRecord
    champion: ModelBundle  # the saved champion, read back: what scored the leads
    scored: pd.DataFrame
    explanations: LeadExplanations
    card: dict[str, Any]
    timing: TimeToConversion | None = None  # Kaplan–Meier by grade (None: no horizon)
    trend: dict[str, Any] = field(default_factory=dict)  # counts per trend, compared with what
    written: list[Path] = field(default_factory=list)


def train_and_score(
    run_dir: str | Path,
    data: CompanyTables,
    config: PipelineConfig,
    *,
    previous_run_dir: str | Path | None = None,
    show_progress: bool = False,
) -> LeadScoringResult:
    """Train, backtest, save, score (with each lead's trend since ``previous_run_dir``'s
    scores) and write the model card, with ``config``'s settings."""
    run_dir = Path(run_dir)
    window = config.features
    settings = config.scoring
    events = features.encode_events(data.events)  # unchanged when they stay with an engine
    as_of = features.resolve_as_of(data.users, events, config.data.as_of or None)
    inputs = feature_inputs(data.users, events, as_of, run_dir, config)
    features_by_model = model_features(inputs.decisions, inputs.spec)
    training = train_lead_models(
        features.training_rows(inputs.feature_table),
        features_by_model,
        holdout_fraction=settings.holdout_fraction,
        champion_auc_margin=settings.champion_auc_margin,
        suspect_holdout_auc=settings.suspect_holdout_auc,
        random_seed=settings.random_seed,
        show_progress=show_progress,
        min_conversions=settings.min_conversions,
        min_non_conversions=settings.min_non_conversions,
    )
    backtest_outcome = run_stage(
        run_dir,
        BACKTEST_STAGE,
        lambda: backtest(data.users, events, as_of, config, show_progress=show_progress),
    )
    looked_back = backtest_outcome.result
    fingerprint = data_hash(data.users, data.events)
    trained_at = utc_stamp()
    bundle_arguments: dict[str, Any] = {
        "feature_spec": inputs.spec.to_dict(),
        "decisions": as_plain_dict(inputs.decisions),
        "data_hash": fingerprint,
        "as_of": as_of,
        "window_days": window.feature_window_days,
        "top_reasons": settings.top_reasons,
        "trained_at": trained_at,
    }
    model_paths = save_models(training, run_dir / "models", **bundle_arguments)
    champion = load_bundle(model_paths["champion"])  # score with what was saved
    scored, explanations = scoring.score_leads(
        champion,
        features.open_leads(inputs.feature_table),
        top_n=settings.top_reasons,
        with_explanations=True,
    )
    scored, trend = with_trend(scored, previous_run_dir or None, settings.trend_threshold)
    scoring.write_scored_leads(scored, run_dir / SCORED_LEADS)
    timing = time_to_conversion(data.users, as_of, settings.horizon_days, training, scored)
    card = model_card(
        training,
        feature_spec=bundle_arguments["feature_spec"],
        decisions=bundle_arguments["decisions"],
        as_of=as_of,
        data_hash=fingerprint,
        window_days=window.feature_window_days,
        trained_at=trained_at,
        backtest=looked_back if looked_back is not None else skipped_card(backtest_outcome.record),
        model_version=champion.model_version,
        scored=scored,
        time_to_conversion=timing.to_dict(),
        trend=trend,
        data_hash_rule=data_hash_rule(data.events),
    )
    atomic_write_json(run_dir / MODEL_CARD, card)
    written = [*model_paths.values(), run_dir / MODEL_CARD, run_dir / SCORED_LEADS]
    return LeadScoringResult(
        as_of=as_of,
        inputs=inputs,
        features_by_model=features_by_model,
        training=training,
        backtest=looked_back,
        backtest_record=backtest_outcome.record,
        champion=champion,
        scored=scored,
        explanations=explanations,
        card=card,
        timing=timing,
        trend=trend,
        written=written,
    )


def skipped_card(record: StageRecord) -> dict[str, Any]:
    """What the model card holds for a part that was not computed."""
    return {"state": record.state, "reason": record.reason, "fix": record.fix}


def write_skipped_outputs(run_dir: str | Path, record: StageRecord) -> list[Path]:
    """The run's lead-scoring files when the stage was skipped: a model card saying why and a
    header-only ``scored_leads.csv`` (the run still publishes everything else)."""
    run_dir = Path(run_dir)
    card = {**skipped_card(record), "champion": None, "models": {}, "leakage_suspected": False}
    atomic_write_json(run_dir / MODEL_CARD, card)
    empty = pd.DataFrame(columns=[*scoring.SCORED_COLUMNS, *scoring.EXTRA_COLUMNS])
    scoring.write_scored_leads(empty, run_dir / SCORED_LEADS)
    return [run_dir / MODEL_CARD, run_dir / SCORED_LEADS]


def run_lead_scoring(
    run_dir: str | Path,
    data: CompanyTables,
    config: PipelineConfig,
    *,
    previous_run_dir: str | Path | None = None,
) -> StageOutcome[LeadScoringResult]:
    """``train_and_score`` as the run's ``lead_scoring`` stage (recorded in stages.json).

    Data below the minimums (see ``split.require_outcomes``) skips the stage: the reason says
    how many outcomes there are and how many are needed, the backtest is skipped with it, and
    ``write_skipped_outputs`` writes the files a run publishes."""
    outcome = run_stage(
        run_dir,
        STAGE,
        lambda: train_and_score(run_dir, data, config, previous_run_dir=previous_run_dir),
    )
    if outcome.skipped:
        skip_stage(
            run_dir,
            BACKTEST_STAGE,
            "Lead scoring was not computed, so neither was its backtest.",
            outcome.record.fix or "",
        )
        if run_dir:
            write_skipped_outputs(run_dir, outcome.record)
    return outcome


# --- the horizon and time to conversion (issue 12.2) --------------------------------


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
