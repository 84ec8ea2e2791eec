"""Intervals that carry the models' own uncertainty (``[ltv] interval_method = "refit"``).

The sampling-only bootstrap (``economics.bootstrap_means``) resamples per-customer point
estimates: the models' parameters stay fixed, so a small campaign's interval looks narrower than
it is. The refit bootstrap resamples *customers* (Poisson(1) weights, the streaming form of the
multinomial resample; each campaign's resample size varies as it would) and refits the purchase
and spend models on each resample (as CLVTools does), then values every customer again with the
refitted models. A campaign's replicate is the weighted mean of its resampled customers' values
under that replicate's models: sampling and parameter uncertainty together. ``REFIT_SAMPLES``
refits keep it a few seconds on a company of a few thousand customers (the fits run on distinct
weighted rows).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np
import pandas as pd
from tqdm import tqdm

from insightos_utils.config import LtvConfig
from insightos_utils.ltv.analysis import fit_models
from insightos_utils.ltv.models.base import FitError
from insightos_utils.ltv.value import customer_ltv, new_customer_ltv

REFIT_SAMPLES = 200
PREDICTION_LEVEL = 0.80
INTERVAL_METHODS = {
    "refit": "customers resampled and both models refitted each time (sampling + parameters)",
    "sampling": "customers' point values resampled, model parameters held fixed (sampling only)",
}


@dataclass
class RefitDraws:
    """Per-replicate customer values (samples, customers), the resample weights behind them and
    each replicate's value of a just-acquired customer's repeat purchases; NaN rows: a resample
    the models could not be fitted on."""

    ltv: np.ndarray
    weights: np.ndarray
    new_customer_repeat: np.ndarray
    failed: int

    @property
    def samples(self) -> int:
        return int(np.isfinite(self.ltv[:, 0]).sum()) if self.ltv.size else 0

    def group_means(self, members: np.ndarray) -> np.ndarray:
        """Each replicate's weighted mean value of the ``members`` (boolean mask)."""
        weights = self.weights[:, members]
        totals = weights.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return (weights * self.ltv[:, members]).sum(axis=1) / totals

    def customer_interval(self, level: float = PREDICTION_LEVEL) -> tuple[np.ndarray, np.ndarray]:
        """Per customer: the central ``level`` interval of their value over the refits."""
        tail = (1 - level) / 2 * 100
        finite = self.ltv[np.isfinite(self.ltv[:, 0])] if self.ltv.size else self.ltv
        if not len(finite):
            nan = np.full(self.ltv.shape[1], np.nan)
            return nan, nan
        low, high = np.percentile(finite, [tail, 100 - tail], axis=0)
        return low, high


def refit_bootstrap(
    summary: pd.DataFrame,
    settings: LtvConfig,
    model: str,
    seed: int = 42,
    samples: int = REFIT_SAMPLES,
    show_progress: bool = False,
) -> RefitDraws:
    """``samples`` customer resamples of ``summary``, each refitted (``model``: the purchase
    model chosen for the point values) and valued over the horizon."""
    rng = np.random.default_rng(seed)
    n = len(summary)
    ltv = np.full((samples, n), np.nan)
    weights = np.zeros((samples, n))
    repeat = np.full(samples, np.nan)
    failed = 0
    positions = np.arange(n)
    for b in tqdm(range(samples), desc="ltv refits", file=sys.stderr, disable=not show_progress):
        w = rng.poisson(1.0, n)
        try:
            models = fit_models(summary.iloc[np.repeat(positions, w)], settings, model)
        except FitError:
            failed += 1
            continue
        table = customer_ltv(summary, models.purchases, models.gamma_gamma, settings)
        ltv[b] = table["ltv"].to_numpy(float)
        weights[b] = w
        repeat[b] = float(new_customer_ltv(models.purchases, models.gamma_gamma, settings)[0])
    return RefitDraws(ltv, weights, repeat, failed)
