"""Lead attributes and the horizon label wired into features, EDA, scoring and card."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from insightos_utils.config import PipelineConfig
from insightos_utils.ingest import ingest, read_processed
from insightos_utils.leads import eda, features, stage
from insightos_utils.leads.labels import CENSORED, horizon_labels
from insightos_utils.synth import write_company


@pytest.fixture(scope="module")
def crm(tmp_path_factory: pytest.TempPathFactory) -> dict[str, pd.DataFrame]:
    """A CRM's leads (attributes, one filled in after the outcome) through ingest."""
    raw, processed = tmp_path_factory.mktemp("crm_raw"), tmp_path_factory.mktemp("crm_processed")
    write_company(raw, n_users=3_000, seed=7, shape="crm_leads", show_progress=False)
    ingest(processed, raw_dir=raw, show_progress=False)
    data = read_processed(processed)
    return {"users": data.users, "events": features.encode_events(data.events)}


@pytest.fixture(scope="module")
def crm_inputs(crm: dict[str, pd.DataFrame]) -> stage.FeatureInputs:
    as_of = features.resolve_as_of(crm["users"], crm["events"], None)
    return stage.feature_inputs(crm["users"], crm["events"], as_of, None, PipelineConfig())


def test_attributes_become_columns_and_lead_quality_is_kept_out(
    crm_inputs: stage.FeatureInputs,
) -> None:
    spec, table, decisions = crm_inputs.spec, crm_inputs.feature_table, crm_inputs.decisions
    assert "attr_employees" in spec.numeric_columns
    assert {"attr_landing_page", "attr_lead_quality"} <= set(spec.categorical_columns)
    assert table["attr_employees"].isna().any()  # empty stays empty; the imputer fills it
    assert "leakage audit" not in decisions.leaky_features["attr_lead_quality"]
    assert "after the outcome" in decisions.leaky_features["attr_lead_quality"]
    for model in ("linear", "tree"):
        used = decisions.features_for(model, spec)
        assert "attr_lead_quality" not in used and "attr_landing_page" in used
    rows = {r["attribute"]: r for r in decisions.lead_attributes}
    assert rows["attr_sales_owner"]["decision"] == "dropped"
    json.dumps(decisions.lead_attributes, allow_nan=False)  # JSON-safe for the card


def test_spec_round_trips_and_scoring_data_gets_the_same_columns(
    crm: dict[str, pd.DataFrame], crm_inputs: stage.FeatureInputs, tmp_path: Path
) -> None:
    spec = crm_inputs.spec
    spec.to_json(tmp_path / "spec.json")
    again = features.FeatureSpec.from_json(tmp_path / "spec.json")
    assert again == spec and again.horizon_days == 90
    as_of = features.resolve_as_of(crm["users"], crm["events"], None)
    without = crm["users"].drop(columns=["industry"])  # a scoring source that lost a column
    table = features.build_feature_table(without, crm["events"], again, as_of)
    assert set(table["attr_industry"]) == {"(missing)"}
    assert list(table.columns) == list(crm_inputs.feature_table.columns)


def test_feature_table_carries_the_horizon_label(crm: dict[str, pd.DataFrame]) -> None:
    users, events = crm["users"], crm["events"]
    as_of = features.resolve_as_of(users, events, None)
    for horizon in (7, 90):
        spec = features.fit_feature_spec(users, events, as_of, horizon_days=horizon)
        table = features.build_feature_table(users, events, spec, as_of)
        labels = horizon_labels(users, as_of, horizon).reindex(table.index)
        assert table["target_converted"].astype("Float64").equals(labels["label"].astype("Float64"))
        censored = labels["label_reason"] == CENSORED
        assert features.open_leads(table).index.isin(labels.index[labels["is_open"]]).all()
        assert not table.loc[censored, "label_known"].any()
    short = features.training_rows(
        features.build_feature_table(
            users, events, features.fit_feature_spec(users, events, as_of, horizon_days=7), as_of
        )
    )
    assert short["target_converted"].sum() < labels["label"].sum()  # fewer wins within 7 days


def test_old_specs_without_horizon_keep_the_old_label(crm: dict[str, pd.DataFrame]) -> None:
    users, events = crm["users"], crm["events"]
    as_of = features.resolve_as_of(users, events, None)
    spec = features.fit_feature_spec(users, events, as_of)
    document = spec.to_dict()  # as a spec written before attributes and the horizon existed
    document.pop("horizon_days")
    document.pop("attributes")
    document["categorical_columns"] = list(features.CATEGORICAL_COLUMNS)
    document["numeric_columns"] = [c for c in spec.numeric_columns if not c.startswith("attr_")]
    old = features.FeatureSpec.from_dict(document)
    assert old.horizon_days is None and not old.attribute_plan.specs
    table = features.build_feature_table(users, events, old, as_of)
    assert not any(c.startswith("attr_") for c in table.columns)


def test_decisions_read_back_with_their_attributes(
    crm_inputs: stage.FeatureInputs, tmp_path: Path
) -> None:
    crm_inputs.decisions.to_json(tmp_path / "decisions.json")
    again = eda.FeatureDecisions.from_json(tmp_path / "decisions.json")
    assert again.lead_attributes == json.loads(json.dumps(crm_inputs.decisions.lead_attributes))


def test_explanations_read_attributes_in_words() -> None:
    from insightos_utils.leads.explain import describe_value, feature_label

    assert feature_label("attr_company_size") == "company size"
    assert describe_value("marketing_utm_term", "crm", 14, True) == "utm term is crm"
    assert describe_value("attr_employees", np.nan, 14, False) == "no employees recorded"


def test_a_company_without_events_is_scored_on_its_attributes(tmp_path: Path) -> None:
    """No product events at all, lead attributes with real but partial signal (and one filled
    in after the outcome): the models stand on the attributes and beat chance on the holdout."""
    from insightos_utils.leads import bundle as bundles
    from insightos_utils.leads import scoring, train
    from insightos_utils.synth.company import Knobs, generate_company
    from insightos_utils.synth.files import write_tables

    tables = generate_company(
        n_users=4_000, seed=3, knobs=Knobs(events=False, lead_attributes=True)
    )
    write_tables(tables, tmp_path / "raw", "csv", seed=3)
    ingest(tmp_path / "processed", raw_dir=tmp_path / "raw", show_progress=False)
    data = read_processed(tmp_path / "processed")
    assert len(data.events) == 0
    events = features.encode_events(data.events)
    as_of = features.resolve_as_of(data.users, events, None)
    inputs = stage.feature_inputs(data.users, events, as_of, None, PipelineConfig())
    assert "attr_lead_quality" in inputs.decisions.leaky_features
    by_model = train.model_features(inputs.decisions, inputs.spec)
    result = train.train_lead_models(features.training_rows(inputs.feature_table), by_model)
    champion = result.metrics[result.champion]["holdout_roc_auc"]
    assert 0.6 < champion < 0.95, champion  # real signal, and no leak left
    assert any(f.startswith("attr_") for f in result.models[result.champion].features)
    arguments = {
        "feature_spec": inputs.spec.to_dict(),
        "decisions": inputs.decisions.__dict__,
        "data_hash": "0" * 64,
        "as_of": as_of,
        "window_days": inputs.spec.window_days,
    }
    model = bundles.make_bundle(result, result.champion, champion=True, **arguments)
    leads = features.open_leads(inputs.feature_table)
    scored = scoring.score_leads(model, leads)
    assert len(scored) == len(leads) > 0 and scored["score"].between(0, 1).all()
    assert scored["top_reasons"].str.contains("company size|landing page|employees").any()
