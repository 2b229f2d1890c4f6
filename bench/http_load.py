"""A load generator that costs the machine little: HTTP/1.1 over keep-alive sockets, each
request encoded once. On a 2-core machine the client shares the cores with the stack it
measures; httpx spent about a core to generate 200 requests a second, so the root's
figures measured the client as much as the root.
"""

from __future__ import annotations

import asyncio
import json
import time
from urllib.parse import urlsplit

Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


def encoded(method: str, target: str, headers: dict[str, str], body: object | None = None) -> bytes:
    """The bytes of one request (`body` as JSON)."""
    payload = json.dumps(body).encode() if body is not None else b""
    lines = [f"{method} {target} HTTP/1.1", *(f"{k}: {v}" for k, v in headers.items())]
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


class KeepAlive:
    """Requests to one server over as many keep-alive connections as are in use at once."""

    def __init__(self, base_url: str, headers: dict[str, str]) -> None:
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.headers = {"Host": parts.netloc, **headers}
        self.idle: list[Stream] = []
        self.opened: list[Stream] = []

    def request(self, method: str, target: str, body: object | None = None, **extra: str) -> bytes:
        return encoded(method, target, self.headers | extra, body)

    async def send(self, raw: bytes) -> tuple[int, bytes]:
        """The status and body of the answer to `raw`."""
        while self.idle:  # the server closes connections idle for a while: skip those
            stream = self.idle.pop()
            stream[1].write(raw)
            if status_line := await stream[0].readline():
                break
        else:
            stream = await self._open()
            stream[1].write(raw)
            status_line = await stream[0].readline()
        reader = stream[0]
        status = int(status_line.split()[1])
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
            assert name.strip().lower() != b"transfer-encoding", "chunked answers unsupported"
        body = await reader.readexactly(length)
        self.idle.append(stream)
        return status, body

    async def timed(self, raw: bytes) -> float:
        """Milliseconds to a successful answer to `raw`."""
        started = time.perf_counter()
        status, body = await self.send(raw)
        assert status < 300, body[:500]
        return (time.perf_counter() - started) * 1000

    async def _open(self) -> Stream:
        stream = await asyncio.open_connection(self.host, self.port)
        self.opened.append(stream)
        return stream

    async def close(self) -> None:
        for _, writer in self.opened:
            writer.close()
        self.opened.clear()
        self.idle.clear()
