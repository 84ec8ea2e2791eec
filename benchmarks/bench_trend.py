"""Score-trend benchmark: 1,000,000 open leads against the previous run's scored_leads.csv
(goal: well under 1 s for the trend itself; reading the previous file is timed apart).

The previous run holds 90% of today's leads plus 100,000 that are no longer open; ids are text
like the scoring output's. Timed in this process, median of a few repeats.

Usage: ``.venv/bin/python benchmarks/bench_trend.py [--leads N] [--repeats R]``
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import median_seconds, record  # noqa: E402

from insightos_utils.leads.trend import previous_scores, score_trend, trend_summary  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    n = args.leads
    rng = np.random.default_rng(0)
    ids = np.char.add("u", np.arange(n + n // 10).astype(str)).astype(object)
    today_ids = pd.Series(ids[:n], dtype="str")  # as the scoring output holds them
    before = rng.random(n)
    today = np.clip(before + rng.normal(0, 0.05, n), 0, 1)
    kept = rng.random(n) < 0.9
    previous = pd.DataFrame(
        {
            "user_id": np.concatenate([ids[:n][kept], ids[n:]]),
            "score": np.concatenate([before[kept], rng.random(n // 10)]).round(6),
            "grade": "B",
        }
    ).sample(frac=1.0, random_state=1)  # another ranking: rows in another order
    with tempfile.TemporaryDirectory() as folder:
        previous.to_csv(os.path.join(folder, "scored_leads.csv"), index=False)
        read = median_seconds(lambda: previous_scores(folder), args.repeats)
        loaded, _ = previous_scores(folder)
    trend = median_seconds(lambda: score_trend(today_ids, today, loaded, 0.05), args.repeats)
    cpu_start = time.process_time()
    score_trend(today_ids, today, loaded, 0.05)
    trend["cpu_s"] = round(time.process_time() - cpu_start, 3)
    summary = trend_summary(score_trend(today_ids, today, loaded, 0.05), today_ids, loaded)
    record(
        "trend",
        {
            "leads": n,
            "previous_leads": len(previous),
            "trend_s": trend,
            "read_previous_csv_s": read,
            "goal": "trend well under 1 s for 1,000,000 leads",
            "counts": summary,
            "load_average": os.getloadavg()[0],
        },
    )


if __name__ == "__main__":
    main()
