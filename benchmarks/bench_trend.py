"""Score-trend benchmark: 1,000,000 open leads against the previous run's scored_leads.csv
(goal: well under 1 s for the trend itself; reading the previous file is timed apart).

The previous run holds 90% of today's leads plus 100,000 that are no longer open, in another
order (``_lead_inputs.previous_run``); ids are text like the scoring output's. Timed in this
process, median of a few repeats, with the CPU time of one more run. The trend and the expected
value together, as a run applies them: ``bench_value.py`` (``trend_and_value_s``).

Usage: ``.venv/bin/python benchmarks/bench_trend.py [--leads N] [--repeats R]``
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import median_seconds, record  # noqa: E402
from _lead_inputs import previous_run, scored_leads  # noqa: E402

from insightos_utils.leads.trend import previous_scores, score_trend  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    today, _ = scored_leads(args.leads)
    previous = previous_run(today)
    with tempfile.TemporaryDirectory() as folder:
        previous.to_csv(os.path.join(folder, "scored_leads.csv"), index=False)
        read = median_seconds(lambda: previous_scores(folder), args.repeats)
        cpu_start = time.process_time()
        loaded, _ = previous_scores(folder)
        read["cpu_s"] = round(time.process_time() - cpu_start, 3)
    assert loaded is not None

    def trend() -> dict[str, int | None]:
        return score_trend(today["user_id"], today["score"], loaded, 0.05).counts()

    timed = median_seconds(trend, args.repeats)
    cpu_start = time.process_time()
    counts = trend()
    timed["cpu_s"] = round(time.process_time() - cpu_start, 3)
    record(
        "trend",
        {
            "leads": args.leads,
            "previous_leads": len(previous),
            "trend_s": timed,
            "read_previous_csv_s": read,
            "goal": "trend well under 1 s for 1,000,000 leads",
            "counts": counts,
            "load_average": os.getloadavg()[0],
        },
    )


if __name__ == "__main__":
    main()
