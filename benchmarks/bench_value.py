"""Expected-value benchmark: ``add_expected_value`` on 1,000,000 scored leads, and the trend and
the expected value together as a run applies them (goal, issue 12: under 2 s added to scoring).

The input is what the runner sees (``_lead_inputs``): scored leads in scoring's order with their
campaign, as ``scored_leads.csv`` holds them, a ``new_customer_value.csv`` table, and the
previous run's scores. Each measured child process builds the input, then times, apart: the
expected value with ``rank_by = "value"`` (campaign codes, products, re-ranking, reordering the
rows), the same with ``"probability"``, the value ranking of a file without a campaign column
(joined on a user id → campaign look-up over 1,200,000 users), the whole runner step
``rewrite_scored_leads`` (reading and writing the CSV around it), and — the closing figure,
``trend_and_value_s`` / ``trend_and_value_cpu_s`` — each lead's trend against the previous run
(with its counts) followed by the expected value and value ranking, in one stretch; reading the
previous run's file is timed apart (``read_previous_s``). ``cpu_s`` is reported next to each
wall time: on a shared machine the wall time says as much about the neighbours as the code.

Usage: ``.venv/bin/python benchmarks/bench_value.py [--leads N] [--repeats R]``
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import CHILD_PEAK_RSS, measure_in_subprocess, record  # noqa: E402

CHILD = (
    CHILD_PEAK_RSS
    + f"""
import sys, tempfile, time
from pathlib import Path
sys.path.insert(0, {str(Path(__file__).resolve().parent)!r})
from _lead_inputs import customer_values, previous_run, scored_leads
from insightos_utils.leads.trend import previous_scores, score_trend
from insightos_utils.leads.value import add_expected_value, rewrite_scored_leads

scored, lookup = scored_leads(N_LEADS)
table = customer_values()
without_campaign = scored.drop(columns=["campaign"])
figures = {{}}
for name, leads, rank_by, campaigns in (
    ("value", scored, "value", None),
    ("probability", scored, "probability", None),
    ("value_with_lookup", without_campaign, "value", lookup),
):
    cpu, wall = time.process_time(), time.perf_counter()
    valued = add_expected_value(leads, table, rank_by=rank_by, campaigns=campaigns)
    figures[f"{{name}}_s"] = round(time.perf_counter() - wall, 3)
    figures[f"{{name}}_cpu_s"] = round(time.process_time() - cpu, 3)
    assert len(valued.table) == N_LEADS and valued.table["rank"].iloc[-1] == N_LEADS
with tempfile.TemporaryDirectory() as folder:
    path, values = Path(folder) / "scored_leads.csv", Path(folder) / "new_customer_value.csv"
    scored.to_csv(path, index=False)
    table.to_csv(values, index=False)
    cpu, wall = time.process_time(), time.perf_counter()
    rewrite_scored_leads(path, values, rank_by="value", campaigns=lambda: lookup)
    figures["rewrite_file_s"] = round(time.perf_counter() - wall, 3)
    figures["rewrite_file_cpu_s"] = round(time.process_time() - cpu, 3)
    previous_run(scored).to_csv(path, index=False)
    cpu, wall = time.process_time(), time.perf_counter()
    previous, _ = previous_scores(folder)
    figures["read_previous_s"] = round(time.perf_counter() - wall, 3)
    figures["read_previous_cpu_s"] = round(time.process_time() - cpu, 3)
cpu, wall = time.process_time(), time.perf_counter()
compared = score_trend(scored["user_id"], scored["score"], previous, 0.05)
figures["trend_counts"] = compared.counts()
trended = scored.assign(trend=compared.as_text())  # as leads.trend.with_trend
figures["trend_s"] = round(time.perf_counter() - wall, 3)
figures["trend_cpu_s"] = round(time.process_time() - cpu, 3)
valued = add_expected_value(trended, table, rank_by="value")
figures["trend_and_value_s"] = round(time.perf_counter() - wall, 3)
figures["trend_and_value_cpu_s"] = round(time.process_time() - cpu, 3)
assert len(valued.table) == N_LEADS and figures["trend_counts"]["no_longer_open"] > 0
_report(figures["value_s"], **figures)
"""
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    load = os.getloadavg()
    figures = measure_in_subprocess(CHILD.replace("N_LEADS", str(args.leads)), args.repeats)
    record(
        "value",
        {
            "leads": args.leads,
            "goal": "trend and expected value for 1,000,000 leads under 2 s (trend_and_value_s)",
            "median_s_is": "add_expected_value, rank_by = value, campaign carried (as the runner)",
            "load_average_before": [round(x, 2) for x in load],
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
            **figures,
        },
    )


if __name__ == "__main__":
    main()
