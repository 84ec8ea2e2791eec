"""Product benchmark: the funnel, drop-off by campaign, friction points and activation drivers
for 1,000,000 users and 50,000,000 events (goal: under 20 s and under 8 GB peak), the
in-memory path and the DuckDB engine path side by side, with equal outputs.

The input is the feature benchmark's synthetic company (``bench_features.write_input``: 20
event names of very different frequency, post-conversion billing events, six campaigns),
written to Parquet once. Each measured child process times everything from the Parquet files
to ``analyse_product``'s result (``total_s``, the figure against the goal), with the read
apart (``read_s``) and ``analyse_s`` (the counting, funnel, campaigns, friction, drivers):

- ``memory_string_ids``: users and the three event columns read into pandas, ids as plain
  strings (as ingest writes them); the counting joins them to the cohort in DuckDB over Arrow;
- ``memory_categorical_ids``: the same with ids stored as categoricals (encoded once upstream);
- ``memory_dictionary_read`` (with ``--dictionary-read``): the string-id file read with
  ``read_dictionary`` (pyarrow builds the categories while reading), then the categorical
  path. Measured here at 200,000 users / 10,000,000 events (a loaded machine): the read took
  21 s against 3 s for plain strings, so it is not the default;
- ``duckdb_engine``: what a 50M-event folder gets under ``[data] engine = "auto"``: the users
  read into pandas, the events left in the Parquet file (an empty placeholder carrying the
  engine reference, as ``read_processed`` hands them over) and counted by DuckDB there
  (``engines.activity``); only the name summary and the per-(user, name) counts and first
  times come back.

Peak RSS covers the whole child, input included; ``cpu_s`` (all threads) is reported next to
the wall time: on a shared machine the wall time says as much about the neighbours as about
the code. Each child writes funnel, drivers, friction and campaign tables; they are asserted
equal across the four paths (floats to 1e-12) before anything is recorded.

Usage: ``.venv/bin/python benchmarks/bench_product.py [--users N] [--events M] [--repeats R]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import CHILD_PEAK_RSS, measure_in_subprocess, record  # noqa: E402
from bench_features import AS_OF, VARIANTS  # noqa: E402

OUTPUT_TABLES = ("funnel", "drivers", "friction", "by_campaign")

READ_MEMORY = """
users = pd.read_parquet(USERS)
events = pd.read_parquet(EVENTS, columns=["user_id", "event_name", "occurred_at"], **READ_OPTIONS)
"""
READ_ENGINE = """
users = pd.read_parquet(USERS)
events = pd.DataFrame({"user_id": pd.Series([], dtype="str"),
                       "event_name": pd.Series([], dtype="str"),
                       "occurred_at": pd.Series([], dtype="datetime64[us]")})
attach(EngineRef("duckdb", LAKE, LAKE), users, events)  # as read_processed under duckdb
"""
CHILD = """
import time
import pandas as pd
from insightos_utils.config import ProductConfig
from insightos_utils.product.stage import analyse_product
import duckdb, insightos_utils.engines.activity  # imported before the clock, on every path
from insightos_utils.engines.pipeline import EngineRef, attach
start, cpu = time.perf_counter(), time.process_time()
{read}
read_seconds = time.perf_counter() - start
analysis = analyse_product(users, events, pd.Timestamp(AS_OF), 14, ProductConfig())
seconds = time.perf_counter() - start
cpu_seconds = time.process_time() - cpu
tables = {{"funnel": analysis.funnel.contract_table(), "drivers": analysis.drivers,
          "friction": analysis.friction, "by_campaign": analysis.by_campaign}}
for name, table in tables.items():
    table.to_pickle(f"{{OUT}}_{{name}}.pkl")
_report(seconds, total_s=round(seconds, 3), read_s=round(read_seconds, 3),
        analyse_s=round(seconds - read_seconds, 3), cpu_s=round(cpu_seconds, 3),
        cohort=analysis.activity.n_users, events_counted=analysis.activity.events_counted,
        steps=len(analysis.funnel.steps), drivers=len(analysis.drivers))
"""


def child_code(variant: str, folder: Path) -> str:
    """The measured child of ``variant`` (see the module docstring)."""
    events_file = VARIANTS["categorical_ids"] if "categorical" in variant else "events.parquet"
    options = {"read_dictionary": ["user_id", "event_name"]} if "dictionary" in variant else {}
    header = (
        f"USERS = {str(folder / 'users.parquet')!r}\n"
        f"EVENTS = {str(folder / events_file)!r}\n"
        f"LAKE = {str(folder)!r}\nAS_OF = {str(AS_OF)!r}\n"
        f"OUT = {str(folder / variant)!r}\nREAD_OPTIONS = {options!r}\n"
    )
    read = READ_ENGINE if variant == "duckdb_engine" else READ_MEMORY
    return header + CHILD_PEAK_RSS + CHILD.format(read=read)


VARIANT_NAMES = ("memory_string_ids", "memory_categorical_ids", "duckdb_engine")
DICTIONARY_READ = "memory_dictionary_read"  # --dictionary-read: slower (see the docstring)


def assert_equal_outputs(folder: Path, variants: list[str]) -> None:
    """Every path's tables equal the first one's (floats to 1e-12)."""
    reference, *others = variants
    for name in OUTPUT_TABLES:
        expected = pd.read_pickle(folder / f"{reference}_{name}.pkl")
        for variant in others:
            got = pd.read_pickle(folder / f"{variant}_{name}.pkl")
            pd.testing.assert_frame_equal(got, expected, rtol=1e-12, obj=f"{variant} {name}")


def write_lake(folder: Path, n_users: int, n_events: int) -> int:
    """The company as Parquet in ``folder`` (generated in a child: a large parent would
    inflate the children's peak RSS, which Linux carries over from the forking parent), with
    ``events.parquet`` (text ids, as ingest writes them) and an ingest report naming DuckDB."""
    subprocess.run(
        [
            sys.executable,
            str(Path(__file__).with_name("bench_features.py")),
            "--users",
            str(n_users),
            "--events",
            str(n_events),
            "--write-input",
            str(folder),
        ],
        check=True,
    )
    (folder / "events.parquet").symlink_to(folder / VARIANTS["string_ids"])
    report = {"ingested_at": time.strftime("%Y-%m-%dT%H:%M:%SZ"), "engine": {"name": "duckdb"}}
    (folder / "ingest_report.json").write_text(json.dumps(report))
    return int(pq.ParquetFile(folder / "events.parquet").metadata.num_rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=50_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dictionary-read", action="store_true", help="also measure it")
    args = parser.parse_args()
    variants = [*VARIANT_NAMES, *([DICTIONARY_READ] if args.dictionary_read else [])]

    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        start = time.perf_counter()
        n_events = write_lake(folder, args.users, args.events)
        print(f"input generated in {time.perf_counter() - start:.1f} s", file=sys.stderr)

        figures: dict[str, object] = {
            "users": args.users,
            "events": n_events,
            "goal": "< 20 s, < 8 GB peak (total_s: from the Parquet files to the analysis)",
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        }
        for variant in variants:
            code = child_code(variant, folder)
            figures[variant] = measure_in_subprocess(code, repeats=args.repeats)
            print(f"{variant}: {figures[variant]}", file=sys.stderr)
        assert_equal_outputs(folder, variants)
        figures["outputs_equal"] = list(OUTPUT_TABLES)  # asserted above, else no record
        figures["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
        record("product", figures)


if __name__ == "__main__":
    main()
