"""The time-based holdout, time-ordered folds, and the minimum data a lead model needs.

A random split flatters lead models (see ``docs/ARCHITECTURE.md``); tuning and calibration use
only the earlier part, in time-ordered folds (``CV_SPLITS``). Every part a model is fitted or
measured on must hold both outcomes: ``require_outcomes`` counts labelled users, conversions
and non-conversions against ``[scoring] min_conversions`` / ``min_non_conversions``; a part
with one outcome only raises ``NotEnoughOutcomes`` (a ``StageSkipped``: the stage is skipped
with the counts, never a crash); folds with one outcome are left out (``time_folds``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import TimeSeriesSplit

from insightos_utils.config import ScoringConfig
from insightos_utils.errors import InputError
from insightos_utils.leads.features import TARGET
from insightos_utils.stages import StageSkipped

CV_SPLITS = 3  # time-ordered cross-validation folds (tuning, calibration)
MORE_OUTCOMES_FIX = (
    "Bring more history (users whose outcome is known: converted, or lost), move as-of later, "
    "or lower [scoring] min_conversions / min_non_conversions in insightos.toml."
)


class NotEnoughOutcomes(StageSkipped):
    """Too few conversions or non-conversions for a lead model (the stage is skipped)."""


@dataclass(frozen=True)
class OutcomeCounts:
    """Labelled users and how many of them converted or did not."""

    labelled: int
    conversions: int
    non_conversions: int

    @classmethod
    def of(cls, rows: pd.DataFrame) -> OutcomeCounts:
        target = rows[TARGET].astype(int).to_numpy() if len(rows) else np.zeros(0, int)
        return cls(len(target), int(target.sum()), int(len(target) - target.sum()))

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    def words(self) -> str:
        return (
            f"{self.labelled:,} users with a known outcome: {self.conversions:,} converted, "
            f"{self.non_conversions:,} did not"
        )


def require_outcomes(
    rows: pd.DataFrame,
    what: str,
    min_conversions: int = ScoringConfig.min_conversions,
    min_non_conversions: int = ScoringConfig.min_non_conversions,
) -> OutcomeCounts:
    """The outcome counts of ``rows``; ``NotEnoughOutcomes`` (how many there are, how many are
    needed) when conversions or non-conversions are below the minimums."""
    counts = OutcomeCounts.of(rows)
    short = []
    if counts.conversions < min_conversions:
        short.append(f"{min_conversions:,} conversions")
    if counts.non_conversions < min_non_conversions:
        short.append(f"{min_non_conversions:,} non-conversions")
    if short:
        raise NotEnoughOutcomes(
            f"{what} has {counts.words()}; a lead model needs at least {' and '.join(short)}.",
            MORE_OUTCOMES_FIX,
        )
    return counts


def both_outcomes(y: np.ndarray) -> bool:
    """True when ``y`` holds converted and not-converted users."""
    return len(np.unique(np.asarray(y))) == 2


def time_folds(
    y: np.ndarray, n_splits: int = CV_SPLITS
) -> tuple[list[tuple[np.ndarray, np.ndarray]], int]:
    """Time-ordered cross-validation folds (``TimeSeriesSplit`` over rows sorted by signup)
    whose fitting part and test part both hold both outcomes, and how many were left out."""
    folds = list(TimeSeriesSplit(n_splits=n_splits).split(np.zeros(len(y))))
    kept = [(fit, test) for fit, test in folds if both_outcomes(y[fit]) and both_outcomes(y[test])]
    return kept, len(folds) - len(kept)


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
            "counts": {
                "train": OutcomeCounts.of(self.train).as_dict(),
                "holdout": OutcomeCounts.of(self.holdout).as_dict(),
            },
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
        raise NotEnoughOutcomes(
            f"only {len(ordered)} users with a known outcome: too few to train and hold out "
            f"{holdout_fraction:.0%}",
            MORE_OUTCOMES_FIX,
        )
    train, holdout = ordered.iloc[:-n_holdout], ordered.iloc[-n_holdout:]
    for name, part in (("training part", train), ("holdout", holdout)):
        counts = OutcomeCounts.of(part)
        if min(counts.conversions, counts.non_conversions) == 0:
            no_champion = "; no champion is chosen on it" if name == "holdout" else ""
            raise NotEnoughOutcomes(
                f"the time-based {name} ({counts.words()}) holds only one outcome; a model "
                f"needs both converted and not-converted users in it{no_champion}",
                MORE_OUTCOMES_FIX,
            )
    return TimeSplit(train=train, holdout=holdout, holdout_fraction=holdout_fraction)
