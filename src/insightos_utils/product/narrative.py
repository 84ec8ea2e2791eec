"""The product findings in words: what 05_product and the run summary page say, numbers inline."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from insightos_utils.product.activity import EarlyActivity
from insightos_utils.product.drivers import CAUTION
from insightos_utils.product.funnel import Funnel


def hours_in_words(hours: float) -> str:
    """3.4 hours, 2.5 days: the unit a reader expects."""
    if hours is None or not np.isfinite(hours):
        return "n/a"
    if hours < 1:
        return f"{hours * 60:.0f} minutes"
    if hours < 48:
        return f"{hours:.1f} hours"
    return f"{hours / 24:.1f} days"


def _pct(value: float, digits: int = 1) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.{digits}%}"


def cohort_in_words(activity: EarlyActivity) -> str:
    """Who the funnel describes, and who is left out."""
    text = (
        f"{activity.n_users:,} signups had their first {activity.window_days} days by as-of "
        f"{activity.as_of:%Y-%m-%d %H:%M}; {activity.n_converted:,} of them "
        f"({_pct(activity.n_converted / max(activity.n_users, 1))}) converted by then."
    )
    if activity.users_too_young:
        text += (
            f" {activity.users_too_young:,} younger signups are left out: they have not had "
            "their full window yet."
        )
    if activity.outside_journey_events:
        text += (
            f" Never done in anyone's first {activity.window_days} days before converting, so "
            "not part of the early journey (post-conversion events such as billing, or things "
            f"done only later): {', '.join(activity.outside_journey_events)}."
        )
    return text


def funnel_in_words(funnel: Funnel, activity: EarlyActivity) -> str:
    """The funnel as a chain of shares, and how conversion changes down it."""
    table = funnel.table
    if len(table) < 2:
        return "No funnel step was reached by enough signups to be shown."
    chain = " → ".join(
        f"{row.event_name} {row.share_of_signups:.0%}" for row in table.iloc[1:].itertuples()
    )
    first, last = table.iloc[0], table.iloc[-1]
    steps = len(table) - 1
    return (
        f"Of {int(first['users_reached']):,} signups, the share that had done each step (and "
        f"every step before it) in their first {activity.window_days} days: {chain}. "
        f"{_pct(last['share_of_signups'])} did all {steps} step{'s' if steps > 1 else ''}; "
        f"conversion goes from {_pct(first['conversion_if_reached'])} among all signups to "
        f"{_pct(last['conversion_if_reached'])} among those who did "
        f"{'all of them' if steps > 1 else 'it'}. Half of those got there within "
        f"{hours_in_words(last['median_hours_from_signup'])} of signing up."
    )


def landmark_in_words(activity: EarlyActivity) -> str:
    """Who the comparisons (friction, drivers) are made among, and why."""
    undecided = activity.undecided()
    left_out = activity.n_users - undecided.n_users
    text = (
        f"Compared among the {undecided.n_users:,} signups who had not converted by the end of "
        f"their first {activity.window_days} days ({undecided.n_converted:,} of them converted "
        "later), so that everyone had the same time to do things"
    )
    if left_out:
        text += (
            f"; the {left_out:,} who converted within those days are left out of the "
            "comparisons, since they had less time to do things before converting"
        )
    return text + "."


def friction_in_words(top: dict[str, Any] | None, window_days: int) -> str:
    """The worst friction point in one paragraph, with its interval and the causal caveat."""
    if top is None:
        return (
            "No friction point: at no step did the signups who stopped convert less than those "
            "who went on (or no signup converted after their first "
            f"{window_days} days, which is what the comparison needs; a shorter "
            "[features] feature_window_days would let it)."
        )
    if top["from_signup"]:
        where = (
            f"the first step, {top['event_name']}: {top['users_lost']:,} of "
            f"{top['users_entered']:,} signups ({_pct(top['share_lost'], 0)}) never did it in "
            f"their first {window_days} days"
        )
    else:
        where = (
            f"the step from {top['previous_step']} to {top['event_name']}: "
            f"{top['users_lost']:,} of the {top['users_entered']:,} signups who got as far as "
            f"{top['previous_step']} ({_pct(top['share_lost'], 0)}) did not go on to "
            f"{top['event_name']} in their first {window_days} days"
        )
    tie = ""
    if top.get("runner_up"):
        other = top["runner_up"]
        tie = (
            f" It is closely followed by the step from {other['previous_step']} to "
            f"{other['event_name']} (about {other['conversions_left']:,.0f} conversions, "
            f"{other['conversions_left_low']:,.0f} to {other['conversions_left_high']:,.0f}): "
            "the intervals overlap, so which of the two costs more is not certain."
        )
    return (
        f"The biggest friction point is {where}. Those who went on converted (later) at "
        f"{_pct(top['conversion_went_on'])}, those who stopped at "
        f"{_pct(top['conversion_stopped'])}: a gap of {top['conversion_gap'] * 100:.1f} points "
        f"(95% interval {top['gap_ci_low'] * 100:.1f} to {top['gap_ci_high'] * 100:.1f}). "
        f"About {top['conversions_left']:,.0f} conversions "
        f"({top['conversions_left_low']:,.0f} to {top['conversions_left_high']:,.0f}) are left "
        "at this step if those who stopped converted like those who went on; that is an upper "
        "bound on what fixing the step could bring, since those who stop may differ in ways the "
        "step does not cause." + tie
    )


def drivers_in_words(drivers: pd.DataFrame, top: int = 3) -> str:
    """The best-supported behaviours, with lift, interval and users, then the caution."""
    positive = (
        drivers[drivers["evidence"] == "converts more"].head(top) if len(drivers) else drivers
    )
    if positive.empty:
        return (
            "No early behaviour is clearly associated with converting more (or too few signups "
            "converted after their window to tell). " + CAUTION
        )
    parts = [
        f"{row.behaviour} (conversion {_pct(row.conversion_with)} with it against "
        f"{_pct(row.conversion_without)} without: lift {row.lift:.2f}×, 95% interval "
        f"{row.lift_ci_low:.2f}–{row.lift_ci_high:.2f}, {row.users_with:,} users with it)"
        for row in positive.itertuples()
    ]
    return "Most associated with converting: " + "; ".join(parts) + ". " + CAUTION


def campaigns_in_words(campaign_drops: pd.DataFrame) -> str:
    """Which campaign completes the funnel least and where it loses most."""
    if campaign_drops.empty or len(campaign_drops) < 2:
        return "Too few campaigns with enough signups to compare their funnels."
    worst, best = campaign_drops.iloc[0], campaign_drops.iloc[-1]
    return (
        f"{worst['campaign']} completes the funnel least ({_pct(worst['completed_share'])} of "
        f"its {int(worst['signups']):,} signups; its biggest drop is at {worst['worst_step']}, "
        f"where it loses {_pct(worst['drop_share'], 0)} of those who got to the step before), "
        f"{best['campaign']} most ({_pct(best['completed_share'])} of "
        f"{int(best['signups']):,})."
    )


def conclusion(sections: dict[str, str]) -> str:
    """The notebook's closing Markdown from the sections' sentences."""
    order = [
        ("Who", "cohort"),
        ("Funnel", "funnel"),
        ("Compared fairly", "landmark"),
        ("Where users get stuck", "friction"),
        ("By campaign", "campaigns"),
        ("Early behaviours", "drivers"),
    ]
    return "\n\n".join(f"**{title}.** {sections[key]}" for title, key in order if key in sections)
