"""Charts for lifetime value (04_ltv): the holdout check, the Gamma-Gamma assumption, and value,
LTV/CAC and payback by campaign. Each function draws one figure and returns it; titles state
the finding."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from insightos_utils.ltv.economics import ReferenceRatio
from insightos_utils.ltv.models.gamma_gamma import INDEPENDENCE_WARN_CORRELATION
from insightos_utils.ltv.units import UNIT_DAYS
from insightos_utils.ltv.validation import HoldoutValidation


def calibration_vs_holdout(holdout: HoldoutValidation, time_unit: str = "W") -> Figure:
    """Mean actual against predicted holdout purchases by calibration-period frequency."""
    table = holdout.by_frequency
    days = holdout.duration * UNIT_DAYS[time_unit]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    positions = np.arange(len(table))
    ax.plot(positions, table["actual_mean"], "o-", label="actual", color="#1f77b4")
    ax.plot(positions, table["predicted_mean"], "s--", label="BG/NBD forecast", color="#ff7f0e")
    labels = [
        f"{group}\nn={n:,}"
        for group, n in zip(table["calibration_frequency"], table["customers"], strict=True)
    ]
    ax.set_xticks(positions, labels)
    ax.set_xlabel("repeat purchases in the calibration period (n = customers)")
    ax.set_ylabel(f"mean purchases in the {days:.0f}-day holdout")
    ax.set_title(
        f"Holdout purchases: {holdout.predicted_total:,.0f} forecast against "
        f"{holdout.actual_total:,.0f} actual ({holdout.total_error_pct:+.1f}%)"
    )
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def frequency_vs_spend(summary: pd.DataFrame, correlation: float) -> Figure:
    """Repeat customers' frequency against mean spend per purchase (Gamma-Gamma independence)."""
    repeaters = summary[summary["frequency"] > 0]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    jitter = np.random.default_rng(0).uniform(-0.2, 0.2, len(repeaters))
    ax.scatter(repeaters["frequency"] + jitter, repeaters["monetary_value"], s=6, alpha=0.3)
    ax.set_yscale("log")
    ax.set_xlabel("repeat purchases (frequency)")
    ax.set_ylabel("mean value of a repeat purchase (log scale)")
    verdict = (
        "close enough to independent for Gamma-Gamma"
        if not abs(correlation) > INDEPENDENCE_WARN_CORRELATION
        else "correlated: Gamma-Gamma's assumption is strained"
    )
    ax.set_title(f"Frequency and spend per purchase: r = {correlation:.2f}, {verdict}")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def campaign_ltv_bars(
    campaign_table: pd.DataFrame, horizon_months: int = 12, ratio: ReferenceRatio | None = None
) -> Figure:
    """Mean LTV per campaign with its 95% bootstrap interval as error bars."""
    table = campaign_table[campaign_table["customers"] > 0].sort_values("ltv_mean")
    fig, ax = plt.subplots(figsize=(8, 0.5 * len(table) + 1.8))
    errors = np.vstack(
        [table["ltv_mean"] - table["ltv_ci_low"], table["ltv_ci_high"] - table["ltv_mean"]]
    )
    colors = [
        "#2ca02c" if ratio is not None and name == ratio.campaign else "#1f77b4"
        for name in table["campaign"]
    ]
    ax.barh(table["campaign"], table["ltv_mean"], xerr=errors, color=colors, capsize=4)
    for y, (mean, high, n) in enumerate(
        zip(table["ltv_mean"], table["ltv_ci_high"], table["customers"], strict=True)
    ):
        ax.annotate(f" ${mean:,.0f} (n={n:,})", (high, y), va="center", fontsize=8)
    ax.set_xlim(0, np.nanmax(table["ltv_ci_high"]) * 1.3)
    ax.set_xlabel(f"mean {horizon_months}-month discounted LTV per customer ($), 95% CI")
    if ratio is not None:
        title = (
            f"{ratio.campaign} customers are worth {ratio.ratio:.1f}× the others "
            f"(95% CI {ratio.ci_low:.2f}–{ratio.ci_high:.2f})"
        )
    else:
        top = table.iloc[-1]
        title = f"{top['campaign']} brings the most valuable customers (${top['ltv_mean']:,.0f})"
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def ltv_to_cac_bars(campaign_table: pd.DataFrame, horizon_months: int = 12) -> Figure:
    """LTV/CAC per paid campaign with its interval, the break-even line and payback months."""
    paid = campaign_table[
        np.isfinite(campaign_table["ltv_to_cac"].astype(float)) & (campaign_table["customers"] > 0)
    ].sort_values("ltv_to_cac")
    fig, ax = plt.subplots(figsize=(8, 0.5 * max(len(paid), 1) + 1.8))
    if paid.empty:
        ax.text(0.5, 0.5, "no campaign has recorded spend", ha="center", va="center")
        ax.set_axis_off()
        ax.set_title("LTV/CAC needs campaign spend")
        return fig
    errors = np.vstack(
        [
            paid["ltv_to_cac"] - paid["ltv_to_cac_ci_low"],
            paid["ltv_to_cac_ci_high"] - paid["ltv_to_cac"],
        ]
    )
    colors = ["#2ca02c" if v >= 1 else "#d62728" for v in paid["ltv_to_cac"]]
    ax.barh(paid["campaign"], paid["ltv_to_cac"], xerr=errors, color=colors, capsize=4)
    ax.axvline(1.0, color="black", linestyle="--", linewidth=1, label="break-even (LTV = CAC)")
    ax.legend(loc="lower right", fontsize=8)
    for y, (high, payback, cac) in enumerate(
        zip(paid["ltv_to_cac_ci_high"], paid["payback_months"], paid["cac"], strict=True)
    ):
        months = f"{payback:.1f} mo" if math.isfinite(payback) else f">{horizon_months} mo"
        ax.annotate(f" CAC ${cac:,.0f}, payback {months}", (high, y), va="center", fontsize=8)
    ax.set_xlim(0, max(np.nanmax(paid["ltv_to_cac_ci_high"]), 1.0) * 1.45)
    best = paid.iloc[-1]
    ax.set_xlabel(f"{horizon_months}-month LTV / CAC (95% CI)")
    ax.set_title(
        f"{best['campaign']} returns {best['ltv_to_cac']:.1f} dollars of LTV per dollar of CAC"
    )
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def new_customer_value_bars(table: pd.DataFrame, horizon_months: int = 12) -> Figure:
    """Expected value of a just-acquired customer per campaign with its interval; campaigns
    that borrow the overall value (too few customers) are drawn grey."""
    rows = table.sort_values("value")
    fig, ax = plt.subplots(figsize=(8, 0.5 * len(rows) + 1.8))
    errors = np.vstack([rows["value"] - rows["value_low"], rows["value_high"] - rows["value"]])
    colors = [
        "#7f7f7f" if fallback else ("#2ca02c" if name == "(all)" else "#1f77b4")
        for name, fallback in zip(rows["campaign"], rows["fallback"], strict=True)
    ]
    ax.barh(rows["campaign"], rows["value"], xerr=np.clip(errors, 0, None), color=colors, capsize=4)
    for y, (value, high, n) in enumerate(
        zip(rows["value"], rows["value_high"], rows["customers"], strict=True)
    ):
        ax.annotate(f" ${value:,.0f} (n={n:,})", (high, y), va="center", fontsize=8)
    ax.set_xlim(0, np.nanmax(rows["value_high"]) * 1.3)
    ax.set_xlabel(f"expected {horizon_months}-month value of a new customer ($), first purchase "
                  "included, 95% interval")  # fmt: skip
    own = rows[~rows["fallback"] & (rows["campaign"] != "(all)")]
    best = own.iloc[-1] if len(own) else rows.iloc[-1]
    ax.set_title(
        f"A new {best['campaign']} customer is worth ${best['value']:,.0f} (grey: overall)"
    )
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig
