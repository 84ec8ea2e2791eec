"""The lead-scoring stage: feature inputs from 02_eda, and 03_lead_scoring end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from insightos_utils.errors import InputError
from insightos_utils.leads import scoring
from insightos_utils.leads.bundle import load_bundle
from insightos_utils.leads.pipelines import MODEL_NAMES
from insightos_utils.leads.stage import feature_inputs


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
        feature_inputs(data.users, data.events, as_of, tmp_path, window_days=7)


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
