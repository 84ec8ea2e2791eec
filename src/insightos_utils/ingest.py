"""Ingestion: raw folder or database → validated, deduplicated, typed Parquet (skeleton).

``read_processed`` is the public way for later stages to load what ingest wrote.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd


@dataclass
class ProcessedData:
    """The typed tables ingest wrote; optional tables are None when the company has none."""

    users: pd.DataFrame
    events: pd.DataFrame
    transactions: pd.DataFrame | None = None
    campaign_spend: pd.DataFrame | None = None


def read_processed(processed_dir: str | Path) -> ProcessedData:
    """Load the Parquet tables written by ``ingest`` from ``processed_dir``."""
    processed_dir = Path(processed_dir)

    def optional(name: str) -> pd.DataFrame | None:
        path = processed_dir / f"{name}.parquet"
        return pd.read_parquet(path) if path.exists() else None

    return ProcessedData(
        users=pd.read_parquet(processed_dir / "users.parquet"),
        events=pd.read_parquet(processed_dir / "events.parquet"),
        transactions=optional("transactions"),
        campaign_spend=optional("campaign_spend"),
    )
