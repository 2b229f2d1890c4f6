"""What an operator reads (infra/structured_logs.py): one plain line per event locally,
mission and trace ids only when there are any, no dictionary tail; one JSON object per
line with the same fields in staging and production or with LOG_FORMAT=json."""

from __future__ import annotations

import json
import os
import re
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from loguru import logger

from infra.config import CommonSettings
from infra.structured_logs import configure_logging

TIME = r"\d\d:\d\d:\d\d\.\d{3}"
TRACE = "0af7651916cd43dd8448eb211c80319c"


@pytest.fixture(autouse=True)
def quiet_afterwards() -> Iterator[None]:
    yield
    logger.remove()


def emit() -> None:
    logger.info("decider owns partitions [0, 1]")
    logger.bind(mission_id="m-7", trace_id=TRACE).warning("task t1 retried")


def test_a_local_line_is_time_level_service_message_and_ids_only_when_present(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging(CommonSettings(VELOCITY_ENV="local"), "decider")
    emit()
    plain, bound = capsys.readouterr().err.splitlines()
    assert re.fullmatch(rf"{TIME} INFO    decider decider owns partitions \[0, 1\]", plain)
    assert re.fullmatch(rf"{TIME} WARNING decider task t1 retried mission=m-7 trace={TRACE}", bound)
    assert "{" not in plain + bound, "no dictionary tail"


STAGING = {
    "VELOCITY_ENV": "staging",
    "KAFKA_BOOTSTRAP_SERVERS": "kafka.staging.internal:9092",
    "DATABASE_URL": "postgresql://velocity@db.staging.internal/velocity",
}


@pytest.mark.parametrize("settings", [STAGING, {"LOG_FORMAT": "json"}], ids=["staging", "json"])
def test_staging_production_or_log_format_json_write_one_object_per_line(
    capsys: pytest.CaptureFixture[str], settings: dict[str, Any]
) -> None:
    configure_logging(CommonSettings(**settings), "colony")
    emit()
    plain, bound = (json.loads(line) for line in capsys.readouterr().err.splitlines())
    assert set(plain) == {"time", "level", "service", "instance", "message"}
    assert plain["instance"] == f"{socket.gethostname()}:{os.getpid()}"  # as its heartbeat
    assert (plain["level"], plain["service"], plain["message"]) == (
        "INFO",
        "colony",
        "decider owns partitions [0, 1]",
    )
    assert bound["mission_id"] == "m-7" and bound["trace_id"] == TRACE
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", plain["time"])


def test_an_exception_is_kept_with_its_line(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(CommonSettings(LOG_FORMAT="json"), "root")
    try:
        raise ValueError("bad input")
    except ValueError:
        logger.exception("request failed")
    [line] = [json.loads(x) for x in capsys.readouterr().err.splitlines()]
    assert line["message"] == "request failed"
    assert "ValueError: bad input" in line["exception"]
