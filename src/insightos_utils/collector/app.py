"""The collector's HTTP application (contract section 4): FastAPI over ``store.EventStore``.

Security model (``security``): browser write keys (public by nature, one per source) may add
events and identify users, never rewrite a user's ``created_at`` or first-touch marketing; the
back end's server key alone changes statuses and may correct a user (such a change is logged).
Wrong keys are throttled per client address (429 with ``Retry-After``); the ``Origin`` of every
browser-key request is checked, not only preflights. Keys are held as SHA-256 digests and
compared in constant time. Bodies are size-checked before parsing, JSON depth is bounded by the
parser, and every payload is validated field by field (422); bad input never reaches the
database nor produces a 500. Logs carry method, route, status, latency and counts only: no
bodies, no query strings (beacons carry their key there), no user ids. The OpenAPI document is
published at ``/openapi.json``.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ValidationError
from pydantic_core import from_json
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from insightos_utils.collector.models import (
    ID_PATTERN,
    EventBatch,
    EventIn,
    IdentifyIn,
    StatusIn,
    TimeWindow,
    compact_json,
)
from insightos_utils.collector.openapi import document_routes
from insightos_utils.collector.security import FailureThrottle, KeyRing, OriginPolicy
from insightos_utils.collector.store import ConversionBeforeSignup, EventStore, UnknownUser
from insightos_utils.errors import InputError

LOGGER = logging.getLogger("insightos.collector")

DEFAULT_MAX_BATCH = 500
DEFAULT_MAX_BODY_BYTES = 1_000_000
SMALL_BODY_BYTES = 64_000  # identify and status bodies are a few hundred bytes
DEFAULT_FUTURE_TOLERANCE = timedelta(minutes=5)
DEFAULT_MAX_AGE = timedelta(days=730)
MAX_ERRORS_SHOWN = 50
KEY_HEADER = "X-Write-Key"
KEY_QUERY = "key"  # for navigator.sendBeacon, which cannot set headers
_ID_RE = re.compile(ID_PATTERN)


# --- errors and logging ------------------------------------------------------------------------


def _validation_detail(error: ValidationError, prefix: tuple[str | int, ...]) -> list[dict]:
    """Field-level messages without the offending input (it may be huge or personal)."""
    return [
        {"loc": [*prefix, *item["loc"]], "msg": item["msg"], "type": item["type"]}
        for item in error.errors(include_url=False, include_input=False, include_context=False)[
            :MAX_ERRORS_SHOWN
        ]
    ]


def _invalid(loc: list[str | int], message: str, kind: str = "value_error") -> HTTPException:
    return _Unprocessable([{"loc": loc, "msg": message, "type": kind}])


class _Unprocessable(HTTPException):
    def __init__(self, detail: list[dict]) -> None:
        super().__init__(status_code=422, detail=detail)  # type: ignore[arg-type]  # JSON list


class _Throttled(HTTPException):
    def __init__(self, retry_after: int) -> None:
        super().__init__(
            status_code=429,
            detail="too many requests with a wrong key from this address; retry later",
            headers={"Retry-After": str(retry_after)},
        )


class AccessLog:
    """One log line per request: method, route template, status, latency and counts only."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            route = getattr(scope.get("route"), "path", None) or "<unmatched>"
            counts = scope.get("state", {}).get("counts", "")
            LOGGER.info(
                "%s %s %d %.1fms%s",
                scope["method"],
                route,
                status,
                (time.perf_counter() - start) * 1000,
                f" {counts}" if counts else "",
            )


# --- application -------------------------------------------------------------------------------


def _static_text(name: str) -> str:
    return (resources.files("insightos_utils") / "static" / name).read_text(encoding="utf-8")


def create_app(
    db_url: str,
    write_keys: Iterable[str],
    server_key: str | None,
    cors_origins: Iterable[str] = (),
    max_batch: int = DEFAULT_MAX_BATCH,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    future_tolerance: timedelta = DEFAULT_FUTURE_TOLERANCE,
    max_age: timedelta = DEFAULT_MAX_AGE,
    throttle: FailureThrottle | None = None,
) -> FastAPI:
    """The collector as a FastAPI app over ``db_url``; creates the schema when missing.

    ``write_keys`` may post events and identify users (header ``X-Write-Key`` or, for beacons,
    query ``?key=``) from the ``cors_origins`` (and the collector's own pages); ``server_key``
    may do that too, correct a known user, and alone may change a user's status (header only).
    An empty ``server_key`` disables the status endpoint.
    """
    browser_keys = KeyRing(write_keys)
    server_keys = KeyRing([server_key] if server_key else [])
    if not browser_keys:
        raise InputError("the collector needs at least one write key (INSIGHTOS_WRITE_KEYS)")
    origins = list(cors_origins)
    origin_policy = OriginPolicy(origins)
    throttle = throttle or FailureThrottle()
    store = EventStore(db_url)
    store.create_schema()
    tracker_js = _static_text("tracker.js")
    demo_html = _static_text("demo.html")

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        store.dispose()

    app = FastAPI(
        title="InsightOS collector",
        version="1",
        description="Browser and back-end events into the raw contract's users and events.",
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
        lifespan=lifespan,
    )
    app.state.store = store

    def window() -> TimeWindow:
        return TimeWindow(datetime.now(UTC), future_tolerance, max_age)

    def client_of(request: Request) -> str:
        return request.client.host if request.client else "unknown"

    def require_write_key(request: Request) -> bool:
        """Check the key (throttled per address) and a browser key's origin; True for the
        server key."""
        client = client_of(request)
        wait = throttle.retry_after(client)
        if wait is not None:
            raise _Throttled(wait)
        presented = request.headers.get(KEY_HEADER) or request.query_params.get(KEY_QUERY)
        if server_keys.matches(presented):
            return True
        if not browser_keys.matches(presented):
            throttle.failed(client)
            raise HTTPException(401, "missing or unknown write key (header X-Write-Key)")
        if not origin_policy.allows(request.headers.get("origin"), request.headers.get("host")):
            raise HTTPException(403, "this origin may not post with a browser write key")
        return False

    def require_server_key(request: Request) -> None:
        client = client_of(request)
        wait = throttle.retry_after(client)
        if wait is not None:
            raise _Throttled(wait)
        if not server_keys.matches(request.headers.get(KEY_HEADER)):
            throttle.failed(client)
            raise HTTPException(401, "this endpoint takes the server key only (X-Write-Key)")

    async def read_json(request: Request, limit: int) -> Any:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise HTTPException(413, f"request body is larger than {limit} bytes")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise HTTPException(413, f"request body is larger than {limit} bytes")
            chunks.append(chunk)
        if size == 0:
            raise _invalid(["body"], "request body is empty; send a JSON object")
        try:  # pydantic-core's parser: bounded nesting depth, no NaN, no lone surrogates
            return from_json(b"".join(chunks), allow_inf_nan=False)
        except ValueError as error:
            raise _invalid(["body"], f"invalid JSON: {error}", "json_invalid") from None

    def validate(model: type[BaseModel], payload: Any) -> Any:
        try:
            return model.model_validate(payload, context={"window": window()})
        except ValidationError as error:
            raise _Unprocessable(_validation_detail(error, ("body",))) from None

    @app.post("/v1/events", status_code=202)
    async def post_events(request: Request) -> JSONResponse:
        """One event or ``{"events": [...]}``: how many were new (``held`` of them for users
        not identified yet), redelivered (same content) and conflicting (same id, other
        content; the first content is kept)."""
        require_write_key(request)
        payload = await read_json(request, max_body_bytes)
        if isinstance(payload, dict) and "events" in payload:
            listed = payload["events"]
            if isinstance(listed, list) and len(listed) > max_batch:
                raise HTTPException(
                    413, f"{len(listed)} events in one batch; the limit is {max_batch}"
                )
            events = validate(EventBatch, payload).events
        else:
            events = [validate(EventIn, payload)]
        rows = [
            {
                "event_id": event.event_id,
                "user_id": event.user_id,
                "event_name": event.event_name,
                "occurred_at": event.occurred_at,
                "properties": compact_json(event.properties or {}),
            }
            for event in events
        ]
        result = await run_in_threadpool(store.insert_events, rows)
        request.state.counts = (
            f"events={len(rows)} accepted={result.accepted} duplicates={result.duplicates} "
            f"conflicts={result.conflicts} held={result.held}"
        )
        if result.conflicts:
            LOGGER.warning(
                "%d event_id(s) reused with different content: the first content is kept",
                result.conflicts,
            )
        return JSONResponse(
            {
                "accepted": result.accepted,
                "duplicates": result.duplicates,
                "conflicts": result.conflicts,
                "held": result.held,
            },
            status_code=202,
        )

    @app.post("/v1/identify")
    async def post_identify(request: Request) -> JSONResponse:
        """Create a user (status ``lead``), or fill a known one's empty marketing; with the
        server key, also correct its created_at and marketing."""
        trusted = require_write_key(request)
        user = validate(IdentifyIn, await read_json(request, SMALL_BODY_BYTES))
        marketing = compact_json(user.marketing or {})
        result = await run_in_threadpool(
            store.identify, user.user_id, user.created_at, marketing, trusted
        )
        request.state.counts = f"created={int(result.created)} released={result.released}"
        if trusted and result.changed:
            LOGGER.warning(
                "identify with the server key changed %s of a known user", ", ".join(result.changed)
            )
        return JSONResponse(
            {"user_id": user.user_id, "created": result.created, "ignored": list(result.ignored)}
        )

    @app.post("/v1/users/{user_id}/status")
    async def post_status(user_id: str, request: Request) -> JSONResponse:
        """Status change from the back end (server key only): converted with its time, lost..."""
        require_server_key(request)
        if not (len(user_id) <= 128 and _ID_RE.fullmatch(user_id)):
            raise _invalid(
                ["path", "user_id"], "user_id has characters outside [A-Za-z0-9_.:@+|/=-]"
            )
        change = validate(StatusIn, await read_json(request, SMALL_BODY_BYTES))
        try:
            await run_in_threadpool(store.set_status, user_id, change.status, change.converted_at)
        except UnknownUser:
            raise HTTPException(404, "unknown user_id: identify the user first") from None
        except ConversionBeforeSignup:
            raise _invalid(
                ["body", "converted_at"], "converted_at is before the user's created_at"
            ) from None
        return JSONResponse({"user_id": user_id, "status": change.status})

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        """200 when the database answers, 503 otherwise."""
        if await run_in_threadpool(store.ping):
            return JSONResponse({"status": "ok"})
        return JSONResponse({"status": "database unavailable"}, status_code=503)

    @app.get("/tracker.js")
    async def tracker() -> Response:
        """The browser tracker (tracker.js)."""
        return Response(
            tracker_js,
            media_type="application/javascript; charset=utf-8",
            headers={"Cache-Control": "public, max-age=300"},
        )

    @app.get("/demo")
    async def demo() -> HTMLResponse:
        """A demo page that uses the tracker against this collector."""
        return HTMLResponse(demo_html)

    async def unprocessable(_request: Request, error: Exception) -> JSONResponse:
        detail: Any = error.detail if isinstance(error, HTTPException) else error.errors()  # type: ignore[attr-defined]
        cleaned = [{k: item[k] for k in ("loc", "msg", "type") if k in item} for item in detail]
        return JSONResponse({"detail": cleaned[:MAX_ERRORS_SHOWN]}, status_code=422)

    async def database_unavailable(_request: Request, error: Exception) -> JSONResponse:
        LOGGER.warning("database unavailable: %s", type(error).__name__)
        return JSONResponse(
            {"detail": "database unavailable; retry later"},
            status_code=503,
            headers={"Retry-After": "1"},
        )

    app.add_exception_handler(_Unprocessable, unprocessable)
    app.add_exception_handler(RequestValidationError, unprocessable)
    app.add_exception_handler(sa.exc.DBAPIError, database_unavailable)
    app.add_exception_handler(sa.exc.TimeoutError, database_unavailable)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=origins,
        allow_methods=["GET", "POST"],
        allow_headers=[KEY_HEADER, "Content-Type"],
        max_age=600,
    )
    app.add_middleware(AccessLog)
    document_routes(app, max_batch)
    return app


def serve(
    host: str,
    port: int,
    db_url: str,
    write_keys: Iterable[str] = (),
    server_key: str | None = None,
    cors_origins: Iterable[str] = (),
) -> None:
    """Run the collector with uvicorn until interrupted (``insightos serve``)."""
    import gc

    import uvicorn

    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    LOGGER.setLevel(logging.INFO)
    app = create_app(db_url, write_keys, server_key, cors_origins)
    # The long-lived objects of the imports and the app go to the permanent generation: full
    # collections then scan only request garbage (measured: 100-280 ms pauses before, none
    # above 45 ms after, at 5,000 events/s).
    gc.collect()
    gc.freeze()
    if not server_key:
        LOGGER.warning("no server key: POST /v1/users/{user_id}/status answers 401")
    uvicorn.run(
        app,
        host=host,
        port=port,
        access_log=False,  # uvicorn's access log prints query strings (beacon keys)
        server_header=False,
        timeout_graceful_shutdown=5,
        log_level="info",
    )
