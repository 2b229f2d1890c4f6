"""Providers the colony's tasks call: research and the model, local or over HTTP.

`local` providers do real work offline: research is PostgreSQL full-text search over the
knowledge base and CRM data the repository ships; the model drafts extractively, citing
its sources. HTTP providers speak an OpenAI-compatible chat-completions API (model) and
a small JSON search API or an MCP server's tool (research; colony_consumers/mcp_research.py).
Every call goes through `Guarded` (timeout, bounded retries with backoff, circuit
breaker) and reports a provider_call metric.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import asyncpg
import httpx

from colony_consumers.outages import OUTAGES, OutageError
from colony_consumers.settings import mcp_endpoint
from infra.tracing import work_span

T = TypeVar("T")
WORD = re.compile(r"[a-z0-9]+")
STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "for",
        "from",
        "how",
        "in",
        "is",
        "it",
        "of",
        "on",
        "or",
        "the",
        "this",
        "to",
        "was",
        "what",
        "which",
        "who",
        "why",
    ]
)


@dataclass(frozen=True)
class Document:
    title: str
    source: str
    text: str


class ProviderError(RuntimeError):
    """A provider call failed after its retries; `retryable` says whether trying later may help."""

    def __init__(self, provider: str, detail: str, retryable: bool = True) -> None:
        super().__init__(f"{provider}: {detail}")
        self.provider = provider
        self.retryable = retryable


class Research(Protocol):
    name: str

    async def project(self, project_id: str, query: str) -> list[Document]: ...
    async def account(self, company: str) -> list[Document]: ...
    async def web(self, query: str) -> list[Document]: ...


class Model(Protocol):
    name: str

    async def draft(self, objective: str, sources: list[Document]) -> str: ...


class LocalResearch:
    """Full-text search over kb_documents and the CRM tables in PostgreSQL. PostgreSQL being
    unreachable is an outage of ours, not a failure of the research (OutageError)."""

    name = "local-research"

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def _fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        try:
            return list(await self.pool.fetch(query, *args))
        except OUTAGES as error:
            raise OutageError(f"PostgreSQL unavailable ({type(error).__name__})") from error

    async def project(self, project_id: str, query: str) -> list[Document]:
        rows = await self._fetch(
            "SELECT title, source, body FROM kb_documents WHERE project_id = $1"
            " ORDER BY ts_rank(search, plainto_tsquery('english', $2)) DESC, document_id LIMIT 5",
            project_id,
            query,
        )
        return [Document(r["title"], r["source"], r["body"]) for r in rows]

    async def account(self, company: str) -> list[Document]:
        rows = await self._fetch(
            "SELECT * FROM crm_accounts WHERE lower(company) = lower($1)", company
        )
        if not rows:
            return []
        row = rows[0]
        text = (
            f"{row['company']} ({row['industry']}, {row['employees']} employees),"
            f" contact {row['contact']}. {row['notes']}"
        )
        return [
            Document(f"CRM record: {row['company']}", f"crm://accounts/{row['account_id']}", text)
        ]

    async def web(self, query: str) -> list[Document]:
        rows = await self._fetch(
            "SELECT title, source, body FROM kb_documents"
            " WHERE search @@ websearch_to_tsquery('english', $1) LIMIT 3",
            query,
        )
        return [Document(r["title"], r["source"], r["body"]) for r in rows]


class ScopedSearch:
    """Research as one search call with a scope (`project:<id>`, `crm`, `web`): the shape
    the remote providers share (HTTP, MCP)."""

    async def _search(self, query: str, scope: str) -> list[Document]:
        raise NotImplementedError

    async def project(self, project_id: str, query: str) -> list[Document]:
        return await self._search(query, f"project:{project_id}")

    async def account(self, company: str) -> list[Document]:
        return await self._search(company, "crm")

    async def web(self, query: str) -> list[Document]:
        return await self._search(query, "web")


class HttpResearch(ScopedSearch):
    """POST {url}/search {"query", "scope"} -> {"documents": [{"title", "source", "text"}]}."""

    def __init__(self, url: str, client: httpx.AsyncClient) -> None:
        self.name = f"http-research:{httpx.URL(url).host}"
        self.url = url.rstrip("/")
        self.client = client

    async def _search(self, query: str, scope: str) -> list[Document]:
        response = await self.client.post(
            f"{self.url}/search", json={"query": query, "scope": scope}
        )
        response.raise_for_status()
        return [Document(d["title"], d["source"], d["text"]) for d in response.json()["documents"]]


class HttpBrowser:
    """POST {url}/browse {"query"} -> {"documents": [{"title", "source", "text"}]}: pages a
    browsing service read for the query (BROWSER_PROVIDER = its base URL)."""

    def __init__(self, url: str, client: httpx.AsyncClient) -> None:
        self.name = f"http-browser:{httpx.URL(url).host}"
        self.url = url.rstrip("/")
        self.client = client

    async def browse(self, query: str) -> list[Document]:
        response = await self.client.post(f"{self.url}/browse", json={"query": query})
        response.raise_for_status()
        return [Document(d["title"], d["source"], d["text"]) for d in response.json()["documents"]]


def terms(text: str) -> set[str]:
    return {w for w in WORD.findall(text.lower()) if w not in STOPWORDS and len(w) > 2}


class LocalModel:
    """Extractive drafting: the source sentences that best match the objective, cited [n]."""

    name = "local-model"

    async def draft(self, objective: str, sources: list[Document]) -> str:
        wanted = terms(objective)
        scored = []
        for number, document in enumerate(sources, 1):
            for sentence in re.split(r"(?<=[.!?])\s+", document.text):
                overlap = len(wanted & terms(sentence))
                if sentence.strip():
                    scored.append((overlap, -number, sentence.strip().rstrip("."), number))
        best = sorted(scored, reverse=True)[:4]
        if not best:
            return "No sources were found for this objective."
        return " ".join(f"{sentence} [{number}]." for _, _, sentence, number in best)


class HttpModel:
    """An OpenAI-compatible chat-completions route (DEFAULT_MODEL_ROUTE = its base URL)."""

    def __init__(self, url: str, client: httpx.AsyncClient) -> None:
        self.name = f"http-model:{httpx.URL(url).host}"
        self.url = url.rstrip("/")
        self.client = client

    async def draft(self, objective: str, sources: list[Document]) -> str:
        numbered = "\n".join(f"[{n}] {d.title}: {d.text}" for n, d in enumerate(sources, 1))
        messages = [
            {"role": "system", "content": "Answer only from the sources; cite each claim as [n]."},
            {"role": "user", "content": f"Objective: {objective}\n\nSources:\n{numbered}"},
        ]
        response = await self.client.post(
            f"{self.url}/chat/completions", json={"model": "default", "messages": messages}
        )
        response.raise_for_status()
        return str(response.json()["choices"][0]["message"]["content"])


class CircuitBreaker:
    """Opens after `threshold` consecutive failures; half-opens after `cooldown_s`."""

    def __init__(self, threshold: int = 5, cooldown_s: float = 30) -> None:
        self.threshold = threshold
        self.cooldown_s = cooldown_s
        self.failures = 0
        self.opened_at: float | None = None

    @property
    def open(self) -> bool:
        if self.opened_at is None:
            return False
        if time.monotonic() - self.opened_at >= self.cooldown_s:
            self.opened_at = None  # half-open: let one call try
            return False
        return True

    def record(self, ok: bool) -> None:
        self.failures = 0 if ok else self.failures + 1
        if self.failures >= self.threshold:
            self.opened_at = time.monotonic()


Report = Callable[[str, str, str, float], Awaitable[None]]


class Guarded:
    """Timeout, bounded retries with backoff, a circuit breaker, and a metric per call."""

    def __init__(
        self, timeout_s: float, report: Report, retries: int = 2, backoff_s: float = 0.2
    ) -> None:
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.report = report
        self.breakers: dict[str, CircuitBreaker] = {}

    def breaker_states(self) -> dict[str, dict[str, Any]]:
        """Each provider's breaker: open or closed, and its run of failures."""
        return {
            provider: {"state": "open" if breaker.open else "closed", "failures": breaker.failures}
            for provider, breaker in self.breakers.items()
        }

    async def call(self, provider: str, operation: str, work: Callable[[], Awaitable[T]]) -> T:
        """`work()` under this guard, in a span of the mission's trace (a failure that
        outlasts the retries marks the span as an error)."""
        attributes = {"velocity.provider": provider, "velocity.operation": operation}
        with work_span(f"{operation} via {provider}", attributes=attributes):
            return await self._attempts(provider, operation, work)

    async def _attempts(self, provider: str, operation: str, work: Callable[[], Awaitable[T]]) -> T:
        breaker = self.breakers.setdefault(provider, CircuitBreaker())
        last = "no attempt"
        for attempt in range(self.retries + 1):
            if breaker.open:
                await self.report(provider, operation, "circuit_open", 0.0)
                raise ProviderError(provider, "circuit open after repeated failures")
            started = time.monotonic()
            try:
                result = await asyncio.wait_for(work(), self.timeout_s)
            except (TimeoutError, httpx.HTTPError, OSError, KeyError, ValueError) as error:
                outcome = "timeout" if isinstance(error, asyncio.TimeoutError) else "error"
                last = f"{outcome}: {error}" if str(error) else outcome
                breaker.record(ok=False)
                await self.report(provider, operation, outcome, _ms(started))
                await asyncio.sleep(self.backoff_s * 2**attempt)
                continue
            breaker.record(ok=True)
            await self.report(provider, operation, "ok", _ms(started))
            return result
        raise ProviderError(
            provider, f"{operation} failed after {self.retries + 1} attempts ({last})"
        )


def _ms(started: float) -> float:
    return (time.monotonic() - started) * 1000


def choose_research(
    setting: str, mcp_tool: str, pool: asyncpg.Pool, client: httpx.AsyncClient
) -> Research:
    """RESEARCH_PROVIDER's research: `local`, `mcp+http(s)://...` (an MCP server's
    `mcp_tool`) or the base URL of a JSON search API."""
    from colony_consumers.mcp_research import McpResearch  # it imports Document from here

    endpoint = mcp_endpoint(setting)
    if endpoint is not None:
        return McpResearch(endpoint, mcp_tool, client)
    return LocalResearch(pool) if setting == "local" else HttpResearch(setting, client)


def choose_browser(setting: str, client: httpx.AsyncClient) -> HttpBrowser | None:
    return None if setting == "none" else HttpBrowser(setting, client)


def choose_model(setting: str, client: httpx.AsyncClient) -> Model:
    return LocalModel() if setting == "local" else HttpModel(setting, client)


def describe(provider: Any) -> str:
    return str(getattr(provider, "name", type(provider).__name__))
