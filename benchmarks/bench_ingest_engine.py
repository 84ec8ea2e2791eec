"""Ingest benchmark: ``insightos ingest`` of a large Parquet folder under ``[data] engine =
"duckdb"`` (the events checked and written by DuckDB, never loaded into pandas), then the
feature table as 02_eda builds it from the processed folder — time and peak RSS of one fresh
child process (goal: 200,000,000 events / 4,000,000 users ingested and featured under 4 GB).

The folder is ``bench_engines.make_lake`` (the synthetic company scaled out with DuckDB) with the
contract's ``properties`` column, so ingest accepts it. The child runs the command line itself
(``insightos_utils.cli.main(["ingest", ...])``, as the console script does) with a config file
setting ``engine = "duckdb"`` and ``engine_memory_limit``, then ``read_processed`` +
``resolve_as_of`` + ``fit_feature_spec`` + ``build_feature_table``. ``--compare-memory`` also
measures ``engine = "memory"`` on the same folder (only sensible at a reduced scale: it loads
every event). Figures into reports/benchmarks.json under ``ingest_engine``
(``ingest_engine_scale_<s>`` for a reduced scale). Everything generated is deleted.

Usage: ``.venv/bin/python benchmarks/bench_ingest_engine.py [--scale 0.02] [--memory-limit 2500MB]
[--compare-memory] [--work DIR]`` (the full size needs about 15 GB of free disk in ``--work``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import CHILD_PEAK_RSS, measure_in_subprocess, record  # noqa: E402
from bench_engines import load_average, make_lake  # noqa: E402

INGEST_CHILD = (
    CHILD_PEAK_RSS
    + """
import resource
import time
from insightos_utils.cli import main
from insightos_utils.ingest import read_processed
from insightos_utils.leads import features
start = time.perf_counter()
status = main(["ingest", "--raw", LAKE, "--out", OUT, "--config", CONFIG])
assert status == 0, status
ingest_seconds = time.perf_counter() - start
peak_after_ingest = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
data = read_processed(OUT)
events = features.encode_events(data.events)
as_of = features.resolve_as_of(data.users, events, None)
spec = features.fit_feature_spec(data.users, events, as_of)
table = features.build_feature_table(data.users, events, spec, as_of)
seconds = time.perf_counter() - start
import json
report = json.load(open(OUT + "/ingest_report.json"))
_report(seconds, ingest_s=round(ingest_seconds, 1), features_s=round(seconds - ingest_seconds, 1),
        peak_after_ingest_gb=round(peak_after_ingest, 3), events_loaded=len(data.events),
        events_written=report["tables"]["events"]["rows_written"],
        validated_in=report["tables"]["events"].get("validated_in", "pandas"),
        feature_rows=len(table), feature_columns=table.shape[1])
"""
)


def measure(work: Path, lake: Path, engine: str, memory_limit: str) -> dict[str, Any]:
    out = work / f"out-{engine}"
    config = work / f"{engine}.toml"
    config.write_text(
        f'[data]\nengine = "{engine}"\nengine_memory_limit = "{memory_limit}"\n', encoding="utf-8"
    )
    code = "".join(
        f"{name} = {value!r}\n"
        for name, value in (("LAKE", str(lake)), ("OUT", str(out)), ("CONFIG", str(config)))
    )
    figures = measure_in_subprocess(code + INGEST_CHILD, 1)
    figures["processed_gb"] = round(sum(p.stat().st_size for p in out.glob("*.parquet")) / 1e9, 2)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every size")
    parser.add_argument("--memory-limit", default="2500MB", help="[data] engine_memory_limit")
    parser.add_argument("--compare-memory", action="store_true", help="also engine = memory")
    parser.add_argument("--work", type=Path, help="folder for the generated data")
    args = parser.parse_args()
    n_users = max(1_000, int(4_000_000 * args.scale))
    n_events = max(1_000, int(200_000_000 * args.scale))
    figures: dict[str, Any] = {"scale": args.scale, "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory(dir=args.work) as name:
        work = Path(name)
        start = time.perf_counter()
        figures.update(make_lake(work / "lake", n_users, n_events, properties=True))
        figures["generate_s"] = round(time.perf_counter() - start, 1)
        figures["raw_gb"] = round(
            sum(p.stat().st_size for p in (work / "lake").glob("*.parquet")) / 1e9, 2
        )
        figures["memory_limit"] = args.memory_limit
        figures["load_before"] = load_average()
        figures["duckdb"] = measure(work, work / "lake", "duckdb", args.memory_limit)
        if args.compare_memory:
            figures["memory"] = measure(work, work / "lake", "memory", args.memory_limit)
        figures["load_after"] = load_average()
    figures["goal"] = "200,000,000 events ingested and featured under 4 GB peak (engine duckdb)"
    figures["under_4_gb"] = figures["duckdb"]["peak_rss_gb"] < 4.0
    print(json.dumps(figures, indent=2), file=sys.stderr)
    record("ingest_engine" if args.scale == 1.0 else f"ingest_engine_scale_{args.scale:g}", figures)


if __name__ == "__main__":
    main()
