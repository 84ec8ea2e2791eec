"""Benchmark: `insightos synth` of 1,000,000 users to CSV (goal: under 60 s on 2 cores).

Each run is a fresh interpreter (peak memory measured there); the figure is the median of three.
Also reported: rows written, events per second, bytes on disk, CPU seconds and the machine's
load average, since the machine is shared and wall time depends on it.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

from _common import CHILD_PEAK_RSS, measure_in_subprocess, record  # noqa: E402

N_USERS = 1_000_000
GOAL_SECONDS = 60.0

CHILD = (
    CHILD_PEAK_RSS
    + f"""
import os, shutil, tempfile, time
import pandas as pd
from insightos_utils.synth import write_company

out = tempfile.mkdtemp(prefix="bench_synth_")
try:
    start, cpu = time.perf_counter(), time.process_time()
    paths = write_company(out, n_users={N_USERS}, seed=42, show_progress=False)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
    rows = {{name: sum(1 for _ in open(path, "rb")) - 1 for name, path in paths.items()}}
    size = sum(os.path.getsize(path) for path in paths.values())
finally:
    shutil.rmtree(out, ignore_errors=True)
_report(
    seconds,
    cpu_seconds=round(cpu_seconds, 2),
    rows=rows,
    events_per_s=round(rows["events"] / seconds),
    bytes_written=size,
    load_average_1m=os.getloadavg()[0],
)
"""
)


def main() -> None:
    figures = measure_in_subprocess(CHILD, repeats=3)
    figures.update(
        {
            "users": N_USERS,
            "format": "csv",
            "goal_s": GOAL_SECONDS,
            "meets_goal": figures["median_s"] < GOAL_SECONDS,
        }
    )
    record("synth", figures)


if __name__ == "__main__":
    main()
