"""Canonical JSON: sorted keys, separators "," and ":", no ASCII escaping, UTF-8.

What the hash chain hashes (ledger/chain.py), what an operator's proof signs and what a
signed document covers (ledger/authority.py). The definition is Python's
`json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`, which
an auditor can run anywhere (docs/ledger.md).
"""

from __future__ import annotations

import json

import orjson


def canonical_json(document: object) -> bytes:
    """The canonical bytes of any JSON-like `document` (floats included)."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def record_json(document: object) -> bytes:
    """`canonical_json` of a ledger record's document, about ten times faster.

    orjson writes the same bytes as `json.dumps` for every type a command or event holds:
    strings, integers, booleans, null, lists and objects with string keys. Not for floats
    (`1e+16` against `1e16`), which is why no record has one (tests/unit/ledger/
    test_canonical_json.py checks both). What orjson refuses — a lone surrogate, an integer
    beyond 64 bits, a key that is not a string — goes through `canonical_json`, so the
    outcome is the same either way. The decider computes this for every event it records.
    """
    try:
        return orjson.dumps(document, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return canonical_json(document)
