"""bench/drills: the fault drills against the real stack, as one table.

Each drill starts its own embedded broker and PostgreSQL and the four services, the
colony's model on a fake OpenAI-compatible endpoint that answers in MODEL_DELAY_S (so
missions are in flight when the fault comes). Missions are submitted while the fault
happens; then the drill waits until every accepted mission is terminal and checks from
outside: the missions view for lost and failed missions, the archive for commands applied
twice, gaps and tasks run again, and `velocity ledger verify` for broken chains.

The last three run two replicas of each consumer service (decider, projector, colony), as
`STACK_REPLICAS=2` does: one of each lost for good, one of each frozen past its session
and woken (a zombie), and a rolling restart of all six.

Run with `make drills` (or `python -m bench.drills [--quick] [WORD...]`, WORD picking the
drills whose names hold it, e.g. `replica`). The short version of each drill runs in
`make test` (tests/e2e/test_outages.py, tests/integration/test_fail_stop.py,
tests/integration/test_hostile_records.py, tests/e2e/test_stack_lifecycle.py,
tests/integration/test_colony_burst.py, tests/e2e/test_replicas.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import random
import shutil
import signal
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
from aiokafka import AIOKafkaProducer

from infra.broker import EmbeddedBroker, start_broker
from infra.config import CommonSettings
from infra.postgres import EmbeddedPostgres, start_postgres
from infra.preparation import prepare_infrastructure
from infra.processes import child_environment, free_port
from infra.stack import Supervisor, wait_until_ready
from infra.structured_logs import configure_logging
from infra.topics import TopicNames
from ledger.commands import ApproveWriteback
from ledger.operator_cli import verify
from ledger.wire import LedgerWire
from tests.factories import command, request_body
from tests.fake_services import FakeModel

MODEL_DELAY_S = 1.5
ORACLE = {"type": "oracle", "mode": "assisted", "objective": "Atlas risk?", "project_id": "atlas"}
CRM = {
    "type": "crm",
    "mode": "dry_run",
    "objective": "Qualify Northwind Traders",
    "lead": {"company": "Northwind Traders", "contact": "Ana Trujillo"},
}
TERMINAL = ("completed", "failed", "cancelled", "timed_out")
SERVICE = {"Authorization": "Bearer local-service-key"}


OWNS_PARTITIONS = """
    SELECT jsonb_array_length(details->'partitions') > 0 FROM service_heartbeats
    WHERE service = $1 AND instance = $2"""


@dataclass
class Drill:
    """One running stack a fault is put into."""

    home: Path
    model: FakeModel
    broker: EmbeddedBroker
    database: EmbeddedPostgres
    supervisor: Supervisor
    root_url: str
    accepted: list[str] = field(default_factory=list)

    @classmethod
    async def start(cls, model: FakeModel, replicas: int = 1, **env: str) -> Drill:
        home = Path(tempfile.mkdtemp(prefix="velocity-drill-"))
        (home / "logs").mkdir()
        broker = await asyncio.to_thread(start_broker, home / "logs" / "broker.log")
        database = await asyncio.to_thread(
            start_postgres, home, home / "logs" / "pg.log", durable=False
        )
        await prepare_infrastructure(CommonSettings(), broker.bootstrap_servers, database.url)
        root_port, colony_ports = free_port(), [free_port() for _ in range(replicas)]
        colony_port = colony_ports[0]
        environment = child_environment(
            KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap_servers,
            DATABASE_URL=database.url,
            ROOT_PORT=str(root_port),
            PORT=str(colony_port),
            COLONY_SERVICE_BASE_URL=f"http://127.0.0.1:{colony_port}",
            ROOT_API_BASE_URL=f"http://127.0.0.1:{root_port}",
            DEFAULT_MODEL_ROUTE=model.url,
            KAFKA_SESSION_TIMEOUT_MS="6000",
            KAFKA_REQUEST_TIMEOUT_MS="5000",
            LOG_FORMAT="json",
            **env,
        )
        supervisor = Supervisor.for_ports(environment, root_port, colony_ports, home / "logs")
        supervisor.start_all()
        drill = cls(home, model, broker, database, supervisor, f"http://127.0.0.1:{root_port}")
        if not await asyncio.to_thread(wait_until_ready, drill.root_url, 90):
            raise SystemExit(f"drill stack not ready; logs in {home / 'logs'}")
        return drill

    def kill(self, name: str) -> None:
        """SIGKILL a service and start it again, as its supervisor would."""
        self.lose(name)
        self.supervisor.service(name).start(self.supervisor.env, self.home / "logs")

    def lose(self, name: str) -> None:
        """SIGKILL a service for good: a node gone, nothing starts it again."""
        service = self.supervisor.service(name)
        assert service.process is not None
        service.process.send_signal(signal.SIGKILL)
        service.process.wait()

    async def redeploy(self, name: str) -> None:
        """Stop a service as a deploy does (SIGTERM: it drains and leaves its groups),
        start it again, and return once the new process owns partitions (its heartbeat
        names them), as a rolling deploy waits before it moves on to the next."""
        service = self.supervisor.service(name)
        await asyncio.to_thread(service.stop)
        service.start(self.supervisor.env, self.home / "logs")
        assert service.process is not None
        instance = f"{socket.gethostname()}:{service.process.pid}"
        connection = await asyncpg.connect(self.database.url)
        try:
            deadline = time.monotonic() + 90
            while not await connection.fetchval(OWNS_PARTITIONS, service.role, instance):
                if time.monotonic() > deadline:
                    raise SystemExit(f"{name} owns no partition 90 s after its restart")
                await asyncio.sleep(0.25)
        finally:
            await connection.close()

    async def submit(self, count: int, every_s: float) -> None:
        """Submit missions (Oracle and dry-run CRM in turn); keep the accepted ids."""
        async with httpx.AsyncClient(base_url=self.root_url, headers=SERVICE, timeout=10) as http:
            for index in range(count):
                await self._submit_one(http, ORACLE if index % 2 else CRM)
                await asyncio.sleep(every_s)

    async def submit_at_once(self, count: int, in_flight: int) -> None:
        """Submit `count` Oracle missions as fast as `in_flight` requests at a time go."""
        limit = asyncio.Semaphore(in_flight)
        async with httpx.AsyncClient(base_url=self.root_url, headers=SERVICE, timeout=30) as http:

            async def one() -> None:
                async with limit:
                    await self._submit_one(http, ORACLE)

            await asyncio.gather(*(one() for _ in range(count)))

    async def _submit_one(self, http: httpx.AsyncClient, body: Mapping[str, object]) -> None:
        key = {"Idempotency-Key": f"drill-{uuid.uuid4().hex}"}
        for _attempt in range(20):  # a client retries what was not accepted
            try:
                answer = await http.post("/missions", json=body, headers=key)
            except httpx.HTTPError:
                answer = None
            if answer is not None and answer.status_code == 202:
                self.accepted.append(answer.json()["mission_id"])
                return
            await asyncio.sleep(1)

    async def stop(self) -> None:
        """Stop everything and delete the database's files; the logs stay for reading."""
        self.supervisor.stop_all()
        self.broker.stop()
        self.database.stop()
        shutil.rmtree(self.home / "pg", ignore_errors=True)


@dataclass
class Row:
    scenario: str
    missions: int
    fault: str
    lost: int = 0
    failed: int = 0
    duplicated: int = 0
    gaps: int = 0
    broken: str = "-"
    redone: int = 0
    recover_s: float = 0.0


CHECKS = {
    "duplicated": """
        SELECT count(*) FROM (SELECT 1 FROM ledger_events
        GROUP BY mission_id, causation_id, event_type HAVING count(*) > 1) d""",
    "gaps": """
        SELECT count(*) FROM (SELECT 1 FROM ledger_events
        GROUP BY mission_id HAVING max(sequence) <> count(*)) g""",
    "redone": """
        SELECT count(*) FROM ledger_events
        WHERE event_type = 'TaskStarted' AND (data->>'attempt')::int > 1""",
}


async def settle(drill: Drill, row: Row, fault_ended: float, timeout_s: float = 240) -> None:
    """Wait until every accepted mission is terminal, then fill in the row."""
    connection = await asyncpg.connect(drill.database.url)
    try:
        while True:
            terminal = await connection.fetchval(
                "SELECT count(*) FROM missions WHERE mission_id = ANY($1) AND status = ANY($2)",
                drill.accepted,
                list(TERMINAL),
            )
            if terminal == len(drill.accepted) or time.monotonic() - fault_ended > timeout_s:
                break
            await asyncio.sleep(0.5)
        row.recover_s = time.monotonic() - fault_ended
        row.lost = len(drill.accepted) - terminal
        row.failed = await connection.fetchval(
            "SELECT count(*) FROM missions WHERE mission_id = ANY($1) AND status <> 'completed'"
            " AND status = ANY($2)",
            drill.accepted,
            list(TERMINAL),
        )
        for name, query in CHECKS.items():
            setattr(row, name, int(await connection.fetchval(query)))
    finally:
        await connection.close()
    row.missions = len(drill.accepted)
    row.broken = await chains(drill)


async def chains(drill: Drill) -> str:
    settings = CommonSettings()
    captured = io.StringIO()
    with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(io.StringIO()):
        code = await verify(
            settings, drill.broker.bootstrap_servers, drill.database.url, None, False
        )
    return "0" if code == 0 else "BROKEN"


Fault = Callable[[Drill], Awaitable[str]]


def kills(name: str, times: int) -> Fault:
    async def fault(drill: Drill) -> str:
        for _ in range(times):
            await asyncio.sleep(random.uniform(1.5, 4.0))
            drill.kill(name)
        return f"{times} SIGKILLs"

    return fault


async def broker_freeze(drill: Drill) -> str:
    await asyncio.sleep(2)
    drill.broker.process.send_signal(signal.SIGSTOP)
    await asyncio.sleep(12)
    drill.broker.process.send_signal(signal.SIGCONT)
    return "12 s frozen (request timeout 5 s)"


async def database_outage(drill: Drill) -> str:
    await asyncio.sleep(2)
    port = drill.database.port
    drill.database.stop()
    await asyncio.sleep(20)
    drill.database = await asyncio.to_thread(
        start_postgres, drill.home, drill.home / "logs" / "pg.log", durable=False, port=port
    )
    return "20 s stopped"


async def ctrl_c_then_run(drill: Drill) -> str:
    """Stop everything in order (the memory-only broker loses its data), then start
    again: the log is restored from the archive and the work goes on."""
    await asyncio.sleep(3)
    port = drill.broker.port
    await asyncio.to_thread(drill.supervisor.stop_all)
    drill.broker.stop()
    drill.broker = await asyncio.to_thread(
        start_broker, drill.home / "logs" / "broker2.log", port=port
    )
    await prepare_infrastructure(
        CommonSettings(), drill.broker.bootstrap_servers, drill.database.url, restore=True
    )
    drill.supervisor.start_all()
    await asyncio.to_thread(wait_until_ready, drill.root_url, 90)
    return "stop, empty broker, restore"


async def slow_rebuild(drill: Drill) -> str:
    await asyncio.sleep(2)
    drill.supervisor.env["DECIDER_FAULT"] = "slow_rebuild:15000"
    drill.kill("decider")
    del drill.supervisor.env["DECIDER_FAULT"]
    return "rebuild 15 s > session 6 s"


async def poison(drill: Drill) -> str:
    """Records no consumer can use, straight onto the topics: garbage bytes on both, a
    command with a NUL in its text, and an unsigned operator approval."""
    await asyncio.sleep(2)
    wire = LedgerWire()
    target = drill.accepted[0] if drill.accepted else str(uuid.uuid4())
    nul = command(str(uuid.uuid4()), request_body(objective="ok"))
    forged = command(target, ApproveWriteback(writeback_id="w", reason="x"), signed=False)
    forged = forged.model_copy(
        update={"meta": forged.meta.model_copy(update={"actor": "operator:x"})}
    )
    producer = AIOKafkaProducer(bootstrap_servers=drill.broker.bootstrap_servers, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(TopicNames().commands, b"\x00garbage", b"k")
        await producer.send_and_wait(TopicNames().events, b"\x00garbage", b"k")
        fields = nul.body.model_dump() | {"objective": "a\x00b"}
        raw = wire.codec.encode(
            "velocity.commands.RequestMission", {"meta": nul.meta.model_dump(), **fields}
        )
        await producer.send_and_wait(TopicNames().commands, raw, nul.meta.mission_id.encode())
        signed_off = wire.encode_command(forged)
        await producer.send_and_wait(TopicNames().commands, signed_off.value, signed_off.key)
    finally:
        await producer.stop()
    return "4 poison records"


BURST = 400
"""Missions submitted at once by the burst drill, 20 times the colony's slots
(MAX_CONCURRENT_MISSIONS): a burst once left every queued mission waiting until its time
budget failed it (docs/architecture.md, "Nineteenth session"). That was a race (two runs
of four with 2,000 missions; this drill passed once on that code), so its exact
interleaving is tested in tests/integration/test_colony_burst.py; the drill checks from
outside that a burst completes."""


REPLICATED = ("decider", "projector", "colony")


async def replica_lost(drill: Drill) -> str:
    """The second replica of each consumer service killed for good at once, mid-load: the
    first ones take its partitions after the session timeout."""
    await asyncio.sleep(2)
    for name in REPLICATED:
        drill.lose(f"{name}-2")
    return "3 of 6 SIGKILLed, not restarted"


FROZEN_S = 15


async def replica_frozen(drill: Drill) -> str:
    """The second replica of each consumer service frozen (SIGSTOP: a long GC pause, a
    stalled VM) past its session, so its partitions move on, then woken (SIGCONT) while it
    still believes it owns them: what it writes as a zombie must not become history."""
    await asyncio.sleep(2)
    frozen = [drill.supervisor.service(f"{name}-2").process for name in REPLICATED]
    for process in frozen:
        assert process is not None
        process.send_signal(signal.SIGSTOP)
    await asyncio.sleep(FROZEN_S)
    for process in frozen:
        assert process is not None
        process.send_signal(signal.SIGCONT)
    return f"3 of 6 frozen {FROZEN_S} s (session 6 s)"


async def rolling_restart(drill: Drill) -> str:
    """Every consumer process stopped and started again in turn, the next once the new one
    owns partitions, as a rolling deploy of a new release does; missions keep coming (one
    every 0.5 s) until the last one is back, so each restart has missions in flight."""
    await asyncio.sleep(1)
    restarted = asyncio.Event()

    async def load() -> None:
        while not restarted.is_set():
            await drill.submit(1, every_s=0.5)

    steady = asyncio.create_task(load())
    try:
        for name in REPLICATED:
            for replica in (name, f"{name}-2"):
                await drill.redeploy(replica)
    finally:
        restarted.set()
        await steady
    return "6 SIGTERMs, one at a time"


async def burst(drill: Drill) -> str:
    """A burst of requests far beyond the colony's slots, 50 in flight at a time."""
    await asyncio.sleep(2)
    await drill.submit_at_once(BURST, in_flight=50)
    return f"{BURST} more at once (20 slots)"


DRILLS: list[tuple[str, Fault, int]] = [  # name, fault, replicas of each consumer service
    ("SIGKILL decider", kills("decider", 3), 1),
    ("SIGKILL projector", kills("projector", 3), 1),
    ("SIGKILL colony", kills("colony", 3), 1),
    ("SIGKILL root", kills("root", 2), 1),
    ("broker freeze", broker_freeze, 1),
    ("PostgreSQL down", database_outage, 1),
    ("Ctrl-C, make run", ctrl_c_then_run, 1),
    ("slow rebuild", slow_rebuild, 1),
    ("poison records", poison, 1),
    ("burst", burst, 1),
    ("replica lost (2 of each)", replica_lost, 2),
    ("replica frozen (2 of each)", replica_frozen, 2),
    ("rolling restart (2 of each)", rolling_restart, 2),
]


async def run_drill(name: str, fault: Fault, missions: int, replicas: int) -> Row:
    model = FakeModel(delay_s=MODEL_DELAY_S)
    await model.start()
    drill = await Drill.start(model, replicas)
    row = Row(name, 0, "")
    try:
        load = asyncio.create_task(drill.submit(missions, every_s=0.25))
        row.fault = await fault(drill)
        fault_ended = time.monotonic()
        await load
        await settle(drill, row, fault_ended)
    finally:
        await drill.stop()
        await model.stop()
    return row


def table(rows: list[Row]) -> str:
    head = [
        *("scenario", "missions", "fault", "lost", "failed", "duplicated", "gaps", "broken"),
        *("redone", "recover s"),
    ]
    lines = [" | ".join(head), " | ".join("---" for _ in head)]
    for r in rows:
        cells = [r.scenario, r.missions, r.fault, r.lost, r.failed, r.duplicated, r.gaps]
        cells += [r.broken, r.redone, f"{r.recover_s:.1f}"]
        lines.append(" | ".join(str(c) for c in cells))
    return "\n".join(f"| {line} |" for line in lines)


async def main(quick: bool, only: list[str]) -> int:
    """`only`: run the drills whose names contain one of these words (all when empty)."""
    configure_logging(CommonSettings(LOG_LEVEL="WARNING"), "drills")
    missions = 12 if quick else 40
    rows = []
    for name, fault, replicas in DRILLS:
        if only and not any(word in name for word in only):
            continue
        print(f"drill: {name} …", file=sys.stderr, flush=True)
        rows.append(await run_drill(name, fault, missions, replicas))
    print(table(rows))
    bad = [r for r in rows if r.lost or r.duplicated or r.gaps or r.broken != "0"]
    return 1 if bad else 0


if __name__ == "__main__":
    arguments = sys.argv[1:]
    sys.exit(asyncio.run(main("--quick" in arguments, [a for a in arguments if a != "--quick"])))
