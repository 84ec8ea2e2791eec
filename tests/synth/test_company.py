"""The synthetic company: raw-contract format, determinism, and the published properties that
later stages rely on (issue 2 item 6), asserted on the default data (10,000 users, seed 42)."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from insightos_utils.cli import main
from insightos_utils.contract import STATUSES, TABLES
from insightos_utils.errors import InputError
from insightos_utils.synth import (
    DEFAULT_AS_OF,
    PROFILES,
    WINDOW_DAYS,
    generate_company,
    write_company,
)

PROJECTS = PROFILES["projects"]
AS_OF = pd.Timestamp(DEFAULT_AS_OF).tz_convert(None)
ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
REFERENCE = "google_gestao_agil"


def campaign_of(marketing: pd.Series) -> pd.Series:
    """utm_campaign from the marketing JSON, "(none)" when absent (as the contract says)."""
    return marketing.map(
        lambda text: (
            json.loads(text).get("utm_campaign", "(none)")
            if isinstance(text, str) and text
            else "(none)"
        )
    )


def window_counts(users: pd.DataFrame, events: pd.DataFrame, days: int = 14) -> pd.DataFrame:
    """Per-user event counts in [created_at, created_at + days) and strictly before converted_at."""
    joined = events.drop_duplicates("event_id").merge(
        users[["user_id", "created_at", "converted_at"]], on="user_id"
    )
    inside = (
        (joined.occurred_at >= joined.created_at)
        & (joined.occurred_at < joined.created_at + pd.Timedelta(days=days))
        & ~(joined.occurred_at >= joined.converted_at)
    )
    counts = pd.crosstab(joined.user_id[inside], joined.event_name[inside].astype(str))
    return counts.reindex(users.user_id, fill_value=0)


@pytest.fixture(scope="module")
def company() -> dict[str, pd.DataFrame]:
    tables = generate_company(n_users=10_000, seed=42)
    tables["users"] = tables["users"].assign(campaign=campaign_of(tables["users"].marketing))
    return tables


@pytest.fixture(scope="module")
def counts(company: dict[str, pd.DataFrame]) -> pd.DataFrame:
    return window_counts(company["users"], company["events"], WINDOW_DAYS)


# --- format ------------------------------------------------------------------------------------


def test_files_follow_the_raw_contract(synthetic_raw: Path) -> None:
    for spec in TABLES:
        frame = pd.read_csv(synthetic_raw / f"{spec.name}.csv", dtype=str, keep_default_na=False)
        assert list(frame.columns) == spec.required_names, spec.name  # no optional closed_at
        assert len(frame) > 0, spec.name
        for column in spec.columns:
            if column.optional:
                continue
            values = frame[column.name]
            if not column.nullable:
                assert (values != "").all(), f"{spec.name}.{column.name} has empty values"
            if column.kind == "timestamp":
                present = values[values != ""]
                assert present.str.match(ISO_UTC).all(), f"{spec.name}.{column.name}"
            if column.kind == "json":
                parsed = [json.loads(text) for text in values[values != ""]]
                assert all(isinstance(obj, dict) for obj in parsed), column.name
            if column.kind == "number":
                assert (pd.to_numeric(values) >= 0).all()


def test_ids_statuses_and_references_are_clean(synthetic_raw: Path) -> None:
    users = pd.read_csv(synthetic_raw / "users.csv", keep_default_na=False)
    events = pd.read_csv(synthetic_raw / "events.csv", keep_default_na=False)
    transactions = pd.read_csv(synthetic_raw / "transactions.csv")
    spend = pd.read_csv(synthetic_raw / "campaign_spend.csv")
    assert users.user_id.is_unique and transactions.transaction_id.is_unique
    assert set(users.status) <= STATUSES
    assert ((users.converted_at != "") == (users.status == "converted")).all()
    assert set(events.user_id) <= set(users.user_id)
    assert set(transactions.user_id) <= set(users.user_id[users.status == "converted"])
    assert (transactions.amount > 0).all()
    # a repeated event_id is the same event delivered twice: identical rows, ~0.3% of the log
    repeated = events[events.event_id.duplicated(keep=False)]
    assert len(repeated.drop_duplicates()) == repeated.event_id.nunique()
    assert 0.002 <= events.event_id.duplicated().mean() <= 0.004
    assert set(spend.campaign) <= set(campaign_of(users.marketing)) - {"(none)"}
    assert (spend.spend > 0).all()


def test_nothing_exists_after_as_of() -> None:
    as_of = pd.Timestamp("2025-01-15")
    tables = generate_company(n_users=2_000, seed=3, as_of="2025-01-15T00:00:00Z")
    users, events, transactions = tables["users"], tables["events"], tables["transactions"]
    assert users.created_at.max() < as_of
    assert users.created_at.min() >= as_of - pd.Timedelta(days=730)
    assert users.converted_at.max() < as_of
    assert events.occurred_at.max() < as_of
    assert transactions.occurred_at.max() < as_of
    # every event happens at or after its user's signup
    created = events.user_id.map(users.set_index("user_id").created_at)
    assert (events.occurred_at >= created).all()


def test_same_seed_same_bytes_different_seed_different(tmp_path: Path) -> None:
    first = write_company(tmp_path / "a", n_users=1_500, seed=7, show_progress=False)
    again = write_company(tmp_path / "b", n_users=1_500, seed=7, show_progress=False)
    other = write_company(tmp_path / "c", n_users=1_500, seed=8, show_progress=False)
    for name, path in first.items():
        assert path.read_bytes() == again[name].read_bytes(), name
    for name in ("users", "events", "transactions"):
        assert first[name].read_bytes() != other[name].read_bytes(), name
    assert not list((tmp_path / "a").glob(".*"))  # no temporary files left behind


def test_written_csv_reads_back_as_the_generated_tables(tmp_path: Path) -> None:
    tables = generate_company(n_users=700, seed=9)
    paths = write_company(tmp_path, n_users=700, seed=9, show_progress=False)
    for name, frame in tables.items():
        written = pd.read_csv(paths[name], dtype=str, keep_default_na=False)
        for column in frame.columns:
            expected = frame[column]
            if pd.api.types.is_datetime64_any_dtype(expected):
                parsed = pd.to_datetime(written[column].replace("", None), utc=True)
                pd.testing.assert_series_equal(
                    parsed.dt.tz_convert(None).astype("datetime64[s]"), expected, check_names=False
                )
            elif pd.api.types.is_float_dtype(expected):
                assert (written[column].astype(float) == expected).all(), column
            else:
                assert (written[column] == expected.astype(object).fillna("")).all(), column


def test_parquet_has_the_same_columns_and_rows(tmp_path: Path) -> None:
    as_csv = write_company(tmp_path / "csv", n_users=800, seed=5, show_progress=False)
    as_parquet = write_company(
        tmp_path / "pq", n_users=800, seed=5, file_format="parquet", show_progress=False
    )
    for name, path in as_parquet.items():
        assert path.suffix == ".parquet"
        from_parquet = pd.read_parquet(path)
        from_csv = pd.read_csv(as_csv[name])
        assert list(from_parquet.columns) == list(from_csv.columns)
        assert len(from_parquet) == len(from_csv)
    events = pd.read_parquet(as_parquet["events"])
    assert str(events.occurred_at.dt.tz) == "UTC"
    assert events.event_name.dtype != "category"


def test_bad_arguments_are_refused_as_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="profile"):
        generate_company(n_users=10, profile="bakery")
    with pytest.raises(InputError, match="format"):
        write_company(tmp_path, n_users=10, file_format="xlsx", show_progress=False)
    with pytest.raises(InputError, match="as_of"):
        generate_company(n_users=10, as_of="the end of june")
    with pytest.raises(InputError, match="n_users"):
        generate_company(n_users=0)


def test_cli_synth_writes_the_four_tables(tmp_path: Path, capsys) -> None:
    out = tmp_path / "raw"
    status = main(["synth", "--out", str(out), "--users", "300", "--profile", "crm"])
    assert status == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "campaign_spend.csv",
        "events.csv",
        "transactions.csv",
        "users.csv",
    ]
    assert main(["synth", "--out", str(out), "--users", "300", "--profile", "bakery"]) == 2
    assert "bakery" in capsys.readouterr().err


# --- published properties on the default data -------------------------------------------------


def test_about_ten_percent_of_users_converted(company: dict[str, pd.DataFrame]) -> None:
    users = company["users"]
    assert abs(users.status.eq("converted").mean() - 0.101) <= 0.01
    # open leads are recent signups; older unconverted users are lost
    age = AS_OF - users.created_at
    assert (age[users.status.isin(["lead", "trial"])] < pd.Timedelta(days=45)).all()
    assert (age[users.status == "lost"] >= pd.Timedelta(days=45)).all()
    delay = (users.converted_at - users.created_at).dropna()
    assert (delay > pd.Timedelta(0)).all()
    assert delay.between(pd.Timedelta(days=1), pd.Timedelta(days=40)).mean() > 0.9
    assert users.created_at.min() < AS_OF - pd.Timedelta(days=700)  # two years of history


def test_google_gestao_agil_converts_at_least_twice_the_rest(
    company: dict[str, pd.DataFrame],
) -> None:
    users = company["users"]
    converted = users.status.eq("converted")
    is_google = users.campaign == REFERENCE
    assert converted[is_google].mean() >= 2 * converted[~is_google].mean()
    assert users.campaign.nunique() >= 5  # google, 3-4 others and "(none)"
    assert (users.campaign == "(none)").mean() > 0.2


def test_trial_signup_and_user_verified_are_collinear(counts: pd.DataFrame) -> None:
    from statsmodels.stats.outliers_influence import variance_inflation_factor
    from statsmodels.tools.tools import add_constant

    r = np.corrcoef(counts["trial_signup"], counts["user_verified"])[0, 1]
    assert 0.93 <= r <= 0.98
    assert counts["trial_signup"].std() > 0.8  # real spread, not a constant 1
    pre = counts.drop(columns=[c for c in PROJECTS.post_conversion_events if c in counts])
    design = add_constant(pre.to_numpy(dtype=float))
    names = ["const", *pre.columns]
    vif = {name: variance_inflation_factor(design, i) for i, name in enumerate(names)}
    assert vif["trial_signup"] > 25 and vif["user_verified"] > 25


def test_behaviour_predicts_conversion_noisily(
    company: dict[str, pd.DataFrame], counts: pd.DataFrame
) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.preprocessing import StandardScaler

    users = company["users"]
    known = users[users.status.isin(["converted", "lost"])].sort_values("created_at")
    window = counts.loc[known.user_id].drop(
        columns=[c for c in PROJECTS.post_conversion_events if c in counts]
    )
    for name in ("page_view", "project_created", "task_created", "teammate_invited"):
        assert name in window.columns
    features = pd.concat(
        [
            np.log1p(window).reset_index(drop=True),
            pd.get_dummies(known.campaign.reset_index(drop=True), dtype=float),
        ],
        axis=1,
    )
    target = known.status.eq("converted").to_numpy()
    cut = int(len(known) * 0.8)  # time-based holdout: the latest 20% of signups
    scaler = StandardScaler().fit(features[:cut])
    model = LogisticRegression(max_iter=2000, class_weight="balanced")
    model.fit(scaler.transform(features[:cut]), target[:cut])
    holdout_auc = roc_auc_score(
        target[cut:], model.predict_proba(scaler.transform(features[cut:]))[:, 1]
    )
    assert 0.78 <= holdout_auc <= 0.93
    single = {name: roc_auc_score(target, window[name]) for name in window.columns}
    assert max(single.values()) < 0.9, single
    assert max(single.values()) > 0.65, single


def test_post_conversion_events_never_precede_conversion(company: dict[str, pd.DataFrame]) -> None:
    users = company["users"].set_index("user_id")
    events = company["events"]
    post = events[events.event_name.isin(PROJECTS.post_conversion_events)]
    assert set(post.event_name.astype(str)) == set(PROJECTS.post_conversion_events)
    converted_at = post.user_id.map(users.converted_at)
    assert converted_at.notna().all()  # only customers have them
    assert (post.occurred_at >= converted_at).all()
    # each customer's subscription starts exactly at conversion
    starts = post[post.event_name == PROJECTS.start_event]
    assert (starts.occurred_at == starts.user_id.map(users.converted_at)).all()


def test_transactions_follow_conversion(company: dict[str, pd.DataFrame]) -> None:
    users = company["users"].set_index("user_id")
    transactions = company["transactions"]
    converted_at = transactions.user_id.map(users.converted_at)
    assert converted_at.notna().all()
    assert (transactions.occurred_at >= converted_at).all()
    assert (transactions.occurred_at < AS_OF).all()
    assert (transactions.amount > 0).all()
    assert transactions.user_id.nunique() == users.status.eq("converted").sum()
    assert transactions.groupby("user_id").size().max() > 3  # repeat buyers exist


def test_ltv_google_about_73_60_and_2_3_times_the_rest(company: dict[str, pd.DataFrame]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from lifetimes import BetaGeoFitter, GammaGammaFitter

    users, transactions = company["users"], company["transactions"]
    per_user = transactions.sort_values("occurred_at").groupby("user_id")
    first, last = per_user.occurred_at.min(), per_user.occurred_at.max()
    frequency = per_user.size() - 1
    week = pd.Timedelta(days=7)
    recency, age = (last - first) / week, (AS_OF - first) / week
    repeat_total = per_user.amount.sum() - per_user.amount.first()
    monetary = (repeat_total / frequency.where(frequency > 0)).fillna(0.0)

    bgf = BetaGeoFitter().fit(frequency, recency, age)
    repeaters = frequency > 0
    ggf = GammaGammaFitter().fit(frequency[repeaters], monetary[repeaters])
    ltv = ggf.customer_lifetime_value(
        bgf, frequency, recency, age, monetary, time=12, discount_rate=0.01, freq="W"
    )
    campaign = users.set_index("user_id").campaign.reindex(ltv.index)
    google, others = ltv[campaign == REFERENCE].mean(), ltv[campaign != REFERENCE].mean()
    assert abs(google / 73.6 - 1) <= 0.2, (google, others)
    assert 1.9 <= google / others <= 2.8, (google, others)

    spend = company["campaign_spend"].set_index("campaign").spend
    customers = campaign.value_counts()
    ltv_to_cac = ltv.groupby(campaign).mean()[spend.index] / (spend / customers[spend.index])
    assert ltv_to_cac.idxmax() == REFERENCE
    assert (ltv_to_cac < 1).any()


# --- a second company --------------------------------------------------------------------------


def test_crm_profile_has_its_own_vocabulary_and_the_same_shape() -> None:
    crm = PROFILES["crm"]
    generic = {"page_view"}
    assert set(crm.event_names) & set(PROJECTS.event_names) <= generic
    crm_campaigns = {c.name for c in crm.campaigns}
    assert not crm_campaigns & {c.name for c in PROJECTS.campaigns}

    tables = generate_company(n_users=6_000, seed=11, profile="crm")
    users, events = tables["users"], tables["events"]
    assert set(events.event_name.astype(str)) == set(crm.event_names)
    campaign = campaign_of(users.marketing)
    assert set(campaign) - {"(none)"} == crm_campaigns
    converted = users.status.eq("converted")
    assert 0.08 <= converted.mean() <= 0.14
    best = campaign == crm.reference_campaign
    assert converted[best].mean() >= 2 * converted[~best].mean()
    counts = window_counts(users, events)
    r = np.corrcoef(counts[crm.trial_event], counts[crm.verify_event])[0, 1]
    assert 0.93 <= r <= 0.98
