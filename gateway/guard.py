"""The request guard: who is calling, and how much they may send, before any body is read.

An ASGI middleware in front of the whole app. Outside the public paths it identifies the
caller from the bearer key and refuses an unknown one with 401 without reading the body;
it refuses a body larger than the route's limit with 413, up front when Content-Length
says so, and while it streams otherwise, so the root never buffers more than the limit
(a 50 MB upload costs it at most the limit in memory).
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.auth import identify
from gateway.keys import Caller
from gateway.problems import ProblemError, problem_response

PUBLIC_PATHS = frozenset(
    {"/healthz", "/readyz", "/metrics", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"}
)
CONSOLE = "/console"
"""The console authenticates by its session cookie (gateway/console/session.py), not by
bearer keys; body limits apply to it as everywhere."""


@dataclass(frozen=True)
class BodyLimits:
    """Largest body per path prefix; `default` everywhere else."""

    default: int
    by_prefix: tuple[tuple[str, int], ...] = ()

    def for_path(self, path: str) -> int:
        return next(
            (limit for prefix, limit in self.by_prefix if path.startswith(prefix)), self.default
        )


class TooLarge:
    """The 413 answer for a body over `limit`."""

    def __init__(self, limit: int) -> None:
        self.limit = limit

    async def send(self, scope: Scope, send: Send) -> None:
        response = problem_response(
            413,
            "payload_too_large",
            f"this route takes bodies up to {self.limit} bytes",
            scope.get("path"),
            {"Connection": "close"},
        )
        await response(scope, _no_more_input, send)


async def _no_more_input() -> Message:
    return {"type": "http.disconnect"}


class RequestGuard:
    """Authentication and body limits ahead of routing (see the module docstring)."""

    def __init__(self, app: ASGIApp, keys: dict[str, Caller], limits: BodyLimits) -> None:
        self.app = app
        self.keys = keys
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] not in PUBLIC_PATHS and not _in_console(scope["path"]):
            try:
                caller = identify(self.keys, _header(scope, b"authorization"))
            except ProblemError as refused:
                response = problem_response(
                    refused.status,
                    refused.code,
                    refused.detail,
                    scope["path"],
                    refused.headers | {"Connection": "close"},
                )
                await response(scope, _no_more_input, send)
                return
            scope.setdefault("state", {})["caller"] = caller
        too_large = TooLarge(self.limits.for_path(scope["path"]))
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > too_large.limit:
            await too_large.send(scope, send)
            return
        await _LimitedExchange(self.app, scope, receive, send, too_large).run()


class _LimitedExchange:
    """One request whose body is counted as it streams; past the limit the client gets
    413 and the app sees the client leave (its own answer, if any, is dropped)."""

    def __init__(
        self, app: ASGIApp, scope: Scope, receive: Receive, send: Send, too_large: TooLarge
    ) -> None:
        self.app, self.scope, self.receive, self.send = app, scope, receive, send
        self.too_large = too_large
        self.received = 0
        self.started = False
        self.refused = False

    async def run(self) -> None:
        await self.app(self.scope, self._receive, self._send)

    async def _receive(self) -> Message:
        if self.refused:
            return {"type": "http.disconnect"}
        message = await self.receive()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.too_large.limit:
                self.refused = True
                if not self.started:
                    await self.too_large.send(self.scope, self.send)
                return {"type": "http.disconnect"}
        return message

    async def _send(self, message: Message) -> None:
        if self.refused:
            return
        if message["type"] == "http.response.start":
            self.started = True
        await self.send(message)


def _in_console(path: str) -> bool:
    return path == CONSOLE or path.startswith(CONSOLE + "/")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return None
