"""Engine benchmarks: the event part of the feature table on DuckDB, PostgreSQL and in memory.

Three measurements, each in fresh child processes (peak RSS of the child, input reading
included), figures into reports/benchmarks.json under ``engines``:

1. ``parquet_side_by_side`` (default 50,000,000 events / 1,000,000 users): today's in-memory
   path (read the Parquet, ``fit_feature_spec`` + ``build_feature_table``) against the DuckDB
   engine (``fit_vocabulary`` + ``event_aggregates`` straight from the Parquet), in one run;
   the two tables are compared column by column (they must be equal).
2. ``parquet_out_of_core`` (default 200,000,000 events / 4,000,000 users): the DuckDB engine
   with a memory limit, spilling to a temporary folder; time and peak RSS (goal < 4 GB).
3. ``postgres_pushdown`` (default 10,000,000 events; needs INSIGHTOS_TEST_DATABASE_URL): the
   aggregates computed inside PostgreSQL against pulling the rows into pandas
   (``pd.read_sql``) and computing in memory; time and peak RSS of each; equal tables.

The data is ``insightos synth --format parquet`` (a contract-clean company, so no ingest step;
timestamps written tz-naive UTC as ingest writes them), scaled out with DuckDB: the synthetic company is copied with suffixed ids until it has the
users asked for, and each user's events are repeated (shifted by 17 minutes per copy, new
event ids) until the events table has the rows asked for. Everything generated is deleted.

Usage: ``.venv/bin/python benchmarks/bench_engines.py [--only NAME] [--scale 0.01]``
(``--scale`` multiplies every size, for a quick run while working).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import CHILD_PEAK_RSS, RESULTS, measure_in_subprocess, record  # noqa: E402

BASE_USERS = 250_000  # one synth company; larger sizes are copies of it
VENV_BIN = Path(sys.executable).parent


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def make_lake(
    folder: Path, n_users: int, n_events: int, seed: int = 42, properties: bool = False
) -> dict[str, int]:
    """A Parquet folder of ``n_users`` users and about ``n_events`` events (see module doc);
    ``properties``: the events also get the contract's ``properties`` (JSON text or empty),
    which ``insightos ingest`` requires."""
    import duckdb

    base_users = min(n_users, BASE_USERS)
    base = folder.parent / f"{folder.name}-base"
    subprocess.run(
        [
            str(VENV_BIN / "insightos"),
            "synth",
            "--out",
            str(base),
            "--users",
            str(base_users),
            "--seed",
            str(seed),
            "--format",
            "parquet",
        ],  # fmt: skip
        check=True,
        stderr=subprocess.DEVNULL,
    )
    folder.mkdir(parents=True, exist_ok=True)
    copies = math.ceil(n_users / base_users)
    con = duckdb.connect(
        config={
            "memory_limit": "3GB",
            "temp_directory": str(folder.parent / "spill"),
            "preserve_insertion_order": False,
        }
    )
    base_events = con.execute(
        f"SELECT count(*) FROM read_parquet('{base}/events.parquet')"
    ).fetchone()[0]
    factor = n_events / (base_events * n_users / base_users)  # events per copied event
    whole, part = int(math.floor(factor)), factor - math.floor(factor)
    replicas = whole + (1 if part > 0 else 0)
    keep_part = int(round(part * 1_000_000))
    partial = (
        f" AND e.user_id || '~' || c.i IN (SELECT user_id FROM read_parquet('{folder}/users.parquet'))"
        if n_users % base_users
        else ""
    )
    con.execute(
        f"""COPY (
          SELECT u.user_id || '~' || c.i AS user_id, created_at::TIMESTAMP AS created_at, status,
                 converted_at::TIMESTAMP AS converted_at, marketing
          FROM read_parquet('{base}/users.parquet') u, range({copies}) c(i)
          ORDER BY c.i, u.user_id LIMIT {n_users}
        ) TO '{folder}/users.parquet' (FORMAT parquet)"""
    )
    extra = (
        """, CASE WHEN hash(e.event_id, r.j) % 3 = 0 THEN '{"plan": "team", "n": ' || r.j || '}'
                  ELSE '' END AS properties"""
        if properties
        else ""
    )
    con.execute(
        f"""COPY (
          SELECT e.event_id || '~' || c.i || '~' || r.j AS event_id, e.user_id || '~' || c.i AS user_id,
                 event_name, occurred_at::TIMESTAMP + r.j * INTERVAL 17 MINUTE AS occurred_at{extra}
          FROM read_parquet('{base}/events.parquet') e, range({copies}) c(i), range({replicas}) r(j)
          WHERE (r.j < {whole} OR hash(e.event_id, c.i) % 1000000 < {keep_part}){partial}
        ) TO '{folder}/events.parquet' (FORMAT parquet)"""
    )
    con.execute(
        f"""COPY (
          SELECT t.transaction_id || '~' || c.i AS transaction_id, t.user_id || '~' || c.i AS user_id,
                 occurred_at::TIMESTAMP AS occurred_at, amount
          FROM read_parquet('{base}/transactions.parquet') t, range({copies}) c(i)
          WHERE true{partial.replace("e.user_id", "t.user_id")}
        ) TO '{folder}/transactions.parquet' (FORMAT parquet)"""
    )
    counts = {
        name: con.execute(
            f"SELECT count(*) FROM read_parquet('{folder}/{name}.parquet')"
        ).fetchone()[0]
        for name in ("users", "events")
    }
    con.close()
    shutil.rmtree(base)
    return counts


_IN_MEMORY = """
fields = marketing_fields(users["marketing"])
for name in contract.MARKETING_FIELDS:
    users[name] = fields[name].to_numpy()
read_seconds = time.perf_counter() - start
events = features.encode_events(events)
as_of = features.resolve_as_of(users, events, None)
spec = features.fit_feature_spec(users, events, as_of)
fit_seconds = time.perf_counter() - start - read_seconds
table = features.build_feature_table(users, events, spec, as_of)
seconds = time.perf_counter() - start
columns = [*spec.event_feature_columns, *features.BEHAVIOURAL_COLUMNS, *spec.key_events]
table[columns].to_parquet(OUT + "/memory.parquet")
spec.to_json(OUT + "/spec.json")
_report(seconds, read_s=round(read_seconds, 3), fit_s=round(fit_seconds, 3),
        build_s=round(seconds - read_seconds - fit_seconds, 3), rows=len(table), as_of=str(as_of))
"""  # today's path, after the tables are read: what 02_eda does

MEMORY_CHILD = (
    CHILD_PEAK_RSS
    + """
import time
import pandas as pd
from insightos_utils import contract
from insightos_utils.ingest.fastpath import marketing_fields
from insightos_utils.leads import features
start = time.perf_counter()
users = pd.read_parquet(FOLDER + "/users.parquet")
events = pd.read_parquet(FOLDER + "/events.parquet", columns=["user_id", "event_name", "occurred_at"])
for frame, columns in ((users, ("created_at", "converted_at")), (events, ("occurred_at",))):
    for column in columns:
        if getattr(frame[column].dt, "tz", None) is not None:
            frame[column] = frame[column].dt.tz_convert("UTC").dt.tz_localize(None)
"""
    + _IN_MEMORY
)

ENGINE_CHILD = (
    CHILD_PEAK_RSS
    + """
import time
from insightos_utils import engines
from insightos_utils.leads.features import FeatureSpec
spec = FeatureSpec.from_json(OUT + "/spec.json")
settings = engines.EngineSettings(memory_limit=MEMORY_LIMIT, temp_directory=SPILL)
start = time.perf_counter()
with engines.open_source(LOCATION, ENGINE, settings) as source:
    as_of = engines.latest_timestamp(source)
    vocabulary = engines.fit_vocabulary(source, as_of, spec.window_days)
    vocabulary_seconds = time.perf_counter() - start
    table = engines.event_aggregates(source, spec, as_of)
seconds = time.perf_counter() - start
table.to_parquet(OUT + "/" + ENGINE + ".parquet")
_report(seconds, vocabulary_s=round(vocabulary_seconds, 3),
        aggregates_s=round(seconds - vocabulary_seconds, 3), rows=len(table), as_of=str(as_of),
        names=len(vocabulary.names))
"""
)

PULL_CHILD = (
    CHILD_PEAK_RSS
    + """
import time
import pandas as pd
import sqlalchemy as sa
from insightos_utils import contract
from insightos_utils.ingest.fastpath import marketing_fields
from insightos_utils.leads import features
start = time.perf_counter()
engine = sa.create_engine(URL)
with engine.connect() as connection:
    users = pd.read_sql_query("SELECT * FROM users", connection)
    events = pd.read_sql_query("SELECT user_id, event_name, occurred_at FROM events", connection)
"""
    + _IN_MEMORY
)


def _params(**values: Any) -> str:
    return "".join(f"{name} = {value!r}\n" for name, value in values.items())


def equal_tables(out: Path, engine: str) -> bool:
    expected = pd.read_parquet(out / "memory.parquet").sort_index()
    got = pd.read_parquet(out / f"{engine}.parquet").sort_index()
    try:
        pd.testing.assert_frame_equal(got, expected, check_index_type=False, check_names=False)
    except AssertionError as error:
        print(f"{engine} differs from memory: {error}", file=sys.stderr)
        return False
    return True


def _generate(work: Path, n_users: int, n_events: int) -> tuple[Path, Path, dict[str, Any]]:
    """The lake (timed), an output folder, and the figures so far."""
    lake = work / "lake"
    start = time.perf_counter()
    counts = make_lake(lake, n_users, n_events)
    out = work / "out"
    out.mkdir()
    return lake, out, {**counts, "generate_s": round(time.perf_counter() - start, 1)}


def _engine_child(location: str, engine: str, out: Path, work: Path, limit: str | None) -> str:
    spill = str(work / "spill")
    return _params(LOCATION=location, ENGINE=engine, OUT=str(out), MEMORY_LIMIT=limit, SPILL=spill)


def side_by_side(work: Path, n_users: int, n_events: int, repeats: int) -> dict[str, Any]:
    lake, out, figures = _generate(work, n_users, n_events)
    figures["load_before"] = load_average()
    figures["memory"] = measure_in_subprocess(
        _params(FOLDER=str(lake), OUT=str(out)) + MEMORY_CHILD, repeats
    )
    figures["duckdb"] = measure_in_subprocess(
        _engine_child(str(lake), "duckdb", out, work, None) + ENGINE_CHILD, repeats
    )
    figures["load_after"] = load_average()
    figures["equal_tables"] = equal_tables(out, "duckdb")
    figures["duckdb_vs_memory"] = round(
        figures["memory"]["median_s"] / figures["duckdb"]["median_s"], 2
    )
    shutil.rmtree(lake)
    return figures


def out_of_core(work: Path, n_users: int, n_events: int, memory_limit: str) -> dict[str, Any]:
    lake, out, figures = _generate(work, n_users, n_events)
    # the spec of a small sample of the same company (the spec is a few names; fitting it on
    # 200M events in memory is what this engine exists to avoid)
    sample = work / "sample"
    make_lake(sample, min(n_users, 100_000), min(n_events, 2_500_000))
    subprocess.run(
        [sys.executable, "-c", _params(FOLDER=str(sample), OUT=str(out)) + MEMORY_CHILD],
        check=True,
        capture_output=True,
    )
    shutil.rmtree(sample)
    figures["memory_limit"] = memory_limit
    figures["load_before"] = load_average()
    figures["duckdb"] = measure_in_subprocess(
        _engine_child(str(lake), "duckdb", out, work, memory_limit) + ENGINE_CHILD,
        1,
    )
    figures["load_after"] = load_average()
    figures["goal"] = "< 4 GB peak"
    figures["under_4_gb"] = figures["duckdb"]["peak_rss_gb"] < 4.0
    shutil.rmtree(lake)
    return figures


def _copy_parquet(url: str, path: Path, table: str, columns: list[str]) -> None:
    """Stream a Parquet file into a new PostgreSQL table with COPY (CSV batches)."""
    import io

    import psycopg
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq
    import sqlalchemy as sa

    parsed = sa.engine.make_url(url)
    options = parsed.query.get("options", "")
    kinds = {
        "created_at": "timestamptz",
        "converted_at": "timestamptz",
        "occurred_at": "timestamptz",
        "amount": "float8",
    }
    with psycopg.connect(
        host=parsed.host,
        port=parsed.port or 5432,
        user=parsed.username,
        dbname=parsed.database,
        options=options,
    ) as connection:
        connection.execute(
            f"CREATE TABLE {table} ("
            + ", ".join(f"{c} {kinds.get(c, 'text')}" for c in columns)
            + ")"
        )
        with connection.cursor().copy(
            f"COPY {table} ({', '.join(columns)}) FROM STDIN WITH (FORMAT csv)"
        ) as copy:
            for batch in pq.ParquetFile(path).iter_batches(batch_size=500_000, columns=columns):
                buffer = io.BytesIO()
                pacsv.write_csv(batch, buffer, pacsv.WriteOptions(include_header=False))
                copy.write(buffer.getvalue())
        connection.execute(f"ANALYZE {table}")


def postgres_pushdown(
    work: Path, url: str, n_users: int, n_events: int, repeats: int
) -> dict[str, Any]:
    import uuid

    import sqlalchemy as sa

    lake = work / "lake"
    counts = make_lake(lake, n_users, n_events)
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(url)
    with admin.begin() as connection:
        connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    schema_url = f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"
    figures: dict[str, Any] = dict(counts)
    try:
        start = time.perf_counter()
        _copy_parquet(
            schema_url,
            lake / "users.parquet",
            "users",
            ["user_id", "created_at", "status", "converted_at", "marketing"],
        )
        _copy_parquet(
            schema_url,
            lake / "events.parquet",
            "events",
            ["event_id", "user_id", "event_name", "occurred_at"],
        )
        figures["load_s"] = round(time.perf_counter() - start, 1)
        shutil.rmtree(lake)
        out = work / "out"
        out.mkdir()
        figures["load_before"] = load_average()
        figures["pull_into_pandas"] = measure_in_subprocess(
            _params(URL=schema_url, OUT=str(out)) + PULL_CHILD, repeats
        )
        figures["pushdown"] = measure_in_subprocess(
            _engine_child(schema_url, "source", out, work, None) + ENGINE_CHILD,
            repeats,
        )
        figures["load_after"] = load_average()
        figures["equal_tables"] = equal_tables(out, "source")
    finally:
        with admin.begin() as connection:
            connection.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only", choices=["side_by_side", "out_of_core", "postgres"], action="append"
    )
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every size (quick runs)")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--memory-limit", default="2500MB", help="DuckDB limit for out-of-core")
    parser.add_argument(
        "--work", type=Path, help="folder for the generated data (default: a temp folder)"
    )
    args = parser.parse_args()
    wanted = set(args.only or ["side_by_side", "out_of_core", "postgres"])

    def size(n: int) -> int:
        return max(1_000, int(n * args.scale))

    figures: dict[str, Any] = {"scale": args.scale, "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory(dir=args.work) as name:
        work = Path(name)
        if "side_by_side" in wanted:
            figures["parquet_side_by_side"] = side_by_side(
                work / "a", size(1_000_000), size(50_000_000), args.repeats
            )
        if "out_of_core" in wanted:
            figures["parquet_out_of_core"] = out_of_core(
                work / "b", size(4_000_000), size(200_000_000), args.memory_limit
            )
        if "postgres" in wanted:
            url = os.environ.get("INSIGHTOS_TEST_DATABASE_URL", "")
            if url:
                figures["postgres_pushdown"] = postgres_pushdown(
                    work / "c", url, size(400_000), size(10_000_000), args.repeats
                )
            else:
                figures["postgres_pushdown"] = {"skipped": "INSIGHTOS_TEST_DATABASE_URL is not set"}
    print(json.dumps(figures, indent=2), file=sys.stderr)
    stage = "engines" if args.scale == 1.0 else f"engines_scale_{args.scale:g}"
    if RESULTS.exists():  # --only runs add their part to what earlier runs recorded
        earlier = json.loads(RESULTS.read_text()).get("stages", {}).get(stage, {})
        earlier.pop("measured_at", None)
        figures = {**earlier, **figures}
    record(stage, figures)


if __name__ == "__main__":
    main()
