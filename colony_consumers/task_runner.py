"""Running one task: call the provider its tool needs, persist what it found through the
root, and report the outcome as a CompleteTask or FailTask command."""

from __future__ import annotations

import time

import httpx

from colony_consumers.mission_file import MissionFile
from colony_consumers.providers import (
    Document,
    Guarded,
    HttpBrowser,
    Model,
    ProviderError,
    Research,
)
from colony_consumers.root_client import RootClient, RootUnavailableError
from ledger.commands import CommandBody, CompleteTask, FailTask


class TaskRunner:
    def __init__(
        self,
        research: Research,
        model: Model,
        root: RootClient,
        guarded: Guarded,
        browser: HttpBrowser | None = None,
    ) -> None:
        self.browser = browser
        self.research = research
        self.model = model
        self.root = root
        self.guarded = guarded

    async def run(self, file: MissionFile, task_id: str, tool: str) -> CommandBody:
        started = time.monotonic()
        try:
            summary, hashes, tokens = await self._work(file, task_id, tool)
        except (ProviderError, RootUnavailableError) as error:
            retryable = getattr(error, "retryable", True)
            return FailTask(task_id=task_id, error=str(error), retryable=retryable)
        return CompleteTask(
            task_id=task_id,
            summary=summary,
            artifact_hashes=hashes,
            tokens_used=tokens,
            duration_ms=int((time.monotonic() - started) * 1000),
        )

    async def _work(self, file: MissionFile, task_id: str, tool: str) -> tuple[str, list[str], int]:
        request = file.request
        assert request is not None
        if tool.startswith("draft_"):
            return await self._draft(file, task_id)
        research = self.research
        if tool == "project_search":
            query = (request.project_id or "", request.objective)
            documents = await self.guarded.call(
                research.name, tool, lambda: research.project(*query)
            )
        elif tool == "crm_lookup":
            company = request.lead_company or ""
            documents = await self.guarded.call(
                research.name, tool, lambda: research.account(company)
            )
        else:
            topic = request.lead_company or request.objective
            documents = await self.guarded.call(research.name, tool, lambda: research.web(topic))
            browser = self.browser
            if browser is not None:  # external, so under the same policy decision
                documents += await self.guarded.call(
                    browser.name, "browse", lambda: browser.browse(topic)
                )
        hashes = [
            await self.root.store(
                f"{doc.title}\n\n{doc.text}",
                mission_id=file.mission_id,
                artifact_id=f"{task_id}-{i}",
                kind="source",
                source=doc.source,
            )
            for i, doc in enumerate(documents)
        ]
        return f"{len(documents)} sources found by {tool}", hashes, 0

    async def _draft(self, file: MissionFile, task_id: str) -> tuple[str, list[str], int]:
        request = file.request
        assert request is not None
        documents = [
            Document(source.source, source.source, await self._content(source.content_hash))
            for source in file.sources
        ]
        model = self.model
        output = await self.guarded.call(
            model.name, "draft", lambda: model.draft(request.objective, documents)
        )
        draft_hash = await self.root.store(
            output, mission_id=file.mission_id, artifact_id=task_id, kind="draft", source=model.name
        )
        return output, [draft_hash], len(output.split())

    async def _content(self, content_hash: str) -> str:
        try:
            response = await self.root.client.get(f"/artifacts/{content_hash}")
            response.raise_for_status()
        except httpx.HTTPError as error:
            raise RootUnavailableError(
                f"artifact {content_hash[:12]} unreadable: {error}"
            ) from error
        return response.text.split("\n\n", 1)[-1]
