"""Name-based ids: the text of a version 5 UUID (RFC 9562) of a name in a namespace.

Event ids, the colony's command ids and the root's mission ids are all derived this way,
so a step taken again yields the id it had. `uuid.uuid5` builds a UUID object per call
and was a measurable share of the decider's and the colony's hot paths; this builds the
same text from the SHA-1 digest directly.
"""

from __future__ import annotations

import hashlib
import uuid


def name_id(namespace: uuid.UUID, name: str) -> str:
    """`str(uuid.uuid5(namespace, name))`, written from the SHA-1 hex digest: its version
    digit set to 5 and its variant digit's top bits to 10, as the UUID object would."""
    h = hashlib.sha1(namespace.bytes + name.encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:32]}"


_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}
"""The variant digit (RFC 9562's 10xx) for each hex digit the digest has there."""
