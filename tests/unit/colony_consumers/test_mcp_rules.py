"""Research through an MCP server, its pure parts: the policy on MCP tools, the second
decision a research task gets before it starts, the reading of tool results, the errors
the provider guard sees, and the settings."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from mcp.shared.exceptions import McpError
from mcp.types import CallToolResult, ErrorData, ImageContent, TextContent

from colony_consumers.mcp_research import (
    McpFailed,
    McpResearch,
    McpUnreachable,
    documents_of,
    translated,
)
from colony_consumers.policy import PolicyContext, evaluate_mcp_tool
from colony_consumers.providers import Document, choose_research
from colony_consumers.reactions import Send, policy_context, react
from colony_consumers.settings import ColonySettings
from infra.config import load_settings
from ledger.commands import (
    CompleteTask,
    FailMission,
    RecordToolDecision,
    StartTask,
)
from ledger.events import TaskSucceeded
from tests.unit.colony_consumers.mission_files import folded, planned

DOC = {"title": "Risk register", "source": "mcp://kb/atlas/risks", "content": "Billing slips."}
EXPECTED = Document("Risk register", "mcp://kb/atlas/risks", "Billing slips.")


def context(**overrides: Any) -> PolicyContext:
    fields = {"environment": "local", "mission_type": "oracle", "mode": "assisted"}
    return PolicyContext(**(fields | {"mcp_tool": "search"} | overrides))


@pytest.mark.parametrize(
    ("overrides", "tool", "decision", "rule"),
    [
        ({}, "project_search", "allowed", "oracle.mcp_tools"),
        ({"mission_type": "crm"}, "crm_lookup", "allowed", "crm.mcp_tools"),
        ({"mission_type": "catalyst"}, "crm_lookup", "allowed", "catalyst.mcp_tools"),
        ({"mcp_tool": "delete_records"}, "project_search", "denied", "mcp.tool_not_permitted"),
        ({"environment": "production"}, "project_search", "allowed", "oracle.mcp_tools"),
        (
            {"environment": "production", "mode": "autonomous"},
            "project_search",
            "denied",
            "prod.assisted_only",
        ),
        (
            {"environment": "production", "mission_type": "crm"},
            "web_research",
            "denied",
            "prod.no_autonomous_research",
        ),
        (
            {"environment": "production", "mission_type": "crm", "autonomous_research": True},
            "web_research",
            "allowed",
            "crm.mcp_tools",
        ),
        (
            {"environment": "staging", "mission_type": "crm"},
            "web_research",
            "allowed",
            "crm.mcp_tools",
        ),
    ],
)
def test_mcp_tool_decisions_carry_their_rule(
    overrides: dict[str, Any], tool: str, decision: str, rule: str
) -> None:
    result = evaluate_mcp_tool(context(**overrides), tool)
    assert (result.decision, result.rule_id) == (decision, rule)


def test_a_denied_mcp_tool_is_named_in_the_reason() -> None:
    result = evaluate_mcp_tool(context(mcp_tool="delete_records"), "project_search")
    assert result.reason == "mcp:delete_records is not an MCP tool of oracle"


def decisions(reaction: Any) -> list[tuple[str, str, str, str]]:
    assert isinstance(reaction, Send)
    return [
        (name, body.tool, body.decision, body.rule_id)
        for name, body in reaction.commands
        if isinstance(body, RecordToolDecision)
    ]


def test_a_research_task_through_mcp_gets_a_second_decision_before_it_starts() -> None:
    file = folded("oracle", project_id="atlas")
    reaction = react(file, planned("oracle"), context())
    assert decisions(reaction) == [
        ("policy/gather_context", "project_search", "allowed", "oracle.tools"),
        ("policy/gather_context/mcp", "mcp:search", "allowed", "oracle.mcp_tools"),
    ]
    assert isinstance(reaction, Send)
    assert [type(body) for _, body in reaction.commands][-1] is StartTask


def test_a_denied_mcp_tool_fails_the_mission_naming_its_rule_and_starts_nothing() -> None:
    file = folded("oracle", project_id="atlas")
    reaction = react(file, planned("oracle"), context(mcp_tool="delete_records"))
    assert decisions(reaction)[-1] == (
        "policy/gather_context/mcp",
        "mcp:delete_records",
        "denied",
        "mcp.tool_not_permitted",
    )
    assert isinstance(reaction, Send)
    bodies = [body for _, body in reaction.commands]
    assert not any(isinstance(body, StartTask) for body in bodies)
    failure = bodies[-1]
    assert isinstance(failure, FailMission)
    assert failure.reason == (
        "policy denied mcp:delete_records (mcp.tool_not_permitted):"
        " mcp:delete_records is not an MCP tool of oracle"
    )


def test_the_ledger_records_the_mcp_denial_and_the_failure() -> None:
    file = folded("oracle", project_id="atlas")
    reaction = react(file, planned("oracle"), context(mcp_tool="delete_records"))
    assert isinstance(reaction, Send)
    after = folded("oracle", *(body for _, body in reaction.commands), project_id="atlas")
    assert after.denials == ["mcp:delete_records: mcp.tool_not_permitted"]
    assert after.state.status == "failed"


def test_drafts_and_research_that_is_not_mcp_get_one_decision() -> None:
    running = folded(
        "oracle",
        StartTask(task_id="gather_context", worker="w"),
        CompleteTask(task_id="gather_context", summary="2 sources", tokens_used=0, duration_ms=1),
        project_id="atlas",
    )
    succeeded = TaskSucceeded(
        task_id="gather_context",
        summary="2 sources",
        artifact_hashes=[],
        tokens_used=0,
        duration_ms=1,
    )
    assert decisions(react(running, succeeded, context())) == [
        ("policy/draft_answer", "draft_answer", "allowed", "oracle.tools")
    ]
    plain = react(folded("oracle", project_id="atlas"), planned("oracle"), context(mcp_tool=None))
    assert [tool for _, tool, _, _ in decisions(plain)] == ["project_search"]


def test_web_research_the_policy_skips_never_reaches_the_mcp_server() -> None:
    production = context(environment="production", mission_type="crm")
    reaction = react(folded("crm"), planned("crm"), production, workers=2)
    assert decisions(reaction) == [
        ("policy/gather_account", "crm_lookup", "allowed", "crm.tools"),
        ("policy/gather_account/mcp", "mcp:search", "allowed", "crm.mcp_tools"),
        ("policy/research", "web_research", "denied", "prod.no_autonomous_research"),
    ]


def test_the_policy_context_carries_the_mcp_tool() -> None:
    file = folded("oracle", project_id="atlas")
    assert policy_context(file, "local", False, False, "search").mcp_tool == "search"
    assert policy_context(file, "local", False, False).mcp_tool is None


def result(*blocks: Any, structured: Any = None, error: bool = False) -> CallToolResult:
    return CallToolResult(content=list(blocks), structuredContent=structured, isError=error)


def text(value: Any) -> TextContent:
    return TextContent(type="text", text=value if isinstance(value, str) else json.dumps(value))


@pytest.mark.parametrize(
    "answer",
    [
        result(structured={"result": [DOC]}),
        result(structured={"documents": [DOC]}),
        result(structured=DOC),
        result(text(DOC)),
        result(text([DOC])),
        result(text({"documents": [DOC]})),
        result(ImageContent(type="image", data="AAAA", mimeType="image/png"), text(DOC)),
    ],
    ids=[
        "fastmcp-list",
        "structured-documents",
        "structured-document",
        "text-document",
        "text-list",
        "text-documents",
        "image-left-out",
    ],
)
def test_documents_are_read_from_structured_content_or_json_text(answer: CallToolResult) -> None:
    assert documents_of(answer, "search") == [EXPECTED]


def test_an_empty_search_is_no_documents() -> None:
    assert documents_of(result(structured={"result": []}), "search") == []


@pytest.mark.parametrize(
    ("answer", "said"),
    [
        (
            result(structured={"result": [{"title": "t", "source": "s"}]}),
            "result 1 of MCP tool search has no content",
        ),
        (
            result(structured={"result": [DOC, {"content": "c"}]}),
            "result 2 of MCP tool search has no title, source",
        ),
        (result(structured={"result": ["a page"]}), "result 1 of MCP tool search is a str"),
        (result(text("<html>")), "MCP tool search answered text that is not JSON: '<html>'"),
        (result(text(42)), "MCP tool search answered a int, not documents"),
    ],
)
def test_a_malformed_result_says_what_is_missing(answer: CallToolResult, said: str) -> None:
    with pytest.raises(ValueError) as malformed:
        documents_of(answer, "search")
    assert said in str(malformed.value)


def test_an_error_result_carries_the_tools_message() -> None:
    with pytest.raises(McpFailed) as failed:
        documents_of(result(text("index offline"), error=True), "search")
    assert str(failed.value) == "MCP tool search failed: index offline"


def test_sdk_failures_become_errors_the_guard_retries() -> None:
    refused = ExceptionGroup("unhandled errors in a TaskGroup", [httpx.ConnectError("refused")])
    unreachable = translated(refused)
    refusal = translated(McpError(ErrorData(code=-32601, message="Method not found")))
    assert isinstance(unreachable, McpUnreachable) and isinstance(unreachable, OSError)
    assert str(unreachable) == "MCP server unreachable (ConnectError: refused)"
    assert isinstance(refusal, McpFailed) and isinstance(refusal, ValueError)
    assert str(refusal) == "MCP request failed (McpError: Method not found)"


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ColonySettings.model_fields:
        monkeypatch.delenv(name, raising=False)


@pytest.mark.usefixtures("clean_environment")
async def test_mcp_research_is_chosen_by_its_prefix_with_its_tool() -> None:
    settings = ColonySettings(
        RESEARCH_PROVIDER="mcp+https://kb.internal/mcp", MCP_RESEARCH_TOOL="find"
    )
    async with httpx.AsyncClient() as client:
        research = choose_research(
            settings.RESEARCH_PROVIDER,
            settings.MCP_RESEARCH_TOOL,
            None,  # type: ignore[arg-type]  # only local research reads PostgreSQL
            client,
        )
    assert isinstance(research, McpResearch)
    assert (research.name, research.endpoint, research.tool) == (
        "mcp-research:kb.internal",
        "https://kb.internal/mcp",
        "find",
    )
    assert settings.research_mcp_tool == "find"
    assert ColonySettings(MCP_RESEARCH_TOOL="find").research_mcp_tool is None


@pytest.mark.usefixtures("clean_environment")
@pytest.mark.parametrize(
    ("env", "said"),
    [
        (
            {"RESEARCH_PROVIDER": "mcp+ftp://kb.internal/mcp"},
            "RESEARCH_PROVIDER: an MCP server is reached over http or https",
        ),
        (
            {"RESEARCH_PROVIDER": "mcp+http:///mcp"},
            "RESEARCH_PROVIDER: the MCP endpoint names no host",
        ),
        (
            {"RESEARCH_PROVIDER": "mcp+kb.internal"},
            "RESEARCH_PROVIDER: an MCP server is reached over http or https"
            " (e.g. mcp+http://127.0.0.1:8765/mcp)",
        ),
        ({"MCP_RESEARCH_TOOL": ""}, "MCP_RESEARCH_TOOL: String should have at least 1 character"),
        ({"MCP_RESEARCH_TOOL": "web search"}, "MCP_RESEARCH_TOOL: an MCP tool name has no spaces"),
    ],
)
def test_a_malformed_mcp_setting_stops_the_colony_with_one_line_naming_it(
    env: dict[str, str],
    said: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as stopped:
        load_settings(ColonySettings)
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and err.count("\n") == 1
    assert said in err
