"""The official MCP SDK's client, as an agent uses it against the root's /mcp."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult


@asynccontextmanager
async def mcp_session(root: str, key: str) -> AsyncIterator[ClientSession]:
    """An initialised MCP session on `root`/mcp presenting `key`."""
    headers = {"Authorization": f"Bearer {key}"}
    async with (
        httpx.AsyncClient(headers=headers) as http,
        streamable_http_client(f"{root}/mcp", http_client=http) as (read, write, _),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


def answer(result: CallToolResult) -> dict[str, Any]:
    """A successful tool call's structured answer (fails the test on a tool error)."""
    assert not result.isError, result.content
    assert result.structuredContent is not None
    return result.structuredContent


def error_text(result: CallToolResult) -> str:
    """A failed tool call's message."""
    assert result.isError, result.structuredContent
    return " ".join(getattr(part, "text", "") for part in result.content)
