"""`loyalloop`: the command line for shops' engineers, marketers, support staff and finance.

Bad input ends in a one-line message and a non-zero exit, never a stack trace.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import click
from pydantic import ValidationError

from cli import output
from settings import Settings, get_settings

T = TypeVar("T")


def fail(message: str, code: int = 2) -> None:
    """One line, whatever it quotes (ids, file contents, a driver's text): escaped."""
    click.echo(f"error: {output.safe(message)}", err=True)
    sys.exit(code)


def settings_or_fail() -> Settings:
    try:
        return get_settings()
    except (ValidationError, ValueError) as error:
        fail(f"configuration: {error}")
        raise  # unreachable


def run(coro_factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run one async command, turning the errors a person can fix into one line."""
    from sqlalchemy.exc import DBAPIError

    from intake.errors import EventRejected
    from support.errors import ActionRefused
    from temporal_client import TemporalUnreachable

    try:
        return asyncio.run(coro_factory())
    except TemporalUnreachable as error:
        fail(str(error))
    except (EventRejected, ActionRefused) as error:
        fail(f"{error.field}: {error.problem}" if error.field else error.problem)
    except ConnectionError as error:
        fail(f"cannot reach Temporal: {error}")
    except DBAPIError as error:
        fail(f"database: {str(error.orig).strip().partition(chr(10))[0]}")
    raise AssertionError("unreachable")


def read_event(path: Path, model: type[T]) -> T:
    from intake.schemas import describe_errors

    try:
        raw = json.loads(path.read_text())
    except OSError as error:
        fail(f"{path}: {error.strerror}")
    except json.JSONDecodeError as error:
        fail(f"{path}: not valid JSON ({error.msg} at line {error.lineno} column {error.colno})")
    except UnicodeDecodeError:
        fail(f"{path}: not UTF-8 text")
    except RecursionError:
        fail(f"{path}: not valid JSON (nested too deeply)")
    try:
        return model.model_validate(raw)  # type: ignore[attr-defined,no-any-return]
    except ValidationError as error:
        problems = "; ".join(f"{p['field']}: {p['problem']}" for p in describe_errors(error))
        fail(f"{path}: {problems}")
    raise AssertionError("unreachable")


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
    """A server that is not there is a one-line error and exit 1, not a stack trace."""
    from temporal_client import TemporalUnreachable

    try:
        yield
    except TemporalUnreachable as error:
        fail(str(error), code=1)


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

for _command in (creators, dev, purchase, refund, unsubscribe, outbox, simulate, inspect,
                 templates):
    main.add_command(_command)
for _command in (find, cancel, resend, erase_customer_command, credits):
    main.add_command(_command)

from bench.command import bench  # noqa: E402

main.add_command(bench)
