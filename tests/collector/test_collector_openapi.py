"""The published OpenAPI document, checked by schemathesis against the app: whatever it
generates from the document, the collector never answers 5xx, and every answer (status, content
type) is one the document names. Bounded examples per operation, so the suite stays fast.

One check is left out: "schema-valid data is accepted". The accepted time window (timestamps
within 730 days before and 5 minutes after the collector's clock) moves with the clock, so no
static document can state it; such a request is answered 422 naming the field, as documented."""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from insightos_utils.collector import create_app
from insightos_utils.collector.security import FailureThrottle

WRITE_KEY = "wk-schemathesis"
SERVER_KEY = "sk-schemathesis"
MAX_EXAMPLES = 30
OPERATIONS = [
    ("POST", "/v1/events"),
    ("POST", "/v1/identify"),
    ("POST", "/v1/users/{user_id}/status"),
    ("GET", "/healthz"),
]


@pytest.fixture(scope="module")
def collector_schema(tmp_path_factory: pytest.TempPathFactory):
    folder: Path = tmp_path_factory.mktemp("openapi")
    app = create_app(
        f"sqlite:///{folder / 'openapi.sqlite'}",
        [WRITE_KEY],
        SERVER_KEY,
        cors_origins=["https://www.example.com"],
        # generated requests without a key must not lock the test client out
        throttle=FailureThrottle(limit=1_000_000),
    )
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def test_every_route_is_in_the_document(collector_schema) -> None:
    found = {
        (result.ok().method.upper(), result.ok().path)
        for result in collector_schema.get_all_operations()
    }
    assert set(OPERATIONS) <= found


@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_generated_requests_never_break_the_collector(collector_schema, method, path) -> None:
    operation = collector_schema[path][method]
    key = SERVER_KEY if "/status" in path else WRITE_KEY

    @given(case=operation.as_strategy())
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def check(case) -> None:
        case.call_and_validate(
            headers={"X-Write-Key": key}, excluded_checks=[positive_data_acceptance]
        )

    check()
