"""Structured logging with loguru: JSON outside local, mission and trace ids on every line.

Call :func:`configure_logging` once at process start. Bind context with
``logger.bind(mission_id=...)`` or ``logger.contextualize(...)``; the trace id comes from
the active OpenTelemetry span. The fields land in ``extra`` of the JSON record, where log
pipelines index them.
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING

from loguru import logger

from infra.tracing import current_trace_id

if TYPE_CHECKING:
    from loguru import Record

    from infra.config import CommonSettings

TEXT_FORMAT = (
    "<green>{time:HH:mm:ss.SSS}</green> <level>{level: <7}</level> "
    "<cyan>{extra[service]}</cyan> {message} <dim>{extra}</dim>"
)


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
    logger.configure(extra={"service": service}, patcher=_with_defaults)
    if settings.log_format == "json":
        logger.add(sys.stderr, level=settings.LOG_LEVEL, serialize=True, backtrace=False)
    else:
        logger.add(sys.stderr, level=settings.LOG_LEVEL, format=TEXT_FORMAT, backtrace=False)
    logging.basicConfig(handlers=[_InterceptStandardLogging()], level=logging.WARNING, force=True)
    for noisy in ("aiokafka", "kafka", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
