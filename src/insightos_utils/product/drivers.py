"""Early behaviours most associated with converting (``activation_drivers.csv``).

Compared among the signups who had not converted by the end of their window (the landmark group,
``EarlyActivity.undecided``): all had the whole window to do things, and their outcome comes
after it. With fast converters kept in, whatever they had not done yet when they bought would
count against the behaviour (on the default company, "trial_signup" then looks harmful, lift
0.68, when it is unrelated to converting).

A behaviour is "did <event> in the first N days, before converting" and, where those who did it
typically did it several times, "did <event> at least m times" (m = their median count). For
each: conversion among the signups with the behaviour and among those without, the lift (the
ratio of the two) with a 95% interval (log method with half a user added to each cell,
statsmodels' ``log-adjusted``), and the users behind both numbers. Behaviours held by fewer than
``min_users`` signups, or missing in fewer than ``min_users``, are not assessed. Ranked by the
interval's lower end: the lift the data can vouch for, not the luckiest point estimate.

Association is not causation (``CAUTION``): motivated users both explore more and buy more.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from statsmodels.stats.proportion import confint_proportions_2indep

from insightos_utils.product.activity import EarlyActivity
from insightos_utils.product.funnel import CONFIDENCE

DRIVER_COLUMNS: tuple[str, ...] = (
    "rank",
    "behaviour",
    "event_name",
    "min_times",
    "users_with",
    "converted_with",
    "conversion_with",
    "users_without",
    "converted_without",
    "conversion_without",
    "lift",
    "lift_ci_low",
    "lift_ci_high",
    "evidence",
)
CAUTION = (
    "These are associations, not causes: users who do these things may convert more because "
    "they were already more motivated, not because of what they did. Before building the "
    "product around a behaviour, test it: prompt it for a random half of new signups and "
    "compare their conversion with the other half's."
)


def behaviour_label(event_name: str, min_times: int, window_days: int) -> str:
    """A behaviour in words, as the tables and the summary show it."""
    times = "" if min_times <= 1 else f" at least {min_times} times"
    return f"{event_name}{times} in the first {window_days} days"


def _candidates(activity: EarlyActivity) -> list[tuple[str, int, np.ndarray]]:
    """(event name, minimum count, per-user mask) for every behaviour considered."""
    candidates = []
    for j, name in enumerate(activity.names):
        counts = activity.counts[:, j]
        did = counts > 0
        candidates.append((name, 1, did))
        if did.any():
            typical = int(np.median(counts[did]))
            if typical >= 2:
                candidates.append((name, typical, counts >= typical))
    return candidates


def activation_drivers(activity: EarlyActivity, min_users: int = 30) -> pd.DataFrame:
    """The behaviours table (``DRIVER_COLUMNS``) over the landmark group, best-supported
    positive association first."""
    activity = activity.undecided()
    converted = activity.converted
    total_converted = int(converted.sum())
    rows = []
    for name, min_times, has in _candidates(activity):
        users_with = int(has.sum())
        users_without = int(activity.n_users - users_with)
        if users_with < int(min_users) or users_without < int(min_users):
            continue
        converted_with = int((has & converted).sum())
        rows.append(
            (name, min_times, users_with, converted_with, users_without,
             total_converted - converted_with)
        )  # fmt: skip
    columns = list(DRIVER_COLUMNS)
    if not rows or total_converted == 0:
        return pd.DataFrame(columns=columns)
    table = pd.DataFrame(
        rows,
        columns=[
            "event_name",
            "min_times",
            "users_with",
            "converted_with",
            "users_without",
            "converted_without",
        ],
    )
    table["conversion_with"] = table["converted_with"] / table["users_with"]
    table["conversion_without"] = table["converted_without"] / table["users_without"]
    with np.errstate(divide="ignore", invalid="ignore"):
        table["lift"] = np.where(
            table["converted_without"] > 0,
            table["conversion_with"] / table["conversion_without"],
            np.nan,
        )
    low, high = confint_proportions_2indep(
        table["converted_with"].to_numpy(),
        table["users_with"].to_numpy(),
        table["converted_without"].to_numpy(),
        table["users_without"].to_numpy(),
        method="log-adjusted",
        compare="ratio",
        alpha=1 - CONFIDENCE,
    )
    table["lift_ci_low"] = np.asarray(low, dtype=float)
    table["lift_ci_high"] = np.asarray(high, dtype=float)
    table["evidence"] = np.select(
        [table["lift_ci_low"] > 1, table["lift_ci_high"] < 1],
        ["converts more", "converts less"],
        "unclear",
    )
    table["behaviour"] = [
        behaviour_label(name, times, activity.window_days)
        for name, times in zip(table["event_name"], table["min_times"], strict=True)
    ]
    table = table.sort_values(
        ["lift_ci_low", "users_with", "behaviour"],
        ascending=[False, False, True],
        kind="stable",
    ).reset_index(drop=True)
    table["rank"] = np.arange(1, len(table) + 1)
    return table[columns]
