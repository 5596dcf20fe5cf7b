"""The support audit: who did what, when and why. Entries are written before the action runs
and keyed by what they do, so a command repeated after a failure finds its first entry and
finishes the action instead of recording it twice.

Keys are built by `action_key` from parts that may hold any character (`:` is allowed in shop
and customer ids), each part length-prefixed so two different actions never share a key."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from database.models import AuditEntry
from support.errors import ActionRefused

MAX_REASON = 1000
MAX_ACTOR = 200
MAX_KEY = 200  # support_audit.action_key is VARCHAR(200)
ACTION = re.compile(r"^[a-z_]{1,40}$")


@dataclass(frozen=True)
class Actor:
    """The person acting and why; both are required for every support action."""

    name: str
    reason: str

    def checked(self) -> Actor:
        name, reason = self.name.strip(), self.reason.strip()
        if not name:
            raise ActionRefused("actor", "must name who is acting (--actor, default $USER)")
        if not reason:
            raise ActionRefused("reason", "must say why (--reason)")
        if len(name) > MAX_ACTOR:
            raise ActionRefused("actor", f"at most {MAX_ACTOR} characters")
        if len(reason) > MAX_REASON:
            raise ActionRefused("reason", f"at most {MAX_REASON} characters")
        return Actor(name, reason)


@dataclass(frozen=True)
class ActionKey:
    """`value` is what is stored; `legacy` is the key the same action had before keys were
    length-prefixed (parts joined by `:`), looked up so that a command repeated across the
    deploy still finds its first entry."""

    value: str
    legacy: str


def action_key(action: str, *parts: str) -> ActionKey:
    """`unsubscribe|4:acme|4:c-42`: each part as `|<length>:<part>`, so `("a:b", "c")` and
    `("a", "b:c")` differ. A key longer than the column is its SHA-256 (`action#<hex>`); the
    `|` and `#` after the action keep both forms apart from each other and from legacy keys."""
    if not ACTION.match(action):
        raise ValueError(f"action {action!r}: lower-case letters and _ only")
    value = action + "".join(f"|{len(part)}:{part}" for part in parts)
    if len(value) > MAX_KEY:
        value = f"{action}#{hashlib.sha256(value.encode()).hexdigest()}"
    return ActionKey(value, ":".join((action, *parts)))


@dataclass(frozen=True)
class Recorded:
    id: int
    created: bool
    detail: dict[str, Any]


def record(
    sessions: sessionmaker[Session], actor: Actor, action: str, shop_id: str, *,
    order_id: str | None = None, customer_id: str | None = None, key: ActionKey | None = None,
    detail: dict[str, Any] | None = None,
) -> Recorded:
    """Add an entry, or return the one already holding `key`."""
    actor = actor.checked()
    entry = AuditEntry(
        actor=actor.name, action=action, shop_id=shop_id, order_id=order_id,
        customer_id=customer_id, reason=actor.reason, detail=detail or {},
        action_key=key.value if key else None,
    )
    try:
        with sessions.begin() as session:
            if key is not None and (found := _by_key(session, key, entry)) is not None:
                return Recorded(found.id, False, dict(found.detail))
            session.add(entry)
            session.flush()
            return Recorded(entry.id, True, dict(entry.detail))
    except IntegrityError:
        with sessions() as session:
            found = _by_key(session, key, entry) if key is not None else None
            if found is None:
                raise
            return Recorded(found.id, False, dict(found.detail))


def note(sessions: sessionmaker[Session], entry_id: int, **detail: Any) -> None:
    """Add what came of the action to its entry."""
    with sessions.begin() as session:
        entry = session.get_one(AuditEntry, entry_id, with_for_update=True)
        entry.detail = {**entry.detail, **detail}


def _by_key(session: Session, key: ActionKey, wanted: AuditEntry) -> AuditEntry | None:
    """The entry under the key, or under its legacy key if that entry is the same action on the
    same shop, order and customer (a legacy key alone is ambiguous)."""
    found = session.scalar(select(AuditEntry).where(AuditEntry.action_key == key.value))
    if found is not None:
        return found
    legacy = session.scalar(select(AuditEntry).where(AuditEntry.action_key == key.legacy))
    same = legacy is not None and all(
        getattr(legacy, column) == getattr(wanted, column)
        for column in ("action", "shop_id", "order_id", "customer_id")
    )
    return legacy if same else None
