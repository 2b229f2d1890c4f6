"""Outages of our own infrastructure, told apart from failures of the work itself.

A mission must not fail because the root restarted, PostgreSQL blinked or the broker was
briefly away: the colony waits those out with backoff, within the mission's time budget,
and they spend no task attempt. Only provider errors and refusals count against a task.
"""

from __future__ import annotations

import httpx
from aiokafka.errors import KafkaError

from infra.database import DATABASE_OUTAGES


class OutageError(RuntimeError):
    """Something of ours (the root, PostgreSQL, the broker) is unavailable: wait, retry."""


OUTAGES = (OutageError, KafkaError, httpx.TransportError, *DATABASE_OUTAGES)


def is_outage(error: BaseException) -> bool:
    """Whether `error` is an outage to wait out rather than a failure to count."""
    return isinstance(error, OUTAGES)
