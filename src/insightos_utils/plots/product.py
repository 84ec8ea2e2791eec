"""Charts for product intelligence (05_product): the funnel, drop-off by campaign, friction
points and the early behaviours associated with converting. Each function draws one figure from
what ``insightos_utils.product`` computed and returns it; titles state the finding."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

FUNNEL_COLOUR = "#2a9d8f"
CONVERSION_COLOUR = "#e76f51"


def funnel_chart(table: pd.DataFrame, window_days: int) -> Figure:
    """Share of signups reaching each step (95% Wilson interval), conversion at each step."""
    rows = table.iloc[::-1]
    y = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(9, 0.55 * len(rows) + 1.8))
    ax.barh(y, rows["share_of_signups"], color=FUNNEL_COLOUR, alpha=0.85, label="reached")
    errors = np.vstack(
        [
            rows["share_of_signups"] - rows["share_ci_low"],
            rows["share_ci_high"] - rows["share_of_signups"],
        ]
    ).clip(min=0)
    ax.errorbar(rows["share_of_signups"], y, xerr=errors, fmt="none", color="#264653", capsize=3)
    ax.plot(
        rows["conversion_if_reached"],
        y,
        "D",
        color=CONVERSION_COLOUR,
        label="converted, if reached",
    )
    for position, row in zip(y, rows.itertuples(), strict=True):
        ax.text(
            min(row.share_of_signups, 1.0) + 0.01,
            float(position),
            f"{row.users_reached:,} ({row.share_of_signups:.0%}); converted {row.conversion_if_reached:.0%}",
            va="center",
            fontsize=8,
        )
    ax.set_yticks(y, [f"{row.step}. {row.event_name}" for row in rows.itertuples()])
    ax.set_xlim(0, 1.45)
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlabel(
        f"share of signups who did the step and every one before it in {window_days} days"
    )
    ax.set_ylabel("funnel step")
    last = table.iloc[-1]
    ax.set_title(
        f"{last['share_of_signups']:.0%} of signups get through all {len(table) - 1} steps; "
        f"they convert at {last['conversion_if_reached']:.0%} against "
        f"{table['conversion_if_reached'].iloc[0]:.0%} overall"
    )
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig


def campaign_heatmap(by_campaign: pd.DataFrame) -> Figure:
    """Share of each campaign's signups reaching each step."""
    steps = by_campaign[by_campaign["step"] > 0]
    grid = steps.pivot_table(
        index="campaign", columns="step", values="share_of_signups", sort=False
    ).sort_values(steps["step"].max(), ascending=False)
    labels = steps.drop_duplicates("step").set_index("step")["event_name"]
    fig, ax = plt.subplots(figsize=(1.1 * grid.shape[1] + 4, 0.45 * grid.shape[0] + 2))
    image = ax.imshow(grid.to_numpy(), aspect="auto", cmap="viridis", vmin=0, vmax=1)
    for (i, j), value in np.ndenumerate(grid.to_numpy()):
        colour = "black" if value > 0.55 else "white"  # readable on viridis' light end
        ax.text(j, i, f"{value:.0%}", ha="center", va="center", fontsize=8, color=colour)
    ax.set_xticks(range(grid.shape[1]), [labels[s] for s in grid.columns], rotation=30, ha="right")
    ax.set_yticks(range(grid.shape[0]), grid.index)
    ax.set_xlabel("funnel step")
    ax.set_ylabel("campaign")
    fig.colorbar(
        image, ax=ax, format=PercentFormatter(1.0), label="share of the campaign's signups"
    )
    best, worst = grid.index[0], grid.index[-1]
    ax.set_title(
        f"{best} gets {grid.iloc[0, -1]:.0%} of its signups through the funnel, "
        f"{worst} {grid.iloc[-1, -1]:.0%}"
    )
    fig.tight_layout()
    return fig


def friction_chart(friction: pd.DataFrame) -> Figure:
    """Conversions left at each step (users lost x conversion gap), with its 95% interval."""
    rows = friction.iloc[::-1]
    y = np.arange(len(rows))
    left = rows["conversions_left"].fillna(0).to_numpy()
    errors = np.vstack(
        [
            left - rows["conversions_left_low"].fillna(0).to_numpy(),
            rows["conversions_left_high"].fillna(0).to_numpy() - left,
        ]
    ).clip(min=0)
    colours = ["#e76f51" if pd.notna(r) else "#9aa5b1" for r in rows["rank"]]
    fig, ax = plt.subplots(figsize=(9, 0.5 * len(rows) + 1.8))
    ax.barh(y, left, xerr=errors, color=colours, capsize=3)
    ax.axvline(0, color="#264653", linewidth=0.8)
    ax.set_yticks(y, [f"{r.previous_step} → {r.event_name}" for r in rows.itertuples()])
    ax.set_xlabel("conversions left at the step: users lost × conversion gap (95% interval)")
    ax.set_ylabel("step")
    if len(friction) and pd.notna(friction["rank"].iloc[0]):
        top = friction.iloc[0]
        ax.set_title(
            f"Most conversions are left between {top['previous_step']} and {top['event_name']}: "
            f"about {top['conversions_left']:,.0f}"
        )
    else:
        ax.set_title("No step where those who stop convert less than those who go on")
    fig.tight_layout()
    return fig


def drivers_chart(drivers: pd.DataFrame, top: int = 12) -> Figure:
    """Lift in conversion (with / without the behaviour) with its 95% interval, log scale."""
    rows = drivers.head(top).iloc[::-1]
    y = np.arange(len(rows))
    errors = np.vstack(
        [rows["lift"] - rows["lift_ci_low"], rows["lift_ci_high"] - rows["lift"]]
    ).clip(min=0)
    colours = np.select(
        [rows["evidence"] == "converts more", rows["evidence"] == "converts less"],
        ["#2a9d8f", "#e76f51"],
        "#9aa5b1",
    )
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(rows) + 1.8))
    for position, (value, error, colour) in enumerate(
        zip(rows["lift"], errors.T, colours, strict=True)
    ):
        ax.errorbar(value, position, xerr=error[:, None], fmt="o", color=colour, capsize=3)
    ax.axvline(1, color="#264653", linewidth=0.8, linestyle="--")
    ax.set_xscale("log")
    ax.set_yticks(y, [f"{r.behaviour} (n={r.users_with:,})" for r in rows.itertuples()])
    ax.set_xlabel("lift: conversion with the behaviour ÷ without (95% interval, log scale)")
    ax.set_ylabel("early behaviour")
    if len(drivers):
        best = drivers.iloc[0]
        ax.set_title(
            f"{best['behaviour']}: {best['lift']:.1f}× the conversion of those without "
            "(association, not cause)"
        )
    fig.tight_layout()
    return fig
