"""Limits before parsing, from outside with a raw socket: an unauthenticated request is
refused before its body is read, a body over the limit is refused with 413 while it
streams, and the root's resident memory stays flat while 50 MB are thrown at it."""

from __future__ import annotations

import select
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.e2e.conftest import COLONY_KEY, SERVICE_KEY, RunningStack

pytestmark = pytest.mark.e2e
CHUNK = b"x" * 65_536
FIFTY_MB = 50 * 1_048_576


def resident_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def root_pid(stack: RunningStack) -> int:
    root = stack.supervisor.service("root")
    assert root.process is not None
    return root.process.pid


def push(stack: RunningStack, path: str, headers: dict[str, str], total: int) -> tuple[bytes, int]:
    """Send a POST whose body is `total` bytes, in chunks, reading as soon as the root
    answers; (the answer's first bytes, body bytes sent before it answered)."""
    url = urlsplit(stack.root_url)
    head = f"POST {path} HTTP/1.1\r\nHost: {url.hostname}\r\n" + "".join(
        f"{name}: {value}\r\n" for name, value in headers.items()
    )
    chunked = "Content-Length" not in headers
    if chunked:
        head += "Transfer-Encoding: chunked\r\n"
    with socket.create_connection((url.hostname, url.port), timeout=30) as connection:
        connection.sendall((head + "\r\n").encode())
        sent = 0
        while sent < total:
            if select.select([connection], [], [], 0)[0]:
                break
            data = CHUNK if not chunked else b"%x\r\n%s\r\n" % (len(CHUNK), CHUNK)
            try:
                connection.sendall(data)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(CHUNK)
        return read_answer(connection), sent


def read_answer(connection: socket.socket) -> bytes:
    """The whole answer: the root closes the connection after refusing a body."""
    connection.settimeout(10)
    answer = b""
    try:
        while chunk := connection.recv(65_536):
            answer += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    return answer


def test_an_unauthenticated_upload_is_refused_before_its_body_is_read(
    stack: RunningStack,
) -> None:
    before = resident_kib(root_pid(stack))
    answer, sent = push(
        stack,
        "/internal/artifacts",
        {"Content-Type": "application/json", "Content-Length": str(FIFTY_MB)},
        FIFTY_MB,
    )
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
    assert b"application/problem+json" in answer
    assert sent < FIFTY_MB, "the root read the whole body before refusing"
    assert resident_kib(root_pid(stack)) - before < 10_240


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_fifty_megabytes_get_413_and_the_root_memory_stays_flat(
    stack: RunningStack, declared: bool
) -> None:
    pid = root_pid(stack)
    before = resident_kib(pid)
    headers = {"Authorization": f"Bearer {COLONY_KEY}", "Content-Type": "application/json"}
    if declared:
        headers["Content-Length"] = str(FIFTY_MB)
    answer, sent = push(stack, "/internal/artifacts", headers, FIFTY_MB)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"payload_too_large" in answer
    assert sent < FIFTY_MB
    time.sleep(0.2)
    grown = resident_kib(pid) - before
    assert grown < 10_240, f"root grew by {grown} KiB"


def test_ordinary_routes_take_small_bodies_only(stack: RunningStack) -> None:
    headers = {"Authorization": f"Bearer {SERVICE_KEY}", "Content-Type": "application/json"}
    answer, _ = push(stack, "/missions", headers, 1_048_576)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
