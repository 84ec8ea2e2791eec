"""Days from signup to conversion: the Kaplan–Meier estimate, by grade.

Own code, not ``lifelines``: lifelines 0.30 requires pandas < 3 and the project runs pandas 3.
The estimator is the textbook one (Kaplan & Meier 1958): at each distinct day ``t`` with ``d``
conversions among ``n`` users still followed, ``S(t) = prod (1 - d / n)``; the variance is
Greenwood's, and the confidence interval is the log(-log) ("exponential Greenwood") one, which
stays inside [0, 1] (lifelines' and R ``survival``'s ``conf.type = "log-log"``). The tests
reproduce the published 6-MP leukaemia table (Freireich et al. 1963).

The event is a conversion known at as-of; everyone else is followed up to as-of (open leads:
censored; lost leads: known not to have converted up to as-of, so they stay at risk, and the
curve's ``share_converted = 1 - S`` reads as the share of signups converted within ``t`` days).
"""

from __future__ import annotations

from statistics import NormalDist

import numpy as np
import pandas as pd

KM_COLUMNS = (
    "group", "days", "at_risk", "conversions", "censored", "survival", "share_converted",
    "ci_low", "ci_high",
)  # fmt: skip
ALL = "all"


def _one_curve(durations: np.ndarray, events: np.ndarray, z: float) -> dict[str, np.ndarray]:
    order = np.argsort(durations, kind="stable")
    durations, events = durations[order], events[order]
    times, first, counts = np.unique(durations, return_index=True, return_counts=True)
    deaths = np.add.reduceat(events.astype(np.int64), first) if len(times) else np.array([])
    at_risk = len(durations) - np.concatenate([[0], np.cumsum(counts)[:-1]])
    step = 1.0 - deaths / at_risk
    survival = np.cumprod(step)
    with np.errstate(divide="ignore", invalid="ignore"):
        greenwood = np.cumsum(deaths / (at_risk * (at_risk - deaths)))
        log_s = np.log(survival)
        se_loglog = np.sqrt(greenwood) / np.abs(log_s)
        theta = np.log(-log_s)
        low = np.exp(-np.exp(theta + z * se_loglog))
        high = np.exp(-np.exp(theta - z * se_loglog))
    # S = 1 (no event yet): the interval is the point; S = 0: [0, 0]
    none_yet = np.cumsum(deaths) == 0
    low = np.where(none_yet, 1.0, np.where(survival == 0, 0.0, low))
    high = np.where(none_yet, 1.0, np.where(survival == 0, 0.0, high))
    keep = deaths > 0  # steps happen at events; censoring-only days carry no new estimate
    keep[-1:] = True  # the last follow-up day ends the curve
    censored = counts - deaths
    censored_through = np.add.reduceat(censored, np.flatnonzero(np.r_[True, keep[:-1]]))
    return {
        "days": np.concatenate([[0.0], times[keep]]),
        "at_risk": np.concatenate([[len(durations)], at_risk[keep]]),
        "conversions": np.concatenate([[0], deaths[keep]]),
        "censored": np.concatenate([[0], censored_through]),
        "survival": np.concatenate([[1.0], survival[keep]]),
        "ci_low": np.concatenate([[1.0], low[keep]]),
        "ci_high": np.concatenate([[1.0], high[keep]]),
    }


def kaplan_meier(
    durations: pd.Series | np.ndarray,
    events: pd.Series | np.ndarray,
    groups: pd.Series | np.ndarray | None = None,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """The Kaplan–Meier curve of each group (all users as ``"all"`` when ``groups`` is None).

    ``durations``: follow-up in days (to the event, or to censoring); ``events``: True where
    the event (a conversion) happened at that duration. One row per group and event day plus a
    day-0 row: ``KM_COLUMNS``, where ``censored`` counts the users censored since the previous
    row (up to and including this day) and ``ci_low`` / ``ci_high`` bound ``survival``.
    ``share_converted`` is ``1 - survival`` (its interval is ``1 - ci_high`` to ``1 - ci_low``).
    """
    durations = np.asarray(durations, dtype=np.float64)
    events = np.asarray(events, dtype=bool)
    if durations.shape != events.shape:
        raise ValueError("durations and events must have the same length")
    if np.isnan(durations).any() or (durations < 0).any():
        raise ValueError("durations must be finite and >= 0")
    labels = np.full(len(durations), ALL, dtype=object) if groups is None else np.asarray(groups)
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    frames = []
    for group in pd.unique(labels):
        member = labels == group
        if not member.any():
            continue
        curve = _one_curve(durations[member], events[member], z)
        frames.append(pd.DataFrame({"group": group, **curve}))
    if not frames:
        return pd.DataFrame(columns=list(KM_COLUMNS))
    table = pd.concat(frames, ignore_index=True)
    table["share_converted"] = 1.0 - table["survival"]
    return table[list(KM_COLUMNS)]


def share_converted_by(table: pd.DataFrame, days: float) -> pd.DataFrame:
    """Per group, the share converted within ``days`` (the curve's value at that day) with its
    interval; NaN where the group's follow-up ends before ``days``."""
    rows = []
    for group, curve in table.groupby("group", sort=False):
        curve = curve.sort_values("days")
        reached = curve["days"].to_numpy() <= days
        last = curve.iloc[int(np.flatnonzero(reached)[-1])]
        followed = curve["days"].max() >= days
        share, low, high = (
            (
                float(last["share_converted"]),
                1.0 - float(last["ci_high"]),
                1.0 - float(last["ci_low"]),
            )
            if followed
            else (np.nan, np.nan, np.nan)
        )
        rows.append(
            {
                "group": group,
                "days": days,
                "share_converted": share,
                "ci_low": low,
                "ci_high": high,
                "users": int(curve["at_risk"].iloc[0]),
            }
        )
    return pd.DataFrame(rows)


def conversion_curves_by_grade(
    labels: pd.DataFrame, grades: pd.Series, confidence: float = 0.95
) -> pd.DataFrame:
    """Kaplan–Meier of days from signup to conversion by grade, from ``horizon_labels``' table
    (``days_observed``, ``converted_by_as_of``) and a grade per user (same index); users
    without a grade are left out. ``group`` holds the grade, curves in grade order."""
    grades = grades.reindex(labels.index)
    graded = grades.notna().to_numpy()
    table = kaplan_meier(
        labels["days_observed"].to_numpy()[graded],
        labels["converted_by_as_of"].to_numpy()[graded],
        grades.to_numpy()[graded].astype(str),
        confidence,
    )
    table = table.rename(columns={"group": "grade"})
    return table.sort_values(["grade", "days"], kind="stable").reset_index(drop=True)
