"""Holdout validation: forecast against actual, overall and by calibration frequency."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from insightos_utils.ltv.models.bgnbd import BgNbd, BgNbdParams
from insightos_utils.ltv.validation import holdout_validation


def test_holdout_numbers_equal_lifetimes_forecast(
    cdnow_run: Path, cdnow_summary: pd.DataFrame, cdnow_lifetimes: tuple[Any, Any]
) -> None:
    bgf, _ = cdnow_lifetimes
    s = cdnow_summary
    holdout = json.loads((cdnow_run / "ltv_params.json").read_text())["holdout"]
    predicted = bgf.conditional_expected_number_of_purchases_up_to_time(
        s["duration_holdout"], s["frequency"], s["recency"], s["T"]
    )
    assert holdout["duration"] == pytest.approx(39.0)
    assert holdout["actual_purchases"] == s["frequency_holdout"].sum()
    assert holdout["predicted_purchases"] == pytest.approx(predicted.sum(), rel=1e-6)
    assert holdout["mae_per_customer"] == pytest.approx(
        np.abs(predicted - s["frequency_holdout"]).mean(), rel=1e-6
    )
    expected_pct = 100 * (predicted.sum() / s["frequency_holdout"].sum() - 1)
    assert holdout["total_error_pct"] == pytest.approx(expected_pct, rel=1e-5)
    groups = pd.DataFrame(holdout["by_calibration_frequency"])
    assert groups["calibration_frequency"].tolist() == ["0", "1", "2", "3", "4", "5", "6", "7+"]
    assert groups["customers"].sum() == len(s)
    zero = s["frequency"] == 0
    assert groups.loc[0, "actual_mean"] == pytest.approx(s.loc[zero, "frequency_holdout"].mean())
    assert groups.loc[0, "predicted_mean"] == pytest.approx(
        predicted[zero.to_numpy()].mean(), rel=1e-6
    )


def test_holdout_needs_the_holdout_columns(cdnow_summary: pd.DataFrame) -> None:
    model = BgNbd(BgNbdParams(0.243, 4.414, 0.793, 2.426))
    with pytest.raises(ValueError, match="observation_end"):
        holdout_validation(cdnow_summary.drop(columns="frequency_holdout"), model)
