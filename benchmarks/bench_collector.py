"""Load and fault benchmark of the event collector (issue 6), loopback only and bounded in time.

For SQLite and, when a server answers, PostgreSQL, against ``insightos serve`` in a subprocess:

1. paced load: several clients together sending the target rate (default 5,000 events/s in
   batches of 100) for a fixed time; request latency p50/p99 at that rate;
2. saturation: the same clients as fast as they can, for the ceiling;
3. fault: clients keep sending while the collector is killed (SIGKILL) and restarted; each
   client retries a batch with the same event ids until it gets a 202;
4. hostile payloads: huge strings, deep JSON, wrong types, SQL in fields, oversize batches;
   each must be refused with a 4xx and the service must stay up.

After the load phases every event id a client saw acknowledged (202) is looked up in the
database: ``lost`` = acknowledged but missing, ``unexpected`` = stored but never sent,
``doubled`` = stored more than once. Figures go to reports/benchmarks.json under "collector".

    .venv/bin/python benchmarks/bench_collector.py [--duration 15] [--rate 5000] [--clients 4]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import record  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from collector_harness import CollectorProcess  # noqa: E402

WRITE_KEY = "wk-bench"
SERVER_KEY = "sk-bench"
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
BENCH_USERS = 997


@dataclass
class ClientStats:
    acked_ids: list[str] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    accepted: int = 0
    duplicates: int = 0
    held: int = 0  # must stay 0: every bench user is identified first
    failures: int = 0  # connection errors and 5xx, each retried
    batches: int = 0
    behind_s: float = 0.0  # how far a paced client fell behind its schedule at the end


def make_batch(prefix: str, sequence: int, size: int) -> list[dict]:
    now = datetime.now(UTC).isoformat()
    return [
        {
            "event_id": f"{prefix}-{sequence}-{i}",
            "user_id": f"bench-user-{(sequence * size + i) % BENCH_USERS}",
            "event_name": "project_created" if i % 10 else "page_view",
            "occurred_at": now,
            "properties": {"i": i, "plan": "pro", "template": "kanban"},
        }
        for i in range(size)
    ]


def run_client(
    base: str,
    prefix: str,
    batch_size: int,
    stop_at: float,
    interval_s: float | None,
    stats: ClientStats,
) -> None:
    """Send batches until ``stop_at``; paced every ``interval_s`` or as fast as possible.

    A batch is retried with the same event ids until the collector answers 202, so an
    acknowledged id is one the collector promised to keep.
    """
    # http.client rather than httpx: a lighter client, so the latencies are mostly the server's
    host, port = base.removeprefix("http://").split(":")
    headers = {"X-Write-Key": WRITE_KEY, "Content-Type": "application/json"}
    connection: http.client.HTTPConnection | None = None
    sequence = 0
    next_send = time.monotonic()
    while time.monotonic() < stop_at:
        if interval_s is not None:
            delay = next_send - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            next_send += interval_s
        events = make_batch(prefix, sequence, batch_size)
        body = json.dumps({"events": events}).encode()
        while True:
            started = time.perf_counter()
            status, answer = 0, b""
            try:
                if connection is None:
                    connection = http.client.HTTPConnection(host, int(port), timeout=10)
                connection.request("POST", "/v1/events", body=body, headers=headers)
                response = connection.getresponse()
                status, answer = response.status, response.read()
            except (OSError, http.client.HTTPException):
                if connection is not None:
                    connection.close()
                connection = None
            elapsed_ms = (time.perf_counter() - started) * 1000
            if status == 202:
                counts = json.loads(answer)
                stats.accepted += counts["accepted"]
                stats.duplicates += counts["duplicates"]
                stats.held += counts.get("held", 0)
                stats.latencies_ms.append(elapsed_ms)
                stats.acked_ids.extend(event["event_id"] for event in events)
                stats.batches += 1
                break
            if 0 < status < 500:
                raise RuntimeError(f"load batch refused: {status} {answer[:300]!r}")
            stats.failures += 1
            if time.monotonic() > stop_at + 30:
                return  # give up: the collector never came back
            time.sleep(0.1)
        sequence += 1
    if connection is not None:
        connection.close()
    if interval_s is not None:
        stats.behind_s = max(0.0, time.monotonic() - next_send)


def load_phase(
    collector: CollectorProcess,
    clients: int,
    batch_size: int,
    duration_s: float,
    rate: float | None,
    during=None,
) -> tuple[dict, list[str]]:
    """Run ``clients`` threads for ``duration_s``; ``during(collector)`` runs alongside."""
    prefix = uuid.uuid4().hex[:8]
    stats = [ClientStats() for _ in range(clients)]
    interval = None if rate is None else clients * batch_size / rate
    start = time.monotonic()
    stop_at = start + duration_s
    threads = [
        threading.Thread(
            target=run_client,
            args=(collector.base_url, f"{prefix}-c{n}", batch_size, stop_at, interval, stats[n]),
        )
        for n in range(clients)
    ]
    for thread in threads:
        thread.start()
    extra = during(collector) if during else {}
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - start
    latencies = sorted(ms for s in stats for ms in s.latencies_ms)
    acked = [event_id for s in stats for event_id in s.acked_ids]
    figures = {
        "clients": clients,
        "batch_size": batch_size,
        "duration_s": round(elapsed, 2),
        "target_events_per_s": rate,
        "requests": len(latencies),
        "events_acknowledged": len(acked),
        "events_per_s": round(len(acked) / elapsed),
        "latency_p50_ms": round(statistics.median(latencies), 1) if latencies else None,
        "latency_p99_ms": round(latencies[int(0.99 * (len(latencies) - 1))], 1)
        if latencies
        else None,
        "latency_max_ms": round(latencies[-1], 1) if latencies else None,
        "accepted_reported": sum(s.accepted for s in stats),
        "duplicates_reported": sum(s.duplicates for s in stats),
        "held_reported": sum(s.held for s in stats),
        "failed_attempts_retried": sum(s.failures for s in stats),
        "max_behind_schedule_s": round(max(s.behind_s for s in stats), 2),
        **extra,
    }
    return figures, acked


def kill_and_restart(
    collector: CollectorProcess, after_s: float = 3.0, down_s: float = 1.0
) -> dict:
    time.sleep(after_s)
    collector.kill()
    time.sleep(down_s)
    restart_s = collector.start()
    return {"killed_after_s": after_s, "down_s": down_s, "restart_s": round(restart_s, 2)}


def identify_users(base: str) -> None:
    signup = datetime.now(UTC).isoformat()
    with httpx.Client(base_url=base, headers={"X-Write-Key": WRITE_KEY}, timeout=10) as client:
        for n in range(BENCH_USERS):
            answer = client.post("/v1/identify", json={"user_id": f"bench-user-{n}",
                                                       "created_at": signup})  # fmt: skip
            answer.raise_for_status()


def stored_ids(db_url: str, prefix_filter: set[str] | None = None) -> dict[str, int]:
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as connection:
            result = connection.execute(
                sa.text("SELECT event_id, count(*) FROM events GROUP BY event_id")
            )
            return {event_id: count for event_id, count in result}
    finally:
        engine.dispose()


def check_storage(db_url: str, acked: list[str], stored_before: set[str]) -> dict:
    """Every acknowledged id stored once; nothing stored that was not sent in this phase."""
    stored = stored_ids(db_url)
    new_ids = set(stored) - stored_before
    acked_set = set(acked)
    return {
        "acknowledged_distinct": len(acked_set),
        "stored_new": len(new_ids),
        "lost": len(acked_set - set(stored)),
        "unexpected": len(new_ids - acked_set),
        "doubled": sum(1 for count in stored.values() if count > 1),
    }


def hostile_phase(collector: CollectorProcess) -> dict:
    """Malformed and hostile payloads: each refused with the expected 4xx; service stays up."""
    base, key = collector.base_url, {"X-Write-Key": WRITE_KEY}
    now = datetime.now(UTC).isoformat()

    def event(**changes) -> dict:
        body = {
            "event_id": f"hostile-{uuid.uuid4().hex}",
            "user_id": "hostile-user",
            "event_name": "page_view",
            "occurred_at": now,
            "properties": {},
        }
        body.update(changes)
        return body

    def chunked_oversize():
        yield b'{"events": [{"event_id": "x", "properties": {"s": "'
        for _ in range(40):
            yield b"a" * 50_000
        yield b'"}}]}'

    sql_value = event(properties={"comment": "'); DROP TABLE events; --"})
    cases: list[tuple[str, dict, int]] = [
        ("no key", {"json": event(), "headers": {}}, 401),
        ("wrong key", {"json": event(), "headers": {"X-Write-Key": "guess"}}, 401),
        ("huge string over the body limit", {"json": event(user_id="a" * 1_500_000)}, 413),
        ("huge string in a field", {"json": event(user_id="a" * 500_000)}, 422),
        ("huge properties", {"json": event(properties={"s": "b" * 200_000})}, 422),
        ("501 events", {"json": {"events": [event() for _ in range(501)]}}, 413),
        ("chunked body over the limit", {"content": chunked_oversize()}, 413),
        ("deep JSON body", {"content": b"[" * 200_000}, 422),
        ("deep properties", {"json": event(properties=json.loads("[" * 150 + "]" * 150))}, 422),
        ("invalid JSON", {"content": b'{"events": [}'}, 422),
        ("invalid UTF-8", {"content": b'{"event_id": "\xff\xfe"}'}, 422),
        ("lone surrogate", {"content": b'{"event_id": "\\udc00"}'}, 422),
        ("NaN", {"content": b'{"events": [NaN]}'}, 422),
        ("number as id", {"json": event(event_id=12345)}, 422),
        ("object as name", {"json": event(event_name={"a": 1})}, 422),
        ("list as properties", {"json": event(properties=[1, 2])}, 422),
        ("epoch number as time", {"json": event(occurred_at=1_700_000_000)}, 422),
        ("future time", {"json": event(occurred_at="2999-01-01T00:00:00Z")}, 422),
        ("SQL in event_name", {"json": event(event_name="x'); DROP TABLE events; --")}, 422),
        ("SQL in user_id", {"json": event(user_id="1 OR 1=1; --")}, 422),
        ("SQL in a property value (stored as text)", {"json": sql_value}, 202),
        ("status with a write key", {"json": {"status": "lost"}, "path": "status"}, 401),
        ("empty body", {"content": b""}, 422),
    ]
    results, unexpected = {}, []
    with httpx.Client(base_url=base, timeout=30) as http:
        for name, request, expected in cases:
            headers = request.get("headers", key)
            path = "/v1/users/hostile-user/status" if request.get("path") else "/v1/events"
            try:
                if "json" in request:
                    answer = http.post(path, json=request["json"], headers=headers)
                else:
                    answer = http.post(path, content=request["content"], headers=headers)
                status = answer.status_code
            except httpx.HTTPError as error:
                status = f"connection error: {type(error).__name__}"
            results[name] = status
            if status != expected:
                unexpected.append(f"{name}: expected {expected}, got {status}")
        healthy = http.get("/healthz").status_code == 200
    engine = sa.create_engine(collector.db_url)
    with engine.connect() as connection:
        sql_row = connection.execute(
            # its user was never identified: the event is held, not stored as an orphan
            sa.text(
                "SELECT properties FROM events WHERE event_id = :e "
                "UNION ALL SELECT properties FROM held_events WHERE event_id = :e"
            ),
            {"e": sql_value["event_id"]},
        ).scalar_one()
    engine.dispose()
    return {
        "cases": len(cases),
        "refused_as_expected": len(cases) - len(unexpected) - 1,
        "unexpected": unexpected,
        "server_errors": sum(1 for s in results.values() if not isinstance(s, int) or s >= 500),
        "healthy_after": healthy,
        "sql_text_stored_verbatim": json.loads(sql_row) == sql_value["properties"],
        "process_alive": collector.process is not None and collector.process.poll() is None,
    }


def bench_backend(name: str, db_url: str, args: argparse.Namespace, work: Path) -> dict:
    collector = CollectorProcess(db_url, work / f"{name}.log", [WRITE_KEY], SERVER_KEY)
    figures: dict = {"startup_s": round(collector.start(), 2)}
    try:
        # the bench users exist (identify), as on a real site: their events go to events, not
        # to held_events (the collector holds events of users it has never seen)
        identify_users(collector.base_url)
        # warm-up, not counted: the first requests compile statements and validators
        load_phase(collector, 1, args.batch, 1.0, 10 * args.batch)
        figures["warmup"] = "1 s at 10 requests/s before the measured phases"
        before = set(stored_ids(db_url))
        paced, acked = load_phase(collector, args.clients, args.batch, args.duration, args.rate)
        paced.update(check_storage(db_url, acked, before))
        figures["paced"] = paced
        print(f"[{name}] paced: {json.dumps(paced)}", flush=True)

        before = set(stored_ids(db_url))
        ceiling, acked = load_phase(collector, args.clients * 2, args.batch, args.saturate, None)
        ceiling.update(check_storage(db_url, acked, before))
        figures["saturation"] = ceiling
        print(f"[{name}] saturation: {json.dumps(ceiling)}", flush=True)

        before = set(stored_ids(db_url))
        fault, acked = load_phase(
            collector,
            args.clients,
            args.batch,
            args.fault_duration,
            args.rate,
            during=kill_and_restart,
        )
        fault.update(check_storage(db_url, acked, before))
        figures["kill_restart"] = fault
        print(f"[{name}] kill/restart: {json.dumps(fault)}", flush=True)

        figures["hostile"] = hostile_phase(collector)
        print(f"[{name}] hostile: {json.dumps(figures['hostile'])}", flush=True)
    finally:
        collector.stop()
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=4, help="paced clients (default 4)")
    parser.add_argument("--batch", type=int, default=100, help="events per request (100)")
    parser.add_argument("--rate", type=float, default=5000, help="paced events/s (5000)")
    parser.add_argument("--duration", type=float, default=15, help="paced seconds (15)")
    parser.add_argument("--saturate", type=float, default=8, help="saturation seconds (8)")
    parser.add_argument("--fault-duration", type=float, default=10, help="kill phase seconds")
    parser.add_argument(
        "--pg",
        default=os.environ.get("INSIGHTOS_TEST_DATABASE_URL", DEFAULT_PG),
        help="PostgreSQL URL ('' to skip)",
    )
    args = parser.parse_args()

    results: dict = {"load_note": "loopback only; client threads and collector share 2 cores"}
    with tempfile.TemporaryDirectory(prefix="bench_collector_") as tmp:
        work = Path(tmp)
        results["sqlite"] = bench_backend(
            "sqlite", f"sqlite:///{work / 'bench.sqlite'}", args, work
        )
        if args.pg:
            schema = f"bench_collector_{uuid.uuid4().hex[:8]}"
            admin = sa.create_engine(args.pg)
            try:
                with admin.begin() as connection:
                    connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
            except sa.exc.OperationalError as error:
                results["postgresql"] = {"skipped": f"no server: {type(error).__name__}"}
            else:
                separator = "&" if "?" in args.pg else "?"
                url = f"{args.pg}{separator}options=-csearch_path%3D{schema}"
                try:
                    results["postgresql"] = bench_backend("postgresql", url, args, work)
                finally:
                    with admin.begin() as connection:
                        connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()
    record("collector", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
