"""The coverage study: the population truth in closed form equals a large sample's mean, the
binomial helpers, and (make test-slow) the refit interval's coverage on small worlds lies in the
band a true coverage of 90-99% allows."""

from __future__ import annotations

import numpy as np
import pytest

from insightos_utils.config import LtvConfig
from insightos_utils.ltv.coverage import (
    coverage_band,
    coverage_study,
    population_value,
    wilson_interval,
)
from insightos_utils.ltv.models.bgnbd import BgNbd
from insightos_utils.ltv.models.gamma_gamma import GammaGamma
from insightos_utils.ltv.rfm import rfm_summary
from insightos_utils.ltv.simulate import simulate_transactions
from insightos_utils.ltv.value import customer_ltv

from .data import WORLD_BGNBD, WORLD_GAMMA_GAMMA


def test_population_value_is_the_mean_of_a_large_world() -> None:
    settings = LtvConfig(model="bgnbd", monthly_discount_rate=0.02, gross_margin=0.5)
    truth = population_value(
        WORLD_BGNBD, WORLD_GAMMA_GAMMA, settings, "2024-01-01", 84, "2025-06-30"
    )
    table = simulate_transactions(
        60_000, WORLD_BGNBD, WORLD_GAMMA_GAMMA, "2024-01-01", 84, "2025-06-30", seed=11
    )
    summary = rfm_summary(table, "2025-06-30", None, "W")
    values = customer_ltv(summary, BgNbd(WORLD_BGNBD), GammaGamma(WORLD_GAMMA_GAMMA), settings)
    ltv = values["ltv"].to_numpy()
    error = ltv.std() / np.sqrt(len(ltv))
    assert truth == pytest.approx(ltv.mean(), abs=4 * error)
    assert error < 0.03 * truth
    # a longer acquisition window makes customers younger at the end: more of them alive
    assert (
        population_value(WORLD_BGNBD, WORLD_GAMMA_GAMMA, settings, "2024-01-01", 300, "2025-06-30")
        > truth * 1.05
    )


def test_wilson_interval_and_coverage_band() -> None:
    low, high = wilson_interval(57, 60)
    assert low == pytest.approx(0.8630, abs=1e-3) and high == pytest.approx(0.9829, abs=1e-3)
    assert wilson_interval(60, 60)[1] == 1.0
    assert coverage_band(200) == (168, 200)  # Binomial(200, 0.90) 0.5% .. (200, 0.99) 99.5%
    assert coverage_band(2000) == (1765, 1990)  # 1800 - 2.58 * 13.4 .. 1980 + 2.58 * 4.45


@pytest.mark.slow
@pytest.mark.extended  # `make test-slow`
def test_refit_interval_covers_the_population_value() -> None:
    """40 small worlds (300 customers, 60 refits): the number of worlds whose refit 95%
    interval covers the population mean expected value (closed form) is inside the band a true
    coverage of 90-99% allows at 40 worlds (0.5% tails). The full study (200 worlds) is in
    benchmarks/bench_ltv.py --only-coverage."""
    worlds = 40
    study = coverage_study(worlds, 300, 60, WORLD_BGNBD, WORLD_GAMMA_GAMMA, first_seed=50)
    low, high = coverage_band(worlds)
    assert low <= study.covered("refit") <= high
    summary = study.summary()
    assert summary["median_width_refit"] > summary["median_width_sampling"]
