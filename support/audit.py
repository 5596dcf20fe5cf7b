"""The support audit: who did what, when and why. Entries are written before the action runs
and keyed by what they do, so a command repeated after a failure finds its first entry and
finishes the action instead of recording it twice."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from database.models import AuditEntry
from support.errors import ActionRefused

MAX_REASON = 1000
MAX_ACTOR = 200


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
class Recorded:
    id: int
    created: bool
    detail: dict[str, Any]


def record(
    sessions: sessionmaker[Session], actor: Actor, action: str, shop_id: str, *,
    order_id: str | None = None, customer_id: str | None = None, key: str | None = None,
    detail: dict[str, Any] | None = None,
) -> Recorded:
    """Add an entry, or return the one already holding `key`."""
    actor = actor.checked()
    try:
        with sessions.begin() as session:
            if key is not None and (found := _by_key(session, key)) is not None:
                return Recorded(found.id, False, dict(found.detail))
            entry = AuditEntry(
                actor=actor.name, action=action, shop_id=shop_id, order_id=order_id,
                customer_id=customer_id, reason=actor.reason, detail=detail or {}, action_key=key,
            )
            session.add(entry)
            session.flush()
            return Recorded(entry.id, True, dict(entry.detail))
    except IntegrityError:
        with sessions() as session:
            found = _by_key(session, key or "")
            if found is None:
                raise
            return Recorded(found.id, False, dict(found.detail))


def note(sessions: sessionmaker[Session], entry_id: int, **detail: Any) -> None:
    """Add what came of the action to its entry."""
    with sessions.begin() as session:
        entry = session.get_one(AuditEntry, entry_id, with_for_update=True)
        entry.detail = {**entry.detail, **detail}


def _by_key(session: Session, key: str) -> AuditEntry | None:
    return session.scalar(select(AuditEntry).where(AuditEntry.action_key == key))
