"""The collector's payloads: exactly the raw contract's rows, validated field by field.

Timestamps must be ISO 8601 text within a window around the collector's clock (passed in the
validation context); JSON objects are bounded in depth and size; identifiers match
``ID_PATTERN``. Messages never echo the offending input (it may be huge or personal).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    model_validator,
)
from pydantic_core import PydanticCustomError

from insightos_utils.collector.store import as_utc

MAX_JSON_DEPTH = 5  # nesting inside properties / marketing
MAX_JSON_BYTES = 8_192  # properties / marketing as compact UTF-8 JSON
ID_PATTERN = r"^[A-Za-z0-9_.:@+|/=-]+$"
EVENT_NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_.:\- ]*$"


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
