"""The collector's trust boundary (issue 10, situation 4): what a public browser key may not do.

Each test reproduces one harm the issue found: attribution rewritten with the browser key,
ingest halted by events of unknown users, wrong keys answered without limit, a ``text/plain``
beacon from a disallowed origin stored, and an ``event_id`` reused with other content answered
like a redelivery.
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from test_collector import (
    ALLOWED_ORIGIN,
    SERVER_KEY,
    WRITE_KEY,
    event,
    identify,
    now_iso,
    running,
    stored,
)

from insightos_utils.cli import main
from insightos_utils.collector import create_app
from insightos_utils.collector.security import FailureThrottle


@pytest.fixture
def service(tmp_path: Path):
    db = f"sqlite:///{tmp_path / 'trust.sqlite'}"
    app = create_app(db, [WRITE_KEY], SERVER_KEY, cors_origins=[ALLOWED_ORIGIN])
    with running(app) as base:
        yield base, db


def test_browser_key_cannot_move_created_at_or_first_touch_but_server_key_can(
    service, caplog: pytest.LogCaptureFixture
) -> None:
    base, db = service
    user = f"u-{uuid.uuid4().hex[:8]}"
    signup = now_iso(-timedelta(days=2))
    identify(base, user, created_at=signup, marketing={"utm_campaign": "google_gestao_agil"})
    attack = {
        "user_id": user,
        "created_at": now_iso(-timedelta(days=700)),
        "marketing": {"utm_campaign": "attacker"},
    }
    answer = httpx.post(f"{base}/v1/identify", json=attack, headers={"X-Write-Key": WRITE_KEY})
    assert answer.status_code == 200 and answer.json()["ignored"] == ["created_at", "marketing"]
    ((created_at, marketing),) = stored(
        db, "SELECT created_at, marketing FROM users WHERE user_id = :u", u=user
    )
    assert created_at.startswith(signup[:19].replace("T", " "))
    assert json.loads(marketing) == {"utm_campaign": "google_gestao_agil"}

    # an empty field may be filled by the browser key: first touch arriving late
    late = f"u-{uuid.uuid4().hex[:8]}"
    identify(base, late, created_at=signup)
    identify(base, late, created_at=signup, marketing={"utm_campaign": "meta_trial"})
    assert (
        json.loads(stored(db, "SELECT marketing FROM users WHERE user_id = :u", u=late)[0][0])[
            "utm_campaign"
        ]
        == "meta_trial"
    )

    with caplog.at_level(logging.INFO, logger="insightos.collector"):
        fix = {"user_id": user, "created_at": now_iso(-timedelta(days=3)), "marketing": {}}
        answer = httpx.post(f"{base}/v1/identify", json=fix, headers={"X-Write-Key": SERVER_KEY})
    assert answer.status_code == 200 and answer.json()["ignored"] == []
    assert stored(db, "SELECT created_at FROM users WHERE user_id = :u", u=user)[0][0].startswith(
        fix["created_at"][:19].replace("T", " ")
    )
    assert any("server key changed created_at" in r.getMessage() for r in caplog.records)
    assert not any(user in r.getMessage() for r in caplog.records)  # no user ids in logs


def test_events_of_unknown_users_are_held_and_do_not_stop_ingest(service, tmp_path) -> None:
    base, db = service
    signup = datetime.now(UTC).replace(microsecond=0) - timedelta(days=3)
    for n in range(10):
        identify(base, f"lead-{n}", created_at=signup.isoformat())
    known = [
        event(user_id=f"lead-{n % 10}", occurred_at=(signup + timedelta(minutes=n)).isoformat())
        for n in range(490)
    ]
    strangers = [event(user_id=f"stranger-{n}") for n in range(10)]
    headers = {"X-Write-Key": WRITE_KEY}
    for start in range(0, 490, 245):
        answer = httpx.post(
            f"{base}/v1/events", json={"events": known[start : start + 245]}, headers=headers
        )
        assert answer.status_code == 202 and answer.json()["held"] == 0
    answer = httpx.post(f"{base}/v1/events", json={"events": strangers}, headers=headers)
    assert answer.json() == {"accepted": 10, "duplicates": 0, "conflicts": 0, "held": 10}

    out = tmp_path / "processed"
    assert main(["ingest", "--source", db, "--out", str(out)]) == 0  # 2% orphans no longer stop it
    report = json.loads((out / "ingest_report.json").read_text())
    assert report["tables"]["events"]["rows_written"] == 490
    assert report["tables"]["events"]["rejected_rows"] == 0
    assert report["held_events"] == 10
    assert any(w["kind"] == "held_events" for w in report["warnings"])

    identify(base, "stranger-3")  # the user shows up: its held event joins the events
    assert stored(db, "SELECT count(*) FROM events WHERE user_id = 'stranger-3'") == [(1,)]
    assert stored(db, "SELECT count(*) FROM held_events") == [(9,)]


def test_wrong_keys_are_throttled_per_client_address(tmp_path: Path) -> None:
    from starlette.testclient import TestClient

    app = create_app(
        f"sqlite:///{tmp_path / 'throttle.sqlite'}",
        [WRITE_KEY],
        SERVER_KEY,
        throttle=FailureThrottle(limit=5, window_s=60),
    )
    with (
        TestClient(app, client=("203.0.113.7", 40000)) as attacker,
        TestClient(app, client=("198.51.100.2", 40000)) as neighbour,
    ):
        answers = [
            attacker.post("/v1/events", json=event(), headers={"X-Write-Key": f"guess-{n}"})
            for n in range(8)
        ]
        assert [a.status_code for a in answers] == [401] * 5 + [429] * 3
        assert 1 <= int(answers[-1].headers["retry-after"]) <= 60
        # past the limit even the right key is refused from that address (no oracle for guesses)
        right = attacker.post("/v1/events", json=event(), headers={"X-Write-Key": WRITE_KEY})
        assert right.status_code == 429
        other = neighbour.post("/v1/events", json=event(), headers={"X-Write-Key": WRITE_KEY})
        assert other.status_code == 202


def test_a_text_plain_beacon_from_a_disallowed_origin_is_not_stored(service) -> None:
    base, db = service
    identify(base, "u-test")
    body = event()
    for origin, expected in (("https://evil.example", 403), (ALLOWED_ORIGIN, 202)):
        answer = httpx.post(
            f"{base}/v1/events",
            params={"key": WRITE_KEY},
            content=json.dumps({"events": [{**body, "event_id": f"{origin}-{body['event_id']}"}]}),
            headers={"Content-Type": "text/plain;charset=UTF-8", "Origin": origin},
        )
        assert answer.status_code == expected, answer.text
    ids = {row[0] for row in stored(db, "SELECT event_id FROM events")}
    assert ids == {f"{ALLOWED_ORIGIN}-{body['event_id']}"}
    own_page = httpx.post(  # the collector's own demo page is same-origin
        f"{base}/v1/events",
        json=event(),
        headers={"X-Write-Key": WRITE_KEY, "Origin": base},
    )
    assert own_page.status_code == 202
    server = httpx.post(  # the back end's key is not a browser's: its origin is not checked
        f"{base}/v1/events",
        json=event(),
        headers={"X-Write-Key": SERVER_KEY, "Origin": "https://evil.example"},
    )
    assert server.status_code == 202


def test_an_event_id_reused_with_other_content_is_a_conflict(
    service, caplog: pytest.LogCaptureFixture
) -> None:
    base, db = service
    identify(base, "u-test")
    headers = {"X-Write-Key": WRITE_KEY}
    original = event()
    assert httpx.post(f"{base}/v1/events", json=original, headers=headers).status_code == 202
    redelivery = httpx.post(f"{base}/v1/events", json=original, headers=headers).json()
    assert redelivery == {"accepted": 0, "duplicates": 1, "conflicts": 0, "held": 0}
    altered = {**original, "event_name": "invoice_paid", "properties": {"amount": 10**6}}
    with caplog.at_level(logging.WARNING, logger="insightos.collector"):
        answer = httpx.post(
            f"{base}/v1/events", json={"events": [altered, event(), altered]}, headers=headers
        ).json()
    assert answer == {"accepted": 1, "duplicates": 0, "conflicts": 2, "held": 0}
    assert any("reused with different content" in r.getMessage() for r in caplog.records)
    (name,) = stored(
        db, "SELECT event_name FROM events WHERE event_id = :e", e=original["event_id"]
    )
    assert name == (original["event_name"],)  # the first content stays


def test_openapi_document_is_published_with_bodies_and_keys(service) -> None:
    base, _db = service
    document = httpx.get(f"{base}/openapi.json").json()
    events = document["paths"]["/v1/events"]["post"]
    assert {"202", "401", "403", "413", "422", "429"} <= set(events["responses"])
    schemas = document["components"]["schemas"]
    assert {"EventIn", "EventBatch", "IdentifyIn", "StatusIn"} <= set(schemas)
    assert document["components"]["securitySchemes"]["writeKey"]["name"] == "X-Write-Key"


def test_held_events_table_is_created_alongside(tmp_path: Path) -> None:
    from insightos_utils.collector.store import EventStore

    store = EventStore(f"sqlite:///{tmp_path / 'schema.sqlite'}")
    store.create_schema()
    names = set(sa.inspect(store.engine).get_table_names())
    store.dispose()
    assert names == {"users", "events", "held_events"}
