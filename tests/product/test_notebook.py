"""05_product executed headlessly: on the default company, and on a CRM-only one."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from insightos_utils.ingest import ingest
from insightos_utils.product.funnel import FUNNEL_COLUMNS
from insightos_utils.synth import write_company


def _outputs_text(notebook: Path) -> str:
    document = json.loads(notebook.read_text())
    texts = []
    for cell in document["cells"]:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            texts.append("".join(data.get("text/markdown", "")) + "".join(output.get("text", "")))
    return "\n".join(texts)


@pytest.mark.notebook
def test_notebook_on_the_default_company(run_notebook, synthetic_processed, tmp_path) -> None:
    run_dir = tmp_path / "run"
    executed = run_notebook(
        "05_product", tmp_path, processed_dir=str(synthetic_processed), run_dir=str(run_dir)
    )
    funnel = pd.read_csv(run_dir / "funnel.csv")
    assert list(funnel.columns) == list(FUNNEL_COLUMNS) and len(funnel) >= 3
    summary = json.loads((run_dir / "product_summary.json").read_text())
    text = _outputs_text(executed)
    assert summary["top_friction_in_words"] in text
    assert "associations, not causes" in text


@pytest.mark.notebook
def test_notebook_on_a_crm_only_company(run_notebook, tmp_path) -> None:
    write_company(tmp_path / "raw", n_users=300, seed=1, shape="no_events", show_progress=False)
    ingest(tmp_path / "processed", raw_dir=tmp_path / "raw", show_progress=False)
    run_dir = tmp_path / "run"
    executed = run_notebook(
        "05_product", tmp_path, processed_dir=str(tmp_path / "processed"), run_dir=str(run_dir)
    )
    assert pd.read_csv(run_dir / "funnel.csv").empty
    assert "Not computed: product" in _outputs_text(executed)


@pytest.mark.notebook
def test_insightos_run_runs_05_product_and_leaves_its_files(pipeline_run: Path) -> None:
    funnel = pd.read_csv(pipeline_run / "funnel.csv")
    assert list(funnel.columns) == list(FUNNEL_COLUMNS) and len(funnel) >= 3
    summary = json.loads((pipeline_run / "product_summary.json").read_text())
    assert summary["state"] == "ok" and summary["top_friction"]["event_name"] in set(
        funnel["event_name"]
    )
    stages = json.loads((pipeline_run / "stages.json").read_text())
    assert stages["product"]["state"] == "ok"
    assert (pipeline_run / "05_product.html").is_file()
