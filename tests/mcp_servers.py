"""A real MCP server for tests: the official SDK's FastMCP over Streamable HTTP, served by
uvicorn on 127.0.0.1 in the test's event loop (a new FastMCP at each start: its session
manager runs once)."""

from __future__ import annotations

from dataclasses import dataclass, field

from mcp.server.fastmcp import FastMCP
from starlette.applications import Starlette

from infra.processes import free_port
from tests.fake_services import FakeServer

MARK = "Zephyr ledger migration"
"""Text only this server's documents carry."""


@dataclass
class KnowledgeBase(FakeServer):
    """An MCP knowledge base. `search(query, scope)` answers two documents about the scope
    (`mcp://kb/<topic>/...`), recording each call's arguments; `plain(query, scope)` answers
    the same as text blocks only; `failing(query, scope)` always reports an error (isError)."""

    port: int = field(default_factory=free_port)
    stateless: bool = True
    """No session (what a search needs); False: FastMCP's default, a session per client."""
    calls: list[dict[str, str]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def app(self) -> Starlette:
        server = FastMCP("knowledge-base", log_level="WARNING", stateless_http=self.stateless)

        @server.tool()
        def search(query: str, scope: str) -> list[dict[str, str]]:
            """Documents of the knowledge base about `query` within `scope`."""
            self.calls.append({"query": query, "scope": scope})
            return documents(scope)

        @server.tool(structured_output=False)
        def plain(query: str, scope: str) -> list[dict[str, str]]:
            """`search`, answered as text blocks only (no structured content)."""
            return documents(scope)

        @server.tool()
        def failing(query: str, scope: str) -> list[dict[str, str]]:
            """A search whose index is offline."""
            raise RuntimeError("the search index is offline")

        return server.streamable_http_app()


def documents(scope: str) -> list[dict[str, str]]:
    topic = scope.removeprefix("project:")
    return [
        {
            "title": f"{topic} risk register",
            "source": f"mcp://kb/{topic}/risk-register",
            "content": f"The main delivery risk of {topic} is the {MARK}.",
        },
        {
            "title": f"{topic} steering notes",
            "source": f"mcp://kb/{topic}/steering",
            "content": f"Steering froze the {topic} scope until the {MARK} lands.",
        },
    ]
