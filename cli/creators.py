"""`loyalloop creators`: the creators whose codes earn credits. Names and addresses are printed
through cli/output.py: older rows and other paths than `creators add` may hold any text."""

from __future__ import annotations

import re

import click
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from cli import output
from cli.common import app_database, fail, settings_or_fail
from database.models import Creator
from ledger.referrals import CUSTOMER_CODE_PREFIX

CODE = re.compile(r"^[A-Za-z0-9_-]{2,64}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def add_creator(sessions: sessionmaker[Session], code: str, name: str, email: str) -> Creator:
    """Creator codes are stored upper-case; customers may type them in any case."""
    if not CODE.match(code):
        raise ValueError(f"code {code!r}: use 2-64 letters, digits, '-' or '_'")
    if code.upper().startswith(CUSTOMER_CODE_PREFIX):
        # A creator's code is looked up first: one in the customers' own space would take over
        # the referrals (and credits) of the customer who holds it.
        raise ValueError(f"code {code!r}: {CUSTOMER_CODE_PREFIX}… codes are customers' own")
    if not name.strip():
        raise ValueError("name: must not be empty")
    if output.safe(name) != name or output.safe(email) != email:
        raise ValueError("name and email: no control or bidi characters (ESC, tab, U+202E…)")
    if not EMAIL.match(email):
        raise ValueError(f"email {email!r}: not an email address")
    try:
        with sessions.begin() as session:
            creator = Creator(code=code.upper(), name=name.strip(), email=email.strip())
            session.add(creator)
        return creator
    except IntegrityError:
        raise ValueError(f"code {code.upper()!r}: a creator already has it") from None


@click.group()
def creators() -> None:
    """Creators (influencers, affiliates) and their referral codes."""


@creators.command("add")
@click.argument("code")
@click.option("--name", required=True)
@click.option("--email", required=True)
def creators_add(code: str, name: str, email: str) -> None:
    """Add a creator with their code."""
    with app_database(settings_or_fail()) as sessions:
        try:
            creator = add_creator(sessions, code, name, email)
        except ValueError as error:
            fail(str(error))
    output.echo(f"creator {creator.code} added")


@creators.command("list")
def creators_list() -> None:
    """List creators."""
    with app_database(settings_or_fail()) as sessions, sessions() as session:
        for creator in session.scalars(select(Creator).order_by(Creator.code)):
            click.echo("\t".join(output.safe(v) for v in (creator.code, creator.name,
                                                             creator.email)))
