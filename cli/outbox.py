"""`loyalloop outbox`: read the emails kept instead of sent when no SendGrid key is configured,
so a developer or a demo can see what each customer would have received. Every field is
printed through cli/output.py: names and subjects come from shops' data."""

from __future__ import annotations

import click
from sqlalchemy import select
from sqlalchemy.orm import Session

from cli import output
from cli.common import app_database, fail, settings_or_fail
from database.models import EmailSend, OutboxMessage
from intake.delivery import deliveries, one_line


def latest(session: Session, limit: int) -> list[tuple[OutboxMessage, EmailSend]]:
    rows = session.execute(
        select(OutboxMessage, EmailSend)
        .join(EmailSend, EmailSend.id == OutboxMessage.email_send_id)
        .order_by(OutboxMessage.id.desc())
        .limit(limit)
    )
    return [(outbox, send) for outbox, send in rows]


@click.command()
@click.option("--limit", default=20, show_default=True, type=click.IntRange(min=1),
              help="How many of the newest emails to list.")
@click.option("--show", "show_id", type=int, default=None,
              help="Print one email (by its outbox id) with its text part.")
def outbox(limit: int, show_id: int | None) -> None:
    """The emails kept in the outbox (no SendGrid key), newest first."""
    with app_database(settings_or_fail()) as sessions, sessions() as session:
        if show_id is not None:
            _show(session, show_id)
            return
        rows = latest(session, limit)
        if not rows:
            click.echo("the outbox is empty")
        said = deliveries(session, (send.id for _, send in rows))
        for message, send in rows:
            output.echo(f"{message.id:>5}  {message.created_at:%Y-%m-%d %H:%M:%S}  "
                        f"{send.workflow_id:<28} {send.step:<16} {message.to_email or '-':<28} "
                        f"{message.subject}")
            if delivery := one_line(said.get(send.id)):
                output.echo(f"       SendGrid: {delivery}")


def _show(session: Session, outbox_id: int) -> None:
    row = session.execute(
        select(OutboxMessage, EmailSend)
        .join(EmailSend, EmailSend.id == OutboxMessage.email_send_id)
        .where(OutboxMessage.id == outbox_id)
    ).first()
    if row is None:
        fail(f"--show: no outbox email with id {outbox_id}")
        return
    message, send = row
    for line in (f"From:      {message.from_email}", f"To:        {message.to_email or '-'}",
                 f"Subject:   {message.subject}",
                 f"Lifecycle: {send.workflow_id}  step {send.step}",
                 f"Template:  {send.template_name or '-'}",
                 f"SendGrid:  {one_line(deliveries(session, [send.id]).get(send.id)) or '-'}",
                 ""):
        output.echo(line)
    output.echo_text(message.text or "(no text part)")
