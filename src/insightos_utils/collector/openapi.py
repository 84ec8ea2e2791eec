"""The collector's OpenAPI document: request bodies from the payload models, every answer.

The routes read their bodies themselves (size limits before parsing, one JSON parser), so
FastAPI cannot see the bodies; this module describes them from the same pydantic models that
validate them, with the key scheme and every status a route may answer. Published at
``/openapi.json`` and checked in the test suite with schemathesis.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from insightos_utils.collector.models import EventBatch, EventIn, IdentifyIn, StatusIn

REF = "#/components/schemas/{model}"
KEY_SCHEME = "writeKey"
ERRORS = {
    "401": "missing or unknown key",
    "403": "a browser key from an origin that is not allowed",
    "413": "body or batch too large",
    "422": "invalid body (field-level detail)",
    "429": "too many wrong keys from this address (see Retry-After)",
    "503": "database unavailable (see Retry-After)",
}


def _schema(model: type[BaseModel], components: dict[str, Any]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template=REF)
    components.update(schema.pop("$defs", {}))
    components[model.__name__] = schema
    return {"$ref": REF.format(model=model.__name__)}


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _answers(ok: str, description: str, *errors: str) -> dict[str, Any]:
    answers: dict[str, Any] = {ok: {"description": description}}
    answers.update({code: {"description": ERRORS[code]} for code in errors})
    return answers


def document_routes(app: FastAPI, max_batch: int) -> None:
    """Replace ``app.openapi`` with one that documents bodies, keys and answers."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        document = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        components = document.setdefault("components", {}).setdefault("schemas", {})
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)
        document["components"]["securitySchemes"] = {
            KEY_SCHEME: {"type": "apiKey", "in": "header", "name": "X-Write-Key"}
        }
        secured: list[dict[str, list[str]]] = [{KEY_SCHEME: []}]
        paths = document["paths"]
        events = paths["/v1/events"]["post"]
        events["requestBody"] = _body(
            {"oneOf": [_schema(EventIn, components), _schema(EventBatch, components)]}
        )
        events["description"] = (
            f"One event, or a batch of at most {max_batch}. Answers "
            '`{"accepted", "duplicates", "conflicts", "held"}`.'
        )
        events["responses"] = _answers(
            "202", "stored (or known)", "401", "403", "413", "422", "429", "503"
        )
        identify = paths["/v1/identify"]["post"]
        identify["requestBody"] = _body(_schema(IdentifyIn, components))
        identify["responses"] = _answers(
            "200", "created or completed", "401", "403", "413", "422", "429", "503"
        )
        status = paths["/v1/users/{user_id}/status"]["post"]
        status["requestBody"] = _body(_schema(StatusIn, components))
        status["responses"] = _answers("200", "status recorded", "401", "413", "422", "429", "503")
        status["responses"]["404"] = {"description": "unknown user_id"}
        for operation in (events, identify, status):
            operation["security"] = secured
        paths["/healthz"]["get"]["responses"]["503"] = {"description": "database unavailable"}
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]
