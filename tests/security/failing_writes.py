"""A database write that fails for real, as a full disk would: a trigger on the table, on
SQLite and on PostgreSQL. PostgreSQL's error carries a DETAIL with the failing row's values, as
its own constraint errors do ("Failing row contains (…)", "Key (email)=(…)")."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import Engine, text


@dataclass(frozen=True)
class Write:
    """`event` as a trigger names it (`INSERT`, `UPDATE`), on `table`, when `when` holds."""

    event: str
    table: str
    when: str = "true"

    @property
    def id(self) -> str:
        return f"{self.event.lower()}-{self.table}"


@contextmanager
def failing(engine: Engine, write: Write) -> Iterator[None]:
    """Every matching write fails until the block ends."""
    name = f"disk_full_{write.table}"
    if engine.dialect.name == "sqlite":
        create = [
            f"CREATE TRIGGER {name} BEFORE {write.event} ON {write.table} WHEN {write.when} "
            "BEGIN SELECT RAISE(ABORT, 'disk full'); END"
        ]
        drop = [f"DROP TRIGGER {name}"]
    else:
        create = [
            f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "RAISE EXCEPTION 'disk full' "
            "USING DETAIL = 'Failing row contains ' || row_to_json(NEW); END $$",
            f"CREATE TRIGGER {name} BEFORE {write.event} ON {write.table} FOR EACH ROW "
            f"WHEN ({write.when}) EXECUTE FUNCTION {name}()",
        ]
        drop = [f"DROP TRIGGER {name} ON {write.table}", f"DROP FUNCTION {name}()"]
    _run(engine, create)
    try:
        yield
    finally:
        _run(engine, drop)


def _run(engine: Engine, statements: list[str]) -> None:
    with engine.begin() as connection:
        for statement in statements:
            connection.execute(text(statement))
