"""RFC 9457 problem details for every error the root returns.

Each problem has a stable `type` (urn:velocity:problem:<code>) clients can switch on,
a human `detail`, and, for bad input, `errors` naming each field.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

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
    503: "Service unavailable",
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
    """A dependency (broker, database, colony) is unavailable: the degraded-state answer."""

    def __init__(self, dependency: str, detail: str, since: datetime, retry_after_s: int = 5):
        super().__init__(
            503,
            f"{dependency}_unavailable",
            detail,
            headers={"Retry-After": str(retry_after_s), "X-Velocity-Degraded": dependency},
            degraded={
                "dependency": dependency,
                "since": since.isoformat(),
                "retry_after_s": retry_after_s,
            },
        )


def problem_response(
    status: int,
    code: str,
    detail: str,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body = {
        "type": f"urn:velocity:problem:{code}",
        "title": TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        **({"instance": instance} if instance else {}),
        **extra,
    }
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _field_errors(error: RequestValidationError) -> list[dict[str, str]]:
    found = []
    for item in error.errors():
        location = [str(part) for part in item.get("loc", ()) if part != "body"]
        found.append({"field": ".".join(location) or "body", "message": str(item.get("msg"))})
    return found


def install_problem_handlers(app: FastAPI) -> None:
    """Route HTTP, validation and domain errors through problem details."""

    @app.exception_handler(ProblemError)
    async def _problem(request: Request, error: ProblemError) -> JSONResponse:
        return problem_response(
            error.status,
            error.code,
            error.detail,
            request.url.path,
            error.headers,
            **error.extra,
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        errors = _field_errors(error)
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        return problem_response(422, "validation_failed", detail, request.url.path, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, error: StarletteHTTPException) -> JSONResponse:
        return problem_response(
            error.status_code,
            f"http_{error.status_code}",
            str(error.detail),
            request.url.path,
            dict(error.headers or {}),
        )
