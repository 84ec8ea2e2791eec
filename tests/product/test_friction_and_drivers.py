"""Friction points and activation drivers against hand counts and textbook intervals."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from insightos_utils.product.activity import early_activity
from insightos_utils.product.drivers import DRIVER_COLUMNS, activation_drivers
from insightos_utils.product.friction import FRICTION_COLUMNS, friction_points, top_friction
from insightos_utils.product.funnel import build_funnel, choose_steps

from .conftest import AS_OF, SIGNUP, WINDOW_DAYS, Company, hours

Z = 1.959963984540054


def _wilson(k: int, n: int) -> tuple[float, float]:
    p = k / n
    centre = (p + Z * Z / (2 * n)) / (1 + Z * Z / n)
    half = Z * math.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n)) / (1 + Z * Z / n)
    return centre - half, centre + half


def _newcombe(k1: int, n1: int, k2: int, n2: int) -> tuple[float, float]:
    """Newcombe (1998) method 10: the hybrid score interval of p1 - p2."""
    p1, p2 = k1 / n1, k2 / n2
    (l1, u1), (l2, u2) = _wilson(k1, n1), _wilson(k2, n2)
    d = p1 - p2
    return d - math.hypot(p1 - l1, u2 - p2), d + math.hypot(u1 - p1, p2 - l2)


def _analysis(users, events, min_users=30):
    activity = early_activity(users, events, AS_OF, WINDOW_DAYS, min_users)
    funnel = build_funnel(activity, choose_steps(activity), min_users=min_users)
    return activity, funnel


def test_friction_matches_a_hand_count_among_the_undecided(known) -> None:
    activity, funnel = _analysis(*known)
    friction = friction_points(funnel, activity)
    assert list(friction.columns) == list(FRICTION_COLUMNS)
    rows = friction.set_index("event_name")
    # u165 converted within the window: left out of the comparison (199 signups remain)
    assert rows.loc["open_app", "users_entered"] == 199
    # make_thing -> share_thing: 100 entered, 40 went on (30 converted), 60 stopped (none did)
    share = rows.loc["share_thing"]
    assert (share["users_entered"], share["users_lost"]) == (100, 60)
    assert share["conversion_went_on"] == pytest.approx(0.75)
    assert share["conversion_stopped"] == 0.0
    assert share["conversions_left"] == pytest.approx(60 * 0.75)
    assert (share["gap_ci_low"], share["gap_ci_high"]) == pytest.approx(_newcombe(30, 40, 0, 60))
    # open_app -> make_thing: 160 entered, 100 went on (30 converted), 60 stopped (10 converted)
    make = rows.loc["make_thing"]
    assert make["users_lost"] == 60
    assert make["conversion_gap"] == pytest.approx(0.3 - 10 / 60)
    assert (make["gap_ci_low"], make["gap_ci_high"]) == pytest.approx(_newcombe(30, 100, 10, 60))
    # signup -> open_app: 199 entered, 160 went on (40 converted), 39 stopped (5 converted)
    assert rows.loc["open_app", "conversion_gap"] == pytest.approx(40 / 160 - 5 / 39)
    assert list(friction["event_name"]) == ["share_thing", "make_thing", "open_app"]
    assert list(friction["rank"]) == [1, 2, 3]
    top = top_friction(friction)
    assert top is not None and top["event_name"] == "share_thing"
    assert top["previous_step"] == "make_thing" and top["users_lost"] == 60
    assert top["runner_up"] is None  # 45 conversions left against 8: no overlap


def test_a_step_where_stoppers_convert_more_is_not_friction() -> None:
    company = Company()
    for i in range(120):
        created = SIGNUP + pd.Timedelta(minutes=i)
        did_b = i < 60
        converts = (i % 10 == 0) if did_b else (i % 2 == 0)  # stoppers convert more
        company.add_user(
            i,
            created,
            "converted" if converts else "lost",
            created + pd.Timedelta(days=30) if converts else None,
        )
        company.add_event(i, "a", created + hours(1))
        if did_b:
            company.add_event(i, "b", created + hours(2))
    users, events = company.frames()
    activity = early_activity(users, events, AS_OF, WINDOW_DAYS, 30)
    funnel = build_funnel(activity, choose_steps(activity, given=["a", "b"]), min_users=30)
    friction = friction_points(funnel, activity)
    row = friction.set_index("event_name").loc["b"]
    assert row["conversion_gap"] < 0 and pd.isna(row["rank"])
    assert top_friction(friction) is None


def _textbook_log_adjusted(k1: int, n1: int, k2: int, n2: int) -> tuple[float, float]:
    """Risk ratio interval on the log scale with half a user added to each count and total."""
    a, b, c, d = k1 + 0.5, n1 + 0.5, k2 + 0.5, n2 + 0.5
    log_ratio = math.log((a / b) / (c / d))
    se = math.sqrt(1 / a - 1 / b + 1 / c - 1 / d)
    return math.exp(log_ratio - Z * se), math.exp(log_ratio + Z * se)


def test_drivers_match_a_hand_count(known) -> None:
    activity, _ = _analysis(*known)
    drivers = activation_drivers(activity, min_users=30)
    assert list(drivers.columns) == list(DRIVER_COLUMNS)
    rows = drivers.set_index("event_name")
    # among the 199 undecided: share_thing 40 with (30 converted), 159 without (15 converted)
    share = rows.loc["share_thing"]
    assert (share["users_with"], share["converted_with"]) == (40, 30)
    assert (share["users_without"], share["converted_without"]) == (159, 15)
    assert share["lift"] == pytest.approx(0.75 / (15 / 159))
    assert (share["lift_ci_low"], share["lift_ci_high"]) == pytest.approx(
        _textbook_log_adjusted(30, 40, 15, 159)
    )
    assert share["evidence"] == "converts more"
    assert drivers["event_name"].iloc[0] == "share_thing"  # the best-supported lift first
    assert list(drivers["rank"]) == list(range(1, len(drivers) + 1))
    assert "pay_invoice" not in set(drivers["event_name"])  # post-conversion, never a driver


def test_repeated_behaviour_gets_its_own_row() -> None:
    company = Company()
    for i in range(200):
        created = SIGNUP + pd.Timedelta(minutes=i)
        converts = i < 40
        company.add_user(
            i,
            created,
            "converted" if converts else "lost",
            created + pd.Timedelta(days=30) if converts else None,
        )
        if i < 150:
            for k in range(1 + (i % 5)):  # 1 to 5 times; the median doer did it 3 times
                company.add_event(i, "edit", created + hours(1 + k))
    users, events = company.frames()
    activity = early_activity(users, events, AS_OF, WINDOW_DAYS, 30)
    drivers = activation_drivers(activity, min_users=30)
    assert sorted(drivers["min_times"]) == [1, 3]
    repeated = drivers[drivers["min_times"] == 3].iloc[0]
    assert repeated["users_with"] == 90  # i % 5 in {2, 3, 4} among the first 150
    assert "at least 3 times" in repeated["behaviour"]


def test_fast_converters_do_not_make_an_unrelated_behaviour_look_harmful() -> None:
    """A behaviour unrelated to converting, done on day 5; a third of the converters buy on
    day 1, before anyone could do it. Comparing everyone would show it "converts less"; among
    those still undecided after the window it shows nothing, as it should."""
    rng = np.random.default_rng(11)
    company = Company()
    n = 3_000
    converts = rng.random(n) < 0.2
    fast = converts & (rng.random(n) < 1 / 3)
    does_it = rng.random(n) < 0.5
    for i in range(n):
        created = SIGNUP + pd.Timedelta(minutes=i)
        delay = pd.Timedelta(days=1) if fast[i] else pd.Timedelta(days=20)
        company.add_user(
            i,
            created,
            "converted" if converts[i] else "lost",
            created + delay if converts[i] else None,
        )
        company.add_event(i, "visit", created + hours(1))
        if does_it[i]:
            company.add_event(i, "explore", created + pd.Timedelta(days=5))
    users, events = company.frames()
    activity = early_activity(users, events, AS_OF, WINDOW_DAYS, 30)
    row = activation_drivers(activity, min_users=30).set_index("event_name").loc["explore"]
    assert row["lift_ci_low"] < 1 < row["lift_ci_high"]
    assert row["evidence"] == "unclear"
    assert row["users_with"] + row["users_without"] == n - int(fast.sum())


def test_no_conversion_gives_no_drivers_and_no_friction() -> None:
    company = Company()
    for i in range(100):
        created = SIGNUP + pd.Timedelta(minutes=i)
        company.add_user(i, created)
        if i < 70:
            company.add_event(i, "a", created + hours(1))
    users, events = company.frames()
    activity, funnel = _analysis(users, events)
    assert activation_drivers(activity).empty
    assert top_friction(friction_points(funnel, activity)) is None
