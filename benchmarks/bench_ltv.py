"""LTV speed: RFM summary + BG/NBD + Gamma-Gamma + 12-month discounted LTV on 1,000,000 customers
(goal: under 10 s), side by side with lifetimes on the same RFM summary, two ways:

- **lifetimes per customer**, as a user would call it: ``BetaGeoFitter.fit`` on every customer,
  ``GammaGammaFitter.fit`` on every repeat customer, ``customer_lifetime_value`` on everyone;
- **lifetimes weighted** (the fair comparison): the fits on the same distinct rows ours use, with
  ``weights=``, and ``customer_lifetime_value`` once per distinct (frequency, recency, T,
  monetary value) row, spread back to the customers.

Transactions are simulated from a BG/NBD + Gamma-Gamma world with the CDNOW parameters (not
timed). Our pipeline runs in fresh interpreters (median of ``--repeats``, peak memory measured
there, lifetimes imported before the clock as on its side); lifetimes runs once per way in this
process. Equal results are checked: fitted parameters and LTV (lifetimes' 4.345-week month).

Also (stage ``ltv_paretonbd``): our Pareto/NBD fit against lifetimes' ``ParetoNBDFitter`` on
the same distinct rows (``weights=``), log-likelihoods compared; the refit bootstrap's time; and
the coverage of the campaign interval (sampling only vs refit) on simulated worlds with known
parameters (``ltv.coverage``: the truth is the population mean expected 12-month value of a
customer of the campaign under the true parameters, in closed form; ``--only-coverage`` runs
it alone, stage ``ltv_coverage``).

Stage ``ltv_chain`` (issue 11's goal: under 20 s at 1,000,000 customers): RFM with the 90-day
holdout + BG/NBD + Pareto/NBD + Gamma-Gamma + the holdout model choice (``auto``) + 12-month
LTV in fresh interpreters, and the per-customer prediction intervals (``ltv.prediction``,
``--prediction-draws``) timed apart.

Usage: python benchmarks/bench_ltv.py [--customers N] [--repeats R] [--only-paretonbd]
    [--paretonbd-customers N] [--refit-customers N] [--refits B] [--coverage-worlds W]
    [--coverage-customers N] [--coverage-refits B] [--only-coverage]
    [--only-chain] [--chain-customers N] [--prediction-draws D]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import CHILD_PEAK_RSS, measure_in_subprocess, record  # noqa: E402

from insightos_utils.config import LtvConfig  # noqa: E402
from insightos_utils.ltv.models.bgnbd import BgNbd, BgNbdParams  # noqa: E402
from insightos_utils.ltv.models.gamma_gamma import GammaGamma, GammaGammaParams  # noqa: E402
from insightos_utils.ltv.rfm import distinct_rows, rfm_summary  # noqa: E402
from insightos_utils.ltv.simulate import simulate_transactions  # noqa: E402
from insightos_utils.ltv.value import customer_ltv  # noqa: E402

WORLD_BGNBD = BgNbdParams(r=0.243, alpha=4.414, a=0.793, b=2.426)
WORLD_GAMMA_GAMMA = GammaGammaParams(p=6.25, q=3.74, v=15.44)
AS_OF = "2025-06-30"
GOAL_S = 10.0

CHILD = (
    CHILD_PEAK_RSS
    + """
import time, warnings
import pandas as pd
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import lifetimes.fitters.beta_geo_fitter  # import cost outside the clock, as for lifetimes
from insightos_utils.config import LtvConfig
from insightos_utils.ltv.models.bgnbd import BgNbd
from insightos_utils.ltv.models.gamma_gamma import GammaGamma
from insightos_utils.ltv.rfm import rfm_summary
from insightos_utils.ltv.value import customer_ltv
transactions = pd.read_parquet(PATH)
start = time.perf_counter()
summary = rfm_summary(transactions, AS_OF, time_unit="W")
t_rfm = time.perf_counter()
bgnbd = BgNbd().fit(summary)
t_bg = time.perf_counter()
gamma_gamma = GammaGamma().fit(summary)
t_gg = time.perf_counter()
table = customer_ltv(summary, bgnbd, gamma_gamma, LtvConfig())
end = time.perf_counter()
_report(
    end - start,
    rfm_s=round(t_rfm - start, 3),
    bgnbd_fit_s=round(t_bg - t_rfm, 3),
    gamma_gamma_fit_s=round(t_gg - t_bg, 3),
    ltv_s=round(end - t_gg, 3),
    bgnbd_fit_rows=bgnbd.fitted().n_fit_rows,
    gamma_gamma_fit_rows=gamma_gamma.fitted().n_fit_rows,
    bgnbd_converged=bgnbd.convergence.converged,
    gamma_gamma_converged=gamma_gamma.convergence.converged,
    mean_ltv=float(table["ltv"].mean()),
)
"""
)


CHAIN_GOAL_S = 20.0
# The chain at the pipeline's defaults ([ltv] model = "auto", 90-day holdout): the
# calibration summary with its holdout, BG/NBD, Pareto/NBD and Gamma-Gamma fitted on it, the
# holdout comparison and choice (analysis.choose_model, as `auto` runs it), the chosen model's
# 12-month LTV; then, timed apart, the per-customer prediction intervals (ltv.prediction).
CHAIN_CHILD = (
    CHILD_PEAK_RSS
    + """
import time
import pandas as pd
from insightos_utils.config import LtvConfig
from insightos_utils.ltv.analysis import FittedModels, choose_model
from insightos_utils.ltv.models.bgnbd import BgNbd
from insightos_utils.ltv.models.gamma_gamma import GammaGamma, independence
from insightos_utils.ltv.models.paretonbd import ParetoNbd
from insightos_utils.ltv.prediction import prediction_intervals
from insightos_utils.ltv.rfm import SUMMARY_COLUMNS, rfm_summary
from insightos_utils.ltv.transactions import calibration_end_for
from insightos_utils.ltv.value import customer_ltv
transactions = pd.read_parquet(PATH)
settings = LtvConfig()
as_of = pd.Timestamp(AS_OF)
calibration_end = calibration_end_for(as_of, settings.holdout_days)
clock = [time.perf_counter()]
cpu_start = time.process_time()
def lap():
    clock.append(time.perf_counter())
    return round(clock[-1] - clock[-2], 3)
summary = rfm_summary(transactions, calibration_end, as_of, "W")
rfm_s = lap()
bgnbd = BgNbd().fit(summary)
bgnbd_s = lap()
paretonbd = ParetoNbd().fit(summary)
paretonbd_s = lap()
gamma_gamma = GammaGamma().fit(summary)
gamma_gamma_s = lap()
models = FittedModels(bgnbd, gamma_gamma, independence(summary), paretonbd, "bgnbd")
choice = choose_model(summary, models, "auto", True)
models.model = choice.model
choice_s = lap()
table = customer_ltv(summary[list(SUMMARY_COLUMNS)], models.purchases, gamma_gamma, settings)
ltv_s = lap()
chain_s = round(clock[-1] - clock[0], 3)
chain_cpu_s = round(time.process_time() - cpu_start, 3)
cpu_prediction = time.process_time()
pair = (models.purchases, gamma_gamma)
predicted = prediction_intervals(summary, [pair], settings, draws=DRAWS or None)
prediction_s = lap()
prediction_cpu_s = round(time.process_time() - cpu_prediction, 3)
_report(
    chain_s,
    rfm_s=rfm_s,
    bgnbd_fit_s=bgnbd_s,
    paretonbd_fit_s=paretonbd_s,
    gamma_gamma_fit_s=gamma_gamma_s,
    choice_s=choice_s,
    ltv_s=ltv_s,
    prediction_s=prediction_s,
    chain_cpu_s=chain_cpu_s,
    prediction_cpu_s=prediction_cpu_s,
    prediction_draws=predicted.draws,
    prediction_rows=predicted.simulated_rows,
    chosen=choice.model,
    reason=choice.reason,
    fit_rows={"bgnbd": bgnbd.fitted().n_fit_rows, "gamma_gamma": gamma_gamma.fitted().n_fit_rows},
    converged={
        "bgnbd": bgnbd.convergence.converged,
        "paretonbd": paretonbd.convergence.converged,
        "gamma_gamma": gamma_gamma.convergence.converged,
    },
    mean_ltv=float(table["ltv"].mean()),
)
"""
)


def bench_chain(customers: int, repeats: int, draws: int) -> dict[str, object]:
    """The issue's whole chain (``CHAIN_CHILD``) in fresh interpreters, medians of ``repeats``."""
    print(f"chain: simulating {customers:,} customers ...", file=sys.stderr)
    transactions = simulate_transactions(
        customers, WORLD_BGNBD, WORLD_GAMMA_GAMMA, "2024-01-01", 84, AS_OF, seed=1
    )
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "transactions.parquet"
        transactions.to_parquet(path)
        code = f"PATH = {str(path)!r}\nAS_OF = {AS_OF!r}\nDRAWS = {draws}\n" + CHAIN_CHILD
        runs = [measure_in_subprocess(code, repeats=1) for _ in range(repeats)]
    stages = (
        "rfm_s",
        "bgnbd_fit_s",
        "paretonbd_fit_s",
        "gamma_gamma_fit_s",
        "choice_s",
        "ltv_s",
        "prediction_s",
        "chain_cpu_s",
        "prediction_cpu_s",
    )
    median = round(statistics.median(r["median_s"] for r in runs), 3)
    return {
        "customers": customers,
        "transactions": len(transactions),
        "chain_median_s": median,
        "chain_runs_s": [r["median_s"] for r in runs],
        "chain": "RFM (calibration + 90-day holdout) + BG/NBD + Pareto/NBD + Gamma-Gamma + "
        "holdout choice (auto) + 12-month LTV; prediction intervals timed apart; *_cpu_s: "
        "process CPU seconds (all threads), a steadier figure on a loaded machine",
        "goal_s": CHAIN_GOAL_S,
        "meets_goal": median < CHAIN_GOAL_S,
        "peak_rss_gb": max(r["peak_rss_gb"] for r in runs),
        **{k: round(statistics.median(r[k] for r in runs), 3) for k in stages},
        **{
            k: runs[-1][k]
            for k in (
                "prediction_draws",
                "prediction_rows",
                "chosen",
                "reason",
                "fit_rows",
                "converged",
                "mean_ltv",
            )
        },
        "load_average_before": [round(v, 2) for v in load_before],
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
    }


def _lifetimes_per_customer(
    summary: pd.DataFrame,
) -> tuple[dict[str, object], dict[str, float], np.ndarray]:
    """lifetimes as a user calls it: one row per customer."""
    from lifetimes import BetaGeoFitter, GammaGammaFitter

    x, t_x, age = summary["frequency"], summary["recency"], summary["T"]
    repeaters = summary[summary["frequency"] > 0]
    start = time.perf_counter()
    bgf = BetaGeoFitter().fit(x, t_x, age)
    t_bg = time.perf_counter()
    ggf = GammaGammaFitter().fit(repeaters["frequency"], repeaters["monetary_value"])
    t_gg = time.perf_counter()
    clv = ggf.customer_lifetime_value(
        bgf, x, t_x, age, summary["monetary_value"], time=12, discount_rate=0.01, freq="W"
    )
    end = time.perf_counter()
    timings: dict[str, object] = {
        "bgnbd_fit_s": round(t_bg - start, 3),
        "gamma_gamma_fit_s": round(t_gg - t_bg, 3),
        "customer_lifetime_value_s": round(end - t_gg, 3),
        "total_s": round(end - start, 3),
    }
    return timings, {**bgf.params_.to_dict(), **ggf.params_.to_dict()}, clv.to_numpy(float)


def _lifetimes_weighted(
    summary: pd.DataFrame,
) -> tuple[dict[str, object], dict[str, float], np.ndarray]:
    """lifetimes on the distinct rows ours use, with ``weights=`` (equal objective)."""
    from lifetimes import BetaGeoFitter, GammaGammaFitter

    x, t_x, age = summary["frequency"], summary["recency"], summary["T"]
    m = summary["monetary_value"]
    repeaters = summary[summary["frequency"] > 0]
    start = time.perf_counter()
    (ux, ut, uT), _, counts = distinct_rows(x, t_x, age)
    bgf = BetaGeoFitter().fit(ux, ut, uT, weights=counts.astype(int))
    t_bg = time.perf_counter()
    (gx, gm), _, g_counts = distinct_rows(repeaters["frequency"], repeaters["monetary_value"])
    ggf = GammaGammaFitter().fit(gx, gm, weights=g_counts.astype(int))
    t_gg = time.perf_counter()
    (cx, ct, cT, cm), inverse, _ = distinct_rows(x, t_x, age, m)
    rows = pd.DataFrame({"x": cx, "t": ct, "T": cT, "m": cm})  # lifetimes wants Series here
    clv = ggf.customer_lifetime_value(
        bgf, rows["x"], rows["t"], rows["T"], rows["m"], time=12, discount_rate=0.01, freq="W"
    )
    spread = clv.to_numpy(float)[inverse]
    end = time.perf_counter()
    timings: dict[str, object] = {
        "bgnbd_fit_s": round(t_bg - start, 3),
        "gamma_gamma_fit_s": round(t_gg - t_bg, 3),
        "customer_lifetime_value_s": round(end - t_gg, 3),
        "total_s": round(end - start, 3),
        "distinct_rows": {"bgnbd": len(ux), "gamma_gamma": len(gx), "clv": len(cx)},
    }
    return timings, {**bgf.params_.to_dict(), **ggf.params_.to_dict()}, spread


def bench_paretonbd(customers: int) -> dict[str, object]:
    """Our Pareto/NBD fit against lifetimes' on the same distinct weighted rows."""
    from lifetimes import ParetoNBDFitter

    from insightos_utils.ltv.models import paretonbd
    from insightos_utils.ltv.models.paretonbd import ParetoNbd, ParetoNbdParams
    from insightos_utils.ltv.simulate import simulate_paretonbd

    world = ParetoNbdParams(0.553, 10.578, 0.606, 11.669)
    summary = rfm_summary(
        simulate_paretonbd(customers, world, WORLD_GAMMA_GAMMA, seed=2), AS_OF, time_unit="W"
    )
    start = time.perf_counter()
    ours = ParetoNbd().fit(summary)
    ours_s = time.perf_counter() - start
    (ux, ut, uT), _, counts = distinct_rows(summary["frequency"], summary["recency"], summary["T"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        try:
            fitter = ParetoNBDFitter().fit(ux, ut, uT, weights=counts.astype(int))
            theirs = ParetoNbdParams(**fitter.params_.to_dict())
            error = None
        except Exception as failure:  # lifetimes raises ConvergenceError and others
            theirs, error = None, f"{type(failure).__name__}: {failure}"
        theirs_s = time.perf_counter() - start
    x, t_x, age = summary["frequency"], summary["recency"], summary["T"]
    their_ll = (
        float(paretonbd.log_likelihood(theirs, x, t_x, age).sum()) if theirs is not None else None
    )
    return {
        "customers": customers,
        "distinct_rows": len(ux),
        "ours_fit_s": round(ours_s, 3),
        "ours_log_likelihood": ours.log_likelihood,
        "ours_converged": ours.convergence.converged,
        "ours_params": ours.params_dict(),
        "lifetimes_fit_s": round(theirs_s, 3),
        "lifetimes_log_likelihood": their_ll,
        "lifetimes_error": error,
        "ours_at_least_as_good": their_ll is None or ours.log_likelihood >= their_ll - 1e-6,
    }


def bench_refit(customers: int, refits: int) -> dict[str, object]:
    """Time of the refit bootstrap (BG/NBD + Gamma-Gamma refitted per customer resample, on
    the distinct rows with summed weights, warm-started from the point fit, every customer
    valued per replicate); the point fit (done once by the pipeline) is outside the clock.
    Goal: 200 refits on 100,000 customers under 60 s."""
    from insightos_utils.ltv.intervals import DistinctRows, refit_bootstrap

    summary = rfm_summary(
        simulate_transactions(customers, WORLD_BGNBD, WORLD_GAMMA_GAMMA, seed=3),
        AS_OF,
        time_unit="W",
    )
    settings = LtvConfig(model="bgnbd")
    rows = DistinctRows.of(summary)
    point = rows.refit(np.ones(len(rows)), settings, "bgnbd")
    start = time.perf_counter()
    cpu = time.process_time()
    draws = refit_bootstrap(summary, settings, "bgnbd", samples=refits, warm=point)
    seconds = time.perf_counter() - start
    cpu_seconds = time.process_time() - cpu
    converged = [bool(p.convergence.converged and s.convergence.converged) for p, s in draws.models]
    return {
        "customers": customers,
        "distinct_purchase_rows": len(rows.purchase_rows[0]),
        "distinct_spend_rows": len(rows.spend_rows[0]),
        "refits": refits,
        "seconds": round(seconds, 2),
        "cpu_seconds": round(cpu_seconds, 2),
        "per_refit_s": round(seconds / refits, 4),
        "failed": draws.failed,
        "converged": int(sum(converged)),
        "goal": "200 refits on 100,000 customers under 60 s",
    }


def bench_coverage(worlds: int, customers: int, refits: int) -> dict[str, object]:
    """Coverage of the 95% interval of a campaign's mean expected LTV, sampling vs refit, on
    ``worlds`` simulated worlds with known parameters (``ltv.coverage``). The estimand is the
    population mean expected 12-month value of a customer of the campaign under the true
    parameters, in closed form; both intervals target it. Coverage comes with its Wilson 95%
    interval; the in-sample truth (mean over the world's own customers) is reported beside."""
    from insightos_utils.ltv.coverage import coverage_study

    start = time.perf_counter()
    study = coverage_study(worlds, customers, refits, WORLD_BGNBD, WORLD_GAMMA_GAMMA)
    return {**study.summary(), "seconds": round(time.perf_counter() - start, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only-paretonbd", action="store_true", help="only stage ltv_paretonbd")
    parser.add_argument("--paretonbd-customers", type=int, default=100_000)
    parser.add_argument("--refit-customers", type=int, default=100_000)
    parser.add_argument("--refits", type=int, default=200)
    parser.add_argument("--coverage-worlds", type=int, default=200)
    parser.add_argument("--coverage-customers", type=int, default=500)
    parser.add_argument(
        "--coverage-refits", type=int, default=200, help="refits per coverage world"
    )
    parser.add_argument("--only-coverage", action="store_true", help="only the coverage study")
    parser.add_argument("--only-chain", action="store_true", help="only stage ltv_chain")
    parser.add_argument("--chain-customers", type=int, default=None, help="default --customers")
    parser.add_argument(
        "--prediction-draws", type=int, default=200, help="0: the pipeline's default_draws"
    )
    args = parser.parse_args()

    if args.only_chain:
        chain_customers = args.chain_customers or args.customers
        record("ltv_chain", bench_chain(chain_customers, args.repeats, args.prediction_draws))
        return

    if args.only_coverage:
        print("coverage study ...", file=sys.stderr)
        record(
            "ltv_coverage",
            {
                **bench_coverage(
                    args.coverage_worlds, args.coverage_customers, args.coverage_refits
                ),
                "load_average": [round(v, 2) for v in os.getloadavg()],
            },
        )
        return

    load = os.getloadavg()
    print("Pareto/NBD against lifetimes, refit bootstrap, coverage ...", file=sys.stderr)
    record(
        "ltv_paretonbd",
        {
            "paretonbd_vs_lifetimes": bench_paretonbd(args.paretonbd_customers),
            "refit_bootstrap": bench_refit(args.refit_customers, args.refits),
            "coverage": bench_coverage(
                args.coverage_worlds, args.coverage_customers, args.coverage_refits
            ),
            "load_average_before": [round(v, 2) for v in load],
            "load_average_after": [round(v, 2) for v in os.getloadavg()],
        },
    )
    if args.only_paretonbd:
        return

    load_before = os.getloadavg()
    print(f"simulating {args.customers:,} customers ...", file=sys.stderr)
    transactions = simulate_transactions(
        args.customers, WORLD_BGNBD, WORLD_GAMMA_GAMMA, "2024-01-01", 84, AS_OF, seed=1
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "transactions.parquet"
        transactions.to_parquet(path)
        print("our pipeline in fresh interpreters ...", file=sys.stderr)
        code = f"PATH = {str(path)!r}\nAS_OF = {AS_OF!r}\n" + CHILD
        runs = [measure_in_subprocess(code, repeats=1) for _ in range(args.repeats)]
    stages = ("rfm_s", "bgnbd_fit_s", "gamma_gamma_fit_s", "ltv_s")
    extras = ("bgnbd_fit_rows", "gamma_gamma_fit_rows", "bgnbd_converged")
    ours = {
        "median_s": round(statistics.median(r["median_s"] for r in runs), 3),
        "runs_s": [r["median_s"] for r in runs],
        "peak_rss_gb": max(r["peak_rss_gb"] for r in runs),
        **{k: round(statistics.median(r[k] for r in runs), 3) for k in stages},
        **{k: runs[-1][k] for k in (*extras, "gamma_gamma_converged", "mean_ltv")},
        "note": "fresh interpreter per run, lifetimes imported before the clock; medians",
    }

    summary = rfm_summary(transactions, AS_OF, time_unit="W")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        print("lifetimes per customer ...", file=sys.stderr)
        sides = {"per_customer": _lifetimes_per_customer(summary)}
        print("lifetimes on distinct rows with weights= ...", file=sys.stderr)
        sides["weighted"] = _lifetimes_weighted(summary)

    # equal results: our fits against lifetimes', our LTV with its 4.345-week month against its
    bgnbd, gamma_gamma = BgNbd().fit(summary), GammaGamma().fit(summary)
    ours_params = {**bgnbd.params_dict(), **gamma_gamma.params_dict()}
    ours_clv = customer_ltv(summary, bgnbd, gamma_gamma, LtvConfig(), month_length=4.345)
    equality = {}
    for name, (_, their_params, their_clv) in sides.items():
        param_diff = max(abs(ours_params[k] / their_params[k] - 1) for k in ours_params)
        clv_diff = float(np.max(np.abs(ours_clv["ltv"].to_numpy() / their_clv - 1)))
        equality[name] = {
            "max_param_rel_diff": float(param_diff),
            "max_ltv_rel_diff": clv_diff,
            "equal": bool(param_diff < 1e-4 and clv_diff < 1e-4),
        }
    per_customer, weighted = sides["per_customer"][0], sides["weighted"][0]
    figures = {
        "customers": args.customers,
        "transactions": len(transactions),
        "ours": ours,
        "goal_s": GOAL_S,
        "meets_goal": ours["median_s"] < GOAL_S,
        "lifetimes_per_customer": {**per_customer, "note": "fits and CLV on every customer"},
        "lifetimes_weighted": {
            **weighted,
            "note": "fits on our distinct rows with weights=, CLV per distinct row (fair)",
        },
        "ratio_lifetimes_per_customer_to_ours": round(
            float(str(per_customer["total_s"])) / ours["median_s"], 2
        ),
        "ratio_lifetimes_weighted_to_ours": round(
            float(str(weighted["total_s"])) / ours["median_s"], 2
        ),
        "ratio_note": "lifetimes: fits + CLV on our RFM summary; ours: RFM summary + fits + LTV",
        "equal_results": equality,
        "load_average_before": [round(v, 2) for v in load_before],
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
    }
    record("ltv", figures)
    chain_customers = args.chain_customers or args.customers
    record("ltv_chain", bench_chain(chain_customers, args.repeats, args.prediction_draws))


if __name__ == "__main__":
    main()
