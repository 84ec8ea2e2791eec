"""lifetimes' ``customer_lifetime_value`` on our fitted parameters, with our month convention.

lifetimes counts a month as 30 days (freq D) or 4.345 weeks (freq W). Expressing time in units
``k`` times smaller, with ``k = lifetimes' month / our month``, makes its month exactly ours
(30.4375 days): recency and T are multiplied by k and alpha (a time scale) by k too.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from insightos_utils.ltv.units import periods_per_month

from .data import BetaGeoFitter, GammaGammaFitter

LIFETIMES_MONTH = {"D": 30.0, "W": 4.345, "M": 1.0}  # lifetimes' month, in each freq's units


def lifetimes_clv(
    bgnbd: dict[str, float],
    gamma_gamma: dict[str, float],
    customers: pd.DataFrame,
    time_unit: str,
    horizon_months: int,
    monthly_discount_rate: float,
) -> np.ndarray:
    """lifetimes' discounted CLV of ``customers`` (frequency, recency, T, monetary_value) with
    a month of 30.4375 days, from BG/NBD and Gamma-Gamma parameters on ``time_unit``."""
    scale = LIFETIMES_MONTH[time_unit] / periods_per_month(time_unit)
    bgf = BetaGeoFitter()
    bgf.params_ = pd.Series(
        {"r": bgnbd["r"], "alpha": bgnbd["alpha"] * scale, "a": bgnbd["a"], "b": bgnbd["b"]}
    )
    bgf.predict = bgf.conditional_expected_number_of_purchases_up_to_time
    ggf = GammaGammaFitter()
    ggf.params_ = pd.Series(gamma_gamma)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clv = ggf.customer_lifetime_value(
            bgf,
            customers["frequency"],
            customers["recency"] * scale,
            customers["T"] * scale,
            customers["monetary_value"],
            time=horizon_months,
            discount_rate=monthly_discount_rate,
            freq=time_unit,
        )
    return np.asarray(clv, dtype=float)
