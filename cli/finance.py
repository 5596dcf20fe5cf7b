"""Finance's commands: export the credit ledger, mark a payout batch paid, sum up per creator.
The logic lives in support/finance.py; these only parse, call and print, through cli/output.py
(codes, milestones and batch ids are text from shops and files)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from sqlalchemy.orm import Session, sessionmaker

from cli import output
from cli.common import app_database, run, settings_or_fail
from support import finance

T = TypeVar("T")


def _with_sessions(work: Callable[[sessionmaker[Session]], T]) -> T:
    settings = settings_or_fail()

    async def go() -> T:
        with app_database(settings) as sessions:
            return await asyncio.to_thread(work, sessions)

    return run(go)


def _reading(work: Callable[[Session], T]) -> Callable[[sessionmaker[Session]], T]:
    def read(sessions: sessionmaker[Session]) -> T:
        with sessions() as session:
            return work(session)

    return read


@click.group(invoke_without_command=True)
@click.option("--creator", help="Only this creator's (or advocate's) code.")
@click.option("--status", type=click.Choice(finance.STATUSES), help="Only credits in this status.")
@click.option("--since", help="Only credits recorded since this date (2026-11-01) or ISO time.")
@click.option("--shop", help="Only this shop.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table",
              show_default=True)
@click.pass_context
def credits(ctx: click.Context, creator: str | None, status: str | None, since: str | None,
            shop: str | None, fmt: str) -> None:
    """The credit ledger, filtered; `mark-paid` and `summary` below."""
    if ctx.invoked_subcommand is not None:
        return

    def work(session: Session) -> list[dict[str, Any]]:
        wanted = finance.CreditFilter(
            creator=creator, status=status, shop_id=shop,
            since=finance.parse_since(since) if since else None,
        )
        return finance.list_credits(session, wanted)

    rows = _with_sessions(_reading(work))
    if fmt == "json":
        click.echo(output.json_text(rows))
    elif fmt == "csv":
        output.echo_text(finance.as_csv(rows), nl=False)
    else:
        click.echo(finance.as_table(output.escaped(rows)))


@credits.command("mark-paid")
@click.option("--batch", "batch_file", required=True, type=click.Path(path_type=Path),
              help='JSON {"batch_id": ..., "credit_ids": [...]} or CSV with batch_id, credit_id.')
@click.option("--actor", envvar="USER", required=True, show_envvar=True,
              help="Who made the payout; defaults to $USER.")
def mark_paid(batch_file: Path, actor: str) -> None:
    """Mark a payout batch's approved credits paid; the same batch again changes nothing."""

    def work(sessions: sessionmaker[Session]) -> finance.MarkedPaid:
        return finance.mark_paid(sessions, finance.read_payout_file(batch_file), actor)

    done = _with_sessions(work)
    totals = ", ".join(f"{amount} {currency}" for currency, amount in done.totals.items())
    verb = "marked paid" if done.applied else "was already paid; nothing changed:"
    output.echo(f"batch {done.batch_id} {verb} {done.credit_count} credit(s), {totals}")


@credits.command()
@click.option("--creator", help="Only this creator's code.")
@click.option("--json", "as_json", is_flag=True)
def summary(creator: str | None, as_json: bool) -> None:
    """Per creator: referred customers, repeat rate, credits by milestone and status."""
    rows = _with_sessions(_reading(lambda session: finance.summary(session, creator)))
    click.echo(output.json_text(rows) if as_json
               else finance.summary_table(output.escaped(rows)))
