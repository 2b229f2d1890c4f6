"""Research through an MCP server on the real stack: the colony calls a real MCP server (the
SDK's FastMCP on 127.0.0.1), its documents become the mission's evidence, the policy's
decision on the MCP tool is recorded, and a server down or a forbidden tool fails the
mission legibly. One stack, whose colony is restarted once with another MCP tool."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Infrastructure
from tests.e2e.conftest import AUDITOR_KEY, RunningStack, start_stack, until
from tests.mcp_servers import MARK, KnowledgeBase

pytestmark = pytest.mark.e2e
ORACLE = {
    "type": "oracle",
    "mode": "assisted",
    "objective": "What is the main delivery risk of atlas?",
    "project_id": "atlas",
}


def ended(client: httpx.Client, mission_id: str) -> dict[str, Any] | None:
    mission = client.get(f"/missions/{mission_id}").json()
    return mission if mission.get("status") in ("completed", "failed") else None


def run_mission(client: httpx.Client) -> str:
    accepted = client.post("/missions", json=ORACLE)
    assert accepted.status_code == 202, accepted.text
    return str(accepted.json()["mission_id"])


def failing_check(stack: RunningStack, name: str, timeout_s: float = 30) -> dict[str, Any]:
    """The colony's /readyz once it answers with check `name` failing. Ask /readyz from a
    thread: the colony's check calls the MCP server this test's event loop serves."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            ready = dict(httpx.get(f"{stack.colony_url}/readyz", timeout=5).json())
            if name in ready["failing"]:
                return ready
        time.sleep(0.2)
    raise AssertionError(f"{name} never failed")


async def test_research_through_an_mcp_server_becomes_evidence_and_fails_legibly(
    infrastructure: Infrastructure, tmp_path: Path
) -> None:
    knowledge_base = KnowledgeBase()
    await knowledge_base.start()
    stack = await start_stack(
        infrastructure,
        tmp_path,
        COLONY_REACTORS="true",
        RESEARCH_PROVIDER=f"mcp+{knowledge_base.url}",
        TASK_TIMEOUT_MS="6000",
        PROVIDER_RETRIES="1",
    )
    try:
        with stack.client() as client, stack.client(AUDITOR_KEY) as auditor:
            answered = run_mission(client)
            done = await until(lambda: ended(client, answered), 60)
            evidence = client.get(f"/missions/{answered}/evidence").json()
            stored = {
                a["source"]: client.get(f"/artifacts/{a['content_hash']}").text
                for a in evidence["artifacts"]
                if a["kind"] == "source"
            }
            calls = list(knowledge_base.calls)

            await knowledge_base.stop()
            unreachable = run_mission(client)
            failed = await until(lambda: ended(client, unreachable), 60)
            failed_tasks = client.get(f"/missions/{unreachable}/evidence").json()["tasks"]
            history = auditor.get(f"/missions/{unreachable}/events", params={"limit": 500})

            await knowledge_base.start()
            colony = stack.supervisor.service("colony")
            await asyncio.to_thread(colony.stop)
            forbidden_tool = {"MCP_RESEARCH_TOOL": "delete_records"}
            colony.start(stack.supervisor.env | forbidden_tool, stack.log_dir)
            ready = await asyncio.to_thread(failing_check, stack, "research_tools")
            root_ready = await asyncio.to_thread(httpx.get, f"{stack.root_url}/readyz", timeout=10)
            forbidden = run_mission(client)
            denied = await until(lambda: ended(client, forbidden), 60)
            decisions = client.get(f"/missions/{forbidden}/evidence").json()["policy_decisions"]
    finally:
        await asyncio.to_thread(stack.supervisor.stop_all)
        await knowledge_base.stop()

    assert done["status"] == "completed", done["failure_reason"]
    assert calls == [{"query": ORACLE["objective"], "scope": "project:atlas"}]
    assert set(stored) == {"mcp://kb/atlas/risk-register", "mcp://kb/atlas/steering"}
    assert stored["mcp://kb/atlas/risk-register"] == (
        f"atlas risk register\n\nThe main delivery risk of atlas is the {MARK}."
    )
    assert MARK in done["output"]
    cited = {
        e["content_hash"]
        for c in evidence["reviewer_packet"]["packet"]["claims"]
        for e in c["evidence"]
    }
    assert cited and cited <= {a["content_hash"] for a in evidence["artifacts"]}
    assert {
        (d["task_id"], d["tool"], d["decision"], d["rule_id"]) for d in evidence["policy_decisions"]
    } >= {
        ("gather_context", "project_search", "allowed", "oracle.tools"),
        ("gather_context", "mcp:search", "allowed", "oracle.mcp_tools"),
    }

    assert failed["status"] == "failed"
    assert "gather_context" in failed["failure_reason"]
    assert "mcp-research:127.0.0.1" in failed["failure_reason"]
    errors = [t["error"] for t in failed_tasks if t["task_id"] == "gather_context"]
    assert errors and "mcp-research:127.0.0.1" in errors[0], failed_tasks
    first = next(e for e in history.json()["events"] if e["event_type"] == "TaskFailed")
    assert first["data"]["error"] == (
        "mcp-research:127.0.0.1: project_search failed after 2 attempts"
        " (error: MCP server unreachable (ConnectError: All connection attempts failed))"
    )

    missing = (
        "the MCP research server has no tool 'delete_records' (MCP_RESEARCH_TOOL);"
        " it has: failing, plain, search"
    )
    assert ready["checks"]["research_tools"]["detail"] == missing
    assert f"research_tools: {missing}" in root_ready.json()["checks"]["colony"]["detail"]
    assert denied["status"] == "failed"
    assert denied["failure_reason"] == (
        "policy denied mcp:delete_records (mcp.tool_not_permitted):"
        " mcp:delete_records is not an MCP tool of oracle"
    )
    assert ("mcp:delete_records", "denied", "mcp.tool_not_permitted") in {
        (d["tool"], d["decision"], d["rule_id"]) for d in decisions
    }
    assert len(knowledge_base.calls) == 1, "neither later mission reached the server's search"
