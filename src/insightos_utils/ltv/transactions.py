"""Reading and checking the tables LTV needs: transactions, users' campaigns, campaign spend.

Bad input is an ``InputError`` (exit 2) naming the file, the column and the first offending rows.
Timestamps become timezone-naive UTC; a bare date given as a period end means the end of that day.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from insightos_utils.contract import NO_CAMPAIGN, parse_timestamp
from insightos_utils.errors import InputError
from insightos_utils.ingest.fastpath import marketing_fields, parse_numbers, parse_timestamps

TRANSACTION_COLUMNS = ("transaction_id", "user_id", "occurred_at", "amount")


def bad_rows_message(source: str, column: str, rule: str, bad: np.ndarray, csv: bool) -> str:
    """The message for rows breaking ``rule``: how many, and the first few by line (or row)."""
    rows = np.flatnonzero(bad)
    # CSV: line 1 is the header, so data row i sits on line i + 2; Parquet rows count from 1.
    numbers = ", ".join(str(i + 2 if csv else i + 1) for i in rows[:5])
    where = f"first at lines {numbers}" if csv else f"first at rows {numbers}"
    return (
        f"{source}: column '{column}' {rule}; {len(rows)} bad row(s), {where}. Fix or remove "
        "them (or run `insightos ingest`, which sets bad rows aside in rejected_transactions.csv)."
    )


def _naive_utc(values: pd.Series, source: str, column: str, csv: bool) -> pd.Series:
    """A timestamp column as timezone-naive UTC; unparseable values are an InputError."""
    parsed = parse_timestamps(values)
    bad = parsed.isna().to_numpy()
    if bad.any():
        rule = "must hold ISO 8601 timestamps"
        raise InputError(bad_rows_message(source, column, rule, bad, csv))
    return parsed


def check_transactions(
    transactions: pd.DataFrame, source: str = "transactions", csv: bool = False
) -> pd.DataFrame:
    """The contract's transactions table typed for LTV (user_id str, naive UTC time, float amount).

    Bad input is an ``InputError`` naming the column and the first offending rows: a missing
    column, an empty user_id, an unparseable timestamp, an amount that is not a number > 0, or a
    repeated transaction_id.
    """
    missing = [c for c in TRANSACTION_COLUMNS if c not in transactions.columns]
    if missing:
        raise InputError(
            f"{source}: missing column(s) {', '.join(missing)}; transactions need "
            f"{', '.join(TRANSACTION_COLUMNS)}"
        )
    typed = transactions.reset_index(drop=True).copy()
    user_id = typed["user_id"]
    empty = (user_id.isna() | (user_id.astype(str).str.strip() == "")).to_numpy()
    if empty.any():
        raise InputError(bad_rows_message(source, "user_id", "must not be empty", empty, csv))
    typed["user_id"] = user_id.astype(str)
    typed["occurred_at"] = _naive_utc(typed["occurred_at"], source, "occurred_at", csv)
    amount = parse_numbers(typed["amount"])
    bad_amount = ~(amount.to_numpy() > 0)  # NaN (empty or not a number) fails too
    if bad_amount.any():
        rule = "must be a number > 0"
        raise InputError(bad_rows_message(source, "amount", rule, bad_amount, csv))
    typed["amount"] = amount
    repeated = typed["transaction_id"].duplicated(keep="first").to_numpy()
    if repeated.any():
        rule = "must be unique (a transaction_id is repeated)"
        raise InputError(bad_rows_message(source, "transaction_id", rule, repeated, csv))
    return typed


def read_table(path: str | Path, dtype: dict[str, type] | type | None = str) -> pd.DataFrame:
    """A CSV or Parquet file as a DataFrame; a missing or unreadable file is an ``InputError``."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file not found")
    csv = path.suffix.lower() != ".parquet"
    try:
        if csv:
            return pd.read_csv(path, dtype=dtype, keep_default_na=dtype is not str)
        return pd.read_parquet(path)
    except Exception as error:  # unparseable file: name it and stop with exit 2
        kind = "CSV" if csv else "Parquet"
        raise InputError(f"{path}: cannot be read as {kind}: {error}") from error


def is_csv(path: str | Path) -> bool:
    return Path(path).suffix.lower() != ".parquet"


def read_transactions(path: str | Path) -> pd.DataFrame:
    """Read a contract transactions file (CSV or Parquet) and check it (``check_transactions``)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: transactions file not found")
    table = read_table(path, dtype={"transaction_id": str, "user_id": str})
    return check_transactions(table, source=str(path), csv=is_csv(path))


def read_users_campaigns(path: str | Path) -> pd.DataFrame:
    """user_id and campaign from a users file (processed ``campaign`` or raw ``marketing`` JSON)."""
    table = read_table(path)
    if "user_id" not in table.columns:
        raise InputError(f"{path}: missing column user_id")
    if "campaign" in table.columns:
        campaign = table["campaign"].replace("", NO_CAMPAIGN).fillna(NO_CAMPAIGN)
    elif "marketing" in table.columns:
        campaign = marketing_fields(table["marketing"])["campaign"]
    else:
        raise InputError(f"{path}: needs a 'campaign' or a 'marketing' column")
    return pd.DataFrame({"user_id": table["user_id"].astype(str), "campaign": campaign.astype(str)})


def read_campaign_spend(path: str | Path) -> pd.DataFrame:
    """campaign and spend (a number >= 0) from a campaign_spend file."""
    table = read_table(path)
    missing = [c for c in ("campaign", "spend") if c not in table.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)}")
    spend = parse_numbers(table["spend"])
    bad = ~(spend.to_numpy() >= 0)
    if bad.any():
        message = bad_rows_message(str(path), "spend", "must be a number >= 0", bad, is_csv(path))
        raise InputError(message)
    return pd.DataFrame({"campaign": table["campaign"].astype(str), "spend": spend})


def parse_period_end(value: str | pd.Timestamp) -> pd.Timestamp:
    """A period end from the command line: a bare date (YYYY-MM-DD) means the end of that day."""
    stamp = parse_timestamp(value)
    if isinstance(value, str) and len(value.strip()) == 10:
        stamp = stamp + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1)
    return stamp


def transactions_as_of(
    transactions: pd.DataFrame, as_of: str | pd.Timestamp = ""
) -> tuple[pd.DataFrame, pd.Timestamp]:
    """The transactions that exist at ``as_of`` ("" = the latest one) and the resolved as-of."""
    stamp = transactions["occurred_at"].max() if as_of in ("", None) else parse_timestamp(as_of)
    return transactions[transactions["occurred_at"] <= stamp], pd.Timestamp(stamp)


def calibration_end_for(as_of: pd.Timestamp, holdout_days: int) -> pd.Timestamp:
    """The calibration end that leaves the last ``holdout_days`` before as-of for the holdout."""
    if holdout_days < 0:
        raise InputError(f"holdout_days must be >= 0, got {holdout_days}")
    return as_of - pd.Timedelta(days=holdout_days)
