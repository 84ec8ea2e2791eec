"""Trend and expected value together on 1,000,000 scored leads, as a run applies them (goal:
under 2 s added to scoring, issue 12).

One child process per repeat builds the scored leads and the previous run's file
(``_lead_inputs``), reads the previous scores (timed apart, ``read_previous_s``), then times in
one stretch what a run adds to scoring: each lead's trend against the previous run (with the
counts the model card shows) and the expected value with the ``rank_by = "value"`` ranking
(``add_expected_value``: campaign codes, products, re-ranking, reordering the rows). ``median_s``
is that stretch's wall time, ``cpu_s`` its CPU time (the figure that does not depend on the
neighbours on a shared machine); the file's read and rewrite are in ``bench_value.py``.

Usage: ``.venv/bin/python benchmarks/bench_value_trend.py [--leads N] [--repeats R]``
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
from insightos_utils.leads.value import add_expected_value

scored, _ = scored_leads(N_LEADS)
table = customer_values()
with tempfile.TemporaryDirectory() as folder:
    previous_run(scored).to_csv(Path(folder) / "scored_leads.csv", index=False)
    cpu, wall = time.process_time(), time.perf_counter()
    previous, _ = previous_scores(folder)
    read_wall, read_cpu = time.perf_counter() - wall, time.process_time() - cpu
cpu, wall = time.process_time(), time.perf_counter()
compared = score_trend(scored["user_id"], scored["score"], previous, 0.05)
counts = compared.counts()
trended = scored.assign(trend=compared.as_text())  # as leads.trend.with_trend
trend_wall, trend_cpu = time.perf_counter() - wall, time.process_time() - cpu
valued = add_expected_value(trended, table, rank_by="value")
seconds, cpu_s = time.perf_counter() - wall, time.process_time() - cpu
assert len(valued.table) == N_LEADS and counts["no_longer_open"] > 0
_report(
    round(seconds, 3),
    cpu_s=round(cpu_s, 3),
    trend_s=round(trend_wall, 3),
    trend_cpu_s=round(trend_cpu, 3),
    value_s=round(seconds - trend_wall, 3),
    value_cpu_s=round(cpu_s - trend_cpu, 3),
    read_previous_s=round(read_wall, 3),
    read_previous_cpu_s=round(read_cpu, 3),
    counts=counts,
)
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
        "value_and_trend",
        {
            "leads": args.leads,
            "goal": "trend and expected value together under 2 s for 1,000,000 leads",
            "median_s_is": "trend + expected value (rank_by = value) in one process, wall",
            "load_average_before": [round(x, 2) for x in load],
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
            **figures,
        },
    )


if __name__ == "__main__":
    main()
