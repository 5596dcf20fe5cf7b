"""What a failing activity says: ids and kinds of error, never values.

An exception that leaves an activity is serialised with its message, its traceback and its
whole cause chain into the lifecycle's history, which is kept for as long as the history lives
and cannot be erased, and the worker logs it with the same traceback. SQLAlchemy's messages
quote the driver's (PostgreSQL's DETAIL lines hold row values: `Key (email)=(…)`), and Python's
own errors quote the values they met (`KeyError: 'Ana'`). So every exception but our own
`ApplicationError`s is rebuilt from the request's ids and the error's kind, raised `from None`
(an empty chain, also in the printed traceback), with the original frames kept for debugging:
frames show code, not values.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from temporalio import activity
from temporalio.exceptions import ApplicationError, FailureError

P = ParamSpec("P")
R = TypeVar("R")
WITHHELD = "message withheld: it may quote personal data"
# Names from the schema, never values: which table or constraint refused the write.
SCHEMA_NAMES = ("table_name", "constraint_name")
# What of the request names the failure (every request carries some of them).
IDS = {"shop": "shop_id", "order": "order_id", "step": "step"}


def without_personal_data(fn: Callable[P, R]) -> Callable[P, R]:
    """Wraps an activity (under `@activity.defn`) so that what leaves it names ids only."""

    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except FailureError:
            raise  # ours (ids and kinds only) or the SDK's cancellation
        except Exception as error:
            failure = rebuilt(fn.__name__, args[-1] if args else None, error)
            raise failure.with_traceback(error.__traceback__) from None

    return run


def rebuilt(name: str, request: Any, error: Exception) -> ApplicationError:
    """The failure as the history may keep it: the activity, the ids, the kind of error."""
    where = " ".join([name, *_ids(request)])
    if isinstance(error, SQLAlchemyError):
        kind = ", ".join(database_error_kind(error))
        return ApplicationError(f"{where}: database error {kind} ({WITHHELD})",
                                type=type(error).__name__)
    return ApplicationError(f"{where}: {type(error).__name__} ({WITHHELD})",
                            type=type(error).__name__)


def database_error_kind(error: SQLAlchemyError) -> list[str]:
    """SQLAlchemy's class, the driver's class and code (SQLSTATE, SQLite's error name), and the
    table or constraint involved."""
    kind = [type(error).__name__]
    driver = error.orig if isinstance(error, DBAPIError) else None
    if driver is not None:
        kind.append(f"{type(driver).__module__}.{type(driver).__name__}")
        if code := getattr(driver, "pgcode", None):
            kind.append(f"SQLSTATE {code}")
        if code := getattr(driver, "sqlite_errorname", None):
            kind.append(code)
        diag = getattr(driver, "diag", None)
        kind += [f"{n.split('_')[0]} {v}" for n in SCHEMA_NAMES if (v := getattr(diag, n, None))]
    if getattr(error, "connection_invalidated", False):
        kind.append("connection lost")
    return kind


def _ids(request: Any) -> list[str]:
    ids = [f"{label} {value}" for label, field in IDS.items()
           if (value := getattr(request, field, None))]
    if not ids and activity.in_activity():
        ids.append(f"lifecycle {activity.info().workflow_id}")
    return ids
