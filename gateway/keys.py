"""API keys and the callers they stand for: a role and a stable name.

`VELOCITY_API_KEYS` is a comma-separated list of `role:name:key` (or the older `role:key`,
whose name is derived from the key's hash). The name, not the key's position in the
list, is what the immutable trail records (`actor = role:name`) and what mission ids
derived from Idempotency-Keys depend on, so reordering or rotating keys changes neither.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Literal, get_args

from ledger.authority import NAME_PATTERN

Role = Literal["service", "colony", "operator", "auditor"]
ROLES: tuple[Role, ...] = get_args(Role)
NAME = re.compile(NAME_PATTERN)

# Documented, well-known keys for a laptop; refused outside VELOCITY_ENV=local.
LOCAL_API_KEYS = (
    "service:local-service:local-service-key,"
    "colony:local-colony:local-colony-root-key,"
    "operator:local-operator:local-operator-key,"
    "auditor:local-auditor:local-auditor-key"
)


@dataclass(frozen=True)
class Caller:
    """Who is calling: a role and a stable, non-secret name."""

    role: Role
    name: str

    @property
    def label(self) -> str:
        """The ledger's `actor` for this caller, e.g. `operator:alice`."""
        return f"{self.role}:{self.name}"


def _entry(position: int, entry: str) -> tuple[str, Caller]:
    parts = [part.strip() for part in entry.split(":")]
    if len(parts) not in (2, 3) or not parts[-1]:
        raise ValueError(f"entry {position} is not role:name:key (or role:key)")
    role, key = parts[0], parts[-1]
    if role not in ROLES:
        raise ValueError(f"entry {position} has unknown role {role!r} (use {ROLES})")
    name = parts[1] if len(parts) == 3 else f"key-{hashlib.sha256(key.encode()).hexdigest()[:8]}"
    if not NAME.match(name):
        raise ValueError(f"entry {position} has a name that is not [A-Za-z0-9._@-], 1-64 long")
    return key, Caller(role=role, name=name)


def parse_api_keys(raw: str) -> dict[str, Caller]:
    """key -> caller; ValueError naming the entry (never the key) when one is malformed."""
    keys: dict[str, Caller] = {}
    for position, entry in enumerate(filter(None, (p.strip() for p in raw.split(","))), 1):
        key, caller = _entry(position, entry)
        if key in keys:
            raise ValueError(f"entry {position} repeats the key of an earlier entry")
        keys[key] = caller
    if not keys:
        raise ValueError("no role:name:key entries")
    return keys


def keys_of_role(raw: str, role: Role) -> list[str]:
    """The keys of `raw` (VELOCITY_API_KEYS) that carry `role`."""
    return [key for key, caller in parse_api_keys(raw).items() if caller.role == role]
