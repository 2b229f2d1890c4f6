"""`velocity gates run` against the running stack, as an operator would run it: every
check passes, the run is in the ledger (GET /releases/gates), its signed report exports,
and the console shows it."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import AUDITOR_KEY, RunningStack

pytestmark = pytest.mark.e2e


async def velocity(*args: str) -> subprocess.CompletedProcess[str]:
    """The CLI as a user runs it (its own process, its own environment)."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("GATES_")}
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "infra.cli", *args],
        capture_output=True,
        text=True,
        timeout=600,
        env=environment,
        check=False,
    )


async def test_the_gates_pass_against_the_stack_and_the_run_is_in_the_ledger(
    colony_stack: RunningStack, tmp_path: Path
) -> None:
    ran = await velocity("gates", "run", "--env", "local", "--root", colony_stack.root_url)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    lines = ran.stdout.splitlines()
    assert sum(" PASS " in line for line in lines) == 14, ran.stdout
    assert not any(" FAIL " in line for line in lines)
    summary = json.loads(lines[-1])
    with colony_stack.client(AUDITOR_KEY) as auditor:
        runs = auditor.get("/releases/gates").json()["runs"]
        trail = auditor.get(f"/missions/release-gates:{summary['run_id']}/events")
    run = next(r for r in runs if r["run_id"] == summary["run_id"])
    assert (run["passed"], run["checks"], run["failed"]) == (True, 14, 0)
    assert {check["gate"] for check in run["results"]} == {1, 2, 3, 4}
    assert all(check["evidence"] for check in run["results"])
    assert run["started_by"] == "operator:local-operator"
    report = tmp_path / "report.json"
    exported = await velocity(
        "gates", "export", summary["run_id"], "--root", colony_stack.root_url, "--out", str(report)
    )
    assert exported.returncode == 0, exported.stderr
    signed = json.loads(report.read_text())
    assert signed["document"]["run_id"] == summary["run_id"] and signed["key_id"] == "local"
    assert trail.status_code == 404, "a release stream is no mission"
    console = await console_page(colony_stack, "/console/releases")
    assert summary["run_id"] in console and console.count(">PASS<") >= 14


async def console_page(stack: RunningStack, path: str) -> str:
    """A console page as a signed-in auditor sees it."""
    async with httpx.AsyncClient(base_url=stack.root_url, timeout=10) as browser:
        form = await browser.get("/console/login")
        token = re.search(r'name="login_token" value="([^"]+)"', form.text)
        assert token
        await browser.post("/console/login", data={"key": AUDITOR_KEY, "login_token": token[1]})
        return (await browser.get(path)).text
