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
    """`str(uuid.uuid5(namespace, name))`, without the UUID object."""
    digest = bytearray(hashlib.sha1(namespace.bytes + name.encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
