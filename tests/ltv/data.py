"""Data shared by the LTV tests: the CDNOW sample in the contract, the paper's figures, small
worlds with known parameters, and constructed tables whose numbers can be worked out by hand."""

from __future__ import annotations

import functools
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from insightos_utils.contract import NO_CAMPAIGN
from insightos_utils.ltv.models.bgnbd import BgNbdParams
from insightos_utils.ltv.models.gamma_gamma import GammaGammaParams
from insightos_utils.ltv.simulate import simulate_subscription, simulate_transactions
from insightos_utils.ltv.transactions import check_transactions
from insightos_utils.ltv.value import margin_column

with warnings.catch_warnings():  # lifetimes changes the process's warning filters on import
    warnings.simplefilter("ignore")
    import lifetimes
    from lifetimes import BetaGeoFitter, GammaGammaFitter
    from lifetimes.utils import calibration_and_holdout_data, summary_data_from_transaction_data

__all__ = [
    "BetaGeoFitter",
    "GammaGammaFitter",
    "calibration_and_holdout_data",
    "summary_data_from_transaction_data",
]

# Read straight from the installed package: lifetimes.datasets imports pkg_resources.
CDNOW_SAMPLE = Path(lifetimes.__file__).parent / "datasets" / "CDNOW_sample.txt"

# Fader, Hardie and Lee (2005): BG/NBD ("Counting your customers the easy way") and
# Gamma-Gamma ("RFM and CLV") on the CDNOW sample, calibration 1997-01-01..1997-09-30, weeks.
PAPER_BGNBD = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
PAPER_GAMMA_GAMMA = {"p": 6.25, "q": 3.74, "v": 15.44}
PAPER_LOG_LIKELIHOOD = -9582.4

WORLD_BGNBD = BgNbdParams(r=0.243, alpha=4.414, a=0.793, b=2.426)
WORLD_GAMMA_GAMMA = GammaGammaParams(p=6.25, q=3.74, v=15.44)


def cdnow_contract_transactions() -> pd.DataFrame:
    """The raw CDNOW sample (customer id, id, YYYYMMDD, quantity, amount) in the contract.

    The contract requires amount > 0; the sample's 8 orders of $0.00 are each the only order of
    a one-time buyer, so their value never enters a model (first purchases are excluded from
    the monetary value): they are recorded as $0.01 to keep those 8 customers, as the paper does.
    """
    raw = pd.read_csv(
        CDNOW_SAMPLE,
        sep=r"\s+",
        header=None,
        names=["customer", "id", "date", "quantity", "amount"],
        dtype={"customer": str, "id": str, "date": str},
    )
    return pd.DataFrame(
        {
            "transaction_id": [f"cdnow-{i}" for i in range(len(raw))],
            "user_id": raw["id"],
            "occurred_at": pd.to_datetime(raw["date"], format="%Y%m%d").dt.strftime("%Y-%m-%d"),
            "amount": raw["amount"].clip(lower=0.01),
        }
    )


def messy_transactions(seed: int = 3, customers: int = 150) -> pd.DataFrame:
    """Transactions with times of day, several per day, and customers new in the holdout."""
    rng = np.random.default_rng(seed)
    rows = []
    for c in range(customers):
        start = pd.Timestamp("2024-01-01") + pd.Timedelta(days=int(rng.integers(0, 200)))
        n = int(rng.integers(1, 12))
        offsets = np.sort(rng.integers(0, 400, n))
        for k, day in enumerate(offsets):
            for _ in range(int(rng.integers(1, 3))):  # sometimes two orders on one day
                stamp = start + pd.Timedelta(days=int(day), seconds=int(rng.integers(0, 86_400)))
                rows.append((f"u{c:03d}", stamp, round(float(rng.gamma(2.0, 15.0)) + 0.01, 2), k))
    table = pd.DataFrame(rows, columns=["user_id", "occurred_at", "amount", "k"])
    table["transaction_id"] = [f"t{i}" for i in range(len(table))]
    return table.sample(frac=1.0, random_state=seed).reset_index(drop=True)  # unsorted input


def constructed_customers() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """customer_ltv, users and spend where every number can be worked out by hand."""
    rng = np.random.default_rng(1)
    n_ref, n_other = 300, 900
    ref_ltv = rng.gamma(4.0, 20.0, n_ref)  # mean about 80
    other_ltv = rng.gamma(4.0, 10.0, n_other)  # mean about 40
    values = np.r_[ref_ltv, other_ltv, [55.0]]
    ids = [f"u{i}" for i in range(len(values))]
    customer_ltv = pd.DataFrame({"user_id": ids, "ltv": values})
    for month in range(1, 13):  # a flat monthly margin of ltv / 12
        customer_ltv[margin_column(month)] = values / 12
    campaigns = ["google_gestao_agil"] * n_ref + ["meta_broad"] * 600 + [NO_CAMPAIGN] * 300
    users = pd.DataFrame({"user_id": ids[:-1], "campaign": campaigns})  # last one: unknown user
    spend = pd.DataFrame(
        {
            "campaign": ["google_gestao_agil", "meta_broad", "dead_campaign"],
            "spend": [6000, 30000, 500],
        }
    )
    return customer_ltv, users, spend


def write_processed_company(
    processed_dir: Path,
    *,
    with_spend: bool = True,
    worlds: dict[str, tuple[int, BgNbdParams, GammaGammaParams]] | None = None,
    subscription: bool = False,
) -> None:
    """A small processed folder (ingest's tables) where google_gestao_agil customers buy more
    often than the others: a fast stand-in for the synthetic company in notebook tests.
    ``subscription``: every campaign's customers are subscribers (``simulate_subscription``)."""
    worlds = worlds or {
        "google_gestao_agil": (600, BgNbdParams(0.5, 4.0, 0.8, 3.0), WORLD_GAMMA_GAMMA),
        "meta_broad": (900, WORLD_BGNBD, WORLD_GAMMA_GAMMA),
        NO_CAMPAIGN: (700, WORLD_BGNBD, GammaGammaParams(6.25, 3.74, 20.0)),
    }
    transactions, users = [], []
    for k, (campaign, (n, bgnbd, gamma_gamma)) in enumerate(worlds.items()):
        if subscription:
            table = simulate_subscription(
                n, "2025-01-01", 365, "2026-06-30", seed=k, id_prefix=f"{k}-"
            )
        else:
            table = simulate_transactions(
                n, bgnbd, gamma_gamma, "2025-01-01", 120, "2026-06-30", seed=k, id_prefix=f"{k}-"
            )
        transactions.append(table)
        first = table.groupby("user_id")["occurred_at"].min()
        users.append(
            pd.DataFrame(
                {
                    "user_id": first.index,
                    "created_at": first.to_numpy() - np.timedelta64(3, "D"),
                    "status": "converted",
                    "converted_at": first.to_numpy(),
                    "marketing": "",
                    "campaign": campaign,
                    "source": "(none)",
                    "medium": "(none)",
                }
            )
        )
    all_users = pd.concat(users, ignore_index=True)
    processed_dir.mkdir(parents=True, exist_ok=True)
    pd.concat(transactions, ignore_index=True).to_parquet(processed_dir / "transactions.parquet")
    all_users.to_parquet(processed_dir / "users.parquet")
    pd.DataFrame(
        {
            "event_id": "e-" + all_users["user_id"],
            "user_id": all_users["user_id"],
            "event_name": "signup",
            "occurred_at": all_users["created_at"],
            "properties": "",
        }
    ).to_parquet(processed_dir / "events.parquet")
    if with_spend:
        pd.DataFrame(
            {"campaign": ["google_gestao_agil", "meta_broad"], "spend": [18000.0, 36000.0]}
        ).to_parquet(processed_dir / "campaign_spend.parquet")


# --- real data: the UCI Online Retail log beside the repository ----------------------------------

REAL_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real"
UCI_LOG = REAL_DATA / "uci_online_retail" / "online_retail.csv.gz"


def uci_transactions() -> pd.DataFrame:
    """The UCI log as contract transactions (read once per session; do not modify it)."""
    import pytest

    if not UCI_LOG.is_file():
        pytest.skip(f"real data not here: {UCI_LOG} is absent (a clone has no ../shared)")
    return _uci_transactions()


@functools.cache
def _uci_transactions() -> pd.DataFrame:
    """The UCI Online Retail log as contract transactions, built as its README says: one row per
    invoice with a customer, amount = sum of Quantity x UnitPrice, cancellations ('C...') and
    non-positive totals left out (18,532 transactions, 4,338 customers)."""
    raw = pd.read_csv(UCI_LOG, dtype={"InvoiceNo": str, "StockCode": str, "CustomerID": str})
    raw = raw[raw["CustomerID"].notna() & ~raw["InvoiceNo"].str.startswith("C")]
    raw = raw.assign(line=raw["Quantity"] * raw["UnitPrice"])
    invoices = raw.groupby("InvoiceNo", as_index=False).agg(
        user_id=("CustomerID", "first"),
        occurred_at=("InvoiceDate", "first"),
        amount=("line", "sum"),
    )
    invoices = invoices[invoices["amount"] > 0]
    table = pd.DataFrame(
        {
            "transaction_id": invoices["InvoiceNo"],
            "user_id": invoices["user_id"].str.replace(r"\.0$", "", regex=True),
            "occurred_at": invoices["occurred_at"],
            "amount": invoices["amount"],
        }
    )
    return check_transactions(table, source=str(UCI_LOG))


def lifetimes_fit(kind: str, summary: pd.DataFrame) -> dict[str, float] | None:
    """lifetimes' own per-customer fit (``bgnbd`` or ``gamma_gamma``): its parameters, or None
    where it does not converge (it raises ConvergenceError)."""
    from lifetimes.utils import ConvergenceError

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            if kind == "bgnbd":
                fitter = BetaGeoFitter().fit(summary["frequency"], summary["recency"], summary["T"])
            else:
                repeaters = summary[summary["frequency"] > 0]
                fitter = GammaGammaFitter().fit(repeaters["frequency"], repeaters["monetary_value"])
        except ConvergenceError:
            return None
    return {str(k): float(v) for k, v in fitter.params_.items()}
