"""Console sessions: signed, expiring, bound to a key that must still exist."""

from __future__ import annotations

from gateway.console.session import SessionCodec, session_secret
from gateway.keys import parse_api_keys

KEYS = "operator:alice:alice-key,auditor:bob:bob-key,service:svc:svc-key"


def codec(keys: str = KEYS, ttl_s: int = 3_600, secret: str = "s") -> SessionCodec:
    return SessionCodec(secret, ttl_s, parse_api_keys(keys))


def test_a_session_round_trips_with_its_caller_and_csrf_token() -> None:
    opened = codec().open("alice-key")
    loaded = codec().load(codec().dump(opened))
    assert loaded is not None
    assert (loaded.caller.label, loaded.may_act) == ("operator:alice", True)
    assert loaded.csrf_matches(opened.csrf_token)
    assert not loaded.csrf_matches(None) and not loaded.csrf_matches("x")


def test_an_auditor_may_look_not_act() -> None:
    session = codec().load(codec().dump(codec().open("bob-key")))
    assert session is not None and not session.may_act


def test_forged_expired_or_orphaned_sessions_are_refused() -> None:
    value = codec().dump(codec().open("alice-key"))
    assert codec(secret="other").load(value) is None, "signed with another secret"
    assert codec().load(value[:-2] + "xx") is None, "tampered"
    assert codec(ttl_s=-1).load(value) is None, "expired"
    assert codec("auditor:bob:bob-key").load(value) is None, "its key was removed"
    assert codec().load(None) is None and codec().load("") is None


def test_the_derived_secret_follows_the_keys_and_a_configured_one_wins() -> None:
    assert session_secret(None, KEYS) == session_secret(None, KEYS)
    assert session_secret(None, KEYS) != session_secret(None, KEYS + ",auditor:c:c-key")
    assert session_secret("configured", KEYS) == "configured"
    assert "alice-key" not in session_secret(None, KEYS)
