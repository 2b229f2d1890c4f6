"""Bearer-key authentication and role checks. Keys are compared in constant time and
never logged; a missing or unknown key is 401, a known key with the wrong role 403."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import Request

from gateway.problems import ProblemError
from gateway.settings import Role


@dataclass(frozen=True)
class Caller:
    """Who is calling: their role, and a stable non-secret label for the ledger's `actor`."""

    role: Role
    label: str


def identify(keys: dict[str, Role], authorization: str | None) -> Caller:
    """The caller a bearer key belongs to, or a 401 problem."""
    scheme, _, presented = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        raise ProblemError(
            401,
            "unauthenticated",
            "send Authorization: Bearer <key>",
            headers={"WWW-Authenticate": "Bearer"},
        )
    match: Caller | None = None
    for index, (key, role) in enumerate(keys.items()):
        if hmac.compare_digest(key.encode(), presented.strip().encode()):
            match = Caller(role=role, label=f"{role}:key{index + 1}")
    if match is None:
        raise ProblemError(
            401, "unauthenticated", "unknown API key", headers={"WWW-Authenticate": "Bearer"}
        )
    return match


def require(*roles: Role) -> Callable[[Request], Awaitable[Caller]]:
    """A dependency admitting callers whose role is one of `roles`."""

    async def dependency(request: Request) -> Caller:
        caller = identify(request.app.state.runtime.api_keys, request.headers.get("authorization"))
        if caller.role not in roles:
            raise ProblemError(
                403, "forbidden", f"role {caller.role} may not do this (needs one of {roles})"
            )
        return caller

    return dependency
