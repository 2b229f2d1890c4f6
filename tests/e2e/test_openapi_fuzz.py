"""Schemathesis over the root's OpenAPI document, every check on, NUL bytes allowed, once per
role: no generated request makes the root fail, every answer's status, content type,
headers and body are documented, what the schema allows is accepted and what it forbids
is refused. Run through schemathesis' own CLI (examples, coverage, fuzzing and stateful
phases), as a user would run it against a deployment."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import AUDITOR_KEY, COLONY_KEY, OPERATOR_KEY, SERVICE_KEY, RunningStack

pytestmark = pytest.mark.e2e
EXAMPLES_PER_OPERATION = 30


@pytest.mark.parametrize("key", [OPERATOR_KEY, SERVICE_KEY, COLONY_KEY, AUDITOR_KEY])
def test_schemathesis_with_every_check_finds_nothing(
    stack: RunningStack, key: str, tmp_path: Path
) -> None:
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "run",
        f"{stack.root_url}/openapi.json",
        "--checks",
        "all",
        "--header",
        f"Authorization: Bearer {key}",
        "--generation-allow-x00",
        "true",
        "--max-examples",
        str(EXAMPLES_PER_OPERATION),
        "--generation-database",
        "none",
        "--no-color",
    ]
    run = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert "passed" in run.stdout
