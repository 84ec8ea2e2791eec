"""Score trend: each open lead's score against its score in the previous scoring run.

``trend`` is ``improving`` (score up by more than ``[scoring] trend_threshold``), ``declining``
(down by more), ``steady`` (within it) or ``new`` (not scored in the previous run: a new signup,
or no previous run at all), the way commercial scorers show it. Leads scored last time that are
no longer open (converted, lost) have no row today; ``ScoreTrend.counts`` counts them.

Matching is one Arrow hash lookup of today's ids in the previous run's (``pyarrow.compute
.index_in``: about 1.7 times faster than ``pd.Index.get_indexer`` on text ids, measured here);
the leads no longer open come from the same lookup (previous rows nobody matched), and the
previous file's repeated ids are dropped with one Arrow dictionary encoding instead of pandas'
``drop_duplicates`` (three times slower on Arrow-backed text). ``benchmarks/bench_trend.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

SCORED_LEADS_FILE = "scored_leads.csv"
IMPROVING, STEADY, DECLINING, NEW = "improving", "steady", "declining", "new"
TRENDS: tuple[str, ...] = (IMPROVING, STEADY, DECLINING, NEW)


def _arrow_text(values: pd.Series | np.ndarray | pd.Index | list[Any]) -> pa.Array:
    """User ids as one Arrow string array (zero-copy for pandas' Arrow-backed ``str``)."""
    series = values if isinstance(values, pd.Series) else pd.Series(np.asarray(values))
    if not isinstance(series.dtype, pd.StringDtype):
        series = series.astype("str")
    if hasattr(series.array, "__arrow_array__"):
        return pa.chunked_array(series.array.__arrow_array__()).combine_chunks()
    return pa.array(series.to_numpy(dtype=object), type=pa.string())


def first_of_each_id(user_ids: pd.Series) -> np.ndarray | None:
    """Row positions keeping the first row of each repeated id; None when no id repeats."""
    encoded = pc.dictionary_encode(_arrow_text(user_ids))
    if len(encoded.dictionary) == len(user_ids):
        return None
    codes = encoded.indices.to_numpy(zero_copy_only=False)
    first = np.empty(len(encoded.dictionary), dtype=np.int64)
    rows = np.arange(len(codes), dtype=np.int64)
    first[codes[::-1]] = rows[::-1]  # the last write wins: each code's earliest row
    return np.flatnonzero(first[codes] == rows)


def previous_scores(previous_run_dir: str | Path | None) -> tuple[pd.DataFrame | None, str]:
    """The previous run's ``user_id`` and ``score``, one row per id (the first; None when there
    is none), and a sentence saying where they came from or why there are none; a missing or
    unreadable file is not an error (every lead is then ``new``)."""
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
    if not pd.api.types.is_float_dtype(frame["score"]):
        frame["score"] = pd.to_numeric(frame["score"], errors="coerce")
    if frame["score"].isna().any():
        frame = frame.dropna(subset=["score"]).reset_index(drop=True)
    keep = first_of_each_id(frame["user_id"])
    if keep is not None:
        frame = frame.take(keep).reset_index(drop=True)
    return frame, f"compared with {len(frame):,} leads scored in {path}"


@dataclass(frozen=True)
class ScoreTrend:
    """Each lead's trend and how many leads of the previous run have no row now."""

    trend: pd.Categorical
    no_longer_open: int | None  # None: there was no previous run to compare with

    def counts(self) -> dict[str, Any]:
        """Leads per trend, plus ``no_longer_open``."""
        per_code = np.bincount(np.asarray(self.trend.codes), minlength=len(TRENDS))
        summary: dict[str, Any] = {name: int(per_code[i]) for i, name in enumerate(TRENDS)}
        summary["no_longer_open"] = self.no_longer_open
        return summary

    def as_text(self) -> pd.api.extensions.ExtensionArray:
        """The trend as the text column ``scored_leads.csv`` holds (decoded in Arrow: ten times
        faster than through Python objects on a million leads)."""
        names = pa.array(list(TRENDS), type=pa.string())
        codes = pa.array(np.asarray(self.trend.codes, dtype=np.int8))
        return pd.array(pa.DictionaryArray.from_arrays(codes, names).cast(pa.string()), dtype="str")


def score_trend(
    user_ids: pd.Series | np.ndarray | pd.Index | list[Any],
    scores: pd.Series | np.ndarray | list[float],
    previous: pd.DataFrame | None,
    threshold: float = 0.05,
) -> ScoreTrend:
    """The trend of each lead (aligned with ``user_ids`` / ``scores``) against ``previous``
    (``user_id``, ``score``, one row per id as ``previous_scores`` returns it; None: all
    ``new``). A change of exactly ``threshold`` is steady."""
    scores = np.asarray(scores, dtype=np.float64)
    codes = np.full(len(scores), TRENDS.index(NEW), dtype=np.int8)
    if previous is None:
        return ScoreTrend(pd.Categorical.from_codes(codes, categories=list(TRENDS)), None)
    no_longer_open = len(previous)
    if len(previous) and len(scores):
        found = pc.index_in(_arrow_text(user_ids), value_set=_arrow_text(previous["user_id"]))
        position = pc.fill_null(found, -1).to_numpy(zero_copy_only=False).astype(np.int64)
        seen = position >= 0
        matched = position[seen]
        change = scores[seen] - previous["score"].to_numpy(dtype=np.float64)[matched]
        change = np.round(change, 9)  # 0.55 - 0.5 is 0.05 here, not 0.0500000000000000444
        codes[seen] = np.where(
            change > threshold,
            TRENDS.index(IMPROVING),
            np.where(change < -threshold, TRENDS.index(DECLINING), TRENDS.index(STEADY)),
        )
        still_open = np.zeros(len(previous), dtype=bool)
        still_open[matched] = True
        no_longer_open = len(previous) - int(still_open.sum())
    return ScoreTrend(pd.Categorical.from_codes(codes, categories=list(TRENDS)), no_longer_open)


def with_trend(
    scored: pd.DataFrame, previous_run_dir: str | Path | None, threshold: float
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """``scored`` with ``trend`` against the previous scoring run's ``scored_leads.csv``, and a
    summary (counts per trend, leads no longer open, where the comparison came from)."""
    previous, note = previous_scores(previous_run_dir or None)
    compared = score_trend(scored["user_id"], scored["score"], previous, threshold)
    summary = {**compared.counts(), "threshold": threshold, "compared_with": note}
    return scored.assign(trend=compared.as_text()), summary
