"""Lead-scoring charts: each function returns a matplotlib Figure whose title states the finding.

Figures are built without pyplot's global state, so they can be made in tests and scripts and
shown in notebooks (the last expression of a cell, or ``display(figure)``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.metrics import precision_recall_curve, roc_curve

from insightos_utils.leads.backtest import BacktestResult
from insightos_utils.leads.explain import feature_label
from insightos_utils.leads.features import TARGET
from insightos_utils.leads.pipelines import MODEL_NAMES
from insightos_utils.leads.train import TrainingResult

COLOURS = {"v1_logreg": "#1f77b4", "v2_xgboost": "#ff7f0e", "champion": "#2ca02c"}


def roc_pr_curves(result: TrainingResult) -> Figure:
    """ROC and precision-recall curves of both models on the time-based holdout."""
    y = result.holdout_scores[TARGET].to_numpy()
    figure = Figure(figsize=(11, 4.6), layout="constrained")
    roc_axes, pr_axes = figure.subplots(1, 2)
    for name in MODEL_NAMES:
        score = result.holdout_scores[name].to_numpy()
        metrics = result.metrics[name]
        fpr, tpr, _ = roc_curve(y, score)
        roc_axes.plot(
            fpr, tpr, color=COLOURS[name], label=f"{name} (AUC {metrics['holdout_roc_auc']:.3f})"
        )
        precision, recall, _ = precision_recall_curve(y, score)
        pr_axes.plot(
            recall,
            precision,
            color=COLOURS[name],
            label=f"{name} (PR AUC {metrics['holdout_pr_auc']:.3f})",
        )
    roc_axes.plot([0, 1], [0, 1], color="grey", linestyle="--", label="random")
    roc_axes.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC, holdout")
    base_rate = float(np.mean(y))
    pr_axes.axhline(base_rate, color="grey", linestyle="--", label=f"base rate {base_rate:.1%}")
    pr_axes.set(xlabel="recall", ylabel="precision", title="Precision-recall, holdout")
    for axes in (roc_axes, pr_axes):
        axes.legend(loc="lower right" if axes is roc_axes else "upper right")
        axes.grid(alpha=0.3)
    champion = result.champion
    figure.suptitle(
        f"{champion} is champion: holdout ROC AUC "
        + " vs ".join(f"{result.metrics[n]['holdout_roc_auc']:.3f} ({n})" for n in MODEL_NAMES)
    )
    return figure


def gains_chart(result: TrainingResult) -> Figure:
    """Cumulative gains: share of conversions reached when calling the top-scored leads first."""
    figure = Figure(figsize=(7.5, 5), layout="constrained")
    axes = figure.subplots()
    for name in MODEL_NAMES:
        curve = pd.DataFrame(result.curves[name]["gains"])
        axes.plot(
            np.r_[0, curve["fraction_contacted"]],
            np.r_[0, curve["fraction_of_conversions"]],
            marker="o",
            markersize=3,
            color=COLOURS[name],
            label=name,
        )
    axes.plot([0, 1], [0, 1], color="grey", linestyle="--", label="random order")
    axes.set(xlabel="share of leads called (highest score first)", ylabel="share of conversions")
    axes.xaxis.set_major_formatter("{x:.0%}")
    axes.yaxis.set_major_formatter("{x:.0%}")
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right")
    metrics = result.metrics[result.champion]
    figure.suptitle(
        f"Calling the top 10% of leads first reaches {metrics['top_decile_recall']:.0%} of "
        f"conversions ({metrics['top_decile_lift']:.1f}x random), champion {result.champion}"
    )
    return figure


def calibration_chart(result: TrainingResult) -> Figure:
    """Observed conversion rate against predicted probability, before and after calibration."""
    calibration = result.calibration
    figure = Figure(figsize=(7.5, 5), layout="constrained")
    axes = figure.subplots()
    before = pd.DataFrame(calibration["before_curve"])
    axes.plot(
        before["mean_predicted"],
        before["observed_rate"],
        marker="o",
        color=COLOURS[result.champion],
        label=f"{result.champion} as trained",
    )
    if calibration["applied"]:
        after = pd.DataFrame(calibration["after_curve"])
        axes.plot(
            after["mean_predicted"],
            after["observed_rate"],
            marker="s",
            color=COLOURS["champion"],
            label=f"{result.champion} calibrated ({calibration['method']})",
        )
    axes.plot([0, 1], [0, 1], color="grey", linestyle="--", label="perfectly calibrated")
    axes.set(xlabel="predicted probability (holdout bins)", ylabel="observed conversion rate")
    axes.grid(alpha=0.3)
    axes.legend(loc="upper left")
    b = calibration["before"]
    if calibration["applied"]:
        a = calibration["after"]
        title = (
            f"Calibration brought the mean predicted probability from {b['mean_predicted']:.1%} "
            f"to {a['mean_predicted']:.1%} (observed {a['observed_rate']:.1%}); "
            f"Brier {b['brier']:.3f} to {a['brier']:.3f}"
        )
    else:
        title = (
            f"Probabilities already match: mean predicted {b['mean_predicted']:.1%} vs "
            f"observed {b['observed_rate']:.1%}, no calibration needed"
        )
    figure.suptitle(title)
    return figure


def backtest_chart(backtest: BacktestResult) -> Figure:
    """Later conversion rate of the leads open at the backtest date, by the grade given then."""
    table = backtest.by_grade
    figure = Figure(figsize=(7.5, 5), layout="constrained")
    axes = figure.subplots()
    bars = axes.bar(table["grade"], table["conversion_rate"].fillna(0), color="#4c72b0")
    for bar, (_, row) in zip(bars, table.iterrows(), strict=True):
        rate = row["conversion_rate"]
        label = "no leads" if pd.isna(rate) else f"{rate:.1%}\n{row['converted']}/{row['leads']}"
        axes.annotate(
            label,
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center",
            va="bottom",
            fontsize=9,
        )
    axes.set(
        xlabel=f"grade given on {backtest.trained_as_of:%Y-%m-%d}",
        ylabel=f"converted by {backtest.outcome_as_of:%Y-%m-%d}",
    )
    axes.yaxis.set_major_formatter("{x:.0%}")
    axes.grid(alpha=0.3, axis="y")
    rates = table.set_index("grade")["conversion_rate"]
    figure.suptitle(
        f"Backtest: leads graded A converted {_rate(rates.get('A'))} later, grade D "
        f"{_rate(rates.get('D'))}; top 10% {backtest.top_decile_rate:.1%} vs rest "
        f"{backtest.rest_rate:.1%}"
    )
    return figure


def _rate(value: float | None) -> str:
    return "n/a" if value is None or pd.isna(value) else f"{value:.1%}"


def reasons_chart(frequency: pd.DataFrame, leads: int, top: int = 12) -> Figure:
    """How often each feature is among the leads' top reasons, raising or lowering the score.

    ``frequency`` is ``explain.reason_frequency``; ``leads`` the number of leads explained.
    """
    shown = frequency.head(top).iloc[::-1]
    labels = [feature_label(f) for f in shown["feature"]]
    figure = Figure(figsize=(8, 0.45 * len(shown) + 1.8), layout="constrained")
    axes = figure.subplots()
    axes.barh(labels, shown["raises"], color="#2ca02c", label="raises the score")
    axes.barh(labels, shown["lowers"], left=shown["raises"], color="#d62728", label="lowers it")
    axes.set(xlabel="leads with this feature among their top reasons")
    axes.legend(loc="lower right")
    axes.grid(alpha=0.3, axis="x")
    if len(frequency):
        first = frequency.iloc[0]
        title = (
            f"'{feature_label(first['feature'])}' explains the most scores: among the top reasons "
            f"of {first['total'] / max(leads, 1):.0%} of open leads"
        )
    else:
        title = "No reasons to show: no open leads were scored"
    figure.suptitle(title)
    return figure
