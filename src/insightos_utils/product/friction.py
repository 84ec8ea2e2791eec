"""Friction points: the funnel steps where the most conversions are left behind.

The comparison is made among the signups who had not converted by the end of their window (the
*landmark* group, ``EarlyActivity.undecided``): everyone in it had the same time to go through
the steps, and the outcome (converting later, by as-of) comes after what they did. Someone who
converted on day 2 never had the chance to do step 5 "before converting"; counting them as lost
there would make late steps look like friction for the wrong reason.

At step k, the users *lost* are those who reached step k - 1 but not step k in their window.
The conversion gap is the conversion of those who went on minus that of those who stopped, with
Newcombe's hybrid score interval (statsmodels). ``conversions_left`` = users lost x gap: the
conversions the step would add if those who stopped converted like those who went on. It ranks
the steps; it is an upper bound on what fixing a step could bring, because the users who stop
may differ from those who go on in ways the step does not cause (association, not causation).
A step where stopping goes with converting *more* (gap <= 0) is not friction and is not ranked.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from statsmodels.stats.proportion import confint_proportions_2indep

from insightos_utils.product.activity import EarlyActivity
from insightos_utils.product.funnel import CONFIDENCE, SIGNUP_STEP, Funnel

FRICTION_COLUMNS: tuple[str, ...] = (
    "rank",
    "step",
    "event_name",
    "previous_step",
    "users_entered",
    "users_lost",
    "share_lost",
    "conversion_went_on",
    "conversion_stopped",
    "conversion_gap",
    "gap_ci_low",
    "gap_ci_high",
    "conversions_left",
    "conversions_left_low",
    "conversions_left_high",
)


def friction_points(funnel: Funnel, activity: EarlyActivity) -> pd.DataFrame:
    """One row per funnel step (``FRICTION_COLUMNS``) over the landmark group, the worst
    friction first; ``rank`` is empty (NA) for steps that are not friction (no user lost, or
    no conversion gap)."""
    undecided = activity.undecided_mask()
    reach = funnel.reach_hours[undecided]
    n = reach.shape[0]
    reached = np.column_stack([np.ones(n, dtype=bool), np.isfinite(reach)])
    if reached.shape[1] < 2:
        return pd.DataFrame(columns=list(FRICTION_COLUMNS))
    converted = activity.converted[undecided][:, None]
    entered = reached[:, :-1]
    went_on = reached[:, 1:]
    stopped = entered & ~went_on
    n_on, n_stopped = went_on.sum(axis=0), stopped.sum(axis=0)
    c_on = (went_on & converted).sum(axis=0)
    c_stopped = (stopped & converted).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        p_on = np.where(n_on > 0, c_on / np.maximum(n_on, 1), np.nan)
        p_stopped = np.where(n_stopped > 0, c_stopped / np.maximum(n_stopped, 1), np.nan)
    gap = p_on - p_stopped
    low = np.full(gap.shape, np.nan)
    high = np.full(gap.shape, np.nan)
    both = (n_on > 0) & (n_stopped > 0)
    if both.any():
        lo, hi = confint_proportions_2indep(
            c_on[both],
            n_on[both],
            c_stopped[both],
            n_stopped[both],
            method="newcomb",
            compare="diff",
            alpha=1 - CONFIDENCE,
        )
        low[both], high[both] = lo, hi
    names = list(funnel.table["event_name"])
    table = pd.DataFrame(
        {
            "step": np.arange(1, len(names)),
            "event_name": names[1:],
            "previous_step": names[:-1],
            "users_entered": entered.sum(axis=0),
            "users_lost": n_stopped,
            "share_lost": n_stopped / np.maximum(entered.sum(axis=0), 1),
            "conversion_went_on": p_on,
            "conversion_stopped": p_stopped,
            "conversion_gap": gap,
            "gap_ci_low": low,
            "gap_ci_high": high,
            "conversions_left": n_stopped * gap,
            "conversions_left_low": n_stopped * low,
            "conversions_left_high": n_stopped * high,
        }
    )
    is_friction = (table["users_lost"] > 0) & (table["conversion_gap"] > 0)
    order = np.argsort(
        -table["conversions_left"].where(is_friction, -np.inf).to_numpy(), kind="stable"
    )
    table = table.iloc[order].reset_index(drop=True)
    rank = pd.array(np.arange(1, len(table) + 1), dtype="Int64")
    rank[~is_friction.to_numpy()[order]] = pd.NA
    table.insert(0, "rank", rank)
    return table


def top_friction(friction: pd.DataFrame) -> dict | None:
    """The worst friction point as plain values, or None when no step is friction.

    ``runner_up`` names the second one when the two intervals of conversions left overlap
    (their order is then not certain), else None."""
    ranked = friction[friction["rank"].notna()] if len(friction) else friction
    if ranked.empty:
        return None
    row = ranked.iloc[0]
    runner_up = None
    if len(ranked) > 1:
        second = ranked.iloc[1]
        if second["conversions_left_high"] >= row["conversions_left_low"]:
            runner_up = {
                "event_name": str(second["event_name"]),
                "previous_step": str(second["previous_step"]),
                "conversions_left": float(second["conversions_left"]),
                "conversions_left_low": float(second["conversions_left_low"]),
                "conversions_left_high": float(second["conversions_left_high"]),
            }
    return {
        "runner_up": runner_up,
        "step": int(row["step"]),
        "event_name": str(row["event_name"]),
        "previous_step": str(row["previous_step"]),
        "from_signup": row["previous_step"] == SIGNUP_STEP,
        "users_entered": int(row["users_entered"]),
        "users_lost": int(row["users_lost"]),
        "share_lost": float(row["share_lost"]),
        "conversion_went_on": float(row["conversion_went_on"]),
        "conversion_stopped": float(row["conversion_stopped"]),
        "conversion_gap": float(row["conversion_gap"]),
        "gap_ci_low": float(row["gap_ci_low"]),
        "gap_ci_high": float(row["gap_ci_high"]),
        "conversions_left": float(row["conversions_left"]),
        "conversions_left_low": float(row["conversions_left_low"]),
        "conversions_left_high": float(row["conversions_left_high"]),
    }
