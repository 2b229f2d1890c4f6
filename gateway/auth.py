"""Bearer-key authentication and role checks. Keys are compared in constant time and
never logged; a missing or unknown key is 401, a known key with the wrong role 403.

The request guard (gateway/guard.py) identifies the caller before any body is read;
`require` only checks the role of the caller it found."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from fastapi import Request

from gateway.keys import Caller, Role
from gateway.problems import ProblemError

BEARER = {"WWW-Authenticate": "Bearer"}


def identify(keys: dict[str, Caller], authorization: str | None) -> Caller:
    """The caller a bearer key belongs to, or a 401 problem."""
    scheme, _, presented = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        raise ProblemError(401, "unauthenticated", "send Authorization: Bearer <key>", BEARER)
    offered = presented.strip().encode(errors="replace")
    match: Caller | None = None
    for key, caller in keys.items():
        if hmac.compare_digest(key.encode(), offered):
            match = caller
    if match is None:
        raise ProblemError(401, "unauthenticated", "unknown API key", BEARER)
    return match


def require(*roles: Role) -> Callable[[Request], Awaitable[Caller]]:
    """A dependency admitting callers whose role is one of `roles`."""

    async def dependency(request: Request) -> Caller:
        caller: Caller | None = getattr(request.state, "caller", None)
        if caller is None:
            raise ProblemError(401, "unauthenticated", "send Authorization: Bearer <key>", BEARER)
        if caller.role not in roles:
            raise ProblemError(
                403, "forbidden", f"role {caller.role} may not do this (needs one of {roles})"
            )
        return caller

    return dependency
