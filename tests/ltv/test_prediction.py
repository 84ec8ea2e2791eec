"""Per-customer prediction intervals simulated from the fitted models: the simulated mean is the
closed-form expected LTV (every model and limit), the intervals are calibrated against realised
holdout values of a simulated world, draws can use refitted model pairs, and they are seeded."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from insightos_utils.config import LtvConfig
from insightos_utils.ltv.models.bgnbd import BgNbd, Nbd, Poisson
from insightos_utils.ltv.models.gamma_gamma import (
    ConstantSpend,
    GammaGamma,
    GammaGammaParams,
    HomogeneousSpend,
)
from insightos_utils.ltv.models.paretonbd import ParetoNbd, ParetoNbdParams
from insightos_utils.ltv.prediction import model_pairs, prediction_intervals, randomised_pit
from insightos_utils.ltv.rfm import rfm_summary
from insightos_utils.ltv.simulate import simulate_paretonbd, simulate_transactions
from insightos_utils.ltv.value import customer_ltv

from .data import WORLD_BGNBD, WORLD_GAMMA_GAMMA

# lighter-tailed spend than CDNOW's (q = 3.74 leaves the customer mean's fourth moment
# infinite, so a sample standard deviation is no measure of the Monte-Carlo error)
LIGHT_SPEND = GammaGammaParams(p=6.0, q=9.0, v=40.0)
PARETO = ParetoNbdParams(0.553, 10.578, 0.606, 11.669)
CALIBRATION_END = pd.Timestamp("2024-09-30")


def _summary(customers: int = 1500, seed: int = 1) -> pd.DataFrame:
    table = simulate_transactions(
        customers, WORLD_BGNBD, LIGHT_SPEND, "2024-01-01", 84, CALIBRATION_END, seed=seed
    )
    return rfm_summary(table, CALIBRATION_END, None, "W")


PAIRS = {
    "bgnbd + gamma-gamma": (BgNbd(WORLD_BGNBD), GammaGamma(LIGHT_SPEND)),
    "paretonbd + gamma-gamma": (ParetoNbd(PARETO), GammaGamma(LIGHT_SPEND)),
    "nbd + homogeneous": (Nbd(r=0.5, alpha=6.0), HomogeneousSpend(p=6.0, nu=0.2)),
    "poisson + constant": (Poisson(rate=0.1), ConstantSpend(q=9.0, s=240.0)),
}


@pytest.mark.parametrize("name", list(PAIRS))
def test_simulated_mean_is_the_expected_ltv(name: str) -> None:
    summary = _summary()
    purchases, spend = PAIRS[name]
    settings = LtvConfig(monthly_discount_rate=0.02, gross_margin=0.6)
    expected = customer_ltv(summary, purchases, spend, settings)["ltv"].to_numpy()
    draws = 400
    simulated = prediction_intervals(summary, [(purchases, spend)], settings, draws=draws, seed=3)
    error = math.sqrt(float(np.sum(simulated.sd**2)) / draws) / len(summary)
    assert simulated.mean.mean() == pytest.approx(expected.mean(), abs=4 * error)
    assert error < 0.02 * expected.mean()  # the check has teeth: discounting alone is ~12%
    assert (simulated.low >= 0).all() and (simulated.low <= simulated.high).all()


def _holdout_world(
    simulate: object, params: object, model: type[BgNbd] | type[ParetoNbd], settings: LtvConfig
) -> tuple[pd.DataFrame, tuple[object, GammaGamma], np.ndarray]:
    """A world observed to the calibration end, fitted there, and the realised discounted margin
    of each customer's purchases in the ``settings.horizon_months`` months after it (per UTC
    day, month = ceil(days / 30.4375), as the models count)."""
    end = CALIBRATION_END + pd.Timedelta(days=int(settings.horizon_months * 30.4375))
    table = simulate(3000, params, WORLD_GAMMA_GAMMA, "2024-01-01", 84, end, seed=7)  # type: ignore[operator]
    summary = rfm_summary(table, CALIBRATION_END, None, "W")
    pair = (model().fit(summary), GammaGamma().fit(summary))
    day = table["occurred_at"].dt.floor("D")
    later = table[day > CALIBRATION_END]
    month = np.ceil((later["occurred_at"].dt.floor("D") - CALIBRATION_END).dt.days / 30.4375)
    value = later["amount"] * (1 + settings.monthly_discount_rate) ** -month * settings.gross_margin
    realised = value.groupby(later["user_id"]).sum().reindex(summary.index, fill_value=0.0)
    return summary, pair, realised.to_numpy()


@pytest.mark.parametrize(
    ("simulate", "params", "model"),
    [(simulate_transactions, WORLD_BGNBD, BgNbd), (simulate_paretonbd, PARETO, ParetoNbd)],
    ids=["bgnbd", "paretonbd"],
)
def test_intervals_are_calibrated_on_the_realised_holdout(
    simulate: object, params: object, model: type[BgNbd] | type[ParetoNbd]
) -> None:
    """3,000 customers of a known world, their next 12 months realised. Under the true
    parameters the randomised PIT is uniform (a decile is 10% +- 0.55 points by chance; a
    simulator that forgets P(alive) is off by 9 points), so 80% of customers fall inside the
    central 80%. With the models fitted at the calibration end (their estimation error on top)
    the closed interval [q10, q90] covers more than 80%: most customers' value has an atom at 0
    that an end of the interval counts whole."""
    settings = LtvConfig()
    summary, fitted, realised = _holdout_world(simulate, params, model, settings)
    true = (model(params), GammaGamma(WORLD_GAMMA_GAMMA))  # type: ignore[arg-type]
    pit = randomised_pit(summary, [true], settings, realised, draws=200, seed=1)
    deciles = np.histogram(pit, bins=10, range=(0, 1))[0] / len(pit)
    assert np.abs(deciles - 0.1).max() < 0.025
    assert 0.76 <= float(np.mean((pit > 0.1) & (pit < 0.9))) <= 0.84
    intervals = prediction_intervals(summary, [fitted], settings, draws=200, seed=1)
    covered = (intervals.low <= realised) & (realised <= intervals.high)
    assert 0.80 <= covered.mean() <= 0.95
    assert (intervals.high == 0).mean() < 0.5  # not a degenerate "nothing happens" forecast


def test_draws_use_each_refitted_pair_and_are_seeded() -> None:
    summary = _summary(800, 2)
    settings = LtvConfig()
    low_rate = (Poisson(rate=0.01), HomogeneousSpend(p=6.0, nu=0.2))
    high_rate = (Poisson(rate=1.0), HomogeneousSpend(p=6.0, nu=0.2))
    one = prediction_intervals(summary, [low_rate], settings, draws=100, seed=5)
    again = prediction_intervals(summary, [low_rate], settings, draws=100, seed=5)
    assert np.array_equal(one.low, again.low) and np.array_equal(one.high, again.high)
    mixed = prediction_intervals(summary, [low_rate, None, high_rate], settings, draws=100, seed=5)
    assert mixed.model_pairs == 2 and "2 refitted model pairs" in mixed.meaning()
    # half the draws come from each pair: the mean is halfway, the interval spans both
    expected = [
        customer_ltv(summary, *pair, settings)["ltv"].to_numpy().mean()
        for pair in (low_rate, high_rate)
    ]
    assert mixed.mean.mean() == pytest.approx(np.mean(expected), rel=0.05)
    assert mixed.low.max() <= one.high.max() and mixed.high.min() > 10 * one.high.max()
    # one pair simulates (x, t_x, T) histories and scales by the spend; two equal pairs
    # simulate every (x, t_x, T, m): the same predictive distribution
    pair = PAIRS["bgnbd + gamma-gamma"]
    scaled = prediction_intervals(summary, [pair], settings, draws=2000, seed=6)
    general = prediction_intervals(summary, [pair, pair], settings, draws=2000, seed=7)
    assert scaled.simulated_rows < general.simulated_rows
    assert scaled.mean.mean() == pytest.approx(general.mean.mean(), rel=0.03)
    assert np.median(scaled.high) == pytest.approx(np.median(general.high), rel=0.04)


def test_model_pairs_accepts_fitted_models() -> None:
    class Fitted:
        purchases, gamma_gamma = BgNbd(WORLD_BGNBD), GammaGamma(LIGHT_SPEND)

    pairs = model_pairs([Fitted(), None, (Poisson(rate=1.0), HomogeneousSpend(p=1.0, nu=1.0))])
    assert len(pairs) == 2 and isinstance(pairs[0][0], BgNbd)
    with pytest.raises(ValueError, match="at least one"):
        prediction_intervals(_summary(100, 3), [None], LtvConfig())
