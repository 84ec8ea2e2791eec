"""Retention of contractual customers by cohort: the sBG fitted to survival tables, and
``insightos retention --survival FILE --out DIR``.

The table has one row per cohort and period: ``cohort``, ``period`` (0 = the cohort's start,
then whole periods) and ``surviving`` (customers still there after that many renewals, or their
share of the cohort: a cohort whose period-0 value is 1 and whose values are all at most 1 is read
as shares). Each cohort is fitted on its own (``models.sbg``) and valued: expected lifetime,
discounted expected lifetime (DEL, payments at the start of each period) and expected lifetime
value = DEL x margin x price per period; DERL is the discounted expected residual lifetime of a
customer still there at the last observed period.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from insightos_utils.errors import InputError
from insightos_utils.io_utils import atomic_write_json
from insightos_utils.ltv.models.base import FitError
from insightos_utils.ltv.models.sbg import (
    SbgParams,
    ShiftedBetaGeometric,
    cohort_rows,
    discounted_expected_lifetime,
    discounted_expected_residual_lifetime,
    expected_lifetime,
    retention_rates,
    survival,
)

RETENTION_PARAMS_FILE = "retention_params.json"
SURVIVAL_COLUMNS = ("cohort", "period", "surviving")


def read_survival(path: str | Path) -> pd.DataFrame:
    """A survival table (CSV or Parquet) checked against its contract."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    table = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    return check_survival(table, str(path))


def check_survival(table: pd.DataFrame, source: str = "survival table") -> pd.DataFrame:
    """Columns present, periods 0..T without gaps per cohort, surviving finite, >= 0 and never
    rising; raises ``InputError`` naming the cohort otherwise."""
    missing = [c for c in SURVIVAL_COLUMNS if c not in table.columns]
    if missing:
        raise InputError(f"{source}: missing column(s) {', '.join(missing)}")
    table = table.assign(cohort=table["cohort"].astype(str))
    period = pd.to_numeric(table["period"], errors="coerce")
    surviving = pd.to_numeric(table["surviving"], errors="coerce")
    if period.isna().any() or (period != period.round()).any() or (period < 0).any():
        raise InputError(f"{source}: 'period' must be whole numbers >= 0 (0 = the cohort's start)")
    if surviving.isna().any() or (surviving < 0).any() or not np.isfinite(surviving).all():
        raise InputError(f"{source}: 'surviving' must be finite numbers >= 0")
    table = table.assign(period=period.astype(int), surviving=surviving.astype(float))
    table = table.sort_values(["cohort", "period"]).reset_index(drop=True)
    for name, rows in table.groupby("cohort", sort=True):
        periods = rows["period"].to_numpy()
        if periods[0] != 0 or (np.diff(periods) != 1).any():
            raise InputError(
                f"{source}: cohort '{name}' must have periods 0, 1, 2, ... without gaps or repeats"
            )
        values = rows["surviving"].to_numpy()
        if len(values) < 2:
            raise InputError(f"{source}: cohort '{name}' needs at least periods 0 and 1")
        if (np.diff(values) > 1e-12).any():
            raise InputError(f"{source}: cohort '{name}': 'surviving' rises between periods")
        if values[0] <= 0:
            raise InputError(f"{source}: cohort '{name}' starts with no customers")
    return table


def is_share(values: np.ndarray) -> bool:
    """Shares of the cohort (period 0 is 1, nothing above 1) rather than counts."""
    return bool(abs(values[0] - 1.0) < 1e-9 and (values <= 1.0 + 1e-9).all())


def value_cohort(
    model: ShiftedBetaGeometric,
    observed: np.ndarray | None,
    *,
    price: float,
    margin: float,
    discount_rate: float,
    project: int,
    shares: bool = False,
) -> dict[str, Any]:
    """One cohort's entry of retention_params.json from its fitted sBG."""
    params, record = model.params, model.fitted()
    last = 0 if observed is None else len(observed) - 1
    periods = np.arange(0, last + project + 1)
    lifetime = discounted_expected_lifetime(params, discount_rate)
    entry: dict[str, Any] = {
        "alpha": params.alpha,
        "beta": params.beta,
        "log_likelihood": record.log_likelihood,
        "standard_errors": None if shares else record.standard_errors,
        "standard_error_note": (
            "none from shares: the standard errors need the cohort's customer counts"
            if shares
            else record.standard_error_note
        ),
        "surviving_kind": "share" if shares else "count",
        "periods_observed": last,
        "mean_churn_probability": params.alpha / (params.alpha + params.beta),
        "retention": retention_rates(params, periods[1:]).tolist(),
        "survival": survival(params, periods).tolist(),
        "expected_lifetime": _finite_or_none(expected_lifetime(params)),
        "discounted_expected_lifetime": _finite_or_none(lifetime),
        "discounted_expected_residual_lifetime": _finite_or_none(
            float(discounted_expected_residual_lifetime(params, last, discount_rate))
        ),
        "expected_lifetime_value": _finite_or_none(lifetime * margin * price),
        "price": price,
        "margin": margin,
        "discount_rate": discount_rate,
        "convergence": record.convergence.as_dict(),
        "boundary": [b.as_dict() for b in record.boundary],
        "notes": list(record.notes),
    }
    if observed is not None:
        start = observed[0]
        entry["observed_survival"] = (observed / start).tolist()
        entry["observed_retention"] = (observed[1:] / np.maximum(observed[:-1], 1e-300)).tolist()
    return entry


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def fit_survival_table(
    table: pd.DataFrame,
    *,
    price: float = 1.0,
    margin: float = 1.0,
    discount_rate: float = 0.1,
    project: int = 5,
    penalizer: float = 0.0,
) -> dict[str, Any]:
    """``{"cohorts": {NAME: {...}}}`` for a checked survival table; a cohort the data cannot
    identify (nobody left) gets ``{"state": "not fitted", "reason": ...}``."""
    cohorts: dict[str, Any] = {}
    for name, rows in table.groupby("cohort", sort=True):
        values = rows["surviving"].to_numpy(float)
        shares = is_share(values)
        try:
            model = ShiftedBetaGeometric(penalizer=penalizer).fit(cohort_rows(values))
        except FitError as error:
            cohorts[str(name)] = {"state": "not fitted", "reason": str(error)}
            continue
        entry = value_cohort(
            model,
            values,
            price=price,
            margin=margin,
            discount_rate=discount_rate,
            project=project,
            shares=shares,
        )
        cohorts[str(name)] = {"state": "ok", **entry}
    return {
        "model": "shifted-beta-geometric (Fader and Hardie 2007)",
        "period_convention": "period 0 = the cohort's start; payments at the start of each period",
        "cohorts": cohorts,
    }


def retention_command(
    survival_path: str | Path,
    out_dir: str | Path,
    *,
    price: float = 1.0,
    margin: float = 1.0,
    discount_rate: float = 0.1,
    project: int = 5,
    penalizer: float = 0.0,
) -> dict[str, Any]:
    """Read the survival table, fit every cohort, write retention_params.json."""
    table = read_survival(survival_path)
    result = fit_survival_table(
        table,
        price=price,
        margin=margin,
        discount_rate=discount_rate,
        project=project,
        penalizer=penalizer,
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / RETENTION_PARAMS_FILE, {"source": str(survival_path), **result})
    return result


def cohort_params(entry: dict[str, Any]) -> SbgParams:
    """The sBG parameters of one cohort's entry."""
    return SbgParams(float(entry["alpha"]), float(entry["beta"]))
