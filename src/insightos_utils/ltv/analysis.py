"""One LTV analysis: RFM summary, both fits, the holdout check, the refit, per-customer LTV,
and the parameters ltv_params.json records.

Without ``refit`` the calibration fit is the model and LTV stands at ``calibration_end``. With
``refit`` the models are fitted again on everything up to ``observation_end`` and LTV stands
there (the calibration fit is kept under ``validation`` in the parameters).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import pandas as pd
from tqdm import tqdm

from insightos_utils.config import LtvConfig
from insightos_utils.contract import parse_timestamp
from insightos_utils.ltv.choice import ModelChoice, choose, compare
from insightos_utils.ltv.models.base import FitError
from insightos_utils.ltv.models.bgnbd import BgNbd
from insightos_utils.ltv.models.gamma_gamma import (
    ConstantSpend,
    GammaGamma,
    IndependenceCheck,
    independence,
)
from insightos_utils.ltv.models.paretonbd import ParetoNbd
from insightos_utils.ltv.rfm import SUMMARY_COLUMNS, rfm_summary
from insightos_utils.ltv.units import (
    DAYS_PER_MONTH,
    PURCHASE_CONVENTION,
    month_convention,
    unit_days,
)
from insightos_utils.ltv.validation import HoldoutValidation, holdout_validation
from insightos_utils.ltv.value import customer_ltv


class NotEnoughData(FitError):
    """The data are valid but too thin for LTV: ``reason`` says what is missing, ``fix`` what
    data would help."""

    def __init__(self, reason: str, fix: str) -> None:
        super().__init__(f"{reason} {fix}")
        self.reason, self.fix = reason, fix


def check_repeat_customers(summary: pd.DataFrame, settings: LtvConfig, where: str) -> None:
    """Enough repeat buyers to fit the models (``[ltv] min_repeat_customers``)?"""
    repeaters = int((summary["frequency"].to_numpy() > 0).sum())
    if repeaters < settings.min_repeat_customers:
        raise NotEnoughData(
            f"Only {repeaters} of {len(summary):,} customers bought more than once by {where}; "
            f"lifetime value needs at least {settings.min_repeat_customers} repeat buyers "
            "([ltv] min_repeat_customers) to learn how often customers return and what they spend.",
            "A longer purchase history, a shorter holdout ([ltv] holdout_days) so that more "
            "purchases fall in the calibration period, or a lower min_repeat_customers.",
        )


@dataclass
class FittedModels:
    """The models fitted on one summary, with the independence check of its spend: BG/NBD
    always, Pareto/NBD where asked for (``[ltv] model`` auto or paretonbd); ``model`` names the
    purchase model that values customers (``purchases``)."""

    bgnbd: BgNbd
    gamma_gamma: GammaGamma
    independence: IndependenceCheck
    paretonbd: ParetoNbd | None = None
    model: str = "bgnbd"

    @property
    def purchases(self) -> BgNbd | ParetoNbd:
        """The purchase model that values customers."""
        if self.model == "paretonbd" and self.paretonbd is not None:
            return self.paretonbd
        return self.bgnbd

    def paretonbd_json(self) -> dict[str, Any]:
        if self.paretonbd is None:
            return {"paretonbd": None}
        record = self.paretonbd.fitted()
        limit = self.paretonbd.limit
        return {
            "paretonbd": self.paretonbd.params_dict(),
            "paretonbd_log_likelihood": record.log_likelihood,
            "paretonbd_fit_rows": record.n_fit_rows,
            "paretonbd_limit": (
                None
                if limit is None
                else {"model": "NBD (no dropout)", "r": limit.r, "alpha": limit.alpha}
            ),
        }

    def as_json(self) -> dict[str, Any]:
        bgnbd, gamma_gamma = self.bgnbd.fitted(), self.gamma_gamma.fitted()
        pareto = None if self.paretonbd is None else self.paretonbd.fitted()
        fits = {"bgnbd": bgnbd, "gamma_gamma": gamma_gamma}
        if pareto is not None:
            fits["paretonbd"] = pareto
        return {
            "model": self.model,
            **self.paretonbd_json(),
            "bgnbd": self.bgnbd.params_dict(),
            "gamma_gamma": self.gamma_gamma.params_dict(),
            "standard_errors": {name: fit.standard_errors for name, fit in fits.items()},
            "standard_error_notes": {name: fit.standard_error_note for name, fit in fits.items()},
            "limits": self.limits(),
            "boundary": [
                b.as_dict()
                for b in bgnbd.boundary + (pareto.boundary if pareto else []) + gamma_gamma.boundary
            ],
            "bgnbd_log_likelihood": bgnbd.log_likelihood,
            "n_customers": bgnbd.n_customers,
            "n_repeat_customers": gamma_gamma.n_customers,
            "bgnbd_fit_rows": bgnbd.n_fit_rows,
            "gamma_gamma_fit_rows": gamma_gamma.n_fit_rows,
            "frequency_monetary_correlation": self.independence.correlation,
            "independence_ok": self.independence.ok,
            "a_plus_b_below_1": self.bgnbd.a_plus_b_below_1,
            "convergence": {name: fit.convergence.as_dict() for name, fit in fits.items()},
        }

    def limits(self) -> dict[str, Any]:
        """The limiting models that value customers where an optimum is on a boundary."""
        limits: dict[str, Any] = {}
        nbd = self.bgnbd.limit
        if nbd is not None and nbd.limit is not None:
            limits["bgnbd"] = {
                "model": "Poisson (no dropout, one common rate)",
                "rate": nbd.limit.rate,
            }
        elif nbd is not None:
            limits["bgnbd"] = {"model": "NBD (no dropout)", "r": nbd.r, "alpha": nbd.alpha}
        spend = self.gamma_gamma.limit
        if isinstance(spend, ConstantSpend):
            limits["gamma_gamma"] = {
                "model": "constant spend per customer (inverse-gamma means)",
                "q": spend.q,
                "s": spend.s,
                "mean_value": spend.s / (spend.q - 1),
            }
        elif spend is not None:
            limits["gamma_gamma"] = {
                "model": "homogeneous spend (one common value per purchase)",
                "p": spend.p,
                "nu": spend.nu,
                "mean_value": spend.mean_value,
            }
        return limits

    @property
    def notes(self) -> list[str]:
        note = self.independence.note()
        pareto = self.paretonbd.notes if self.paretonbd is not None else []
        return self.bgnbd.notes + pareto + self.gamma_gamma.notes + ([note] if note else [])


def fit_models(
    summary: pd.DataFrame, settings: LtvConfig, model: str | None = None
) -> FittedModels:
    """BG/NBD, Pareto/NBD (when ``model``, default ``[ltv] model``, is auto or paretonbd) and
    Gamma-Gamma fitted on ``summary``; the independence check comes first and does not depend
    on any fit. ``model`` auto values with BG/NBD until ``choose`` has compared them."""
    which = settings.model if model is None else model
    check = independence(summary)
    bgnbd = BgNbd(penalizer=settings.penalizer).fit(summary)
    pareto = (
        ParetoNbd(penalizer=settings.penalizer).fit(summary)
        if which in ("auto", "paretonbd")
        else None
    )
    gamma_gamma = GammaGamma(penalizer=settings.penalizer).fit(summary)
    chosen = "paretonbd" if which == "paretonbd" else "bgnbd"
    return FittedModels(bgnbd, gamma_gamma, check, pareto, chosen)


def choose_model(
    calibration: pd.DataFrame, models: FittedModels, requested: str, with_holdout: bool
) -> ModelChoice:
    """The purchase model that values customers: the requested one, or under auto the one the
    holdout comparison picks (``choice.RULE``); the comparison is recorded whenever both ran."""
    fitted: dict[str, tuple[Any, float]] = {"bgnbd": (models.bgnbd, models.bgnbd.log_likelihood)}
    if models.paretonbd is not None:
        fitted["paretonbd"] = (models.paretonbd, models.paretonbd.log_likelihood)
    rows = compare(calibration, fitted) if with_holdout else []
    if requested != "auto":
        return ModelChoice(requested, requested, f'set by [ltv] model = "{requested}"', rows)
    if not with_holdout:
        return ModelChoice(
            "bgnbd", requested, "BG/NBD (the default): no holdout to compare the models on", rows
        )
    return choose(rows, requested)


@dataclass
class LtvAnalysis:
    """Everything one LTV run produced: the JSON parameters, the tables and the fits."""

    params: dict[str, Any]
    customer_ltv: pd.DataFrame
    summary: pd.DataFrame
    models: FittedModels
    holdout: HoldoutValidation | None
    validation_summary: pd.DataFrame | None
    choice: ModelChoice | None = None

    @property
    def bgnbd(self) -> BgNbd:
        return self.models.bgnbd

    @property
    def gamma_gamma(self) -> GammaGamma:
        return self.models.gamma_gamma

    @property
    def independence(self) -> IndependenceCheck:
        return self.models.independence


def analyse_ltv(
    transactions: pd.DataFrame,
    calibration_end: str | pd.Timestamp,
    observation_end: str | pd.Timestamp | None,
    settings: LtvConfig,
    *,
    refit: bool = False,
    show_progress: bool = False,
) -> LtvAnalysis:
    """Fit on the calibration period, check the forecast on the holdout, then compute LTV."""
    time_unit = settings.time_unit
    unit_days(time_unit)
    calibration_end = parse_timestamp(calibration_end)
    observation_end = parse_timestamp(
        calibration_end if observation_end is None else observation_end
    )
    with_holdout = observation_end > calibration_end
    steps = 3 + (2 if refit and with_holdout else 0)
    progress = tqdm(total=steps, desc="ltv", file=sys.stderr, disable=not show_progress)

    def step(label: str) -> None:
        progress.set_postfix_str(label)
        progress.update()

    with progress:
        calibration = rfm_summary(
            transactions, calibration_end, observation_end if with_holdout else None, time_unit
        )
        check_repeat_customers(
            calibration, settings, f"the calibration end ({calibration_end:%Y-%m-%d %H:%M})"
        )
        step("RFM summary")
        models = fit_models(calibration, settings)
        step("fits")
        choice = choose_model(calibration, models, settings.model, with_holdout)
        models.model = choice.model
        holdout = holdout_validation(calibration, models.purchases) if with_holdout else None
        fitted_through = calibration_end
        summary = calibration[[*SUMMARY_COLUMNS, "first_purchase_value"]]
        validation = None
        if refit and with_holdout:
            validation = {"calibration_end": calibration_end.isoformat(), **models.as_json()}
            summary = rfm_summary(transactions, observation_end, None, time_unit)
            step("refit: RFM summary")
            models = fit_models(summary, settings, choice.model)
            step("refit: fits")
            fitted_through = observation_end
        table = customer_ltv(summary, models.purchases, models.gamma_gamma, settings)
        step("LTV")
    params: dict[str, Any] = {
        "state": "ok",
        **models.as_json(),
        "time_unit": time_unit,
        "unit_days": unit_days(time_unit),
        "calibration_end": calibration_end.isoformat(),
        "observation_end": pd.Timestamp(observation_end).isoformat(),
        "fitted_through": fitted_through.isoformat(),
        "refit": bool(refit and with_holdout),
        "horizon_months": int(settings.horizon_months),
        "monthly_discount_rate": settings.monthly_discount_rate,
        "gross_margin": settings.gross_margin,
        "penalizer": settings.penalizer,
        "days_per_month": DAYS_PER_MONTH,
        "month_convention": month_convention(time_unit),
        "purchase_convention": PURCHASE_CONVENTION,
        "mean_ltv": float(table["ltv"].mean()),
        "total_ltv": float(table["ltv"].sum()),
        "model_choice": choice.as_dict(),
        "models_compared": choice.compared,
        "holdout": holdout.as_dict() if holdout else None,
        "validation": validation,
        "notes": models.notes,
    }
    return LtvAnalysis(
        params=params,
        customer_ltv=table,
        summary=summary,
        models=models,
        holdout=holdout,
        validation_summary=calibration if with_holdout else None,
        choice=choice,
    )
