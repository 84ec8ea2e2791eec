"""Choosing the purchase model on the holdout (``[ltv] model = "auto"``).

Each non-contractual model (BG/NBD, Pareto/NBD) is fitted on the calibration period and
forecasts every customer's repeat purchases in the holdout. They are compared on three figures:

- ``total_error_pct``: the forecast total of holdout purchases against the actual, in percent
  (what a revenue forecast feels);
- ``mae_by_frequency``: the mean, over calibration-frequency groups 0, 1, ..., 7+, of the absolute
  gap between the group's mean forecast and its mean actual purchases (the classic
  calibration-versus-holdout chart: what a ranking of customers feels);
- ``log_likelihood``: of the calibration data (both models have four parameters, so it compares
  as AIC / BIC would).

The rule (``RULE``), applied in this order: the smaller absolute total error wins when the two
differ by more than ``TOTAL_ERROR_MARGIN`` percentage points; otherwise the smaller MAE by
calibration frequency wins when the two differ by more than ``MAE_MARGIN`` (relative); otherwise
the higher calibration log-likelihood wins. BG/NBD, the default, stays on an exact tie.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from insightos_utils.ltv.validation import holdout_validation
from insightos_utils.ltv.value import PurchaseModel

TOTAL_ERROR_MARGIN = 2.0  # percentage points of the holdout total
MAE_MARGIN = 0.05  # relative
TITLES = {"bgnbd": "BG/NBD", "paretonbd": "Pareto/NBD"}
RULE = (
    "on the holdout: the smaller absolute total-purchase error wins when the two differ by more "
    f"than {TOTAL_ERROR_MARGIN:g} percentage points; otherwise the smaller mean absolute error "
    f"by calibration frequency (groups 0..7+) when they differ by more than {MAE_MARGIN:.0%}; "
    "otherwise the higher calibration log-likelihood (both models have four parameters); "
    "BG/NBD on an exact tie"
)


@dataclass
class ModelChoice:
    """The chosen purchase model, why, and the comparison table."""

    model: str
    requested: str
    reason: str
    compared: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "requested": self.requested,
            "rule": RULE,
            "reason": self.reason,
        }

    def table(self) -> pd.DataFrame:
        return pd.DataFrame(self.compared)


def mae_by_frequency(by_frequency: pd.DataFrame) -> float:
    """Mean over calibration-frequency groups of |mean forecast - mean actual|."""
    gaps = (by_frequency["predicted_mean"] - by_frequency["actual_mean"]).abs()
    return float(gaps.mean()) if len(gaps) else math.nan


def compare(
    calibration: pd.DataFrame, fitted: dict[str, tuple[PurchaseModel, float]]
) -> list[dict[str, Any]]:
    """One row per model: holdout total error, MAE by frequency, calibration log-likelihood.
    ``fitted`` maps a model name to (the fitted model, its calibration log-likelihood)."""
    rows = []
    for name, (model, log_likelihood) in fitted.items():
        check = holdout_validation(calibration, model)
        rows.append(
            {
                "model": name,
                "title": TITLES.get(name, name),
                "predicted_purchases": check.predicted_total,
                "actual_purchases": check.actual_total,
                "total_error_pct": check.total_error_pct,
                "mae_by_frequency": mae_by_frequency(check.by_frequency),
                "mae_per_customer": check.mae,
                "log_likelihood": log_likelihood,
            }
        )
    return rows


def choose(rows: list[dict[str, Any]], requested: str) -> ModelChoice:
    """Apply ``RULE`` to two compared models (``requested`` = "auto")."""
    by_name = {row["model"]: row for row in rows}
    bg, pareto = by_name["bgnbd"], by_name["paretonbd"]
    bg_total, pa_total = abs(bg["total_error_pct"]), abs(pareto["total_error_pct"])
    if _finite(bg_total, pa_total) and abs(bg_total - pa_total) > TOTAL_ERROR_MARGIN:
        winner = "bgnbd" if bg_total < pa_total else "paretonbd"
        reason = (
            f"holdout total error {by_name[winner]['total_error_pct']:+.1f}% against "
            f"{by_name[_other(winner)]['total_error_pct']:+.1f}% (more than "
            f"{TOTAL_ERROR_MARGIN:g} points apart)"
        )
        return ModelChoice(winner, requested, f"{TITLES[winner]}: {reason}", rows)
    bg_mae, pa_mae = bg["mae_by_frequency"], pareto["mae_by_frequency"]
    if _finite(bg_mae, pa_mae) and abs(bg_mae - pa_mae) > MAE_MARGIN * max(bg_mae, pa_mae):
        winner = "bgnbd" if bg_mae < pa_mae else "paretonbd"
        reason = (
            f"total errors within {TOTAL_ERROR_MARGIN:g} points ({bg['total_error_pct']:+.1f}% "
            f"BG/NBD, {pareto['total_error_pct']:+.1f}% Pareto/NBD); MAE by calibration "
            f"frequency {by_name[winner]['mae_by_frequency']:.4f} against "
            f"{by_name[_other(winner)]['mae_by_frequency']:.4f}"
        )
        return ModelChoice(winner, requested, f"{TITLES[winner]}: {reason}", rows)
    winner = "paretonbd" if pareto["log_likelihood"] > bg["log_likelihood"] else "bgnbd"
    reason = (
        "holdout forecasts equally close (total error and MAE by frequency within the margins); "
        f"calibration log-likelihood {by_name[winner]['log_likelihood']:.1f} against "
        f"{by_name[_other(winner)]['log_likelihood']:.1f}"
    )
    return ModelChoice(winner, requested, f"{TITLES[winner]}: {reason}", rows)


def _other(name: str) -> str:
    return "paretonbd" if name == "bgnbd" else "bgnbd"


def _finite(*values: float) -> bool:
    return all(np.isfinite(v) for v in values)
