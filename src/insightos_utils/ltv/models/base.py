"""The shared base of every model: maximum likelihood on distinct weighted rows.

A model module adds only its parameters, its likelihood (with its analytic gradient) and its
predictions, as ``lifetimes``' fitters do over ``BaseFitter``. This base owns the rest:

- **Working parameters.** The optimiser sees a vector ``theta`` (by default the logarithms of
  the parameters) inside bounds; a model may choose another transform (``to_natural`` and its
  Jacobian), e.g. a ratio that stays finite where a parameter runs to infinity.
- **The objective** is the weighted mean negative log-likelihood over distinct rows (weights =
  how many customers share a row) plus ``penalizer * sum(params ** 2)``, as in ``lifetimes``.
- **Several starts**, each run with scipy's bounded quasi-Newton optimiser (L-BFGS-B); the best
  is kept, and how many starts reached it is recorded.
- **Convergence is measured**, never assumed: the projected gradient norm at the optimum, the
  iterations, the optimiser's own message, the starts that agree (``Convergence``).
- **Standard errors** from the observed information (the Hessian of the objective, by central
  differences of the analytic gradient) with the delta method; ``None`` with the reason where
  the Hessian is singular or a parameter sits on a boundary.
- **Boundary optima** are findings (``Boundary``): a model checks its limits (``_limits``) and,
  where the data push a parameter to one, reports the limit and predicts from the limiting model.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import numpy as np
from scipy.optimize import minimize
from threadpoolctl import ThreadpoolController

from insightos_utils.errors import InsightOSError

OPTIMIZER = "scipy L-BFGS-B on log-parameters"
LOG_BOUND = 18.42  # parameters searched within exp(-18.42) .. exp(18.42), about 1e-8 .. 1e8
MAX_ITERATIONS = 2000
GRADIENT_TOLERANCE = 1e-5  # projected gradient of the per-customer mean objective
AGREEMENT = 1e-6  # starts whose objective is within this (per customer) of the best agree
HESSIAN_STEP = 1e-5
# Where the objective is a sum of large cancelling terms (e.g. the homogeneous-spend model with a
# shape p in the thousands) its rounding noise can stop L-BFGS-B (relative reduction of f) with
# the gradient just above GRADIENT_TOLERANCE. The optimum is then judged by the Newton
# decrement g' H^-1 g / 2: what the per-customer mean log-likelihood could still gain by one
# Newton step. Below this it is at the optimum as far as the objective can be evaluated.
DECREMENT_TOLERANCE = 1e-10
CONDITION_LIMIT = 1e12
# Draws from the asymptotic normal are refused when a working parameter's standard error is
# above this (a factor e^3 = 20 either way on a log-parameter): the approximation is meaningless.
DRAW_SD_LIMIT = 3.0


_THREADPOOLS: list[ThreadpoolController] = []


def _one_blas_thread() -> Any:
    """A context with one BLAS thread; the controller (a scan of loaded libraries, about 0.1 s)
    is made once per process."""
    if not _THREADPOOLS:
        _THREADPOOLS.append(ThreadpoolController())
    return _THREADPOOLS[0].limit(limits=1, user_api="blas")


class FitError(InsightOSError):
    """The data cannot identify a model: the message says what the data lacks and what would
    fix it. Exit status 2, like bad input: the user acts on the data, not on the code."""

    exit_status = 2


@dataclass(frozen=True)
class Boundary:
    """A boundary optimum: the likelihood is highest where a parameter reaches a limit."""

    model: str
    parameter: str
    limit: str
    meaning: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass
class Convergence:
    """What the optimiser measured at the optimum it returned."""

    converged: bool
    optimizer: str
    message: str
    iterations: int
    function_evaluations: int
    gradient_norm: float
    gradient_tolerance: float
    starts: int
    starts_converged: int
    starts_at_optimum: int
    reason: str | None = None
    model: str = ""
    newton_decrement: float | None = None  # measured where the gradient alone did not settle it

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Optimum:
    """The best point of a maximisation, in working and natural parameters."""

    theta: np.ndarray
    natural: np.ndarray
    log_likelihood: float
    objective: float
    convergence: Convergence
    at_lower: np.ndarray
    at_upper: np.ndarray


@dataclass
class FitRecord:
    """What one fit measured: rows used, log-likelihood, precision, convergence, boundaries."""

    log_likelihood: float
    n_customers: int
    n_fit_rows: int
    standard_errors: dict[str, float | None]
    standard_error_note: str | None
    convergence: Convergence
    boundary: list[Boundary] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    covariance: np.ndarray | None = None  # of the working parameters, None where singular
    theta: np.ndarray | None = None  # the working parameters at the optimum


@dataclass(frozen=True)
class WeightedRows:
    """Distinct data rows (one array per column) and how many customers each stands for;
    ``aux`` holds what a model precomputes once per fit (e.g. distinct frequencies)."""

    columns: dict[str, np.ndarray]
    weights: np.ndarray
    aux: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def total_weight(self) -> float:
        return float(self.weights.sum())

    def __len__(self) -> int:
        return len(self.weights)


class LikelihoodModel(ABC):
    """A model fitted by maximum likelihood over ``WeightedRows``.

    Subclasses set ``name``, ``title`` and ``parameter_names`` and implement ``row_terms``
    (per-row log-likelihood and its gradient in natural parameters) and ``starting_points``;
    they may override ``to_natural`` / ``jacobian`` / ``to_working`` (default: logarithms) and
    ``bounds``.
    """

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    parameter_names: ClassVar[tuple[str, ...]] = ()
    gradient: ClassVar[str] = "analytic gradient"

    def __init__(self, penalizer: float = 0.0) -> None:
        self.penalizer = penalizer
        self.record: FitRecord | None = None
        # False for a bootstrap refit (``bootstrap_refit``)
        self.measure_precision = True
        self.optimiser_gtol = 1e-10
        self.retry_starts = True  # False: a warm start that does not converge is the answer

    def bootstrap_refit(self) -> None:
        """Fit as one replicate of a bootstrap, whose replicates are the uncertainty: no Hessian
        (standard errors), and the optimiser stops once the projected gradient is a tenth of
        ``GRADIENT_TOLERANCE`` (instead of polishing to rounding noise: the parameters move by
        about 1e-5 of themselves, far inside the bootstrap's spread). Convergence is measured
        as for every fit."""
        self.measure_precision = False
        self.optimiser_gtol = GRADIENT_TOLERANCE / 10

    # --- what a model defines ----------------------------------------------------------------

    @abstractmethod
    def row_terms(self, natural: np.ndarray, rows: WeightedRows) -> tuple[np.ndarray, np.ndarray]:
        """Per-row log-likelihood (n,) and its gradient in natural parameters (n, k)."""

    @abstractmethod
    def starting_points(self, rows: WeightedRows) -> list[np.ndarray]:
        """Natural parameter vectors to start the optimiser from."""

    def mean_terms(self, natural: np.ndarray, rows: WeightedRows) -> tuple[float, np.ndarray]:
        """Weighted mean log-likelihood and its gradient (natural parameters). A model may
        override this with an aggregated form (sums over distinct frequencies or ages instead
        of rows); a test checks it equals this default."""
        ll, grad = self.row_terms(natural, rows)
        weights = rows.weights / rows.total_weight
        return float(weights @ ll), weights @ grad

    def to_natural(self, theta: np.ndarray) -> np.ndarray:
        return np.exp(theta)

    def to_working(self, natural: np.ndarray) -> np.ndarray:
        return np.log(natural)

    def jacobian(self, theta: np.ndarray) -> np.ndarray:
        """d natural / d theta (k, k)."""
        return np.diag(np.exp(theta))

    def bounds(self) -> list[tuple[float, float]]:
        return [(-LOG_BOUND, LOG_BOUND)] * len(self.parameter_names)

    def penalty_scale(self) -> np.ndarray:
        """Multipliers of the natural parameters inside the penalty ``sum((scale * x) ** 2)``
        (lifetimes penalises every parameter, BG/NBD's alpha on its rescaled clock)."""
        return np.ones(len(self.parameter_names))

    # --- the objective ----------------------------------------------------------------------

    def _objective(self, theta: np.ndarray, rows: WeightedRows) -> tuple[float, np.ndarray]:
        """Weighted mean negative log-likelihood + penalty, and its gradient in ``theta``."""
        natural = self.to_natural(theta)
        with np.errstate(all="ignore"):
            mean_ll, mean_grad = self.mean_terms(natural, rows)
            value = -mean_ll
            gradient = -mean_grad
            if self.penalizer:
                scale = self.penalty_scale()
                value += self.penalizer * float(np.sum((scale * natural) ** 2))
                gradient = gradient + 2 * self.penalizer * scale**2 * natural
            gradient_theta = self.jacobian(theta).T @ gradient
        if not math.isfinite(value) or not np.isfinite(gradient_theta).all():
            return math.inf, np.zeros_like(theta)
        return value, gradient_theta

    def total_log_likelihood(self, natural: np.ndarray, rows: WeightedRows) -> float:
        ll, _ = self.row_terms(np.asarray(natural, dtype=float), rows)
        return float(rows.weights @ ll)

    # --- the optimiser ----------------------------------------------------------------------

    def _projected_gradient(
        self, theta: np.ndarray, gradient: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        low = np.array([b[0] for b in self.bounds()])
        high = np.array([b[1] for b in self.bounds()])
        at_lower = theta <= low + 1e-9
        at_upper = theta >= high - 1e-9
        projected = gradient.copy()
        projected[at_lower & (gradient > 0)] = 0.0  # pushing below a lower bound
        projected[at_upper & (gradient < 0)] = 0.0
        return projected, at_lower, at_upper

    def _run(
        self,
        rows: WeightedRows,
        start: np.ndarray,
        low: np.ndarray,
        high: np.ndarray,
        best: float = math.inf,
    ) -> tuple[float, Any, float, bool] | None:
        """One L-BFGS-B run: objective, scipy's result, projected gradient norm, and whether it
        stopped on reaching the ``best`` objective of an earlier start (it joined that optimum,
        no need to polish it twice). None when the start has no working parameters."""
        with np.errstate(all="ignore"):
            theta0 = np.clip(self.to_working(np.asarray(start, dtype=float)), low, high)
        if not np.isfinite(theta0).all():
            return None
        joined = [False]

        def reached_best(intermediate_result: Any) -> None:  # scipy passes it by this name
            if intermediate_result.fun <= best + AGREEMENT / 10:
                joined[0] = True
                raise StopIteration

        result = minimize(
            self._objective,
            theta0,
            args=(rows,),
            jac=True,
            method="L-BFGS-B",
            bounds=list(zip(low, high, strict=True)),
            callback=reached_best if math.isfinite(best) else None,
            options={
                "maxiter": MAX_ITERATIONS,
                "ftol": 1e-15,
                "gtol": self.optimiser_gtol,
                "maxls": 50,
            },
        )
        value, gradient = self._objective(result.x, rows)
        projected, _, _ = self._projected_gradient(result.x, gradient)
        return value, result, float(np.max(np.abs(projected), initial=0.0)), joined[0]

    def maximise(self, rows: WeightedRows, starts: Sequence[np.ndarray] | None = None) -> Optimum:
        """Maximise the likelihood from every start; the best point and what was measured."""
        bounds = self.bounds()
        low = np.array([b[0] for b in bounds])
        high = np.array([b[1] for b in bounds])
        natural_starts = list(starts) if starts is not None else self.starting_points(rows)
        # one BLAS thread: L-BFGS-B's small vector steps pay more in thread hand-offs than
        # they gain (about 10x slower per iteration with 2 threads on a busy machine)
        runs = []
        with _one_blas_thread():
            best = math.inf
            for start in natural_starts:
                run = self._run(rows, start, low, high, best)
                if run is not None and math.isfinite(run[0]):
                    runs.append(run)
                    if not run[3] and run[0] < best:
                        best = run[0]
        finite = [run for run in runs if not run[3]]  # the runs that went to their own end
        if not finite:
            raise FitError(
                f"{self.title}: the likelihood is not finite at any starting point; the data "
                "hold values the model cannot describe (check for zero or negative amounts)."
            )
        best_value, best_result, best_norm, _ = min(finite, key=lambda run: run[0])
        converged_runs = [run for run in runs if run[2] <= GRADIENT_TOLERANCE]
        agreeing = [run for run in runs if run[0] - best_value <= AGREEMENT]
        theta = np.asarray(best_result.x, dtype=float)
        _, gradient = self._objective(theta, rows)
        _, at_lower, at_upper = self._projected_gradient(theta, gradient)
        iterations = int(best_result.nit)
        converged = best_norm <= GRADIENT_TOLERANCE and iterations < MAX_ITERATIONS
        decrement = None
        if not converged and iterations < MAX_ITERATIONS:
            decrement = self._newton_decrement(theta, gradient, at_lower | at_upper, rows)
            converged = decrement is not None and decrement <= DECREMENT_TOLERANCE
        reason = None
        if not converged:
            reason = (
                f"stopped after {iterations} iterations (limit {MAX_ITERATIONS}) "
                if iterations >= MAX_ITERATIONS
                else f"stopped after {iterations} iterations "
            ) + (
                f"with a projected gradient norm of {best_norm:.3g}, above the tolerance "
                f"{GRADIENT_TOLERANCE:g}"
            )
            if decrement is not None:
                reason += (
                    f", and one Newton step would still gain {decrement:.3g} in mean "
                    f"log-likelihood (above {DECREMENT_TOLERANCE:g})"
                )
        message = str(best_result.message)
        convergence = Convergence(
            model=self.title,
            converged=bool(converged),
            optimizer=f"{OPTIMIZER}, {self.gradient}",
            message=message,
            iterations=iterations,
            function_evaluations=int(best_result.nfev),
            gradient_norm=best_norm,
            gradient_tolerance=GRADIENT_TOLERANCE,
            starts=len(natural_starts),
            starts_converged=len(converged_runs),
            starts_at_optimum=len(agreeing),
            reason=reason,
            newton_decrement=decrement,
        )
        natural = self.to_natural(theta)
        return Optimum(
            theta=theta,
            natural=natural,
            log_likelihood=self.total_log_likelihood(natural, rows),
            objective=best_value,
            convergence=convergence,
            at_lower=at_lower,
            at_upper=at_upper,
        )

    def _newton_decrement(
        self, theta: np.ndarray, gradient: np.ndarray, on_bound: np.ndarray, rows: WeightedRows
    ) -> float | None:
        """g' H^-1 g / 2 over the parameters off their bounds; None where the Hessian there is
        not positive definite (no quadratic model to judge by)."""
        free = ~on_bound
        if not free.any():
            return 0.0
        matrix = self.hessian(theta, rows)[np.ix_(free, free)]
        g = gradient[free]
        if not (np.isfinite(matrix).all() and np.isfinite(g).all()):
            return None
        try:
            factor = np.linalg.cholesky(matrix)
        except np.linalg.LinAlgError:
            return None
        solved = np.linalg.solve(factor, g)
        return float(solved @ solved / 2)

    # --- precision --------------------------------------------------------------------------

    def hessian(self, theta: np.ndarray, rows: WeightedRows) -> np.ndarray:
        """Hessian of the mean objective in working parameters (central differences of the
        analytic gradient), symmetrised."""
        k = len(theta)
        matrix = np.empty((k, k))
        for i in range(k):
            step = HESSIAN_STEP * max(1.0, abs(theta[i]))
            up, down = theta.copy(), theta.copy()
            up[i] += step
            down[i] -= step
            matrix[:, i] = (self._objective(up, rows)[1] - self._objective(down, rows)[1]) / (
                2 * step
            )
        return (matrix + matrix.T) / 2

    def precision(
        self, optimum: Optimum, rows: WeightedRows
    ) -> tuple[dict[str, float | None], str | None, np.ndarray | None]:
        """Standard errors of the natural parameters, a note where they are missing, and the
        working parameters' covariance (None where the Hessian is singular)."""
        names = self.parameter_names
        on_bound = optimum.at_lower | optimum.at_upper
        if on_bound.any():
            at = ", ".join(n for n, hit in zip(names, on_bound, strict=True) if hit)
            note = (
                f"{self.title}: no standard errors, {at} reached the edge of the search "
                "(the likelihood keeps rising towards a limit there)"
            )
            return dict.fromkeys(names), note, None
        matrix = self.hessian(optimum.theta, rows)
        eigenvalues = np.linalg.eigvalsh(matrix) if np.isfinite(matrix).all() else None
        if (
            eigenvalues is None
            or eigenvalues.min() <= 0
            or eigenvalues.max() / eigenvalues.min() > CONDITION_LIMIT
        ):
            condition = (
                "not finite"
                if eigenvalues is None
                else "not positive definite"
                if eigenvalues.min() <= 0
                else f"condition number {eigenvalues.max() / eigenvalues.min():.2g}"
            )
            note = (
                f"{self.title}: no standard errors, the Hessian at the optimum is singular "
                f"({condition}): the likelihood is flat in some direction, so the data do not "
                "pin every parameter down"
            )
            return dict.fromkeys(names), note, None
        covariance = np.linalg.inv(matrix) / rows.total_weight
        jac = self.jacobian(optimum.theta)
        natural_cov = jac @ covariance @ jac.T
        errors = {n: float(math.sqrt(v)) for n, v in zip(names, np.diag(natural_cov), strict=True)}
        return dict(errors), None, covariance

    # --- the fitted record ------------------------------------------------------------------

    def fitted(self) -> FitRecord:
        """The fit's record; a model built from parameters has none."""
        if self.record is None:
            raise ValueError(f"{self.title} model has not been fitted")
        return self.record

    def fit_rows(
        self,
        rows: WeightedRows,
        n_customers: int,
        starts: Sequence[np.ndarray] | None = None,
        warm: np.ndarray | None = None,
    ) -> Optimum:
        """Maximise (from ``starts``, or the model's own starting points), measure precision,
        and keep the record; returns the optimum.

        ``warm`` (natural parameters, e.g. the fit of the full data for a bootstrap resample) is
        tried alone first; only where that run does not converge (measured as always) are the
        other starts run as well, the warm one among them (unless ``retry_starts`` is False:
        then that run stands, recorded as not converged)."""
        usable = warm is not None and bool(np.isfinite(warm).all() and (np.asarray(warm) > 0).all())
        optimum = None
        if usable:
            try:
                optimum = self.maximise(rows, [np.asarray(warm, dtype=float)])
            except FitError:
                optimum = None
            if optimum is not None and not optimum.convergence.converged and self.retry_starts:
                optimum = None
        if optimum is None:
            if usable:
                own = list(starts) if starts is not None else self.starting_points(rows)
                starts = [np.asarray(warm, dtype=float), *own]
            optimum = self.maximise(rows, starts)
        if self.measure_precision:
            errors, note, covariance = self.precision(optimum, rows)
        else:
            errors, covariance = dict.fromkeys(self.parameter_names), None
            note = f"{self.title}: standard errors not computed (a bootstrap refit)"
        self.record = FitRecord(
            log_likelihood=optimum.log_likelihood,
            n_customers=n_customers,
            n_fit_rows=len(rows),
            standard_errors=errors,
            standard_error_note=note,
            convergence=optimum.convergence,
            covariance=covariance,
            theta=optimum.theta,
        )
        if not optimum.convergence.converged:
            self.record.notes.append(
                f"{self.title} fit did not converge ({optimum.convergence.reason}; optimiser: "
                f"{optimum.convergence.message}): the figures come from the best point found."
            )
        if note:
            self.record.notes.append(note + ".")
        for i, name in enumerate(self.parameter_names):
            if optimum.at_lower[i] or optimum.at_upper[i]:
                direction = "0" if optimum.at_lower[i] else "infinity"
                self.record.boundary.append(
                    Boundary(
                        self.name,
                        name,
                        f"edge of the search ({direction})",
                        f"the {self.title} likelihood keeps rising as {name} goes to "
                        f"{direction}; no limiting model is implemented for this direction, so "
                        f"predictions use the value at the edge of the search "
                        f"({optimum.natural[i]:.3g})",
                    )
                )
        return optimum

    def natural_draws(self, n: int, rng: np.random.Generator) -> np.ndarray | None:
        """``n`` parameter vectors drawn from the fit's asymptotic normal distribution in working
        parameters (n, k); None where the Hessian gave no covariance or a working parameter's
        standard error is above ``DRAW_SD_LIMIT`` (not pinned down: normal draws mean nothing)."""
        record = self.fitted()
        if record.covariance is None or record.theta is None:
            return None
        if np.sqrt(np.diag(record.covariance)).max() > DRAW_SD_LIMIT:
            return None
        low = np.array([b[0] for b in self.bounds()])
        high = np.array([b[1] for b in self.bounds()])
        thetas = np.clip(
            rng.multivariate_normal(record.theta, record.covariance, size=n), low, high
        )
        return np.array([self.to_natural(theta) for theta in thetas])

    @property
    def log_likelihood(self) -> float:
        return self.fitted().log_likelihood

    @property
    def standard_errors(self) -> dict[str, float | None]:
        return self.fitted().standard_errors

    @property
    def convergence(self) -> Convergence:
        return self.fitted().convergence

    @property
    def boundary(self) -> list[Boundary]:
        return self.fitted().boundary

    @property
    def notes(self) -> list[str]:
        return self.fitted().notes


def weighted_rows(
    columns: dict[str, np.ndarray], weights: np.ndarray | None = None
) -> WeightedRows:
    """``WeightedRows`` from equal-length columns (weights default to one per row)."""
    arrays = {name: np.asarray(values, dtype=float) for name, values in columns.items()}
    length = len(next(iter(arrays.values())))
    counts = np.ones(length) if weights is None else np.asarray(weights, dtype=float)
    return WeightedRows(arrays, counts)


def unique_index(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct values of a column and each row's position among them (for cheap special
    functions: gammaln and digamma of a few hundred distinct frequencies, not a million)."""
    distinct, inverse = np.unique(values, return_inverse=True)
    return distinct, inverse.reshape(-1)


def positive_rows(
    columns: Sequence[Any], weights: Any = None
) -> tuple[list[np.ndarray], np.ndarray]:
    """Equal-length columns as float arrays and their weights (default one per row), keeping
    only the rows with a positive weight: a customer left out of a bootstrap resample (weight 0)
    is not in it, so e.g. the oldest customer's age is the resample's, as in a materialised
    resample."""
    arrays = [np.asarray(column, dtype=float) for column in columns]
    if weights is None:
        return arrays, np.ones(len(arrays[0]))
    counts = np.asarray(weights, dtype=float)
    keep = counts > 0
    if keep.all():
        return arrays, counts
    return [array[keep] for array in arrays], counts[keep]
