"""Holdout validation: the purchase model's forecast of the holdout against what customers did.

Time-based only: the model is fitted on purchases up to the calibration end and forecasts each
customer's repeat purchases in ``(calibration_end, observation_end]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from insightos_utils.ltv.value import PurchaseModel


@dataclass
class HoldoutValidation:
    """Predicted against actual repeat purchases in the holdout, overall and by frequency."""

    by_frequency: pd.DataFrame
    customers: int
    duration: float
    actual_total: float
    predicted_total: float
    mae: float
    rmse: float

    @property
    def total_error_pct(self) -> float:
        if self.actual_total == 0:
            return float("nan")
        return 100.0 * (self.predicted_total - self.actual_total) / self.actual_total

    def as_dict(self) -> dict[str, Any]:
        return {
            "customers": self.customers,
            "duration": self.duration,
            "actual_purchases": self.actual_total,
            "predicted_purchases": self.predicted_total,
            "total_error_pct": self.total_error_pct,
            "mae_per_customer": self.mae,
            "rmse_per_customer": self.rmse,
            "by_calibration_frequency": self.by_frequency.to_dict(orient="records"),
        }


def holdout_validation(
    summary: pd.DataFrame, purchases: PurchaseModel, max_frequency: int = 7
) -> HoldoutValidation:
    """Compare the forecast of holdout purchases with what customers actually did.

    ``by_frequency`` groups customers by calibration-period frequency (the last group is
    ``max_frequency`` and more): the classic calibration-versus-holdout chart.
    """
    needed = {"frequency_holdout", "duration_holdout"}
    if not needed <= set(summary.columns):
        raise ValueError("holdout_validation needs rfm_summary(..., observation_end=...)")
    predicted = purchases.expected_purchases(
        summary["duration_holdout"].to_numpy(float),
        summary["frequency"],
        summary["recency"],
        summary["T"],
    )
    actual = summary["frequency_holdout"].to_numpy(float)
    group = np.minimum(summary["frequency"].to_numpy(), max_frequency)
    table = (
        pd.DataFrame({"group": group, "actual": actual, "predicted": predicted})
        .groupby("group")
        .agg(
            customers=("actual", "size"),
            actual_mean=("actual", "mean"),
            predicted_mean=("predicted", "mean"),
        )
        .reset_index()
    )
    table.insert(
        0,
        "calibration_frequency",
        [f"{g}+" if g == max_frequency else str(g) for g in table["group"]],
    )
    table = table.drop(columns="group")
    error = predicted - actual
    return HoldoutValidation(
        by_frequency=table,
        customers=len(summary),
        duration=float(summary["duration_holdout"].iloc[0]) if len(summary) else 0.0,
        actual_total=float(actual.sum()),
        predicted_total=float(predicted.sum()),
        mae=float(np.abs(error).mean()),
        rmse=float(np.sqrt((error**2).mean())),
    )
