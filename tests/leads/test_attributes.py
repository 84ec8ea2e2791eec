"""Lead attributes: the written rule (type, levels, include/exclude) and the leakage audit."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from insightos_utils.leads.attributes import (
    MISSING_LEVEL,
    OTHER_LEVEL,
    AttributePlan,
    audit_feature_table,
    build_attribute_features,
    fit_attribute_plan,
    lead_attributes,
    marketing_keys,
    parse_numbers,
)
from insightos_utils.synth.shapes import shape_company


def _users(n: int, seed: int = 0, **columns: object) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "user_id": [f"u{i}" for i in range(n)],
            "created_at": pd.Timestamp("2025-01-01")
            + pd.to_timedelta(np.sort(rng.uniform(0, 300, n)), unit="D"),
            "status": "lost",
            "converted_at": pd.NaT,
            "marketing": None,
            "campaign": "(none)",
        }
    )
    for name, values in columns.items():
        frame[name] = values
    return frame


def _by_feature(plan: AttributePlan) -> dict:
    return {s.feature: s for s in plan.specs}


def test_numbers_are_parsed_with_separators_and_percent() -> None:
    text = np.array(["1,234.5", "1.234,5", "3,5", "12%", " 7 ", "abc", None], dtype=object)
    parsed = parse_numbers(text)
    np.testing.assert_allclose(parsed[:5], [1234.5, 1234.5, 3.5, 12.0, 7.0])
    assert np.isnan(parsed[5]) and np.isnan(parsed[6])


def test_type_detection_levels_and_missing() -> None:
    n = 1_000
    rng = np.random.default_rng(1)
    seats = rng.integers(1, 500, n).astype(object)
    seats[:30] = "n/a"  # 3% unparseable: still numeric (>= 95% parse)
    mostly_text = np.where(rng.random(n) < 0.5, rng.integers(1, 9, n).astype(str), "many")
    industry = rng.choice(["a", "b", "c"], n).astype(object)
    industry[:25] = "rare1"  # below min_users: grouped into (other)
    industry[25:30] = ""  # empty text: missing
    users = _users(
        n,
        seats=seats,
        band=mostly_text,
        industry=industry,
        signed_on=[f"2025-02-{1 + i % 28:02d}" for i in range(n)],
        constant="x",
    )
    plan = fit_attribute_plan(users, max_levels=20, min_users=30)
    specs = _by_feature(plan)
    assert specs["attr_seats"].kind == "numeric" and specs["attr_seats"].used
    assert specs["attr_band"].kind == "categorical"
    assert specs["attr_industry"].levels == ("a", "b", "c")
    assert specs["attr_signed_on"].kind == "timestamp" and not specs["attr_signed_on"].used
    assert not specs["attr_constant"].used and "one value" in specs["attr_constant"].reason
    assert "campaign" not in {s.field for s in plan.specs}  # derived by ingest, not an attribute

    features = build_attribute_features(users, plan)
    assert features["attr_seats"].isna().sum() == 30
    assert features["attr_seats"].dtype == np.float64
    counts = features["attr_industry"].value_counts()
    assert counts[OTHER_LEVEL] == 25 and counts[MISSING_LEVEL] == 5


def test_cardinality_limit_and_id_like_fields() -> None:
    n = 3_000
    rng = np.random.default_rng(2)
    many = rng.choice([f"l{i:02d}" for i in range(40)], n)  # 40 levels of ~75 users
    owner = np.char.add("rep", rng.integers(0, 1_000, n).astype(str))  # ~3 users each
    plan = fit_attribute_plan(_users(n, many=many, owner=owner), max_levels=10, min_users=30)
    specs = _by_feature(plan)
    assert len(specs["attr_many"].levels) == 10 and not specs["attr_many"].used  # 25% coverage
    assert not specs["attr_owner"].used and "id-like" in specs["attr_owner"].reason
    kept = fit_attribute_plan(
        _users(n, many=many), max_levels=10, min_users=30, include=["many"]
    )  # include skips the coverage rule
    assert _by_feature(kept)["attr_many"].used
    wide = fit_attribute_plan(_users(n, many=many), max_levels=40, min_users=30)
    assert _by_feature(wide)["attr_many"].used and len(_by_feature(wide)["attr_many"].levels) == 40


def test_include_and_exclude_lists() -> None:
    users = _users(200, a=["x", "y"] * 100, b=["p", "q"] * 100)
    users["marketing"] = json.dumps({"utm_campaign": "c", "utm_content": "v1"})
    plan = fit_attribute_plan(users, min_users=5, include=["a", "utm_content", "nothere"])
    specs = _by_feature(plan)
    assert specs["attr_a"].used and specs["marketing_utm_content"].kind == "constant"
    assert not specs["attr_b"].used and "include_attributes" in specs["attr_b"].reason
    assert "not in the data" in specs["nothere"].reason
    excluded = fit_attribute_plan(users, min_users=5, exclude=["attr_a"])
    assert not _by_feature(excluded)["attr_a"].used
    assert "exclude_attributes" in _by_feature(excluded)["attr_a"].reason


def test_marketing_keys_skip_the_contract_keys() -> None:
    marketing = pd.Series(
        [
            '{"utm_source": "g", "utm_campaign": "c", "utm_term": "crm", "landing": "/p"}',
            "",
            None,
            "not json",
            '{"utm_term": "erp"}',
        ]
    )
    keys = marketing_keys(marketing)
    assert list(keys.columns) == ["landing", "utm_term"]
    assert keys["utm_term"].isna().tolist() == [False, True, True, True, False]
    assert keys["utm_term"].dropna().tolist() == ["crm", "erp"]


def test_unseen_levels_and_missing_fields_at_scoring() -> None:
    train = _users(400, colour=["red", "blue"] * 200, size=np.arange(400.0))
    plan = fit_attribute_plan(train, min_users=10)
    new = _users(3, colour=["red", "green", None])
    features = build_attribute_features(new, plan)
    assert features["attr_colour"].tolist() == ["red", OTHER_LEVEL, MISSING_LEVEL]
    assert features["attr_size"].isna().all()  # column absent from the scoring data
    assert AttributePlan.from_dict(json.loads(json.dumps(plan.to_dict()))) == plan


def _outcomes(users: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    status = users["status"].to_numpy()
    target = np.where(status == "converted", 1.0, np.where(status == "lost", 0.0, np.nan))
    index = pd.Index(users["user_id"])
    is_open = pd.Series(np.isin(status, ["lead", "trial"]), index=index)
    return pd.Series(target, index=index).astype("Int8"), is_open


def test_audit_catches_post_outcome_fields_and_keeps_honest_signal() -> None:
    """A simulated world with known fields: an honest signal (AUC about 0.7), a field filled
    only once a lead closes, and a tag that is the outcome (filled for everyone)."""
    n = 4_000
    rng = np.random.default_rng(3)
    intent = rng.standard_normal(n)
    converts = rng.random(n) < 1 / (1 + np.exp(-(intent - 1.5)))
    open_ = rng.random(n) < 0.15
    status = np.where(open_, "lead", np.where(converts, "converted", "lost"))
    honest = np.where(intent + rng.standard_normal(n) > 0.5, "pricing", "home")
    filled_after = np.where(open_, "", np.where(rng.random(n) < 0.5, "x", "y"))
    tag = np.where(converts, "won", "nope")
    users = _users(n, seed=4, honest=honest, filled_after=filled_after, tag=tag)
    users["status"] = status
    target, is_open = _outcomes(users)
    result = lead_attributes(users, target, is_open, min_users=30)
    table = result.table.set_index("attribute")
    assert table.loc["attr_honest", "decision"] == "kept"
    assert 0.6 < table.loc["attr_honest", "holdout_auc"] < 0.9
    assert table.loc["attr_filled_after", "decision"] == "dropped"
    assert "filled in after the outcome" in table.loc["attr_filled_after", "reason"]
    assert table.loc["attr_tag", "decision"] == "dropped"
    assert "ROC AUC" in table.loc["attr_tag", "reason"]
    assert list(result.features.columns) == ["attr_honest"]


@pytest.fixture(scope="module")
def crm_users() -> pd.DataFrame:
    return shape_company("crm_leads", n_users=3_000, seed=5).tables["users"]


def test_crm_leads_lead_quality_is_dropped_with_its_reason(crm_users: pd.DataFrame) -> None:
    target, is_open = _outcomes(crm_users)
    result = lead_attributes(crm_users, target, is_open)
    table = result.table.set_index("attribute")
    assert table.loc["attr_lead_quality", "decision"] == "dropped"
    assert table.loc["attr_lead_quality", "reason"].startswith("leakage audit:")
    assert table.loc["attr_sales_owner", "decision"] == "dropped"
    for kept in ("attr_landing_page", "attr_company_size", "attr_employees"):
        assert table.loc[kept, "decision"] == "kept", kept
    assert {"marketing_utm_content", "marketing_utm_term"} <= set(table.index)
    assert "attr_lead_quality" not in result.features.columns


def test_audit_on_a_feature_table(crm_users: pd.DataFrame) -> None:
    target, is_open = _outcomes(crm_users)
    plan = fit_attribute_plan(crm_users)
    table = build_attribute_features(crm_users, plan).assign(
        target_converted=target.to_numpy(),
        status_at_as_of=np.where(is_open, "lead", "closed"),
        created_at=crm_users["created_at"].to_numpy(),
    )
    audited, described = audit_feature_table(table, plan)
    assert "attr_lead_quality" not in audited.features
    assert "attr_landing_page" in audited.features
    assert set(described["decision"]) == {"kept", "dropped"}
