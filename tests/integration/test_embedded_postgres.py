"""The embedded PostgreSQL the stack and the tests start: a failed start says why."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.postgres import PostgresStartError, start_postgres

pytestmark = pytest.mark.integration


def test_a_second_server_on_the_same_data_directory_fails_with_its_log(tmp_path: Path) -> None:
    first = start_postgres(tmp_path, tmp_path / "first.log", durable=False)
    try:
        with pytest.raises(PostgresStartError) as refused:
            start_postgres(tmp_path, tmp_path / "second.log", durable=False)
    finally:
        first.stop()
    message = str(refused.value)
    assert "another server using this data directory" in message
    assert "second.log ends:" in message and 'lock file "postmaster.pid" already exists' in message
