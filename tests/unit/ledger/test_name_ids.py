"""Name-based ids are the standard's version 5 UUIDs: any tool recomputes them."""

from __future__ import annotations

import uuid
from typing import Literal

from hypothesis import given
from hypothesis import strategies as st

from ledger.name_ids import name_id

# Any name that has a UTF-8 form (what ids are derived from: mission and command ids).
SURROGATES: tuple[Literal["Cs"]] = ("Cs",)
names = st.text(st.characters(blacklist_categories=SURROGATES))


@given(st.uuids(), names)
def test_a_name_id_is_the_uuid5_of_the_name(namespace: uuid.UUID, name: str) -> None:
    assert name_id(namespace, name) == str(uuid.uuid5(namespace, name))


def test_a_name_id_reads_back_as_a_version_5_uuid() -> None:
    parsed = uuid.UUID(name_id(uuid.NAMESPACE_URL, "mission/1/command"))
    assert (parsed.version, parsed.variant) == (5, uuid.RFC_4122)
