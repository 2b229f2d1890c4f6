"""PostgreSQL going away mid-protocol is an outage for every service, not a crash.

Found by `make drills` (PostgreSQL stopped 20 s under 40 missions): asyncpg raised
InternalClientError ("another operation is in progress") on a connection the restart cut
mid-statement; the projector exited on it and the root answered 500."""

from __future__ import annotations

import asyncpg

from colony_consumers.outages import is_outage
from gateway.dependencies import DATABASE_ERRORS
from projections.batch import transient

CUT = asyncpg.InternalClientError("cannot switch to state 15; another operation (2) is in progress")


def test_a_connection_cut_mid_protocol_is_waited_out_everywhere() -> None:
    assert transient(CUT), "the projector retries the batch"
    assert is_outage(CUT), "the colony waits it out"
    assert isinstance(CUT, DATABASE_ERRORS), "the root answers 503, not 500"


def test_a_pool_wait_that_times_out_is_an_outage_too() -> None:
    assert transient(TimeoutError()) and is_outage(TimeoutError())
