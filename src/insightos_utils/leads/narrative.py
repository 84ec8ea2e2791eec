"""The lead-scoring results in words and tables: what a stakeholder reads in the report."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from insightos_utils.leads import eda, features
from insightos_utils.leads.pipelines import LOGREG, MODEL_NAMES, XGBOOST
from insightos_utils.leads.stage import FeatureInputs
from insightos_utils.leads.train import TrainingResult


def metrics_table(result: TrainingResult) -> pd.DataFrame:
    """Holdout metrics of both models next to a constant baseline (everyone gets the base rate)."""
    columns = [
        "holdout_roc_auc",
        "holdout_pr_auc",
        "holdout_brier",
        "top_decile_precision",
        "top_decile_recall",
        "top_decile_lift",
        "base_rate",
        "cv_roc_auc",
    ]
    rows = {name: {c: result.metrics[name][c] for c in columns} for name in MODEL_NAMES}
    base = result.metrics[LOGREG]["base_rate"]
    rows["constant baseline"] = {
        "holdout_roc_auc": 0.5,
        "holdout_pr_auc": base,
        "holdout_brier": round(base * (1 - base), 4),
        "top_decile_precision": base,
        "top_decile_recall": 0.1,
        "top_decile_lift": 1.0,
        "base_rate": base,
        "cv_roc_auc": None,
    }
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "model"
    return table


def summary_markdown(card: Mapping[str, Any]) -> str:
    """The model card in words, numbers inline: what a stakeholder reads in the report."""
    champion = card["champion"]
    other = XGBOOST if champion == LOGREG else LOGREG
    m, o = card["models"][champion], card["models"][other]
    holdout = card["holdout"]["holdout"]
    lines = []
    signal = card.get("signal") or {}
    if signal and not signal.get("better_than_chance", True):
        lines.append(f"## WARNING: NO USABLE SIGNAL\n\n**{signal['reason']}**")
    if card["leakage_suspected"]:
        lines.append(
            f"## WARNING: SUSPECTED LEAKAGE\n\n**{card['leakage_warning']}**\n\n"
            "The numbers below are not a success: they mean a feature probably contains the "
            "answer. Do not call leads from these scores until the features are audited."
        )
    lines.append(
        f"**Champion: `{champion}`** (`{card['model_version']}`). On the time-based holdout "
        f"(the latest {holdout['n']:,} signups with a known outcome, "
        f"{holdout['signups_from'][:10]} to {holdout['signups_to'][:10]}, "
        f"{holdout['positives']:,} converted, base rate {m['base_rate']:.1%}) it reaches ROC AUC "
        f"**{m['holdout_roc_auc']:.3f}** and PR AUC {m['holdout_pr_auc']:.3f}; calling the top "
        f"10% of leads first reaches {m['top_decile_recall']:.0%} of the conversions, "
        f"{m['top_decile_lift']:.1f}x a random order. `{other}`: ROC AUC "
        f"{o['holdout_roc_auc']:.3f}, PR AUC {o['holdout_pr_auc']:.3f}. "
        f"{card['champion_rule']['decision']}."
    )
    calibration = card["calibration"]
    if calibration["applied"]:
        b, a = calibration["before"], calibration["after"]
        lines.append(
            f"Probabilities were calibrated ({calibration['method']}, fitted on the training "
            f"part): mean predicted {b['mean_predicted']:.1%} became {a['mean_predicted']:.1%} "
            f"against {a['observed_rate']:.1%} observed; Brier {b['brier']:.3f} to "
            f"{a['brier']:.3f}; ranking unchanged."
        )
    else:
        lines.append("The champion's probabilities already matched observed rates; no calibration.")
    backtest = card.get("backtest")
    if backtest and backtest.get("state") == "skipped":
        lines.append(f"**Backtest not computed.** {backtest['reason']} {backtest.get('fix') or ''}")
    elif backtest:
        rates = {row["grade"]: row["conversion_rate"] for row in backtest["by_grade"]}
        lines.append(
            f"Backtest: a model trained on data up to {backtest['trained_as_of'][:10]} graded "
            f"the {backtest['open_leads_scored']:,} leads open then; by "
            f"{backtest['outcome_as_of'][:10]} grade A converted {_percent(rates.get('A'))}, "
            f"B {_percent(rates.get('B'))}, C {_percent(rates.get('C'))}, D "
            f"{_percent(rates.get('D'))}; the top 10% converted "
            f"{backtest['top_decile_conversion_rate']:.1%} against "
            f"{backtest['rest_conversion_rate']:.1%} for the rest."
        )
    horizon = card.get("horizon_days")
    if horizon:
        timing = (card.get("time_to_conversion") or {}).get("share_converted_at_horizon") or []
        read = ", ".join(
            f"{row['grade']} {_percent(row['share_converted'])}"
            for row in timing
            if row.get("share_converted") is not None
        )
        lines.append(
            f"The score is the probability of converting within **{horizon} days** of signup. "
            + (
                f"Kaplan–Meier share converted within {horizon} days by grade, on users the "
                f"champion never trained on: {read}."
                if read
                else f"Follow-up is too short to read the share converted at {horizon} days."
            )
        )
    trend = card.get("trend")
    if trend:
        lines.append(
            f"Trend since the previous run: {trend['improving']:,} improving, "
            f"{trend['steady']:,} steady, {trend['declining']:,} declining, {trend['new']:,} "
            f"new ({trend['compared_with']})."
        )
    attributes = card.get("lead_attributes") or []
    if attributes:
        kept = [a["attribute"] for a in attributes if a["decision"] == "kept"]
        lines.append(
            f"Lead attributes: {len(attributes)} found, {len(kept)} used"
            + (f" ({', '.join(f'`{a}`' for a in kept)})" if kept else "")
            + "; "
            + (
                "; ".join(
                    f"`{a['attribute']}` not used: {a['reason']}"
                    for a in attributes
                    if a["decision"] == "dropped"
                )
                or "none left out"
            )
            + "."
        )
    scored = card.get("scored_leads")
    if scored:
        grades = ", ".join(f"{g} {n:,}" for g, n in scored["by_grade"].items())
        lines.append(f"Scored {scored['open_leads']:,} open leads: {grades}.")
    audit = card["leakage_audit"]
    excluded = ", ".join(f"`{e}`" for e in audit["excluded_post_conversion_events"]) or "none"
    leaky = ", ".join(f"`{f}`" for f in audit["leaky_features_removed"]) or "none"
    lines.append(
        f"Leakage audit: {audit['result']} (champion holdout ROC AUC "
        f"{audit['champion_holdout_roc_auc']:.3f}, alarm at {audit['suspect_holdout_auc']}); "
        f"post-conversion events kept out: {excluded}; features removed as leaky: {leaky}."
    )
    return "\n\n".join(lines)


def _percent(value: float | None) -> str:
    return "n/a" if value is None or pd.isna(value) else f"{value:.1%}"


# --- the notebook's sections ---------------------------------------------------------------------


def inputs_markdown(inputs: FeatureInputs, features_by_model: Mapping[str, list[str]]) -> str:
    """Who the models learn from and score, and where the feature decisions came from."""
    table = inputs.feature_table
    return (
        f"As of **{pd.Timestamp(inputs.spec.as_of):%Y-%m-%d %H:%M}** UTC: "
        f"{len(features.training_rows(table)):,} users with a known outcome, "
        f"{len(features.open_leads(table)):,} open leads. Feature spec, decisions and table "
        f"{inputs.source}. `{LOGREG}` uses {len(features_by_model[LOGREG])} features, "
        f"`{XGBOOST}` {len(features_by_model[XGBOOST])}."
    )


def kept_out_table(decisions: eda.FeatureDecisions) -> pd.DataFrame:
    """Every feature or event kept out of a model, and why."""
    return pd.DataFrame(
        [(c, "linear only", r) for c, r in decisions.dropped_for_linear.items()]
        + [(c, "all models (leaky)", r) for c, r in decisions.leaky_features.items()]
        + [(e, "post-conversion event", r) for e, r in decisions.excluded_events.items()],
        columns=["kept out", "of", "why"],
    )


def holdout_markdown(result: TrainingResult) -> str:
    """The time-based holdout in one sentence."""
    holdout = result.split.describe()["holdout"]
    return (
        f"Holdout: {holdout['n']:,} signups from {holdout['signups_from'][:10]} to "
        f"{holdout['signups_to'][:10]}, {holdout['positives']:,} converted. "
        f"Training took {result.training_seconds:.1f} s."
    )


def champion_markdown(result: TrainingResult) -> str:
    """Why the champion won, the chance check and the leakage alarm (loud when they rang)."""
    if not result.signal.get("better_than_chance", True):
        return (
            f"{result.champion_reason}\n\n## WARNING: NO USABLE SIGNAL\n\n"
            f"**{result.signal['reason']}**"
        )
    if result.leakage_suspected:
        return (
            f"{result.champion_reason}\n\n## WARNING: SUSPECTED LEAKAGE\n\n"
            f"**{result.leakage_warning}**"
        )
    return (
        f"{result.champion_reason}\n\nNo leakage signal: champion holdout ROC AUC "
        f"{result.metrics[result.champion]['holdout_roc_auc']:.3f} "
        f"(the alarm is at {result.suspect_holdout_auc})."
    )


def written_markdown(written: list[Path], run_dir: str | Path) -> str:
    """The files the stage wrote, relative to the run folder."""
    names = sorted(str(Path(p).relative_to(run_dir)) for p in written)
    return "Written: " + ", ".join(f"`{name}`" for name in names)


def call_first_markdown(rank_by: str, n: int, horizon_days: int | None) -> str:
    """What the notebook's top-``n`` table orders by, and where the run's own calling order is.

    The table is by probability: the value ranking (``[scoring] rank_by = "value"``) needs the
    new-customer values 04_ltv writes after this notebook, so the runner re-ranks
    ``scored_leads.csv`` once every notebook has run."""
    within = f" within {horizon_days} days of signup" if horizon_days else ""
    table = (
        f"The {n} open leads most likely to convert{within}, highest score first: `rank` here "
        "is the probability ranking this notebook wrote."
    )
    if rank_by == "value":
        return (
            f'{table} This run ranks by **expected value** (`[scoring] rank_by = "value"`: '
            "the score × the value of a new customer of the lead's campaign). Those values come "
            "from `04_ltv`, which runs after this notebook, so the runner re-ranks "
            "`scored_leads.csv` once `04_ltv` has written them; the run summary's *who to call "
            "first* shows that ordering, or says why it fell back to probability (for example "
            "no transactions for LTV)."
        )
    return (
        f'{table} This run ranks by probability too (`[scoring] rank_by = "probability"`): '
        "the run summary's *who to call first* follows this order and shows the expected value "
        "beside it when LTV is available."
    )
