"""Grades from fixed cut-offs: the shares on the holdout, never a worse grade for a higher score."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from insightos_utils.leads.grades import GRADE_SHARES, assign_grades
from insightos_utils.leads.train import TrainingResult


def test_grades_follow_fixed_cutoffs(toy_training: TrainingResult) -> None:
    scores = toy_training.champion_scores
    cutoffs = toy_training.cutoffs["champion"]
    assert cutoffs["A"] > cutoffs["B"] > cutoffs["C"]
    grades = assign_grades(scores, cutoffs)
    shares = pd.Series(grades).value_counts(normalize=True)
    for grade, share in GRADE_SHARES:
        assert shares[grade] == pytest.approx(share, abs=0.02)
    ordered = grades[np.argsort(-scores)]
    assert list(ordered) == sorted(ordered)  # a higher score never gets a worse grade
