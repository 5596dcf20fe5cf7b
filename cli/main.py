"""`loyalloop`: the command line for shops' engineers, marketers, support staff and finance.

Bad input ends in a one-line message and a non-zero exit, never a stack trace.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

import click

from cli import output
from cli.common import fail, settings_or_fail


@click.group()
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
    """A server that is not there, or a namespace not set up, is a one-line error and exit 1,
    not a stack trace."""
    from temporal_client import TemporalUnreachable
    from temporal_setup import SearchAttributesMissing

    try:
        yield
    except (TemporalUnreachable, SearchAttributesMissing) as error:
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
    upgrade(settings.database_url)
    click.echo("database is up to date")


from cli.creators import creators  # noqa: E402
from cli.dev import dev  # noqa: E402
from cli.events import purchase, refund, unsubscribe  # noqa: E402
from cli.finance import credits  # noqa: E402
from cli.outbox import outbox  # noqa: E402
from cli.simulate import simulate  # noqa: E402
from cli.support import cancel, erase_customer_command, find, inspect, resend  # noqa: E402
from cli.templates import templates  # noqa: E402
from cli.temporal import temporal  # noqa: E402

for _command in (creators, dev, purchase, refund, unsubscribe, outbox, simulate, inspect,
                 templates):
    main.add_command(_command)
for _command in (find, cancel, resend, erase_customer_command, credits, temporal):
    main.add_command(_command)

from bench.command import bench  # noqa: E402

main.add_command(bench)
