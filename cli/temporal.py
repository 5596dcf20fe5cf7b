"""`loyalloop temporal setup`: the one step a Temporal namespace needs before Loyalloop runs."""

from __future__ import annotations

import sys

import click

from cli.common import run, settings_or_fail
from temporal_client import connect
from temporal_setup import Setup, SetupNotAllowed, register


@click.group()
def temporal() -> None:
    """The Temporal namespace Loyalloop runs on."""


@temporal.command("setup")
def setup() -> None:
    """Register the search attributes lifecycles set (safe to run again). Where this client may
    not change the namespace (Temporal Cloud), print the commands an operator runs instead."""
    settings = settings_or_fail()

    async def go() -> Setup:
        client = await connect(settings)
        return await register(client, settings.temporal_namespace)

    try:
        done = run(go)
    except SetupNotAllowed as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(1)
    namespace = settings.temporal_namespace
    for name in done.registered:
        click.echo(f"registered search attribute {name} (Keyword) on namespace {namespace}")
    for name in done.already:
        click.echo(f"search attribute {name} already registered on namespace {namespace}")
