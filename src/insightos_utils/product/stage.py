"""The product stage, the one call 05_product makes: analyse, write the outputs, record the stage.

Outputs in the run folder: ``funnel.csv`` (exactly the contract's columns),
``activation_drivers.csv``, ``friction_points.csv``, ``funnel_by_campaign.csv`` and
``product_summary.json`` (the funnel and the top friction point in words, for the run summary's
"where users get stuck" section). When the data cannot support the stage (a CRM-only company
with no events, no signup old enough, no event done by enough signups), the stage is skipped
with the reason and the fix, and the same files are written header-only, with the summary's
``"state": "skipped"``, so a run folder is always complete.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from insightos_utils import stages
from insightos_utils.config import PipelineConfig, ProductConfig
from insightos_utils.io_utils import atomic_write, atomic_write_json
from insightos_utils.product import narrative
from insightos_utils.product.activity import EarlyActivity, early_activity
from insightos_utils.product.drivers import CAUTION, DRIVER_COLUMNS, activation_drivers
from insightos_utils.product.friction import FRICTION_COLUMNS, friction_points, top_friction
from insightos_utils.product.funnel import (
    FUNNEL_COLUMNS,
    Funnel,
    biggest_drop_by_campaign,
    build_funnel,
    campaign_funnel,
    choose_steps,
)
from insightos_utils.stages import StageOutcome, StageRecord, StageSkipped

FUNNEL_FILE = "funnel.csv"
DRIVERS_FILE = "activation_drivers.csv"
FRICTION_FILE = "friction_points.csv"
CAMPAIGN_FILE = "funnel_by_campaign.csv"
SUMMARY_FILE = "product_summary.json"
OUTPUT_FILES = (FUNNEL_FILE, DRIVERS_FILE, FRICTION_FILE, CAMPAIGN_FILE, SUMMARY_FILE)
CAMPAIGN_COLUMNS: tuple[str, ...] = ("campaign", "signups", *FUNNEL_COLUMNS, "drop_from_previous")
EVENTS_FIX = (
    "Send product events: POST /v1/events to the collector (`insightos serve`), or an events "
    "table with user_id, event_name and occurred_at for each thing a user did in the product."
)


@dataclass
class ProductAnalysis:
    """Everything 05_product shows, computed once."""

    activity: EarlyActivity
    funnel: Funnel
    by_campaign: pd.DataFrame
    campaign_drops: pd.DataFrame
    friction: pd.DataFrame
    drivers: pd.DataFrame
    sections: dict[str, str] = field(default_factory=dict)

    @property
    def top_friction(self) -> dict[str, Any] | None:
        return top_friction(self.friction)

    @property
    def notes(self) -> list[str]:
        return list(self.activity.notes) + list(self.funnel.notes)

    def conclusion(self) -> str:
        """The closing Markdown of 05_product."""
        return narrative.conclusion(self.sections)


def analyse_product(
    users: pd.DataFrame,
    events: pd.DataFrame,
    as_of: pd.Timestamp,
    window_days: int,
    settings: ProductConfig,
) -> ProductAnalysis:
    """Funnel, drop-off by campaign, friction points and drivers of the cohort at ``as_of``.

    Raises ``StageSkipped`` (reason and fix) when the data cannot support a funnel.
    """
    min_users = int(settings.min_step_users)
    activity = early_activity(
        users, events, as_of, window_days, min_users, required_names=settings.funnel_steps
    )  # counted on the run's engine (DuckDB, the source database, Spark) or in memory
    if not activity.events_present:
        raise StageSkipped(
            "The events table has no rows (a CRM-only company): there is no product usage to "
            "build a funnel from; lead scoring stands on the leads' own attributes.",
            EVENTS_FIX,
        )
    if activity.n_users == 0:
        raise StageSkipped(
            f"None of the {activity.users_existing:,} signups existing at as-of {as_of} has had "
            f"its first {window_days} days yet, so no one's early journey is complete.",
            f"Run again once signups are {window_days} days old, or shorten "
            "[features] feature_window_days.",
        )
    if activity.events_counted == 0:
        raise StageSkipped(
            f"No product event happened in the first {window_days} days of any of the "
            f"{activity.n_users:,} signups (before they converted).",
            EVENTS_FIX,
        )
    if not activity.names:
        raise StageSkipped(
            f"No event was done by at least {min_users} of the {activity.n_users:,} signups in "
            f"their first {window_days} days (min_step_users): too few users for a funnel.",
            "More signups with product events, or a lower [product] min_step_users.",
        )
    choice = choose_steps(
        activity, settings.funnel_steps, settings.max_funnel_steps, min_users=min_users
    )
    funnel = build_funnel(activity, choice, min_users=min_users)
    if not funnel.steps:
        raise StageSkipped(
            f"The first funnel step, '{choice.names[0]}', was reached by fewer than "
            f"{min_users} signups (min_step_users): no funnel to show.",
            "Start [product] funnel_steps with a step more signups reach, or lower "
            "[product] min_step_users.",
        )
    by_campaign = campaign_funnel(activity, funnel, min_users=min_users)
    campaign_drops = biggest_drop_by_campaign(by_campaign)
    friction = friction_points(funnel, activity)
    drivers = activation_drivers(activity, min_users=min_users)
    analysis = ProductAnalysis(activity, funnel, by_campaign, campaign_drops, friction, drivers)
    analysis.sections = {
        "cohort": narrative.cohort_in_words(activity),
        "landmark": narrative.landmark_in_words(activity),
        "funnel": narrative.funnel_in_words(funnel, activity),
        "friction": narrative.friction_in_words(analysis.top_friction, activity.window_days),
        "campaigns": narrative.campaigns_in_words(campaign_drops),
        "drivers": narrative.drivers_in_words(drivers),
    }
    return analysis


def summary_document(analysis: ProductAnalysis) -> dict[str, Any]:
    """``product_summary.json``: the funnel and the top friction point, as values and words."""
    activity, funnel = analysis.activity, analysis.funnel
    steps = funnel.table.drop(columns=["conversions"]).to_dict(orient="records")
    drivers = analysis.drivers
    top_drivers = (
        drivers[drivers["evidence"] == "converts more"].head(3) if len(drivers) else drivers
    )
    return {
        "state": "ok",
        "as_of": activity.as_of.isoformat(),
        "window_days": activity.window_days,
        "signups": activity.n_users,
        "converted": activity.n_converted,
        "signups_too_young": activity.users_too_young,
        "compared_signups": int(activity.undecided_mask().sum()),
        "compared_in_words": analysis.sections.get("landmark", ""),
        "steps_learned": funnel.choice.learned,
        "steps_basis": funnel.choice.basis,
        "funnel": steps,
        "funnel_in_words": analysis.sections.get("funnel", ""),
        "top_friction": analysis.top_friction,
        "top_friction_in_words": analysis.sections.get("friction", ""),
        "campaigns_in_words": analysis.sections.get("campaigns", ""),
        "top_drivers": top_drivers.to_dict(orient="records"),
        "drivers_in_words": analysis.sections.get("drivers", ""),
        "caution": CAUTION,
        "outside_journey_events": list(activity.outside_journey_events),
        "notes": analysis.notes,
    }


def _write_csv(path: Path, table: pd.DataFrame) -> Path:
    return atomic_write(path, lambda tmp: table.to_csv(tmp, index=False))


def write_product_outputs(run_dir: str | Path, analysis: ProductAnalysis) -> list[Path]:
    """The stage's files in ``run_dir`` (see the module docstring)."""
    run_dir = Path(run_dir)
    return [
        _write_csv(run_dir / FUNNEL_FILE, analysis.funnel.contract_table()),
        _write_csv(run_dir / DRIVERS_FILE, analysis.drivers),
        _write_csv(run_dir / FRICTION_FILE, analysis.friction),
        _write_csv(run_dir / CAMPAIGN_FILE, analysis.by_campaign),
        atomic_write_json(run_dir / SUMMARY_FILE, summary_document(analysis)),
    ]


def write_skipped_outputs(run_dir: str | Path, record: StageRecord) -> list[Path]:
    """Header-only tables and a ``"state": "skipped"`` summary with the reason and the fix."""
    run_dir = Path(run_dir)
    empty = {
        FUNNEL_FILE: FUNNEL_COLUMNS,
        DRIVERS_FILE: DRIVER_COLUMNS,
        FRICTION_FILE: FRICTION_COLUMNS,
        CAMPAIGN_FILE: CAMPAIGN_COLUMNS,
    }
    written = [
        _write_csv(run_dir / name, pd.DataFrame(columns=list(columns)))
        for name, columns in empty.items()
    ]
    document = {"state": "skipped", "reason": record.reason, "fix": record.fix}
    written.append(atomic_write_json(run_dir / SUMMARY_FILE, document))
    return written


def run_product(run_dir: str | Path, config: PipelineConfig) -> StageOutcome[ProductAnalysis]:
    """Read the processed tables, analyse them as of ``config.data.as_of``, write the outputs
    and record the ``product`` stage (ok or skipped) in ``run_dir/stages.json``."""
    from insightos_utils.ingest import read_processed
    from insightos_utils.leads.features import resolve_as_of

    def compute() -> ProductAnalysis:
        data = read_processed(config.data.processed_dir)
        as_of = resolve_as_of(data.users, data.events, config.data.as_of or None)
        analysis = analyse_product(
            data.users, data.events, as_of, config.features.feature_window_days, config.product
        )
        write_product_outputs(run_dir, analysis)
        return analysis

    outcome = stages.run_stage(run_dir, "product", compute)
    if outcome.skipped:
        write_skipped_outputs(run_dir, outcome.record)
    return outcome
