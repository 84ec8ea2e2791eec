"""EDA charts: each takes what ``insightos_utils.leads.eda`` computed and returns a matplotlib Figure
whose title states the finding and whose axes are labelled."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter


def plot_class_balance(balance: dict[str, Any]) -> Figure:
    """Converted vs not converted among users whose outcome is known."""
    converted = int(balance["converted"])
    others = int(balance["n"]) - converted
    fig, ax = plt.subplots(figsize=(5, 3.5))
    bars = ax.bar(["not converted", "converted"], [others, converted], color=["#9aa5b1", "#2a9d8f"])
    ax.bar_label(bars, labels=[f"{others:,}", f"{converted:,}"])
    ax.set_xlabel("outcome at as-of")
    ax.set_ylabel("users")
    ax.set_title(
        f"{balance['rate']:.1%} of {int(balance['n']):,} users with a known outcome converted"
    )
    fig.tight_layout()
    return fig


def plot_conversion_by(conversion: pd.DataFrame, column: str = "campaign") -> Figure:
    """Conversion rate per group with its confidence interval as error bars."""
    table = conversion.sort_values("rate")
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(table) + 1.5))
    y = np.arange(len(table))
    errors = np.vstack([table["rate"] - table["ci_low"], table["ci_high"] - table["rate"]]).clip(
        min=0
    )
    ax.errorbar(table["rate"], y, xerr=errors, fmt="o", color="#264653", capsize=3)
    ax.set_yticks(y, [f"{name} (n={n:,})" for name, n in zip(table.index, table["n"], strict=True)])
    ax.set_xlabel("conversion rate (95% Wilson interval)")
    ax.set_ylabel(column)
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    best = conversion.index[0]
    ax.set_title(
        f"{best} converts best: {conversion['rate'].iloc[0]:.1%} "
        f"({conversion['ci_low'].iloc[0]:.1%}–{conversion['ci_high'].iloc[0]:.1%})"
    )
    fig.tight_layout()
    return fig


def plot_correlation_heatmap(corr: pd.DataFrame, threshold: float = 0.9) -> Figure:
    """Pearson correlation of the numeric features; the title names the strongest pair."""
    size = max(6.0, 0.4 * len(corr) + 2)
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    mask = np.triu(np.ones(corr.shape, dtype=bool), k=1)
    sns.heatmap(
        corr,
        mask=mask,
        vmin=-1,
        vmax=1,
        center=0,
        cmap="vlag",
        square=True,
        ax=ax,
        cbar_kws={"label": "Pearson r"},
    )
    ax.set_xlabel("feature")
    ax.set_ylabel("feature")
    values = corr.to_numpy(copy=True)
    values[~np.triu(np.ones(values.shape, dtype=bool), k=1)] = np.nan
    if np.isfinite(values).any():
        i, j = np.unravel_index(np.nanargmax(np.abs(values)), values.shape)
        r = values[i, j]
        verdict = "above" if abs(r) > threshold else "below"
        ax.set_title(
            f"Strongest pair: {corr.index[i]} / {corr.columns[j]}, r = {r:.2f} "
            f"({verdict} the {threshold} flag)"
        )
    else:
        ax.set_title("No correlation could be computed")
    fig.tight_layout()
    return fig


def plot_vif(vif: pd.DataFrame, threshold: float = 10.0) -> Figure:
    """Variance inflation factor per feature (log scale) with the flag threshold."""
    table = vif.dropna(subset=["vif"]).sort_values("vif")
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(table) + 1.5))
    colors = ["#e76f51" if v > threshold else "#9aa5b1" for v in table["vif"]]
    ax.barh(table["feature"], table["vif"].clip(upper=1e6), color=colors)
    ax.axvline(threshold, color="black", linestyle="--", linewidth=1, label=f"VIF = {threshold}")
    ax.set_xscale("log")
    ax.set_xlabel("variance inflation factor (log scale)")
    ax.set_ylabel("feature")
    ax.legend(loc="lower right")
    high = int((table["vif"] > threshold).sum())
    ax.set_title(
        f"{high} feature(s) above VIF {threshold:g}"
        + (f"; highest {table['feature'].iloc[-1]} ({table['vif'].iloc[-1]:.1f})" if high else "")
    )
    fig.tight_layout()
    return fig


def plot_single_feature_auc(auc: pd.DataFrame, leakage_threshold: float = 0.95) -> Figure:
    """Each feature's AUC on its own (max of AUC and 1 − AUC) against the leakage threshold."""
    table = auc.sort_values("abs_auc")
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(table) + 1.5))
    colors = ["#e76f51" if v > leakage_threshold else "#2a9d8f" for v in table["abs_auc"]]
    ax.barh(table["feature"], table["abs_auc"] - 0.5, left=0.5, color=colors)
    ax.axvline(
        leakage_threshold,
        color="black",
        linestyle="--",
        linewidth=1,
        label=f"leakage flag ({leakage_threshold})",
    )
    ax.set_xlim(0.5, 1.0)
    ax.set_xlabel("single-feature ROC AUC, max(AUC, 1 − AUC)")
    ax.set_ylabel("feature")
    ax.legend(loc="lower right")
    leaky = table.loc[table["abs_auc"] > leakage_threshold, "feature"].tolist()
    top = table.iloc[-1]
    ax.set_title(
        f"{len(leaky)} feature(s) above {leakage_threshold}: {', '.join(leaky)}"
        if leaky
        else f"No single feature leaks: the best, {top['feature']}, reaches AUC {top['abs_auc']:.2f}"
    )
    fig.tight_layout()
    return fig
