"""The root as an MCP server (gateway/mcp_server.py), driven by the official SDK's client
over real HTTP, as an agent in a NemoClaw sandbox would: it lists the tools, opens a
mission and reads its verified trail; keys and roles hold; every call is recorded."""

from __future__ import annotations

import json
from typing import Any

import httpx

from gateway.mcp_server import arguments_hash
from tests.conftest import Isolated
from tests.integration.conftest import (
    archived,
    eventually,
    ledger_services,
    prepared,
    root_server,
)
from tests.mcp_client import answer, error_text, mcp_session

SERVICE = "local-service-key"
AUDITOR = "local-auditor-key"
COLONY = "local-colony-root-key"
TOOLS = {
    "create_mission",
    "mission_status",
    "verified_trail",
    "reviewer_packet",
    "approval_queue",
    "approve_writeback",
    "reject_writeback",
}
ORACLE = {
    "type": "oracle",
    "mode": "dry_run",
    "objective": "Atlas delivery risk?",
    "project_id": "atlas",
}


async def test_an_agent_lists_the_tools_opens_a_mission_and_reads_its_verified_trail(
    isolated: Isolated,
) -> None:
    await prepared(isolated)
    mission = ORACLE
    async with ledger_services(isolated), root_server(isolated) as root:
        async with mcp_session(root, SERVICE) as agent:
            listed = await agent.list_tools()
            opened = answer(await agent.call_tool("create_mission", {"mission": mission}))
            mission_id = opened["mission_id"]

            async def projected() -> dict[str, Any] | None:
                read = await agent.call_tool("mission_status", {"mission_id": mission_id})
                return None if read.isError else answer(read)

            status = await eventually(projected)  # polls answer mission_not_found until then
            trail = answer(await agent.call_tool("verified_trail", {"mission_id": mission_id}))

        async def recorded() -> list[Any]:
            rows = await archived(isolated.database_url, mission_id)
            calls = [r for r in rows if r["event_type"] == "McpCallRecorded"]
            return rows if len(calls) == 3 else []

        rows = await eventually(recorded)

    assert {tool.name for tool in listed.tools} == TOOLS
    assert opened["status"] in {"accepted", "requested"} and status["status"] == "requested"
    assert trail["chain"]["intact"] is True
    assert trail["events"][0]["meta"]["event_type"] == "MissionRequested"
    calls = [
        (row["actor"], json.loads(row["data"]))
        for row in rows
        if row["event_type"] == "McpCallRecorded"
    ]
    assert [(actor, call["tool"], call["outcome"]) for actor, call in calls] == [
        ("service:local-service", "create_mission", "ok"),
        ("service:local-service", "mission_status", "ok"),
        ("service:local-service", "verified_trail", "ok"),
    ]
    unset = {"lead": None, "time_budget_ms": None, "token_budget": None}
    expected = arguments_hash({"mission": mission | unset, "idempotency_key": None})
    assert calls[0][1]["arguments_hash"] == expected
    assert all(mission["objective"] not in json.dumps(call) for _, call in calls)


CALLS = ("create_mission", "approval_queue", "approve_writeback", "mission_status")
"""The tool calls the test below makes, each under its own labels (tool, caller, outcome)."""


async def test_calls_without_a_key_or_with_the_wrong_role_are_refused_and_counted(
    isolated: Isolated,
) -> None:
    await prepared(isolated)
    async with ledger_services(isolated), root_server(isolated) as root:
        async with httpx.AsyncClient() as plain:
            keyless = await plain.post(
                f"{root}/mcp",
                json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                headers={"Accept": "application/json, text/event-stream"},
            )
        async with mcp_session(root, AUDITOR) as auditor:
            opened_by_auditor = await auditor.call_tool("create_mission", {"mission": ORACLE})
            queue = answer(await auditor.call_tool("approval_queue", {}))
            approve = await auditor.call_tool(
                "approve_writeback", {"approval_id": "wb-1", "reason": "looks right"}
            )
        async with mcp_session(root, COLONY) as colony:
            read_by_colony = await colony.call_tool("mission_status", {"mission_id": "m-1"})

        async def counted() -> str:
            """/metrics once the projector has counted every call (samples of one session
            may arrive in different fetches of colony.metrics)."""
            async with httpx.AsyncClient() as plain:
                text = (await plain.get(f"{root}/metrics")).text
            return text if text.count("velocity_mcp_calls_total{") == len(CALLS) else ""

        metrics = await eventually(counted)

    assert keyless.status_code == 401
    assert keyless.headers["content-type"] == "application/problem+json"
    assert "forbidden: role auditor may not call create_mission" in error_text(opened_by_auditor)
    assert queue == {
        "pending": [],
        "pending_total": 0,
        "oldest_pending_age_seconds": 0,
        "next_cursor": None,
        "decided": [],
    }
    assert "forbidden: role auditor may not call approve_writeback" in error_text(approve)
    assert "forbidden: role colony may not call mission_status" in error_text(read_by_colony)
    assert (
        'velocity_mcp_calls_total{caller="auditor:local-auditor",outcome="refused:forbidden",'
        'tool="create_mission"} 1.0' in metrics
    )
    assert (
        'velocity_mcp_calls_total{caller="auditor:local-auditor",outcome="ok",'
        'tool="approval_queue"} 1.0' in metrics
    )
