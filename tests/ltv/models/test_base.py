"""The optimiser base on small models whose answers are known in closed form: the optimum,
standard errors, a measured convergence record, a singular Hessian, and a parameter that runs
to the edge of the search."""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
import pytest

from insightos_utils.ltv.models import base
from insightos_utils.ltv.models.base import LikelihoodModel, WeightedRows, weighted_rows


class Normal(LikelihoodModel):
    """y ~ N(mu, sigma^2): mu untransformed, sigma on the log scale (a custom transform)."""

    name: ClassVar[str] = "normal"
    title: ClassVar[str] = "Normal"
    parameter_names: ClassVar[tuple[str, ...]] = ("mu", "sigma")

    def to_natural(self, theta: np.ndarray) -> np.ndarray:
        return np.array([theta[0], math.exp(theta[1])])

    def to_working(self, natural: np.ndarray) -> np.ndarray:
        return np.array([natural[0], math.log(natural[1])])

    def jacobian(self, theta: np.ndarray) -> np.ndarray:
        return np.diag([1.0, math.exp(theta[1])])

    def bounds(self) -> list[tuple[float, float]]:
        return [(-1e6, 1e6), (-20.0, 20.0)]

    def row_terms(self, natural: np.ndarray, rows: WeightedRows) -> tuple[np.ndarray, np.ndarray]:
        mu, sigma = natural
        z = (rows.columns["y"] - mu) / sigma
        ll = -0.5 * z**2 - math.log(sigma) - 0.5 * math.log(2 * math.pi)
        return ll, np.column_stack([z / sigma, (z**2 - 1) / sigma])

    def starting_points(self, rows: WeightedRows) -> list[np.ndarray]:
        return [np.array([0.0, 1.0]), np.array([50.0, 20.0]), np.array([-30.0, 0.1])]


class SumOfMeans(Normal):
    """y ~ N(mu1 + mu2, 1): only the sum is identified, so the Hessian is singular."""

    parameter_names: ClassVar[tuple[str, ...]] = ("mu1", "mu2")

    def to_natural(self, theta: np.ndarray) -> np.ndarray:
        return theta.copy()

    def to_working(self, natural: np.ndarray) -> np.ndarray:
        return natural.copy()

    def jacobian(self, theta: np.ndarray) -> np.ndarray:
        return np.eye(2)

    def bounds(self) -> list[tuple[float, float]]:
        return [(-1e6, 1e6), (-1e6, 1e6)]

    def row_terms(self, natural: np.ndarray, rows: WeightedRows) -> tuple[np.ndarray, np.ndarray]:
        residual = rows.columns["y"] - natural.sum()
        return -0.5 * residual**2, np.column_stack([residual, residual])

    def starting_points(self, rows: WeightedRows) -> list[np.ndarray]:
        return [np.array([0.0, 0.0])]


class Rate(LikelihoodModel):
    """Counts ~ Poisson(rate): with every count zero the optimum is rate -> 0, off the search."""

    name: ClassVar[str] = "rate"
    title: ClassVar[str] = "Rate"
    parameter_names: ClassVar[tuple[str, ...]] = ("rate",)

    def row_terms(self, natural: np.ndarray, rows: WeightedRows) -> tuple[np.ndarray, np.ndarray]:
        (rate,) = natural
        k = rows.columns["k"]
        return k * math.log(rate) - rate, (k / rate - 1)[:, None]

    def starting_points(self, rows: WeightedRows) -> list[np.ndarray]:
        return [np.array([1.0])]


def _sample() -> WeightedRows:
    values = np.random.default_rng(4).normal(3.0, 2.0, 500)
    distinct, counts = np.unique(np.round(values, 1), return_counts=True)
    return weighted_rows({"y": distinct}, counts)


def test_optimum_and_standard_errors_are_the_closed_form_ones() -> None:
    rows = _sample()
    model = Normal()
    model.fit_rows(rows, n_customers=500)
    y, w = rows.columns["y"], rows.weights
    mean = float(w @ y / w.sum())
    sd = math.sqrt(float(w @ (y - mean) ** 2 / w.sum()))
    record = model.fitted()
    optimum = model.maximise(rows)
    assert optimum.natural == pytest.approx([mean, sd], rel=1e-7)
    assert record.standard_errors["mu"] == pytest.approx(sd / math.sqrt(500), rel=1e-5)
    assert record.standard_errors["sigma"] == pytest.approx(sd / math.sqrt(1000), rel=1e-5)
    expected_ll = float(w @ (-0.5 * ((y - mean) / sd) ** 2)) - 500 * (
        math.log(sd) + 0.5 * math.log(2 * math.pi)
    )
    assert record.log_likelihood == pytest.approx(expected_ll, rel=1e-10)
    convergence = record.convergence
    assert convergence.converged and convergence.reason is None
    assert convergence.gradient_norm <= convergence.gradient_tolerance
    assert convergence.starts == 3 and convergence.starts_at_optimum == 3
    assert 0 < convergence.iterations < base.MAX_ITERATIONS and convergence.message
    assert convergence.model == "Normal" and record.standard_error_note is None


def test_convergence_is_measured_on_a_fit_stopped_early(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(base, "MAX_ITERATIONS", 2)
    model = Normal()
    model.fit_rows(_sample(), n_customers=500)
    convergence = model.convergence
    assert not convergence.converged
    assert convergence.iterations == 2 and convergence.gradient_norm > base.GRADIENT_TOLERANCE
    assert "limit 2" in (convergence.reason or "") and "ITERATIONS" in convergence.message.upper()
    assert any("did not converge" in note for note in model.notes)


def test_newton_decrement_is_what_one_newton_step_would_gain() -> None:
    """Normal(mu, sigma): mean objective's curvature in mu is 1 / sigma^2, so a point delta off
    the optimum in mu has decrement (delta / sigma)^2 / 2, the gain of one exact Newton step."""
    rows = _sample()
    model = Normal()
    optimum = model.maximise(rows)
    delta = 1e-3
    theta = optimum.theta + np.array([delta, 0.0])
    _, gradient = model._objective(theta, rows)
    decrement = model._newton_decrement(theta, gradient, np.array([False, False]), rows)
    sigma = optimum.natural[1]
    assert decrement == pytest.approx((delta / sigma) ** 2 / 2, rel=1e-3)
    gain = model._objective(theta, rows)[0] - optimum.objective
    assert decrement == pytest.approx(gain, rel=1e-2)  # the objective is quadratic in mu
    singular = SumOfMeans()
    flat = singular.maximise(rows).theta
    assert singular._newton_decrement(flat, np.ones(2), np.array([False, False]), rows) is None


def test_a_fit_stopped_by_the_objective_s_precision_is_judged_by_its_decrement(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A gradient tolerance no finite-precision objective could meet: the optimum is accepted
    on its Newton decrement (measured and recorded), and refused where that is too large."""
    monkeypatch.setattr(base, "GRADIENT_TOLERANCE", 0.0)
    model = Normal()
    model.fit_rows(_sample(), n_customers=500)
    convergence = model.convergence
    assert convergence.converged and convergence.reason is None
    assert convergence.newton_decrement is not None
    assert convergence.newton_decrement <= base.DECREMENT_TOLERANCE
    monkeypatch.setattr(base, "DECREMENT_TOLERANCE", -1.0)
    model = Normal()
    model.fit_rows(_sample(), n_customers=500)
    assert not model.convergence.converged
    assert "Newton step" in (model.convergence.reason or "")


def test_singular_hessian_gives_no_standard_errors_and_says_why() -> None:
    model = SumOfMeans()
    model.fit_rows(_sample(), n_customers=500)
    record = model.fitted()
    assert record.standard_errors == {"mu1": None, "mu2": None}
    assert "singular" in (record.standard_error_note or "") and record.covariance is None
    assert record.convergence.converged  # the sum is found: the optimum is a ridge, not a failure


def test_a_parameter_at_the_edge_of_the_search_is_reported() -> None:
    model = Rate()
    optimum = model.fit_rows(weighted_rows({"k": np.zeros(3)}, np.array([5.0, 2.0, 1.0])), 8)
    assert optimum.at_lower[0] and optimum.natural[0] == pytest.approx(math.exp(-base.LOG_BOUND))
    assert model.standard_errors == {"rate": None}
    assert "edge of the search" in (model.fitted().standard_error_note or "")
    assert model.convergence.converged  # the projected gradient is zero at the bound


def test_a_likelihood_that_is_nowhere_finite_is_a_fit_error() -> None:
    rows = weighted_rows({"y": np.array([np.nan, 1.0])})
    with pytest.raises(base.FitError, match="not finite at any starting point"):
        Normal().fit_rows(rows, 2)
