"""Time to conversion: Kaplan–Meier curves of the share of signups converted, by grade.

Built without pyplot's global state (like ``plots.scoring``); the title states the finding.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

GRADE_COLOURS = {"A": "#2ca02c", "B": "#1f77b4", "C": "#ff7f0e", "D": "#d62728"}


def conversion_curves(
    curves: pd.DataFrame, horizon_days: int | None = None, group_column: str = "grade"
) -> Figure:
    """Share converted against days since signup, one step curve per group with its interval
    band (``leads.survival.conversion_curves_by_grade``'s table); a dashed line at the horizon,
    and the title reads each group's share at the horizon."""
    figure = Figure(figsize=(9, 4.8), layout="constrained")
    axes = figure.subplots()
    at_horizon = []
    for group, curve in curves.groupby(group_column, sort=True):
        curve = curve.sort_values("days")
        colour = GRADE_COLOURS.get(str(group))
        days = curve["days"].to_numpy()
        share = curve["share_converted"].to_numpy()
        axes.step(
            days,
            share,
            where="post",
            color=colour,
            label=f"{group} (n={curve['at_risk'].iloc[0]:,})",
        )
        axes.fill_between(
            days,
            1.0 - curve["ci_high"].to_numpy(),
            1.0 - curve["ci_low"].to_numpy(),
            step="post",
            color=colour,
            alpha=0.15,
        )
        if horizon_days is not None and days.max() >= horizon_days:
            value = share[np.flatnonzero(days <= horizon_days)[-1]]
            at_horizon.append(f"{group} {value:.0%}")
    if horizon_days is not None:
        axes.axvline(horizon_days, color="grey", linestyle="--", label=f"horizon {horizon_days} d")
    axes.set(xlabel="days since signup", ylabel="share converted (Kaplan–Meier)")
    axes.yaxis.set_major_formatter(lambda value, _: f"{value:.0%}")
    axes.grid(alpha=0.3)
    axes.legend(title=group_column, loc="upper left")
    if at_horizon:
        title = f"Converted within {horizon_days} days of signup: " + ", ".join(at_horizon)
    else:
        title = "Share of signups converted, by days since signup"
    axes.set_title(title)
    return figure
