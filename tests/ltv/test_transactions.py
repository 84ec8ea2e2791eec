"""Reading and checking transactions: bad input names the column and the rows (exit 2)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from insightos_utils import cli
from insightos_utils.errors import InputError
from insightos_utils.ltv.transactions import (
    calibration_end_for,
    check_transactions,
    parse_period_end,
    read_campaign_spend,
)

from .data import messy_transactions


def _run_ltv(tmp_path: Path, table: pd.DataFrame, capsys: pytest.CaptureFixture[str]) -> str:
    path = tmp_path / "transactions.csv"
    table.to_csv(path, index=False)
    argv = ["ltv", "--transactions", str(path), "--calibration-end", "2024-09-30", "--out", "o"]
    assert cli.main([*argv, "--no-progress"]) == 2
    return capsys.readouterr().err


def test_cli_names_missing_column(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    table = messy_transactions(customers=5).drop(columns="amount")
    assert "missing column(s) amount" in _run_ltv(tmp_path, table, capsys)


def test_cli_names_bad_amount_rows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    table = messy_transactions(customers=5)
    table.loc[[2, 4], "amount"] = [0.0, -3.0]
    error = _run_ltv(tmp_path, table, capsys)
    assert "'amount' must be a number > 0" in error and "lines 4, 6" in error


def test_cli_names_bad_timestamp_rows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    table = messy_transactions(customers=5).astype({"occurred_at": str})
    table.loc[3, "occurred_at"] = "yesterday"
    error = _run_ltv(tmp_path, table, capsys)
    assert "'occurred_at' must hold ISO 8601" in error and "lines 5" in error


def test_repeated_transaction_and_empty_user_are_named() -> None:
    table = messy_transactions(customers=3)
    repeated = table.assign(transaction_id=["t0"] * len(table))
    with pytest.raises(InputError, match="transaction_id.*repeated.*rows 2, 3"):
        check_transactions(repeated)
    empty = table.copy()
    empty.loc[1, "user_id"] = " "
    with pytest.raises(InputError, match="'user_id' must not be empty; 1 bad row"):
        check_transactions(empty)


def test_campaign_spend_must_not_be_negative(tmp_path: Path) -> None:
    path = tmp_path / "spend.csv"
    pd.DataFrame({"campaign": ["a", "b"], "spend": [10, -1]}).to_csv(path, index=False)
    with pytest.raises(InputError, match="'spend' must be a number >= 0.*lines 3"):
        read_campaign_spend(path)


def test_parse_period_end_reads_bare_date_as_whole_day() -> None:
    assert parse_period_end("1997-09-30") == pd.Timestamp("1997-09-30 23:59:59.999999")
    assert parse_period_end("1997-09-30T12:00:00+02:00") == pd.Timestamp("1997-09-30 10:00")
    as_of = pd.Timestamp("2026-06-30 12:00")
    assert calibration_end_for(as_of, 90) == pd.Timestamp("2026-04-01 12:00")
    with pytest.raises(InputError, match="holdout_days"):
        calibration_end_for(as_of, -1)


def test_real_retailer_log_builds_as_its_readme_says() -> None:
    from .data import uci_transactions

    table = uci_transactions()
    assert len(table) == 18_532 and table["user_id"].nunique() == 4_338
    assert (table["amount"] > 0).all() and table["transaction_id"].is_unique
    assert table["occurred_at"].min() == pd.Timestamp("2010-12-01 08:26:00")
