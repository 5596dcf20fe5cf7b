"""What every support action on the command line shares: who acts (`--actor`, default $USER or
the login name), why (`--reason`, required), and the actions bound to the configured database and
Temporal."""

from __future__ import annotations

import getpass
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import click

from cli.common import app_database, fail
from intake.service import LifecycleService
from settings import Settings
from support.actions import SupportActions
from support.audit import Actor
from temporal_client import connect


@asynccontextmanager
async def lifecycle_service(settings: Settings) -> AsyncIterator[LifecycleService]:
    try:
        rules = settings.rules()
    except ValueError as error:
        fail(f"configuration: {error}")
    with app_database(settings) as sessions:
        client = await connect(settings)
        yield LifecycleService(
            sessions, client, task_queue=settings.lifecycle_task_queue,
            email_task_queue=settings.email_task_queue, rules=rules,
        )


def actor_options(command: Callable[..., Any]) -> Callable[..., Any]:
    command = click.option(
        "--actor", default=_login_name, required=True,
        help="Who is acting (recorded in the audit); defaults to $USER, else the login name.",
    )(command)
    return click.option("--reason", required=True, help="Why (recorded in the audit).")(command)


def _login_name() -> str | None:
    """$USER where set (as before), else the login name: containers and cron often lack USER."""
    try:
        return os.environ.get("USER") or getpass.getuser()
    except (OSError, KeyError):  # no passwd entry for this uid: --actor must be given
        return None


def acting(actor: str, reason: str) -> Actor:
    return Actor(actor, reason)


@asynccontextmanager
async def support_actions(settings: Settings) -> AsyncIterator[SupportActions]:

    async with lifecycle_service(settings) as service:
        yield SupportActions(service, [rule.step for rule in settings.rules().steps])
