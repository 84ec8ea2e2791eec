"""Product benchmark: the funnel, drop-off by campaign, friction points and activation drivers
for 1,000,000 users and 50,000,000 events (goal: under 20 s and under 8 GB peak).

The input is the feature benchmark's synthetic company (``bench_features.write_input``: 20
event names of very different frequency, post-conversion billing events, six campaigns),
written to Parquet once. Each measured child process reads users and the three event columns
the stage needs (timed apart, as ``read_s``), then times ``analyse_product``: the DuckDB join of
events to users, the per-user first times and counts, the funnel, campaigns, friction and
drivers. Two inputs: ids as plain strings (as ingest writes them) and as categoricals. Peak RSS
covers the whole child, input included. ``cpu_s`` (all threads) is reported next to the wall
time: on a shared machine the wall time says as much about the neighbours as about the code.

Usage: ``.venv/bin/python benchmarks/bench_product.py [--users N] [--events M] [--repeats R]``
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import CHILD_PEAK_RSS, measure_in_subprocess, record  # noqa: E402
from bench_features import AS_OF, VARIANTS  # noqa: E402

CHILD = (
    CHILD_PEAK_RSS
    + """
import time
import pandas as pd
from insightos_utils.config import ProductConfig
from insightos_utils.product.stage import analyse_product
start = time.perf_counter()
users = pd.read_parquet(USERS)
events = pd.read_parquet(EVENTS, columns=["user_id", "event_name", "occurred_at"])
read_seconds = time.perf_counter() - start
start, cpu = time.perf_counter(), time.process_time()
analysis = analyse_product(users, events, pd.Timestamp(AS_OF), 14, ProductConfig())
seconds = time.perf_counter() - start
_report(seconds, cpu_s=round(time.process_time() - cpu, 3), read_s=round(read_seconds, 3),
        events=len(events),
        cohort=analysis.activity.n_users, steps=len(analysis.funnel.steps),
        drivers=len(analysis.drivers))
"""
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=50_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        start = time.perf_counter()
        # generated in a child (bench_features' generator): a large parent would inflate the
        # children's peak RSS, which Linux carries over from the forking parent
        subprocess.run(
            [
                sys.executable,
                str(Path(__file__).with_name("bench_features.py")),
                "--users",
                str(args.users),
                "--events",
                str(args.events),
                "--write-input",
                str(folder),
            ],
            check=True,
        )
        n_events = pq.ParquetFile(folder / VARIANTS["string_ids"]).metadata.num_rows
        print(f"input generated in {time.perf_counter() - start:.1f} s", file=sys.stderr)

        figures = {
            "users": args.users,
            "events": n_events,
            "goal": "< 20 s, < 8 GB peak",
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        }
        for variant, file_name in VARIANTS.items():
            paths = (
                f"USERS = {str(folder / 'users.parquet')!r}\n"
                f"EVENTS = {str(folder / file_name)!r}\nAS_OF = {str(AS_OF)!r}\n"
            )
            figures[variant] = measure_in_subprocess(paths + CHILD, repeats=args.repeats)
        figures["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
        record("product", figures)


if __name__ == "__main__":
    main()
