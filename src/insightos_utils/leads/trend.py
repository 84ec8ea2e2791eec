"""Score trend: each open lead's score against its score in the previous scoring run.

``trend`` is ``improving`` (score up by more than ``[scoring] trend_threshold``), ``declining``
(down by more), ``steady`` (within it) or ``new`` (not scored in the previous run: a new signup,
or no previous run at all), the way commercial scorers show it. Leads scored last time that are
no longer open (converted, lost) have no row today; ``trend_summary`` counts them. Matching is
one hash lookup over user ids in Arrow (``pyarrow.compute.index_in``: about three times
faster than ``pd.Index.get_indexer`` on text ids), so a million leads take a fraction of a
second.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

SCORED_LEADS_FILE = "scored_leads.csv"
IMPROVING, STEADY, DECLINING, NEW = "improving", "steady", "declining", "new"
TRENDS: tuple[str, ...] = (IMPROVING, STEADY, DECLINING, NEW)


def previous_scores(previous_run_dir: str | Path | None) -> tuple[pd.DataFrame | None, str]:
    """The previous run's ``user_id`` and ``score`` (None when there is none) and a sentence
    saying where they came from or why there are none; a missing or unreadable file is not an
    error (every lead is then ``new``)."""
    if previous_run_dir is None or not str(previous_run_dir).strip():
        return None, "no previous scoring run: every lead is new"
    path = Path(previous_run_dir)
    path = path if path.suffix == ".csv" else path / SCORED_LEADS_FILE
    if not path.exists():
        return None, f"the previous run has no {path.name} ({path}): every lead is new"
    try:
        frame = pd.read_csv(
            path, usecols=["user_id", "score"], dtype={"user_id": "str"}, engine="pyarrow"
        )
    except (ValueError, KeyError, OSError) as error:  # no such columns, or not a CSV
        return None, f"{path} cannot be read as scored leads ({error}): every lead is new"
    frame["score"] = pd.to_numeric(frame["score"], errors="coerce")
    frame = frame.dropna(subset=["score"]).drop_duplicates("user_id", keep="first")
    return frame.reset_index(drop=True), f"compared with {len(frame):,} leads scored in {path}"


def _arrow_text(values: pd.Series | np.ndarray | pd.Index) -> pa.Array:
    """User ids as one Arrow string array (zero-copy for pandas' Arrow-backed ``str``)."""
    series = values if isinstance(values, pd.Series) else pd.Series(np.asarray(values))
    if not isinstance(series.dtype, pd.StringDtype):
        series = series.astype("str")
    if hasattr(series.array, "__arrow_array__"):
        return pa.chunked_array(series.array.__arrow_array__()).combine_chunks()
    return pa.array(series.to_numpy(dtype=object), type=pa.string())


def previous_positions(
    user_ids: pd.Series | np.ndarray | pd.Index, previous_ids: pd.Series | np.ndarray
) -> np.ndarray:
    """For each of ``user_ids``, its row in ``previous_ids`` (-1 where absent)."""
    found = pc.index_in(_arrow_text(user_ids), value_set=_arrow_text(previous_ids))
    return pc.fill_null(found, -1).to_numpy(zero_copy_only=False).astype(np.int64)


def score_trend(
    user_ids: pd.Series | np.ndarray | pd.Index,
    scores: pd.Series | np.ndarray,
    previous: pd.DataFrame | None,
    threshold: float = 0.05,
) -> pd.Categorical:
    """The trend of each lead (aligned with ``user_ids`` / ``scores``) against ``previous``
    (``user_id``, ``score``; None: all ``new``). A change of exactly ``threshold`` is steady."""
    scores = np.asarray(scores, dtype=np.float64)
    codes = np.full(len(scores), TRENDS.index(NEW), dtype=np.int8)
    if previous is not None and len(previous):
        position = previous_positions(user_ids, previous["user_id"])
        seen = position >= 0
        change = scores[seen] - previous["score"].to_numpy(dtype=np.float64)[position[seen]]
        change = np.round(change, 9)  # 0.55 - 0.5 is 0.05 here, not 0.0500000000000000444
        codes[seen] = np.where(
            change > threshold,
            TRENDS.index(IMPROVING),
            np.where(change < -threshold, TRENDS.index(DECLINING), TRENDS.index(STEADY)),
        )
    return pd.Categorical.from_codes(codes, categories=list(TRENDS))


def trend_summary(
    trend: pd.Categorical | pd.Series,
    user_ids: pd.Series | np.ndarray | pd.Index,
    previous: pd.DataFrame | None,
) -> dict[str, Any]:
    """Counts per trend, plus ``no_longer_open``: leads scored last time with no row now."""
    counts = pd.Series(trend).value_counts().reindex(list(TRENDS), fill_value=0)
    summary: dict[str, Any] = {name: int(counts[name]) for name in TRENDS}
    if previous is None:
        summary["no_longer_open"] = None
    else:
        summary["no_longer_open"] = int(
            (previous_positions(previous["user_id"], user_ids) < 0).sum()
        )
    return summary
