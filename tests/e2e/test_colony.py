"""The colony on the real stack: Oracle and CRM missions worked end to end with local
providers, approvals gating the CRM writeback, and the policy guard's denials."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import asyncpg
import httpx
import pytest

from infra.heartbeat import live_instances
from infra.topics import EVENTS
from ledger.commands import ApproveWriteback
from tests.conftest import Infrastructure
from tests.e2e.conftest import (
    AUDITOR_KEY,
    COLONY_KEY,
    OPERATOR_KEY,
    RunningStack,
    start_stack,
    until,
)
from tests.factories import command
from tests.fake_services import FakeModel
from tests.integration.conftest import command_sender

pytestmark = pytest.mark.e2e
CRM = {
    "type": "crm",
    "mode": "assisted",
    "objective": "Qualify Northwind Traders and propose a next step",
    "lead": {"company": "Northwind Traders", "contact": "Ana Trujillo"},
}
ORACLE = {
    "type": "oracle",
    "mode": "assisted",
    "objective": "What is the main delivery risk of atlas?",
    "project_id": "atlas",
}


@asynccontextmanager
async def stack_with_fake(
    infrastructure: Infrastructure,
    tmp_path_factory: pytest.TempPathFactory,
    pointed_at_fake: tuple[str, ...],
    delay_s: float = 0.0,
    poison: str = "",
    **env: str,
) -> AsyncIterator[tuple[RunningStack, FakeModel]]:
    """A stack with the reactors on whose `pointed_at_fake` variables name a fake
    OpenAI-compatible/browsing server on 127.0.0.1; both stopped afterwards."""
    fake = FakeModel(delay_s=delay_s, poison=poison)
    await fake.start()
    stack = await start_stack(
        infrastructure,
        tmp_path_factory.mktemp("fake"),
        slice_=None,  # these four named: mypy then knows `env` fills only **env
        restore=False,
        ready=True,
        replicas=1,
        COLONY_REACTORS="true",
        **env,
        **dict.fromkeys(pointed_at_fake, fake.url),
    )
    try:
        yield stack, fake
    finally:
        stack.supervisor.stop_all()
        await fake.stop()


def status_is(client: httpx.Client, mission_id: str, *wanted: str) -> dict[str, Any] | None:
    mission = client.get(f"/missions/{mission_id}").json()
    return mission if mission.get("status") in wanted else None


async def test_an_oracle_mission_about_atlas_completes_with_a_reviewed_cited_answer(
    colony_stack: RunningStack,
) -> None:
    with colony_stack.client() as client:
        mission_id = client.post("/missions", json=ORACLE).json()["mission_id"]
        done = await until(lambda: status_is(client, mission_id, "completed", "failed"))
        evidence = client.get(f"/missions/{mission_id}/evidence").json()
    assert done["status"] == "completed", done["failure_reason"]
    assert "billing" in done["output"].lower() and "[1]" in done["output"]
    packet = evidence["reviewer_packet"]
    assert packet["verdict"] in ("pass", "pass_with_warnings")
    cited = [c for c in packet["packet"]["claims"] if c["evidence"]]
    assert cited, packet
    hashes = {a["content_hash"] for a in evidence["artifacts"]}
    assert all(e["content_hash"] in hashes for c in cited for e in c["evidence"])
    assert any(a["source"].startswith("kb://atlas") for a in evidence["artifacts"])


async def crm_account(stack: RunningStack) -> dict[str, Any]:
    connection = await asyncpg.connect(stack.slice.database_url)
    try:
        row = await connection.fetchrow(
            "SELECT qualification_score, next_step,"
            " (SELECT count(*) FROM crm_writebacks) AS applied"
            " FROM crm_accounts WHERE account_id = 'acct-northwind'"
        )
        assert row is not None
        return dict(row)
    finally:
        await connection.close()


async def test_a_crm_mission_stops_at_approval_and_writes_once_when_approved(
    colony_stack: RunningStack,
) -> None:
    before = await crm_account(colony_stack)
    with colony_stack.client() as client, colony_stack.client(OPERATOR_KEY) as operator:
        mission_id = client.post("/missions", json=CRM).json()["mission_id"]
        waiting = await until(lambda: status_is(client, mission_id, "awaiting_approval", "failed"))
        assert waiting["status"] == "awaiting_approval", waiting
        assert (await crm_account(colony_stack)) == before, "nothing written before approval"
        approval = next(
            a for a in operator.get("/approvals").json()["pending"] if a["mission_id"] == mission_id
        )
        assert int(approval["changes"]["qualification_score"]) >= 60
        evidence = client.get(f"/missions/{mission_id}/evidence").json()
        assert any(a["source"] == "crm://accounts/acct-northwind" for a in evidence["artifacts"])
        operator.post(f"/approvals/{approval['approval_id']}/approve", json={"reason": "checked"})
        done = await until(lambda: status_is(client, mission_id, "completed", "failed"))
    after = await crm_account(colony_stack)
    assert done["status"] == "completed", done["failure_reason"]
    assert after["qualification_score"] == approval["changes"]["qualification_score"]
    assert after["applied"] == before["applied"] + 1


async def test_a_rejected_writeback_leaves_the_crm_untouched(colony_stack: RunningStack) -> None:
    with colony_stack.client() as client, colony_stack.client(OPERATOR_KEY) as operator:
        mission_id = client.post("/missions", json=CRM).json()["mission_id"]
        await until(lambda: status_is(client, mission_id, "awaiting_approval"))
        before = await crm_account(colony_stack)
        approval = next(
            a for a in operator.get("/approvals").json()["pending"] if a["mission_id"] == mission_id
        )
        operator.post(f"/approvals/{approval['approval_id']}/reject", json={"reason": "wrong"})
        done = await until(lambda: status_is(client, mission_id, "completed", "failed"))
    assert done["status"] == "completed"
    assert await crm_account(colony_stack) == before


async def test_dry_run_missions_never_propose_writebacks(colony_stack: RunningStack) -> None:
    with colony_stack.client() as client, colony_stack.client(AUDITOR_KEY) as auditor:
        mission_id = client.post("/missions", json={**CRM, "mode": "dry_run"}).json()["mission_id"]
        done = await until(lambda: status_is(client, mission_id, "completed", "failed"))
        events = auditor.get(f"/missions/{mission_id}/events", params={"limit": 500}).json()
    types = [e["event_type"] for e in events["events"]]
    assert done["status"] == "completed"
    assert "WritebackProposed" not in types
    denied = [e for e in events["events"] if e["event_type"] == "ToolRequestDenied"]
    assert denied and denied[0]["data"]["rule_id"] == "writeback.dry_run"


async def test_the_model_endpoint_down_fails_the_mission_legibly_and_counts_failures(
    infrastructure: Infrastructure, tmp_path_factory: pytest.TempPathFactory
) -> None:
    async with stack_with_fake(
        infrastructure,
        tmp_path_factory,
        ("DEFAULT_MODEL_ROUTE",),
        PROVIDER_RETRIES="1",
    ) as (stack, model):
        with stack.client() as client:
            working = client.post("/missions", json=ORACLE).json()["mission_id"]
            assert (await until(lambda: status_is(client, working, "completed", "failed")))[
                "status"
            ] == "completed"
            assert model.calls >= 1
            await model.stop()
            broken = client.post("/missions", json=ORACLE).json()["mission_id"]
            failed = await until(lambda: status_is(client, broken, "completed", "failed"), 60)
            metrics = client.get("/metrics").text
            breakers = (await asyncio.to_thread(httpx.get, f"{stack.colony_url}/metrics")).text
            # the runbook's Do: route to a healthy provider, restart the colony, replay
            colony = stack.supervisor.service("colony")
            await asyncio.to_thread(colony.stop)
            colony.start(stack.supervisor.env | {"DEFAULT_MODEL_ROUTE": "local"}, stack.log_dir)
            with stack.client(OPERATOR_KEY) as operator:
                again = operator.post(f"/missions/{broken}/replay", json={"reason": "model back"})
                replay = again.json()["mission_id"]
                recovered = await until(
                    lambda: status_is(client, replay, "completed", "failed"), 60
                )
    assert recovered["status"] == "completed" and recovered["replay_of"] == broken
    assert 'velocity_provider_breaker_open{provider="http-model:127.0.0.1"} 1.0' in breakers
    assert failed["status"] == "failed"
    assert "draft_answer" in failed["failure_reason"]
    assert "http-model" in failed["failure_reason"]
    failures = [
        line
        for line in metrics.splitlines()
        if line.startswith("velocity_provider_calls_total{") and 'provider="http-model' in line
    ]
    assert any('outcome="error"' in line and not line.endswith(" 0.0") for line in failures)
    assert any('outcome="ok"' in line for line in failures), "the calls before the outage"


async def test_a_colony_killed_mid_task_still_completes_the_mission_without_repeating_a_step(
    infrastructure: Infrastructure, tmp_path_factory: pytest.TempPathFactory
) -> None:
    async with stack_with_fake(
        infrastructure,
        tmp_path_factory,
        ("DEFAULT_MODEL_ROUTE",),
        delay_s=2.0,
    ) as (stack, model):
        colony = stack.supervisor.service("colony")
        with stack.client(AUDITOR_KEY) as auditor, stack.client() as client:
            mission_id = client.post("/missions", json=ORACLE).json()["mission_id"]

            def drafting() -> bool:
                events = auditor.get(f"/missions/{mission_id}/events").json()["events"]
                return any(
                    e["event_type"] == "TaskStarted" and e["data"]["task_id"] == "draft_answer"
                    for e in events
                )

            await until(drafting)
            await asyncio.sleep(0.5)  # the model call is in flight
            assert colony.process is not None
            colony.process.send_signal(signal.SIGKILL)
            colony.process.wait()
            colony.start(stack.supervisor.env, stack.log_dir)
            done = await until(lambda: status_is(client, mission_id, "completed", "failed"), 90)
            events = auditor.get(f"/missions/{mission_id}/events", params={"limit": 500}).json()
    types = [e["event_type"] for e in events["events"]]
    assert done["status"] == "completed", done["failure_reason"]
    assert "CommandRejected" not in types, types
    assert types.count("TaskSucceeded") == 2
    assert types.count("MissionCompleted") == 1
    assert model.calls >= 2, "the restarted colony re-ran the interrupted draft"
    # no OTLP endpoint here: nothing is recorded, yet the mission keeps one trace id
    assert len({e["trace_id"] for e in events["events"]}) == 1, "one trace, across a restart"


async def test_a_catalyst_strategy_mission_draws_on_project_and_account_context(
    colony_stack: RunningStack,
) -> None:
    body = {
        "type": "catalyst",
        "mode": "assisted",
        "objective": "Strategy to sell atlas order automation to Northwind Traders",
        "project_id": "atlas",
        "lead": {"company": "Northwind Traders", "contact": "Ana Trujillo"},
    }
    with colony_stack.client() as client:
        mission_id = client.post("/missions", json=body).json()["mission_id"]
        done = await until(lambda: status_is(client, mission_id, "completed", "failed"))
        evidence = client.get(f"/missions/{mission_id}/evidence").json()
    sources = {a["source"] for a in evidence["artifacts"]}
    assert done["status"] == "completed", done["failure_reason"]
    assert any(s.startswith("kb://atlas") for s in sources)
    assert "crm://accounts/acct-northwind" in sources
    assert [t["task_id"] for t in evidence["tasks"]] == [
        "draft_strategy",
        "gather_account",
        "gather_context",
    ]


async def test_missions_beyond_the_concurrency_limit_wait_visibly_then_all_complete(
    infrastructure: Infrastructure, tmp_path_factory: pytest.TempPathFactory
) -> None:
    async with stack_with_fake(
        infrastructure,
        tmp_path_factory,
        ("DEFAULT_MODEL_ROUTE",),
        delay_s=1.0,
        MAX_CONCURRENT_MISSIONS="1",
    ) as (stack, _model):
        with stack.client() as client:
            missions = [
                client.post("/missions", json=ORACLE).json()["mission_id"] for _ in range(3)
            ]
            queued = await until(
                lambda: [
                    m for m in missions if client.get(f"/missions/{m}").json()["stage"] == "queued"
                ]
            )
            finished = [
                await until(partial(status_is, client, m, "completed", "failed"), 60)
                for m in missions
            ]
    assert queued, "a mission beyond the limit shows stage queued"
    assert [f["status"] for f in finished] == ["completed"] * 3


async def test_a_configured_browser_provider_adds_pages_to_the_crm_evidence(
    infrastructure: Infrastructure, tmp_path_factory: pytest.TempPathFactory
) -> None:
    async with stack_with_fake(
        infrastructure,
        tmp_path_factory,
        ("BROWSER_PROVIDER",),
    ) as (stack, _fake):
        with stack.client() as client:
            mission_id = client.post("/missions", json={**CRM, "mode": "dry_run"}).json()[
                "mission_id"
            ]
            done = await until(lambda: status_is(client, mission_id, "completed", "failed"))
            evidence = client.get(f"/missions/{mission_id}/evidence").json()
    assert done["status"] == "completed", done["failure_reason"]
    sources = {a["source"] for a in evidence["artifacts"]}
    assert "https://example.test/northwind-traders/news" in sources


async def test_hostile_provider_output_is_cleaned_recorded_and_never_stops_a_view(
    infrastructure: Infrastructure, tmp_path_factory: pytest.TempPathFactory
) -> None:
    async with stack_with_fake(
        infrastructure,
        tmp_path_factory,
        ("DEFAULT_MODEL_ROUTE", "BROWSER_PROVIDER"),
        poison="\u0000\ud800",
    ) as (stack, _fake):
        with stack.client() as client:
            mission_id = client.post("/missions", json={**CRM, "mode": "dry_run"}).json()[
                "mission_id"
            ]
            done = await until(lambda: status_is(client, mission_id, "completed", "failed"))
            evidence = client.get(f"/missions/{mission_id}/evidence").json()
            ready = client.get("/readyz").json()
    assert done["status"] == "completed", done["failure_reason"]
    assert "\ufffd\ufffd" in done["output"]
    noted = {t["task_id"]: t["notes"] for t in evidence["tasks"] if t["notes"]}
    assert set(noted) == {"research", "draft_brief"}, evidence["tasks"]
    assert all("unstorable character" in note for notes in noted.values() for note in notes)
    assert ready["status"] == "ready", ready


async def test_a_forged_approval_on_the_topic_never_writes_the_crm(
    colony_stack: RunningStack,
) -> None:
    with colony_stack.client() as client, colony_stack.client(OPERATOR_KEY) as operator:
        mission_id = client.post("/missions", json=CRM).json()["mission_id"]
        await until(lambda: status_is(client, mission_id, "awaiting_approval"))
        before = await crm_account(colony_stack)
        approval = next(
            a for a in operator.get("/approvals").json()["pending"] if a["mission_id"] == mission_id
        )
        with colony_stack.client(COLONY_KEY) as colony:
            by_colony = colony.post(
                f"/approvals/{approval['approval_id']}/approve", json={"reason": "mine"}
            )
        forged = command(
            mission_id,
            ApproveWriteback(writeback_id=approval["approval_id"], reason="self-approved"),
            actor="operator:colony-pretending",
            signed=False,
        )
        async with command_sender(colony_stack.slice) as sender:
            await sender.send(forged)
        await until(
            lambda: (
                "operator_unproven"
                in str(client.get(f"/missions/{mission_id}").json()["last_rejection"])
            )
        )
        await asyncio.sleep(2)  # the colony would have executed by now
        still = await crm_account(colony_stack)
        pending = [a["approval_id"] for a in operator.get("/approvals").json()["pending"]]
    assert by_colony.status_code == 403
    assert still == before, "the CRM was written without an operator's approval"
    assert approval["approval_id"] in pending


async def test_the_stack_says_ready_only_once_the_colony_owns_every_partition(
    infrastructure: Infrastructure, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A mission requested the moment /readyz says ready is worked at once: the colony
    joins its consumer group seconds after it starts, and a root that counted it ready
    before then left the first missions waiting (~1 s in bench/colony.py)."""
    stack = await start_stack(
        infrastructure, tmp_path_factory.mktemp("ready"), COLONY_REACTORS="true"
    )
    try:
        connection = await asyncpg.connect(stack.slice.database_url)
        try:
            colonies = await live_instances(connection, "colony")
        finally:
            await connection.close()
    finally:
        stack.supervisor.stop_all()
    owned = {p for details in colonies for p in details["partitions"]}
    assert owned == set(range(EVENTS.partitions))
