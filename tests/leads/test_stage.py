"""The lead-scoring stage: feature inputs from 02_eda, and 03_lead_scoring end to end."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from insightos_utils.config import PipelineConfig
from insightos_utils.contract import OPEN_STATUSES
from insightos_utils.errors import InputError
from insightos_utils.leads import scoring
from insightos_utils.leads.bundle import load_bundle
from insightos_utils.leads.features import write_feature_table
from insightos_utils.leads.pipelines import MODEL_NAMES
from insightos_utils.leads.stage import feature_inputs, run_lead_scoring


def test_feature_inputs_reuse_what_02_eda_wrote(synthetic_lead_models, tmp_path: Path) -> None:
    data, as_of = synthetic_lead_models["data"], synthetic_lead_models["as_of"]
    decided = synthetic_lead_models["inputs"]
    assert decided.source.startswith("decided here")
    decided.spec.to_json(tmp_path / "feature_spec.json")
    decisions = type(decided.decisions)(**{**vars(decided.decisions), "dropped_for_linear": {}})
    decisions.to_json(tmp_path / "feature_decisions.json")
    reused = feature_inputs(data.users, data.events, as_of, tmp_path)
    assert reused.source.startswith("read from")
    assert reused.decisions.dropped_for_linear == {}  # the file's decision, not a new one
    assert reused.spec == decided.spec
    pd.testing.assert_frame_equal(reused.feature_table, decided.feature_table)
    with pytest.raises(InputError, match="window_days 14 differs"):
        seven_days = PipelineConfig().with_overrides(feature_window_days=7)
        feature_inputs(data.users, data.events, as_of, tmp_path, seven_days)


def test_the_feature_table_02_eda_wrote_is_the_one_03_uses(
    synthetic_lead_models, tmp_path: Path
) -> None:
    """02_eda builds the feature table; 03 reads it from the run folder instead of rebuilding
    (a marked row proves the file was read), unless it was built at another as-of."""
    data, as_of = synthetic_lead_models["data"], synthetic_lead_models["as_of"]
    decided = synthetic_lead_models["inputs"]
    decided.spec.to_json(tmp_path / "feature_spec.json")
    decided.decisions.to_json(tmp_path / "feature_decisions.json")
    marked = decided.feature_table.copy()
    marked.iloc[0, marked.columns.get_loc("days_active")] = 99
    write_feature_table(marked, tmp_path / "feature_table.parquet")
    reused = feature_inputs(data.users, data.events, as_of, tmp_path)
    assert "feature_table.parquet" in reused.source
    pd.testing.assert_frame_equal(reused.feature_table, marked)
    earlier = feature_inputs(data.users, data.events, as_of - pd.Timedelta(days=1), tmp_path)
    assert "feature_table.parquet" not in earlier.source
    assert earlier.feature_table.iloc[0]["days_active"] != 99


@pytest.mark.extended  # `make test-slow`: the corpus runs no_transactions on the crm profile
@pytest.mark.notebook
def test_lead_scoring_notebook_runs_on_a_company_with_other_event_names(
    run_notebook, tmp_path: Path
) -> None:
    """03_lead_scoring end to end on the 'crm' company: other event names and campaigns."""
    from insightos_utils import synth
    from insightos_utils.ingest import ingest

    raw, processed, run_dir = tmp_path / "raw", tmp_path / "processed", tmp_path / "run"
    synth.write_company(raw, n_users=8_000, seed=11, profile="crm", show_progress=False)
    ingest(processed, raw_dir=raw, show_progress=False)
    run_notebook("03_lead_scoring", run_dir, processed_dir=str(processed), run_dir=str(run_dir))

    card = json.loads((run_dir / "model_card.json").read_text())
    assert card["champion"] in MODEL_NAMES
    for name in MODEL_NAMES:
        assert 0.75 <= card["models"][name]["holdout_roc_auc"] <= 0.97
    assert card["leakage_suspected"] is False
    assert card["feature_window_days"] == 14
    assert len(card["data_hash"]) == 64
    assert card["backtest"]["open_leads_scored"] > 0
    crm_events = set(synth.PROFILES["crm"].event_names)
    projects_events = set(synth.PROFILES["projects"].event_names) - crm_events
    assert set(card["leakage_audit"]["excluded_post_conversion_events"]) <= crm_events
    scored = pd.read_csv(run_dir / "scored_leads.csv")
    assert list(scored.columns[:7]) == list(scoring.SCORED_COLUMNS)  # (checked in test_scoring)
    assert len(scored) == card["scored_leads"]["open_leads"] > 0
    reasons = " ".join(scored["top_reasons"])
    assert not any(name.replace("_", " ") in reasons for name in projects_events)
    assert any(name.replace("_", " ") in reasons for name in crm_events)
    for name in ("champion", "v1_logreg", "v2_xgboost"):
        assert load_bundle(run_dir / "models" / f"{name}.joblib").features
    executed = json.loads((run_dir / "03_lead_scoring.ipynb").read_text())
    text = json.dumps(executed["cells"][-1]["outputs"])
    assert "Champion" in text


def _company(tmp_path: Path, shape: str | None, n_users: int) -> Any:
    from insightos_utils import synth
    from insightos_utils.ingest import ingest, read_processed

    raw, processed = tmp_path / "raw", tmp_path / "processed"
    synth.write_company(raw, n_users=n_users, seed=3, shape=shape, show_progress=False)
    ingest(processed, raw_dir=raw, show_progress=False)
    return read_processed(processed)


def test_below_the_minimums_the_stage_is_skipped_with_the_counts(tmp_path: Path) -> None:
    data = _company(tmp_path, "tiny", 200)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    outcome = run_lead_scoring(run_dir, data, PipelineConfig())
    assert outcome.skipped and outcome.result is None
    assert "converted" in outcome.record.reason and "at least 40" in outcome.record.reason
    stages = json.loads((run_dir / "stages.json").read_text())
    assert stages["lead_scoring"]["state"] == "skipped"
    assert stages["backtest"]["state"] == "skipped"
    card = json.loads((run_dir / "model_card.json").read_text())
    assert card["state"] == "skipped" and card["reason"] == outcome.record.reason
    assert pd.read_csv(run_dir / "scored_leads.csv").empty
    assert "Not computed: lead scoring" in outcome.not_computed()


@pytest.mark.parametrize("shape", ["crm_leads", "no_events"])
def test_companies_without_product_events_get_scored_leads(tmp_path: Path, shape: str) -> None:
    """A CRM-only company (header-only events; for crm_leads wins only in the latest months)
    trains on what features exist and scores every open lead; a backtest window its data
    cannot support is skipped with the reason in the model card, never a crash."""
    data = _company(tmp_path, shape, 3_000)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    outcome = run_lead_scoring(run_dir, data, PipelineConfig())
    assert outcome.ok, outcome.record
    result = outcome.result
    assert result is not None
    open_leads = data.users["status"].isin(list(OPEN_STATUSES)).sum()
    assert len(result.scored) == open_leads > 0
    card = json.loads((run_dir / "model_card.json").read_text())
    stages = json.loads((run_dir / "stages.json").read_text())
    assert stages["lead_scoring"]["state"] == "ok"
    if result.backtest is None:
        assert stages["backtest"]["state"] == "skipped"
        assert card["backtest"]["state"] == "skipped" and card["backtest"]["reason"]
    signal = card["signal"]
    assert signal["better_than_chance"] == (signal["auc_ci"][0] > 0.5)
    withheld = (result.scored["grade"] == "").all()
    assert withheld == (not signal["better_than_chance"])
