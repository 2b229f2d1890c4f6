"""`velocity gates run`: the seed's release gates 1-4 against a running deployment.

Every check is real: missions go through the root as a service would send them, the
approval is given as an operator, the evidence is read back as an auditor. Each result
is printed as it comes (pass or fail, with its evidence: mission ids, sequences, timings)
and recorded in the ledger as the release stream `release-gates:<run_id>` through the
root's operator routes, so the run is served at GET /releases/gates and in the console.

What "stable" means for gate 4: STABLE_RUNS Oracle missions with the same objective give
the same answer text and the same verdict, and cite the same evidence (content hashes).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from colony_consumers.policy import PolicyContext, evaluate_tool, evaluate_writeback

STABLE_RUNS = 3
QUICK_S = 1.0
MISSION_TIMEOUT_S = 180.0
ORACLE = {
    "type": "oracle",
    "mode": "assisted",
    "objective": "What is the main delivery risk of atlas?",
    "project_id": "atlas",
}
CRM = {
    "type": "crm",
    "mode": "assisted",
    "objective": "Qualify Northwind Traders and propose a next step",
    "lead": {"company": "Northwind Traders", "contact": "Ana Trujillo"},
}
TERMINAL = ("completed", "failed", "cancelled", "timed_out")


class GateFailure(Exception):
    """A check did not hold; the message is its evidence."""


@dataclass(frozen=True)
class CheckResult:
    gate: int
    check: str
    passed: bool
    evidence: str
    duration_ms: int


@dataclass(frozen=True)
class GateKeys:
    service: str
    operator: str
    auditor: str


@dataclass
class Findings:
    """What one check learns that a later one reuses (missions already run)."""

    oracle: dict[str, Any] = field(default_factory=dict)
    crm: dict[str, Any] = field(default_factory=dict)
    queue_seen: str = ""


class Deployment:
    """The root under test, seen through its three kinds of key."""

    def __init__(self, root_url: str, keys: GateKeys) -> None:
        self.root_url = root_url.rstrip("/")
        self.service = self._client(keys.service)
        self.operator = self._client(keys.operator)
        self.auditor = self._client(keys.auditor)

    def _client(self, key: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.root_url, headers={"Authorization": f"Bearer {key}"}, timeout=30
        )

    async def close(self) -> None:
        for client in (self.service, self.operator, self.auditor):
            await client.aclose()

    async def submit(self, body: dict[str, Any]) -> str:
        answer = await self.service.post("/missions", json=body)
        if answer.status_code not in (200, 202):
            raise GateFailure(f"POST /missions answered {answer.status_code}: {answer.text[:300]}")
        return str(answer.json()["mission_id"])

    async def mission(self, mission_id: str) -> dict[str, Any]:
        answer = await self.auditor.get(f"/missions/{mission_id}")
        return answer.json() if answer.status_code == 200 else {"status": "unknown"}

    async def until(self, mission_id: str, *statuses: str) -> dict[str, Any]:
        deadline = time.monotonic() + MISSION_TIMEOUT_S
        while time.monotonic() < deadline:
            now = await self.mission(mission_id)
            if now.get("status") in statuses:
                return now
            await asyncio.sleep(0.25)
        raise GateFailure(f"mission {mission_id} not {'/'.join(statuses)} in {MISSION_TIMEOUT_S}s")

    async def events(self, mission_id: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        after = 0
        while True:
            page = (
                await self.auditor.get(
                    f"/missions/{mission_id}/events",
                    params={"after_sequence": after, "limit": 500},
                )
            ).json()
            found += page["events"]
            if page.get("next_after_sequence") is None:
                return found
            after = page["next_after_sequence"]

    async def evidence(self, mission_id: str) -> dict[str, Any]:
        return dict((await self.auditor.get(f"/missions/{mission_id}/evidence")).json())


def types(events: list[dict[str, Any]]) -> list[str]:
    return [e["event_type"] for e in events]


class GateRun:
    """The checks of gates 1-4, run in order, each recorded as it completes."""

    def __init__(
        self, deployment: Deployment, say: Callable[[str], None], record: RecordCheck
    ) -> None:
        self.root = deployment
        self.say = say
        self.record = record
        self.found = Findings()
        self.results: list[CheckResult] = []

    async def check(self, gate: int, name: str, work: Callable[[], Awaitable[str]]) -> None:
        started = time.perf_counter()
        try:
            evidence, passed = await work(), True
        except GateFailure as failure:
            evidence, passed = str(failure), False
        except (httpx.HTTPError, KeyError, ValueError) as error:
            evidence, passed = f"{type(error).__name__}: {error}", False
        result = CheckResult(
            gate, name, passed, evidence, int((time.perf_counter() - started) * 1000)
        )
        self.results.append(result)
        mark = "PASS" if passed else "FAIL"
        self.say(f"gate {gate}  {mark}  {name} ({result.duration_ms} ms)\n          {evidence}")
        await self.record(result)

    async def run_all(self) -> list[CheckResult]:
        checks: list[tuple[int, str, Callable[[], Awaitable[str]]]] = [
            (1, "schema applied at head, checksums match", self.schema_at_head),
            (1, "root and colony health green", self.health_green),
            (1, "one Oracle mission completes", self.oracle_completes),
            (1, "one CRM mission completes through an operator's approval", self.crm_completes),
            (2, "a blocked tool is denied with its rule id", self.blocked_tool),
            (2, "a blocked writeback is denied (dry run, live)", self.blocked_writeback_live),
            (2, "a blocked writeback is denied (production rules)", self.blocked_writeback_rules),
            (2, "an executed writeback needed an explicit operator action", self.operator_action),
            (3, "a mission replays, every claim's evidence resolving by hash", self.replayable),
            (3, "a failure keeps its reason and artifacts", self.failure_kept),
            (3, "the approval queue is visible (API and metrics)", self.queue_visible),
            (4, f"output stable across {STABLE_RUNS} identical Oracle missions", self.stable),
            (4, "the reviewer packet explains why it can be trusted", self.packet_explains),
            (4, f"a mission's trail and evidence served in under {QUICK_S:.0f} s", self.quick),
        ]
        for gate, name, work in checks:
            await self.check(gate, name, work)
        return self.results

    async def schema_at_head(self) -> str:
        ready = (await self.root.service.get("/readyz")).json()
        migrations = ready["checks"]["migrations"]
        if not migrations["ok"]:
            raise GateFailure(f"migrations: {migrations.get('detail')}")
        return "readyz migrations ok: every migration applied, checksums as shipped"

    async def health_green(self) -> str:
        ready = (await self.root.service.get("/readyz")).json()
        if ready["status"] != "ready":
            raise GateFailure(
                f"root /readyz {ready['status']}: failing {ready['failing']}, "
                f"degraded {ready['degraded']}"
            )
        colony = ready["checks"].get("colony", {})
        if not colony.get("ok"):
            raise GateFailure(f"colony check: {colony.get('detail', 'absent (COLONY_ENABLED?)')}")
        return f"root ready with {len(ready['checks'])} checks ok, colony included"

    async def oracle_completes(self) -> str:
        mission_id = await self.root.submit(ORACLE)
        done = await self.root.until(mission_id, *TERMINAL)
        if done["status"] != "completed":
            raise GateFailure(
                f"mission {mission_id} {done['status']}: {done.get('failure_reason')}"
            )
        self.found.oracle = done
        return f"mission {mission_id} completed at sequence {done['last_sequence']}"

    async def crm_completes(self) -> str:
        mission_id = await self.root.submit(CRM)
        waiting = await self.root.until(mission_id, "awaiting_approval", *TERMINAL)
        if waiting["status"] != "awaiting_approval":
            raise GateFailure(f"mission {mission_id} {waiting['status']} before any approval")
        queue = await self.root.operator.get("/approvals", params={"mission_id": mission_id})
        approval = next(iter(queue.json()["pending"]), None)
        if approval is None:
            raise GateFailure(f"mission {mission_id} waits but its approval is not queued")
        metrics = (await self.root.service.get("/metrics")).text
        self.found.queue_seen = _queue_observation(approval, metrics)
        await asyncio.sleep(1.0)
        early = [t for t in types(await self.root.events(mission_id)) if t == "WritebackExecuted"]
        if early:
            raise GateFailure(f"mission {mission_id} wrote to the CRM before any approval")
        decision = await self.root.operator.post(
            f"/approvals/{approval['approval_id']}/approve", json={"reason": "release gate run"}
        )
        if decision.status_code not in (200, 202):
            raise GateFailure(f"approve answered {decision.status_code}: {decision.text[:200]}")
        done = await self.root.until(mission_id, *TERMINAL)
        if done["status"] != "completed":
            raise GateFailure(
                f"mission {mission_id} {done['status']}: {done.get('failure_reason')}"
            )
        self.found.crm = done | {"approval_id": approval["approval_id"]}
        return (
            f"mission {mission_id}: awaited approval {approval['approval_id']} with nothing"
            f" written, approved by the operator, completed at sequence {done['last_sequence']}"
        )

    async def blocked_tool(self) -> str:
        cases = [
            (PolicyContext("local", "oracle", "assisted"), "crm_writeback", "tool.not_permitted"),
            (
                PolicyContext("production", "crm", "assisted"),
                "web_research",
                "prod.no_autonomous_research",
            ),
            (PolicyContext("production", "crm", "autonomous"), "crm_lookup", "prod.assisted_only"),
        ]
        seen = []
        for context, tool, rule in cases:
            decision = evaluate_tool(context, tool)
            if decision.allowed or decision.rule_id != rule:
                raise GateFailure(f"{tool} in {context}: {decision.decision} by {decision.rule_id}")
            seen.append(f"{tool}@{context.environment}/{context.mode} denied by {rule}")
        return "; ".join(seen)

    async def blocked_writeback_live(self) -> str:
        mission_id = await self.root.submit(CRM | {"mode": "dry_run"})
        done = await self.root.until(mission_id, *TERMINAL)
        events = await self.root.events(mission_id)
        denied = [
            e
            for e in events
            if e["event_type"] == "ToolRequestDenied"
            and e["data"].get("rule_id") == "writeback.dry_run"
        ]
        if not denied or "WritebackProposed" in types(events):
            raise GateFailure(f"dry-run mission {mission_id} ({done['status']}) was not blocked")
        return (
            f"mission {mission_id}: ToolRequestDenied writeback.dry_run at sequence"
            f" {denied[0]['sequence']}, no WritebackProposed"
        )

    async def blocked_writeback_rules(self) -> str:
        decision = evaluate_writeback(PolicyContext("production", "crm", "assisted"))
        if decision.allowed or decision.rule_id != "prod.writeback_gate":
            raise GateFailure(f"production writeback before the gate: {decision}")
        return "a production CRM writeback before gate 2 passed in staging: prod.writeback_gate"

    async def operator_action(self) -> str:
        mission_id = self.found.crm.get("mission_id")
        if not mission_id:
            raise GateFailure("no CRM mission completed in gate 1")
        events = await self.root.events(mission_id)
        order = types(events)
        executed = [e for e in events if e["event_type"] == "WritebackExecuted"]
        approved = [e for e in events if e["event_type"] == "WritebackApproved"]
        if len(executed) != 1 or not approved:
            raise GateFailure(
                f"mission {mission_id}: {order.count('WritebackExecuted')} writes, "
                f"{len(approved)} approvals"
            )
        if not approved[0]["actor"].startswith("operator:"):
            raise GateFailure(f"approved by {approved[0]['actor']}, not an operator")
        if approved[0]["sequence"] > executed[0]["sequence"]:
            raise GateFailure("the write came before the approval")
        return (
            f"mission {mission_id}: WritebackApproved by {approved[0]['actor']} at sequence"
            f" {approved[0]['sequence']}, before the one WritebackExecuted"
            f" at {executed[0]['sequence']}"
        )

    async def replayable(self) -> str:
        original = self.found.oracle.get("mission_id")
        if not original:
            raise GateFailure("no Oracle mission completed in gate 1")
        answer = await self.root.operator.post(
            f"/missions/{original}/replay", json={"reason": "release gate run: replay"}
        )
        if answer.status_code != 202:
            raise GateFailure(f"replay answered {answer.status_code}: {answer.text[:200]}")
        replay = answer.json()["mission_id"]
        done = await self.root.until(replay, *TERMINAL)
        if done["status"] != "completed" or done.get("replay_of") != original:
            raise GateFailure(
                f"replay {replay}: {done['status']}, replay_of {done.get('replay_of')}"
            )
        resolved = await self._resolve_claims(original)
        return f"mission {original} replayed as {replay} (completed); {resolved}"

    async def _resolve_claims(self, mission_id: str) -> str:
        packet = (await self.root.evidence(mission_id))["reviewer_packet"]["packet"]
        hashes = {e["content_hash"] for claim in packet["claims"] for e in claim["evidence"]}
        for content_hash in hashes:
            stored = await self.root.auditor.get(f"/artifacts/{content_hash}")
            if hashlib.sha256(stored.content).hexdigest() != content_hash:
                raise GateFailure(f"evidence {content_hash} does not resolve to its content")
        return f"{len(packet['claims'])} claims; {len(hashes)} evidence hashes resolve to content"

    async def failure_kept(self) -> str:
        mission_id = await self.root.submit(ORACLE | {"token_budget": 1})
        done = await self.root.until(mission_id, *TERMINAL)
        evidence = await self.root.evidence(mission_id)
        if done["status"] != "failed" or not done.get("failure_reason"):
            raise GateFailure(
                f"mission {mission_id} {done['status']} (a 1-token budget must fail it)"
            )
        if not evidence["artifacts"] and not evidence["tasks"]:
            raise GateFailure(f"failed mission {mission_id} kept nothing to debug")
        return (
            f"mission {mission_id} failed (injected fault: a 1-token budget): "
            f"'{done['failure_reason']}'; kept {len(evidence['artifacts'])} artifacts, "
            f"{len(evidence['tasks'])} tasks"
        )

    async def queue_visible(self) -> str:
        if not self.found.queue_seen:
            raise GateFailure("the CRM mission of gate 1 never showed in the queue")
        return self.found.queue_seen

    async def stable(self) -> str:
        first = self.found.oracle.get("mission_id")
        ids = [first] if first else []
        ids += await asyncio.gather(
            *(self.root.submit(ORACLE) for _ in range(STABLE_RUNS - len(ids)))
        )
        outcomes = []
        for mission_id in ids:
            done = await self.root.until(mission_id, *TERMINAL)
            packet = (await self.root.evidence(mission_id))["reviewer_packet"]
            cited = sorted(
                {e["content_hash"] for c in packet["packet"]["claims"] for e in c["evidence"]}
            )
            outcomes.append((done["status"], done["output"], packet["verdict"], tuple(cited)))
        if len(set(outcomes)) != 1:
            raise GateFailure(f"missions {ids} differ in answer, verdict or evidence")
        verdict, hashes = outcomes[0][2], len(outcomes[0][3])
        return f"missions {', '.join(ids)}: same answer, verdict {verdict}, {hashes} same hashes"

    async def packet_explains(self) -> str:
        mission_id = self.found.oracle.get("mission_id")
        if not mission_id:
            raise GateFailure("no Oracle mission completed in gate 1")
        packet = (await self.root.evidence(mission_id))["reviewer_packet"]
        claims = packet["packet"]["claims"]
        uncited = [c["text"] for c in claims if not c["evidence"]]
        why = packet["packet"].get("why_trustworthy", "")
        if not claims or uncited or not why:
            raise GateFailure(f"mission {mission_id}: {len(uncited)} uncited claims, why: {why!r}")
        return f"mission {mission_id}: all {len(claims)} claims cited; why: {why}"

    async def quick(self) -> str:
        mission_id = self.found.crm.get("mission_id") or self.found.oracle.get("mission_id")
        if not mission_id:
            raise GateFailure("no mission completed in gate 1")
        started = time.perf_counter()
        await self.root.mission(mission_id)
        events = await self.root.events(mission_id)
        evidence = await self.root.evidence(mission_id)
        for artifact in evidence["artifacts"]:
            await self.root.auditor.get(artifact["link"])
        took = time.perf_counter() - started
        if took >= QUICK_S:
            raise GateFailure(f"mission {mission_id}: trail and evidence took {took:.2f} s")
        return (
            f"mission {mission_id}: {len(events)} events, the packet and "
            f"{len(evidence['artifacts'])} artifacts in {took * 1000:.0f} ms"
        )


def _queue_observation(approval: dict[str, Any], metrics: str) -> str:
    pending = next(
        (
            line
            for line in metrics.splitlines()
            if line.startswith("velocity_approval_queue_pending ")
        ),
        "",
    )
    if not pending or float(pending.split()[-1]) < 1:
        raise GateFailure(f"/metrics does not count the pending approval: {pending!r}")
    return (
        f"approval {approval['approval_id']} listed by GET /approvals (age "
        f"{approval['age_seconds']:.1f} s) and counted by /metrics ({pending})"
    )


RecordCheck = Callable[[CheckResult], Awaitable[None]]


class Ledger:
    """Records the run through the root's operator routes (signed, hash-chained)."""

    def __init__(self, deployment: Deployment, environment: str, version: str) -> None:
        self.root = deployment
        self.run_id = str(uuid.uuid4())
        self.environment = environment
        self.version = version

    async def start(self) -> None:
        body = {
            "run_id": self.run_id,
            "version": self.version,
            "environment": self.environment,
            "root_url": self.root.root_url,
        }
        await self._post("/releases/gates", body)

    async def check(self, result: CheckResult) -> None:
        body = {
            "gate": result.gate,
            "check": result.check,
            "passed": result.passed,
            "evidence": result.evidence[:20_000],
            "duration_ms": result.duration_ms,
        }
        await self._post(f"/releases/gates/{self.run_id}/checks", body)

    async def complete(self) -> dict[str, Any]:
        await self._post(f"/releases/gates/{self.run_id}/complete", None)
        for _ in range(40):
            run = (await self.root.auditor.get(f"/releases/gates/{self.run_id}")).json()
            if run.get("completed_at"):
                return dict(run)
            await asyncio.sleep(0.25)
        raise GateFailure(f"gate run {self.run_id} not completed in the ledger")

    async def _post(self, path: str, body: dict[str, Any] | None) -> None:
        answer = await self.root.operator.post(path, json=body)
        if answer.status_code not in (200, 201, 202):
            raise GateFailure(f"POST {path} answered {answer.status_code}: {answer.text[:300]}")


async def run_gates(
    root_url: str, environment: str, keys: GateKeys, version: str, say: Callable[[str], None]
) -> int:
    """Run gates 1-4 and record them; 0 only if every check passed (and the ledger agrees)."""
    deployment = Deployment(root_url, keys)
    try:
        ledger = Ledger(deployment, environment, version)
        await ledger.start()
        say(f"gate run {ledger.run_id}: release {version} in {environment} at {root_url}")
        results = await GateRun(deployment, say, ledger.check).run_all()
        run = await ledger.complete()
    finally:
        await deployment.close()
    failed = [r for r in results if not r.passed]
    say(
        json.dumps(
            {
                "run_id": run["run_id"],
                "passed": run["passed"],
                "checks": run["checks"],
                "failed": run["failed"],
            }
        )
    )
    return 0 if run["passed"] and not failed else 1
