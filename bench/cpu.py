"""bench/cpu: where the CPU goes, per process of the stack, read from /proc (Linux).

Latency and rate figures on a shared 2-core machine swing by ±30 % between runs; the CPU
each process spends per unit of work swings far less and says which process to work on.
A process's figure includes its descendants (PostgreSQL's backends), alive or reaped,
but not those measured under a name of their own (the bench's children, the stack).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (which may hold spaces)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rpartition(")")[2].split()


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := _stat(int(entry))) is not None:
            tree.setdefault(int(fields[1]), []).append(int(entry))
    return tree


def cpu_seconds(
    pid: int, children: Mapping[int, list[int]] | None = None, apart: frozenset[int] = frozenset()
) -> float:
    """User + system CPU of `pid` and its descendants (live ones, and reaped ones through
    their parent's cumulative times) but those in `apart` and theirs; 0 for a process
    that is gone."""
    tree = _children() if children is None else children
    fields = _stat(pid)
    if fields is None:
        return 0.0
    utime, stime, cutime, cstime = (int(fields[i]) for i in (11, 12, 13, 14))
    own = (utime + stime + cutime + cstime) / TICKS_PER_S
    kept = [child for child in tree.get(pid, []) if child not in apart]
    return own + sum(cpu_seconds(child, tree, apart) for child in kept)


class CpuMeter:
    """CPU seconds of named processes between `start()` and `stop()`."""

    def __init__(self, pids: Mapping[str, int]) -> None:
        self.pids = dict(pids)
        self.started: dict[str, float] = {}
        self.spent: dict[str, float] = {}

    def _now(self) -> dict[str, float]:
        tree, apart = _children(), frozenset(self.pids.values())
        return {name: cpu_seconds(pid, tree, apart) for name, pid in self.pids.items()}

    def start(self) -> None:
        self.started = self._now()

    def stop(self) -> dict[str, float]:
        """Seconds each process spent since `start()`."""
        ended = self._now()
        self.spent = {name: ended[name] - self.started[name] for name in self.pids}
        return self.spent

    def per_unit_ms(self, units: int) -> dict[str, float]:
        """Milliseconds of CPU per unit of work (a mission, a request), by process."""
        return {name: seconds * 1000 / units for name, seconds in self.spent.items()}
