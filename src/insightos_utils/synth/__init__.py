"""The seeded synthetic company in the raw contract, and the corpus of company shapes.

``write_company`` writes users, events, transactions and campaign spend (CSV or Parquet) for a
profile (``projects``, the default; ``crm``) and optionally a named shape from ``SHAPES`` (no
events, no transactions, subscription-like purchases, 500 campaigns, ...). Same seed and
arguments, same bytes.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from insightos_utils.synth.company import (
    DEFAULT_AS_OF,
    HISTORY_DAYS,
    OPEN_DAYS,
    WINDOW_DAYS,
    Knobs,
    generate_company,
)
from insightos_utils.synth.files import FILE_FORMATS, write_tables
from insightos_utils.synth.profiles import CRM, PROFILES, PROJECTS, Profile
from insightos_utils.synth.shapes import SHAPES, Shape, shape_company

__all__ = [
    "CRM",
    "DEFAULT_AS_OF",
    "FILE_FORMATS",
    "HISTORY_DAYS",
    "OPEN_DAYS",
    "PROFILES",
    "PROJECTS",
    "SHAPES",
    "WINDOW_DAYS",
    "Knobs",
    "Profile",
    "Shape",
    "generate_company",
    "shape_company",
    "write_company",
]


def write_company(
    out_dir: str | Path,
    n_users: int = 10_000,
    seed: int = 42,
    as_of: str | pd.Timestamp | None = None,
    profile: str = "projects",
    file_format: str = "csv",
    show_progress: bool = True,
    shape: str | None = None,
) -> dict[str, Path]:
    """Generate the company (of ``shape`` when given) and write its tables to ``out_dir``.

    Same seed and arguments give byte-identical files. Returns table name → written path.
    """
    if file_format not in FILE_FORMATS:
        from insightos_utils.errors import InputError

        raise InputError(f"unknown synth format {file_format!r}; choose one of {FILE_FORMATS}")
    with tqdm(
        total=2, desc="synth", unit="step", disable=not show_progress, file=sys.stderr
    ) as bar:
        bar.set_postfix_str(f"generating {n_users:,} users" + (f" ({shape})" if shape else ""))
        company = shape_company(shape, n_users=n_users, seed=seed, as_of=as_of, profile=profile)
        bar.update()
        bar.set_postfix_str("writing")
        written = write_tables(
            company.tables, out_dir, file_format, offsets=company.offsets, seed=seed
        )
        bar.update()
    return written
