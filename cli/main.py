"""`loyalloop`: the command line for shops' engineers, marketers, support staff and finance.

Bad input ends in a one-line message and a non-zero exit, never a stack trace.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import sys
from collections.abc import Iterator

import click

from cli import output
from cli.common import fail, settings_or_fail


def run() -> None:
    """The `loyalloop` command: `main`, then the process ends once its output is flushed.

    A short-lived process holding a Temporal client can abort in CPython's finalization when the
    SDK's Rust threads release the GIL there (temporalio/sdk-python#300, "PyGILState_Release:
    thread state must be current when releasing"): a command that finished turns into SIGABRT
    instead of its exit code. Nothing of ours runs at interpreter exit, so skipping it is safe."""
    try:
        main()
        code: int | str | None = 0
    except SystemExit as exit_:
        code = exit_.code
    except BaseException:  # a bug: show it, then end as Python would (exit 1)
        import traceback
        traceback.print_exc()
        code = 1
    if isinstance(code, str):
        print(code, file=sys.stderr)
        code = 1
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    logging.shutdown()
    os._exit(code or 0)


class _Commands(click.Group):
    """The production commands, and `bench` loaded by name only when asked for: the benchmark
    drives the whole stack from above (it builds workers, intakes and clusters), so the CLI a
    worker or an intake runs never imports it (Click's "lazily loading subcommands")."""

    lazy = {"bench": ("bench.command", "bench")}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.lazy])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.lazy:
            module, attribute = self.lazy[name]
            command: click.Command = getattr(importlib.import_module(module), attribute)
            return command
        return super().get_command(ctx, name)


@click.group(cls=_Commands)
def main() -> None:
    """Loyalloop: one durable lifecycle per purchase."""


@main.command()
def worker() -> None:
    """Run the Temporal worker (same as `python worker.py`)."""
    import worker as worker_module

    with temporal_or_fail():
        worker_module.main()


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
def api(host: str, port: int) -> None:
    """Serve the shop-facing HTTP intake."""
    from intake.serve import run, serve

    settings = settings_or_fail()
    try:
        settings.check_for_intake()
    except ValueError as error:
        fail(f"configuration: {error}")
    with temporal_or_fail():
        run(serve(settings, host, port))


@contextlib.contextmanager
def temporal_or_fail() -> Iterator[None]:
    """A server that is not there, a namespace not set up, or an app database not migrated is a
    one-line error and exit 1, not a stack trace."""
    from database.session import SchemaNotAtHead
    from temporal_client import TemporalUnreachable
    from temporal_setup import SearchAttributesMissing

    try:
        yield
    except (TemporalUnreachable, SearchAttributesMissing, SchemaNotAtHead) as error:
        click.echo(f"error: {output.safe(str(error))}", err=True)
        # Nothing is left to clean up, and the SDK's native threads can still call into Python
        # while the interpreter finalizes (a fatal error seen under load): leave at once.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(1)


@main.group()
def db() -> None:
    """The app database."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply every migration."""
    from database.session import upgrade

    settings = settings_or_fail()
    upgrade(settings.database_url.get_secret_value())
    click.echo("database is up to date")


from cli.creators import creators  # noqa: E402
from cli.demo import demo_purchase_command  # noqa: E402
from cli.dev import dev  # noqa: E402
from cli.events import purchase, refund, unsubscribe  # noqa: E402
from cli.finance import credits  # noqa: E402
from cli.outbox import outbox  # noqa: E402
from cli.simulate import simulate  # noqa: E402
from cli.support import (  # noqa: E402
    cancel,
    erase_customer_command,
    find,
    inspect,
    resend,
    resubscribe_command,
)
from cli.templates import templates  # noqa: E402
from cli.temporal import temporal  # noqa: E402

for _command in (creators, dev, purchase, refund, unsubscribe, outbox, simulate, inspect,
                 templates):
    main.add_command(_command)
for _command in (find, cancel, resend, erase_customer_command, credits, temporal,
                 demo_purchase_command,
                 resubscribe_command):
    main.add_command(_command)
