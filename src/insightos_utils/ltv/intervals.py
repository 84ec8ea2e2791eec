"""Intervals that carry the models' own uncertainty (``[ltv] interval_method = "refit"``).

The sampling-only bootstrap (``economics.bootstrap_means``) resamples per-customer point
estimates: the models' parameters stay fixed, so a small campaign's interval looks narrower than
it is. The refit bootstrap resamples *customers* (Poisson(1) weights, the streaming form of the
multinomial resample; each campaign's resample size varies as it would) and refits the purchase
and spend models on each resample (as CLVTools does), then values every customer again with the
refitted models. A campaign's replicate is the weighted mean of its resampled customers' values
under that replicate's models: sampling and parameter uncertainty together.

**Cheap by construction.** A resample is a re-weighting of the distinct rows the fits already
use: each customer's weight is added onto their distinct (frequency, recency, T) row and their
distinct (frequency, monetary value) row (``np.bincount``), and the models are fitted on those
rows with the summed weights (``fit_weighted``): the same objective as the materialised resample,
without building it. Each refit starts from the full data's fit (``warm``; the other starting
points are run only where that start does not converge, measured as for every fit). Customers are
valued per distinct row too: the discounted expected purchases once per (x, t_x, T) row, the
expected value per purchase once per (x, m) row, multiplied per customer.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from insightos_utils.config import LtvConfig
from insightos_utils.ltv.economics import CONFIDENCE, bootstrap_means, percentile_interval
from insightos_utils.ltv.models.base import FitError
from insightos_utils.ltv.models.bgnbd import BgNbd
from insightos_utils.ltv.models.gamma_gamma import GammaGamma
from insightos_utils.ltv.models.paretonbd import ParetoNbd
from insightos_utils.ltv.rfm import distinct_rows
from insightos_utils.ltv.units import periods_per_month
from insightos_utils.ltv.value import (
    discount_factors,
    monthly_expected_purchases,
    new_customer_ltv,
)

REFIT_SAMPLES = 200
PREDICTION_LEVEL = 0.80
INTERVAL_METHODS = {
    "refit": "customers resampled and both models refitted each time (sampling + parameters)",
    "sampling": "customers' point values resampled, model parameters held fixed (sampling only)",
}

Models = tuple[Any, Any]  # (purchase model, spend model) of one replicate


@dataclass
class RefitDraws:
    """Per-replicate customer values (samples, customers), the resample weights behind them and
    each replicate's value of a just-acquired customer's repeat purchases; NaN rows: a resample
    the models could not be fitted on. ``models`` holds each successful replicate's fitted
    (purchase model, Gamma-Gamma) pair, in the order of the finite rows of ``ltv``."""

    ltv: np.ndarray
    weights: np.ndarray
    new_customer_repeat: np.ndarray
    failed: int
    models: list[Models] = field(default_factory=list)
    group_labels: tuple[str, ...] = ()
    group_monthly: np.ndarray | None = None  # (samples, groups, months): mean monthly margin

    def group_margins(self, label: str) -> np.ndarray | None:
        """Each replicate's weighted mean (undiscounted) margin of each month of the horizon
        over the resampled customers of group ``label`` (a campaign): (samples, months), NaN
        rows where the replicate failed; None when the draws were not grouped by it."""
        if self.group_monthly is None or label not in self.group_labels:
            return None
        return self.group_monthly[:, self.group_labels.index(label), :]

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


def purchase_model_name(model: str) -> str:
    """The purchase model that values customers under ``model`` (auto values with BG/NBD
    until the holdout comparison has chosen, as ``analysis.fit_models``)."""
    return "paretonbd" if model == "paretonbd" else "bgnbd"


@dataclass
class DistinctRows:
    """A summary's customers as codes onto its distinct rows: (x, t_x, T) for the purchase
    model, (x, m) for the spend model. ``refit`` fits both on a resample given as one weight
    per customer."""

    purchase_rows: list[np.ndarray]
    purchase_codes: np.ndarray
    spend_rows: list[np.ndarray]
    spend_codes: np.ndarray

    @classmethod
    def of(cls, summary: pd.DataFrame) -> DistinctRows:
        purchase_rows, purchase_codes, _ = distinct_rows(
            summary["frequency"], summary["recency"], summary["T"]
        )
        spend_rows, spend_codes, _ = distinct_rows(summary["frequency"], summary["monetary_value"])
        return cls(purchase_rows, purchase_codes, spend_rows, spend_codes)

    def __len__(self) -> int:
        return len(self.purchase_codes)

    def refit(
        self,
        weights: np.ndarray,
        settings: LtvConfig,
        model: str,
        warm: Models | None = None,
        retry: bool = True,
    ) -> Models:
        """The purchase model (``model``) and Gamma-Gamma fitted on the resample that gives
        customer i the weight ``weights[i]``; ``warm``: fitted models to start from, and with
        ``retry`` False a warm start that does not converge is not retried from the other
        starting points (the models then say they did not converge)."""
        x, t_x, age = self.purchase_rows
        by_row = np.bincount(self.purchase_codes, weights=weights, minlength=len(x))
        cls = ParetoNbd if purchase_model_name(model) == "paretonbd" else BgNbd
        purchases = cls(penalizer=settings.penalizer)
        spend = GammaGamma(penalizer=settings.penalizer)
        purchases.retry_starts = spend.retry_starts = retry
        purchases.fit_weighted(
            x, t_x, age, by_row, _warm_params(warm[0] if warm else None), True, True
        )
        sx, sm = self.spend_rows
        by_spend = np.bincount(self.spend_codes, weights=weights, minlength=len(sx))
        spend.fit_weighted(sx, sm, by_spend, _warm_params(warm[1] if warm else None), True, True)
        return purchases, spend

    def customer_values(self, models: Models, settings: LtvConfig) -> np.ndarray:
        """Every customer's ``customer_ltv`` value under ``models``, computed per distinct row."""
        monthly, per_purchase = self.monthly_terms(models, settings)
        discounted = monthly @ discount_factors(settings, monthly.shape[1])
        return (
            settings.gross_margin * per_purchase[self.spend_codes] * discounted[self.purchase_codes]
        )

    def monthly_terms(self, models: Models, settings: LtvConfig) -> tuple[np.ndarray, np.ndarray]:
        """Expected repeat purchases of each month per distinct (x, t_x, T) row (rows, months)
        and the expected value per purchase per distinct (x, m) row, under ``models``."""
        purchases, spend = models
        x, t_x, age = self.purchase_rows
        month = periods_per_month(settings.time_unit)
        horizon = int(settings.horizon_months)
        monthly = monthly_expected_purchases(purchases, x, t_x, age, horizon, month, distinct=True)
        sx, sm = self.spend_rows
        return monthly, np.asarray(spend.expected_average_value(sx, sm), dtype=float)

    def group_monthly_margins(
        self,
        models: Models,
        settings: LtvConfig,
        weights: np.ndarray,
        groups: np.ndarray,
        n_groups: int,
    ) -> np.ndarray:
        """(groups, months): each group's weighted mean expected margin of each month (the
        payback curve of a campaign in this replicate), without a (customers, months) table:
        the weights times value per purchase are summed per (group, distinct purchase row)."""
        from scipy import sparse

        monthly, per_purchase = self.monthly_terms(models, settings)
        scaled = weights * settings.gross_margin * per_purchase[self.spend_codes]
        by_row = sparse.csr_matrix(
            (scaled, (groups, self.purchase_codes)), shape=(n_groups, monthly.shape[0])
        )
        totals = np.bincount(groups, weights=weights, minlength=n_groups)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.asarray(by_row @ monthly) / totals[:, None]


def _warm_params(model: Any) -> Any:
    """A fitted model's parameters to warm-start a refit from: where it predicts from a limiting
    model, the best interior point it found (a resample's optimum is near it)."""
    if model is None:
        return None
    if getattr(model, "limit", None) is not None:
        return getattr(model, "interior", None)
    return model.params


def replicates(
    rows: DistinctRows,
    settings: LtvConfig,
    model: str,
    rng: np.random.Generator,
    samples: int,
    warm: Models | None = None,
    desc: str | None = None,
    retry: bool = True,
) -> Iterator[tuple[np.ndarray, Models | None]]:
    """``samples`` Poisson(1) customer weightings of ``rows`` and the models refitted on each
    (None where a resample cannot be fitted: ``FitError``; with ``retry`` False also where a
    warm-started fit did not converge)."""
    for _ in tqdm(range(samples), desc=desc, file=sys.stderr, disable=desc is None):
        w = rng.poisson(1.0, len(rows)).astype(float)
        try:
            models = rows.refit(w, settings, model, warm, retry)
        except FitError:
            yield w, None
            continue
        converged = all(m.convergence.converged for m in models)
        yield w, models if retry or converged else None


def refit_bootstrap(
    summary: pd.DataFrame,
    settings: LtvConfig,
    model: str,
    seed: int = 42,
    samples: int = REFIT_SAMPLES,
    show_progress: bool = False,
    warm: Models | None = None,
    groups: pd.Series | None = None,
) -> RefitDraws:
    """``samples`` customer resamples of ``summary``, each refitted (``model``: the purchase
    model chosen for the point values) and valued over the horizon. ``warm``: the point fit's
    (purchase model, Gamma-Gamma), to start each refit from; fitted here when not given.
    ``groups`` (a label per customer, e.g. the acquisition campaign, aligned with ``summary``):
    each replicate's mean monthly margin per group is kept too (``group_margins``: the payback
    interval)."""
    rng = np.random.default_rng(seed)
    rows = DistinctRows.of(summary)
    n = len(rows)
    ltv = np.full((samples, n), np.nan)
    weights = np.zeros((samples, n))
    repeat = np.full(samples, np.nan)
    fitted: list[Models] = []
    if warm is None:
        try:
            warm = rows.refit(np.ones(n), settings, model)
        except FitError:
            warm = None
    labels: tuple[str, ...] = ()
    codes = np.zeros(0, dtype=np.int64)
    monthly = None
    if groups is not None:
        factor = pd.factorize(pd.Series(groups, dtype="string").fillna(""), sort=True)
        codes, labels = factor[0].astype(np.int64), tuple(str(v) for v in factor[1])
        monthly = np.full((samples, len(labels), int(settings.horizon_months)), np.nan)
    desc = "ltv refits" if show_progress else None
    for b, (w, models) in enumerate(replicates(rows, settings, model, rng, samples, warm, desc)):
        if models is None:
            continue
        values = rows.customer_values(models, settings)
        new = float(new_customer_ltv(*models, settings)[0])
        if not (np.isfinite(values).all() and np.isfinite(new)):
            continue  # the refitted models' predictions broke down: counted as failed
        ltv[b], weights[b], repeat[b] = values, w, new
        if monthly is not None:
            monthly[b] = rows.group_monthly_margins(models, settings, w, codes, len(labels))
        fitted.append(models)
    return RefitDraws(ltv, weights, repeat, samples - len(fitted), fitted, labels, monthly)


def refit_new_customer(
    summary: pd.DataFrame,
    settings: LtvConfig,
    model: str,
    seed: int,
    samples: int,
    warm: Models | None = None,
) -> tuple[np.ndarray, int]:
    """A just-acquired customer's value over ``samples`` customer resamples of ``summary``
    (e.g. one campaign's customers): the resample's mean first purchase times the margin plus
    the refitted models' repeat value; NaN where a resample could not be fitted (or its
    warm-started fit did not converge), and how many."""
    rng = np.random.default_rng(seed)
    rows = DistinctRows.of(summary)
    first = summary["first_purchase_value"].to_numpy(float)
    draws = np.full(samples, np.nan)
    # a campaign's small resamples often run to a boundary; a warm start that does not converge
    # there is counted as failed rather than retried from every start (a walk to the boundary)
    fits = replicates(rows, settings, model, rng, samples, warm, retry=False)
    for b, (w, models) in enumerate(fits):
        if models is None or not w.sum():
            continue
        repeat = float(new_customer_ltv(*models, settings)[0])
        draws[b] = settings.gross_margin * float(w @ first) / float(w.sum()) + repeat
    return draws, int((~np.isfinite(draws)).sum())


def interval_record(
    ltv: np.ndarray, settings: LtvConfig, seed: int, refit: RefitDraws | None
) -> dict[str, Any]:
    """``intervals`` of ltv_params.json: the method, its refits, and the mean LTV's interval
    both ways (sampling only: the customers' point values resampled; refit: sampling and
    parameters), so a reader sees what the models' uncertainty adds."""
    method = "refit" if refit is not None and refit.samples else "sampling"
    rng = np.random.default_rng(seed)
    sampling = percentile_interval(bootstrap_means(ltv, max(settings.bootstrap_samples, 1), rng))
    mean_ltv: dict[str, Any] = {"mean": float(ltv.mean()), "confidence": CONFIDENCE}
    mean_ltv["sampling"] = list(sampling)
    if refit is not None and refit.samples:
        mean_ltv["refit"] = list(percentile_interval(refit.group_means(np.ones(len(ltv), bool))))
    return {
        "interval_method": method,
        "meaning": INTERVAL_METHODS[method],
        "refit_samples": refit.samples if refit is not None else 0,
        "refit_failed": refit.failed if refit is not None else 0,
        "mean_ltv": mean_ltv,
    }
