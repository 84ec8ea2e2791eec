"""Writing what LTV produced: ltv_params.json, customer_ltv.csv and campaign_ltv.csv.

All files are first written under temporary names, then renamed: a failure leaves no
half-written output under a final name.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from insightos_utils.io_utils import atomic_write_many, json_text
from insightos_utils.ltv.analysis import LtvAnalysis
from insightos_utils.ltv.economics import CAMPAIGN_LTV_COLUMNS, ReferenceRatio
from insightos_utils.ltv.new_customers import NEW_CUSTOMER_VALUE_COLUMNS, NEW_CUSTOMER_VALUE_FILE
from insightos_utils.ltv.value import CUSTOMER_LTV_COLUMNS

PARAMS_FILE = "ltv_params.json"
CUSTOMER_LTV_FILE = "customer_ltv.csv"
CAMPAIGN_LTV_FILE = "campaign_ltv.csv"
MODELS_FOLDER = "models"  # a score-only run reads new_customer_value.csv from here


def write_ltv_outputs(
    out_dir: str | Path,
    analysis: LtvAnalysis,
    campaign_table: pd.DataFrame | None = None,
    ratio: ReferenceRatio | None = None,
    recommendation: str | None = None,
    new_customer_value: pd.DataFrame | None = None,
) -> list[Path]:
    """Write ltv_params.json, customer_ltv.csv (and campaign_ltv.csv, new_customer_value.csv,
    the latter also into ``out_dir/models/``) into ``out_dir``.

    The reference ratio and the recommendation, when a campaign table is given, are recorded in
    ltv_params.json.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    params = dict(analysis.params)
    if campaign_table is not None:
        params["reference_ratio"] = ratio.as_dict() if ratio is not None else None
        params["recommendation"] = recommendation
    text = json_text(params)
    writers: dict[str, Callable[[Path], object]] = {
        PARAMS_FILE: lambda p: p.write_text(text, encoding="utf-8"),
        CUSTOMER_LTV_FILE: lambda p: analysis.customer_ltv.to_csv(p, index=False),
    }
    if campaign_table is not None:
        writers[CAMPAIGN_LTV_FILE] = lambda p: campaign_table.to_csv(p, index=False)
    if new_customer_value is not None:
        writers[NEW_CUSTOMER_VALUE_FILE] = lambda p: new_customer_value.to_csv(p, index=False)
        writers[f"{MODELS_FOLDER}/{NEW_CUSTOMER_VALUE_FILE}"] = writers[NEW_CUSTOMER_VALUE_FILE]
        (out_dir / MODELS_FOLDER).mkdir(exist_ok=True)
    atomic_write_many({out_dir / name: write for name, write in writers.items()})
    return [out_dir / name for name in writers]


def write_skipped_outputs(out_dir: str | Path, reason: str, fix: str | None) -> list[Path]:
    """A skipped LTV stage's files, so a run folder is always complete: ltv_params.json with
    ``state`` skipped, the reason and the fix; the CSV files with their contract columns only."""
    out_dir = Path(out_dir)
    (out_dir / MODELS_FOLDER).mkdir(parents=True, exist_ok=True)
    text = json_text({"state": "skipped", "reason": reason, "fix": fix})
    header = {
        CUSTOMER_LTV_FILE: CUSTOMER_LTV_COLUMNS,
        CAMPAIGN_LTV_FILE: CAMPAIGN_LTV_COLUMNS,
        NEW_CUSTOMER_VALUE_FILE: NEW_CUSTOMER_VALUE_COLUMNS,
        f"{MODELS_FOLDER}/{NEW_CUSTOMER_VALUE_FILE}": NEW_CUSTOMER_VALUE_COLUMNS,
    }
    writers: dict[str, Callable[[Path], object]] = {
        PARAMS_FILE: lambda p: p.write_text(text, encoding="utf-8")
    }
    for name, columns in header.items():
        writers[name] = _header_writer(columns)
    atomic_write_many({out_dir / name: write for name, write in writers.items()})
    return [out_dir / name for name in writers]


def _header_writer(columns: list[str]) -> Callable[[Path], object]:
    return lambda path: pd.DataFrame(columns=columns).to_csv(path, index=False)
