"""Expected-value benchmark: ``add_expected_value`` on 1,000,000 scored leads (goal: well under
2 s added to scoring).

The input is what the runner step sees: scored leads in scoring's order (score, then user id;
string ids, reasons, model version), a user id → campaign lookup over every user (1,200,000,
shuffled: the leads are a subset of the users) and a ``new_customer_value.csv`` table with 12
campaigns, half of them borrowing the ``(all)`` value, plus leads whose campaign has no
customer yet. Each measured child process builds the input, then times, apart: the expected
value with ``rank_by = "value"`` (campaign join, products, re-ranking and reordering the rows),
the same with ``"probability"``, and the whole runner step ``rewrite_scored_leads`` (reading
and writing the CSV file around it). ``cpu_s`` is reported next to the wall time: on a shared
machine the wall time says as much about the neighbours as about the code.

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
    + """
import tempfile, time
from pathlib import Path
import numpy as np
import pandas as pd
from insightos_utils.leads.value import add_expected_value, rewrite_scored_leads

rng = np.random.default_rng(7)
n_leads, n_users = N_LEADS, int(N_LEADS * 1.2)
user_ids = pd.Series(np.char.add("u", rng.permutation(n_users).astype(str)), dtype="str")
campaigns = np.array([f"campaign_{i:02d}" for i in range(12)] + ["brand_new"])
lookup = pd.Series(campaigns[rng.integers(0, len(campaigns), n_users)], index=user_ids)
score = np.round(rng.beta(1.2, 6, n_leads), 6)
reasons = np.array(["created 3 projects; invited a teammate", "no events yet in the window"])
scored = pd.DataFrame(
    {
        "user_id": user_ids.iloc[:n_leads].to_numpy(),
        "score": score,
        "grade": np.where(score > 0.3, "A", "C"),
        "top_reasons": reasons[rng.integers(0, 2, n_leads)],
        "model_version": "v2_xgboost@bench",
        "scored_at": "2026-06-30T00:00:00Z",
    }
).sort_values(["score", "user_id"], ascending=[False, True], ignore_index=True)
scored.insert(3, "rank", np.arange(1, n_leads + 1))
value = rng.gamma(3, 30, 13)
table = pd.DataFrame(
    {
        "campaign": ["(all)", *campaigns[:12]],
        "customers": 100,
        "value": value,
        "value_low": value * 0.8,
        "value_high": value * 1.3,
        "fallback": [False] * 7 + [True] * 6,
        "basis": "overall value: few customers",
    }
)
figures = {}
cpu_total, wall_total = time.process_time(), time.perf_counter()
for rank_by in ("value", "probability"):
    cpu, wall = time.process_time(), time.perf_counter()
    valued = add_expected_value(scored, table, rank_by=rank_by, campaigns=lookup)
    figures[f"{rank_by}_s"] = round(time.perf_counter() - wall, 3)
    figures[f"{rank_by}_cpu_s"] = round(time.process_time() - cpu, 3)
    assert len(valued.table) == n_leads and valued.table["rank"].iloc[-1] == n_leads
with tempfile.TemporaryDirectory() as folder:
    path, values = Path(folder) / "scored_leads.csv", Path(folder) / "new_customer_value.csv"
    scored.to_csv(path, index=False)
    table.to_csv(values, index=False)
    cpu, wall = time.process_time(), time.perf_counter()
    rewrite_scored_leads(path, values, rank_by="value", campaigns=lambda: lookup)
    figures["rewrite_file_s"] = round(time.perf_counter() - wall, 3)
    figures["rewrite_file_cpu_s"] = round(time.process_time() - cpu, 3)
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
            "goal": "expected value and rank for 1,000,000 leads well under 2 s (median_s)",
            "median_s_is": "add_expected_value with rank_by = value (join, products, re-rank)",
            "load_average_before": [round(x, 2) for x in load],
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
            **figures,
        },
    )


if __name__ == "__main__":
    main()
