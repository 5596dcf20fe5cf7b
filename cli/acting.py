"""What every support action on the command line shares: who acts (`--actor`, default $USER),
why (`--reason`, required), and the actions bound to the configured database and Temporal."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import click

from database.session import make_engine, make_sessionmaker, upgrade
from intake.service import LifecycleService
from settings import Settings
from support.actions import SupportActions
from support.audit import Actor
from temporal_client import connect


@asynccontextmanager
async def lifecycle_service(settings: Settings) -> AsyncIterator[LifecycleService]:
    upgrade(settings.database_url)
    engine = make_engine(settings.database_url)
    try:
        client = await connect(settings)
        yield LifecycleService(
            make_sessionmaker(engine), client, task_queue=settings.lifecycle_task_queue,
            email_task_queue=settings.email_task_queue, rules=settings.rules(),
        )
    finally:
        engine.dispose()


def actor_options(command: Callable[..., Any]) -> Callable[..., Any]:
    command = click.option(
        "--actor", envvar="USER", required=True, show_envvar=True,
        help="Who is acting (recorded in the audit); defaults to $USER.",
    )(command)
    return click.option("--reason", required=True, help="Why (recorded in the audit).")(command)


def acting(actor: str, reason: str) -> Actor:
    return Actor(actor, reason)


@asynccontextmanager
async def support_actions(settings: Settings) -> AsyncIterator[SupportActions]:

    async with lifecycle_service(settings) as service:
        yield SupportActions(service, [rule.step for rule in settings.rules().steps])
