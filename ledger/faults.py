"""Fault drills: faults the decider injects into itself at exact points, so the drills
(`make drills`) and tests can put a crash or a refused write where it hurts most.

`DECIDER_FAULT` is unset in every real deployment. Its forms:
- `kill:N` — SIGKILL the decider right after its Nth acknowledged record batch;
- `refuse:N` — the Nth batch fails as an expired send would, without being sent;
- `slow_rebuild:MS` — every partition rebuild takes MS milliseconds longer.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from typing import Literal

from aiokafka.errors import KafkaTimeoutError

FAULT_PATTERN = r"^(kill|refuse|slow_rebuild):\d+$"


@dataclass(frozen=True)
class Fault:
    kind: Literal["kill", "refuse", "slow_rebuild"]
    value: int

    @classmethod
    def parse(cls, text: str | None) -> Fault | None:
        if not text:
            return None
        kind, _, value = text.partition(":")
        return cls(kind, int(value))  # type: ignore[arg-type]

    def before_batch(self, number: int) -> None:
        """Called before the `number`th batch (from 1) is sent."""
        if self.kind == "refuse" and number == self.value:
            raise KafkaTimeoutError(f"drill: batch {number} refused (DECIDER_FAULT)")

    def after_batch(self, number: int) -> None:
        """Called once the `number`th batch is acknowledged."""
        if self.kind == "kill" and number >= self.value:
            os.kill(os.getpid(), signal.SIGKILL)

    @property
    def rebuild_delay_s(self) -> float:
        return self.value / 1000 if self.kind == "slow_rebuild" else 0.0
