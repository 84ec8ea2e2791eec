"""The collector over real HTTP on loopback (uvicorn in a thread) and its storage on SQLite and
PostgreSQL: status codes of the contract (202/401/413/422), idempotence, key separation, CORS,
timestamp window, and what the tables hold afterwards."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from collector_harness import CollectorProcess
from conftest import fresh_postgres_schema

from insightos_utils.cli import main
from insightos_utils.collector import create_app
from insightos_utils.collector.store import EventStore

WRITE_KEY = "wk-browser-test"
OTHER_WRITE_KEY = "wk-second-source"
SERVER_KEY = "sk-backend-test"
ALLOWED_ORIGIN = "https://www.example.com"


@contextmanager
def running(app) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free loopback port in a thread; yields the base URL."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("collector did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@pytest.fixture(scope="session")
def pg_schema_url(postgres_url: str) -> Iterator[str]:
    """A fresh PostgreSQL schema for this test run (search_path), dropped afterwards."""
    with fresh_postgres_schema(postgres_url, "collector_test") as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request, tmp_path: Path) -> Iterator[str]:
    """An empty collector database: an SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'collector.sqlite'}"
        return
    url = request.getfixturevalue("pg_schema_url")
    yield url
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.text("DROP TABLE IF EXISTS events, held_events, users"))
    engine.dispose()


@pytest.fixture(scope="module")
def sqlite_service(tmp_path_factory) -> Iterator[tuple[str, str]]:
    """One collector on SQLite for the HTTP tests of this module: (base URL, database URL)."""
    db = f"sqlite:///{tmp_path_factory.mktemp('collector') / 'collector.sqlite'}"
    app = create_app(db, [WRITE_KEY, OTHER_WRITE_KEY], SERVER_KEY, cors_origins=[ALLOWED_ORIGIN])
    with running(app) as base:
        identify(base, "u-test")
        yield base, db


@pytest.fixture
def client(sqlite_service) -> Iterator[httpx.Client]:
    base, _db = sqlite_service
    with httpx.Client(base_url=base, headers={"X-Write-Key": WRITE_KEY}, timeout=10) as http:
        yield http


def now_iso(offset: timedelta = timedelta(0)) -> str:
    return (datetime.now(UTC) + offset).isoformat().replace("+00:00", "Z")


def event(**changes) -> dict:
    body = {
        "event_id": f"e-{uuid.uuid4()}",
        "user_id": "u-test",
        "event_name": "project_created",
        "occurred_at": now_iso(timedelta(seconds=-30)),
        "properties": {"template": "kanban"},
    }
    body.update(changes)
    return body


def identify(base: str, user_id: str, key: str = WRITE_KEY, **fields) -> httpx.Response:
    """Identify a user through the API (events for unknown users are held, not stored)."""
    body = {"user_id": user_id, "created_at": now_iso(-timedelta(days=1)), **fields}
    answer = httpx.post(f"{base}/v1/identify", json=body, headers={"X-Write-Key": key})
    assert answer.status_code == 200, answer.text
    return answer


def stored(db: str, sql: str, **params) -> list[tuple]:
    engine = sa.create_engine(db)
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(sa.text(sql), params)]
    finally:
        engine.dispose()


# --- events: accepted, duplicates, atomic batches ------------------------------------------------


def test_events_are_stored_once_on_both_databases(db_url: str) -> None:
    with running(create_app(db_url, [WRITE_KEY], SERVER_KEY)) as base:
        headers = {"X-Write-Key": WRITE_KEY}
        identify(base, "u-test")
        single = event(properties={"plan": "pro", "seats": 3, "nested": {"a": [1, 2]}})
        first = httpx.post(f"{base}/v1/events", json=single, headers=headers)
        assert first.status_code == 202, first.text
        assert first.json() == {"accepted": 1, "duplicates": 0, "conflicts": 0, "held": 0}
        batch = [single, event(), event(), event()]
        batch.append(dict(batch[1]))  # the same event twice in one batch
        second = httpx.post(f"{base}/v1/events", json={"events": batch}, headers=headers)
        assert second.status_code == 202, second.text
        assert second.json() == {"accepted": 3, "duplicates": 2, "conflicts": 0, "held": 0}
        assert httpx.get(f"{base}/healthz").status_code == 200
    rows = stored(db_url, "SELECT event_id, properties FROM events")
    assert len(rows) == 4
    properties = dict(rows)[single["event_id"]]
    assert json.loads(properties) == single["properties"]


def test_a_batch_with_one_bad_event_stores_nothing(client: httpx.Client, sqlite_service) -> None:
    good, bad = event(), event(occurred_at="yesterday")
    answer = client.post("/v1/events", json={"events": [good, bad]})
    assert answer.status_code == 422
    (error,) = answer.json()["detail"]
    assert error["loc"] == ["body", "events", 1, "occurred_at"]
    _base, db = sqlite_service
    assert stored(db, "SELECT count(*) FROM events WHERE event_id = :e", e=good["event_id"]) == [
        (0,)
    ]


def test_timestamps_are_stored_in_utc(client: httpx.Client, sqlite_service) -> None:
    utc_wall = (datetime.now(UTC) - timedelta(hours=1)).replace(tzinfo=None, microsecond=0)
    without_zone = event(occurred_at=utc_wall.isoformat())  # no zone means UTC
    # the same instant written in Brasília time (three hours behind UTC)
    with_zone = event(occurred_at=(utc_wall - timedelta(hours=3)).isoformat() + "-03:00")
    answer = client.post("/v1/events", json={"events": [with_zone, without_zone]})
    assert answer.status_code == 202, answer.text
    _base, db = sqlite_service
    rows = dict(
        stored(
            db,
            "SELECT event_id, occurred_at FROM events WHERE event_id IN (:a, :b)",
            a=with_zone["event_id"],
            b=without_zone["event_id"],
        )
    )
    expected = utc_wall.strftime("%Y-%m-%d %H:%M:%S")
    assert rows[with_zone["event_id"]].startswith(expected)
    assert rows[without_zone["event_id"]].startswith(expected)


# --- limits: 413 ----------------------------------------------------------------------------------


def test_too_many_events_is_413(client: httpx.Client) -> None:
    answer = client.post("/v1/events", json={"events": [event() for _ in range(501)]})
    assert answer.status_code == 413
    assert "500" in answer.json()["detail"]


def test_too_large_body_is_413_declared_or_streamed(client: httpx.Client) -> None:
    body = json.dumps(event(properties={"x": "a" * 1_100_000})).encode()
    declared = client.post("/v1/events", content=body)
    assert declared.status_code == 413

    def chunks():  # no Content-Length: the collector must count while reading
        for start in range(0, len(body), 64_000):
            yield body[start : start + 64_000]

    streamed = client.post("/v1/events", content=chunks())
    assert streamed.status_code == 413
    assert client.get("/healthz").status_code == 200


def test_declared_oversize_is_refused_before_the_body_arrives(sqlite_service) -> None:
    base, _db = sqlite_service
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as conn:
        conn.sendall(
            b"POST /v1/events HTTP/1.1\r\nHost: x\r\nX-Write-Key: "
            + WRITE_KEY.encode()
            + b"\r\nContent-Type: application/json\r\nContent-Length: 50000000\r\n\r\n{"
        )
        answer = conn.recv(4096)  # the collector answers without waiting for 50 MB
    assert answer.startswith(b"HTTP/1.1 413")


# --- invalid payloads: 422 with field-level messages, never 500 ------------------------------------


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        (event(event_id=123), ["body", "event_id"]),
        (event(event_name="x'; DROP TABLE events; --"), ["body", "event_name"]),
        (event(user_id="a" * 129), ["body", "user_id"]),
        (event(user_id=""), ["body", "user_id"]),
        (event(properties=["not", "an", "object"]), ["body", "properties"]),
        (event(properties={"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}}), ["body", "properties"]),
        (event(properties={"big": "x" * 10_000}), ["body", "properties"]),
        (event(occurred_at=1_750_000_000), ["body", "occurred_at"]),
        (event(occurred_at="2026-13-45T99:00:00"), ["body", "occurred_at"]),
        (event(unexpected="field"), ["body", "unexpected"]),
        ({"events": []}, ["body", "events"]),
        ({"events": "nope"}, ["body", "events"]),
        ([1, 2, 3], ["body"]),
        ("just a string", ["body"]),
    ],
)
def test_invalid_events_are_422_with_the_field(client: httpx.Client, body, loc) -> None:
    answer = client.post("/v1/events", json=body)
    assert answer.status_code == 422, answer.text
    details = answer.json()["detail"]
    assert any(item["loc"] == loc for item in details), details
    assert all(set(item) == {"loc", "msg", "type"} for item in details)  # no input echoed


@pytest.mark.parametrize(
    "raw",
    [
        b"[" * 100_000,
        b'{"events": [' + b'{"a":' * 50_000,
        b"{not json",
        b'{"event_id": "\\ud800"}',
        b"",
        b'{"events": [{"event_id": "e1", "user_id": "u", "event_name": "x", '
        b'"occurred_at": "2026-01-01T00:00:00Z", "properties": {"n": 1e400}}]}',
    ],
)
def test_hostile_bodies_are_422_and_the_service_stays_up(client: httpx.Client, raw) -> None:
    answer = client.post("/v1/events", content=raw)
    assert answer.status_code == 422, answer.text
    assert client.get("/healthz").status_code == 200


def test_future_and_ancient_timestamps_are_refused(client: httpx.Client) -> None:
    future = client.post("/v1/events", json=event(occurred_at=now_iso(timedelta(minutes=10))))
    assert future.status_code == 422
    assert "ahead" in future.json()["detail"][0]["msg"]
    slightly_ahead = client.post(
        "/v1/events", json=event(occurred_at=now_iso(timedelta(minutes=2)))
    )
    assert slightly_ahead.status_code == 202  # within the 5-minute clock tolerance
    ancient = client.post("/v1/events", json=event(occurred_at=now_iso(-timedelta(days=800))))
    assert ancient.status_code == 422
    assert "past" in ancient.json()["detail"][0]["msg"]


# --- keys: 401, beacons, server key only for status ----------------------------------------------


def test_write_key_is_required(sqlite_service) -> None:
    base, _db = sqlite_service
    body = event()
    assert httpx.post(f"{base}/v1/events", json=body).status_code == 401
    wrong = httpx.post(f"{base}/v1/events", json=body, headers={"X-Write-Key": "guess"})
    assert wrong.status_code == 401
    second_source = httpx.post(
        f"{base}/v1/events", json=body, headers={"X-Write-Key": OTHER_WRITE_KEY}
    )
    assert second_source.status_code == 202
    unauthorised_identify = httpx.post(
        f"{base}/v1/identify", json={"user_id": "u1", "created_at": now_iso()}
    )
    assert unauthorised_identify.status_code == 401


def test_beacon_posts_with_key_in_query_and_text_plain(sqlite_service) -> None:
    base, db = sqlite_service
    body = event()
    answer = httpx.post(
        f"{base}/v1/events",
        params={"key": WRITE_KEY},
        content=json.dumps({"events": [body]}),
        headers={"Content-Type": "text/plain;charset=UTF-8"},
    )
    assert answer.status_code == 202, answer.text
    assert stored(db, "SELECT user_id FROM events WHERE event_id = :e", e=body["event_id"]) == [
        (body["user_id"],)
    ]


def test_status_takes_the_server_key_only(client: httpx.Client, sqlite_service) -> None:
    base, db = sqlite_service
    user_id = f"u-{uuid.uuid4().hex[:8]}"
    created = now_iso(-timedelta(days=3))
    assert client.post("/v1/identify", json={"user_id": user_id, "created_at": created}).json()[
        "created"
    ]
    change = {"status": "converted", "converted_at": now_iso(-timedelta(days=1))}
    path = f"{base}/v1/users/{user_id}/status"
    assert httpx.post(path, json=change, headers={"X-Write-Key": WRITE_KEY}).status_code == 401
    assert httpx.post(path, json=change, params={"key": SERVER_KEY}).status_code == 401
    assert httpx.post(path, json=change).status_code == 401
    server = {"X-Write-Key": SERVER_KEY}
    assert stored(db, "SELECT status FROM users WHERE user_id = :u", u=user_id) == [("lead",)]
    answer = httpx.post(path, json=change, headers=server)
    assert answer.status_code == 200, answer.text
    ((status, converted_at),) = stored(
        db, "SELECT status, converted_at FROM users WHERE user_id = :u", u=user_id
    )
    assert status == "converted"
    assert converted_at.startswith(change["converted_at"][:19].replace("T", " "))

    missing = httpx.post(path, json={"status": "converted"}, headers=server)
    assert missing.status_code == 422
    early = {"status": "converted", "converted_at": now_iso(-timedelta(days=5))}
    assert httpx.post(path, json=early, headers=server).status_code == 422
    assert httpx.post(path, json={"status": "won"}, headers=server).status_code == 422
    unknown = httpx.post(
        f"{base}/v1/users/nobody-{uuid.uuid4().hex}/status", json=change, headers=server
    )
    assert unknown.status_code == 404
    lost = httpx.post(path, json={"status": "lost"}, headers=server)
    assert lost.status_code == 200
    assert stored(db, "SELECT status, converted_at FROM users WHERE user_id = :u", u=user_id) == [
        ("lost", None)
    ]


def test_identify_creates_a_lead_and_keeps_first_touch(
    client: httpx.Client, sqlite_service
) -> None:
    _base, db = sqlite_service
    user_id = f"u-{uuid.uuid4().hex[:8]}"
    first = {
        "user_id": user_id,
        "created_at": now_iso(-timedelta(hours=2)),
        "marketing": {"utm_source": "google", "utm_campaign": "google_gestao_agil"},
    }
    assert client.post("/v1/identify", json=first).json() == {
        "user_id": user_id,
        "created": True,
        "ignored": [],
    }
    later = {
        "user_id": user_id,
        "created_at": now_iso(),
        "marketing": {"utm_source": "newsletter", "utm_campaign": "other"},
    }
    answer = client.post("/v1/identify", json=later).json()
    assert answer["created"] is False and answer["ignored"] == ["created_at", "marketing"]
    ((created_at, status, marketing),) = stored(
        db, "SELECT created_at, status, marketing FROM users WHERE user_id = :u", u=user_id
    )
    assert status == "lead"
    assert created_at.startswith(first["created_at"][:19].replace("T", " "))
    assert json.loads(marketing)["utm_campaign"] == "google_gestao_agil"
    bad = client.post("/v1/identify", json={"user_id": user_id, "marketing": "utm=google"})
    assert bad.status_code == 422
    assert {tuple(item["loc"]) for item in bad.json()["detail"]} == {
        ("body", "created_at"),
        ("body", "marketing"),
    }


# --- CORS, static files, logs, health ---------------------------------------------------------------


def test_cors_allows_only_configured_origins(sqlite_service) -> None:
    base, _db = sqlite_service
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,x-write-key",
    }
    allowed = httpx.options(f"{base}/v1/events", headers={"Origin": ALLOWED_ORIGIN, **preflight})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert "x-write-key" in allowed.headers["access-control-allow-headers"].lower()
    refused = httpx.options(
        f"{base}/v1/events", headers={"Origin": "https://evil.example", **preflight}
    )
    assert "access-control-allow-origin" not in refused.headers
    simple = httpx.post(
        f"{base}/v1/events",
        json=event(),
        headers={"Origin": "https://evil.example", "X-Write-Key": WRITE_KEY},
    )
    assert "access-control-allow-origin" not in simple.headers
    assert simple.status_code == 403  # refused on the request itself, not only on preflight


def test_tracker_and_demo_are_served(client: httpx.Client) -> None:
    tracker = client.get("/tracker.js")
    assert tracker.status_code == 200
    assert tracker.headers["content-type"].startswith("application/javascript")
    assert "window.insightos" in tracker.text
    demo = client.get("/demo")
    assert demo.status_code == 200
    assert '<script src="/tracker.js">' in demo.text


def test_logs_carry_no_bodies_keys_or_user_ids(client: httpx.Client, caplog) -> None:
    secret_user = f"person-{uuid.uuid4().hex}"
    marker = f"marker-{uuid.uuid4().hex}"
    with caplog.at_level(logging.INFO, logger="insightos.collector"):
        client.post("/v1/events", json=event(user_id=secret_user, properties={"m": marker}))
        client.post("/v1/events", json=event(user_id=secret_user, event_name="bad name!"))
        client.post(
            "/v1/identify",
            params={"key": WRITE_KEY},
            json={"user_id": secret_user, "created_at": now_iso()},
        )
        client.post(f"/v1/users/{secret_user}/status", json={"status": "lost"})
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert "POST /v1/events 202" in text and "accepted=1" in text
    assert "POST /v1/events 422" in text
    assert "POST /v1/users/{user_id}/status 401" in text
    for secret in (secret_user, marker, WRITE_KEY, "bad name"):
        assert secret not in text


def test_health_is_503_and_writes_are_503_when_the_database_is_gone(tmp_path: Path) -> None:
    path = tmp_path / "collector.sqlite"
    app = create_app(f"sqlite:///{path}", [WRITE_KEY], SERVER_KEY)
    with running(app) as base:
        assert httpx.get(f"{base}/healthz").status_code == 200
        app.state.store.engine.dispose()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        path.write_bytes(b"this is not a database" * 100)
        assert httpx.get(f"{base}/healthz").status_code == 503
        answer = httpx.post(f"{base}/v1/events", json=event(), headers={"X-Write-Key": WRITE_KEY})
        assert answer.status_code == 503
        assert answer.headers["retry-after"] == "1"


# --- storage directly, on SQLite and PostgreSQL -----------------------------------------------------


def test_store_counts_new_rows_under_concurrent_overlapping_batches(db_url: str) -> None:
    store = EventStore(db_url)
    store.create_schema()
    occurred = datetime.now(UTC)
    rows = [
        {
            "event_id": f"e{i:05d}",
            "user_id": f"u{i % 7}",
            "event_name": "page_view",
            "occurred_at": occurred,
            "properties": "{}",
        }
        for i in range(600)
    ]
    for n in range(7):
        store.identify(f"u{n}", occurred, "")
    # 6 threads, each inserting 200 rows that overlap its neighbours' by half
    slices = [rows[start : start + 200] for start in range(0, 600, 100)]
    accepted: list[int] = []

    def worker(batch):
        accepted.append(
            sum(store.insert_events(batch[i : i + 50]).accepted for i in range(0, 200, 50))
        )

    threads = [threading.Thread(target=worker, args=(batch,)) for batch in slices]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(accepted) == 600
    assert store.count_rows("events") == 600
    assert store.insert_events(rows[:10]).duplicates == 10
    store.dispose()


def test_store_identify_and_status_round_trip(db_url: str) -> None:
    store = EventStore(db_url)
    store.create_schema()
    store.create_schema()  # idempotent
    created = datetime(2026, 1, 5, 12, 30, tzinfo=UTC)
    assert store.identify("u1", created, '{"utm_campaign":"c1"}').created
    browser = store.identify("u1", created - timedelta(days=1), '{"utm_campaign":"c2"}')
    assert not browser.created and browser.ignored == ("created_at", "marketing")
    server = store.identify("u1", created - timedelta(days=1), '{"utm_campaign":"c2"}', True)
    assert server.changed == ("created_at", "marketing")
    store.set_status("u1", "converted", created + timedelta(days=2))
    engine = sa.create_engine(db_url)
    with engine.connect() as connection:
        row = connection.execute(sa.text("SELECT * FROM users")).mappings().one()
    engine.dispose()
    assert row["marketing"] == '{"utm_campaign":"c2"}'
    assert row["status"] == "converted"
    stamp = row["created_at"]
    if isinstance(stamp, str):  # SQLite hands text back
        stamp = datetime.fromisoformat(stamp)
    assert stamp.replace(tzinfo=None) == datetime(2026, 1, 4, 12, 30)
    store.dispose()


# --- command line -----------------------------------------------------------------------------------


def test_serve_without_write_keys_exits_2(monkeypatch, capsys) -> None:
    monkeypatch.delenv("INSIGHTOS_WRITE_KEYS", raising=False)
    assert main(["serve", "--port", "1"]) == 2
    assert "INSIGHTOS_WRITE_KEYS" in capsys.readouterr().err
    monkeypatch.setenv("INSIGHTOS_WRITE_KEYS", "a,b")
    monkeypatch.setenv("INSIGHTOS_SERVER_KEY", "b")
    assert main(["serve", "--port", "1"]) == 2


def test_store_keeps_instants_in_utc(db_url: str) -> None:
    store = EventStore(db_url)
    store.create_schema()
    instant = datetime(2026, 3, 1, 9, 15, 30, 250_000, tzinfo=UTC)
    row = {
        "event_id": "tz-1",
        "user_id": "u1",
        "event_name": "page_view",
        "occurred_at": instant,
        "properties": "{}",
    }
    store.identify("u1", instant, "")
    assert store.insert_events([row]).accepted == 1
    with store.engine.connect() as connection:
        stamp = connection.execute(sa.text("SELECT occurred_at FROM events")).scalar_one()
    store.dispose()
    if isinstance(stamp, str):  # SQLite: text without a zone, which the contract reads as UTC
        stamp = datetime.fromisoformat(stamp)
    assert stamp.replace(tzinfo=None) == instant.replace(tzinfo=None)


def test_a_failed_group_commit_fails_every_caller(tmp_path: Path, monkeypatch) -> None:
    store = EventStore(f"sqlite:///{tmp_path / 'collector.sqlite'}")
    store.create_schema()

    def broken(*_args, **_kwargs):
        raise sa.exc.OperationalError("INSERT", {}, Exception("disk I/O error"))

    monkeypatch.setattr(store, "_insert_new", broken)
    errors: list[Exception] = []

    def insert(n: int) -> None:
        row = {
            "event_id": f"e{n}",
            "user_id": "u",
            "event_name": "x",
            "occurred_at": datetime.now(UTC),
            "properties": "{}",
        }
        try:
            store.insert_events([row])
        except sa.exc.OperationalError as error:
            errors.append(error)

    threads = [threading.Thread(target=insert, args=(n,)) for n in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(errors) == 5  # nobody is told "accepted" for rows that were not committed
    monkeypatch.undo()
    assert store.count_rows("events") == 0
    store.dispose()


def test_sqlite_wal_is_folded_into_the_file_on_dispose(tmp_path: Path) -> None:
    path = tmp_path / "collector.sqlite"
    store = EventStore(f"sqlite:///{path}")
    store.create_schema()
    rows = [
        {
            "event_id": f"e{i}",
            "user_id": "u",
            "event_name": "x",
            "occurred_at": datetime.now(UTC),
            "properties": "{}",
        }
        for i in range(300)
    ]
    store.identify("u", datetime.now(UTC), "")
    assert store.insert_events(rows).accepted == 300
    wal = Path(f"{path}-wal")
    assert wal.exists() and wal.stat().st_size > 0  # automatic checkpoints are off
    store.dispose()
    assert not wal.exists() or wal.stat().st_size == 0
    reopened = EventStore(f"sqlite:///{path}")
    assert reopened.count_rows("events") == 300
    reopened.dispose()


def test_insightos_serve_keeps_acknowledged_events_across_a_kill(tmp_path: Path) -> None:
    """The real command in a child process: 202 means committed, even under SIGKILL."""
    db = f"sqlite:///{tmp_path / 'served.sqlite'}"
    service = CollectorProcess(db, tmp_path / "serve.log", [WRITE_KEY], SERVER_KEY)
    service.start()
    try:
        identify(service.base_url, "u-test")
        batch = [event() for _ in range(50)]
        answer = httpx.post(
            f"{service.base_url}/v1/events",
            json={"events": batch},
            headers={"X-Write-Key": WRITE_KEY},
        )
        assert answer.status_code == 202
        service.kill()  # no shutdown code runs
        service.start()
        replay = httpx.post(
            f"{service.base_url}/v1/events",
            json={"events": batch},
            headers={"X-Write-Key": WRITE_KEY},
        )
        assert replay.json() == {"accepted": 0, "duplicates": 50, "conflicts": 0, "held": 0}
    finally:
        service.stop()
    assert stored(db, "SELECT count(*) FROM events") == [(50,)]


def test_ingest_reads_what_the_collector_wrote(db_url: str, tmp_path: Path) -> None:
    """Users, events and a conversion through the API; ingest --source finds no reject."""
    from insightos_utils.ingest import read_processed

    signup = datetime.now(UTC).replace(microsecond=0) - timedelta(days=3)
    with running(create_app(db_url, [WRITE_KEY], SERVER_KEY)) as base:
        browser, backend = {"X-Write-Key": WRITE_KEY}, {"X-Write-Key": SERVER_KEY}
        for n, campaign in enumerate(["google_gestao_agil", None]):
            marketing = {"utm_source": "google", "utm_campaign": campaign} if campaign else {}
            body = {
                "user_id": f"lead-{n}",
                "created_at": signup.isoformat(),
                "marketing": marketing,
            }
            assert httpx.post(f"{base}/v1/identify", json=body, headers=browser).status_code == 200
        batch = [
            event(user_id=f"lead-{n % 2}", occurred_at=(signup + timedelta(hours=n)).isoformat())
            for n in range(6)
        ]
        answer = httpx.post(f"{base}/v1/events", json={"events": batch}, headers=browser)
        assert answer.status_code == 202
        converted = {
            "status": "converted",
            "converted_at": (signup + timedelta(days=1)).isoformat(),
        }
        path = f"{base}/v1/users/lead-0/status"
        assert httpx.post(path, json=converted, headers=backend).status_code == 200

    # the rows themselves: [data] engine = "memory" copies the events out (the default for a
    # database source, "source", leaves them there and computes the features in it)
    config = tmp_path / "memory.toml"
    config.write_text('[data]\nengine = "memory"\n')
    out = tmp_path / "processed"
    assert main(["ingest", "--source", db_url, "--out", str(out), "--config", str(config)]) == 0
    report = json.loads((out / "ingest_report.json").read_text())
    assert report["tables"]["users"]["rejected_rows"] == 0
    assert report["tables"]["events"]["rejected_rows"] == 0
    data = read_processed(out)
    users = data.users.set_index("user_id")
    assert users.loc["lead-0", "status"] == "converted"
    assert users.loc["lead-0", "converted_at"] == signup.replace(tzinfo=None) + timedelta(days=1)
    assert users.loc["lead-1", "created_at"] == signup.replace(tzinfo=None)
    assert list(users["campaign"].sort_index()) == ["google_gestao_agil", "(none)"]
    assert len(data.events) == 6
    assert data.events["occurred_at"].min() == signup.replace(tzinfo=None)
