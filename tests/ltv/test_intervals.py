"""The refit bootstrap: replicates are weighted resamples valued by refitted models, campaign
intervals use them (and keep the sampling-only interval beside); their coverage on simulated
worlds is measured in test_coverage.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from insightos_utils.config import LtvConfig, PipelineConfig
from insightos_utils.ingest import read_processed
from insightos_utils.ltv.economics import (
    campaign_ltv,
    reference_ratio,
)
from insightos_utils.ltv.intervals import DistinctRows, refit_bootstrap
from insightos_utils.ltv.models.bgnbd import BgNbd
from insightos_utils.ltv.models.gamma_gamma import GammaGamma
from insightos_utils.ltv.models.paretonbd import ParetoNbd
from insightos_utils.ltv.rfm import rfm_summary
from insightos_utils.ltv.simulate import simulate_transactions
from insightos_utils.ltv.stage import run_ltv_stage
from insightos_utils.ltv.value import customer_ltv

from .data import WORLD_BGNBD, WORLD_GAMMA_GAMMA, write_processed_company

SETTINGS = LtvConfig(model="bgnbd", bootstrap_samples=500)


def _world(customers: int, seed: int) -> pd.DataFrame:
    table = simulate_transactions(
        customers, WORLD_BGNBD, WORLD_GAMMA_GAMMA, "2024-01-01", 84, "2025-06-30", seed=seed
    )
    return rfm_summary(table, "2025-06-30", None, "W")


def test_refit_draws_value_resamples_with_refitted_models() -> None:
    summary = _world(600, 1)
    draws = refit_bootstrap(summary, SETTINGS, "bgnbd", seed=3, samples=25)
    assert draws.samples == 25 and draws.failed == 0
    # each replicate's models are kept, and value its customers as customer_ltv does
    assert len(draws.models) == 25
    purchases, spend = draws.models[3]
    np.testing.assert_allclose(
        customer_ltv(summary, purchases, spend, SETTINGS)["ltv"], draws.ltv[3], rtol=1e-10
    )
    assert (draws.weights.sum(axis=1) > 500).all()
    everyone = np.ones(len(summary), dtype=bool)
    means = draws.group_means(everyone)
    manual = (draws.weights[0] @ draws.ltv[0]) / draws.weights[0].sum()
    assert means[0] == pytest.approx(manual)
    # replicates differ from one another: the models were refitted
    assert np.std(draws.ltv[:, 0]) > 0
    point = customer_ltv(summary, BgNbd().fit(summary), GammaGamma().fit(summary), SETTINGS)
    low, high = draws.customer_interval()
    inside = (low <= point["ltv"].to_numpy() + 1e-9) & (point["ltv"].to_numpy() <= high + 1e-9)
    assert inside.mean() > 0.7


@pytest.mark.parametrize("model", ["bgnbd", "paretonbd"])
def test_a_refit_on_distinct_rows_equals_the_fit_of_the_materialised_resample(model: str) -> None:
    """One replicate: customer weights summed onto the distinct rows and fitted there give the
    models (and customer values) of the resample built customer by customer."""
    summary = _world(400, 7)
    rows = DistinctRows.of(summary)
    assert len(rows.purchase_rows[0]) < len(summary)
    w = np.random.default_rng(5).poisson(1.0, len(summary)).astype(float)
    materialised = summary.iloc[np.repeat(np.arange(len(summary)), w.astype(int))]
    purchase_model = ParetoNbd() if model == "paretonbd" else BgNbd()
    purchases, spend = purchase_model.fit(materialised), GammaGamma().fit(materialised)
    expected = customer_ltv(summary, purchases, spend, SETTINGS)["ltv"].to_numpy()
    for warm in (None, (purchases, spend)):  # cold, and warm-started from other parameters
        start = (
            None if warm is None else (type(purchases)(purchases.params), GammaGamma(spend.params))
        )
        refit = rows.refit(w, SETTINGS, model, start)
        assert type(refit[0]) is type(purchases)
        assert refit[0].convergence.converged and refit[1].convergence.converged
        assert refit[0].fitted().n_customers == len(materialised)
        got = np.array(list(refit[0].params_dict().values()))
        np.testing.assert_allclose(got, list(purchases.params_dict().values()), rtol=1e-3)
        np.testing.assert_allclose(
            list(refit[1].params_dict().values()), list(spend.params_dict().values()), rtol=1e-3
        )
        assert refit[0].log_likelihood == pytest.approx(purchases.log_likelihood, abs=1e-4)
        np.testing.assert_allclose(rows.customer_values(refit, SETTINGS), expected, rtol=1e-4)


def test_campaign_table_reports_both_intervals() -> None:
    summary = _world(600, 2)
    point = customer_ltv(summary, BgNbd().fit(summary), GammaGamma().fit(summary), SETTINGS)
    ids = point["user_id"].to_numpy()
    users = pd.DataFrame(
        {"user_id": ids, "campaign": np.where(np.arange(len(ids)) % 6 == 0, "small", "big")}
    )
    users["campaign"] = users["campaign"].replace({"big": "google_gestao_agil"})
    draws = refit_bootstrap(summary, SETTINGS, "bgnbd", seed=4, samples=40)
    table = campaign_ltv(point, users, None, SETTINGS, refit=draws)
    assert set(table["interval_method"]) == {"refit"}
    assert (table["ltv_ci_low"] < table["ltv_mean"]).all()
    assert (table["ltv_ci_low_sampling"] < table["ltv_mean"]).all()
    sampling = campaign_ltv(point, users, None, SETTINGS)
    assert set(sampling["interval_method"]) == {"sampling"}
    ratio = reference_ratio(point, users, SETTINGS, refit=draws)
    assert ratio is not None and ratio.interval_method == "refit"
    assert ratio.ci_low < ratio.ratio < ratio.ci_high


def test_stage_writes_refit_intervals_beside_the_sampling_ones(tmp_path: Path) -> None:
    processed, out = tmp_path / "processed", tmp_path / "out"
    write_processed_company(processed)
    config = PipelineConfig().with_overrides(bootstrap_samples=300, refit_samples=60)
    assert not run_ltv_stage(out, read_processed(processed), config).skipped
    table = pd.read_csv(out / "campaign_ltv.csv")
    assert set(table["interval_method"]) == {"refit"}
    refit = table["ltv_ci_high"] - table["ltv_ci_low"]
    sampling = table["ltv_ci_high_sampling"] - table["ltv_ci_low_sampling"]
    assert (refit > sampling).mean() >= 0.5  # the parameters' uncertainty widens most
    customers = pd.read_csv(out / "customer_ltv.csv")
    assert (customers["ltv_low_80"] <= customers["ltv_high_80"]).all()
    assert (customers["ltv_param_low_80"] <= customers["ltv_param_high_80"]).all()
    params = json.loads((out / "ltv_params.json").read_text())
    assert "simulated from the fitted models" in params["intervals"]["customer_interval"]
    assert params["intervals"]["interval_method"] == "refit"
    assert params["intervals"]["refit_samples"] + params["intervals"]["refit_failed"] == 60
    values = pd.read_csv(out / "new_customer_value.csv")
    assert values.loc[values["campaign"] == "(all)", "interval_method"].item() == "refit"
    # every campaign with its own fit is refitted on resamples of its own customers
    own = values[~values["fallback"]]
    assert len(own) > 1 and set(own["interval_method"]) == {"refit"}


def test_payback_interval_from_the_campaigns_refitted_monthly_margins() -> None:
    summary = _world(600, 5)
    point = customer_ltv(summary, BgNbd().fit(summary), GammaGamma().fit(summary), SETTINGS)
    ids = point["user_id"].to_numpy()
    users = pd.DataFrame(
        {"user_id": ids, "campaign": np.where(np.arange(len(ids)) % 4 == 0, "small", "big")}
    )
    campaigns = pd.Series(users["campaign"].to_numpy(), index=summary.index)
    draws = refit_bootstrap(summary, SETTINGS, "bgnbd", seed=6, samples=30, groups=campaigns)
    # one replicate's payback curve is the weighted mean of its customers' monthly margins
    b = int(np.flatnonzero(np.isfinite(draws.ltv[:, 0]))[0])
    purchases, spend = draws.models[0]
    table = customer_ltv(summary, purchases, spend, SETTINGS)
    margins = table[[c for c in table.columns if c.startswith("margin_month_")]].to_numpy()
    small = (users["campaign"] == "small").to_numpy()
    w = draws.weights[b] * small
    expected = (w @ margins) / w.sum()
    got = draws.group_margins("small")
    assert got is not None and got.shape == (30, SETTINGS.horizon_months)
    np.testing.assert_allclose(got[b], expected, rtol=1e-9)
    assert draws.group_margins("nobody") is None
    # a spend that pays back inside the horizon: the interval brackets the point payback
    cumulative = point.loc[small, [c for c in point.columns if c.startswith("margin_")]]
    target_cac = float(cumulative.mean().cumsum().iloc[5])
    spend_table = pd.DataFrame(
        {"campaign": ["small"], "date": ["2025-01-01"], "spend": [target_cac * small.sum()]}
    )
    row = campaign_ltv(point, users, spend_table, SETTINGS, refit=draws).set_index("campaign")
    low, mid, high = row.loc["small", ["payback_ci_low", "payback_months", "payback_ci_high"]]
    assert low < mid < high and 5 <= mid <= 7
    assert np.isnan(row.loc["big", "payback_ci_low"])  # no spend, no CAC, no payback
