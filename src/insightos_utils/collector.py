"""The event collector (contract section 4): browser and back-end events into the raw tables.

``create_app`` builds the FastAPI application, ``serve`` runs it with uvicorn (``insightos
serve``). What the collector writes is the raw contract's ``users`` and ``events`` tables
(``collector_store``), so ``insightos ingest --source URL`` reads captured events like files.

Security model: browser write keys (public by nature, one per source) may only add events and
identify users; the back end's server key alone may change a user's status. Keys are held as
SHA-256 digests and compared in constant time. Bodies are size-checked before parsing, JSON
depth is bounded by the parser, and every payload is validated field by field (422); bad input
never reaches the database nor produces a 500. Logs carry method, route, status, latency and
counts only: no bodies, no query strings (beacons carry their key there), no user ids.
"""

from __future__ import annotations

import gc
import hashlib
import hmac
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    model_validator,
)
from pydantic_core import PydanticCustomError, from_json
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from insightos_utils.collector_store import (
    ConversionBeforeSignup,
    EventStore,
    UnknownUser,
    as_utc,
)
from insightos_utils.errors import InputError

LOGGER = logging.getLogger("insightos.collector")

DEFAULT_MAX_BATCH = 500
DEFAULT_MAX_BODY_BYTES = 1_000_000
SMALL_BODY_BYTES = 64_000  # identify and status bodies are a few hundred bytes
DEFAULT_FUTURE_TOLERANCE = timedelta(minutes=5)
DEFAULT_MAX_AGE = timedelta(days=730)
MAX_JSON_DEPTH = 5  # nesting inside properties / marketing
MAX_JSON_BYTES = 8_192  # properties / marketing as compact UTF-8 JSON
MAX_ERRORS_SHOWN = 50
KEY_HEADER = "X-Write-Key"
KEY_QUERY = "key"  # for navigator.sendBeacon, which cannot set headers
ID_PATTERN = r"^[A-Za-z0-9_.:@+|/=-]+$"
EVENT_NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_.:\- ]*$"
_ID_RE = re.compile(ID_PATTERN)


# --- payloads ----------------------------------------------------------------------------------


def _error(kind: str, message: str) -> PydanticCustomError:
    """A field-level error with a plain message (no braces: pydantic formats them)."""
    return PydanticCustomError(kind, message.replace("{", "(").replace("}", ")"))


@dataclass(frozen=True)
class TimeWindow:
    """The accepted range of client timestamps around the server's clock."""

    now: datetime
    future_tolerance: timedelta
    max_age: timedelta

    def check(self, value: datetime) -> None:
        if value > self.now + self.future_tolerance:
            raise _error(
                "timestamp_in_future",
                f"is more than {self.future_tolerance} ahead of the collector's clock "
                f"({self.now:%Y-%m-%dT%H:%M:%SZ})",
            )
        if value < self.now - self.max_age:
            raise _error("timestamp_too_old", f"is more than {self.max_age.days} days in the past")


def _timestamp_text(value: Any) -> Any:
    if not isinstance(value, str):
        raise _error(
            "timestamp_type", "must be an ISO 8601 timestamp string (2026-06-30T12:00:00Z)"
        )
    if len(value) > 64:
        raise _error("timestamp_too_long", "is too long for an ISO 8601 timestamp")
    return value


def _in_window(value: datetime, info: ValidationInfo) -> datetime:
    value = as_utc(value)  # no zone means UTC, as in the raw contract
    window = (info.context or {}).get("window")
    if window is not None:
        window.check(value)
    return value


def compact_json(value: dict[str, Any]) -> str:
    """A JSON object as the compact text stored in the ``properties``/``marketing`` columns."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _bounded_json_object(value: dict[str, Any]) -> dict[str, Any]:
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:  # iterative: no recursion on hostile input
        node, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise _error("json_too_deep", f"is nested deeper than {MAX_JSON_DEPTH} levels")
        for child in node.values() if isinstance(node, dict) else node:
            if isinstance(child, dict | list):
                stack.append((child, depth + 1))
    try:
        size = len(compact_json(value).encode("utf-8"))
    except ValueError as error:  # Infinity from 1e400, integers beyond Python's digit limit
        raise _error("json_not_storable", f"is not storable as JSON ({error})") from None
    if size > MAX_JSON_BYTES:
        raise _error("json_too_large", f"is {size} bytes as JSON; the limit is {MAX_JSON_BYTES}")
    return value


Identifier = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=ID_PATTERN)]
EventName = Annotated[str, StringConstraints(max_length=100, pattern=EVENT_NAME_PATTERN)]
Timestamp = Annotated[datetime, BeforeValidator(_timestamp_text), AfterValidator(_in_window)]
JsonObject = Annotated[dict[str, Any], AfterValidator(_bounded_json_object)]


class EventIn(BaseModel):
    """One event, exactly the raw contract's ``events`` row."""

    model_config = ConfigDict(extra="forbid")

    event_id: Identifier
    user_id: Identifier
    event_name: EventName
    occurred_at: Timestamp
    properties: JsonObject | None = None


class EventBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    events: list[EventIn] = Field(min_length=1)


class IdentifyIn(BaseModel):
    """A user with the acquisition data captured on landing (``marketing``)."""

    model_config = ConfigDict(extra="forbid")

    user_id: Identifier
    created_at: Timestamp
    marketing: JsonObject | None = None


class StatusIn(BaseModel):
    """A status change from the company's back end."""

    model_config = ConfigDict(extra="forbid")

    status: Literal["lead", "trial", "converted", "lost"]
    converted_at: Timestamp | None = None

    @model_validator(mode="after")
    def _converted_at_with_converted(self) -> StatusIn:
        if self.status == "converted" and self.converted_at is None:
            raise _error("missing_converted_at", "converted_at is required for status 'converted'")
        if self.status != "converted" and self.converted_at is not None:
            raise _error("unexpected_converted_at", "converted_at must be empty unless 'converted'")
        return self


# --- keys, errors, logging ---------------------------------------------------------------------


class KeyRing:
    """Keys held only as SHA-256 digests; a presented key is compared against every one."""

    def __init__(self, keys: Iterable[str]) -> None:
        self._digests = tuple(_digest(key) for key in keys if key)

    def __bool__(self) -> bool:
        return bool(self._digests)

    def matches(self, presented: str | None) -> bool:
        if not presented:
            return False
        digest = _digest(presented)
        found = False
        for known in self._digests:  # no early exit: the time does not depend on which matched
            found |= hmac.compare_digest(known, digest)
        return found


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


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
) -> FastAPI:
    """The collector as a FastAPI app over ``db_url``; creates the schema when missing.

    ``write_keys`` may post events and identify users (header ``X-Write-Key`` or, for beacons,
    query ``?key=``); ``server_key`` may do that too and alone may change a user's status
    (header only). An empty ``server_key`` disables the status endpoint.
    """
    browser_keys = KeyRing(write_keys)
    server_keys = KeyRing([server_key] if server_key else [])
    if not browser_keys:
        raise InputError("the collector needs at least one write key (INSIGHTOS_WRITE_KEYS)")
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
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
    )
    app.state.store = store

    def window() -> TimeWindow:
        return TimeWindow(datetime.now(UTC), future_tolerance, max_age)

    def require_write_key(request: Request) -> None:
        presented = request.headers.get(KEY_HEADER) or request.query_params.get(KEY_QUERY)
        if not (browser_keys.matches(presented) or server_keys.matches(presented)):
            raise HTTPException(401, "missing or unknown write key (header X-Write-Key)")

    def require_server_key(request: Request) -> None:
        if not server_keys.matches(request.headers.get(KEY_HEADER)):
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
        """One event or ``{"events": [...]}``; answers how many were new and how many known."""
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
        accepted = await run_in_threadpool(store.insert_events, rows)
        duplicates = len(rows) - accepted
        request.state.counts = f"events={len(rows)} accepted={accepted} duplicates={duplicates}"
        return JSONResponse({"accepted": accepted, "duplicates": duplicates}, status_code=202)

    @app.post("/v1/identify")
    async def post_identify(request: Request) -> JSONResponse:
        """Create a user (status ``lead``) or update a known one's created_at/marketing."""
        require_write_key(request)
        user = validate(IdentifyIn, await read_json(request, SMALL_BODY_BYTES))
        marketing = compact_json(user.marketing or {})
        result = await run_in_threadpool(store.identify, user.user_id, user.created_at, marketing)
        request.state.counts = f"created={int(result.created)}"
        return JSONResponse({"user_id": user.user_id, "created": result.created})

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
        return Response(
            tracker_js,
            media_type="application/javascript; charset=utf-8",
            headers={"Cache-Control": "public, max-age=300"},
        )

    @app.get("/demo")
    async def demo() -> HTMLResponse:
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
        allow_origins=list(cors_origins),
        allow_methods=["GET", "POST"],
        allow_headers=[KEY_HEADER, "Content-Type"],
        max_age=600,
    )
    app.add_middleware(AccessLog)
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


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class CollectorProcess:
    """``insightos serve`` in a child process on loopback, to start, kill and restart at will.

    For tests, the load benchmark and demos. The keys reach the child through its environment,
    exactly as an operator sets them; output goes to ``log_path``.
    """

    def __init__(
        self,
        db_url: str,
        log_path: Path,
        write_keys: Iterable[str],
        server_key: str | None = None,
        cors_origins: Iterable[str] = (),
        host: str = "127.0.0.1",
        port: int | None = None,
    ) -> None:
        self.db_url, self.log_path, self.host = db_url, Path(log_path), host
        self.port = port or free_port(host)
        self.base_url = f"http://{host}:{self.port}"
        self._env = {
            "INSIGHTOS_WRITE_KEYS": ",".join(write_keys),
            "INSIGHTOS_SERVER_KEY": server_key or "",
            "INSIGHTOS_CORS_ORIGINS": ",".join(cors_origins),
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 30) -> float:
        """Start the child; seconds until ``/healthz`` answered 200."""
        started = time.monotonic()
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "insightos_utils", "serve", "--host", self.host]
                + ["--port", str(self.port), "--db", self.db_url],
                env={**os.environ, **self._env},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        while time.monotonic() - started < timeout_s and self.process.poll() is None:
            try:
                with urllib.request.urlopen(f"{self.base_url}/healthz", timeout=1) as answer:
                    if answer.status == 200:
                        return time.monotonic() - started
            except OSError:  # not listening yet
                time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"collector did not start:\n{self.log_path.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL, as a crash would: no shutdown code runs."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        """SIGTERM and wait for a graceful shutdown (SIGKILL after 10 s)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
