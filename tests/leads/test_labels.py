"""The horizon label: 1 within the horizon, 0 lost or past it, censored while young."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from insightos_utils.errors import InputError
from insightos_utils.leads.labels import (
    CENSORED,
    CONVERTED_AFTER,
    CONVERTED_WITHIN,
    LOST,
    NO_CONVERSION_TIME,
    NOT_CONVERTED,
    horizon_labels,
    label_counts,
    with_horizon_labels,
)

AS_OF = pd.Timestamp("2025-06-30")
H = 90


def _user(uid: str, age_days: float, status: str, convert_after_days: float | None = None):
    created = AS_OF - pd.Timedelta(days=age_days)
    converted = created + pd.Timedelta(days=convert_after_days) if convert_after_days else pd.NaT
    return {"user_id": uid, "created_at": created, "status": status, "converted_at": converted}


CASES = [
    # id, age at as-of, status, days to conversion, expected label, expected reason, open
    ("within", 200, "converted", 10, 1, CONVERTED_WITHIN, False),
    ("exactly_at_horizon", 200, "converted", 90, 1, CONVERTED_WITHIN, False),
    ("just_after_horizon", 200, "converted", 90.001, 0, CONVERTED_AFTER, False),
    ("after_horizon", 300, "converted", 150, 0, CONVERTED_AFTER, False),
    ("lost_young", 5, "lost", None, 0, LOST, False),
    ("lost_old", 300, "lost", None, 0, LOST, False),
    ("open_old", 120, "lead", None, 0, NOT_CONVERTED, True),
    ("open_exactly_horizon", 90, "trial", None, 0, NOT_CONVERTED, True),
    ("open_young", 30, "trial", None, None, CENSORED, True),
    ("converts_after_as_of_young", 30, "converted", 40, None, CENSORED, True),
    ("converts_after_as_of_old", 100, "converted", 120, 0, NOT_CONVERTED, True),
    ("converted_no_time", 100, "converted", None, None, NO_CONVERSION_TIME, False),
]


@pytest.fixture(scope="module")
def labels() -> pd.DataFrame:
    users = pd.DataFrame([_user(c[0], c[1], c[2], c[3]) for c in CASES])
    users.loc[len(users)] = _user("after_as_of", -1, "lead")  # signs up after as-of
    return horizon_labels(users, AS_OF, horizon_days=H)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_each_edge(labels: pd.DataFrame, case: tuple) -> None:
    uid, _, _, _, label, reason, is_open = case
    row = labels.loc[uid]
    assert pd.isna(row["label"]) if label is None else row["label"] == label, row
    assert row["label_reason"] == reason
    assert bool(row["is_open"]) is is_open


def test_users_after_as_of_do_not_exist(labels: pd.DataFrame) -> None:
    assert "after_as_of" not in labels.index
    assert len(labels) == len(CASES)


def test_follow_up_time_for_survival(labels: pd.DataFrame) -> None:
    assert labels.loc["within", "days_observed"] == pytest.approx(10)
    assert bool(labels.loc["within", "converted_by_as_of"])
    assert labels.loc["open_young", "days_observed"] == pytest.approx(30)
    # a conversion after as-of is not known yet: followed up to as-of, no event
    assert labels.loc["converts_after_as_of_young", "days_observed"] == pytest.approx(30)
    assert not bool(labels.loc["converts_after_as_of_young", "converted_by_as_of"])


def test_lost_closed_after_as_of_was_open_then() -> None:
    users = pd.DataFrame([_user("a", 30, "lost"), _user("b", 120, "lost"), _user("c", 30, "lost")])
    users["closed_at"] = [AS_OF + pd.Timedelta(days=3), AS_OF + pd.Timedelta(days=3), pd.NaT]
    labels = horizon_labels(users, AS_OF, H)
    assert labels["is_open"].tolist() == [True, True, False]
    assert labels["label_reason"].tolist() == [CENSORED, NOT_CONVERTED, LOST]


def test_the_horizon_moves_labels() -> None:
    users = pd.DataFrame([_user("a", 400, "converted", 60), _user("b", 45, "lead")])
    short = horizon_labels(users, AS_OF, horizon_days=30)
    long = horizon_labels(users, AS_OF, horizon_days=90)
    assert short["label"].tolist() == [0, 0] and long.loc["a", "label"] == 1
    assert pd.isna(long.loc["b", "label"])


def test_timezone_aware_input_and_counts() -> None:
    users = pd.DataFrame([_user("a", 10, "converted", 3), _user("b", 200, "lead")])
    users["created_at"] = users["created_at"].dt.tz_localize("UTC")
    users["converted_at"] = users["converted_at"].dt.tz_localize("UTC")
    labels = horizon_labels(users, "2025-06-30T00:00:00Z", H)
    assert labels["label"].tolist() == [1, 0]
    counts = label_counts(labels).set_index("reason")["users"]
    assert counts[CONVERTED_WITHIN] == 1 and counts[NOT_CONVERTED] == 1 and counts.sum() == 2


def test_bad_input_is_an_input_error() -> None:
    with pytest.raises(InputError, match="created_at"):
        horizon_labels(pd.DataFrame({"user_id": ["a"]}), AS_OF)
    users = pd.DataFrame([_user("a", 10, "lead")])
    with pytest.raises(InputError, match="horizon_days"):
        horizon_labels(users, AS_OF, horizon_days=0)


def test_large_input_is_vectorised() -> None:
    rng = np.random.default_rng(0)
    n = 200_000
    created = AS_OF - pd.to_timedelta(rng.uniform(0, 365, n), unit="D")
    status = rng.choice(["lead", "lost", "converted"], n)
    converted = created + pd.to_timedelta(rng.uniform(0, 200, n), unit="D")
    users = pd.DataFrame(
        {
            "user_id": np.arange(n).astype(str),
            "created_at": created,
            "status": status,
            "converted_at": pd.Series(converted).where(status == "converted"),
        }
    )
    labels = horizon_labels(users, AS_OF, H)
    expected = (status == "converted") & (converted <= AS_OF) & (converted - created <= "90D")
    assert (labels["label"].fillna(0).to_numpy() == expected).all()


def test_feature_table_relabelled_by_the_horizon() -> None:
    users = pd.DataFrame(
        [
            _user("conv", 200, "converted", 10),
            _user("late", 300, "converted", 150),
            _user("lost_young", 3, "lost"),
            _user("old_open", 200, "lead"),
            _user("young", 10, "trial"),
        ]
    )
    table = pd.DataFrame(
        {
            "status_at_as_of": ["converted", "converted", "lead", "lead", "trial"],
            "label_known": [True, True, False, False, False],
            "target_converted": pd.array([1, 1, pd.NA, pd.NA, pd.NA], dtype="Int8"),
            "events_x": [1, 2, 3, 4, 5],
        },
        index=pd.Index(users["user_id"], name="user_id"),
    )
    relabelled = with_horizon_labels(table, users, AS_OF, H)
    assert relabelled["target_converted"].dtype == "Int8"
    assert relabelled["target_converted"].tolist()[:4] == [1, 0, 0, 0]
    assert pd.isna(relabelled.loc["young", "target_converted"])
    assert relabelled["label_known"].tolist() == [True, True, True, True, False]
    assert relabelled["status_at_as_of"].tolist() == [
        "converted",
        "converted",
        "lost",
        "lead",
        "trial",
    ]
    assert relabelled["events_x"].tolist() == [1, 2, 3, 4, 5]
