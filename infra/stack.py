"""`velocity stack run`: the whole local stack in one command, and nothing left behind.

Starts the embedded broker and PostgreSQL (unless KAFKA_BOOTSTRAP_SERVERS and
DATABASE_URL name real ones), provisions topics, applies migrations, checks the
broker is not behind the archive, then runs the decider, projector, colony service and
root API as child processes, restarting any that dies. Ctrl-C or SIGTERM stops all.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import httpx
from loguru import logger
from pydantic import Field

from colony_consumers.settings import ColonySettings
from gateway.keys import keys_of_role
from gateway.settings import RootSettings
from infra.broker import EmbeddedBroker, start_broker
from infra.config import CommonSettings, fail_configuration, load_settings
from infra.postgres import EmbeddedPostgres, start_postgres
from infra.preparation import prepare_infrastructure
from infra.processes import child_environment, spawn, stop
from infra.stack_file import write_stack_file
from infra.structured_logs import configure_logging
from infra.topics import PARTITIONS

RESTART_DELAY_S = 1.0
STOP_ORDER = ("root", "colony", "decider", "projector")
SECRETS = frozenset(
    {"OPERATOR_SIGNING_KEY", "VELOCITY_API_KEYS", "ROOT_API_KEY", "COLONY_SERVICE_API_KEY"}
)
"""Handed only to the services that need them: the colony never sees the operator signing
key or the root's API keys, the decider and projector see no key at all."""


@dataclass
class Service:
    """One child process of the stack, and the secrets it is given."""

    name: str
    module: str
    url: str | None = None
    secrets: frozenset[str] = frozenset()
    settings: dict[str, str] = field(default_factory=dict)
    """Variables of this process alone (a colony replica's PORT)."""
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    started_at: float = 0.0

    @property
    def role(self) -> str:
        """What the process is: its name without a replica's number (`decider-2` → decider)."""
        return self.name.partition("-")[0]

    def environment(self, env: dict[str, str]) -> dict[str, str]:
        shared = {k: v for k, v in env.items() if k not in SECRETS or k in self.secrets}
        return shared | self.settings

    def start(self, env: dict[str, str], log_dir: Path | None) -> None:
        log_path = log_dir / f"{self.name}.log" if log_dir else None
        self.process = spawn(
            [sys.executable, "-m", self.module], env=self.environment(env), log_path=log_path
        )
        self.started_at = time.monotonic()

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process, signal.SIGTERM, grace_s=15)


def replicas(colony_ports: Sequence[int]) -> list[Service]:
    """A decider, a projector and a colony for each port in `colony_ports`: the first ones
    named by their role, the others numbered (`decider-2`). Replicas of a service share its
    consumer group, so the broker gives each a share of the partitions, as in production."""
    services = []
    for index, port in enumerate(colony_ports):
        suffix = f"-{index + 1}" if index else ""
        services += [
            Service(f"decider{suffix}", "ledger.decider"),
            Service(f"projector{suffix}", "projections.projector"),
            Service(
                f"colony{suffix}",
                "colony_consumers.service",
                f"http://127.0.0.1:{port}",
                frozenset({"ROOT_API_KEY", "COLONY_SERVICE_API_KEY"}),
                {"PORT": str(port)},
            ),
        ]
    return services


@dataclass
class Supervisor:
    """Starts the services, restarts any that exits, stops them all on request."""

    env: dict[str, str]
    log_dir: Path | None
    services: list[Service] = field(default_factory=list)

    @classmethod
    def for_ports(
        cls,
        env: dict[str, str],
        root_port: int,
        colony_ports: Sequence[int],
        log_dir: Path | None,
    ) -> Supervisor:
        """The root on `root_port`, and `replicas(colony_ports)`: one of each with one port."""
        root = Service(
            "root",
            "gateway",
            f"http://127.0.0.1:{root_port}",
            frozenset({"OPERATOR_SIGNING_KEY", "VELOCITY_API_KEYS", "COLONY_SERVICE_API_KEY"}),
        )
        return cls(env=env, log_dir=log_dir, services=[*replicas(colony_ports), root])

    def service(self, name: str) -> Service:
        """The process named `name` (`colony`, `decider-2`)."""
        return next(s for s in self.services if s.name == name)

    def start_all(self) -> None:
        for service in self.services:
            service.start(self.env, self.log_dir)
            logger.info(
                "{} started (pid {}) {}",
                service.name,
                service.process.pid if service.process else "?",
                service.url or "",
            )

    def restart_exited(self) -> None:
        """Restart services that exited; the exit is logged with its code."""
        for service in self.services:
            if service.process is None or service.process.poll() is None:
                continue
            code = service.process.returncode
            if time.monotonic() - service.started_at < RESTART_DELAY_S:
                continue
            service.restarts += 1
            logger.error(
                "{} exited with code {}; restart #{}", service.name, code, service.restarts
            )
            service.start(self.env, self.log_dir)

    def stop_all(self) -> None:
        """Stop in STOP_ORDER: intake first, the writers next, the projector last, so
        what was decided before the stop is projected (and archived) before it ends."""
        for role in STOP_ORDER:
            for service in self.services:
                if service.role == role:
                    service.stop()

    def kill_all(self) -> None:
        for service in self.services:
            if service.process is not None and service.process.poll() is None:
                service.process.kill()
                service.process.wait()


class StackSettings(CommonSettings):
    """What the stack alone reads (besides the root's and the colony's settings, which it
    checks before starting anything)."""

    STACK_REPLICAS: int = Field(default=1, ge=1, le=PARTITIONS)
    """Processes of each consumer service (decider, projector, colony) to run: they share
    the partitions, as replicas in production do, and any one of them may die. The colony
    replicas listen on PORT, PORT+1, ...; the root stays one. At most the partition count:
    another would own no partition."""


class StopRequested(Exception):
    """SIGTERM or SIGINT arrived."""


class ForceStop(Exception):
    """A second SIGTERM or SIGINT arrived while stopping: kill everything now."""


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    """The first signal stops in order; from now on another one forces the stop (two
    signals in a row, as `timeout` plus a Ctrl-C can send, never escape as a traceback)."""
    signal.signal(signal.SIGINT, _raise_force)
    signal.signal(signal.SIGTERM, _raise_force)
    raise StopRequested(signal.Signals(signum).name)


def _raise_force(signum: int, frame: FrameType | None) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise ForceStop(signal.Signals(signum).name)


def wait_until_ready(url: str, timeout_s: float = 60, probe: str = "/readyz") -> bool:
    """Poll `url` + `probe` until it answers 200; False on timeout."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}{probe}", timeout=3).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    return False


def _url(settings: RootSettings | ColonySettings, name: str, port: int) -> str:
    """The variable as set, or the local service on `port` (so ports chosen by ROOT_PORT
    and PORT are the ones the services call)."""
    if name in settings.model_fields_set:
        return str(getattr(settings, name)).rstrip("/")
    return f"http://127.0.0.1:{port}"


def colony_root_key(root: RootSettings, colony: ColonySettings) -> str:
    """The key the colony presents to the root: ROOT_API_KEY if set, else the root's first
    colony key; exit 2 naming the variable when the root would refuse it."""
    keys = keys_of_role(root.VELOCITY_API_KEYS.get_secret_value(), "colony")
    if (
        "ROOT_API_KEY" in colony.model_fields_set
        or "VELOCITY_API_KEYS" not in root.model_fields_set
    ):
        key = colony.ROOT_API_KEY.get_secret_value()
        if key not in keys:
            fail_configuration(
                "ROOT_API_KEY: the root's VELOCITY_API_KEYS has no colony key equal to it"
                " (add colony:<name>:<that key> there)"
            )
        return key
    if not keys:
        fail_configuration(
            "ROOT_API_KEY: not set, and VELOCITY_API_KEYS has no colony key; add"
            " colony:<name>:<key> to VELOCITY_API_KEYS (the colony is then given it)"
        )
    return keys[0]


def run_stack() -> None:
    """The body of `velocity stack run`."""
    root = load_settings(RootSettings)
    colony = load_settings(ColonySettings)
    stack = load_settings(StackSettings)
    colony_ports = [colony.PORT + index for index in range(stack.STACK_REPLICAS)]
    configure_logging(root, "stack")
    root_key = colony_root_key(root, colony)
    signal.signal(signal.SIGTERM, _raise_stop)
    signal.signal(signal.SIGINT, _raise_stop)
    data_dir = root.VELOCITY_DATA_DIR.resolve()
    log_dir = data_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    root_url = f"http://127.0.0.1:{root.ROOT_PORT}"
    logger.info(
        "starting the local stack: {}, {}, then {} of the decider, the projector and the"
        " colony (http://127.0.0.1:{}) and the root API ({}); data in {}, each process's log"
        " in {}",
        "a broker given by KAFKA_BOOTSTRAP_SERVERS"
        if root.KAFKA_BOOTSTRAP_SERVERS
        else "an embedded Kafka-compatible broker",
        "PostgreSQL given by DATABASE_URL" if root.DATABASE_URL else "an embedded PostgreSQL",
        "one" if stack.STACK_REPLICAS == 1 else f"{stack.STACK_REPLICAS} replicas each",
        ", ".join(str(port) for port in colony_ports),
        root_url,
        data_dir,
        log_dir,
    )
    broker: EmbeddedBroker | None = None
    database: EmbeddedPostgres | None = None
    supervisor: Supervisor | None = None
    stack_file: Path | None = None
    stopping = "error"
    try:
        if root.KAFKA_BOOTSTRAP_SERVERS is None:
            broker = start_broker(log_dir / "broker.log")
        if root.DATABASE_URL is None:
            database = start_postgres(data_dir, log_dir / "postgres.log")
        bootstrap = broker.bootstrap_servers if broker else str(root.KAFKA_BOOTSTRAP_SERVERS)
        database_url = database.url if database else root.DATABASE_URL.get_secret_value()  # type: ignore[union-attr]
        asyncio.run(
            prepare_infrastructure(root, bootstrap, database_url, restore=broker is not None)
        )
        env = child_environment(
            KAFKA_BOOTSTRAP_SERVERS=bootstrap,
            DATABASE_URL=database_url,
            ROOT_PORT=str(root.ROOT_PORT),
            PORT=str(colony.PORT),
            COLONY_SERVICE_BASE_URL=_url(root, "COLONY_SERVICE_BASE_URL", colony.PORT),
            ROOT_API_BASE_URL=_url(colony, "ROOT_API_BASE_URL", root.ROOT_PORT),
            ROOT_API_KEY=root_key,
        )
        if broker or database:
            stack_file = write_stack_file(data_dir, bootstrap, database_url)
        supervisor = Supervisor.for_ports(env, root.ROOT_PORT, colony_ports, log_dir)
        supervisor.start_all()
        if wait_until_ready(root_url):
            logger.info(
                "ready: root API {0}  ·  API docs {0}/docs  ·  operator console {0}/console"
                "  (Ctrl-C stops everything)",
                root_url,
            )
        else:
            logger.error("root API not ready after 60s; see {}/readyz and {}", root_url, log_dir)
        while True:
            supervisor.restart_exited()
            time.sleep(0.5)
    except StopRequested as reason:
        stopping = str(reason)
    except Exception as error:
        logger.error("stack failed: {}", error)
        raise SystemExit(1) from None
    finally:
        signal.signal(signal.SIGINT, _raise_force)
        signal.signal(signal.SIGTERM, _raise_force)
        try:
            logger.info("stopping the stack ({})", stopping)
            stop_in_order(supervisor, broker, database)
        except ForceStop:
            logger.warning("second stop signal: killing every process now")
            kill_everything(supervisor, broker, database)
        if stack_file:
            stack_file.unlink(missing_ok=True)
        logger.info("stack stopped")


def stop_in_order(
    supervisor: Supervisor | None, broker: EmbeddedBroker | None, database: EmbeddedPostgres | None
) -> None:
    """Services in STOP_ORDER, then the broker and PostgreSQL they need to drain."""
    if supervisor:
        supervisor.stop_all()
    if broker:
        broker.stop()
    if database:
        database.stop()


def kill_everything(
    supervisor: Supervisor | None, broker: EmbeddedBroker | None, database: EmbeddedPostgres | None
) -> None:
    if supervisor:
        supervisor.kill_all()
    for process in (p.process for p in (broker, database) if p is not None):
        if process.poll() is None:
            process.kill()
            process.wait()
