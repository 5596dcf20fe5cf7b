"""What every `loyalloop` command shares: one-line failures, settings, the app database,
running async work. Its own module, so the subcommands import it without importing
`cli/main.py` back."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click
from pydantic import ValidationError

from cli import output
from settings import Settings, get_settings

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

T = TypeVar("T")


def fail(message: str, code: int = 2) -> NoReturn:
    """One line, whatever it quotes (ids, file contents, a driver's text): escaped."""
    click.echo(f"error: {output.safe(message)}", err=True)
    sys.exit(code)


def settings_or_fail() -> Settings:
    try:
        return get_settings()
    except (ValidationError, ValueError) as error:
        fail(f"configuration: {error}")


@contextmanager
def app_database(settings: Settings) -> Iterator[sessionmaker[Session]]:
    """The app database of an everyday command, its engine disposed at exit. A laptop's own
    SQLite file is created and migrated (a fresh clone's first command just works); any other
    database is only checked, so a command run from the production image never migrates a shop's
    schema as a side effect: `loyalloop db upgrade` does, on purpose."""
    from database.session import (
        SchemaNotAtHead,
        local_sqlite_file,
        make_engine,
        make_sessionmaker,
        require_head,
        upgrade,
    )

    url = settings.database_url.get_secret_value()
    if local_sqlite_file(url):
        upgrade(url)
    else:
        try:
            require_head(url)
        except SchemaNotAtHead as error:
            fail(str(error), 1)  # exit 1, as the worker and the intake refuse
    engine = make_engine(url)
    try:
        yield make_sessionmaker(engine)
    finally:
        engine.dispose()



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


def read_event(path: Path, model: type[T]) -> T:
    from shop_events.schemas import describe_errors

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

