"""Progress for long operator commands, on stderr: a live line on a terminal, periodic
lines in a log, so a long verify or rebuild never looks hung."""

from __future__ import annotations

import sys
import time


class Progress:
    """Counts work done against an optional total and shows it at most every `every_s`."""

    def __init__(self, label: str, total: int | None = None, every_s: float = 0.5) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self.every_s = every_s if sys.stderr.isatty() else max(every_s, 5.0)
        self._shown_at = 0.0
        self._started = time.monotonic()

    def advance(self, count: int = 1) -> None:
        self.done += count
        now = time.monotonic()
        if now - self._shown_at >= self.every_s:
            self._shown_at = now
            self._show(final=False)

    def reach(self, done: int, total: int | None = None) -> None:
        """Advance to `done` (of `total`, when known): for work that reports how far it
        has come rather than each step (a restore, chunk by chunk)."""
        if total is not None:
            self.total = total
        self.advance(done - self.done)

    def finish(self) -> None:
        self._show(final=True)

    def _show(self, final: bool) -> None:
        of = f" / {self.total:,}" if self.total is not None else ""
        rate = self.done / max(time.monotonic() - self._started, 1e-9)
        line = f"{self.label}: {self.done:,}{of} ({rate:,.0f}/s)"
        if sys.stderr.isatty():
            sys.stderr.write(f"\r{line}" + ("\n" if final else ""))
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()
