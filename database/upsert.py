"""`INSERT … ON CONFLICT DO NOTHING` for each database the app runs on: an effect's unique key
decides whether it happens, in the statement that makes it happen."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Insert
from sqlalchemy.dialects import postgresql, sqlite


class InsertNew:
    """Adds a row unless its unique key is taken; `returning` gives only the rows added."""

    def __init__(self, model: type[Any], key: Sequence[Any], *returning: Any) -> None:
        self._by_dialect: dict[str, Insert] = {
            name: dialect.insert(model)
            .on_conflict_do_nothing(index_elements=list(key))
            .returning(*returning)
            for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))
        }

    def __call__(self, connection: Connection) -> Insert:
        return self._by_dialect[connection.dialect.name]
