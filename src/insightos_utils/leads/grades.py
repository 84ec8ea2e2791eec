"""Lead grades A-D: fixed score cut-offs learned at training time (see ``GRADE_RULE``)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

# Grades come from fixed probability cut-offs learned on the holdout score distribution at
# training time: A = top 10 %, B = next 20 %, C = next 30 %, D = the rest. Fixed cut-offs keep a
# grade meaning the same probability band from one scoring run to the next.
GRADE_SHARES: tuple[tuple[str, float], ...] = (("A", 0.10), ("B", 0.20), ("C", 0.30), ("D", 0.40))
GRADES: tuple[str, ...] = tuple(grade for grade, _ in GRADE_SHARES)
GRADE_RULE = (
    "Fixed score cut-offs learned at training time from the champion's holdout score "
    "distribution: A = top 10%, B = next 20%, C = next 30%, D = the rest. The cut-offs are "
    "stored with the model, so a grade means the same probability band in every scoring run."
)


def grade_cutoffs(holdout_scores: np.ndarray) -> dict[str, float]:
    """Lowest score of grades A, B and C, from the holdout score distribution (see GRADE_RULE)."""
    cutoffs: dict[str, float] = {}
    top_share = 0.0
    for grade, share in GRADE_SHARES[:-1]:
        top_share += share
        cutoffs[grade] = float(np.quantile(holdout_scores, 1.0 - top_share))
    return cutoffs


def assign_grades(score: np.ndarray, cutoffs: Mapping[str, float]) -> np.ndarray:
    """Grade letters from fixed cut-offs: higher score never gets a worse grade."""
    grades = np.full(len(score), GRADE_SHARES[-1][0], dtype=object)
    for grade, _ in reversed(GRADE_SHARES[:-1]):
        grades[np.asarray(score) >= cutoffs[grade]] = grade
    return grades
