"""Benchmark: ``ingest`` of 10,000,000 events from Parquet (goal: < 30 s, < 4 GB peak RSS).

The input is generated here, vectorised (numpy + pyarrow), into a temporary folder: 200,000
users, 10,000,000 events with ISO 8601 text timestamps (the slower case: native Parquet
timestamps skip parsing) and flat JSON properties, 0.2% of events delivered twice, 400,000
transactions. ``--nested-properties`` measures the worst case of the JSON check instead: every
event's properties a distinct nested object. Each timed run is a fresh interpreter
(``measure_in_subprocess``), so the peak RSS is that of one ``ingest`` call plus the interpreter.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from _common import CHILD_PEAK_RSS, measure_in_subprocess, record

GOAL_SECONDS = 30.0
GOAL_PEAK_RSS_GB = 4.0
START = np.datetime64("2024-01-01T00:00:00", "s")
SPAN_S = 900 * 86_400
EVENT_NAMES = (
    "page_view",
    "trial_signup",
    "user_verified",
    "project_created",
    "task_created",
    "invite_sent",
    "billing_updated",
    "seat_added",
)


def _ids(prefix: str, numbers: np.ndarray) -> pa.Array:
    return pc.binary_join_element_wise(prefix, pc.cast(pa.array(numbers), pa.string()), "")


def _iso(seconds: np.ndarray) -> pa.Array:
    stamps = pa.array((START + seconds).astype("datetime64[s]"))
    return pc.strftime(stamps, format="%Y-%m-%dT%H:%M:%SZ")


def write_input(
    raw_dir: Path, n_events: int, n_users: int, nested: bool = False, seed: int = 7
) -> dict[str, int]:
    """A raw folder in the contract, as Parquet files; returns the row counts.

    ``nested``: every event's properties is a distinct nested object, the worst case for the
    JSON check (each distinct non-flat text is parsed with ``json``)."""
    rng = np.random.default_rng(seed)
    signup = rng.integers(0, SPAN_S // 2, n_users)
    status = np.array(["lead", "trial", "converted", "lost"])[rng.integers(0, 4, n_users)]
    converted_at = pc.if_else(
        pa.array(status == "converted"), _iso(signup + 86_400 * 7), pa.scalar("", pa.string())
    )
    campaigns = np.array(
        [
            '{"utm_campaign": "google_gestao_agil", "utm_source": "google", "utm_medium": "cpc"}',
            '{"utm_campaign": "meta_trial", "utm_source": "facebook", "utm_medium": "paid"}',
            '{"utm_source": "newsletter", "utm_medium": "email"}',
            "",
        ]
    )
    users = pa.table(
        {
            "user_id": _ids("u", np.arange(n_users)),
            "created_at": _iso(signup),
            "status": pa.array(status),
            "converted_at": converted_at,
            "marketing": pa.array(campaigns[rng.integers(0, len(campaigns), n_users)]),
        }
    )
    pq.write_table(users, raw_dir / "users.parquet")

    n_unique = n_events - n_events // 500  # 0.2% of deliveries are repeats of earlier events
    event_numbers = np.concatenate(
        [np.arange(n_unique), rng.integers(0, n_unique, n_events - n_unique)]
    )
    owner = rng.integers(0, n_users, n_unique)[np.minimum(event_numbers, n_unique - 1)]
    offset = rng.integers(0, SPAN_S // 2, n_unique)[np.minimum(event_numbers, n_unique - 1)]
    names = rng.integers(0, len(EVENT_NAMES), n_unique)[np.minimum(event_numbers, n_unique - 1)]
    project = rng.integers(0, 50_000, n_unique)[np.minimum(event_numbers, n_unique - 1)]
    events = pa.table(
        {
            "event_id": _ids("e", event_numbers),
            "user_id": _ids("u", owner),
            "event_name": pa.array(np.array(EVENT_NAMES)[names]),
            "occurred_at": _iso(signup[owner] + offset),
            "properties": pc.binary_join_element_wise(
                '{"project": {"id": ' if nested else '{"project_id": ',
                pc.cast(pa.array(event_numbers if nested else project), pa.string()),
                '}, "plan": "team"}' if nested else ', "plan": "team"}',
                "",
            ),
        }
    )
    pq.write_table(events, raw_dir / "events.parquet")

    n_transactions = max(1, n_events // 25)
    buyer = rng.integers(0, n_users, n_transactions)
    transactions = pa.table(
        {
            "transaction_id": _ids("t", np.arange(n_transactions)),
            "user_id": _ids("u", buyer),
            "occurred_at": _iso(signup[buyer] + rng.integers(0, SPAN_S // 2, n_transactions)),
            "amount": pa.array(np.round(rng.gamma(2.0, 20.0, n_transactions) + 1, 2)),
        }
    )
    pq.write_table(transactions, raw_dir / "transactions.parquet")
    spend = pa.table(
        {"campaign": ["google_gestao_agil", "meta_trial"], "spend": [12_000.0, 9_500.0]}
    )
    pq.write_table(spend, raw_dir / "campaign_spend.parquet")
    return {"users": n_users, "events": n_events, "transactions": n_transactions}


def child_code(raw: Path, out: Path) -> str:
    """The timed child: one ``ingest`` call in a fresh interpreter, reporting its figures."""
    return CHILD_PEAK_RSS + (
        "import os, time\n"
        "from insightos_utils.ingest import ingest\n"
        "load = os.getloadavg()[0]\n"
        "start, cpu = time.perf_counter(), time.process_time()\n"
        f"report = ingest({str(out)!r}, raw_dir={str(raw)!r}, show_progress=False)\n"
        "seconds = time.perf_counter() - start\n"
        "tables = report['tables']\n"
        "_report(seconds, cpu_s=round(time.process_time() - cpu, 1), load_average_1m=load,\n"
        "        events_written=tables['events']['rows_written'],\n"
        "        event_duplicates=tables['events']['duplicates'],\n"
        "        rejected=sum(t.get('rejected_rows', 0) for t in tables.values()))\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--users", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--nested-properties",
        action="store_true",
        help="distinct nested properties per event (worst case); recorded as ingest_nested",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_ingest_") as tmp:
        raw, out = Path(tmp) / "raw", Path(tmp) / "processed"
        raw.mkdir()
        start = time.perf_counter()
        counts = write_input(raw, args.events, args.users, nested=args.nested_properties)
        generated_s = time.perf_counter() - start
        size_mb = sum(p.stat().st_size for p in raw.iterdir()) / 1e6
        figures = measure_in_subprocess(child_code(raw, out), repeats=args.repeats)
    figures.update(
        {
            "input": {**counts, "format": "parquet", "size_mb": round(size_mb, 1)},
            "input_generation_s": round(generated_s, 1),
            "events_per_s": round(args.events / figures["median_s"]),
            "goal": {"seconds": GOAL_SECONDS, "peak_rss_gb": GOAL_PEAK_RSS_GB},
            "meets_goal": figures["median_s"] < GOAL_SECONDS
            and figures["peak_rss_gb"] < GOAL_PEAK_RSS_GB,
        }
    )
    stage = "ingest_nested" if args.nested_properties else "ingest"
    record(stage, json.loads(json.dumps(figures)))


if __name__ == "__main__":
    main()
