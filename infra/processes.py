"""Child processes that cannot outlive the process that started them.

On Linux the kernel sends the child a signal when its parent dies (PR_SET_PDEATHSIG),
so a crashed `velocity stack run` or test session leaves no broker, database or
service behind. Start children from the main thread: the signal fires when the
starting *thread* exits.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

PR_SET_PDEATHSIG = 1


def _die_with_parent(sig: int) -> Callable[[], None]:
    def set_parent_death_signal() -> None:
        if sys.platform.startswith("linux"):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)

    return set_parent_death_signal


def spawn(
    argv: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    log_path: Path | None = None,
    user: str | None = None,
    death_signal: int = signal.SIGTERM,
) -> subprocess.Popen[bytes]:
    """Start `argv`, tied to this process's life; output to `log_path` or inherited.

    In a process group of its own: a Ctrl-C in the terminal reaches only this process,
    which stops its children in order (the broker last), instead of every child at once."""
    output = open(log_path, "ab") if log_path else None  # noqa: SIM115 - owned by the child
    try:
        return subprocess.Popen(
            list(argv),
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT if output else None,
            stdin=subprocess.DEVNULL,
            user=user,
            preexec_fn=_die_with_parent(death_signal),
            process_group=0,
        )
    finally:
        if output:
            output.close()


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM, grace_s: float = 10) -> None:
    """Ask `process` to stop with `sig`; kill it if it has not gone after `grace_s`."""
    if process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def child_environment(**values: str) -> dict[str, str]:
    """This process's environment with `values` laid over it, for a child process."""
    return {**os.environ, **values}
