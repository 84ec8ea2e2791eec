"""04_ltv executed headlessly on a small processed company: outputs, charts, conclusion."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from .data import write_processed_company


@pytest.mark.notebook
def test_04_ltv_notebook_runs_headlessly(tmp_path: Path, run_notebook: Callable[..., Path]) -> None:
    processed = tmp_path / "processed"
    write_processed_company(processed)
    run_dir = tmp_path / "run"
    executed = run_notebook(
        "04_ltv",
        run_dir,
        processed_dir=str(processed),
        run_dir=str(run_dir),
        bootstrap_samples=300,
    )
    params = json.loads((run_dir / "ltv_params.json").read_text())
    assert params["refit"] is True and params["holdout"]["customers"] > 0
    assert params["reference_ratio"]["ci_low"] < params["reference_ratio"]["ratio"]
    assert params["recommendation"].startswith("Put the next dollar into")
    campaigns = pd.read_csv(run_dir / "campaign_ltv.csv")
    assert "google_gestao_agil" in set(campaigns["campaign"])
    assert np.isfinite(campaigns["ltv_to_cac"]).any()
    customers = pd.read_csv(run_dir / "customer_ltv.csv")
    assert campaigns["customers"].sum() == len(customers)
    text = executed.read_text()
    assert text.count("image/png") >= 4  # holdout, independence, LTV and LTV/CAC charts
    assert "where to put the next dollar" in text.lower()


@pytest.mark.extended  # `make test-slow`: the corpus' no_transactions run covers it
@pytest.mark.notebook
def test_04_ltv_without_transactions_says_what_is_missing_and_finishes(
    tmp_path: Path, run_notebook: Callable[..., Path]
) -> None:
    processed = tmp_path / "processed"
    write_processed_company(processed, with_spend=False)
    (processed / "transactions.parquet").unlink()
    run_dir = tmp_path / "run"
    executed = run_notebook("04_ltv", run_dir, processed_dir=str(processed), run_dir=str(run_dir))
    text = executed.read_text()
    assert "Not computed: ltv." in text and "What would fix it:" in text
    assert json.loads((run_dir / "ltv_params.json").read_text())["state"] == "skipped"
    assert pd.read_csv(run_dir / "campaign_ltv.csv").empty


@pytest.mark.extended  # `make test-slow`: the corpus' no_campaign_spend shape
@pytest.mark.notebook
def test_04_ltv_without_spend_values_customers_and_names_what_is_not_computed(
    tmp_path: Path, run_notebook: Callable[..., Path]
) -> None:
    processed = tmp_path / "processed"
    write_processed_company(processed, with_spend=False)
    run_dir = tmp_path / "run"
    executed = run_notebook(
        "04_ltv", run_dir, processed_dir=str(processed), run_dir=str(run_dir), bootstrap_samples=200
    )
    text = executed.read_text()
    assert "Not computed: CAC, LTV/CAC and payback." in text
    assert (run_dir / "new_customer_value.csv").is_file() and "image/png" in text


@pytest.mark.notebook
def test_04_ltv_shows_the_model_choice_and_subscription_retention(
    tmp_path: Path, run_notebook: Callable[..., Path]
) -> None:
    processed = tmp_path / "processed"
    write_processed_company(processed, subscription=True)
    run_dir = tmp_path / "run"
    executed = run_notebook(
        "04_ltv",
        run_dir,
        processed_dir=str(processed),
        run_dir=str(run_dir),
        bootstrap_samples=100,
        business="subscription",
    )
    params = json.loads((run_dir / "ltv_params.json").read_text())
    assert params["valued_with"] == "sbg" and params["business"]["requested"] == "subscription"
    text = executed.read_text()
    assert "**Purchase model:" in text and "**subscription**:" in text
    assert text.count("image/png") >= 4  # holdout, independence, LTV and retention charts
    assert [row["model"] for row in params["models_compared"]] == ["bgnbd", "paretonbd"]
