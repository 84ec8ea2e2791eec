"""The LTV stage of a run: the one call 04_ltv makes (``run_ltv_stage``).

It degrades honestly. No transactions table, or fewer repeat buyers than ``[ltv]
min_repeat_customers``, or data the models cannot identify: the stage is *skipped* with the
reason and what data would fix it, its files are still written (``ltv_params.json`` with
``"state": "skipped"``, header-only CSV files) and the run publishes everything else. No
campaign spend: LTV is computed and CAC, LTV/CAC and payback are "not computed", with why.
Contract violations (``InputError``) and unexpected errors still fail the run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from insightos_utils.config import LtvConfig, PipelineConfig
from insightos_utils.ltv.analysis import LtvAnalysis, NotEnoughData, analyse_ltv
from insightos_utils.ltv.economics import (
    ReferenceRatio,
    campaign_ltv,
    customer_campaigns,
    reference_ratio,
    spend_by_campaign,
)
from insightos_utils.ltv.intervals import INTERVAL_METHODS, RefitDraws, refit_bootstrap
from insightos_utils.ltv.models.base import FitError
from insightos_utils.ltv.narrative import next_dollar_recommendation
from insightos_utils.ltv.new_customers import new_customer_value
from insightos_utils.ltv.outputs import write_ltv_outputs, write_skipped_outputs
from insightos_utils.ltv.prediction import PredictionIntervals, model_pairs, prediction_intervals
from insightos_utils.ltv.subscription import (
    customer_pattern,
    payment_days,
    recognise,
    value_subscribers,
)
from insightos_utils.ltv.transactions import calibration_end_for, transactions_as_of
from insightos_utils.stages import StageOutcome, StageRecord, StageSkipped, run_stage

STAGE = "ltv"
NO_TRANSACTIONS = (
    "The company has no transactions table, so there are no purchases to value customers on."
)
NO_TRANSACTIONS_FIX = (
    "Add a transactions table to the raw data (transaction_id, user_id, occurred_at, amount: "
    "one row per purchase, amount > 0), e.g. exported from the billing or payment system."
)


class CompanyTables(Protocol):
    """The processed tables the stage reads (ingest's ``ProcessedData``)."""

    users: pd.DataFrame
    transactions: pd.DataFrame | None
    campaign_spend: pd.DataFrame | None


@dataclass(frozen=True)
class NotComputed:
    """A part of the stage that was not computed: why, and what data would fix it."""

    what: str
    reason: str
    fix: str

    def as_dict(self) -> dict[str, str]:
        return {"state": "not computed", "reason": self.reason, "fix": self.fix}

    def markdown(self) -> str:
        return f"**Not computed: {self.what}.** {self.reason} *What would fix it:* {self.fix}"


@dataclass
class LtvStageResult:
    """Everything the stage computed and wrote, for the notebook to show."""

    analysis: LtvAnalysis
    campaign_table: pd.DataFrame
    ratio: ReferenceRatio | None
    recommendation: str
    new_customer_value: pd.DataFrame
    written: list[Path]
    calibration_end: pd.Timestamp
    as_of: pd.Timestamp
    not_computed: list[NotComputed] = field(default_factory=list)


def economics_state(campaign_spend: pd.DataFrame | None) -> NotComputed | None:
    """CAC needs spend: None when there is some, else why CAC and LTV/CAC are not computed."""
    spend = spend_by_campaign(campaign_spend)
    if len(spend) and float(spend.sum()) > 0:
        return None
    reason = (
        "The company has no campaign_spend table, so acquisition cost cannot be weighed against "
        "value: CAC, LTV/CAC and payback are not computed (lifetime value is)."
        if campaign_spend is None or not len(campaign_spend)
        else "Every campaign's recorded spend is 0, so CAC, LTV/CAC and payback are not computed "
        "(lifetime value is)."
    )
    fix = (
        "Add a campaign_spend table (campaign, spend: total spend over the data's period, with "
        "campaign matching utm_campaign) from the ad platforms' billing."
    )
    return NotComputed("CAC, LTV/CAC and payback", reason, fix)


def _prediction_columns(
    analysis: LtvAnalysis, refit: RefitDraws | None, settings: LtvConfig, seed: int
) -> PredictionIntervals:
    """Per-customer 80% prediction intervals of the horizon's value into customer_ltv: simulated
    from the refitted model pairs where the refit bootstrap kept them, else from the point fit;
    the refits' parameter-only spread beside them."""
    pairs = list(getattr(refit, "models", None) or []) if refit is not None else []
    if not model_pairs(pairs):
        pairs = [(analysis.models.purchases, analysis.models.gamma_gamma)]
    predicted = prediction_intervals(analysis.summary, pairs, settings, seed=seed)
    analysis.customer_ltv["ltv_low_80"] = predicted.low
    analysis.customer_ltv["ltv_high_80"] = predicted.high
    if refit is not None:
        low, high = refit.customer_interval()
        analysis.customer_ltv["ltv_param_low_80"] = low
        analysis.customer_ltv["ltv_param_high_80"] = high
    return predicted


def _compute(
    run_dir: str | Path, data: CompanyTables, config: PipelineConfig, show_progress: bool
) -> LtvStageResult:
    settings = config.ltv
    if data.transactions is None or data.transactions.empty:
        raise StageSkipped(NO_TRANSACTIONS, NO_TRANSACTIONS_FIX)
    transactions, as_of = transactions_as_of(data.transactions, config.data.as_of)
    if transactions.empty:
        raise StageSkipped(
            f"No transaction happened on or before the as-of moment {as_of}.",
            "Run with a later as-of, or check the transactions' timestamps (UTC).",
        )
    calibration_end = calibration_end_for(as_of, settings.holdout_days)
    first = transactions["occurred_at"].min()
    if calibration_end < first:
        raise StageSkipped(
            f"The {settings.holdout_days}-day holdout starts on {calibration_end:%Y-%m-%d}, "
            f"before the first transaction ({first:%Y-%m-%d}): nothing is left to fit on.",
            "A shorter holdout ([ltv] holdout_days) or a longer purchase history.",
        )
    try:
        analysis = analyse_ltv(
            transactions, calibration_end, as_of, settings, refit=True, show_progress=show_progress
        )
    except NotEnoughData as error:
        raise StageSkipped(error.reason, error.fix) from error
    except FitError as error:
        raise StageSkipped(
            str(error), "More purchase history, or a check of the data the message names."
        ) from error
    seed = config.scoring.random_seed
    pattern = customer_pattern(payment_days(transactions))
    business = recognise(pattern, settings.business)
    analysis.params["business"] = business.as_dict()
    analysis.params["valued_with"] = analysis.params["model"]
    per_campaign = None
    if business.kind == "subscription":
        ids = pd.DataFrame({"user_id": pattern.index.astype(str)})
        owners = customer_campaigns(ids, data.users)
        owners.index = pattern.index
        valued = value_subscribers(pattern, owners, as_of, settings, seed)
        analysis.customer_ltv = valued.customer_ltv
        analysis.params.update(
            valued_with="sbg",
            subscription={"campaigns": valued.campaigns},
            mean_ltv=float(valued.customer_ltv["ltv"].mean()),
            total_ltv=float(valued.customer_ltv["ltv"].sum()),
        )
        per_campaign = valued.new_customer_value
    refit = None
    if settings.interval_method == "refit" and per_campaign is None:
        refit = refit_bootstrap(
            analysis.summary,
            settings,
            analysis.models.model,
            seed,
            samples=settings.refit_samples,
            show_progress=show_progress,
            warm=(analysis.models.purchases, analysis.models.gamma_gamma),
            groups=customer_campaigns(
                pd.DataFrame({"user_id": analysis.summary.index.astype(str)}), data.users
            ),
        )
    predicted = None
    if per_campaign is None:
        predicted = _prediction_columns(analysis, refit, settings, seed)
    analysis.params["intervals"] = {
        "interval_method": "refit" if refit is not None else "sampling",
        "meaning": INTERVAL_METHODS["refit" if refit is not None else "sampling"],
        "refit_samples": refit.samples if refit is not None else 0,
        "refit_failed": refit.failed if refit is not None else 0,
        "customer_interval": predicted.meaning() if predicted is not None else None,
        "prediction_draws": predicted.draws if predicted is not None else 0,
        "customer_parameter_interval": (
            "ltv_param_low_80 / ltv_param_high_80 in customer_ltv.csv: the central 80% of each "
            "customer's expected value over the refits (parameter uncertainty only; not the "
            "spread of realised purchases)"
            if refit is not None and predicted is not None
            else None
        ),
    }
    customers = analysis.customer_ltv
    table = campaign_ltv(customers, data.users, data.campaign_spend, settings, seed, refit)
    ratio = reference_ratio(customers, data.users, settings, seed, refit)
    recommendation = next_dollar_recommendation(table, ratio, settings.horizon_months)
    if per_campaign is None:
        campaigns = customer_campaigns(customers, data.users)
        per_campaign = new_customer_value(
            analysis.summary, campaigns, analysis.models, settings, seed, refit
        )
    missing = [state for state in (economics_state(data.campaign_spend),) if state is not None]
    analysis.params["economics"] = missing[0].as_dict() if missing else {"state": "ok"}
    written = write_ltv_outputs(run_dir, analysis, table, ratio, recommendation, per_campaign)
    return LtvStageResult(
        analysis=analysis,
        campaign_table=table,
        ratio=ratio,
        recommendation=recommendation,
        new_customer_value=per_campaign,
        written=written,
        calibration_end=calibration_end,
        as_of=as_of,
        not_computed=missing,
    )


def run_ltv_stage(
    run_dir: str | Path, data: CompanyTables, config: PipelineConfig, show_progress: bool = False
) -> StageOutcome[LtvStageResult]:
    """Run the LTV stage through ``stages.run_stage``; a skipped stage still writes its files."""
    outcome: StageOutcome[Any] = run_stage(
        run_dir, STAGE, lambda: _compute(run_dir, data, config, show_progress)
    )
    if outcome.skipped:
        record: StageRecord = outcome.record
        write_skipped_outputs(run_dir, record.reason or "", record.fix)
    return outcome
