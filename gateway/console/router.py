"""`/console`: the operator console, server-rendered by the root with its own keys.

Pages read what the API reads; actions call the API's own route functions (fail, replay,
approve, reject) with the signed-in caller, so they go through the same checks and the
same signed operator path. Errors are pages, never tracebacks: a missing session
redirects to sign-in, a refused action says why with its status.
"""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError

from gateway.auth import identify
from gateway.console import pages
from gateway.console.session import (
    CONSOLE_ROLES,
    COOKIE,
    LOGIN_COOKIE,
    ConsoleSession,
    SessionCodec,
)
from gateway.console.trail import span_widths
from gateway.mission_models import ApprovalId, ContentHash, MissionId, ReasonBody
from gateway.problems import ProblemError
from gateway.routers import approvals, artifacts, missions
from gateway.routers import releases as release_routes
from gateway.runtime import GatewayRuntime
from projections import queries

TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")
TEMPLATES.env.filters["span_widths"] = span_widths
STATIC_DIR = Path(__file__).parent / "static"
SAFE_NEXT = re.compile(r"^/console(/[A-Za-z0-9/_.:@?=&%+-]*)?$")
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self';"
    " script-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
NOTICES = {
    "approved": "Approved: the writeback may now run.",
    "rejected": "Rejected: the CRM stays untouched.",
    "failed": "The mission is marked failed; the reason is in its trail.",
    "replayed": "Replay requested: this is the new mission.",
    "signed_out": "Signed out.",
}


class SignInRequiredError(Exception):
    """No valid session: the browser is sent to sign in (and back)."""


class ConsoleRoute(APIRoute):
    """Turns what the API would answer as a problem document into a console page."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except SignInRequiredError:
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                back = target if request.method == "GET" and SAFE_NEXT.match(target) else ""
                return see_other(
                    "/console/login" + (f"?next={quote(back, safe='')}" if back else "")
                )
            except ProblemError as problem:
                return error_page(request, problem.status, problem.detail)
            except RequestValidationError as invalid:
                fields = "; ".join(
                    f"{'.'.join(str(p) for p in e['loc'][1:])}: {e['msg']}"
                    for e in invalid.errors()
                )
                return error_page(request, 422, f"invalid input: {fields}")

        return route


router = APIRouter(prefix="/console", include_in_schema=False, route_class=ConsoleRoute)


def runtime_of(request: Request) -> GatewayRuntime:
    runtime: GatewayRuntime = request.app.state.runtime
    return runtime


def codec_of(request: Request) -> SessionCodec:
    codec: SessionCodec = request.app.state.console_sessions
    return codec


def signed_in(request: Request) -> ConsoleSession:
    session = codec_of(request).load(request.cookies.get(COOKIE))
    if session is None:
        raise SignInRequiredError
    request.state.caller = session.caller
    return session


def acting(
    request: Request,
    session: Annotated[ConsoleSession, Depends(signed_in)],
    csrf_token: Annotated[str | None, Form(max_length=100)] = None,
) -> ConsoleSession:
    """A signed-in operator whose form carries the session's CSRF token."""
    if not session.csrf_matches(csrf_token):
        raise ProblemError(403, "csrf", "the form's CSRF token is missing or stale; reload")
    if not session.may_act:
        raise ProblemError(403, "forbidden", f"{session.caller.label} may look, not act")
    return session


Session = Annotated[ConsoleSession, Depends(signed_in)]
Acting = Annotated[ConsoleSession, Depends(acting)]
Reason = Annotated[str, Form(max_length=2_000)]
IdempotencyKey = Annotated[str | None, Form(max_length=200)]


def page(
    request: Request,
    template: str,
    context: dict[str, Any],
    session: ConsoleSession | None = None,
    status: int = 200,
) -> Response:
    notice = NOTICES.get(request.query_params.get("notice", ""))
    values = context | {"session": session, "notice": notice, "form_id": uuid.uuid4().hex}
    return TEMPLATES.TemplateResponse(
        request, template, values, status_code=status, headers=HEADERS
    )


def error_page(request: Request, status: int, detail: str) -> Response:
    session = codec_of(request).load(request.cookies.get(COOKIE))
    return page(request, "error.html", {"status": status, "detail": detail}, session, status)


def see_other(location: str) -> RedirectResponse:
    return RedirectResponse(location, status_code=303, headers=HEADERS)


def reason_body(reason: str) -> ReasonBody:
    try:
        return ReasonBody(reason=reason)
    except ValidationError as invalid:
        raise ProblemError(422, "invalid_reason", "reason: a reason is required") from invalid


@router.get("")
async def home() -> RedirectResponse:
    return see_other("/console/missions")


@router.get("/login")
async def login_form(
    request: Request, next: Annotated[str, Query(max_length=500)] = ""
) -> Response:
    token = secrets.token_urlsafe(24)
    response = page(request, "login.html", {"next": _safe_next(next), "login_token": token})
    response.set_cookie(
        LOGIN_COOKIE, token, max_age=600, path="/console", httponly=True, samesite="strict"
    )
    return response


@router.post("/login")
async def login(
    request: Request,
    key: Annotated[str, Form(max_length=500)] = "",
    login_token: Annotated[str, Form(max_length=100)] = "",
    next: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    """Exchange an operator or auditor key for a session cookie."""
    expected = request.cookies.get(LOGIN_COOKIE, "")
    if not expected or not secrets.compare_digest(expected, login_token):
        raise ProblemError(403, "csrf", "the sign-in form expired; open it again")
    keys = runtime_of(request).settings.api_keys
    try:
        caller = identify(keys, f"Bearer {key}")
    except ProblemError:
        return _login_refused(request, next, 401, "That key is not known to this root.")
    if caller.role not in CONSOLE_ROLES:
        refusal = f"A {caller.role} key cannot sign in; use an operator or auditor key."
        return _login_refused(request, next, 403, refusal)
    codec = codec_of(request)
    response = see_other(_safe_next(next) or "/console/missions")
    response.set_cookie(
        COOKIE,
        codec.dump(codec.open(key.strip())),
        max_age=codec.ttl_s,
        path="/console",
        httponly=True,
        samesite="strict",
        secure=runtime_of(request).settings.VELOCITY_ENV != "local",
    )
    response.delete_cookie(LOGIN_COOKIE, path="/console")
    return response


def _login_refused(request: Request, next: str, status: int, message: str) -> Response:
    token = request.cookies.get(LOGIN_COOKIE, "")
    context = {"next": _safe_next(next), "login_token": token, "refused": message}
    return page(request, "login.html", context, status=status)


def _safe_next(target: str) -> str:
    return target if SAFE_NEXT.match(target) and "//" not in target else ""


@router.post("/logout")
async def logout(
    session: Session, csrf_token: Annotated[str, Form(max_length=100)] = ""
) -> Response:
    if not session.csrf_matches(csrf_token):
        raise ProblemError(403, "csrf", "the form's CSRF token is missing or stale; reload")
    response = see_other("/console/login?notice=signed_out")
    response.delete_cookie(COOKIE, path="/console")
    return response


@router.get("/missions")
async def missions_list(
    request: Request, session: Session, filters: Annotated[pages.MissionFilters, Query()]
) -> Response:
    context = await pages.missions_page(runtime_of(request), filters)
    return page(request, "missions.html", context, session)


@router.get("/missions/{mission_id}")
async def mission_detail(mission_id: MissionId, request: Request, session: Session) -> Response:
    return await mission_view(request, session, mission_id, printable=False)


@router.get("/missions/{mission_id}/print")
async def mission_printable(mission_id: MissionId, request: Request, session: Session) -> Response:
    return await mission_view(request, session, mission_id, printable=True)


async def mission_view(
    request: Request, session: ConsoleSession, mission_id: str, printable: bool
) -> Response:
    context = await pages.mission_page(runtime_of(request), mission_id)
    if context is None:
        raise ProblemError(404, "mission_not_found", f"no mission {mission_id}")
    shown = pages.history_rows(context["trail"].links, printable)
    return page(
        request, "mission.html", context | {"printable": printable, "history": shown}, session
    )


@router.get("/missions/{mission_id}/trail.json")
async def mission_export(mission_id: MissionId, request: Request, session: Session) -> Response:
    runtime = runtime_of(request)
    await missions.existing(runtime, mission_id)
    trail = await pages.trail_of(runtime, mission_id)
    disposition = f'attachment; filename="mission-{mission_id}-trail.json"'
    return JSONResponse(trail.export(), headers=HEADERS | {"Content-Disposition": disposition})


@router.post("/missions/{mission_id}/{action}")
async def mission_action(
    mission_id: MissionId,
    action: Annotated[str, PathParam(pattern="^(fail|replay)$")],
    request: Request,
    session: Acting,
    reason: Reason = "",
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Fail a working mission, or replay a terminal one as a new mission (operator)."""
    body = reason_body(reason)
    if action == "fail":
        await missions.fail_mission(
            mission_id, body, request, Response(), session.caller, idempotency_key
        )
        return see_other(f"/console/missions/{mission_id}?notice=failed")
    accepted = await missions.replay_mission(
        mission_id, body, request, Response(), session.caller, idempotency_key
    )
    return see_other(f"/console/missions/{accepted.mission_id}?notice=replayed")


@router.get("/evidence/{content_hash}")
async def evidence_content(
    content_hash: ContentHash, request: Request, session: Session
) -> Response:
    """A stored artifact's bytes, as the API serves them (sandboxed, never sniffed)."""
    return await artifacts.read_artifact(content_hash, request, session.caller)


@router.get("/approvals")
async def approvals_list(
    request: Request, session: Session, after: Annotated[pages.Cursor | None, Query()] = None
) -> Response:
    context = await pages.approvals_page(runtime_of(request), after)
    return page(request, "approvals.html", context, session)


@router.get("/approvals/backlog")
async def approvals_backlog(request: Request, session: Session) -> Response:
    """The queue's count line alone, which its page polls."""
    context = await pages.approvals_backlog(runtime_of(request))
    return page(request, "approvals_backlog.html", context, session)


@router.post("/approvals/{approval_id}/{decision}")
async def approval_decide(
    approval_id: ApprovalId,
    decision: Annotated[str, PathParam(pattern="^(approve|reject)$")],
    request: Request,
    session: Acting,
    reason: Reason = "",
) -> Response:
    body = reason_body(reason)
    decide = approvals.approve if decision == "approve" else approvals.reject
    await decide(approval_id, body, request, Response(), session.caller)
    return see_other(f"/console/approvals?notice={decision}d")


@router.get("/health")
async def health(request: Request, session: Session) -> Response:
    return page(request, "health.html", await pages.health_page(runtime_of(request)), session)


@router.get("/dashboards")
async def dashboards(request: Request, session: Session) -> Response:
    boards = await pages.dashboards_page(runtime_of(request))
    return page(request, "dashboards.html", {"dashboards": boards}, session)


@router.get("/releases")
async def releases(request: Request, session: Session) -> Response:
    """Gate runs with every check's evidence, and this environment's rollout."""
    runtime = runtime_of(request)
    runs = await queries.gate_runs(runtime.database, None, 10)
    rollout = await release_routes.get_rollout(request, session.caller)
    return page(request, "releases.html", {"runs": runs, "rollout": rollout}, session)
