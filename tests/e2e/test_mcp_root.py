"""An agent works a CRM mission through the root's MCP server on the running stack: it
opens the mission, an operator's agent approves the writeback over MCP (signed like an
HTTP approval, so the decider accepts it), and the verified trail shows who did what."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from mcp import ClientSession

from tests.e2e.conftest import OPERATOR_KEY, SERVICE_KEY, RunningStack
from tests.mcp_client import answer, error_text, mcp_session

pytestmark = pytest.mark.e2e
CRM = {
    "type": "crm",
    "mode": "assisted",
    "objective": "Qualify Northwind Traders over MCP",
    "lead": {"company": "Northwind Traders", "contact": "Ana Trujillo"},
}


async def status_of(agent: ClientSession, mission_id: str, *wanted: str) -> dict[str, Any] | None:
    read = await agent.call_tool("mission_status", {"mission_id": mission_id})
    if read.isError:
        return None  # not projected yet
    mission = answer(read)
    return mission if mission["status"] in wanted else None


async def until_status(agent: ClientSession, mission_id: str, *wanted: str) -> dict[str, Any]:
    for _ in range(300):  # a minute
        mission = await status_of(agent, mission_id, *wanted)
        if mission is not None:
            return mission
        await asyncio.sleep(0.2)
    raise AssertionError(f"mission {mission_id} never reached {wanted}")


async def test_an_operator_agent_approves_a_writeback_over_mcp_and_the_trail_says_so(
    colony_stack: RunningStack,
) -> None:
    root = colony_stack.root_url
    async with mcp_session(root, SERVICE_KEY) as agent, mcp_session(root, OPERATOR_KEY) as operator:
        mission_id = answer(await agent.call_tool("create_mission", {"mission": CRM}))["mission_id"]
        waiting = await until_status(agent, mission_id, "awaiting_approval", "failed")
        queue = answer(await operator.call_tool("approval_queue", {"mission_id": mission_id}))
        (approval,) = queue["pending"]
        assert queue["pending_total"] == 1 and approval["mission_id"] == mission_id
        by_service = await agent.call_tool(
            "approve_writeback", {"approval_id": approval["approval_id"], "reason": "mine"}
        )
        approved = answer(
            await operator.call_tool(
                "approve_writeback", {"approval_id": approval["approval_id"], "reason": "checked"}
            )
        )
        done = await until_status(agent, mission_id, "completed", "failed")
        trail = answer(await agent.call_tool("verified_trail", {"mission_id": mission_id}))
        packet = answer(await agent.call_tool("reviewer_packet", {"mission_id": mission_id}))

    assert waiting["status"] == "awaiting_approval", waiting
    assert "forbidden: role service may not call approve_writeback" in error_text(by_service)
    assert approved["decided_by"] == "operator:local-operator"
    assert done["status"] == "completed", done["failure_reason"]
    assert trail["chain"]["intact"] is True
    events = [(e["meta"]["event_type"], e["meta"]["actor"], e["data"]) for e in trail["events"]]
    assert ("WritebackApproved", "operator:local-operator") in [(t, a) for t, a, _ in events]
    mcp_calls = [
        (actor, data["tool"], data["outcome"])
        for t, actor, data in events
        if t == "McpCallRecorded"
    ]
    assert ("service:local-service", "create_mission", "ok") in mcp_calls
    assert ("operator:local-operator", "approve_writeback", "ok") in mcp_calls
    assert packet["reviewer_packet"]["verdict"] == "pass"
    assert any(a["source"] == "crm://accounts/acct-northwind" for a in packet["artifacts"])
