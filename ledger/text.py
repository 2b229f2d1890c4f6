"""Text the ledger can carry end to end: no NUL, no lone surrogates. Pure.

PostgreSQL `text` and `jsonb` cannot hold U+0000, and a lone surrogate (U+D800-U+DFFF)
has no UTF-8 encoding, so Avro cannot write it. Either would stop a consumer for good if
it reached an event, so the root refuses them (422 naming the field), the decider
dead-letters a command carrying them, and the colony cleans provider output of them,
saying how much it cleaned.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Annotated, Any

import orjson
from pydantic import AfterValidator, BaseModel
from pydantic_core import PydanticCustomError

UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
REPLACEMENT = "\ufffd"


def unstorable(text: str) -> str | None:
    """Why `text` cannot be stored, or None when it can."""
    found = UNSTORABLE.search(text)
    if found is None:
        return None
    char = found.group()
    if char == "\x00":
        return f"contains a NUL character (U+0000) at position {found.start()}"
    return f"contains a lone surrogate (U+{ord(char):04X}) at position {found.start()}"


def storable(text: str) -> str:
    """`text` unchanged, or ValueError saying what cannot be stored (a pydantic validator)."""
    problem = unstorable(text)
    if problem is not None:
        raise ValueError(problem)
    return text


StorableStr = Annotated[str, AfterValidator(storable)]


def cleaned(text: str) -> tuple[str, int]:
    """`text` with every unstorable character replaced by U+FFFD, and how many were."""
    result, count = UNSTORABLE.subn(REPLACEMENT, text)
    return result, count


def cleaned_document(value: Any) -> tuple[Any, int]:
    """`value` (JSON-like) with every string cleaned, and how many characters were."""
    if isinstance(value, str):
        return cleaned(value)
    if isinstance(value, dict):
        pairs = [(cleaned_document(k), cleaned_document(v)) for k, v in value.items()]
        return {k: v for (k, _), (v, _) in pairs}, sum(a + b for (_, a), (_, b) in pairs)
    if isinstance(value, list | tuple):
        items = [cleaned_document(item) for item in value]
        return [item for item, _ in items], sum(count for _, count in items)
    return value, 0


def first_unstorable(value: Any, path: str = "") -> tuple[str, str] | None:
    """(field path, problem) of the first unstorable string anywhere in `value`.

    Every command passes here, so the common case (nothing wrong) is `surely_storable`'s
    one check in C; the strings are walked, with their paths, only after it says maybe."""
    if surely_storable(value):
        return None
    for where, text in _strings(value, path):
        problem = unstorable(text)
        if problem is not None:
            return where or "value", problem
    return None


def surely_storable(document: Any) -> bool:
    """Whether `document` (plain data as a decoder returns it, or models and their fields)
    surely holds no unstorable text (`storable_json_bytes`). Walking the strings in Python
    was ~8 % of the colony's CPU under load (every command it builds is checked), and
    `repr` with a search, the decider's check of each command it decodes, cost it four
    times this."""
    return storable_json_bytes(document) is not None


def storable_json_bytes(document: Any) -> bytes | None:
    """`document` as JSON when it surely holds no unstorable text, else None (maybe).

    orjson writes the whole document in C, refuses a lone surrogate and escapes NUL as
    \\u0000, so one pass answers for every string in it. A refusal or a hit only says
    maybe (a backslash before "u0000" in the text, a type orjson cannot write, a key that
    is not a string, an integer past 64 bits): `first_unstorable` then says for sure."""
    try:
        written = orjson.dumps(document, default=_plain)
    except orjson.JSONEncodeError:
        return None
    return None if b"\\u0000" in written else written


def _plain(value: Any) -> Any:
    """What orjson writes for a type it does not know: a model as its fields, bytes as
    nothing (they hold no text), a set as a list; anything else stops the quick check."""
    if isinstance(value, BaseModel):
        return value.__dict__
    if isinstance(value, bytes | bytearray | memoryview):
        return None
    if isinstance(value, set | frozenset):
        return list(value)
    raise TypeError(type(value).__name__)


def refuse_unstorable(fields: dict[str, Any]) -> None:
    """Raise the `unstorable_text` validation error for a model's fields, if one is."""
    found = first_unstorable(fields)
    if found is not None:
        raise PydanticCustomError(
            "unstorable_text", "{field}: {problem}", {"field": found[0], "problem": found[1]}
        )


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, BaseModel):
        yield from _strings(value.__dict__, path)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(key, f"{path}.{key}".strip(".") if isinstance(key, str) else path)
            yield from _strings(item, f"{path}.{key}".strip("."))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _strings(item, f"{path}.{index}".strip("."))
