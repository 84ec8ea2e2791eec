"""The backtest: do the top-graded open leads really convert more often later?

Stand at an earlier date, train with the same procedure on what existed then, score the leads
open then through a scoring bundle (exactly as production scores), and count who converted by
as-of.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from insightos_utils.config import PipelineConfig
from insightos_utils.contract import OPEN_STATUSES
from insightos_utils.leads import eda, features
from insightos_utils.leads.bundle import make_bundle
from insightos_utils.leads.grades import GRADES
from insightos_utils.leads.metrics import top_decile_mask
from insightos_utils.leads.split import NotEnoughOutcomes, require_outcomes
from insightos_utils.leads.train import model_features, train_lead_models
from insightos_utils.stages import StageSkipped

DEFAULTS = PipelineConfig()
BACKTEST_DATA_LABEL = "backtest"  # the backtest bundle's data fingerprint: not a saved model
STAGE = "backtest"


class BacktestSkipped(StageSkipped):
    """The backtest window cannot say anything (too few outcomes, too little data then)."""


@dataclass
class BacktestResult:
    """Leads open at an earlier date, scored by a model trained then, and what they did later."""

    trained_as_of: pd.Timestamp
    outcome_as_of: pd.Timestamp
    champion: str
    holdout_roc_auc: float
    leads: pd.DataFrame  # index user_id: score, grade, converted_later
    by_grade: pd.DataFrame  # grade, leads, converted, conversion_rate
    top_decile_rate: float
    rest_rate: float

    def to_dict(self) -> dict[str, Any]:
        """The backtest for the model card."""
        return {
            "rule": (
                "train with the same procedure on data before trained_as_of, score the leads "
                "open then, and count how many of them converted by outcome_as_of; users lost "
                "by today but younger than a lead's lifetime at trained_as_of count as open "
                "then (the data has no date for lost, so today's status would leak)"
            ),
            "trained_as_of": self.trained_as_of.isoformat(),
            "outcome_as_of": self.outcome_as_of.isoformat(),
            "champion": self.champion,
            "champion_holdout_roc_auc": self.holdout_roc_auc,
            "open_leads_scored": len(self.leads),
            "converted_later": int(self.leads["converted_later"].sum()),
            "by_grade": self.by_grade.to_dict(orient="records"),
            "top_decile_conversion_rate": round(self.top_decile_rate, 4),
            "rest_conversion_rate": round(self.rest_rate, 4),
            "top_decile_lift": (
                round(self.top_decile_rate / self.rest_rate, 3) if self.rest_rate > 0 else None
            ),
        }


def conversion_by_grade(leads: pd.DataFrame) -> pd.DataFrame:
    """Leads, conversions and conversion rate per grade (A to D, all grades listed)."""
    grades = list(GRADES)
    grouped = leads.groupby("grade")["converted_later"].agg(["size", "sum"]).reindex(grades)
    grouped = grouped.fillna(0).astype(int)
    table = pd.DataFrame(
        {
            "grade": grades,
            "leads": grouped["size"].to_numpy(),
            "converted": grouped["sum"].to_numpy(),
        }
    )
    table["conversion_rate"] = (
        table["converted"] / table["leads"].where(table["leads"] > 0)
    ).round(4)
    return table


def lead_lifetime(users: pd.DataFrame, as_of: pd.Timestamp, default_days: int) -> pd.Timedelta:
    """How long a lead stays open in this company: the age of the oldest lead still open at
    ``as_of`` (``default_days`` when there is none)."""
    open_now = users[users["status"].isin(list(OPEN_STATUSES)) & (users["created_at"] <= as_of)]
    if open_now.empty:
        return pd.Timedelta(days=default_days)
    return as_of - open_now["created_at"].min()


def users_known_at(users: pd.DataFrame, then: pd.Timestamp, lifetime: pd.Timedelta) -> pd.DataFrame:
    """The users table as far as it could be known at ``then`` (for backtests).

    ``lost`` has no date: a user lost by today may still have been an open lead at ``then``.
    Only users older than a lead's lifetime at ``then`` are surely closed; younger lost users
    are put back to ``lead``, so they are neither training negatives nor missing from the leads
    scored then (dropping them would keep only the leads that were going to convert, a leak).
    Conversions after ``then`` are handled by the feature table (open at ``then``).
    """
    maybe_open = (users["status"] == "lost") & (users["created_at"] > then - lifetime)
    if not maybe_open.any():
        return users
    users = users.copy()
    users.loc[maybe_open, "status"] = "lead"
    return users


def backtest(
    users: pd.DataFrame,
    events: pd.DataFrame,
    as_of: pd.Timestamp,
    config: PipelineConfig = DEFAULTS,
    *,
    show_progress: bool = False,
) -> BacktestResult:
    """Do the top-scored open leads really convert more often later?

    Stands at ``as_of - lookback_days``: builds features and decisions from what existed then,
    trains both models and picks the champion with the same procedure, scores the leads open at
    that date and reports how many converted by ``as_of``, per grade and top decile vs the rest.

    The data carries no date for ``lost``, so today's statuses would tell the past which leads
    were going to be lost: ``users_known_at`` hides that (see there) before anything is built.

    ``BacktestSkipped`` (never a crash) when fewer than ``[scoring] backtest_min_conversions``
    of the leads open then converted by ``as_of``, or when the data then is too thin to train
    on (see ``split.require_outcomes``). Every setting comes from ``config``'s ``[features]``
    and ``[scoring]`` sections, as for the run's own models.
    """
    scoring = config.scoring
    lookback_days, min_outcomes = scoring.backtest_lookback_days, scoring.backtest_min_conversions
    min_conversions, min_non_conversions = scoring.min_conversions, scoring.min_non_conversions
    as_of = pd.Timestamp(as_of)
    then = as_of - pd.Timedelta(days=lookback_days)
    users = users_known_at(users, then, lead_lifetime(users, as_of, default_days=lookback_days))
    spec = features.spec_from_config(users, events, then, config.features, scoring.horizon_days)
    table = features.build_feature_table(users, events, spec, then)
    open_then = features.open_leads(table)
    converted_at = users.set_index("user_id")["converted_at"].reindex(open_then.index)
    converted_later = (converted_at.notna() & (converted_at <= as_of)).to_numpy()
    if int(converted_later.sum()) < min_outcomes:
        raise BacktestSkipped(
            f"Of the {len(open_then):,} leads open on {then:%Y-%m-%d} ({lookback_days} days "
            f"before as-of), {int(converted_later.sum()):,} converted by {as_of:%Y-%m-%d}; "
            f"the backtest needs at least {min_outcomes:,} such outcomes to say anything.",
            "More recent conversions, or a longer [scoring] backtest_lookback_days (or a "
            "lower backtest_min_conversions) in insightos.toml.",
        )
    try:
        rows = features.training_rows(table)
        require_outcomes(rows, f"On {then:%Y-%m-%d} the data", min_conversions, min_non_conversions)
        decisions = eda.decisions_from_config(table, spec, scoring)
        result = train_lead_models(
            rows,
            model_features(decisions, spec),
            holdout_fraction=scoring.holdout_fraction,
            champion_auc_margin=scoring.champion_auc_margin,
            random_seed=scoring.random_seed,
            show_progress=show_progress,
            min_conversions=min_conversions,
            min_non_conversions=min_non_conversions,
        )
    except NotEnoughOutcomes as thin:
        raise BacktestSkipped(
            f"A model trained {lookback_days} days before as-of cannot be trained: {thin.reason}",
            "More history before the backtest date, or a shorter [scoring] "
            "backtest_lookback_days in insightos.toml.",
        ) from thin
    bundle = make_bundle(
        result,
        result.champion,
        champion=True,
        feature_spec=spec.to_dict(),
        decisions=asdict(decisions),
        data_hash=BACKTEST_DATA_LABEL,
        as_of=then,
        window_days=spec.window_days,
    )
    score = bundle.predict(open_then)
    leads = pd.DataFrame(
        {
            "score": score,
            "grade": bundle.grade(score),
            "converted_later": converted_later.astype(int),
        },
        index=open_then.index,
    )
    top = top_decile_mask(score)
    return BacktestResult(
        trained_as_of=then,
        outcome_as_of=as_of,
        champion=result.champion,
        holdout_roc_auc=result.metrics[result.champion]["holdout_roc_auc"],
        leads=leads,
        by_grade=conversion_by_grade(leads),
        top_decile_rate=float(converted_later[top].mean()) if top.any() else float("nan"),
        rest_rate=float(converted_later[~top].mean()) if (~top).any() else float("nan"),
    )
