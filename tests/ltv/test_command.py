"""`insightos ltv`: the CDNOW paper through the command line, the LTV it writes against
lifetimes, campaign outputs, and settings read from the configuration file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from insightos_utils import cli
from insightos_utils.ltv.simulate import simulate_subscription
from insightos_utils.ltv.transactions import calibration_end_for, read_transactions
from insightos_utils.ltv.value import CUSTOMER_LTV_COLUMNS

from .data import (
    PAPER_BGNBD,
    PAPER_GAMMA_GAMMA,
    PAPER_LOG_LIKELIHOOD,
    cdnow_contract_transactions,
    uci_transactions,
)
from .lifetimes_reference import lifetimes_clv


def test_cdnow_reproduces_fader_hardie_lee(cdnow_run: Path) -> None:
    params = json.loads((cdnow_run / "ltv_params.json").read_text())
    for name, published in PAPER_BGNBD.items():
        assert params["bgnbd"][name] == pytest.approx(published, rel=0.01), name
    for name, published in PAPER_GAMMA_GAMMA.items():
        assert params["gamma_gamma"][name] == pytest.approx(published, rel=0.01), name
    assert params["n_customers"] == 2357 and params["n_repeat_customers"] == 946
    assert params["bgnbd_log_likelihood"] == pytest.approx(PAPER_LOG_LIKELIHOOD, abs=0.05)
    assert params["time_unit"] == "W"
    assert params["frequency_monetary_correlation"] == pytest.approx(0.11, abs=0.01)
    assert params["independence_ok"] is True

    customers = pd.read_csv(cdnow_run / "customer_ltv.csv", dtype={"user_id": str})
    assert list(customers.columns[:8]) == CUSTOMER_LTV_COLUMNS
    assert len(customers) == 2357 and customers["user_id"].is_unique
    assert np.isfinite(customers[["prob_alive", "expected_purchases", "ltv"]]).all().all()
    assert customers["ltv"].mean() == pytest.approx(params["mean_ltv"])
    assert not list(cdnow_run.glob(".*tmp"))  # atomic writes leave no temporary files


def test_command_records_refit_intervals_by_default(cdnow_run: Path) -> None:
    """``[ltv] interval_method`` defaults to refit: the command refits both models on customer
    resamples and records the mean LTV's interval both ways; its two files stay the contract's."""
    params = json.loads((cdnow_run / "ltv_params.json").read_text())
    intervals = params["intervals"]
    assert intervals["interval_method"] == "refit"
    assert intervals["refit_samples"] + intervals["refit_failed"] == 200
    assert intervals["refit_samples"] >= 190
    mean = intervals["mean_ltv"]
    assert mean["mean"] == pytest.approx(params["mean_ltv"])
    (refit_low, refit_high), (low, high) = mean["refit"], mean["sampling"]
    assert refit_low < params["mean_ltv"] < refit_high and low < params["mean_ltv"] < high
    assert refit_high - refit_low > high - low  # the parameters' uncertainty widens it
    assert sorted(p.name for p in cdnow_run.iterdir()) == ["customer_ltv.csv", "ltv_params.json"]


def test_written_ltv_equals_lifetimes_customer_lifetime_value(cdnow_run: Path) -> None:
    """The LTV the command writes, against lifetimes on the written parameters, with lifetimes'
    month made ours (30.4375 days) by rescaling its clock."""
    params = json.loads((cdnow_run / "ltv_params.json").read_text())
    customers = pd.read_csv(cdnow_run / "customer_ltv.csv", dtype={"user_id": str})
    theirs = lifetimes_clv(
        params["bgnbd"],
        params["gamma_gamma"],
        customers,
        params["time_unit"],
        params["horizon_months"],
        params["monthly_discount_rate"],
    )
    np.testing.assert_allclose(customers["ltv"], theirs * params["gross_margin"], rtol=1e-6)


def test_cli_writes_campaign_ltv(cdnow_csv: Path, defaults_toml: Path, tmp_path: Path) -> None:
    ids = cdnow_contract_transactions()["user_id"].unique()
    campaigns = np.where(np.arange(len(ids)) % 3 == 0, "google_gestao_agil", "meta_broad")
    marketing = [json.dumps({"utm_campaign": c}) for c in campaigns]
    pd.DataFrame({"user_id": ids, "marketing": marketing}).to_csv(
        tmp_path / "users.csv", index=False
    )
    pd.DataFrame({"campaign": ["google_gestao_agil", "meta_broad"], "spend": [10000, 5000]}).to_csv(
        tmp_path / "spend.csv", index=False
    )
    out = tmp_path / "out"
    argv = ["ltv", "--transactions", str(cdnow_csv), "--calibration-end", "1997-09-30"]
    argv += ["--observation-end", "1998-06-30", "--refit", "--out", str(out)]
    argv += ["--users", str(tmp_path / "users.csv")]
    argv += ["--campaign-spend", str(tmp_path / "spend.csv"), "--config", str(defaults_toml)]
    argv += ["--refit-samples", "30"]
    assert cli.main([*argv, "--bootstrap-samples", "200", "--no-progress"]) == 0
    table = pd.read_csv(out / "campaign_ltv.csv")
    assert set(table["interval_method"]) == {"refit"}
    assert set(table["campaign"]) == {"google_gestao_agil", "meta_broad"}
    assert table["customers"].sum() == 2357
    assert (table["ltv_ci_low"] <= table["ltv_mean"]).all()
    params = json.loads((out / "ltv_params.json").read_text())
    assert params["refit"] is True and params["fitted_through"].startswith("1998-06-30")
    assert params["reference_ratio"]["bootstrap_samples"] == 200
    assert params["reference_ratio"]["interval_method"] == "refit"
    assert params["intervals"]["refit_samples"] + params["intervals"]["refit_failed"] == 30
    # the refit on 18 months differs from the 39-week calibration fit kept under "validation"
    assert params["validation"]["bgnbd"]["r"] == pytest.approx(PAPER_BGNBD["r"], rel=0.01)
    assert params["bgnbd"]["r"] != params["validation"]["bgnbd"]["r"]


def test_cli_reads_the_configuration_and_flags_override_it(
    cdnow_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "settings.toml"
    config.write_text(
        '[ltv]\ntime_unit = "D"\nhorizon_months = 6\nmonthly_discount_rate = 0.02\n'
        'interval_method = "sampling"\n'
    )
    argv = ["ltv", "--transactions", str(cdnow_csv), "--calibration-end", "1997-09-30"]
    argv += ["--config", str(config), "--no-progress"]
    assert cli.main([*argv, "--out", str(tmp_path / "a")]) == 0
    params = json.loads((tmp_path / "a" / "ltv_params.json").read_text())
    assert (params["time_unit"], params["horizon_months"]) == ("D", 6)
    assert params["monthly_discount_rate"] == 0.02
    assert params["intervals"]["interval_method"] == "sampling"
    assert params["intervals"]["refit_samples"] == 0
    assert cli.main([*argv, "--out", str(tmp_path / "b"), "--horizon-months", "3"]) == 0
    params = json.loads((tmp_path / "b" / "ltv_params.json").read_text())
    assert (params["time_unit"], params["horizon_months"]) == ("D", 3)

    config.write_text("[ltv]\nhorizon_month = 6\n")  # a typo: exit 2 naming file and key
    assert cli.main([*argv, "--out", str(tmp_path / "c")]) == 2
    error = capsys.readouterr().err
    assert str(config) in error and "'horizon_month'" in error and "[ltv]" in error


def test_synthetic_company_reference_ratio_close_to_original(
    synthetic_raw: Path, defaults_toml: Path, tmp_path: Path
) -> None:
    """The original study found google_gestao_agil customers worth about 2.3× the others.

    Runs `insightos ltv` on the default synthetic company's raw files, as the notebook does:
    holdout check on the last 90 days, refit on everything, campaigns from users' marketing.
    """
    as_of = read_transactions(synthetic_raw / "transactions.csv")["occurred_at"].max()
    out = tmp_path / "out"
    argv = ["ltv", "--transactions", str(synthetic_raw / "transactions.csv"), "--out", str(out)]
    argv += ["--calibration-end", calibration_end_for(as_of, 90).isoformat()]
    argv += ["--observation-end", as_of.isoformat(), "--refit"]
    argv += ["--users", str(synthetic_raw / "users.csv")]
    argv += ["--campaign-spend", str(synthetic_raw / "campaign_spend.csv")]
    argv += ["--interval-method", "sampling"]  # the ratio as the original study computed it
    assert cli.main([*argv, "--config", str(defaults_toml), "--no-progress"]) == 0
    ratio = json.loads((out / "ltv_params.json").read_text())["reference_ratio"]
    assert ratio["campaign"] == "google_gestao_agil" and ratio["bootstrap_samples"] == 2000
    assert ratio["ci_low"] < ratio["ratio"] < ratio["ci_high"]
    assert 1.8 <= ratio["ratio"] <= 2.9, ratio
    campaigns = pd.read_csv(out / "campaign_ltv.csv").set_index("campaign")
    assert campaigns["ltv_to_cac"].idxmax() == "google_gestao_agil"


@pytest.mark.parametrize("time_unit", ["D", "W", "M"])
def test_real_retailer_log_fits_in_every_time_unit(
    time_unit: str, defaults_toml: Path, tmp_path: Path
) -> None:
    """The UCI Online Retail year (4,338 customers): lifetimes stops with "precision loss" in D;
    the optimum is on the no-dropout ridge (PITFALLS: -37,358.8 in days at 2011-09-09)."""
    path = tmp_path / "transactions.parquet"
    uci_transactions().to_parquet(path)
    out = tmp_path / "out"
    argv = ["ltv", "--transactions", str(path), "--calibration-end", "2011-09-09"]
    argv += ["--observation-end", "2011-12-09", "--time-unit", time_unit, "--out", str(out)]
    argv += ["--interval-method", "sampling"]  # the fits are the point here
    assert cli.main([*argv, "--config", str(defaults_toml), "--no-progress"]) == 0
    params = json.loads((out / "ltv_params.json").read_text())
    assert params["n_customers"] == 3370 and params["time_unit"] == time_unit
    assert params["convergence"]["bgnbd"]["converged"] is True
    assert params["convergence"]["gamma_gamma"]["converged"] is True
    named = [(b["model"], b["parameter"]) for b in params["boundary"]]
    assert ("bgnbd", "a/(a+b)") in named, params["boundary"]
    assert params["bgnbd"]["a"] == 0.0 and params["bgnbd"]["b"] is None
    assert params["limits"]["bgnbd"]["r"] == pytest.approx(0.7236, rel=1e-3)
    if time_unit == "D":
        assert params["bgnbd_log_likelihood"] == pytest.approx(-37358.8, abs=0.05)
    if time_unit == "W":
        assert params["bgnbd"]["alpha"] == pytest.approx(9.37, rel=1e-3)
    customers = pd.read_csv(out / "customer_ltv.csv")
    assert np.isfinite(customers["ltv"]).all() and (customers["prob_alive"] == 1).all()
    assert abs(params["holdout"]["total_error_pct"]) < 50


def test_subscription_company_names_both_boundaries_and_values_customers(
    defaults_toml: Path, tmp_path: Path
) -> None:
    transactions = simulate_subscription(1500, seed=8)
    path = tmp_path / "transactions.csv"
    transactions.to_csv(path, index=False)
    out = tmp_path / "out"
    argv = ["ltv", "--transactions", str(path), "--calibration-end", "2025-03-31", "--refit"]
    argv += ["--observation-end", "2025-06-30", "--out", str(out), "--config", str(defaults_toml)]
    assert cli.main([*argv, "--interval-method", "sampling", "--no-progress"]) == 0
    params = json.loads((out / "ltv_params.json").read_text())
    named = {(b["model"], b["parameter"], b["limit"]) for b in params["boundary"]}
    assert named == {("bgnbd", "a/(a+b)", "0"), ("gamma_gamma", "q", "infinity")}
    assert (
        params["gamma_gamma"]["q"] is None and params["standard_errors"]["gamma_gamma"]["q"] is None
    )
    assert "homogeneous-spend" in params["standard_error_notes"]["gamma_gamma"]
    mean_value = params["limits"]["gamma_gamma"]["mean_value"]
    assert mean_value == pytest.approx(49.0, rel=0.02)  # everyone pays about $49
    customers = pd.read_csv(out / "customer_ltv.csv")
    # no dropout, one price: a subscriber's 12 months are worth about 12 x $49, discounted
    assert 0.8 * 12 * 49 < customers["ltv"].median() < 1.1 * 12 * 49
    nbd = params["limits"]["bgnbd"]
    month = 30.4375 / 7
    by_hand = sum(
        mean_value
        * (nbd["r"] + customers["frequency"])
        * month
        / (nbd["alpha"] + customers["T"])
        / 1.01**i
        for i in range(1, 13)
    )  # the NBD's expected purchases grow linearly: one month's worth each month
    np.testing.assert_allclose(customers["ltv"], by_hand, rtol=1e-9)


def test_convergence_in_ltv_params_is_measured_on_a_fit_that_does_not_converge(
    cdnow_csv: Path, defaults_toml: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from insightos_utils.ltv.models import base

    monkeypatch.setattr(base, "MAX_ITERATIONS", 3)  # the optimiser is stopped long before the end
    out = tmp_path / "out"
    argv = ["ltv", "--transactions", str(cdnow_csv), "--calibration-end", "1997-09-30"]
    assert (
        cli.main([*argv, "--out", str(out), "--config", str(defaults_toml), "--no-progress"]) == 0
    )
    params = json.loads((out / "ltv_params.json").read_text())
    for model in ("bgnbd", "gamma_gamma"):
        record = params["convergence"][model]
        assert record["converged"] is False, record
        assert record["iterations"] == 3 and record["gradient_norm"] > record["gradient_tolerance"]
        assert "limit 3" in record["reason"] and record["message"]
    assert any("did not converge" in note for note in params["notes"])
