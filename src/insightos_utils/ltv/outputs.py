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
from insightos_utils.ltv.economics import ReferenceRatio

PARAMS_FILE = "ltv_params.json"
CUSTOMER_LTV_FILE = "customer_ltv.csv"
CAMPAIGN_LTV_FILE = "campaign_ltv.csv"


def write_ltv_outputs(
    out_dir: str | Path,
    analysis: LtvAnalysis,
    campaign_table: pd.DataFrame | None = None,
    ratio: ReferenceRatio | None = None,
    recommendation: str | None = None,
) -> list[Path]:
    """Write ltv_params.json, customer_ltv.csv (and campaign_ltv.csv) into ``out_dir``.

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
    atomic_write_many({out_dir / name: write for name, write in writers.items()})
    return [out_dir / name for name in writers]
