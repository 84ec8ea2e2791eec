"""What `insightos run` publishes for LTV, checked against lifetimes: the per-customer LTV the
pipeline writes is lifetimes' customer_lifetime_value on the written parameters, with its month
made ours (30.4375 days); the measured convergence and the new-customer table are there."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from insightos_utils.ltv.new_customers import ALL_CAMPAIGNS

from .lifetimes_reference import lifetimes_clv


@pytest.mark.slow
def test_pipeline_ltv_equals_lifetimes_customer_lifetime_value(pipeline_run: Path) -> None:
    params = json.loads((pipeline_run / "ltv_params.json").read_text())
    assert params["state"] == "ok" and params["boundary"] == []
    customers = pd.read_csv(pipeline_run / "customer_ltv.csv", dtype={"user_id": str})
    theirs = lifetimes_clv(
        params["bgnbd"],
        params["gamma_gamma"],
        customers,
        params["time_unit"],
        params["horizon_months"],
        params["monthly_discount_rate"],
    )
    np.testing.assert_allclose(customers["ltv"], theirs * params["gross_margin"], rtol=1e-6)
    for model in ("bgnbd", "gamma_gamma"):
        record = params["convergence"][model]
        assert record["converged"] is True
        assert record["gradient_norm"] <= record["gradient_tolerance"]
    table = pd.read_csv(pipeline_run / "new_customer_value.csv")
    assert table.loc[0, "campaign"] == ALL_CAMPAIGNS and table.loc[0, "customers"] == len(customers)
    assert (pipeline_run / "models" / "new_customer_value.csv").is_file()
