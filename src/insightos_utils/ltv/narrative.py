"""The sentences reports show about lifetime value: the next-dollar recommendation, the
notebook's conclusion and the parameter table, every number taken from the analysis."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from insightos_utils.ltv.analysis import LtvAnalysis
from insightos_utils.ltv.economics import ReferenceRatio
from insightos_utils.ltv.models.gamma_gamma import INDEPENDENCE_WARN_CORRELATION

if TYPE_CHECKING:
    from insightos_utils.ltv.stage import LtvStageResult


def money(value: float) -> str:
    return f"${value:,.2f}"


def next_dollar_recommendation(
    campaign_table: pd.DataFrame,
    ratio: ReferenceRatio | None = None,
    horizon_months: int = 12,
) -> str:
    """Where to put the next marketing dollar, in plain words built from the campaign numbers."""
    sentences: list[str] = []
    paid = campaign_table[
        np.isfinite(campaign_table["cac"]) & (campaign_table["customers"] > 0)
    ].sort_values("ltv_to_cac", ascending=False)
    if paid.empty:
        sentences.append(
            "No campaign has recorded spend, so acquisition cost cannot be weighed against value; "
            "record campaign spend to rank where the next dollar should go."
        )
    else:
        best = paid.iloc[0]
        payback = best["payback_months"]
        payback_text = (
            f"and pays its CAC back in {payback:.1f} months"
            if math.isfinite(payback)
            else f"and does not pay its CAC back within {horizon_months} months"
        )
        if best["ltv_to_cac"] < 1:
            sentences.append(
                f"No paid campaign recovers its acquisition cost within {horizon_months} months: "
                f"the best, {best['campaign']}, returns {best['ltv_to_cac']:.2f} dollars of "
                f"LTV per dollar of CAC ({money(best['ltv_mean'])} LTV against "
                f"{money(best['cac'])} CAC). Hold spend until CAC falls or value rises."
            )
        else:
            sentences.append(
                f"Put the next dollar into {best['campaign']}: each customer it brings is worth "
                f"{money(best['ltv_mean'])} over {horizon_months} months (95% CI "
                f"{money(best['ltv_ci_low'])}–{money(best['ltv_ci_high'])}) against a CAC of "
                f"{money(best['cac'])}, an LTV/CAC of {best['ltv_to_cac']:.1f} (95% CI "
                f"{best['ltv_to_cac_ci_low']:.1f}–{best['ltv_to_cac_ci_high']:.1f}), "
                f"{payback_text}."
            )
            if len(paid) > 1:
                second = paid.iloc[1]
                overlap = second["ltv_to_cac_ci_high"] >= best["ltv_to_cac_ci_low"]
                sentences.append(
                    f"The next best is {second['campaign']} at LTV/CAC "
                    f"{second['ltv_to_cac']:.1f}"
                    + (
                        "; the two intervals overlap, so the ranking is not certain."
                        if overlap
                        else "; the intervals do not overlap."
                    )
                )
        losing = paid[paid["ltv_to_cac"] < 1]["campaign"].tolist()
        if losing and paid.iloc[0]["ltv_to_cac"] >= 1:
            sentences.append(
                f"Campaigns that do not recover their CAC within {horizon_months} months: "
                f"{', '.join(losing)}."
            )
    wasted = campaign_table[(campaign_table["customers"] == 0) & (campaign_table["spend"] > 0)]
    if not wasted.empty:
        sentences.append(
            "Spend that acquired no customer: "
            + ", ".join(f"{r.campaign} ({money(r.spend)})" for r in wasted.itertuples())
            + "."
        )
    if ratio is not None:
        clear = ratio.ci_low > 1 or ratio.ci_high < 1
        sentences.append(
            f"{ratio.campaign} customers are worth {ratio.ratio:.1f}× the others "
            f"({money(ratio.reference_ltv)} against {money(ratio.other_ltv)}; 95% CI of the "
            f"ratio {ratio.ci_low:.2f}–{ratio.ci_high:.2f}"
            + (")." if clear else "), a difference the data cannot tell apart from none.")
        )
    sentences.append(
        "LTV/CAC is an average: the next dollar buys the marginal customer, so raise a "
        "campaign's budget in steps and watch its CAC."
    )
    return " ".join(sentences)


def fitted_models(analysis: LtvAnalysis) -> list[Any]:
    """The fits to report: BG/NBD, Pareto/NBD where it was fitted, Gamma-Gamma."""
    pareto = analysis.models.paretonbd
    return [analysis.bgnbd, *([pareto] if pareto is not None else []), analysis.gamma_gamma]


def parameters_table(analysis: LtvAnalysis) -> pd.DataFrame:
    """The fitted parameters with their standard errors, one row per parameter; at a boundary
    the limit's value (0 or infinity) and, below, the limiting model's own parameters."""
    rows = []
    for fit in fitted_models(analysis):
        model = fit.title
        for name, value in fit.params_dict().items():
            error = fit.standard_errors.get(name)
            rows.append(
                {
                    "model": model,
                    "parameter": name,
                    "estimate": value,
                    "standard_error": float("nan") if error is None else error,
                }
            )
    for limit in analysis.models.limits().values():
        for name, value in limit.items():
            if name != "model":
                rows.append(
                    {
                        "model": f"limit: {limit['model']}",
                        "parameter": name,
                        "estimate": value,
                        "standard_error": float("nan"),
                    }
                )
    return pd.DataFrame(rows)


# What each boundary means for a reader, in the report's words.
BOUNDARY_WORDS = {
    ("bgnbd", "a/(a+b)"): (
        "**No evidence of dropout.** In the calibration window the data show no sign of "
        "customers stopping: BG/NBD's mean dropout probability a/(a+b) goes to 0, so the model "
        "becomes its limit, the NBD, in which every customer stays alive and keeps buying at "
        "their own rate. The values below come from that limit; they will come down once the "
        "data show customers leaving, so re-run as history grows."
    ),
    ("bgnbd", "r"): (
        "**One purchase rate for everyone.** Customers do not differ in how often they buy "
        "(the Gamma spread of rates vanishes, r goes to infinity): the purchase model is a "
        "single Poisson rate, and a customer's own history does not change their forecast."
    ),
    ("bgnbd", "a + b"): (
        "**a + b < 1.** Dropout probabilities pile up near 0 and near 1 (a U-shaped Beta): some "
        "customers leave almost at once, others almost never. Predictions for customers without "
        "repeat purchases are computed exactly here (lifetimes returns NaN for them)."
    ),
    ("gamma_gamma", "p"): (
        "**Each customer spends alike every time.** Customers differ in what they spend, but a "
        "customer's own purchases hardly vary around their mean (Gamma-Gamma's p goes to "
        "infinity): a repeat customer's expected value per purchase is their own average, and a "
        "customer without repeat purchases gets the population mean, {value}."
    ),
    ("gamma_gamma", "q"): (
        "**Homogeneous spend.** Customers do not differ in their mean spend per purchase "
        "(Gamma-Gamma's q goes to infinity): every customer's expected value per purchase is "
        "one common figure, {value}."
    ),
}


def model_findings(analysis: LtvAnalysis) -> list[str]:
    """Sentences on boundary optima, missing standard errors and fits that did not converge."""
    sentences = []
    limits = analysis.models.limits()
    for model in fitted_models(analysis):
        record = model.fitted()
        for boundary in record.boundary:
            words = BOUNDARY_WORDS.get((boundary.model, boundary.parameter), boundary.meaning)
            value = limits.get("gamma_gamma", {}).get("mean_value", float("nan"))
            sentences.append(words.format(value=money(value)))
        if not record.convergence.converged:
            sentences.append(
                f"**The {model.title} fit did not converge** ({record.convergence.reason}; the "
                f"optimiser said: {record.convergence.message}): its figures come from the best "
                "point found and should be read with care."
            )
    return sentences


def stage_summary(result: LtvStageResult) -> str:
    """The opening line of the LTV page: what was fitted on what (Markdown)."""
    params = result.analysis.params
    return (
        f"{params['n_customers']:,} customers valued at as-of {result.as_of:%Y-%m-%d %H:%M}; the "
        f"models were checked on the holdout after {result.calibration_end:%Y-%m-%d %H:%M} and "
        f"refitted on everything up to as-of (time unit {params['time_unit']})."
    )


def fit_report(analysis: LtvAnalysis) -> str:
    """How the fits went, in words: convergence as measured, boundary findings, missing
    standard errors (Markdown)."""
    lines = []
    for model in fitted_models(analysis):
        record = model.fitted()
        convergence = record.convergence
        state = "converged" if convergence.converged else "did **not** converge"
        fitted = "" if convergence.model == model.title else f" (as its limit, {convergence.model})"
        lines.append(
            f"- {model.title}{fitted} {state}: projected gradient "
            f"{convergence.gradient_norm:.1e} (tolerance {convergence.gradient_tolerance:g}) after "
            f"{convergence.iterations} iterations; {convergence.starts_at_optimum} of "
            f"{convergence.starts} starts reached the optimum; log-likelihood "
            f"{record.log_likelihood:,.1f}."
        )
        if record.standard_error_note:
            lines.append(f"- {record.standard_error_note}.")
    lines.extend(f"- {sentence}" for sentence in model_findings(analysis))
    lines.extend(f"- Note: {note}" for note in analysis.params["notes"])
    return "\n".join(lines)


def new_customer_sentence(table: pd.DataFrame, horizon_months: int) -> str:
    """What a customer acquired today is worth, overall and for the best campaign with its own
    fit (from ``new_customer_value``)."""
    if table.empty:
        return ""
    rows = table.set_index("campaign")
    everyone = rows.iloc[0]
    text = (
        f"A customer acquired today is worth {money(everyone['value'])} over {horizon_months} "
        f"months, first purchase included (95% interval {money(everyone['value_low'])}–"
        f"{money(everyone['value_high'])})"
    )
    own = rows.iloc[1:][~rows.iloc[1:]["fallback"].astype(bool)]
    if len(own) > 1:
        best, worst = own["value"].idxmax(), own["value"].idxmin()
        text += (
            f"; a new {best} customer {money(own.loc[best, 'value'])}, a new {worst} customer "
            f"{money(own.loc[worst, 'value'])}"
        )
    return text + "."


def conclusion(
    analysis: LtvAnalysis,
    ratio: ReferenceRatio | None,
    recommendation: str,
    new_customers: pd.DataFrame | None = None,
) -> str:
    """The notebook's closing paragraph (Markdown), every number taken from the analysis."""
    params = analysis.params
    parts = [
        f"**{params['n_customers']:,} customers** ({params['n_repeat_customers']:,} repeat "
        f"buyers) are worth **{money(params['mean_ltv'])} each on average** over the next "
        f"{params['horizon_months']} months (discounted at {params['monthly_discount_rate']:.1%} "
        f"a month, gross margin {params['gross_margin']:.0%})."
    ]
    holdout = analysis.holdout
    if holdout is not None:
        parts.append(
            f"Checked on the {holdout.duration * params['unit_days']:.0f}-day holdout, the model "
            f"forecast {holdout.predicted_total:,.0f} repeat purchases against "
            f"{holdout.actual_total:,.0f} actual ({holdout.total_error_pct:+.1f}%; mean absolute "
            f"error {holdout.mae:.2f} purchases per customer)."
        )
    correlation = analysis.independence.correlation
    parts.append(
        f"Frequency and spend per purchase correlate at r = {correlation:.2f}"
        + (
            f", below the {INDEPENDENCE_WARN_CORRELATION} level at which Gamma-Gamma's "
            "independence assumption becomes doubtful."
            if analysis.independence.ok
            else ", above 0.3: Gamma-Gamma's independence assumption is strained, read the "
            "value per purchase with care."
        )
    )
    if new_customers is not None:
        parts.append(new_customer_sentence(new_customers, params["horizon_months"]))
    parts.extend(model_findings(analysis))
    parts.append(f"Convention: {params['month_convention']}.")
    if ratio is None:
        parts.append("The reference campaign has no customers here, so no ratio is reported.")
    parts.append(recommendation)
    return " ".join(parts)
