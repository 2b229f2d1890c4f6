"""Text the ledger can carry end to end: no NUL, no lone surrogates. Pure.

PostgreSQL `text` and `jsonb` cannot hold U+0000, and a lone surrogate (U+D800-U+DFFF)
has no UTF-8 encoding, so Avro cannot write it. Either would stop a consumer for good if
it reached an event, so the root refuses them (422 naming the field), the decider
dead-letters a command carrying them, and the colony cleans provider output of them,
saying how much it cleaned.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Annotated, Any

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

    Every command and event passes here, so the common case (nothing wrong) is one regex
    search over all the strings at once; paths are worked out only for a finding."""
    texts: list[str] = []
    _collect(value, texts)
    if UNSTORABLE.search("\n".join(texts)) is None:
        return None
    for where, text in _strings(value, path):
        problem = unstorable(text)
        if problem is not None:
            return where or "value", problem
    return None


ESCAPED_UNSTORABLE = re.compile(r"\\x00|\\ud[89a-f]")
"""NUL and lone surrogates as `repr` writes them."""


def surely_storable(document: Any) -> bool:
    """Whether `document`, plain data as a decoder returns it (dicts, lists, strings,
    numbers, bytes, datetimes), surely holds no unstorable text: `repr` (written in C for
    those types) writes NUL as \\x00 and a lone surrogate as \\udXXX, so one search of it
    answers for the whole document. A hit only says maybe (a backslash before "x00" in
    the text, a zero in bytes): `first_unstorable` then says for sure. The decider checks
    every command; walking each one's strings in Python took ~11 % of its CPU under load
    (a thread-time profile, 600 missions) and is now done only after a hit."""
    return ESCAPED_UNSTORABLE.search(repr(document)) is None


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


def _collect(value: Any, texts: list[str]) -> None:
    """Every string in `value`, keys included, onto `texts`. A mapping's or list's own
    strings and scalars are taken in its loop: a call per leaf was most of the cost."""
    if isinstance(value, str):
        texts.append(value)
    elif isinstance(value, BaseModel):
        _collect(value.__dict__, texts)
    elif isinstance(value, dict):
        texts.extend(key for key in value if isinstance(key, str))
        _collect_all(value.values(), texts)
    elif isinstance(value, list | tuple):
        _collect_all(value, texts)


def _collect_all(items: Iterable[Any], texts: list[str]) -> None:
    for item in items:
        if isinstance(item, str):
            texts.append(item)
        elif not isinstance(item, _LEAVES):
            _collect(item, texts)


_LEAVES = (int, float, datetime, bytes, type(None))
"""Values with no text in them (bool is an int)."""
