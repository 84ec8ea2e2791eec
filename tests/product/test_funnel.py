"""The funnel on a hand-built company whose every number is counted by hand (conftest)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from insightos_utils.errors import InputError
from insightos_utils.product.activity import early_activity
from insightos_utils.product.funnel import (
    FUNNEL_COLUMNS,
    SIGNUP_STEP,
    build_funnel,
    campaign_funnel,
    choose_steps,
    wilson,
)

from .conftest import AS_OF, SIGNUP, WINDOW_DAYS, Company, hours


def _activity(users, events, min_users=30, **kwargs):
    return early_activity(users, events, AS_OF, WINDOW_DAYS, min_users, **kwargs)


def _textbook_wilson(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def test_cohort_follows_as_of_and_the_window(known) -> None:
    activity = _activity(*known)
    assert activity.n_users == 200  # u200 too young, u201 not signed up yet
    assert activity.users_too_young == 1
    assert activity.users_existing == 201
    assert activity.n_converted == 46  # 45 late converters + u165; u166 converts after as-of
    assert "future_thing" not in activity.all_event_names  # after as-of: does not exist
    assert activity.outside_journey_events == ("pay_invoice",)  # post-conversion
    assert set(activity.names) == {"open_app", "make_thing", "share_thing"}


def test_learned_steps_are_ordered_by_converters_median_first_time(known) -> None:
    activity = _activity(*known)
    choice = choose_steps(activity, max_steps=8, min_users=30)
    assert choice.learned
    assert choice.names == ("open_app", "make_thing", "share_thing")


def test_funnel_numbers_match_a_hand_count(known) -> None:
    activity = _activity(*known)
    funnel = build_funnel(activity, choose_steps(activity), min_users=30)
    table = funnel.contract_table()
    assert list(table.columns) == list(FUNNEL_COLUMNS)
    assert list(table["event_name"]) == [SIGNUP_STEP, "open_app", "make_thing", "share_thing"]
    # u000-u159 and u165 opened the app; u150's make_thing before signup and u165's after
    # converting do not count
    assert list(table["users_reached"]) == [200, 161, 100, 40]
    np.testing.assert_allclose(table["share_of_signups"], [1.0, 161 / 200, 0.5, 0.2])
    np.testing.assert_allclose(table["conversion_if_reached"], [46 / 200, 41 / 161, 0.3, 0.75])
    np.testing.assert_allclose(table["median_hours_from_signup"], [0.0, 1.0, 5.0, 10.0])
    np.testing.assert_allclose(funnel.table["median_hours_from_previous"], [0.0, 1.0, 4.0, 5.0])
    for k, row in zip([200, 161, 100, 40], table.itertuples(), strict=True):
        low, high = _textbook_wilson(k, 200)
        assert row.share_ci_low == pytest.approx(low, abs=1e-9)
        assert row.share_ci_high == pytest.approx(high, abs=1e-9)


def test_steps_count_in_any_order_and_reach_time_is_the_latest() -> None:
    company = Company()
    for i in range(40):
        created = SIGNUP + pd.Timedelta(minutes=i)
        company.add_user(i, created)
        # half do b before a: they still reach step 2, at the later of the two times
        first, second = ("a", "b") if i % 2 else ("b", "a")
        company.add_event(i, first, created + hours(2))
        company.add_event(i, second, created + hours(6))
    activity = _activity(*company.frames())
    funnel = build_funnel(activity, choose_steps(activity, given=["a", "b"]), min_users=30)
    assert list(funnel.table["users_reached"]) == [40, 40, 40]
    assert list(funnel.table["median_hours_from_signup"]) == [0.0, 4.0, 6.0]  # a: 2 h or 6 h


def test_given_steps_keep_their_order_and_unknown_names_are_an_input_error(known) -> None:
    users, events = known
    activity = _activity(users, events, required_names=("share_thing", "open_app"))
    choice = choose_steps(activity, given=["share_thing", "open_app"])
    assert not choice.learned and choice.names == ("share_thing", "open_app")
    funnel = build_funnel(activity, choice, min_users=30)
    assert list(funnel.table["users_reached"]) == [200, 40, 40]
    with pytest.raises(InputError, match="never occur.*open_app"):
        _activity(users, events, required_names=("open_app", "checkout"))


def test_a_step_reached_by_too_few_users_is_cut_with_the_steps_after_it(known) -> None:
    activity = _activity(*known)
    funnel = build_funnel(activity, choose_steps(activity), min_users=41)
    assert funnel.steps == ("open_app", "make_thing")  # share_thing: 40 users
    assert any("share_thing" in note and "40" in note for note in funnel.notes)


def test_rare_events_get_no_column_unless_listed(known) -> None:
    users, events = known
    assert "share_thing" not in _activity(users, events, min_users=41).names
    forced = _activity(users, events, min_users=41, required_names=("share_thing",))
    assert "share_thing" in forced.names


def test_campaign_funnel_counts_each_campaign_over_its_own_signups(known) -> None:
    activity = _activity(*known)
    funnel = build_funnel(activity, choose_steps(activity), min_users=30)
    by_campaign = campaign_funnel(activity, funnel, min_users=30).set_index(["campaign", "step"])
    # alpha = u000-u099: all opened the app and made a thing, u000-u039 shared
    assert list(by_campaign.loc["alpha", "users_reached"]) == [100, 100, 100, 40]
    # beta = u100-u199: u100-u159 and u165 opened the app, nobody went further
    assert list(by_campaign.loc["beta", "users_reached"]) == [100, 61, 0, 0]
    assert by_campaign.loc[("beta", 2), "drop_from_previous"] == pytest.approx(1.0)
    assert by_campaign.loc[("alpha", 3), "drop_from_previous"] == pytest.approx(0.6)


def test_small_campaigns_are_pooled(known) -> None:
    users, events = known
    users = users.assign(campaign=np.where(np.arange(len(users)) < 180, "big", users["user_id"]))
    activity = _activity(users, events)
    funnel = build_funnel(activity, choose_steps(activity), min_users=30)
    table = campaign_funnel(activity, funnel, min_users=10)
    assert set(table["campaign"]) == {"big", "(smaller campaigns)"}
    assert table.loc[table["campaign"] == "(smaller campaigns)", "signups"].iloc[0] == 20


def test_one_event_type_gives_a_one_step_funnel() -> None:
    company = Company()
    for i in range(120):
        created = SIGNUP + pd.Timedelta(minutes=i)
        converted = i < 30
        company.add_user(
            i,
            created,
            "converted" if converted else "lost",
            created + pd.Timedelta(days=20) if converted else None,
        )
        if i < 90:
            company.add_event(i, "login", created + hours(3))
    activity = _activity(*company.frames())
    funnel = build_funnel(activity, choose_steps(activity), min_users=30)
    assert list(funnel.table["users_reached"]) == [120, 90]
    assert funnel.table["conversion_if_reached"].iloc[1] == pytest.approx(30 / 90)


def test_wilson_is_empty_without_trials() -> None:
    low, high = wilson(np.array([0, 3]), np.array([0, 10]))
    assert np.isnan(low[0]) and np.isnan(high[0])
    assert (low[1], high[1]) == pytest.approx(_textbook_wilson(3, 10))


def test_timezone_aware_timestamps_give_the_same_funnel(known) -> None:
    users, events = known
    aware_users = users.assign(
        created_at=users["created_at"].dt.tz_localize("UTC").dt.tz_convert("America/Sao_Paulo"),
        converted_at=users["converted_at"].dt.tz_localize("UTC"),
    )
    aware_events = events.assign(occurred_at=events["occurred_at"].dt.tz_localize("UTC"))
    plain = _activity(users, events)
    aware = _activity(aware_users, aware_events)
    funnel = build_funnel(aware, choose_steps(aware), min_users=30)
    pd.testing.assert_frame_equal(
        funnel.table, build_funnel(plain, choose_steps(plain), min_users=30).table
    )


def test_categorical_ids_give_the_same_activity(known) -> None:
    users, events = known
    categorical = events.astype({"user_id": "category", "event_name": "category"})
    plain, coded = _activity(users, events), _activity(users, categorical)
    assert plain.names == coded.names
    np.testing.assert_array_equal(plain.counts, coded.counts)
    np.testing.assert_array_equal(plain.first_hours, coded.first_hours)


@pytest.mark.parametrize("ids", ["text", "categorical"])
def test_chunk_boundaries_change_nothing(known, ids: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from insightos_utils.product import activity as activity_module

    users, events = known
    if ids == "categorical":
        events = events.astype({"user_id": "category", "event_name": "category"})
    whole = _activity(users, events)
    monkeypatch.setattr(activity_module, "CHUNK_ROWS", 7)  # 550 events: 79 chunks
    chunked = _activity(users, events)
    assert chunked.names == whole.names and chunked.events_counted == whole.events_counted
    np.testing.assert_array_equal(chunked.counts, whole.counts)
    np.testing.assert_array_equal(chunked.first_hours, whole.first_hours)
