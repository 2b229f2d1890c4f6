"""Research through a real MCP server (the SDK's FastMCP on 127.0.0.1): the documents and
arguments of each scope, readiness naming a tool the server lacks, and failures that stay
legible under the provider guard (the server down, a tool reporting an error)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import partial

import httpx
import pytest

from colony_consumers.mcp_research import McpResearch, require_tool
from colony_consumers.providers import Document, Guarded, ProviderError
from infra.readiness import run_checks
from tests.mcp_servers import MARK, KnowledgeBase

pytestmark = pytest.mark.integration


@pytest.fixture(params=[True, False], ids=["stateless", "stateful"])
async def knowledge_base(request: pytest.FixtureRequest) -> AsyncIterator[KnowledgeBase]:
    """The knowledge base as a stateless server (a search's natural form) and, for the
    tests that ask for both, a stateful one (FastMCP's default)."""
    server = KnowledgeBase(stateless=request.param)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5) as shared:
        yield shared


class Outcomes:
    """A guard's provider_call reports, kept."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    async def __call__(self, provider: str, operation: str, outcome: str, ms: float) -> None:
        self.seen.append(outcome)


async def test_each_scope_sends_its_query_and_scope_and_returns_the_servers_documents(
    knowledge_base: KnowledgeBase, client: httpx.AsyncClient
) -> None:
    research = McpResearch(knowledge_base.url, "search", client)
    project = await research.project("atlas", "main delivery risk")
    account = await research.account("Northwind Traders")
    web = await research.web("Northwind Traders news")
    assert knowledge_base.calls == [
        {"query": "main delivery risk", "scope": "project:atlas"},
        {"query": "Northwind Traders", "scope": "crm"},
        {"query": "Northwind Traders news", "scope": "web"},
    ]
    assert project[0] == Document(
        "atlas risk register",
        "mcp://kb/atlas/risk-register",
        f"The main delivery risk of atlas is the {MARK}.",
    )
    assert [d.source for d in project + account + web] == [
        "mcp://kb/atlas/risk-register",
        "mcp://kb/atlas/steering",
        "mcp://kb/crm/risk-register",
        "mcp://kb/crm/steering",
        "mcp://kb/web/risk-register",
        "mcp://kb/web/steering",
    ]
    assert research.name == "mcp-research:127.0.0.1"


async def test_a_tool_answering_text_blocks_only_gives_the_same_documents(
    knowledge_base: KnowledgeBase, client: httpx.AsyncClient
) -> None:
    structured = McpResearch(knowledge_base.url, "search", client)
    plain = McpResearch(knowledge_base.url, "plain", client)
    assert await plain.project("atlas", "risk") == await structured.project("atlas", "risk")


async def test_readiness_names_the_tool_the_server_lacks_and_what_it_has(
    knowledge_base: KnowledgeBase, client: httpx.AsyncClient
) -> None:
    lacking = McpResearch(knowledge_base.url, "lookup", client)
    offered = McpResearch(knowledge_base.url, "search", client)
    report = await run_checks(
        {
            "research_tools": partial(require_tool, lacking),
            "offered": partial(require_tool, offered),
        }
    )
    assert report.failing == ["research_tools"]
    detail = report.checks["research_tools"].detail or ""
    assert "'lookup'" in detail and "MCP_RESEARCH_TOOL" in detail
    assert "failing, plain, search" in detail
    assert report.checks["offered"].ok


async def test_the_server_down_fails_fast_and_legibly_under_the_guard(
    knowledge_base: KnowledgeBase, client: httpx.AsyncClient
) -> None:
    research = McpResearch(knowledge_base.url, "search", client)
    await knowledge_base.stop()
    outcomes = Outcomes()
    guarded = Guarded(timeout_s=10, report=outcomes, retries=1, backoff_s=0.01)
    with pytest.raises(ProviderError) as failed:
        await guarded.call(research.name, "project_search", lambda: research.project("atlas", "q"))
    report = await run_checks({"research_tools": partial(require_tool, research)})
    message = str(failed.value)
    assert message.startswith("mcp-research:127.0.0.1: project_search failed after 2 attempts")
    assert "MCP server unreachable (ConnectError" in message
    assert outcomes.seen == ["error", "error"], "refused at once, not waited out to a timeout"
    assert report.status == "degraded", "someone else's outage keeps the colony in service"
    assert report.checks["research_tools"].detail == (
        "the MCP research server does not answer; research tasks fail until it does"
    )


async def test_a_tool_reporting_an_error_fails_legibly_under_the_guard(
    knowledge_base: KnowledgeBase, client: httpx.AsyncClient
) -> None:
    research = McpResearch(knowledge_base.url, "failing", client)
    guarded = Guarded(timeout_s=10, report=Outcomes(), retries=0)
    with pytest.raises(ProviderError) as failed:
        await guarded.call(research.name, "web_research", lambda: research.web("Northwind"))
    assert "MCP tool failing failed" in str(failed.value)
    assert "the search index is offline" in str(failed.value)
