"""The feature table: the observation window, post-conversion exclusion, vocabulary, status at
as-of, and the vectorised build checked against a plain per-user reference."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from insightos_utils.errors import InputError
from insightos_utils.leads.features import (
    OTHER_COLUMN,
    TARGET,
    FeatureSpec,
    build_feature_table,
    encode_events,
    fit_feature_spec,
    open_leads,
    read_feature_table,
    resolve_as_of,
    training_rows,
    write_feature_table,
)

AS_OF = pd.Timestamp("2024-03-01")
T = pd.Timestamp


def make_users(rows: list[tuple]) -> pd.DataFrame:
    """Users from (user_id, created_at, status, converted_at or None, campaign or None)."""
    users = pd.DataFrame(
        rows, columns=["user_id", "created_at", "status", "converted_at", "campaign"]
    )
    users["created_at"] = pd.to_datetime(users["created_at"], format="mixed")
    users["converted_at"] = pd.to_datetime(users["converted_at"], format="mixed")
    users["source"] = "google"
    users["medium"] = "cpc"
    return users


def make_events(rows: list[tuple]) -> pd.DataFrame:
    """Events from (user_id, event_name, occurred_at)."""
    events = pd.DataFrame(rows, columns=["user_id", "event_name", "occurred_at"])
    events["occurred_at"] = pd.to_datetime(events["occurred_at"], format="mixed")
    events.insert(0, "event_id", [f"e{i}" for i in range(len(events))])
    return events


def test_window_excludes_post_conversion_late_and_future_events() -> None:
    users = make_users(
        [
            # converted on day 4.5, known at as-of
            ("conv", "2024-01-01", "converted", "2024-01-05 12:00", "c1"),
            # lost, full window
            ("lost", "2024-01-01", "lost", None, "c1"),
            # young lead: window runs past as-of
            ("young", "2024-02-25", "trial", None, "c1"),
            # converts after as-of: an open lead at as-of
            ("later", "2024-02-20", "converted", "2024-03-02", "c1"),
        ]
    )
    window_end = T("2024-01-15")  # 2024-01-01 + 14 days
    events = make_events(
        [
            ("conv", "click", "2024-01-01"),  # exactly at signup: counted
            ("conv", "click", "2024-01-03"),  # counted
            ("conv", "click", "2024-01-05 12:00"),  # exactly at conversion: not counted
            ("conv", "click", "2024-01-06"),  # after conversion: not counted
            ("conv", "click", "2023-12-31"),  # before signup: not counted
            ("lost", "click", "2024-01-01 01:00"),  # counted
            ("lost", "click", window_end - pd.Timedelta("1s")),  # last second: counted
            ("lost", "click", window_end),  # exactly signup + window: not counted
            ("lost", "click", "2024-01-20"),  # after window: not counted
            ("young", "click", "2024-02-26"),  # counted
            ("young", "click", "2024-03-01"),  # exactly at as-of: exists, counted
            ("young", "click", "2024-03-02"),  # after as-of: does not exist yet
            ("later", "click", "2024-02-21"),  # counted
            ("later", "click", "2024-03-01 06:00"),  # after as-of: not counted
        ]
    )
    spec = fit_feature_spec(users, events, AS_OF, window_days=14, min_event_users=1)
    table = build_feature_table(users, events, spec, AS_OF)
    assert table["events_click"].to_dict() == {"conv": 2, "lost": 2, "young": 2, "later": 1}
    assert table.loc["conv", "days_active"] == 2
    assert table["window_complete"].to_dict() == {
        "conv": True,
        "lost": True,
        "young": False,
        "later": False,
    }


def test_post_conversion_only_names_are_excluded_from_the_spec_and_the_table() -> None:
    users = make_users(
        [(f"c{i}", "2024-01-01", "converted", "2024-01-03", "x") for i in range(3)]
        + [(f"l{i}", "2024-01-01", "lost", None, "x") for i in range(3)]
    )
    rows = []
    for i in range(3):
        rows += [
            (f"c{i}", "login", "2024-01-02"),
            (f"c{i}", "invoice_paid", "2024-01-03"),  # at conversion
            (f"c{i}", "seat_added", "2024-01-04"),  # after conversion
            (f"c{i}", "upgrade_page", "2024-01-03"),  # at conversion for converters ...
            (f"l{i}", "login", "2024-01-02"),
        ]
    rows.append(("l0", "upgrade_page", "2024-01-02"))  # ... but once before: a real feature
    events = make_events(rows)
    spec = fit_feature_spec(users, events, AS_OF, min_event_users=1)
    assert spec.excluded_events == ("invoice_paid", "seat_added")
    assert "invoice_paid" not in spec.event_columns
    assert not any("invoice" in c or "seat" in c for c in spec.numeric_columns)
    assert spec.event_columns["upgrade_page"] == "events_upgrade_page"

    # at scoring time an excluded name seen before a conversion still counts nowhere
    late = make_events([("l1", "invoice_paid", "2024-01-02")])
    table = build_feature_table(users, pd.concat([events, late]), spec, AS_OF)
    assert table.loc["l1", OTHER_COLUMN] == 0
    assert table.loc["l1", "distinct_event_types"] == 1


def test_rare_names_go_to_events_other_and_unseen_names_too() -> None:
    users = make_users([(f"u{i}", "2024-01-01", "lost", None, "x") for i in range(5)])
    events = make_events(
        [(f"u{i}", "common", "2024-01-02") for i in range(5)]
        + [("u0", "rare_a", "2024-01-02"), ("u1", "rare_a", "2024-01-02")]
        + [("u2", "rare_b", "2024-01-02"), ("u2", "rare_b", "2024-01-03")]
    )
    spec = fit_feature_spec(users, events, AS_OF, min_event_users=3)
    assert spec.event_columns == {
        "common": "events_common",
        "rare_a": OTHER_COLUMN,
        "rare_b": OTHER_COLUMN,
    }
    new = make_events([("u3", "brand_new_event", "2024-01-04")])
    table = build_feature_table(users, pd.concat([events, new]), spec, AS_OF)
    assert table[OTHER_COLUMN].to_dict() == {"u0": 1, "u1": 1, "u2": 2, "u3": 1, "u4": 0}


def test_colliding_slugs_get_distinct_columns() -> None:
    users = make_users([("u0", "2024-01-01", "lost", None, "x")])
    events = make_events(
        [
            ("u0", "Sign Up", "2024-01-02"),
            ("u0", "sign-up", "2024-01-02"),
            ("u0", "other", "2024-01-02"),
        ]
    )
    spec = fit_feature_spec(users, events, AS_OF, min_event_users=1)
    columns = list(spec.event_columns.values())
    assert len(set(columns)) == 3
    assert OTHER_COLUMN not in columns
    assert set(columns) <= set(spec.numeric_columns)


def test_status_at_as_of_rules() -> None:
    users = make_users(
        [
            ("converted", "2024-01-01", "converted", "2024-01-10", "x"),
            ("converts_later", "2024-01-01", "converted", "2024-03-10", "x"),
            ("lost_old", "2024-01-01", "lost", None, "x"),
            ("lost_young", "2024-02-25", "lost", None, "x"),
            ("lead", "2024-01-01", "lead", None, "x"),
            ("trial", "2024-02-28", "trial", None, "x"),
            ("not_yet", "2024-03-05", "lead", None, "x"),
        ]
    )
    events = make_events([("lead", "click", "2024-01-02")])
    spec = fit_feature_spec(users, events, AS_OF, min_event_users=1)
    table = build_feature_table(users, events, spec, AS_OF)
    assert "not_yet" not in table.index
    assert table["status_at_as_of"].to_dict() == {
        "converted": "converted",
        "converts_later": "lead",
        "lost_old": "lost",
        "lost_young": "lead",
        "lead": "lead",
        "trial": "trial",
    }
    assert table["label_known"].to_dict() == {
        "converted": True,
        "converts_later": False,
        "lost_old": True,
        "lost_young": False,
        "lead": False,
        "trial": False,
    }
    assert str(table[TARGET].dtype) == "Int8"
    assert table.loc["converted", TARGET] == 1 and table.loc["lost_old", TARGET] == 0
    assert table.loc[~table["label_known"], TARGET].isna().all()
    assert list(training_rows(table).index) == ["converted", "lost_old"]
    assert set(open_leads(table).index) == {"converts_later", "lost_young", "lead", "trial"}


def test_a_lead_is_described_at_scoring_as_it_is_at_training() -> None:
    """Scored as an open lead at as-of, then trained on once it converted after its window:
    the numeric description is the same, and two users with the same events but different
    outcomes get the same features (nothing comes from converted_at or status)."""
    users = make_users(
        [
            ("a", "2024-01-01", "converted", "2024-02-10", "x"),
            ("b", "2024-01-01", "lost", None, "x"),
        ]
    )
    events = make_events(
        [
            (user, name, day)
            for user in "ab"
            for name, day in [
                ("visit", "2024-01-01 05:00"),
                ("visit", "2024-01-03"),
                ("invite", "2024-01-04"),
            ]
        ]
        + [("a", "visit", "2024-02-01")]  # outside the window
    )
    spec = fit_feature_spec(users, events, "2024-03-01", min_event_users=1)
    before = build_feature_table(users, events, spec, "2024-02-01")  # a is an open lead here
    after = build_feature_table(users, events, spec, "2024-03-01")  # a is a known converter
    numeric = list(spec.numeric_columns)
    assert before.loc["a", "status_at_as_of"] == "lead"
    assert after.loc["a", TARGET] == 1
    pd.testing.assert_series_equal(before.loc["a", numeric], after.loc["a", numeric])
    pd.testing.assert_series_equal(
        after.loc["a", numeric], after.loc["b", numeric], check_names=False
    )


def test_time_to_first_key_event_is_capped() -> None:
    users = make_users([(f"u{i}", "2024-01-01", "lost", None, "x") for i in range(4)])
    events = make_events(
        [(f"u{i}", "open", "2024-01-01") for i in range(4)]  # everyone: not a milestone
        + [("u0", "project", "2024-01-01 06:00"), ("u0", "project", "2024-01-01 03:00")]
        + [("u1", "project", "2024-01-03")]
        + [("u2", "project", "2024-01-20")]  # outside the window
    )
    spec = fit_feature_spec(users, events, AS_OF, window_days=14, min_event_users=1)
    assert spec.key_events == {"hours_to_first_project": "project"}
    table = build_feature_table(users, events, spec, AS_OF)
    assert table["hours_to_first_project"].to_dict() == {
        "u0": 3.0,
        "u1": 48.0,
        "u2": 336.0,
        "u3": 336.0,
    }


def test_campaign_source_medium_come_from_users_with_none_when_absent() -> None:
    users = make_users(
        [
            ("a", "2024-01-01", "lost", None, "google_gestao_agil"),
            ("b", "2024-01-01", "lost", None, None),
        ]
    )
    users.loc[1, "source"] = ""
    events = make_events([("a", "x", "2024-01-02")])
    table = build_feature_table(
        users, events, fit_feature_spec(users, events, AS_OF, min_event_users=1), AS_OF
    )
    assert table["campaign"].tolist() == ["google_gestao_agil", "(none)"]
    assert table["source"].tolist() == ["google", "(none)"]


def test_resolve_as_of() -> None:
    users = make_users([("a", "2024-01-01", "converted", "2024-02-03", "x")])
    events = make_events([("a", "x", "2024-01-30")])
    assert resolve_as_of(users, events, None) == T("2024-02-03")
    assert resolve_as_of(users, events, "") == T("2024-02-03")
    assert resolve_as_of(users, events.iloc[:0], None) == T("2024-02-03")
    assert resolve_as_of(users, events, "2024-01-15T12:00:00+02:00") == T("2024-01-15 10:00")
    with pytest.raises(InputError, match="as_of"):
        resolve_as_of(users, events, "not a date")


def test_bad_input_names_the_table_and_column() -> None:
    users = make_users([("a", "2024-01-01", "lead", None, "x")])
    events = make_events([("a", "x", "2024-01-02")])
    with pytest.raises(InputError, match=r"users.*converted_at"):
        fit_feature_spec(users.drop(columns="converted_at"), events, AS_OF)
    with pytest.raises(InputError, match=r"users.status.*churned"):
        fit_feature_spec(users.assign(status="churned"), events, AS_OF)
    with pytest.raises(InputError, match=r"events.occurred_at"):
        fit_feature_spec(users, events.assign(occurred_at="2024-01-02"), AS_OF)


def test_spec_round_trips_through_json(tmp_path) -> None:
    users = make_users(
        [
            ("a", "2024-01-01", "converted", "2024-01-05", "x"),
            ("b", "2024-01-01", "lost", None, "y"),
        ]
    )
    events = make_events(
        [("a", "x", "2024-01-02"), ("a", "paid", "2024-01-06"), ("b", "y", "2024-01-02")]
    )
    spec = fit_feature_spec(users, events, AS_OF, window_days=7, min_event_users=1)
    assert FeatureSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    assert FeatureSpec.from_json(spec.to_json(tmp_path / "spec.json")) == spec
    table = build_feature_table(users, events, spec, AS_OF)
    restored = read_feature_table(write_feature_table(table, tmp_path / "ft.parquet"))
    pd.testing.assert_frame_equal(restored, table, check_index_type=False)


def random_company(seed: int, n_users: int = 150, n_events: int = 3000):
    rng = np.random.default_rng(seed)
    created = T("2024-01-01") + pd.to_timedelta(rng.uniform(0, 50, n_users), unit="D")
    converts = rng.random(n_users) < 0.3
    converted_at = created + pd.to_timedelta(rng.uniform(0, 20, n_users), unit="D")
    status = np.where(converts, "converted", rng.choice(["lead", "trial", "lost"], n_users))
    users = make_users(
        [
            (f"u{i}", created[i], status[i], converted_at[i] if converts[i] else None, f"c{i % 3}")
            for i in range(n_users)
        ]
    )
    names = np.array(["a", "b", "c", "d", "rare1", "rare2", "paid"])
    user = rng.integers(0, n_users + 5, n_events)  # a few orphan events too
    name = rng.choice(len(names), n_events, p=[0.3, 0.3, 0.2, 0.15, 0.01, 0.01, 0.03])
    base = np.concatenate([created.to_numpy(), np.full(5, created.min().to_datetime64())])
    occurred = base[user] + pd.to_timedelta(rng.uniform(-2, 30, n_events), unit="D").to_numpy()
    conv = np.where(converts, converted_at.to_numpy(), np.datetime64("NaT"))
    conv = np.concatenate([conv, np.full(5, np.datetime64("NaT"))])
    paid = names[name] == "paid"
    after = pd.to_timedelta(rng.uniform(0, 5, n_events), unit="D").to_numpy()
    occurred = np.where(paid, conv[user] + after, occurred)  # paid: only after conversion
    events = make_events(list(zip([f"u{i}" for i in user], names[name], occurred, strict=True)))
    events = events.dropna(subset=["occurred_at"])
    return users, events


def reference_counts(
    users: pd.DataFrame, events: pd.DataFrame, spec: FeatureSpec, as_of
) -> pd.DataFrame:
    """The counting rule written out per user, slowly and plainly."""
    rows = {}
    window = pd.Timedelta(days=spec.window_days)
    for user in users.itertuples():
        if user.created_at > as_of:
            continue
        counts = dict.fromkeys(spec.event_feature_columns, 0)
        cut = (
            user.converted_at if user.status == "converted" and user.converted_at <= as_of else None
        )
        for event in events[events["user_id"] == user.user_id].itertuples():
            t = event.occurred_at
            if not (user.created_at <= t < user.created_at + window and t <= as_of):
                continue
            if cut is not None and t >= cut:
                continue
            if event.event_name in spec.excluded_events:
                continue
            counts[spec.event_columns.get(event.event_name, OTHER_COLUMN)] += 1
        rows[user.user_id] = counts
    return pd.DataFrame.from_dict(rows, orient="index")


@pytest.mark.parametrize("seed", [1, 2])
def test_vectorised_counts_match_a_per_user_reference(seed: int) -> None:
    users, events = random_company(seed)
    as_of = T("2024-02-10")
    spec = fit_feature_spec(users, events, as_of, window_days=10, min_event_users=10)
    assert "paid" in spec.excluded_events
    assert spec.event_columns["rare1"] == OTHER_COLUMN
    table = build_feature_table(users, events, spec, as_of)
    expected = reference_counts(users, events, spec, as_of)
    columns = list(spec.event_feature_columns)
    got = table[columns].astype(np.int64)
    pd.testing.assert_frame_equal(
        got, expected.loc[got.index, columns].astype(np.int64), check_names=False
    )
    assert (table["distinct_event_types"] == (expected.loc[table.index] > 0).sum(axis=1)).all()


def test_categorical_and_string_ids_give_the_same_table() -> None:
    users, events = random_company(3)
    events.loc[events.index[:3], "event_name"] = None  # a missing name counts nowhere
    spec = fit_feature_spec(users, events, None, min_event_users=10)
    expected = build_feature_table(users, events, spec, None)
    encoded = encode_events(events)
    assert isinstance(encoded["user_id"].dtype, pd.CategoricalDtype)
    by_pandas = events.astype({"user_id": "category", "event_name": "category"})
    for variant in (encoded, by_pandas):
        assert fit_feature_spec(users, variant, None, min_event_users=10) == spec
        pd.testing.assert_frame_equal(build_feature_table(users, variant, spec, None), expected)


def test_key_events_can_be_named_and_must_exist() -> None:
    users = make_users([(f"u{i}", "2024-01-01", "lost", None, "x") for i in range(2)])
    events = make_events([("u0", "open", "2024-01-01 02:00"), ("u1", "open", "2024-01-02")])
    spec = fit_feature_spec(users, events, AS_OF, min_event_users=1, key_events=["open"])
    table = build_feature_table(users, events, spec, AS_OF)
    assert table["hours_to_first_open"].tolist() == [2.0, 24.0]
    with pytest.raises(InputError, match="missing_event"):
        fit_feature_spec(users, events, AS_OF, min_event_users=1, key_events=["missing_event"])


def test_a_converted_user_without_conversion_time_is_neither_trained_on_nor_scored() -> None:
    users = make_users([("a", "2024-01-01", "converted", None, "x")])
    events = make_events([("a", "x", "2024-01-02")])
    table = build_feature_table(
        users, events, fit_feature_spec(users, events, AS_OF, min_event_users=1), AS_OF
    )
    assert table.loc["a", "status_at_as_of"] == "converted"
    assert training_rows(table).empty and open_leads(table).empty
