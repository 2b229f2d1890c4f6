"""Research through an MCP server's tool: RESEARCH_PROVIDER=mcp+http(s)://host:port/path.

The colony is an MCP client over Streamable HTTP (the official SDK). Research calls the
tool MCP_RESEARCH_TOOL (default `search`) with {"query", "scope"}, the scopes HttpResearch
sends (`project:<id>`, `crm`, `web`); the tool answers documents, each with a title, a
source and its content. Like every provider, a call runs under `Guarded`; so that its
retries, breaker and metric see what went wrong, every failure leaves this module as an
OSError (`McpUnreachable`: the server cannot be reached) or a ValueError (`McpFailed`:
the server or its tool answered with an error; a plain ValueError: the result is not
documents). The SDK reports a refused connection as an ExceptionGroup, which would
otherwise escape the guard.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
from loguru import logger
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, TextContent

from colony_consumers.providers import Document, ScopedSearch
from infra.readiness import Degraded, NotReady

T = TypeVar("T")
FIELDS = ("title", "source", "content")


class McpUnreachable(ConnectionError):
    """The MCP server could not be reached, or answered an HTTP error."""


class McpFailed(ValueError):
    """The MCP server refused the request, or its tool reported an error (isError)."""


class McpResearch(ScopedSearch):
    """Research as calls of one tool of an MCP server. Each call opens its own session
    (initialize, call, close): stateless, so a restarted or replaced server needs nothing
    from the colony, for one more round trip per call than a kept session would take."""

    def __init__(self, endpoint: str, tool: str, client: httpx.AsyncClient) -> None:
        self.name = f"mcp-research:{httpx.URL(endpoint).host}"
        self.endpoint = endpoint
        self.tool = tool
        self.client = client

    async def tools(self) -> list[str]:
        """The names of the tools the server offers."""
        listed = await self._in_session(lambda session: session.list_tools())
        return [tool.name for tool in listed.tools]

    async def _search(self, query: str, scope: str) -> list[Document]:
        arguments = {"query": query, "scope": scope}
        result = await self._in_session(lambda session: session.call_tool(self.tool, arguments))
        return documents_of(result, self.tool)

    async def _in_session(self, work: Callable[[ClientSession], Awaitable[T]]) -> T:
        try:
            async with (
                streamable_http_client(self.endpoint, http_client=self.client) as (read, write, _),
                ClientSession(read, write) as session,
            ):
                await session.initialize()
                return await work(session)
        except Exception as error:
            raise translated(error) from error


def translated(error: Exception) -> McpUnreachable | McpFailed:
    """What the SDK raised, as an error `Guarded` handles, named by its innermost cause."""
    cause = innermost(error)
    described = f"{type(cause).__name__}: {cause}" if str(cause) else type(cause).__name__
    if isinstance(cause, httpx.HTTPError | OSError):
        return McpUnreachable(f"MCP server unreachable ({described})")
    return McpFailed(f"MCP request failed ({described})")


def innermost(error: BaseException) -> BaseException:
    """The first error an exception group holds (the SDK's task group wraps what its
    transport raised), other than the cancellations that error caused."""
    if not isinstance(error, BaseExceptionGroup):
        return error
    inner = [innermost(e) for e in error.exceptions]
    return next((e for e in inner if not isinstance(e, asyncio.CancelledError)), error)


def documents_of(result: CallToolResult, tool: str) -> list[Document]:
    """The documents in a tool's result: its structured content (FastMCP puts a returned
    list under "result"; {"documents": [...]} is read too), else each text block read as
    JSON (a document, a list of them, or {"documents": [...]}); other blocks (images,
    resources) are not documents and are left out."""
    if result.isError:
        said = " ".join(block.text for block in result.content if isinstance(block, TextContent))
        raise McpFailed(f"MCP tool {tool} failed: {said or 'it gave no reason'}")
    if result.structuredContent is not None:
        items = listed(result.structuredContent, tool)
    else:
        items = [
            item
            for block in result.content
            if isinstance(block, TextContent)
            for item in listed(parsed(block.text, tool), tool)
        ]
    return [document(item, tool, number) for number, item in enumerate(items, 1)]


def parsed(text: str, tool: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        said = text[:80]
        raise ValueError(f"MCP tool {tool} answered text that is not JSON: {said!r}") from error


def listed(value: Any, tool: str) -> list[Any]:
    """The items of a result: a list, the list a {"result"} or {"documents"} wrapper holds,
    or one document."""
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        for wrapper in ("result", "documents"):
            if wrapper in value:
                return listed(value[wrapper], tool)
        return [value]
    raise ValueError(f"MCP tool {tool} answered a {type(value).__name__}, not documents")


def document(item: Any, tool: str, number: int) -> Document:
    """One document of a result; a ValueError names what it lacks."""
    if not isinstance(item, dict):
        raise ValueError(
            f"result {number} of MCP tool {tool} is a {type(item).__name__}, not a document"
            " (title, source, content)"
        )
    missing = [name for name in FIELDS if not isinstance(item.get(name), str)]
    if missing:
        raise ValueError(
            f"result {number} of MCP tool {tool} has no {', '.join(missing)}"
            " (a document has a title, a source and its content, each a string)"
        )
    return Document(item["title"], item["source"], item["content"])


def missing_tool(tool: str, offered: list[str]) -> str:
    return (
        f"has no tool {tool!r} (MCP_RESEARCH_TOOL); it has: {', '.join(sorted(offered)) or 'none'}"
    )


async def require_tool(research: McpResearch) -> None:
    """Readiness: the MCP server offers research's tool. A missing tool is a deployment
    mistake (not ready); a server that does not answer is an outage of someone else's,
    reported as degraded so it does not pull the colony and the root out of service (its
    research tasks fail legibly meanwhile). Details name the tool, not the endpoint (a
    readiness answer is public); the log has the address."""
    try:
        offered = await research.tools()
    except (McpUnreachable, McpFailed) as error:
        logger.warning("MCP research server {}: {}", research.endpoint, error)
        raise Degraded(
            "the MCP research server does not answer; research tasks fail until it does"
        ) from error
    if research.tool not in offered:
        raise NotReady(f"the MCP research server {missing_tool(research.tool, offered)}")


async def announce_tools(research: McpResearch) -> None:
    """At start: say whether research can go through the MCP server (readiness keeps
    checking; research tasks fail, legibly, while it cannot)."""
    try:
        offered = await research.tools()
    except (McpUnreachable, McpFailed) as error:
        logger.error(
            "MCP research server {} unreachable at start ({}); research_tools reads degraded"
            " until it answers",
            research.endpoint,
            error,
        )
        return
    if research.tool in offered:
        logger.info("research goes through MCP tool {} at {}", research.tool, research.endpoint)
    else:
        logger.error(
            "MCP research server {} {}; research tasks fail until it offers the tool",
            research.endpoint,
            missing_tool(research.tool, offered),
        )
