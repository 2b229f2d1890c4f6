"""Connection options for aiokafka clients, from settings (SASL and TLS included)."""

from __future__ import annotations

from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.helpers import create_ssl_context

from infra.config import CommonSettings


def client_options(settings: CommonSettings, bootstrap_servers: str) -> dict[str, Any]:
    """Keyword arguments every aiokafka producer, consumer and admin client takes."""
    options: dict[str, Any] = {
        "bootstrap_servers": bootstrap_servers,
        "security_protocol": settings.KAFKA_SECURITY_PROTOCOL,
        "request_timeout_ms": settings.KAFKA_REQUEST_TIMEOUT_MS,
    }
    if settings.KAFKA_SECURITY_PROTOCOL in ("SSL", "SASL_SSL"):
        cafile = str(settings.KAFKA_SSL_CAFILE) if settings.KAFKA_SSL_CAFILE else None
        options["ssl_context"] = create_ssl_context(cafile=cafile)
    if settings.KAFKA_SECURITY_PROTOCOL.startswith("SASL_"):
        password = settings.KAFKA_SASL_PASSWORD
        options["sasl_mechanism"] = settings.KAFKA_SASL_MECHANISM
        options["sasl_plain_username"] = settings.KAFKA_SASL_USERNAME
        options["sasl_plain_password"] = password.get_secret_value() if password else None
    return options


async def probe_broker(options: dict[str, Any], timeout_ms: int = 2_000) -> None:
    """One metadata round trip; raises if the broker does not answer."""
    admin = AIOKafkaAdminClient(**(options | {"request_timeout_ms": timeout_ms}))
    try:
        await admin.start()
        await admin.list_topics()
    finally:
        await admin.close()
