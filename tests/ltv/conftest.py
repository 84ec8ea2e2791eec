"""CDNOW fixtures shared by the LTV tests: the sample as a contract file, its summary, the
paper's run through `insightos ltv`, and lifetimes' own fits as the reference."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from insightos_utils import cli
from insightos_utils.ltv.rfm import rfm_summary
from insightos_utils.ltv.transactions import read_transactions

from .data import BetaGeoFitter, GammaGammaFitter, cdnow_contract_transactions


@pytest.fixture(scope="session")
def cdnow_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cdnow") / "transactions.csv"
    cdnow_contract_transactions().to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def defaults_toml(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty configuration file: every setting at its default, whatever the working folder."""
    path = tmp_path_factory.mktemp("config") / "insightos.toml"
    path.write_text("")
    return path


@pytest.fixture(scope="session")
def cdnow_run(
    cdnow_csv: Path, defaults_toml: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    out = tmp_path_factory.mktemp("cdnow_out")
    argv = ["ltv", "--transactions", str(cdnow_csv), "--calibration-end", "1997-09-30"]
    argv += ["--observation-end", "1998-06-30", "--time-unit", "W", "--out", str(out)]
    argv += ["--model", "bgnbd"]  # the paper's BG/NBD run (auto picks Pareto/NBD on CDNOW)
    assert cli.main([*argv, "--config", str(defaults_toml), "--no-progress"]) == 0
    return out


@pytest.fixture(scope="session")
def cdnow_summary(cdnow_csv: Path) -> pd.DataFrame:
    transactions = read_transactions(cdnow_csv)
    return rfm_summary(transactions, "1997-09-30T23:59:59", "1998-06-30T23:59:59", "W")


@pytest.fixture(scope="session")
def cdnow_lifetimes(cdnow_summary: pd.DataFrame) -> tuple[Any, Any]:
    """lifetimes' own fits on our summary: the reference for every prediction."""
    s = cdnow_summary
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bgf = BetaGeoFitter().fit(s["frequency"], s["recency"], s["T"])
        repeaters = s[s["frequency"] > 0]
        ggf = GammaGammaFitter().fit(repeaters["frequency"], repeaters["monetary_value"])
    return bgf, ggf
