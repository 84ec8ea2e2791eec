"""Holdout metrics of a lead model: ROC AUC, PR AUC, Brier, top decile, gains, calibration.

Every function takes the outcomes ``y`` (0/1) and the scores, so the holdout, the backtest and
the tests measure with the same code.
"""

from __future__ import annotations

import math

import numpy as np
from sklearn.calibration import calibration_curve
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score


def safe_auc(y: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC, NaN when ``y`` holds only one class (no ranking to measure)."""
    return float(roc_auc_score(y, score)) if len(np.unique(y)) == 2 else float("nan")


def top_decile_mask(score: np.ndarray, share: float = 0.10) -> np.ndarray:
    """True for the ``share`` highest scores (ties broken by position)."""
    n_top = max(1, math.ceil(len(score) * share))
    order = np.argsort(-score, kind="stable")
    mask = np.zeros(len(score), dtype=bool)
    mask[order[:n_top]] = True
    return mask


def evaluate(y: np.ndarray, score: np.ndarray) -> dict[str, float | None]:
    """Holdout metrics: ROC AUC, PR AUC, Brier, top-decile precision / recall / lift, base rate."""
    y = np.asarray(y, dtype=int)
    score = np.asarray(score, dtype=float)
    base_rate = float(y.mean())
    top = top_decile_mask(score)
    top_precision = float(y[top].mean())
    return {
        "holdout_roc_auc": round(safe_auc(y, score), 4),
        "holdout_pr_auc": round(float(average_precision_score(y, score)), 4),
        "holdout_brier": round(float(brier_score_loss(y, score)), 4),
        "top_decile_precision": round(top_precision, 4),
        "top_decile_recall": round(float(y[top].sum() / max(y.sum(), 1)), 4),
        "top_decile_lift": round(top_precision / base_rate, 3) if base_rate > 0 else None,
        "base_rate": round(base_rate, 4),
        "mean_predicted": round(float(score.mean()), 4),
        "n": len(y),
        "positives": int(y.sum()),
    }


def gains_curve(y: np.ndarray, score: np.ndarray, points: int = 20) -> list[dict[str, float]]:
    """Cumulative gains and lift: share of conversions reached when calling the top x% first."""
    y = np.asarray(y, dtype=int)
    order = np.argsort(-np.asarray(score, dtype=float), kind="stable")
    cumulative = np.cumsum(y[order])
    total = max(int(y.sum()), 1)
    curve = []
    for step in range(1, points + 1):
        fraction = step / points
        k = max(1, math.ceil(len(y) * fraction))
        gained = cumulative[k - 1] / total
        curve.append(
            {
                "fraction_contacted": round(fraction, 4),
                "fraction_of_conversions": round(float(gained), 4),
                "lift": round(float(gained / fraction), 3),
            }
        )
    return curve


def calibration_table(y: np.ndarray, score: np.ndarray, bins: int = 10) -> list[dict[str, float]]:
    """Observed conversion rate against mean predicted score, in equal-count score bins."""
    y = np.asarray(y, dtype=int)
    score = np.asarray(score, dtype=float)
    observed, predicted = calibration_curve(y, score, n_bins=bins, strategy="quantile")
    edges = np.unique(np.quantile(score, np.linspace(0, 1, bins + 1)))
    counts = np.histogram(score, bins=edges)[0] if len(edges) > 1 else np.array([len(score)])
    counts = counts[counts > 0]
    if len(counts) != len(observed):
        counts = np.full(len(observed), np.nan)
    return [
        {"mean_predicted": round(float(p), 4), "observed_rate": round(float(o), 4), "n": float(n)}
        for p, o, n in zip(predicted, observed, counts, strict=True)
    ]


def calibration_summary(y: np.ndarray, score: np.ndarray) -> dict[str, float | None]:
    """Mean predicted vs observed rate, their relative gap, and the Brier score."""
    observed = float(np.mean(y))
    predicted = float(np.mean(score))
    return {
        "brier": round(float(brier_score_loss(y, score)), 4),
        "mean_predicted": round(predicted, 4),
        "observed_rate": round(observed, 4),
        "relative_gap": round(abs(predicted - observed) / observed, 3) if observed else None,
    }


def auc_interval(
    y: np.ndarray,
    score: np.ndarray,
    samples: int = 1_000,
    level: float = 0.95,
    seed: int = 42,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the ROC AUC: ``samples`` resamples of the rows (with
    replacement, seeded), the AUC of each from ranks (Mann-Whitney), resamples holding one
    outcome only left out. (NaN, NaN) when ``y`` holds one outcome."""
    from scipy.stats import rankdata

    y = np.asarray(y, dtype=int)
    score = np.asarray(score, dtype=float)
    if len(np.unique(y)) < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    per_chunk = max(1, 2_000_000 // len(y))  # resamples at a time: bounded memory
    aucs = []
    for start in range(0, samples, per_chunk):
        rows = rng.integers(0, len(y), size=(min(per_chunk, samples - start), len(y)))
        drawn_y = y[rows]
        positives = drawn_y.sum(axis=1)
        negatives = len(y) - positives
        rank_sum = (rankdata(score[rows], axis=1) * drawn_y).sum(axis=1)
        usable = (positives > 0) & (negatives > 0)
        pos, neg = positives[usable], negatives[usable]
        aucs.append((rank_sum[usable] - pos * (pos + 1) / 2) / (pos * neg))
    auc = np.concatenate(aucs)
    tail = (1.0 - level) / 2
    low, high = np.quantile(auc, [tail, 1.0 - tail])
    return float(low), float(high)
