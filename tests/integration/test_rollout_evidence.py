"""The rollout step is ledger data, advanced only on evidence: a staging root records a
gate run and signs its report; a production root refuses its steps without that report,
with a forged or failing one, and accepts a genuine one, recording the report's hash.
Intake then obeys the recorded step."""

from __future__ import annotations

import copy
import hashlib
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from ledger.authority import new_key_pair
from ledger.canonical_json import canonical_json
from tests.conftest import Isolated
from tests.integration.conftest import eventually, ledger_services, prepared, root_api, serving

pytestmark = pytest.mark.integration
STAGING_SIGNING, STAGING_VERIFY = new_key_pair("staging")
PRODUCTION_SIGNING, PRODUCTION_VERIFY = new_key_pair("production")
OPERATOR = {"Authorization": "Bearer prod-operator-key"}
SERVICE = {"Authorization": "Bearer prod-service-key"}


def deployment(environment: str, signing: str, key_id: str) -> dict[str, Any]:
    """Settings of a root in `environment` with its own keys (no local secrets)."""
    return {
        "VELOCITY_ENV": environment,
        "VELOCITY_API_KEYS": "operator:ops:prod-operator-key,service:svc:prod-service-key,"
        "auditor:audit:prod-auditor-key",
        "OPERATOR_SIGNING_KEY": signing,
        "OPERATOR_SIGNING_KEY_ID": key_id,
        "COLONY_SERVICE_BASE_URL": "http://127.0.0.1:9",
        "COLONY_SERVICE_API_KEY": f"colony-{uuid.uuid4().hex}",
        "RELEASE_EVIDENCE_KEYS": STAGING_VERIFY,
        "SYNC_WAIT_MS": 5_000,
    }


@asynccontextmanager
async def roots(isolated: Isolated) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """A staging and a production root over one ledger whose decider trusts both."""
    await prepared(isolated)
    trusted = f"{STAGING_VERIFY},{PRODUCTION_VERIFY}"
    async with (
        ledger_services(isolated, OPERATOR_VERIFY_KEYS=trusted) as (decider, projector),
        root_api(isolated, **deployment("staging", STAGING_SIGNING, "staging")) as staging,
        root_api(isolated, **deployment("production", PRODUCTION_SIGNING, "production")) as prod,
    ):
        await serving(decider, projector)
        yield staging, prod


async def gate_run(staging: httpx.AsyncClient, failing_gate: int | None = None) -> str:
    """A completed staging gate run with one check per gate; returns its run id."""
    run_id = str(uuid.uuid4())
    body = {"run_id": run_id, "version": "0.1.0", "environment": "staging", "root_url": "x"}
    assert (await staging.post("/releases/gates", json=body, headers=OPERATOR)).status_code == 201
    for gate in (1, 2, 3, 4):
        check = {
            "gate": gate,
            "check": f"check of gate {gate}",
            "passed": gate != failing_gate,
            "evidence": f"mission m-{gate}",
            "duration_ms": 10,
        }
        answer = await staging.post(
            f"/releases/gates/{run_id}/checks", json=check, headers=OPERATOR
        )
        assert answer.status_code == 201, answer.text
    done = await staging.post(f"/releases/gates/{run_id}/complete", headers=OPERATOR)
    assert done.status_code == 200 and done.json()["passed"] is (failing_gate is None)
    return run_id


async def report(staging: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    answer = await staging.get(f"/releases/gates/{run_id}/report", headers=OPERATOR)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


async def advance(
    root: httpx.AsyncClient, to_step: int, evidence: dict[str, Any] | None = None
) -> httpx.Response:
    body: dict[str, Any] = {"to_step": to_step, "reason": "release 0.1.0"}
    if evidence is not None:
        body["evidence"] = evidence
    return await root.post("/releases/rollout/advance", json=body, headers=OPERATOR)


async def test_production_steps_need_a_genuine_passing_staging_report(isolated: Isolated) -> None:
    async with roots(isolated) as (staging, production):
        refused = await advance(production, 4)
        assert refused.status_code == 409, refused.text
        assert "needs --evidence" in refused.json()["detail"]

        failing = await report(staging, await gate_run(staging, failing_gate=2))
        refused = await advance(production, 5, failing)
        assert refused.status_code == 409 and "did not pass" in refused.json()["detail"]

        genuine = await report(staging, await gate_run(staging))
        forged = copy.deepcopy(genuine)
        forged["document"]["checks"][1]["passed"] = True
        forged["document"]["environment"] = "staging "
        refused = await advance(production, 4, forged)
        assert refused.status_code == 409
        assert refused.json()["type"].endswith("evidence_not_signed")

        crm = {
            "type": "crm",
            "mode": "assisted",
            "objective": "qualify",
            "lead": {"company": "A", "contact": "B"},
        }
        before = await production.post("/missions", json=crm, headers=SERVICE)
        assert before.json()["type"].endswith("rollout_not_enabled"), "step 1: no CRM yet"

        moved = await advance(production, 5, genuine)
        assert moved.status_code == 200, moved.text
        state = moved.json()
        assert (state["environment"], state["ledger_step"], state["effective_step"]) == (
            "production",
            5,
            5,
        )
        recorded = state["history"][0]
        assert recorded["evidence_hash"] == hashlib.sha256(canonical_json(genuine)).hexdigest()
        assert recorded["evidence_run_id"] == genuine["document"]["run_id"]
        assert recorded["changed_by"] == "operator:ops"

        after = await production.post("/missions", json=crm, headers=SERVICE)
        assert after.status_code == 202, after.text
        autonomous = await production.post(
            "/missions", json=crm | {"mode": "autonomous"}, headers=SERVICE
        )
        assert autonomous.json()["type"].endswith("rollout_not_enabled"), "never autonomous"


async def test_staging_advances_only_after_its_own_passing_run_and_rolls_back_freely(
    isolated: Isolated,
) -> None:
    async with roots(isolated) as (staging, _):
        refused = await advance(staging, 2)
        assert refused.status_code == 409 and "velocity gates run" in refused.json()["detail"]
        await gate_run(staging)
        assert (await advance(staging, 3)).json()["ledger_step"] == 3
        back = await staging.post(
            "/releases/rollout/rollback",
            json={"to_step": 2, "reason": "incident 42"},
            headers=OPERATOR,
        )
        assert back.status_code == 200
        assert back.json()["history"][0]["direction"] == "rolled_back"
        sideways = await staging.post(
            "/releases/rollout/rollback", json={"to_step": 2, "reason": "again"}, headers=OPERATOR
        )
        assert sideways.status_code == 409, "the ledger refuses a rollback that goes nowhere"
        runs = await eventually(lambda: _runs(staging))
        assert runs[0]["environment"] == "staging"


async def _runs(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    return list((await client.get("/releases/gates", headers=OPERATOR)).json()["runs"])
