"""`velocity stack run` as a user runs it: up, used, Ctrl-C, nothing left, up again."""

from __future__ import annotations

import itertools
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from infra.processes import free_port
from infra.stack import wait_until_ready
from tests.e2e.conftest import SERVICE_KEY

pytestmark = pytest.mark.e2e
AUTH = {"Authorization": f"Bearer {SERVICE_KEY}"}
CRM = {
    "type": "crm",
    "mode": "assisted",
    "objective": "Qualify Northwind Traders",
    "lead": {"company": "Northwind Traders", "contact": "Ana Trujillo"},
}


def children_of(pid: int) -> set[int]:
    """Every descendant process of `pid`, from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry.name)] = int(fields[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier}
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def run_stack(data_dir: Path, root_port: int) -> subprocess.Popen[bytes]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "KAFKA_TOPIC_PREFIX")
    }
    env |= {
        "VELOCITY_DATA_DIR": str(data_dir),
        "ROOT_PORT": str(root_port),
        "PORT": str(free_port()),
        "KAFKA_SESSION_TIMEOUT_MS": "6000",
    }
    env["COLONY_SERVICE_BASE_URL"] = f"http://127.0.0.1:{env['PORT']}"
    return subprocess.Popen(
        [sys.executable, "-m", "infra.cli", "stack", "run"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(data_dir.parent / "stack.err", "ab"),
    )


def interrupt(stack: subprocess.Popen[bytes]) -> set[int]:
    """Ctrl-C the stack; return the processes it had, for the caller to check."""
    descendants = children_of(stack.pid)
    stack.send_signal(signal.SIGINT)
    assert stack.wait(60) == 0
    return descendants


def assert_clean_logs(data_dir: Path) -> None:
    """A clean start and stop log no ERROR and no traceback, in the stack's own output or
    any service's log: nothing an operator should act on happened."""
    logs = [data_dir.parent / "stack.err", *(data_dir / "logs").glob("*.log")]
    for log in logs:
        text = log.read_text(errors="replace")
        assert "Traceback" not in text, log.name
        assert not [line for line in text.splitlines() if " ERROR " in line], log.name


def assert_says_what_starts_where(stack_err: Path, root: str) -> None:
    """The first line says what starts where; once ready, the three URLs a user needs."""
    lines = stack_err.read_text().splitlines()
    assert "starting the local stack: an embedded Kafka-compatible broker" in lines[0]
    assert f"the root API ({root})" in lines[0]
    ready = next(line for line in lines if " ready: " in line)
    assert f"root API {root}" in ready
    assert f"API docs {root}/docs" in ready and f"operator console {root}/console" in ready
    assert not [line for line in lines if re.search(r"\{'service'|\}$", line)], "dict tails"


def test_a_second_ctrl_c_forces_the_stop_and_leaves_nothing(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    root_port = free_port()
    stack = run_stack(data_dir, root_port)
    assert wait_until_ready(f"http://127.0.0.1:{root_port}", 90)
    descendants = children_of(stack.pid)
    started = time.monotonic()
    stack.send_signal(signal.SIGINT)
    time.sleep(0.3)
    stack.send_signal(signal.SIGINT)
    assert stack.wait(30) == 0
    assert time.monotonic() - started < 10, "the second Ctrl-C did not force the stop"
    time.sleep(0.5)
    assert not [pid for pid in descendants if alive(pid)], "processes left behind"


def wait_for(probe, timeout_s: float = 60):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError("condition not met in time")


def mission(root: str, mission_id: str, key: str = SERVICE_KEY) -> dict[str, Any]:
    return dict(
        httpx.get(
            f"{root}/missions/{mission_id}", headers={"Authorization": f"Bearer {key}"}
        ).json()
    )


def test_stack_runs_stops_clean_and_comes_back_with_its_history(tmp_path: Path) -> None:
    """A CRM mission stops at approval; the stack is stopped and started again (the
    embedded broker comes back empty and is restored from the archive); the approval
    then appends the mission's next events after its old ones, on an unbroken chain."""
    data_dir = tmp_path / "data"
    root_port = free_port()
    root = f"http://127.0.0.1:{root_port}"
    first = run_stack(data_dir, root_port)
    try:
        assert wait_until_ready(root, 90), (tmp_path / "stack.err").read_text()[-3000:]
        posted = httpx.post(
            f"{root}/missions", json=CRM, headers=AUTH | {"Idempotency-Key": "lifecycle-1"}
        )
        mission_id = posted.json()["mission_id"]
        before = wait_for(
            lambda: (m := mission(root, mission_id))["status"] == "awaiting_approval" and m
        )
    finally:
        descendants = interrupt(first)
    assert len(descendants) >= 6  # broker, postgres, four services
    time.sleep(0.5)
    assert not [pid for pid in descendants if alive(pid)], "processes left behind"
    assert_clean_logs(data_dir)
    assert_says_what_starts_where(tmp_path / "stack.err", root)

    second = run_stack(data_dir, root_port)
    try:
        assert wait_until_ready(root, 90), (tmp_path / "stack.err").read_text()[-3000:]
        assert mission(root, mission_id)["last_sequence"] == before["last_sequence"]
        retried = httpx.post(
            f"{root}/missions", json=CRM, headers=AUTH | {"Idempotency-Key": "lifecycle-1"}
        )
        assert retried.json()["mission_id"] == mission_id
        operator = {"Authorization": "Bearer local-operator-key"}
        pending = httpx.get(f"{root}/approvals", headers=operator).json()["pending"]
        approval = next(a for a in pending if a["mission_id"] == mission_id)
        httpx.post(
            f"{root}/approvals/{approval['approval_id']}/approve",
            json={"reason": "after restart"},
            headers=operator,
        )
        done = wait_for(lambda: (m := mission(root, mission_id))["status"] == "completed" and m)
        events = httpx.get(
            f"{root}/missions/{mission_id}/events", params={"limit": 500}, headers=AUTH
        ).json()["events"]
    finally:
        interrupt(second)
    assert_clean_logs(data_dir)
    assert done["last_sequence"] > before["last_sequence"]
    assert [e["sequence"] for e in events] == list(range(1, len(events) + 1))
    assert all(b["prev_hash"] == a["hash"] for a, b in itertools.pairwise(events))
    assert "CommandRejected" not in [e["event_type"] for e in events]
