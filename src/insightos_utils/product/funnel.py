"""The activation funnel: the key steps, how many signups reach each one, and how they convert.

Steps are either listed (``[product] funnel_steps``) or learned: the event names that most
converters did in their first days before converting (at least ``KEY_STEP_SHARE`` of them;
post-conversion events are never candidates), the ``max_steps`` most common, ordered by the
median time converters first did them. When too few users converted, every signup's behaviour
decides instead, and the funnel says so.

A signup *reaches* step k when they did step k and every earlier step within their window,
in any order (people rarely follow a product's intended order exactly; a strict order would
count a user who invited a teammate before creating a project as lost). The time they reached
it is the latest of those first times. So reach never grows down the funnel, and "users lost at
step k" is well defined: they reached step k - 1 but not step k. Row 0 is the signup itself.

Shares carry Wilson intervals (statsmodels); a step reached by fewer than ``min_users`` signups
is not shown (nor are the steps after it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from statsmodels.stats.proportion import proportion_confint

from insightos_utils.product.activity import EarlyActivity

FUNNEL_COLUMNS: tuple[str, ...] = (
    "step",
    "event_name",
    "users_reached",
    "share_of_signups",
    "share_ci_low",
    "share_ci_high",
    "conversion_if_reached",
    "median_hours_from_signup",
)
SIGNUP_STEP = "(signup)"
SMALL_CAMPAIGNS = "(smaller campaigns)"
KEY_STEP_SHARE = 0.5  # a learned step is something at least half of the converters did
CONFIDENCE = 0.95


@dataclass(frozen=True)
class StepChoice:
    """Which event names make the funnel, in order, and how they were chosen (in words)."""

    names: tuple[str, ...]
    learned: bool
    basis: str
    notes: tuple[str, ...] = ()


@dataclass
class Funnel:
    """The funnel table (``FUNNEL_COLUMNS`` plus ``conversions`` and
    ``median_hours_from_previous``), the steps as chosen, and each cohort user's first time at
    each shown step (hours; inf = never)."""

    table: pd.DataFrame
    choice: StepChoice
    first_hours: np.ndarray
    notes: list[str] = field(default_factory=list)

    @property
    def reach_hours(self) -> np.ndarray:
        """Per cohort user and shown step: when they had done it and every earlier step."""
        return reach_hours(self.first_hours)

    @property
    def steps(self) -> tuple[str, ...]:
        """The event names of the shown steps, in order (the signup row excluded)."""
        return tuple(self.table["event_name"].iloc[1:])

    def contract_table(self) -> pd.DataFrame:
        """The rows of ``funnel.csv``: exactly the contract's columns."""
        return self.table[list(FUNNEL_COLUMNS)]


def wilson(successes: np.ndarray, trials: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """95% Wilson interval of successes / trials (nan where there are no trials)."""
    successes = np.asarray(successes, dtype=float)
    trials = np.asarray(trials, dtype=float)
    low = np.full(successes.shape, np.nan)
    high = np.full(successes.shape, np.nan)
    some = trials > 0
    if some.any():
        lo, hi = proportion_confint(
            successes[some], trials[some], alpha=1 - CONFIDENCE, method="wilson"
        )
        low[some], high[some] = lo, hi
    return low, high


def _median_first_hours(activity: EarlyActivity, who: np.ndarray) -> np.ndarray:
    """Per event name: the median first time among ``who`` that did it (nan when none did)."""
    medians = np.full(len(activity.names), np.nan)
    for j in range(len(activity.names)):
        times = activity.first_hours[who, j]
        times = times[np.isfinite(times)]
        if times.size:
            medians[j] = float(np.median(times))
    return medians


def choose_steps(
    activity: EarlyActivity,
    given: Sequence[str] = (),
    max_steps: int = 8,
    min_users: int = 30,
) -> StepChoice:
    """The funnel's event names in order: ``given`` as listed, else learned (module docstring)."""
    if given:
        names = tuple(dict.fromkeys(given))
        outside = [name for name in names if name in activity.outside_journey_events]
        warnings = tuple(
            f"'{name}' was never done in a signup's first {activity.window_days} days before "
            "converting (a post-conversion event, or one done only later): nobody reaches it."
            for name in outside[:1]
        )
        return StepChoice(names, False, "the steps listed in [product] funnel_steps", warnings)
    if not activity.names:
        return StepChoice((), True, "no event name was done by enough signups")
    enough_converters = activity.n_converted >= int(min_users)
    who = activity.converted if enough_converters else np.ones(activity.n_users, dtype=bool)
    group = "converters" if enough_converters else "signups"
    coverage = (
        (activity.counts[who] > 0).mean(axis=0) if who.any() else np.zeros(len(activity.names))
    )
    notes: list[str] = []
    if not enough_converters:
        notes.append(
            f"Only {activity.n_converted} signups in the cohort converted (fewer than "
            f"min_step_users {min_users}): the steps follow what all signups did, not what "
            "converters did."
        )
    key = np.flatnonzero(coverage >= KEY_STEP_SHARE)
    if key.size == 0:
        key = np.arange(len(activity.names))
        notes.append(
            f"No event was done by at least {KEY_STEP_SHARE:.0%} of {group} in their first "
            f"{activity.window_days} days; the funnel shows the most common events instead."
        )
    ranked = sorted(key, key=lambda j: (-coverage[j], activity.names[j]))[: int(max_steps)]
    medians = _median_first_hours(activity, who)
    ordered = sorted(ranked, key=lambda j: (medians[j], -coverage[j], activity.names[j]))
    basis = (
        f"the {len(ordered)} events most {group} did in their first {activity.window_days} "
        f"days (at least {KEY_STEP_SHARE:.0%} of them where possible), in the order of the "
        f"median time {group} first did them"
    )
    return StepChoice(tuple(activity.names[j] for j in ordered), True, basis, tuple(notes))


def step_first_hours(activity: EarlyActivity, names: Sequence[str]) -> np.ndarray:
    """Per cohort user and step: the first time they did the step's event (hours; inf: never)."""
    if not names:
        return np.zeros((activity.n_users, 0))
    return activity.first_hours[:, [activity.column(name) for name in names]]


def reach_hours(first_hours: np.ndarray) -> np.ndarray:
    """When each user had done a step and every earlier one (the latest of their first times;
    inf when they had not)."""
    if first_hours.shape[1] == 0:
        return first_hours.copy()
    return np.maximum.accumulate(first_hours, axis=1)


def _rows(
    first_hours: np.ndarray, converted: np.ndarray, names: Sequence[str]
) -> dict[str, np.ndarray]:
    """Funnel rows (signup row first) for the users of ``first_hours``.

    ``median_hours_from_previous``: the median, among those who reached the step, of the first
    time they did it minus the first time they did the previous step (negative: usually done
    before it)."""
    n = first_hours.shape[0]
    reach = reach_hours(first_hours)
    reached = np.column_stack([np.ones(n, dtype=bool), np.isfinite(reach)])
    users = reached.sum(axis=0)
    conversions = (reached & converted[:, None]).sum(axis=0)
    low, high = wilson(users, np.full(users.shape, n))
    share = users / n if n else np.full(users.shape, np.nan)
    conversion = np.where(users > 0, conversions / np.maximum(users, 1), np.nan)
    times = np.column_stack([np.zeros(n), reach])
    firsts = np.column_stack([np.zeros(n), first_hours])
    from_signup = np.full(users.shape, np.nan)
    from_previous = np.full(users.shape, np.nan)
    from_signup[0] = from_previous[0] = 0.0
    for k in range(1, times.shape[1]):
        if users[k]:
            who = reached[:, k]
            from_signup[k] = float(np.median(times[who, k]))
            from_previous[k] = float(np.median(firsts[who, k] - firsts[who, k - 1]))
    return {
        "step": np.arange(len(users)),
        "event_name": np.array([SIGNUP_STEP, *names], dtype=object),
        "users_reached": users.astype(np.int64),
        "conversions": conversions.astype(np.int64),
        "share_of_signups": share,
        "share_ci_low": low,
        "share_ci_high": high,
        "conversion_if_reached": conversion,
        "median_hours_from_signup": from_signup,
        "median_hours_from_previous": from_previous,
    }


def build_funnel(activity: EarlyActivity, choice: StepChoice, min_users: int = 30) -> Funnel:
    """The funnel over the cohort, cut before the first step fewer than ``min_users`` reached."""
    first = step_first_hours(activity, choice.names)
    reached = np.isfinite(reach_hours(first)).sum(axis=0)
    shown = len(choice.names)
    notes: list[str] = list(choice.notes)
    below = np.flatnonzero(reached < int(min_users))
    if below.size:
        shown = int(below[0])
        cut = choice.names[shown]
        notes.append(
            f"'{cut}' was reached by {int(reached[shown])} signups (fewer than min_step_users "
            f"{min_users}): it{' and the steps after it' if shown < len(choice.names) - 1 else ''}"
            " are not shown."
        )
    names = choice.names[:shown]
    first = first[:, :shown]
    table = pd.DataFrame(_rows(first, activity.converted, names))
    return Funnel(table=table, choice=choice, first_hours=first, notes=notes)


def campaign_funnel(activity: EarlyActivity, funnel: Funnel, min_users: int = 30) -> pd.DataFrame:
    """The funnel per acquisition campaign: each campaign's share of its own signups reaching
    each step, its conversion there, and the share it loses at each step (``drop_from_previous``).

    Campaigns with fewer than ``min_users`` signups are pooled as ``SMALL_CAMPAIGNS``.
    """
    campaigns, codes = np.unique(activity.campaign.astype(str), return_inverse=True)
    sizes = np.bincount(codes, minlength=len(campaigns))
    small = sizes < int(min_users)
    labels = np.where(small, SMALL_CAMPAIGNS, campaigns)
    frames = []
    for label in dict.fromkeys(labels[np.argsort(-sizes, kind="stable")]):
        members = labels[codes] == label
        if members.sum() < int(min_users):
            continue  # even pooled, too few to say anything
        rows = pd.DataFrame(
            _rows(funnel.first_hours[members], activity.converted[members], funnel.steps)
        )
        previous = rows["users_reached"].shift(1)
        rows["drop_from_previous"] = np.where(
            previous > 0, 1 - rows["users_reached"] / previous, np.nan
        )
        rows.insert(0, "signups", int(members.sum()))
        rows.insert(0, "campaign", str(label))
        frames.append(rows)
    if not frames:
        return pd.DataFrame(columns=["campaign", "signups", *FUNNEL_COLUMNS, "drop_from_previous"])
    table = pd.concat(frames, ignore_index=True)
    return table.drop(columns=["median_hours_from_previous"])


def biggest_drop_by_campaign(by_campaign: pd.DataFrame) -> pd.DataFrame:
    """Per campaign: the step where it loses the largest share of those who reached the one
    before, and how many signups complete the funnel."""
    steps = by_campaign[by_campaign["step"] > 0]
    if steps.empty:
        return pd.DataFrame(
            columns=["campaign", "signups", "worst_step", "drop_share", "completed_share"]
        )
    worst = steps.loc[steps.groupby("campaign", sort=False)["drop_from_previous"].idxmax()]
    last = steps.groupby("campaign", sort=False).tail(1).set_index("campaign")
    result = pd.DataFrame(
        {
            "campaign": worst["campaign"].to_numpy(),
            "signups": worst["signups"].to_numpy(),
            "worst_step": worst["event_name"].to_numpy(),
            "drop_share": worst["drop_from_previous"].to_numpy(),
            "completed_share": last.loc[worst["campaign"], "share_of_signups"].to_numpy(),
        }
    )
    return result.sort_values("completed_share", kind="stable").reset_index(drop=True)
