"""The root API over HTTP against the running stack: every endpoint's success path and
its bad inputs (401, 403, 404, 409, 413, 422 naming the field)."""

from __future__ import annotations

import itertools
import uuid
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import (
    AUDITOR_KEY,
    COLONY_KEY,
    OPERATOR_KEY,
    Colony,
    RunningStack,
    until,
)

pytestmark = pytest.mark.e2e
ORACLE = {"type": "oracle", "mode": "assisted", "objective": "Atlas risks?", "project_id": "atlas"}
CRM = {
    "type": "crm",
    "mode": "assisted",
    "objective": "Qualify Northwind Traders",
    "lead": {"company": "Northwind Traders", "contact": "Ana Trujillo"},
}


def open_mission(client: httpx.Client, body: dict[str, Any]) -> str:
    response = client.post("/missions", json=body)
    assert response.status_code == 202, response.text
    return str(response.json()["mission_id"])


def mission(client: httpx.Client, mission_id: str) -> dict[str, Any]:
    return dict(client.get(f"/missions/{mission_id}").json())


def test_type_specific_fields_are_required_and_named(stack: RunningStack) -> None:
    with stack.client() as client:
        oracle = client.post("/missions", json={**ORACLE, "project_id": None})
        crm = client.post("/missions", json={k: v for k, v in CRM.items() if k != "lead"})
        no_contact = client.post("/missions", json={**CRM, "lead": {"company": "X"}})
    assert oracle.status_code == 422 and oracle.json()["errors"][0]["field"] == "project_id"
    assert crm.status_code == 422 and crm.json()["errors"][0]["field"] == "lead"
    assert (
        no_contact.status_code == 422 and no_contact.json()["errors"][0]["field"] == "lead.contact"
    )


def test_budgets_are_integers_and_a_boolean_is_not_one(stack: RunningStack) -> None:
    with stack.client() as client:
        flag = client.post("/missions", json={**ORACLE, "token_budget": True})
        whole = client.post("/missions", json={**ORACLE, "time_budget_ms": 60_000.0})
    assert flag.status_code == 422 and flag.json()["errors"][0]["field"] == "token_budget"
    assert whole.status_code == 202, whole.text


def test_an_idempotency_key_reused_for_another_mission_is_a_conflict(stack: RunningStack) -> None:
    key = {"Idempotency-Key": f"k-{uuid.uuid4()}"}
    with stack.client() as client:
        first = client.post("/missions", json=ORACLE, headers=key)
        again = client.post("/missions", json=ORACLE, headers=key)
        other = client.post(
            "/missions", json={**ORACLE, "objective": "Something else"}, headers=key
        )
    assert first.json()["mission_id"] == again.json()["mission_id"]
    assert other.status_code == 409
    assert other.json()["type"] == "urn:velocity:problem:idempotency_conflict"


async def test_respond_async_answers_once_the_log_holds_the_request(stack: RunningStack) -> None:
    key = {"Idempotency-Key": f"k-{uuid.uuid4()}", "Prefer": "respond-async"}
    with stack.client() as client:
        quick = client.post("/missions", json=ORACLE, headers=key)
        mission_id = quick.json()["mission_id"]
        projected = await until(lambda: client.get(f"/missions/{mission_id}").status_code == 200)
        again = client.post("/missions", json=ORACLE, headers=key)
        waited = client.post("/missions", json=ORACLE)
    assert quick.status_code == 202 and quick.json()["status"] == "accepted"
    assert quick.headers["preference-applied"] == "respond-async"
    assert projected, "the mission it accepted is there to read"
    assert again.json() == {**quick.json(), "status": "requested"}, "a retry: the same mission"
    assert waited.status_code == 202 and "preference-applied" not in waited.headers


def test_missions_are_listed_filtered_and_paginated(stack: RunningStack) -> None:
    objective = f"listing {uuid.uuid4()}"
    with stack.client() as client:
        made = {open_mission(client, {**ORACLE, "objective": objective}) for _ in range(3)}
        open_mission(client, {**CRM, "objective": objective})
        first = client.get("/missions", params={"type": "oracle", "limit": 2}).json()
        second = client.get(
            "/missions", params={"type": "oracle", "limit": 2, "cursor": first["next_cursor"]}
        ).json()
        bad = client.get("/missions", params={"cursor": "not-a-cursor"})
    seen = [m["mission_id"] for m in first["items"] + second["items"]]
    assert len(first["items"]) == 2 and first["next_cursor"]
    assert len(seen) == len(set(seen))
    assert made <= set(seen) or len(seen) == 4
    assert all(m["type"] == "oracle" for m in first["items"] + second["items"])
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "cursor"


async def test_a_crm_mission_is_approved_once_by_an_operator(stack: RunningStack) -> None:
    colony = Colony(stack)
    with stack.client() as client:
        mission_id = open_mission(client, CRM)
    writeback = str(uuid.uuid4())
    await colony.to_review(mission_id)
    await colony.propose(mission_id, writeback)
    with stack.client(OPERATOR_KEY) as operator, stack.client(AUDITOR_KEY) as auditor:
        queue = await until(
            lambda: [
                a
                for a in operator.get("/approvals").json()["pending"]
                if a["approval_id"] == writeback
            ]
        )
        assert queue[0]["mission_id"] == mission_id
        assert queue[0]["changes"] == {"qualification_score": "82"}
        assert queue[0]["age_seconds"] >= 0
        assert (
            auditor.post(f"/approvals/{writeback}/approve", json={"reason": "x"}).status_code == 403
        )
        no_reason = operator.post(f"/approvals/{writeback}/approve", json={"reason": "  "})
        assert no_reason.status_code == 422 and no_reason.json()["errors"][0]["field"] == "reason"
        approved = operator.post(f"/approvals/{writeback}/approve", json={"reason": "verified"})
        assert approved.status_code == 200, approved.text
        assert approved.json()["status"] == "approved"
        assert approved.json()["decided_by"] == "operator:local-operator"
        repeated = operator.post(f"/approvals/{writeback}/approve", json={"reason": "verified"})
        assert repeated.status_code == 200 and repeated.json()["status"] == "approved"
        late_reject = operator.post(f"/approvals/{writeback}/reject", json={"reason": "no"})
        assert late_reject.status_code == 409
        assert operator.post("/approvals/nope/approve", json={"reason": "x"}).status_code == 404
        events = operator.get(f"/missions/{mission_id}/events").json()["events"]
    approvals = [e for e in events if e["event_type"] == "WritebackApproved"]
    assert len(approvals) == 1, "the repeated approval must not append a second event"
    assert approvals[0]["actor"] == "operator:local-operator"


def whole_queue(operator: httpx.Client, **params: Any) -> tuple[list[dict[str, Any]], int]:
    """Every pending approval, followed page by page; and the total the first page gave."""
    first = operator.get("/approvals", params=params).json()
    pending, cursor = first["pending"], first["next_cursor"]
    while cursor:
        page = operator.get("/approvals", params=params | {"cursor": cursor}).json()
        pending, cursor = pending + page["pending"], page["next_cursor"]
    return pending, first["pending_total"]


async def test_the_approval_queue_is_read_a_page_at_a_time_oldest_first(
    stack: RunningStack,
) -> None:
    """Pages of `pending_limit`, followed by `next_cursor`, hold every pending approval
    once, oldest first, as many as `pending_total` says; `mission_id` narrows the queue
    to one mission's, decisions included. Bad paging answers 422 naming the parameter."""
    with stack.client() as client:
        missions = [open_mission(client, CRM) for _ in range(3)]
    writebacks = await Colony(stack).awaiting_approval(missions)
    with stack.client(OPERATOR_KEY) as operator:
        mine = set(writebacks.values())
        await until(lambda: mine <= {a["approval_id"] for a in whole_queue(operator)[0]})
        pending, total = whole_queue(operator, pending_limit=2, decided_limit=0)
        one = operator.get("/approvals", params={"mission_id": missions[1]}).json()
        rejected = operator.post(
            f"/approvals/{writebacks[missions[1]]}/reject", json={"reason": "no"}
        )
        decided = operator.get("/approvals", params={"mission_id": missions[1]}).json()
        bad = [
            operator.get("/approvals", params=params)
            for params in ({"cursor": "not-a-cursor"}, {"pending_limit": 0}, {"mission_id": "-"})
        ]
    ids = [a["approval_id"] for a in pending]
    assert len(ids) == len(set(ids)) == total, "each pending approval on exactly one page"
    assert mine <= set(ids)
    order = [(a["requested_at"], a["approval_id"]) for a in pending]
    assert order == sorted(order), "oldest first, across pages"
    assert [a["approval_id"] for a in one["pending"]] == [writebacks[missions[1]]]
    assert one["pending_total"] == 1 and one["oldest_pending_age_seconds"] >= 0
    assert rejected.status_code == 200, rejected.text
    assert decided["pending"] == [] and decided["pending_total"] == 0
    assert [(a["approval_id"], a["status"]) for a in decided["decided"]] == [
        (writebacks[missions[1]], "rejected")
    ]
    assert [(r.status_code, r.json()["errors"][0]["field"]) for r in bad] == [
        (422, "cursor"),
        (422, "pending_limit"),
        (422, "mission_id"),
    ]


async def test_the_audit_trail_pages_through_sequences_and_hashes(stack: RunningStack) -> None:
    with stack.client() as client:
        mission_id = open_mission(client, CRM)
    await Colony(stack).to_review(mission_id)
    with stack.client(AUDITOR_KEY) as auditor:
        await until(lambda: mission(auditor, mission_id)["last_sequence"] >= 7)
        first = auditor.get(f"/missions/{mission_id}/events", params={"limit": 4}).json()
        rest = auditor.get(
            f"/missions/{mission_id}/events",
            params={"after_sequence": first["next_after_sequence"]},
        ).json()
        missing = auditor.get("/missions/nope/events")
    events = first["events"] + rest["events"]
    assert [e["sequence"] for e in events] == list(range(1, 8))
    for before, after in itertools.pairwise(events):
        assert after["prev_hash"] == before["hash"]
    assert missing.status_code == 404


async def test_a_callers_traceparent_names_the_missions_trace_with_nothing_recording(
    stack: RunningStack,
) -> None:
    """No OTLP endpoint here, so no span is recorded; the trace id still comes from the
    caller's traceparent, and a request without one starts a trace of its own."""
    trace_id = uuid.uuid4().hex
    with stack.client() as client:
        continued = client.post(
            "/missions", json=ORACLE, headers={"traceparent": f"00-{trace_id}-{'ab' * 8}-01"}
        )
        first, second = open_mission(client, ORACLE), open_mission(client, ORACLE)
    assert continued.status_code == 202, continued.text
    with stack.client(AUDITOR_KEY) as auditor:

        def trace_of(mission_id: str) -> str:
            events = auditor.get(f"/missions/{mission_id}/events").json()["events"]
            return str(events[0]["trace_id"]) if events else ""

        await until(lambda: all(map(trace_of, (continued.json()["mission_id"], first, second))))
        traces = [trace_of(m) for m in (continued.json()["mission_id"], first, second)]
    assert traces[0] == trace_id
    assert len(set(traces)) == 3 and all(len(t) == 32 and t != "0" * 32 for t in traces)


async def test_operator_fails_then_replays_a_mission(stack: RunningStack) -> None:
    with stack.client() as client:
        mission_id = open_mission(client, ORACLE)
    with stack.client(OPERATOR_KEY) as operator, stack.client() as service:
        not_terminal = operator.post(f"/missions/{mission_id}/replay", json={"reason": "again"})
        assert not_terminal.status_code == 409
        assert service.post(f"/missions/{mission_id}/fail", json={"reason": "x"}).status_code == 403
        failed = operator.post(f"/missions/{mission_id}/fail", json={"reason": "stuck in intake"})
        assert failed.status_code == 200, failed.text
        assert failed.json()["status"] == "failed"
        assert failed.json()["failure_reason"] == "stuck in intake"
        assert (
            operator.post(f"/missions/{mission_id}/fail", json={"reason": "y"}).status_code == 409
        )
        replayed = operator.post(f"/missions/{mission_id}/replay", json={"reason": "provider back"})
        assert replayed.status_code == 202
        new_id = replayed.json()["mission_id"]
        fresh = await until(
            lambda: (
                mission(operator, new_id)
                if operator.get(f"/missions/{new_id}").status_code == 200
                else None
            )
        )
        assert fresh["replay_of"] == mission_id
        assert fresh["objective"] == ORACLE["objective"]
        assert mission(operator, mission_id)["replayed_as"] == [new_id]


async def test_artifacts_are_stored_by_hash_size_limited_and_become_evidence(
    stack: RunningStack,
) -> None:
    artifact = {
        "artifact_id": "crm-record",
        "kind": "crm_record",
        "source": "crm://accounts/northwind",
        "content": "Northwind Traders: 120 employees",
    }
    with stack.client() as service, stack.client(COLONY_KEY) as colony:
        mission_id = open_mission(service, CRM)
        too_early = colony.post("/internal/artifacts", json=artifact | {"mission_id": mission_id})
        assert too_early.status_code == 409, too_early.text
        assert too_early.json()["type"] == "urn:velocity:problem:mission_not_accepting_artifacts"
        await Colony(stack).to_review(mission_id)
        await until(lambda: mission(service, mission_id)["status"] == "in_review")
        stored = colony.post("/internal/artifacts", json=artifact | {"mission_id": mission_id})
        assert stored.status_code == 201, stored.text
        content_hash = stored.json()["content_hash"]
        served = service.get(f"/artifacts/{content_hash}")
        assert served.text == "Northwind Traders: 120 employees"
        assert served.headers["x-content-type-options"] == "nosniff"
        too_big = colony.post("/internal/artifacts", json={"content": "x" * 1_100_000})
        assert too_big.status_code == 413
        html = colony.post(
            "/internal/artifacts", json={"content": "<b>", "media_type": "text/html"}
        )
        assert html.status_code == 422 and html.json()["errors"][0]["field"] == "media_type"
        unknown = colony.post("/internal/artifacts", json=artifact | {"mission_id": "no-such"})
        assert unknown.status_code == 404
        assert service.post("/internal/artifacts", json={"content": "x"}).status_code == 403
    with stack.client(OPERATOR_KEY) as operator:
        forbidden = operator.post("/internal/artifacts", json={"content": "x"})
        assert forbidden.status_code == 403
        evidence = await until(
            lambda: (
                (e := operator.get(f"/missions/{mission_id}/evidence").json())["artifacts"] and e
            )
        )
    assert evidence["artifacts"][0]["content_hash"] == content_hash
    assert evidence["artifacts"][0]["source"] == "crm://accounts/northwind"


async def test_a_batch_of_artifacts_is_stored_whole_or_refused_whole(stack: RunningStack) -> None:
    sources = [
        {"artifact_id": f"src-{i}", "kind": "source", "source": f"kb://{i}", "content": text}
        for i, text in enumerate([f"first {uuid.uuid4()}", f"second {uuid.uuid4()}"])
    ]
    with stack.client() as service, stack.client(COLONY_KEY) as colony:
        mission_id = open_mission(service, CRM)
        batch = {"artifacts": [a | {"mission_id": mission_id} for a in sources]}
        refused = colony.post("/internal/artifacts/batch", json=batch)
        await Colony(stack).to_review(mission_id)
        await until(lambda: mission(service, mission_id)["status"] == "in_review")
        oversize = {"artifacts": [sources[0], {"content": "x" * 1_048_577}]}
        too_big = colony.post("/internal/artifacts/batch", json=oversize)
        stored = colony.post("/internal/artifacts/batch", json=batch)
        empty = colony.post("/internal/artifacts/batch", json={"artifacts": []})
        hashes = [item["content_hash"] for item in stored.json()["stored"]]
        served = [service.get(f"/artifacts/{h}").text for h in hashes]
        evidence = await until(
            lambda: (
                len((e := service.get(f"/missions/{mission_id}/evidence").json())["artifacts"]) == 2
                and e
            )
        )
        retried = colony.post("/internal/artifacts/batch", json=batch)
        marker = colony.post(
            "/internal/artifacts",
            json={"mission_id": mission_id, "artifact_id": "after", "content": "after retry"},
        )
        history = await until(
            lambda: (
                (h := service.get(f"/missions/{mission_id}/events").json()["events"])[-1][
                    "event_type"
                ]
                == "ArtifactsRecorded"
                and h[-1]["data"]["artifacts"][0]["artifact_id"] == "after"
                and h
            )
        )
    assert refused.status_code == 409, refused.text
    assert stored.status_code == 201, stored.text
    assert served == [a["content"] for a in sources]  # in the order sent
    assert too_big.status_code == 413 and "artifact 1: " in too_big.json()["detail"]
    assert empty.status_code == 422 and empty.json()["errors"][0]["field"] == "artifacts"
    recorded = {(a["artifact_id"], a["content_hash"]) for a in evidence["artifacts"]}
    assert recorded == {("src-0", hashes[0]), ("src-1", hashes[1])}
    assert retried.status_code == 201 and marker.status_code == 201
    batches = [e["data"]["artifacts"] for e in history if e["event_type"] == "ArtifactsRecorded"]
    # one event for the batch, none for its retry, then the single artifact after it
    assert [[a["artifact_id"] for a in b] for b in batches] == [["src-0", "src-1"], ["after"]]


async def test_evidence_shows_the_reviewer_packet_document(stack: RunningStack) -> None:
    packet = '{"verdict": "pass", "claims": [{"text": "fit", "evidence": ["abc"]}]}'
    with stack.client() as service, stack.client(COLONY_KEY) as colony:
        mission_id = open_mission(service, CRM)
        packet_hash = colony.post(
            "/internal/artifacts", json={"content": packet, "media_type": "application/json"}
        ).json()["content_hash"]
    await Colony(stack).to_review(mission_id, packet_hash=packet_hash)
    with stack.client(AUDITOR_KEY) as auditor:
        evidence = await until(
            lambda: (
                (e := auditor.get(f"/missions/{mission_id}/evidence").json())["reviewer_packet"]
                and e
            )
        )
    assert evidence["reviewer_packet"]["verdict"] == "pass"
    assert evidence["reviewer_packet"]["packet"]["claims"][0]["evidence"] == ["abc"]
    assert evidence["tasks"][0]["status"] == "succeeded"


def test_metrics_expose_missions_and_the_approval_backlog(stack: RunningStack) -> None:
    with stack.client() as client:
        open_mission(client, ORACLE)
    text = httpx.get(f"{stack.root_url}/metrics").text
    assert 'velocity_missions_active{status="requested",type="oracle"}' in text
    assert "velocity_approval_queue_pending" in text
    assert "velocity_approval_queue_oldest_age_seconds" in text
    assert 'velocity_http_requests_total{method="POST",route="/missions",status="202"}' in text
    assert "velocity_projection_lag_events" in text


def test_request_counters_name_only_the_methods_the_api_serves(stack: RunningStack) -> None:
    """Any method the HTTP parser takes would otherwise be a label: unauthenticated
    requests could add series to every scrape (WebDAV's ~30 methods times every route)."""
    for method in ("PROPFIND", "MKCOL", "LOCK"):
        assert httpx.request(method, f"{stack.root_url}/healthz").status_code == 405
    text = httpx.get(f"{stack.root_url}/metrics").text
    assert not any(f'method="{m}"' in text for m in ("PROPFIND", "MKCOL", "LOCK"))
    other = 'velocity_http_requests_total{method="other",route="/healthz",status="405"}'
    counted = [line for line in text.splitlines() if line.startswith(other)]
    assert counted and float(counted[0].split()[-1]) >= 3
