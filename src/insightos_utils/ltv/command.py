"""``insightos ltv``: read a transactions file, fit, check on the holdout, write the outputs.

Settings come from the configuration (``insightos.toml`` or ``--config``; flags override), the
same ``[ltv]`` section the pipeline's 04_ltv uses. Intervals follow ``[ltv] interval_method``
(default "refit": ``[ltv] refit_samples`` customer resamples, both models refitted on each, as in
the pipeline); ``ltv_params.json`` records the method and the mean LTV's interval both ways
(``intervals``), and campaign_ltv.csv and the reference ratio use the refits.
"""

from __future__ import annotations

from pathlib import Path

from insightos_utils.config import PipelineConfig
from insightos_utils.errors import InputError
from insightos_utils.ltv.analysis import LtvAnalysis, analyse_ltv
from insightos_utils.ltv.economics import campaign_ltv, reference_ratio
from insightos_utils.ltv.intervals import interval_record, refit_bootstrap
from insightos_utils.ltv.narrative import next_dollar_recommendation
from insightos_utils.ltv.outputs import write_ltv_outputs
from insightos_utils.ltv.transactions import (
    parse_period_end,
    read_campaign_spend,
    read_transactions,
    read_users_campaigns,
)


def ltv_command(
    transactions_path: str | Path,
    calibration_end: str,
    observation_end: str | None,
    out_dir: str | Path,
    config: PipelineConfig,
    *,
    refit: bool = False,
    users_path: str | Path | None = None,
    campaign_spend_path: str | Path | None = None,
    show_progress: bool = True,
) -> LtvAnalysis:
    """Fit on the calibration period, validate on the holdout, write the outputs.

    ``observation_end`` defaults to the latest transaction. With ``users_path`` (a contract
    users file with a campaign or marketing column) also writes campaign_ltv.csv, with CAC
    from ``campaign_spend_path`` when given, and records the reference campaign's ratio and
    the next-dollar recommendation in ltv_params.json.
    """
    settings = config.ltv
    transactions = read_transactions(transactions_path)
    if transactions.empty:
        raise InputError(f"{transactions_path}: has no transactions")
    calibration = parse_period_end(calibration_end)
    if observation_end:
        observation = parse_period_end(observation_end)
    else:
        observation = max(transactions["occurred_at"].max(), calibration)
    analysis = analyse_ltv(
        transactions,
        calibration,
        observation,
        settings,
        refit=refit,
        show_progress=show_progress,
    )
    seed = config.scoring.random_seed
    refit_draws = None
    if settings.interval_method == "refit":
        refit_draws = refit_bootstrap(
            analysis.summary,
            settings,
            analysis.models.model,
            seed,
            samples=settings.refit_samples,
            show_progress=show_progress,
            warm=(analysis.models.purchases, analysis.models.gamma_gamma),
        )
    analysis.params["intervals"] = interval_record(
        analysis.customer_ltv["ltv"].to_numpy(float), settings, seed, refit_draws
    )
    campaign_table, ratio, recommendation = None, None, None
    if users_path is not None:
        users = read_users_campaigns(users_path)
        spend = read_campaign_spend(campaign_spend_path) if campaign_spend_path else None
        customers = analysis.customer_ltv
        campaign_table = campaign_ltv(customers, users, spend, settings, seed, refit_draws)
        ratio = reference_ratio(customers, users, settings, seed, refit_draws)
        recommendation = next_dollar_recommendation(campaign_table, ratio, settings.horizon_months)
        if analysis.holdout is not None and not analysis.params["refit"]:
            analysis.params["notes"].append(
                "campaign CAC divides each campaign's total spend by the customers valued here "
                f"(first purchase by {analysis.params['fitted_through']}), not those acquired in "
                "the holdout: pass --refit to value every customer up to the observation end."
            )
    write_ltv_outputs(out_dir, analysis, campaign_table, ratio, recommendation)
    return analysis
