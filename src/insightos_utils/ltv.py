"""Customer lifetime value: RFM summary, BG/NBD and Gamma-Gamma, discounted LTV, LTV by campaign.

The models are fitted with ``lifetimes`` (``BetaGeoFitter``, ``GammaGammaFitter``); everything
around the fits — the RFM summary, the log-likelihood, the per-customer predictions and the
discounted LTV — is vectorised numpy of our own, tested equal to what ``lifetimes`` gives and
much faster on large data.

Conventions (stated once, used everywhere):

- Purchases are counted per customer per calendar day (UTC): several transactions on one day are
  one purchase whose value is their sum, as in Fader, Hardie and Lee (2005).
- ``frequency`` = repeat purchase days; ``recency`` = first to last purchase day; ``T`` = first
  purchase day to the calibration end's day. Both are whole days divided by the unit length
  ``UNIT_DAYS``: D = 1, W = 7 (the paper's weeks), M = 30.4375 (an average Gregorian month).
- ``monetary_value`` = mean of the repeat purchase days' totals (0 when frequency is 0).
- Period ends are instants: a transaction belongs to the calibration period when
  ``occurred_at <= calibration_end``, to the holdout when it falls in
  ``(calibration_end, observation_end]``. The command line reads a bare date as the end of that day.
- The LTV horizon counts months of ``DAYS_PER_MONTH`` = 30.4375 days, discounted at the end of
  each month: ``sum_i margin * E[value] * E[purchases in month i] / (1 + d) ** i``.
  (``lifetimes`` uses 30 days for D and 4.345 weeks for W; pass ``periods_per_month`` to match it.)
"""

from __future__ import annotations

import contextlib
import io
import math
import sys
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit, gammaln, hyp2f1
from tqdm import tqdm

from insightos_utils.contract import NO_CAMPAIGN, parse_timestamp
from insightos_utils.errors import InputError, InsightOSError
from insightos_utils.ingest.fastpath import marketing_fields, parse_numbers, parse_timestamps
from insightos_utils.io_utils import atomic_write_many, json_text

UNIT_DAYS: dict[str, float] = {"D": 1.0, "W": 7.0, "M": 30.4375}
DAYS_PER_MONTH = 30.4375
INDEPENDENCE_WARN_CORRELATION = 0.3
UNKNOWN_USER_CAMPAIGN = "(unknown user)"
TRANSACTION_COLUMNS = ("transaction_id", "user_id", "occurred_at", "amount")
CUSTOMER_LTV_COLUMNS = [
    "user_id",
    "frequency",
    "recency",
    "T",
    "monetary_value",
    "prob_alive",
    "expected_purchases",
    "ltv",
]
CAMPAIGN_LTV_COLUMNS = [
    "campaign",
    "customers",
    "ltv_mean",
    "ltv_ci_low",
    "ltv_ci_high",
    "spend",
    "cac",
    "ltv_to_cac",
    "ltv_to_cac_ci_low",
    "ltv_to_cac_ci_high",
    "payback_months",
]
FIT_HINT = (
    "Try a small penalizer (--penalizer 0.001, or [ltv] penalizer in insightos.toml), another "
    "time unit (--time-unit D, W or M), or a later calibration end with more repeat purchases."
)


# --- parameters ------------------------------------------------------------------------------


@dataclass(frozen=True)
class BgNbdParams:
    """BG/NBD parameters: purchase rate ~ Gamma(r, alpha), dropout probability ~ Beta(a, b)."""

    r: float
    alpha: float
    a: float
    b: float


@dataclass(frozen=True)
class GammaGammaParams:
    """Gamma-Gamma parameters of the spend per purchase: shape p, and q, v of its Gamma prior."""

    p: float
    q: float
    v: float


def unit_days(time_unit: str) -> float:
    """Length in days of one time unit (D, W or M)."""
    if time_unit not in UNIT_DAYS:
        raise InputError(f"time unit '{time_unit}' is not one of D, W, M (days, weeks, months)")
    return UNIT_DAYS[time_unit]


def periods_per_month(time_unit: str) -> float:
    """How many time units make one LTV month of ``DAYS_PER_MONTH`` days."""
    return DAYS_PER_MONTH / unit_days(time_unit)


# --- reading and checking transactions --------------------------------------------------------


def _bad_rows_message(source: str, column: str, rule: str, bad: np.ndarray, csv: bool) -> str:
    rows = np.flatnonzero(bad)
    # CSV: line 1 is the header, so data row i sits on line i + 2; Parquet rows count from 1.
    numbers = ", ".join(str(i + 2 if csv else i + 1) for i in rows[:5])
    where = f"first at lines {numbers}" if csv else f"first at rows {numbers}"
    return (
        f"{source}: column '{column}' {rule}; {len(rows)} bad row(s), {where}. Fix or remove "
        "them (or run `insightos ingest`, which sets bad rows aside in rejected_transactions.csv)."
    )


def _naive_utc(values: pd.Series, source: str, column: str, csv: bool) -> pd.Series:
    """A timestamp column as timezone-naive UTC; unparseable values are an InputError."""
    parsed = parse_timestamps(values)
    bad = parsed.isna().to_numpy()
    if bad.any():
        rule = "must hold ISO 8601 timestamps"
        raise InputError(_bad_rows_message(source, column, rule, bad, csv))
    return parsed


def check_transactions(
    transactions: pd.DataFrame, source: str = "transactions", csv: bool = False
) -> pd.DataFrame:
    """The contract's transactions table typed for LTV (user_id str, naive UTC time, float amount).

    Bad input is an ``InputError`` naming the column and the first offending rows: a missing
    column, an empty user_id, an unparseable timestamp, an amount that is not a number > 0, or a
    repeated transaction_id.
    """
    missing = [c for c in TRANSACTION_COLUMNS if c not in transactions.columns]
    if missing:
        raise InputError(
            f"{source}: missing column(s) {', '.join(missing)}; transactions need "
            f"{', '.join(TRANSACTION_COLUMNS)}"
        )
    typed = transactions.reset_index(drop=True).copy()
    user_id = typed["user_id"]
    empty = (user_id.isna() | (user_id.astype(str).str.strip() == "")).to_numpy()
    if empty.any():
        raise InputError(_bad_rows_message(source, "user_id", "must not be empty", empty, csv))
    typed["user_id"] = user_id.astype(str)
    typed["occurred_at"] = _naive_utc(typed["occurred_at"], source, "occurred_at", csv)
    amount = parse_numbers(typed["amount"])
    bad_amount = ~(amount.to_numpy() > 0)  # NaN (empty or not a number) fails too
    if bad_amount.any():
        rule = "must be a number > 0"
        raise InputError(_bad_rows_message(source, "amount", rule, bad_amount, csv))
    typed["amount"] = amount
    repeated = typed["transaction_id"].duplicated(keep="first").to_numpy()
    if repeated.any():
        rule = "must be unique (a transaction_id is repeated)"
        raise InputError(_bad_rows_message(source, "transaction_id", rule, repeated, csv))
    return typed


def read_transactions(path: str | Path) -> pd.DataFrame:
    """Read a contract transactions file (CSV or Parquet) and check it (``check_transactions``)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: transactions file not found")
    csv = path.suffix.lower() != ".parquet"
    try:
        if csv:
            table = pd.read_csv(path, dtype={"transaction_id": str, "user_id": str})
        else:
            table = pd.read_parquet(path)
    except Exception as error:  # unparseable file: name it and stop with exit 2
        raise InputError(
            f"{path}: cannot be read as {'CSV' if csv else 'Parquet'}: {error}"
        ) from error
    return check_transactions(table, source=str(path), csv=csv)


def parse_period_end(value: str | pd.Timestamp) -> pd.Timestamp:
    """A period end from the command line: a bare date (YYYY-MM-DD) means the end of that day."""
    stamp = parse_timestamp(value)
    if isinstance(value, str) and len(value.strip()) == 10:
        stamp = stamp + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1)
    return stamp


# --- RFM summary -----------------------------------------------------------------------------


def _day_numbers(stamps: pd.Series) -> np.ndarray:
    """Whole UTC days since 1970-01-01 for a naive datetime column of any resolution."""
    values = stamps
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        values = values.dt.tz_convert("UTC").dt.tz_localize(None)
    return values.to_numpy().astype("datetime64[D]").astype(np.int64)


def _day_of(stamp: pd.Timestamp) -> int:
    return int(np.datetime64(stamp.to_datetime64(), "D").astype(np.int64))


def _daily_purchases(
    codes: np.ndarray, days: np.ndarray, amounts: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Collapse transactions to one purchase per (customer code, day): codes, days, day totals.

    The result is sorted by customer code, then day.
    """
    first_day = int(days.min())
    span = int(days.max()) - first_day + 1
    key = codes.astype(np.int64) * span + (days - first_day)
    if (key[1:] >= key[:-1]).all():  # already in customer, time order: no sort needed
        sorted_key, sorted_amounts = key, amounts
    else:
        order = np.argsort(key)
        sorted_key, sorted_amounts = key[order], amounts[order]
    starts = np.flatnonzero(np.r_[True, sorted_key[1:] != sorted_key[:-1]])
    totals = np.add.reduceat(sorted_amounts, starts)
    unique_key = sorted_key[starts]
    return unique_key // span, unique_key % span + first_day, totals


def _customer_starts(codes: np.ndarray) -> np.ndarray:
    return np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])


def rfm_summary(
    transactions: pd.DataFrame,
    calibration_end: str | pd.Timestamp,
    observation_end: str | pd.Timestamp | None = None,
    time_unit: str = "W",
) -> pd.DataFrame:
    """Frequency, recency, T and monetary value per customer at ``calibration_end``.

    One row per customer with a purchase on or before ``calibration_end`` (index ``user_id``,
    sorted). With ``observation_end``, adds the holdout columns ``frequency_holdout`` (purchase
    days in the holdout), ``monetary_value_holdout`` (mean day total there, 0 when none) and
    ``duration_holdout``. Equal to ``lifetimes.utils.calibration_and_holdout_data(freq="D")``
    divided by the unit length, except that the holdout monetary value also sums per day.
    """
    length = unit_days(time_unit)
    calibration_end = parse_timestamp(calibration_end)
    observation_end = None if observation_end is None else parse_timestamp(observation_end)
    if observation_end is not None and observation_end < calibration_end:
        raise InputError(
            f"observation end {observation_end} is before calibration end {calibration_end}"
        )
    stamps = transactions["occurred_at"]
    if isinstance(stamps.dtype, pd.DatetimeTZDtype):
        stamps = stamps.dt.tz_convert("UTC").dt.tz_localize(None)
    moments = stamps.to_numpy()
    in_calibration = moments <= calibration_end.to_datetime64()
    if not in_calibration.any():
        raise InputError(
            f"transactions: no purchase on or before the calibration end {calibration_end}; "
            "choose a later calibration end"
        )
    amounts = transactions["amount"].to_numpy(dtype=float)
    days = _day_numbers(stamps)
    # One integer per user (factorising the column is fast for Arrow strings), then the
    # calibration customers renumbered 0..n-1 in order of first appearance in the table.
    user_codes, user_ids = pd.factorize(transactions["user_id"])
    if (user_codes < 0).any():
        raise InputError("transactions: column 'user_id' has empty values")
    compact = np.full(len(user_ids), -1, dtype=np.int64)
    seen = np.zeros(len(user_ids), dtype=bool)
    seen[user_codes[in_calibration]] = True
    present = np.flatnonzero(seen)
    compact[present] = np.arange(len(present))
    customers = user_ids[present]
    codes = compact[user_codes[in_calibration]]
    code, day, total = _daily_purchases(codes, days[in_calibration], amounts[in_calibration])
    starts = _customer_starts(code)
    ends = np.r_[starts[1:], len(code)] - 1
    purchase_days = np.diff(np.r_[starts, len(code)])
    repeat_total = total.copy()
    repeat_total[starts] = 0.0
    frequency = purchase_days - 1
    repeat_sum = np.add.reduceat(repeat_total, starts)
    monetary = np.divide(repeat_sum, frequency, out=np.zeros(len(starts)), where=frequency > 0)
    calibration_day = _day_of(calibration_end)
    summary = pd.DataFrame(
        {
            "frequency": frequency.astype(np.int64),
            "recency": (day[ends] - day[starts]) / length,
            "T": (calibration_day - day[starts]) / length,
            "monetary_value": monetary,
        },
        index=pd.Index(customers, name="user_id"),
    )
    if observation_end is None:
        return summary

    in_holdout = (moments > calibration_end.to_datetime64()) & (
        moments <= observation_end.to_datetime64()
    )
    holdout_codes = compact[user_codes[in_holdout]]
    known = holdout_codes >= 0
    frequency_holdout = np.zeros(len(customers), dtype=np.int64)
    monetary_holdout = np.zeros(len(customers))
    if known.any():
        h_code, _, h_total = _daily_purchases(
            holdout_codes[known], days[in_holdout][known], amounts[in_holdout][known]
        )
        h_starts = _customer_starts(h_code)
        h_count = np.diff(np.r_[h_starts, len(h_code)])
        frequency_holdout[h_code[h_starts]] = h_count
        monetary_holdout[h_code[h_starts]] = np.add.reduceat(h_total, h_starts) / h_count
    summary["frequency_holdout"] = frequency_holdout
    summary["monetary_value_holdout"] = monetary_holdout
    summary["duration_holdout"] = (_day_of(observation_end) - calibration_day) / length
    return summary


# --- BG/NBD and Gamma-Gamma formulas (vectorised) ---------------------------------------------


def _arrays(*values: Any) -> list[np.ndarray]:
    return [np.asarray(v, dtype=float) for v in values]


def bgnbd_log_likelihood(params: BgNbdParams, frequency: Any, recency: Any, T: Any) -> np.ndarray:
    """Per-customer BG/NBD log-likelihood on the data's own time scale (FHL 2005, eq. 6)."""
    x, t_x, age = _arrays(frequency, recency, T)
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    rate_part = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    dropout_part = gammaln(a + b) + gammaln(b + x) - gammaln(b) - gammaln(a + b + x)
    alive = -(r + x) * np.log(alpha + age)
    dead = np.log(a) - np.log(b + np.maximum(x, 1) - 1) - (r + x) * np.log(alpha + t_x)
    return rate_part + dropout_part + np.where(x > 0, np.logaddexp(alive, dead), alive)


def prob_alive(params: BgNbdParams, frequency: Any, recency: Any, T: Any) -> np.ndarray:
    """Probability that each customer is still active at T (Fader-Hardie note 021)."""
    x, t_x, age = _arrays(frequency, recency, T)
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    log_odds_dead = (r + x) * np.log((alpha + age) / (alpha + t_x)) + np.log(
        a / (b + np.maximum(x, 1) - 1)
    )
    return np.where(x == 0, 1.0, expit(-log_odds_dead))


def expected_purchases(
    params: BgNbdParams, t: Any, frequency: Any, recency: Any, T: Any
) -> np.ndarray:
    """Expected repeat purchases in the next ``t`` time units given (x, t_x, T) (FHL 2005, eq. 10).

    Computes the Gauss hypergeometric term directly rather than through its logarithm, so that
    a fit with a + b < 1 (where the term is negative for x = 0) gives finite, correct values
    instead of lifetimes' NaN (lifetimes issue #442); falls back to Euler's transformation where
    the term overflows, as lifetimes does.
    """
    horizon, x, t_x, age = np.broadcast_arrays(*_arrays(t, frequency, recency, T))
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    hyp_a, hyp_b, hyp_c = r + x, b + x, a + b + x - 1
    z = horizon / (alpha + age + horizon)
    log_decay = (r + x) * np.log((alpha + age) / (alpha + age + horizon))
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        hyp = hyp2f1(hyp_a, hyp_b, hyp_c, z)
        remaining = hyp * np.exp(log_decay)
        overflow = ~np.isfinite(hyp)
        if overflow.any():
            c, za = hyp_c[overflow], z[overflow]
            euler = hyp2f1(c - hyp_a[overflow], c - hyp_b[overflow], c, za)
            remaining[overflow] = np.sign(euler) * np.exp(
                np.log(np.abs(euler))
                + (c - hyp_a[overflow] - hyp_b[overflow]) * np.log(1 - za)
                + log_decay[overflow]
            )
    numerator = (a + b + x - 1) / (a - 1) * (1 - remaining)
    odds_dead = (a / (b + np.maximum(x, 1) - 1)) * ((alpha + age) / (alpha + t_x)) ** (r + x)
    return numerator / (1 + (x > 0) * odds_dead)


def expected_average_value(
    params: GammaGammaParams, frequency: Any, monetary_value: Any
) -> np.ndarray:
    """Gamma-Gamma expected spend per purchase: individual mean shrunk to the population mean."""
    x, m = _arrays(frequency, monetary_value)
    p, q, v = params.p, params.q, params.v
    weight = p * x / (p * x + q - 1)
    return (1 - weight) * (v * p / (q - 1)) + weight * m


def _unique_rows(*columns: np.ndarray) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Distinct rows of equal-length columns: their values, each row's group, group sizes."""
    frame = pd.DataFrame({str(i): c for i, c in enumerate(columns)})
    inverse = frame.groupby(list(frame.columns), sort=False).ngroup().to_numpy()
    counts = np.bincount(inverse)
    first = np.zeros(len(counts), dtype=np.int64)
    first[inverse[::-1]] = np.arange(len(inverse))[::-1]
    return [c[first] for c in columns], inverse, counts


def monthly_expected_purchases(
    params: BgNbdParams,
    frequency: Any,
    recency: Any,
    T: Any,
    horizon_months: int = 12,
    time_unit: str = "W",
    months: float | None = None,
) -> np.ndarray:
    """Expected repeat purchases in each of the next months: shape (customers, horizon_months).

    ``months`` overrides the month length in time units (default ``periods_per_month``).
    Computed once per distinct (x, t_x, T) row, then spread back to the customers.
    """
    month = periods_per_month(time_unit) if months is None else months
    x, t_x, age = _arrays(frequency, recency, T)
    (ux, ut, uT), inverse, _ = _unique_rows(x, t_x, age)
    cumulative = np.column_stack(
        [np.zeros(len(ux))]
        + [expected_purchases(params, i * month, ux, ut, uT) for i in range(1, horizon_months + 1)]
    )
    return np.diff(cumulative, axis=1)[inverse]


def discounted_ltv(
    bgnbd: BgNbdParams,
    gamma_gamma: GammaGammaParams,
    frequency: Any,
    recency: Any,
    T: Any,
    monetary_value: Any,
    horizon_months: int = 12,
    monthly_discount_rate: float = 0.01,
    gross_margin: float = 1.0,
    time_unit: str = "W",
    months: float | None = None,
) -> np.ndarray:
    """Discounted margin each customer brings over the horizon (end-of-month discounting).

    Equal to lifetimes' ``GammaGammaFitter.customer_lifetime_value`` times ``gross_margin`` when
    ``months`` is set to its month length (30 for D, 4.345 for W).
    """
    monthly = monthly_expected_purchases(
        bgnbd, frequency, recency, T, horizon_months, time_unit, months
    )
    discount = (1 + monthly_discount_rate) ** -np.arange(1, horizon_months + 1, dtype=float)
    value = expected_average_value(gamma_gamma, frequency, monetary_value)
    return gross_margin * value * (monthly @ discount)


# --- simulation ------------------------------------------------------------------------------


def simulate_transactions(
    n_customers: int,
    bgnbd: BgNbdParams,
    gamma_gamma: GammaGammaParams,
    start: str | pd.Timestamp = "2024-01-01",
    acquisition_days: int = 84,
    end: str | pd.Timestamp = "2025-06-30",
    time_unit: str = "W",
    seed: int = 0,
    id_prefix: str = "c",
) -> pd.DataFrame:
    """Contract transactions drawn from a BG/NBD + Gamma-Gamma world (for checks and benchmarks).

    Customers make their first purchase uniformly over ``acquisition_days`` from ``start``, then
    buy at Poisson rate lambda ~ Gamma(r, alpha) per ``time_unit`` and drop out after each
    repeat purchase with probability p ~ Beta(a, b); purchase values are Gamma(p, nu) with
    nu ~ Gamma(q, v). Vectorised over customers, one loop step per purchase number.
    """
    rng = np.random.default_rng(seed)
    length_days = unit_days(time_unit)
    start, end = parse_timestamp(start), parse_timestamp(end)
    rate = rng.gamma(bgnbd.r, 1 / bgnbd.alpha, n_customers)
    dropout = rng.beta(bgnbd.a, bgnbd.b, n_customers)
    spend_rate = rng.gamma(gamma_gamma.q, 1 / gamma_gamma.v, n_customers)
    first_days = rng.uniform(0, acquisition_days, n_customers)
    span_units = ((end - start) / pd.Timedelta(days=1) - first_days) / length_days
    customers = [np.arange(n_customers)]
    offsets = [first_days]
    clock = np.zeros(n_customers)
    active = np.flatnonzero(span_units > 0)
    while len(active):
        clock[active] += rng.exponential(1.0, len(active)) / rate[active]
        active = active[clock[active] <= span_units[active]]
        customers.append(active)
        offsets.append(first_days[active] + clock[active] * length_days)
        active = active[rng.random(len(active)) >= dropout[active]]
    who = np.concatenate(customers)
    when = np.concatenate(offsets)
    value = rng.gamma(gamma_gamma.p, 1 / spend_rate[who])
    order = np.lexsort((when, who))
    who, when, value = who[order], when[order], value[order]
    stamps = np.datetime64(start.to_datetime64(), "us") + (when * 86_400e6).astype(
        "timedelta64[us]"
    )
    return pd.DataFrame(
        {
            "transaction_id": np.char.add(f"{id_prefix}t", np.arange(len(who)).astype(str)),
            "user_id": np.char.add(id_prefix, who.astype(str)),
            "occurred_at": stamps,
            "amount": np.maximum(np.round(value, 2), 0.01),
        }
    )


# --- fits ------------------------------------------------------------------------------------


@contextlib.contextmanager
def _quiet_lifetimes() -> Iterator[io.StringIO]:
    """Run lifetimes code without letting it change the process's warning filters.

    lifetimes calls ``warnings.simplefilter("ignore", FutureWarning)`` at import and on every
    likelihood evaluation, sets a pandas option pandas 4 removes, and prints scipy's result to
    stdout when a fit fails; all of that stays inside this block (stdout is captured).
    """
    captured = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(captured):
        warnings.filterwarnings("ignore", module="lifetimes")
        warnings.filterwarnings("ignore", message=".*chained_assignment.*")
        warnings.filterwarnings("ignore", category=RuntimeWarning)
        yield captured


def _scipy_message(captured: io.StringIO) -> str:
    for line in captured.getvalue().splitlines():
        if "message" in line:
            return line.split(":", 1)[-1].strip()
    return "no message"


@dataclass
class BgNbdFit:
    """A fitted BG/NBD model and what was checked about it."""

    params: BgNbdParams
    log_likelihood: float
    n_customers: int
    n_fit_rows: int
    standard_errors: dict[str, float]
    penalizer: float
    notes: list[str] = field(default_factory=list)

    @property
    def a_plus_b_below_1(self) -> bool:
        return self.params.a + self.params.b < 1


@dataclass
class GammaGammaFit:
    """A fitted Gamma-Gamma model, with the independence check it rests on."""

    params: GammaGammaParams
    n_repeat_customers: int
    n_fit_rows: int
    frequency_monetary_correlation: float
    standard_errors: dict[str, float]
    penalizer: float
    notes: list[str] = field(default_factory=list)

    @property
    def independence_ok(self) -> bool:
        return not abs(self.frequency_monetary_correlation) > INDEPENDENCE_WARN_CORRELATION


def _checked_params(names: tuple[str, ...], values: pd.Series, model: str) -> dict[str, float]:
    found = {name: float(values[name]) for name in names}
    if not all(math.isfinite(v) and v > 0 for v in found.values()):
        raise InsightOSError(f"{model} fit gave unusable parameters {found}. {FIT_HINT}")
    return found


def _standard_errors(fitter: Any) -> dict[str, float]:
    try:
        errors = fitter.standard_errors_
        return {str(k): float(v) for k, v in errors.items()}
    except Exception:  # a singular Hessian: the point estimate stands, its precision is unknown
        return {}


def _fit_lifetimes(
    class_name: str, model: str, penalizer: float, columns: list[np.ndarray], weights: np.ndarray
) -> pd.Series:
    """Fit a lifetimes model on weighted rows; its parameters, standard errors in ``attrs``.

    A failed fit becomes an ``InsightOSError`` carrying scipy's message and the hint.
    """
    with _quiet_lifetimes() as captured:
        import lifetimes

        fitter = getattr(lifetimes, class_name)(penalizer_coef=penalizer)
        try:
            fitter.fit(*columns, weights=weights)
        except Exception as error:
            detail = _scipy_message(captured) if captured.getvalue() else str(error).strip()
            raise InsightOSError(f"{model} fit did not converge ({detail}). {FIT_HINT}") from error
    params = fitter.params_.copy()
    params.attrs["standard_errors"] = _standard_errors(fitter)
    return params


def fit_bgnbd(summary: pd.DataFrame, penalizer: float = 0.0) -> BgNbdFit:
    """Fit BG/NBD with lifetimes on the distinct (frequency, recency, T) rows, weighted by count.

    The weighted fit has the same objective as the per-customer one (lifetimes averages the
    weighted log-likelihood), so the parameters are identical, in a fraction of the time.
    A fit that fails or gives non-finite parameters raises ``InsightOSError`` with a hint.
    """
    if summary.empty:
        raise InputError("transactions: no customers to fit the BG/NBD model on")
    x = summary["frequency"].to_numpy(float)
    t_x = summary["recency"].to_numpy(float)
    age = summary["T"].to_numpy(float)
    if not (age > 0).any():
        raise InputError(
            "transactions: every customer's first purchase is on the calibration end's day; "
            "choose a later calibration end"
        )
    (ux, ut, uT), _, counts = _unique_rows(x, t_x, age)
    fitted = _fit_lifetimes("BetaGeoFitter", "BG/NBD", penalizer, [ux, ut, uT], counts)
    values = _checked_params(("r", "alpha", "a", "b"), fitted, "BG/NBD")
    params = BgNbdParams(**values)
    log_likelihood = float(counts @ bgnbd_log_likelihood(params, ux, ut, uT))
    if not math.isfinite(log_likelihood):
        raise InsightOSError(f"BG/NBD fit gave a non-finite log-likelihood. {FIT_HINT}")
    fit = BgNbdFit(
        params=params,
        log_likelihood=log_likelihood,
        n_customers=len(summary),
        n_fit_rows=len(ux),
        standard_errors=fitted.attrs["standard_errors"],
        penalizer=penalizer,
    )
    if fit.a_plus_b_below_1:
        fit.notes.append(
            f"a + b = {params.a + params.b:.3f} < 1: lifetimes' predictions are NaN for customers "
            "without repeat purchases here (lifetimes #442); ours compute the hypergeometric "
            "term directly and stay finite."
        )
    return fit


def frequency_monetary_correlation(summary: pd.DataFrame) -> float:
    """Pearson correlation of frequency and monetary value among repeat customers (NaN if < 3)."""
    repeaters = summary[summary["frequency"] > 0]
    if len(repeaters) < 3:
        return float("nan")
    x = repeaters["frequency"].to_numpy(float)
    m = repeaters["monetary_value"].to_numpy(float)
    if x.std() == 0 or m.std() == 0:
        return float("nan")
    return float(np.corrcoef(x, m)[0, 1])


def fit_gamma_gamma(summary: pd.DataFrame, penalizer: float = 0.0) -> GammaGammaFit:
    """Fit Gamma-Gamma with lifetimes on the repeat customers; check independence and q > 1.

    Like ``fit_bgnbd``, fits the distinct (frequency, monetary value) rows weighted by count:
    money comes in cents, so many customers share a row, and the objective is unchanged.

    Gamma-Gamma assumes frequency and spend per purchase are independent: the Pearson
    correlation among repeaters is reported and a note is added when |r| > 0.3.
    """
    repeaters = summary[summary["frequency"] > 0]
    if len(repeaters) < 2:
        raise InsightOSError(
            f"Gamma-Gamma needs repeat customers and the calibration period has {len(repeaters)}; "
            "choose a later calibration end or a longer history"
        )
    correlation = frequency_monetary_correlation(summary)
    (ux, um), _, counts = _unique_rows(
        repeaters["frequency"].to_numpy(float), repeaters["monetary_value"].to_numpy(float)
    )
    fitted = _fit_lifetimes("GammaGammaFitter", "Gamma-Gamma", penalizer, [ux, um], counts)
    values = _checked_params(("p", "q", "v"), fitted, "Gamma-Gamma")
    if values["q"] <= 1:
        raise InsightOSError(
            f"Gamma-Gamma fit gave q = {values['q']:.3f} <= 1, so the population mean spend "
            f"p·v/(q-1) is not finite. Check for extreme purchase values. {FIT_HINT}"
        )
    fit = GammaGammaFit(
        params=GammaGammaParams(**values),
        n_repeat_customers=len(repeaters),
        n_fit_rows=len(ux),
        frequency_monetary_correlation=correlation,
        standard_errors=fitted.attrs["standard_errors"],
        penalizer=penalizer,
    )
    if not fit.independence_ok:
        fit.notes.append(
            f"frequency and spend per purchase are correlated (r = {correlation:.2f} > "
            f"{INDEPENDENCE_WARN_CORRELATION}): Gamma-Gamma assumes independence, so its "
            "expected values are biased for the most and least frequent buyers."
        )
        warnings.warn(fit.notes[-1], UserWarning, stacklevel=2)
    return fit


# --- holdout validation ----------------------------------------------------------------------


@dataclass
class HoldoutValidation:
    """Predicted against actual repeat purchases in the holdout, overall and by frequency."""

    by_frequency: pd.DataFrame
    customers: int
    duration: float
    actual_total: float
    predicted_total: float
    mae: float
    rmse: float

    @property
    def total_error_pct(self) -> float:
        if self.actual_total == 0:
            return float("nan")
        return 100.0 * (self.predicted_total - self.actual_total) / self.actual_total

    def as_dict(self) -> dict[str, Any]:
        return {
            "customers": self.customers,
            "duration": self.duration,
            "actual_purchases": self.actual_total,
            "predicted_purchases": self.predicted_total,
            "total_error_pct": self.total_error_pct,
            "mae_per_customer": self.mae,
            "rmse_per_customer": self.rmse,
            "by_calibration_frequency": self.by_frequency.to_dict(orient="records"),
        }


def holdout_validation(
    summary: pd.DataFrame, params: BgNbdParams, max_frequency: int = 7
) -> HoldoutValidation:
    """Compare the BG/NBD forecast of holdout purchases with what customers actually did.

    ``by_frequency`` groups customers by calibration-period frequency (the last group is
    ``max_frequency`` and more): the classic calibration-versus-holdout chart.
    """
    needed = {"frequency_holdout", "duration_holdout"}
    if not needed <= set(summary.columns):
        raise ValueError("holdout_validation needs rfm_summary(..., observation_end=...)")
    predicted = expected_purchases(
        params,
        summary["duration_holdout"].to_numpy(float),
        summary["frequency"],
        summary["recency"],
        summary["T"],
    )
    actual = summary["frequency_holdout"].to_numpy(float)
    group = np.minimum(summary["frequency"].to_numpy(), max_frequency)
    table = (
        pd.DataFrame({"group": group, "actual": actual, "predicted": predicted})
        .groupby("group")
        .agg(
            customers=("actual", "size"),
            actual_mean=("actual", "mean"),
            predicted_mean=("predicted", "mean"),
        )
        .reset_index()
    )
    table.insert(
        0,
        "calibration_frequency",
        [f"{g}+" if g == max_frequency else str(g) for g in table["group"]],
    )
    table = table.drop(columns="group")
    error = predicted - actual
    return HoldoutValidation(
        by_frequency=table,
        customers=len(summary),
        duration=float(summary["duration_holdout"].iloc[0]) if len(summary) else 0.0,
        actual_total=float(actual.sum()),
        predicted_total=float(predicted.sum()),
        mae=float(np.abs(error).mean()),
        rmse=float(np.sqrt((error**2).mean())),
    )


# --- per-customer LTV ------------------------------------------------------------------------


def margin_column(month: int) -> str:
    """Name of the customer_ltv column with the expected margin of month ``month`` (1-based)."""
    return f"margin_month_{month:02d}"


def customer_ltv_table(
    summary: pd.DataFrame,
    bgnbd: BgNbdParams,
    gamma_gamma: GammaGammaParams,
    horizon_months: int = 12,
    monthly_discount_rate: float = 0.01,
    gross_margin: float = 1.0,
    time_unit: str = "W",
) -> pd.DataFrame:
    """One row per customer: the contract's customer_ltv columns plus the expected average value
    and the (undiscounted) expected margin of each month of the horizon, used for payback.

    ``expected_purchases`` counts the repeat purchases over the whole horizon.
    """
    x = summary["frequency"].to_numpy(float)
    t_x = summary["recency"].to_numpy(float)
    age = summary["T"].to_numpy(float)
    m = summary["monetary_value"].to_numpy(float)
    monthly = monthly_expected_purchases(bgnbd, x, t_x, age, horizon_months, time_unit)
    value = expected_average_value(gamma_gamma, x, m)
    discount = (1 + monthly_discount_rate) ** -np.arange(1, horizon_months + 1, dtype=float)
    table = pd.DataFrame(
        {
            "user_id": summary.index.astype(str),
            "frequency": summary["frequency"].to_numpy(),
            "recency": t_x,
            "T": age,
            "monetary_value": m,
            "prob_alive": prob_alive(bgnbd, x, t_x, age),
            "expected_purchases": monthly.sum(axis=1),
            "ltv": gross_margin * value * (monthly @ discount),
            "expected_average_value": value,
        }
    )
    margins = gross_margin * value[:, None] * monthly
    for month in range(horizon_months):
        table[margin_column(month + 1)] = margins[:, month]
    if not np.isfinite(table["ltv"].to_numpy()).all():
        bad = int((~np.isfinite(table["ltv"].to_numpy())).sum())
        raise InsightOSError(
            f"LTV is not finite for {bad} customer(s) with BG/NBD {asdict(bgnbd)}. {FIT_HINT}"
        )
    return table


# --- the whole analysis ----------------------------------------------------------------------


@dataclass
class LtvAnalysis:
    """Everything one LTV run produced: the JSON parameters, the tables and the fits."""

    params: dict[str, Any]
    customer_ltv: pd.DataFrame
    summary: pd.DataFrame
    bgnbd: BgNbdFit
    gamma_gamma: GammaGammaFit
    holdout: HoldoutValidation | None
    validation_summary: pd.DataFrame | None


def _check_settings(
    horizon_months: int, monthly_discount_rate: float, gross_margin: float, penalizer: float
) -> None:
    if int(horizon_months) != horizon_months or horizon_months < 1:
        raise InputError(f"horizon_months must be a whole number >= 1, got {horizon_months}")
    if not monthly_discount_rate > -1:
        raise InputError(f"monthly_discount_rate must be > -1, got {monthly_discount_rate}")
    if not 0 < gross_margin <= 1:
        raise InputError(f"gross_margin must be in (0, 1], got {gross_margin}")
    if not penalizer >= 0:
        raise InputError(f"penalizer must be >= 0, got {penalizer}")


def _fit_json(bgnbd: BgNbdFit, gamma_gamma: GammaGammaFit) -> dict[str, Any]:
    return {
        "bgnbd": asdict(bgnbd.params),
        "gamma_gamma": asdict(gamma_gamma.params),
        "standard_errors": {
            "bgnbd": bgnbd.standard_errors,
            "gamma_gamma": gamma_gamma.standard_errors,
        },
        "bgnbd_log_likelihood": bgnbd.log_likelihood,
        "n_customers": bgnbd.n_customers,
        "n_repeat_customers": gamma_gamma.n_repeat_customers,
        "bgnbd_fit_rows": bgnbd.n_fit_rows,
        "gamma_gamma_fit_rows": gamma_gamma.n_fit_rows,
        "frequency_monetary_correlation": gamma_gamma.frequency_monetary_correlation,
        "independence_ok": gamma_gamma.independence_ok,
        "a_plus_b_below_1": bgnbd.a_plus_b_below_1,
    }


def analyse_ltv(
    transactions: pd.DataFrame,
    calibration_end: str | pd.Timestamp,
    observation_end: str | pd.Timestamp | None = None,
    *,
    time_unit: str = "W",
    horizon_months: int = 12,
    monthly_discount_rate: float = 0.01,
    gross_margin: float = 1.0,
    penalizer: float = 0.0,
    refit: bool = False,
    show_progress: bool = False,
) -> LtvAnalysis:
    """Fit on the calibration period, check the forecast on the holdout, then compute LTV.

    Without ``refit`` the calibration fit is the model and LTV stands at ``calibration_end``.
    With ``refit`` the models are fitted again on everything up to ``observation_end`` and LTV
    stands there (the holdout fit is kept under ``validation`` in the parameters).
    """
    _check_settings(horizon_months, monthly_discount_rate, gross_margin, penalizer)
    unit_days(time_unit)
    calibration_end = parse_timestamp(calibration_end)
    observation_end = parse_timestamp(
        calibration_end if observation_end is None else observation_end
    )
    with_holdout = observation_end > calibration_end
    steps = 4 + (3 if refit and with_holdout else 0)
    progress = tqdm(total=steps, desc="ltv", file=sys.stderr, disable=not show_progress)

    def step(label: str) -> None:
        progress.set_postfix_str(label)
        progress.update()

    with progress:
        calibration = rfm_summary(
            transactions, calibration_end, observation_end if with_holdout else None, time_unit
        )
        step("RFM summary")
        bgnbd = fit_bgnbd(calibration, penalizer)
        step("BG/NBD fit")
        gamma_gamma = fit_gamma_gamma(calibration, penalizer)
        step("Gamma-Gamma fit")
        holdout = holdout_validation(calibration, bgnbd.params) if with_holdout else None
        fitted_through = calibration_end
        summary = calibration[["frequency", "recency", "T", "monetary_value"]]
        validation = None
        if refit and with_holdout:
            validation = {
                "calibration_end": calibration_end.isoformat(),
                **_fit_json(bgnbd, gamma_gamma),
            }
            summary = rfm_summary(transactions, observation_end, None, time_unit)
            step("refit: RFM summary")
            bgnbd = fit_bgnbd(summary, penalizer)
            step("refit: BG/NBD fit")
            gamma_gamma = fit_gamma_gamma(summary, penalizer)
            step("refit: Gamma-Gamma fit")
            fitted_through = observation_end
        table = customer_ltv_table(
            summary,
            bgnbd.params,
            gamma_gamma.params,
            horizon_months,
            monthly_discount_rate,
            gross_margin,
            time_unit,
        )
        step("LTV")
    params: dict[str, Any] = {
        **_fit_json(bgnbd, gamma_gamma),
        "time_unit": time_unit,
        "unit_days": UNIT_DAYS[time_unit],
        "calibration_end": calibration_end.isoformat(),
        "observation_end": pd.Timestamp(observation_end).isoformat(),
        "fitted_through": fitted_through.isoformat(),
        "refit": bool(refit and with_holdout),
        "horizon_months": int(horizon_months),
        "monthly_discount_rate": monthly_discount_rate,
        "gross_margin": gross_margin,
        "penalizer": penalizer,
        "days_per_month": DAYS_PER_MONTH,
        "month_convention": (
            f"a month is {DAYS_PER_MONTH} days ({periods_per_month(time_unit):.6g} {time_unit}); "
            "cash flows are discounted at the end of each month"
        ),
        "purchase_convention": "at most one purchase per customer per UTC day (day totals)",
        "mean_ltv": float(table["ltv"].mean()),
        "total_ltv": float(table["ltv"].sum()),
        "holdout": holdout.as_dict() if holdout else None,
        "validation": validation,
        "convergence": {
            "bgnbd": {"converged": True, "optimizer": "scipy BFGS via lifetimes"},
            "gamma_gamma": {"converged": True, "optimizer": "scipy BFGS via lifetimes"},
        },
        "notes": bgnbd.notes + gamma_gamma.notes,
    }
    return LtvAnalysis(
        params=params,
        customer_ltv=table,
        summary=summary,
        bgnbd=bgnbd,
        gamma_gamma=gamma_gamma,
        holdout=holdout,
        validation_summary=calibration if with_holdout else None,
    )


# --- writing ---------------------------------------------------------------------------------


def write_ltv_outputs(
    out_dir: str | Path,
    analysis: LtvAnalysis,
    campaign_table: pd.DataFrame | None = None,
    ratio: ReferenceRatio | None = None,
    recommendation: str | None = None,
) -> list[Path]:
    """Write ltv_params.json, customer_ltv.csv (and campaign_ltv.csv) into ``out_dir``.

    All files are first written under temporary names in ``out_dir``, then renamed: a failure
    leaves no half-written output under a final name. The reference ratio and the
    recommendation, when given, are recorded in ltv_params.json.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    params = dict(analysis.params)
    if campaign_table is not None:
        params["reference_ratio"] = ratio.as_dict() if ratio is not None else None
        params["recommendation"] = recommendation
    text = json_text(params)
    writers: dict[str, Callable[[Path], object]] = {
        "ltv_params.json": lambda p: p.write_text(text, encoding="utf-8"),
        "customer_ltv.csv": lambda p: analysis.customer_ltv.to_csv(p, index=False),
    }
    if campaign_table is not None:
        writers["campaign_ltv.csv"] = lambda p: campaign_table.to_csv(p, index=False)
    atomic_write_many({out_dir / name: write for name, write in writers.items()})
    return [out_dir / name for name in writers]


def ltv_command(
    transactions_path: str | Path,
    calibration_end: str,
    observation_end: str | None,
    time_unit: str,
    out_dir: str | Path,
    horizon_months: int = 12,
    monthly_discount_rate: float = 0.01,
    gross_margin: float = 1.0,
    penalizer: float = 0.0,
    refit: bool = False,
    users_path: str | Path | None = None,
    campaign_spend_path: str | Path | None = None,
    bootstrap_samples: int = 2000,
    seed: int = 42,
    reference_campaign: str = "google_gestao_agil",
    show_progress: bool = True,
) -> LtvAnalysis:
    """``insightos ltv``: read transactions, fit, validate on the holdout, write the outputs.

    ``observation_end`` defaults to the latest transaction. With ``users_path`` (a contract
    users file with a campaign or marketing column) also writes campaign_ltv.csv, with CAC
    from ``campaign_spend_path`` when given, and records the ``reference_campaign`` ratio and
    the next-dollar recommendation in ltv_params.json.
    """
    _check_settings(horizon_months, monthly_discount_rate, gross_margin, penalizer)
    transactions = read_transactions(transactions_path)
    if transactions.empty:
        raise InputError(f"{transactions_path}: has no transactions")
    calibration = parse_period_end(calibration_end)
    if observation_end:
        observation = parse_period_end(observation_end)
    else:
        observation = max(transactions["occurred_at"].max(), calibration)
    analysis = analyse_ltv(
        transactions,
        calibration,
        observation,
        time_unit=time_unit,
        horizon_months=horizon_months,
        monthly_discount_rate=monthly_discount_rate,
        gross_margin=gross_margin,
        penalizer=penalizer,
        refit=refit,
        show_progress=show_progress,
    )
    campaign_table, ratio, recommendation = None, None, None
    if users_path is not None:
        users = read_users_campaigns(users_path)
        spend = read_campaign_spend(campaign_spend_path) if campaign_spend_path else None
        campaign_table = campaign_ltv(
            analysis.customer_ltv, users, spend, bootstrap_samples=bootstrap_samples, seed=seed
        )
        ratio = reference_ratio(
            analysis.customer_ltv, users, reference_campaign, bootstrap_samples, seed
        )
        recommendation = next_dollar_recommendation(campaign_table, ratio, horizon_months)
        if analysis.holdout is not None and not analysis.params["refit"]:
            analysis.params["notes"].append(
                "campaign CAC divides each campaign's total spend by the customers valued here "
                f"(first purchase by {analysis.params['fitted_through']}), not those acquired in "
                "the holdout: pass --refit to value every customer up to the observation end."
            )
    write_ltv_outputs(out_dir, analysis, campaign_table, ratio, recommendation)
    return analysis


# --- by campaign -----------------------------------------------------------------------------


def _read_table(path: str | Path) -> tuple[pd.DataFrame, bool]:
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file not found")
    csv = path.suffix.lower() != ".parquet"
    try:
        table = (
            pd.read_csv(path, dtype=str, keep_default_na=False) if csv else pd.read_parquet(path)
        )
    except Exception as error:
        raise InputError(f"{path}: cannot be read: {error}") from error
    return table, csv


def read_users_campaigns(path: str | Path) -> pd.DataFrame:
    """user_id and campaign from a users file (processed ``campaign`` or raw ``marketing`` JSON)."""
    table, _ = _read_table(path)
    if "user_id" not in table.columns:
        raise InputError(f"{path}: missing column user_id")
    if "campaign" in table.columns:
        campaign = table["campaign"].replace("", NO_CAMPAIGN).fillna(NO_CAMPAIGN)
    elif "marketing" in table.columns:
        campaign = marketing_fields(table["marketing"])["campaign"]
    else:
        raise InputError(f"{path}: needs a 'campaign' or a 'marketing' column")
    return pd.DataFrame({"user_id": table["user_id"].astype(str), "campaign": campaign.astype(str)})


def read_campaign_spend(path: str | Path) -> pd.DataFrame:
    """campaign and spend (a number >= 0) from a campaign_spend file."""
    table, csv = _read_table(path)
    missing = [c for c in ("campaign", "spend") if c not in table.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)}")
    spend = parse_numbers(table["spend"])
    bad = ~(spend.to_numpy() >= 0)
    if bad.any():
        raise InputError(_bad_rows_message(str(path), "spend", "must be a number >= 0", bad, csv))
    return pd.DataFrame({"campaign": table["campaign"].astype(str), "spend": spend})


def customer_campaigns(customer_ltv: pd.DataFrame, users: pd.DataFrame) -> pd.Series:
    """Each customer's acquisition campaign (``(none)`` when absent, ``(unknown user)`` when the
    customer is not in the users table), aligned with ``customer_ltv``'s rows."""
    lookup = (
        users.assign(user_id=users["user_id"].astype(str))
        .drop_duplicates("user_id")
        .set_index("user_id")["campaign"]
    )
    ids = customer_ltv["user_id"].astype(str)
    mapped = ids.map(lookup).where(~ids.isin(lookup.index) | ids.map(lookup).notna(), NO_CAMPAIGN)
    return mapped.fillna(UNKNOWN_USER_CAMPAIGN).astype(str).replace("", NO_CAMPAIGN)


def bootstrap_means(
    values: np.ndarray, samples: int, rng: np.random.Generator, chunk_cells: int = 4_000_000
) -> np.ndarray:
    """Means of ``samples`` bootstrap resamples of ``values`` (vectorised in memory-bound chunks)."""
    values = np.asarray(values, dtype=float)
    n = len(values)
    if n == 0:
        return np.full(samples, np.nan)
    rows = max(1, chunk_cells // n)
    means = np.empty(samples)
    for start in range(0, samples, rows):
        stop = min(samples, start + rows)
        means[start:stop] = values[rng.integers(0, n, size=(stop - start, n))].mean(axis=1)
    return means


def _percentile_interval(draws: np.ndarray, confidence: float) -> tuple[float, float]:
    finite = draws[np.isfinite(draws)]
    if len(finite) == 0:
        return float("nan"), float("nan")
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return float(low), float(high)


def _cac(spend: float, customers: int) -> float:
    """Spend per customer acquired: NaN without spend, inf for spend that acquired nobody."""
    if not spend > 0:
        return float("nan")
    return spend / customers if customers else float("inf")


def _payback_months(cumulative_margin: np.ndarray, cac: float) -> float:
    """Months until the mean cumulative (undiscounted) margin reaches CAC, interpolated."""
    if not math.isfinite(cac):
        return float("nan")
    if cac <= 0:
        return 0.0
    reached = np.flatnonzero(cumulative_margin >= cac)
    if len(reached) == 0:
        return float("inf")
    month = int(reached[0])
    before = cumulative_margin[month - 1] if month > 0 else 0.0
    gained = cumulative_margin[month] - before
    return month + (cac - before) / gained if gained > 0 else float(month + 1)


def campaign_ltv(
    customer_ltv: pd.DataFrame,
    users: pd.DataFrame,
    campaign_spend: pd.DataFrame | None = None,
    bootstrap_samples: int = 2000,
    seed: int = 42,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Mean LTV per acquisition campaign with a percentile bootstrap interval, CAC and payback.

    ``customers`` counts customers (anyone with a purchase) acquired by the campaign; CAC is
    the campaign's spend divided by them (NaN without spend, e.g. ``(none)``); ``ltv_to_cac``
    carries the LTV interval divided by CAC; ``payback_months`` is when the campaign's mean
    cumulative expected margin (undiscounted) reaches CAC (inf: not within the horizon).
    """
    campaigns = customer_campaigns(customer_ltv, users)
    margin_columns = [c for c in customer_ltv.columns if c.startswith("margin_month_")]
    spend = (
        campaign_spend.groupby("campaign")["spend"].sum()
        if campaign_spend is not None and len(campaign_spend)
        else pd.Series(dtype=float)
    )
    rng = np.random.default_rng(seed)
    ltv = customer_ltv["ltv"].to_numpy(float)
    rows = []
    names = sorted(set(campaigns) | set(spend.index))
    for name in names:
        members = (campaigns == name).to_numpy()
        n = int(members.sum())
        draws = bootstrap_means(ltv[members], bootstrap_samples, rng)
        low, high = _percentile_interval(draws, confidence)
        campaign_spent = float(spend.get(name, float("nan")))
        cac = _cac(campaign_spent, n)
        mean = float(ltv[members].mean()) if n else float("nan")
        cumulative = (
            customer_ltv.loc[members, margin_columns].to_numpy(float).mean(axis=0).cumsum()
            if n and margin_columns
            else np.array([])
        )
        rows.append(
            {
                "campaign": name,
                "customers": n,
                "ltv_mean": mean,
                "ltv_ci_low": low,
                "ltv_ci_high": high,
                "spend": campaign_spent,
                "cac": cac,
                # spend that acquired nobody returned nothing per dollar
                "ltv_to_cac": mean / cac if n else (0.0 if campaign_spent > 0 else float("nan")),
                "ltv_to_cac_ci_low": low / cac,
                "ltv_to_cac_ci_high": high / cac,
                "payback_months": _payback_months(cumulative, cac) if n else float("nan"),
            }
        )
    table = pd.DataFrame(rows, columns=CAMPAIGN_LTV_COLUMNS)
    return table.sort_values(["ltv_mean", "campaign"], ascending=[False, True]).reset_index(
        drop=True
    )


@dataclass
class ReferenceRatio:
    """Mean LTV of the reference campaign's customers over everyone else's, with its interval."""

    campaign: str
    reference_customers: int
    other_customers: int
    reference_ltv: float
    other_ltv: float
    ratio: float
    ci_low: float
    ci_high: float
    bootstrap_samples: int
    confidence: float = 0.95

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def reference_ratio(
    customer_ltv: pd.DataFrame,
    users: pd.DataFrame,
    reference_campaign: str = "google_gestao_agil",
    bootstrap_samples: int = 2000,
    seed: int = 42,
    confidence: float = 0.95,
) -> ReferenceRatio | None:
    """The reference campaign's mean LTV divided by all other customers', bootstrapped.

    Each replicate resamples both groups independently (a stratified bootstrap). None when the
    reference campaign or the rest has no customers.
    """
    campaigns = customer_campaigns(customer_ltv, users)
    ltv = customer_ltv["ltv"].to_numpy(float)
    is_reference = (campaigns == reference_campaign).to_numpy()
    reference, others = ltv[is_reference], ltv[~is_reference]
    if len(reference) == 0 or len(others) == 0:
        return None
    rng = np.random.default_rng(seed)
    reference_draws = bootstrap_means(reference, bootstrap_samples, rng)
    other_draws = bootstrap_means(others, bootstrap_samples, rng)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = reference_draws / other_draws
    low, high = _percentile_interval(ratios, confidence)
    return ReferenceRatio(
        campaign=reference_campaign,
        reference_customers=len(reference),
        other_customers=len(others),
        reference_ltv=float(reference.mean()),
        other_ltv=float(others.mean()),
        ratio=float(reference.mean() / others.mean()) if others.mean() else float("nan"),
        ci_low=low,
        ci_high=high,
        bootstrap_samples=bootstrap_samples,
        confidence=confidence,
    )


def _money(value: float) -> str:
    return f"${value:,.2f}"


def next_dollar_recommendation(
    campaign_table: pd.DataFrame,
    ratio: ReferenceRatio | None = None,
    horizon_months: int = 12,
) -> str:
    """Where to put the next marketing dollar, in plain words built from the campaign numbers."""
    sentences: list[str] = []
    paid = campaign_table[
        np.isfinite(campaign_table["cac"]) & (campaign_table["customers"] > 0)
    ].sort_values("ltv_to_cac", ascending=False)
    if paid.empty:
        sentences.append(
            "No campaign has recorded spend, so acquisition cost cannot be weighed against value; "
            "record campaign spend to rank where the next dollar should go."
        )
    else:
        best = paid.iloc[0]
        payback = best["payback_months"]
        payback_text = (
            f"and pays its CAC back in {payback:.1f} months"
            if math.isfinite(payback)
            else f"and does not pay its CAC back within {horizon_months} months"
        )
        if best["ltv_to_cac"] < 1:
            sentences.append(
                f"No paid campaign recovers its acquisition cost within {horizon_months} months: "
                f"the best, {best['campaign']}, returns {best['ltv_to_cac']:.2f} dollars of "
                f"LTV per dollar of CAC ({_money(best['ltv_mean'])} LTV against "
                f"{_money(best['cac'])} CAC). Hold spend until CAC falls or value rises."
            )
        else:
            sentences.append(
                f"Put the next dollar into {best['campaign']}: each customer it brings is worth "
                f"{_money(best['ltv_mean'])} over {horizon_months} months (95% CI "
                f"{_money(best['ltv_ci_low'])}–{_money(best['ltv_ci_high'])}) against a CAC of "
                f"{_money(best['cac'])}, an LTV/CAC of {best['ltv_to_cac']:.1f} (95% CI "
                f"{best['ltv_to_cac_ci_low']:.1f}–{best['ltv_to_cac_ci_high']:.1f}), "
                f"{payback_text}."
            )
            if len(paid) > 1:
                second = paid.iloc[1]
                overlap = second["ltv_to_cac_ci_high"] >= best["ltv_to_cac_ci_low"]
                sentences.append(
                    f"The next best is {second['campaign']} at LTV/CAC "
                    f"{second['ltv_to_cac']:.1f}"
                    + (
                        "; the two intervals overlap, so the ranking is not certain."
                        if overlap
                        else "; the intervals do not overlap."
                    )
                )
        losing = paid[paid["ltv_to_cac"] < 1]["campaign"].tolist()
        if losing and paid.iloc[0]["ltv_to_cac"] >= 1:
            sentences.append(
                f"Campaigns that do not recover their CAC within {horizon_months} months: "
                f"{', '.join(losing)}."
            )
    wasted = campaign_table[(campaign_table["customers"] == 0) & (campaign_table["spend"] > 0)]
    if not wasted.empty:
        sentences.append(
            "Spend that acquired no customer: "
            + ", ".join(f"{r.campaign} ({_money(r.spend)})" for r in wasted.itertuples())
            + "."
        )
    if ratio is not None:
        clear = ratio.ci_low > 1 or ratio.ci_high < 1
        sentences.append(
            f"{ratio.campaign} customers are worth {ratio.ratio:.1f}× the others "
            f"({_money(ratio.reference_ltv)} against {_money(ratio.other_ltv)}; 95% CI of the "
            f"ratio {ratio.ci_low:.2f}–{ratio.ci_high:.2f}"
            + (")." if clear else "), a difference the data cannot tell apart from none.")
        )
    sentences.append(
        "LTV/CAC is an average: the next dollar buys the marginal customer, so raise a "
        "campaign's budget in steps and watch its CAC."
    )
    return " ".join(sentences)


# --- notebook helpers ------------------------------------------------------------------------


def transactions_as_of(
    transactions: pd.DataFrame | None, as_of: str | pd.Timestamp = ""
) -> tuple[pd.DataFrame, pd.Timestamp]:
    """The transactions that exist at ``as_of`` ("" = the latest one) and the resolved as-of."""
    if transactions is None or transactions.empty:
        raise InputError(
            "transactions: the company has no transactions table; lifetime value needs one "
            "(transaction_id, user_id, occurred_at, amount)"
        )
    stamp = transactions["occurred_at"].max() if as_of in ("", None) else parse_timestamp(as_of)
    return transactions[transactions["occurred_at"] <= stamp], pd.Timestamp(stamp)


def calibration_end_for(as_of: pd.Timestamp, holdout_days: int) -> pd.Timestamp:
    """The calibration end that leaves the last ``holdout_days`` before as-of for the holdout."""
    if holdout_days < 0:
        raise InputError(f"holdout_days must be >= 0, got {holdout_days}")
    return as_of - pd.Timedelta(days=holdout_days)


def parameters_table(analysis: LtvAnalysis) -> pd.DataFrame:
    """The fitted parameters with their standard errors, one row per parameter."""
    rows = []
    for model, fit in (("BG/NBD", analysis.bgnbd), ("Gamma-Gamma", analysis.gamma_gamma)):
        for name, value in asdict(fit.params).items():
            rows.append(
                {
                    "model": model,
                    "parameter": name,
                    "estimate": value,
                    "standard_error": fit.standard_errors.get(name, float("nan")),
                }
            )
    return pd.DataFrame(rows)


def conclusion(analysis: LtvAnalysis, ratio: ReferenceRatio | None, recommendation: str) -> str:
    """The notebook's closing paragraph (Markdown), every number taken from the analysis."""
    params = analysis.params
    parts = [
        f"**{params['n_customers']:,} customers** ({params['n_repeat_customers']:,} repeat "
        f"buyers) are worth **{_money(params['mean_ltv'])} each on average** over the next "
        f"{params['horizon_months']} months (discounted at {params['monthly_discount_rate']:.1%} "
        f"a month, gross margin {params['gross_margin']:.0%})."
    ]
    holdout = analysis.holdout
    if holdout is not None:
        parts.append(
            f"Checked on the {holdout.duration * params['unit_days']:.0f}-day holdout, the model "
            f"forecast {holdout.predicted_total:,.0f} repeat purchases against "
            f"{holdout.actual_total:,.0f} actual ({holdout.total_error_pct:+.1f}%; mean absolute "
            f"error {holdout.mae:.2f} purchases per customer)."
        )
    correlation = analysis.gamma_gamma.frequency_monetary_correlation
    parts.append(
        f"Frequency and spend per purchase correlate at r = {correlation:.2f}"
        + (
            f", below the {INDEPENDENCE_WARN_CORRELATION} level at which Gamma-Gamma's "
            "independence assumption becomes doubtful."
            if analysis.gamma_gamma.independence_ok
            else ", above 0.3: Gamma-Gamma's independence assumption is strained, read the "
            "value per purchase with care."
        )
    )
    if ratio is None:
        parts.append("The reference campaign has no customers here, so no ratio is reported.")
    parts.append(recommendation)
    return " ".join(parts)
