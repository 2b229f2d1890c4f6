"""Running one task: call the provider its tool needs, persist what it found through the
root, and report the outcome as a CompleteTask or FailTask command.

Provider output is outside text: a NUL or a lone surrogate in it could be stored nowhere
downstream. It is cleaned here, at the colony's boundary (each such character becomes
U+FFFD), and the cleaning is recorded in the task's `notes` in the ledger, never silent.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from loguru import logger

from colony_consumers.mission_file import MissionFile
from colony_consumers.providers import (
    Document,
    Guarded,
    HttpBrowser,
    Model,
    ProviderError,
    Research,
)
from colony_consumers.root_client import Artifact, RootClient, RootRefusedError
from ledger.commands import CommandBody, CompleteTask, FailTask
from ledger.text import cleaned


@dataclass(frozen=True)
class Done:
    """What a task that succeeded found, made and noted."""

    summary: str
    hashes: list[str]
    tokens: int = 0
    notes: list[str] = field(default_factory=list)


def storable_documents(documents: list[Document]) -> tuple[list[Document], int]:
    """`documents` with unstorable characters replaced, and how many were."""
    clean: list[Document] = []
    replaced = 0
    for document in documents:
        (title, a), (source, b), (text, c) = map(
            cleaned, (document.title, document.source, document.text)
        )
        clean.append(Document(title, source, text))
        replaced += a + b + c
    return clean, replaced


def cleaning_notes(replaced: int, provider: str) -> list[str]:
    if not replaced:
        return []
    return [
        f"{replaced} unstorable character(s) (NUL, lone surrogate) in {provider}'s output"
        " replaced by U+FFFD"
    ]


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
            done = await self._work(file, task_id, tool)
        except (ProviderError, RootRefusedError) as error:
            retryable = getattr(error, "retryable", True)
            return FailTask(task_id=task_id, error=cleaned(str(error))[0], retryable=retryable)
        if done.notes:
            logger.bind(mission_id=file.mission_id).warning("task {}: {}", task_id, done.notes)
        return CompleteTask(
            task_id=task_id,
            summary=done.summary,
            artifact_hashes=done.hashes,
            tokens_used=done.tokens,
            duration_ms=int((time.monotonic() - started) * 1000),
            notes=done.notes,
        )

    async def _work(self, file: MissionFile, task_id: str, tool: str) -> Done:
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
        documents, replaced = storable_documents(documents)
        hashes = await self.root.store_all(
            [
                Artifact(
                    f"{doc.title}\n\n{doc.text}",
                    mission_id=file.mission_id,
                    artifact_id=f"{task_id}-{i}",
                    kind="source",
                    source=doc.source,
                )
                for i, doc in enumerate(documents)
            ]
        )
        notes = cleaning_notes(replaced, research.name)
        return Done(f"{len(documents)} sources found by {tool}", list(hashes), notes=notes)

    async def _draft(self, file: MissionFile, task_id: str) -> Done:
        request = file.request
        assert request is not None
        texts = await asyncio.gather(*(self._content(s.content_hash) for s in file.sources))
        documents = [
            Document(source.source, source.source, text)
            for source, text in zip(file.sources, texts, strict=True)
        ]
        model = self.model
        output, replaced = cleaned(
            await self.guarded.call(
                model.name, "draft", lambda: model.draft(request.objective, documents)
            )
        )
        draft = Artifact(
            output, mission_id=file.mission_id, artifact_id=task_id, kind="draft", source=model.name
        )
        draft_hash = await self.root.store(draft)
        notes = cleaning_notes(replaced, model.name)
        return Done(output, [draft_hash], len(output.split()), notes)

    async def _content(self, content_hash: str) -> str:
        return (await self.root.content(content_hash)).split("\n\n", 1)[-1]
