"""The time-based holdout: the latest signups with a known outcome are held out.

A random split flatters lead models (see ``docs/ARCHITECTURE.md``); tuning and calibration use
only the earlier part, in time-ordered folds (``CV_SPLITS``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from insightos_utils.errors import InputError, InsightOSError
from insightos_utils.leads.features import TARGET

CV_SPLITS = 3  # time-ordered cross-validation folds (tuning, calibration)


@dataclass(frozen=True)
class TimeSplit:
    """Training part and holdout: the holdout is the latest signups with a known outcome."""

    train: pd.DataFrame
    holdout: pd.DataFrame
    holdout_fraction: float

    def describe(self) -> dict[str, Any]:
        """Dates, sizes and positives of both parts, for the model card."""

        def part(frame: pd.DataFrame) -> dict[str, Any]:
            target = frame[TARGET].astype(int)
            return {
                "n": len(frame),
                "positives": int(target.sum()),
                "conversion_rate": round(float(target.mean()), 4) if len(frame) else None,
                "signups_from": frame["created_at"].min().isoformat(),
                "signups_to": frame["created_at"].max().isoformat(),
            }

        return {
            "rule": (
                f"time-based: the latest {self.holdout_fraction:.0%} of signups (by created_at) "
                "whose outcome is known at as-of; tuning and calibration use only the earlier part"
            ),
            "holdout_fraction": self.holdout_fraction,
            "train": part(self.train),
            "holdout": part(self.holdout),
        }


def time_split(training_rows: pd.DataFrame, holdout_fraction: float = 0.2) -> TimeSplit:
    """Split labelled rows by signup time: the latest ``holdout_fraction`` become the holdout.

    Both parts come back sorted by ``created_at`` (ties by user id), as time-ordered
    cross-validation needs.
    """
    if not 0.0 < holdout_fraction < 1.0:
        raise InputError(f"holdout_fraction must be between 0 and 1, got {holdout_fraction}")
    for column in ("created_at", TARGET):
        if column not in training_rows.columns:
            raise InputError(f"feature table: column '{column}' is missing")
    unknown = training_rows[TARGET].isna()
    if unknown.any():
        examples = ", ".join(map(str, training_rows.index[unknown][:5]))
        raise InputError(
            f"feature table: {int(unknown.sum())} training rows have no known "
            f"'{TARGET}' (e.g. {examples}); pass only rows whose outcome is known"
        )
    ordered = training_rows.sort_index(kind="mergesort").sort_values("created_at", kind="mergesort")
    n_holdout = max(1, math.ceil(len(ordered) * holdout_fraction))
    if len(ordered) - n_holdout < 2 * CV_SPLITS:
        raise InsightOSError(
            f"only {len(ordered)} users with a known outcome: too few to train and hold out "
            f"{holdout_fraction:.0%}; bring more history or move as-of later"
        )
    train, holdout = ordered.iloc[:-n_holdout], ordered.iloc[-n_holdout:]
    for name, part in (("training part", train), ("holdout", holdout)):
        classes = part[TARGET].astype(int).nunique()
        if classes < 2:
            raise InsightOSError(
                f"the {name} ({len(part)} users) holds only one outcome; a model needs both "
                "converted and not-converted users (bring more history or move as-of later)"
            )
    return TimeSplit(train=train, holdout=holdout, holdout_fraction=holdout_fraction)
