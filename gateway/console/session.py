"""Console sessions: an operator's or auditor's key exchanged for a signed cookie.

The cookie carries the caller (role and name), a fingerprint of the key it was opened
with, a CSRF token and its age, signed with itsdangerous (HMAC-SHA256). Nothing is kept on
the server, so any replica with the same secret serves the session. A session dies when
it expires (CONSOLE_SESSION_TTL_S), when the browser signs out, or as soon as its key is
removed from VELOCITY_API_KEYS: every request checks the fingerprint against the keys
configured now. The cookie is HttpOnly and SameSite=Strict (Secure outside local), and
every action also needs the session's CSRF token in the form.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeTimedSerializer

from gateway.keys import Caller

COOKIE = "velocity_console"
LOGIN_COOKIE = "velocity_console_login"
CONSOLE_ROLES = ("operator", "auditor")


def fingerprint(key: str) -> str:
    """A non-secret handle on a key: enough to notice it was removed, useless to sign in."""
    return hashlib.sha256(b"velocity-console:" + key.encode()).hexdigest()[:24]


@dataclass(frozen=True)
class ConsoleSession:
    """Who is signed in, and the token their forms must carry."""

    caller: Caller
    key_fingerprint: str
    csrf_token: str

    @property
    def may_act(self) -> bool:
        """Auditors see everything and can do nothing."""
        return self.caller.role == "operator"

    def csrf_matches(self, presented: str | None) -> bool:
        return presented is not None and hmac.compare_digest(
            presented.encode(), self.csrf_token.encode()
        )


class SessionCodec:
    """Signs sessions into cookie values and reads them back, refusing stale or forged ones."""

    def __init__(self, secret: str, ttl_s: int, keys: dict[str, Caller]) -> None:
        self.ttl_s = ttl_s
        self.serializer = URLSafeTimedSerializer(secret, salt="velocity-console-session")
        self.callers = {fingerprint(key): caller for key, caller in keys.items()}

    def open(self, key: str) -> ConsoleSession:
        """A fresh session for the caller of `key` (already identified as operator/auditor)."""
        print_ = fingerprint(key)
        return ConsoleSession(self.callers[print_], print_, secrets.token_urlsafe(24))

    def dump(self, session: ConsoleSession) -> str:
        return self.serializer.dumps({"kf": session.key_fingerprint, "csrf": session.csrf_token})

    def load(self, value: str | None) -> ConsoleSession | None:
        """The session in `value`, or None if it is missing, forged, expired or its key gone."""
        if not value:
            return None
        try:
            data = self.serializer.loads(value, max_age=self.ttl_s)
        except BadSignature:
            return None
        if not isinstance(data, dict):
            return None
        caller = self.callers.get(str(data.get("kf")))
        if caller is None or caller.role not in CONSOLE_ROLES:
            return None
        return ConsoleSession(caller, str(data["kf"]), str(data.get("csrf", "")))


def session_secret(configured: str | None, api_keys: str) -> str:
    """CONSOLE_SESSION_SECRET, or one derived from the API keys: the same on every replica
    sharing them, and changed (signing every session out) whenever they change."""
    if configured:
        return configured
    return hashlib.sha256(b"velocity-console-secret:" + api_keys.encode()).hexdigest()
