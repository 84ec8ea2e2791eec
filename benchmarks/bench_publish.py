"""Publishing benchmark: a run with 1,000,000 scored leads written to PostgreSQL by
``publish_run`` (goal: under 30 s), next to pandas' ``DataFrame.to_sql`` (the tool a user would
otherwise pick) writing the same rows into the same server.

The run folder is generated once (scored_leads.csv with every contract column, plus small LTV and
funnel files). Each measured child process publishes it into a fresh schema and times
``publish_run`` end to end: reading and typing the CSV files, the schema, DELETE + COPY of every
current table and the ``insightos_runs`` row, in one transaction. The pandas side reads the same
CSV and calls ``to_sql`` (``method="multi"``, chunks of 5,000 rows (12 columns: under the protocol's 65,535 parameters): its faster setting) inside
one transaction too. Peak RSS covers the whole child.

Usage: ``.venv/bin/python benchmarks/bench_publish.py [--leads N] [--repeats R] [--db URL]``
(default URL: ``INSIGHTOS_TEST_DATABASE_URL`` or the local server
``postgresql+psycopg://postgres@127.0.0.1:5432/test``).
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
from _common import CHILD_PEAK_RSS, measure_in_subprocess, record  # noqa: E402

DEFAULT_DB = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def write_run(folder: Path, n_leads: int, seed: int = 3) -> None:
    """A run folder whose scored_leads.csv has ``n_leads`` rows (vectorised numpy)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    score = rng.beta(1.2, 6, n_leads)
    reasons = np.array(
        [
            "created 3 projects; invited a teammate",
            "came from google_gestao_agil; viewed 2 reports",
            "no events yet in the window",
        ],
        dtype=object,
    )
    value = score * rng.gamma(3, 25, n_leads)
    pd.DataFrame(
        {
            "user_id": np.char.add("u", np.arange(n_leads).astype(str)),
            "score": score,
            "grade": np.array(list("ABCD"))[np.digitize(score, [0.1, 0.2, 0.4])[::-1] % 4],
            "rank": np.arange(1, n_leads + 1),
            "top_reasons": reasons[rng.integers(0, 3, n_leads)],
            "model_version": "v2_xgboost-20260630T000000Z",
            "scored_at": "2026-06-30T00:00:00Z",
            "expected_value": value,
            "expected_value_low": value * 0.7,
            "expected_value_high": value * 1.4,
            "trend": np.array(["new", "improving", "steady", "declining"])[
                rng.integers(0, 4, n_leads)
            ],
            "window_complete": rng.random(n_leads) < 0.9,
        }
    ).to_csv(folder / "scored_leads.csv", index=False)
    pd.DataFrame({"campaign": ["a", "b"], "customers": [10, 20], "ltv_mean": [50.0, 60.0]}).to_csv(
        folder / "campaign_ltv.csv", index=False
    )
    pd.DataFrame({"user_id": ["c1", "c2"], "frequency": [1.0, 2.0], "ltv": [10.0, 20.0]}).to_csv(
        folder / "customer_ltv.csv", index=False
    )
    pd.DataFrame({"step": [0], "event_name": ["(signup)"], "users_reached": [n_leads]}).to_csv(
        folder / "funnel.csv", index=False
    )


SCHEMA = """
import uuid
import sqlalchemy as sa
schema = f"bench_{uuid.uuid4().hex[:10]}"
admin = sa.create_engine(DB)
with admin.begin() as connection:
    connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
separator = "&" if "?" in DB else "?"
url = f"{DB}{separator}options=-csearch_path%3D{schema}"
def _drop():
    with admin.begin() as connection:
        connection.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
    admin.dispose()
"""

PUBLISH_CHILD = (
    CHILD_PEAK_RSS
    + SCHEMA
    + """
import time
from insightos_utils.publish import publish_run
meta = {"run_id": "bench", "kind": "full", "as_of": "2026-06-30T00:00:00"}
try:
    start = time.perf_counter()
    report = publish_run(RUN, url, meta)
    seconds = time.perf_counter() - start
finally:
    _drop()
_report(seconds, rows=report.rows["insightos_scored_leads"])
"""
)

PANDAS_CHILD = (
    CHILD_PEAK_RSS
    + SCHEMA
    + """
import time
import pandas as pd
try:
    start = time.perf_counter()
    leads = pd.read_csv(RUN + "/scored_leads.csv", dtype={"user_id": str})
    leads["scored_at"] = pd.to_datetime(leads["scored_at"]).dt.tz_localize(None)
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        leads.to_sql("pandas_scored_leads", connection, index=False, method="multi",
                     chunksize=5_000)
    engine.dispose()
    seconds = time.perf_counter() - start
finally:
    _drop()
_report(seconds, rows=len(leads))
"""
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--db", default=os.environ.get("INSIGHTOS_TEST_DATABASE_URL") or DEFAULT_DB)
    parser.add_argument(
        "--pandas-leads",
        type=int,
        default=None,
        help="rows for the to_sql comparison (default: --leads; 0 skips it); to_sql is about "
        "ten times slower, so a smaller size keeps the benchmark short",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        run = Path(name) / "run"
        start = time.perf_counter()
        write_run(run, args.leads)
        print(f"run folder written in {time.perf_counter() - start:.1f} s", file=sys.stderr)
        header = f"RUN = {str(run)!r}\nDB = {args.db!r}\n"
        figures = {
            "leads": args.leads,
            "goal": "< 30 s to PostgreSQL",
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
            "publish_run": measure_in_subprocess(header + PUBLISH_CHILD, repeats=args.repeats),
        }
        pandas_leads = args.leads if args.pandas_leads is None else args.pandas_leads
        if pandas_leads:
            pandas_run = Path(name) / "pandas-run"
            write_run(pandas_run, pandas_leads)
            pandas_header = f"RUN = {str(pandas_run)!r}\nDB = {args.db!r}\n"
            figures["pandas_to_sql_multi"] = {
                "leads": pandas_leads,
                **measure_in_subprocess(pandas_header + PANDAS_CHILD, repeats=1),
            }
        figures["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
        record("publish", figures)


if __name__ == "__main__":
    main()
