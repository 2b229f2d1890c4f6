"""Structured logging with loguru: one readable line locally, one JSON object per line in
staging and production (or LOG_FORMAT=json), with mission and trace ids when there are any.

Call :func:`configure_logging` once at process start. Bind context with
``logger.bind(mission_id=...)`` or ``logger.contextualize(...)``; the trace id comes from
the active OpenTelemetry span. A JSON line holds time, level, service, instance, message
and the ids at its top level, where log pipelines index them.
"""

from __future__ import annotations

import json
import logging
import sys
from traceback import format_exception
from typing import TYPE_CHECKING

from loguru import logger

from infra.heartbeat import instance_name
from infra.tracing import current_trace_id

if TYPE_CHECKING:
    from loguru import Message, Record

    from infra.config import CommonSettings

LINE = (
    "<green>{time:HH:mm:ss.SSS}</green> <level>{level: <7}</level> "
    "<cyan>{extra[service]}</cyan> {message}"
)


def human_format(record: Record) -> str:
    """One line an operator reads: time, level, service, message, then the mission and
    trace ids only when the line has them (and a traceback only with an exception)."""
    extra = record["extra"]
    ids = "".join(
        f" <dim>{label}={{extra[{key}]}}</dim>"
        for key, label in (("mission_id", "mission"), ("trace_id", "trace"))
        if extra.get(key)
    )
    return LINE + ids + "\n{exception}"


def json_line(record: Record) -> str:
    """The same fields as the human line, as one JSON object (ids only when present), and
    the process's instance (`host:pid`, as its heartbeat names it): with replicas, which
    decider said it, and so which partitions it owned then."""
    extra = record["extra"]
    line: dict[str, str] = {
        "time": record["time"].isoformat(),
        "level": record["level"].name,
        "service": str(extra.get("service", "velocity")),
        "instance": str(extra.get("instance", "")),
        "message": record["message"],
    }
    for key in ("mission_id", "trace_id"):
        if extra.get(key):
            line[key] = str(extra[key])
    if record["exception"] is not None:
        kind, error, trace = record["exception"]
        line["exception"] = "".join(format_exception(kind, error, trace))
    return json.dumps(line, ensure_ascii=False)


def _write_json(message: Message) -> None:
    sys.stderr.write(json_line(message.record) + "\n")


def _with_defaults(record: Record) -> None:
    """Every line has a service, a mission id and a trace id field; the trace id is the
    active OpenTelemetry span's unless one was bound (infra/tracing.py)."""
    extra = record["extra"]
    extra.setdefault("service", "velocity")
    extra.setdefault("mission_id", None)
    if not extra.get("trace_id"):
        extra["trace_id"] = current_trace_id()


class _InterceptStandardLogging(logging.Handler):
    """Send records of libraries that use the standard logging module through loguru."""

    def emit(self, record: logging.LogRecord) -> None:
        level: str | int
        try:
            level = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        logger.opt(depth=6, exception=record.exc_info).log(level, record.getMessage())


def configure_logging(settings: CommonSettings, service: str) -> None:
    """Route all logs to stderr, as JSON or text per settings, tagged with `service`."""
    logger.remove()
    logger.configure(
        extra={"service": service, "instance": instance_name()}, patcher=_with_defaults
    )
    if settings.log_format == "json":
        logger.add(_write_json, level=settings.LOG_LEVEL, format="{message}", backtrace=False)
    else:
        logger.add(sys.stderr, level=settings.LOG_LEVEL, format=human_format, backtrace=False)
    logging.basicConfig(handlers=[_InterceptStandardLogging()], level=logging.WARNING, force=True)
    for noisy in ("aiokafka", "kafka", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
