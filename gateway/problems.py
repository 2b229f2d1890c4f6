"""RFC 9457 problem details for every error the root returns, documented as they are sent.

Each problem has a stable `type` (urn:velocity:problem:<code>) clients can switch on,
a human `detail`, and, for bad input, `errors` naming each field. `problems(...)`
documents the statuses a route can answer with the `application/problem+json` schema,
so the OpenAPI document says exactly what the server sends.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from loguru import logger
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

PROBLEM_JSON = "application/problem+json"
TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Payload too large",
    422: "Invalid request",
    500: "Internal error",
    503: "Service unavailable",
}
MEANINGS = {
    400: "The body is not well-formed JSON",
    401: "No key, or a key the root does not know",
    403: "The key's role may not do this",
    404: "No such resource",
    409: "The request conflicts with the resource's state",
    413: "The body is larger than the limit",
    422: "A field is invalid; `errors` names each one",
    503: "A dependency is down (`degraded` says which); retry after Retry-After",
}


class FieldProblem(BaseModel):
    field: str
    message: str


class Degraded(BaseModel):
    dependency: str
    since: str
    retry_after_s: int


class Problem(BaseModel):
    """An RFC 9457 problem document."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[FieldProblem] | None = None
    degraded: Degraded | None = None


WRITE_STATUSES = (400, 401, 403, 404, 409, 413, 422, 503)
"""What a write with a JSON body about an existing thing can answer: malformed, no key,
wrong role, not found, conflict, too large, invalid, dependency down."""


def problems(*statuses: int, **meanings: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for `statuses`, each a problem document; `meanings` (keyed
    `s409=...`) override the generic description of a status."""
    return {
        status: {
            "description": meanings.get(f"s{status}", MEANINGS[status]),
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status in statuses
    }


class ProblemError(Exception):
    """Raise to answer with a problem document."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra


class DependencyDownError(ProblemError):
    """A dependency (broker, database, colony) is unavailable: the degraded-state answer.

    The detail names the dependency only: driver messages can carry hosts and users."""

    def __init__(self, dependency: str, since: datetime, retry_after_s: int = 5):
        super().__init__(
            503,
            f"{dependency}_unavailable",
            f"{dependency} unavailable; reads and writes that need it are refused until it is back",
            headers={"Retry-After": str(retry_after_s), "X-Velocity-Degraded": dependency},
            degraded={
                "dependency": dependency,
                "since": since.isoformat(),
                "retry_after_s": retry_after_s,
            },
        )


class ProblemResponse(JSONResponse):
    """A problem document; text that cannot be encoded (a lone surrogate echoed from a
    field name) is replaced rather than failing the answer."""

    media_type = PROBLEM_JSON

    def render(self, content: Any) -> bytes:
        text = json.dumps(content, ensure_ascii=False, separators=(",", ":"))
        return text.encode("utf-8", errors="replace")


def problem_response(
    status: int,
    code: str,
    detail: str,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> ProblemResponse:
    body = {
        "type": f"urn:velocity:problem:{code}",
        "title": TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        **({"instance": instance} if instance else {}),
        **extra,
    }
    return ProblemResponse(body, status_code=status, headers=headers)


def _field_errors(error: RequestValidationError) -> list[dict[str, str]]:
    found = []
    for item in error.errors():
        location = [str(p) for p in item.get("loc", ())[1:] if p not in UNION_TAGS]
        if item.get("type") in ("union_tag_invalid", "union_tag_not_found"):
            location.append(str(item.get("ctx", {}).get("discriminator", "")).strip("'"))
        message = str(item.get("msg")).removeprefix("Value error, ")
        found.append({"field": ".".join(location) or "body", "message": message})
    return found


UNION_TAGS: set[str] = set()
"""Discriminator values of tagged unions in request bodies (e.g. a mission's `type`):
pydantic puts them in error locations, clients know the field without them."""


def allowed_methods(app: FastAPI, scope: dict[str, Any]) -> str:
    """Every method some route serves at this path (Starlette names only the first)."""
    methods: set[str] = set()
    for route in app.router.routes:
        match, _ = route.matches({**scope, "method": "GET"})
        if match != Match.NONE:
            methods |= getattr(route, "methods", None) or set()
    return ", ".join(sorted(methods - {"HEAD"}))


def install_problem_handlers(app: FastAPI) -> None:
    """Route HTTP, validation, domain and unexpected errors through problem details."""

    @app.exception_handler(ProblemError)
    async def _problem(request: Request, error: ProblemError) -> ProblemResponse:
        return problem_response(
            error.status, error.code, error.detail, request.url.path, error.headers, **error.extra
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, error: RequestValidationError) -> ProblemResponse:
        if any(item.get("type") == "json_invalid" for item in error.errors()):
            return problem_response(
                400, "malformed_body", "the body is not well-formed JSON", request.url.path
            )
        errors = _field_errors(error)
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        return problem_response(422, "validation_failed", detail, request.url.path, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, error: StarletteHTTPException) -> ProblemResponse:
        headers = dict(error.headers or {})
        detail = str(error.detail)
        if error.status_code == 405:
            headers["Allow"] = allowed_methods(app, dict(request.scope))
        if error.status_code == 400:
            detail = "the body is not well-formed JSON"
        code = {400: "malformed_body", 404: "not_found", 405: "method_not_allowed"}
        return problem_response(
            error.status_code,
            code.get(error.status_code, f"http_{error.status_code}"),
            detail,
            request.url.path,
            headers,
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> ProblemResponse:
        logger.opt(exception=error).error("unexpected error on {}", request.url.path)
        return problem_response(500, "internal_error", "unexpected error; it was logged")


def install_openapi(app: FastAPI) -> None:
    """Generate the OpenAPI document once, with the Problem schema every route refers to."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            schemas = document.setdefault("components", {}).setdefault("schemas", {})
            problem = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas.update(problem.pop("$defs", {}))
            schemas["Problem"] = problem
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
