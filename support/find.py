"""Finding lifecycles by customer, creator or email.

The database says which purchases match; Temporal adds where each lifecycle is. An email address
is looked up in the database only and never reaches Temporal: its matches are described by
workflow id. Customer and creator searches also ask Temporal's visibility
(`CustomerId='c-42'`, `CreatorCode='MAYA10'`), which finds lifecycles the database no longer
links to (an erased customer); a server without visibility queries (the time-skipping test
server) falls back to describing each match.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from database.models import Customer, Purchase
from ledger.referrals import normalize_email
from support.errors import ActionRefused
from workflows import search

LIMIT = 200
RPC_TIMEOUT = timedelta(seconds=10)
SAFE_VALUE = re.compile(r"^[A-Za-z0-9_.:@+-]{1,128}$")


@dataclass(frozen=True)
class Criteria:
    customer: str | None = None
    creator: str | None = None
    email: str | None = None
    shop_id: str | None = None

    def checked(self) -> Criteria:
        given = [name for name in ("customer", "creator", "email") if getattr(self, name)]
        if len(given) != 1:
            raise ActionRefused(None, "give exactly one of --customer, --creator, --email")
        for name in ("customer", "creator", "shop_id"):
            value = getattr(self, name)
            if value and not SAFE_VALUE.match(value):
                raise ActionRefused(name, f"{value!r} is not an id (letters, digits, - _ . : @ +)")
        if self.email and "@" not in self.email:
            raise ActionRefused("email", f"{self.email!r} is not an email address")
        return self

    def visibility_query(self) -> str | None:
        """The Temporal list filter, for ids only; None for an email."""
        if self.customer:
            query = f"{search.CUSTOMER_ID.name}='{self.customer}'"
        elif self.creator:
            query = f"{search.CREATOR_CODE.name}='{self.creator.upper()}'"
        else:
            return None
        if self.shop_id:
            query += f" AND {search.SHOP_ID.name}='{self.shop_id}'"
        return query


def _matching(criteria: Criteria) -> Select[Purchase]:
    query = select(Purchase).join(Customer, Purchase.customer_pk == Customer.id)
    if criteria.customer:
        query = query.where(Customer.customer_id == criteria.customer)
    elif criteria.creator:
        query = query.where(func.upper(Purchase.referrer_code) == criteria.creator.upper())
    else:
        query = query.where(Customer.email_normalized == normalize_email(criteria.email or ""))
    if criteria.shop_id:
        query = query.where(Purchase.shop_id == criteria.shop_id)
    return query.order_by(Purchase.placed_at, Purchase.id).limit(LIMIT)


def purchases_matching(session: Session, criteria: Criteria) -> list[dict[str, Any]]:
    return [
        {
            "workflow_id": p.workflow_id, "shop_id": p.shop_id, "order_id": p.order_id,
            "customer_id": p.customer.customer_id, "placed_at": p.placed_at.isoformat(),
            "total": str(p.total), "currency": p.currency, "attribution": p.attribution,
            "referrer_code": p.referrer_code, "status": None, "stage": None,
        }
        for p in session.scalars(_matching(criteria))
    ]


async def find_lifecycles(
    sessions: sessionmaker[Session], client: Client, criteria: Criteria
) -> list[dict[str, Any]]:
    criteria = criteria.checked()

    def read() -> list[dict[str, Any]]:
        with sessions() as session:
            return purchases_matching(session, criteria)

    rows = await asyncio.to_thread(read)
    by_id = {row["workflow_id"]: row for row in rows}
    query = criteria.visibility_query()
    listed = await _list(client, query) if query else None
    if listed is None:
        await asyncio.gather(*(_describe(client, row) for row in rows))
        return rows
    for workflow_id, status, stage in listed:
        row = by_id.get(workflow_id)
        if row is None:
            row = by_id[workflow_id] = {"workflow_id": workflow_id, "source": "temporal only"}
            rows.append(row)
        row["status"], row["stage"] = status, stage
    unlisted = [row for row in rows if row["status"] is None]  # visibility lags a little
    await asyncio.gather(*(_describe(client, row) for row in unlisted))
    return rows


async def _list(client: Client, query: str) -> list[tuple[str, str | None, str | None]] | None:
    """Every lifecycle the visibility query finds, or None where the server cannot list."""
    found = []
    try:
        async for execution in client.list_workflows(query, limit=LIMIT, rpc_timeout=RPC_TIMEOUT):
            found.append((
                execution.id,
                execution.status.name if execution.status else None,
                execution.typed_search_attributes.get(search.LIFECYCLE_STAGE),
            ))
    except RPCError as error:
        if error.status == RPCStatusCode.UNIMPLEMENTED:
            return None
        raise
    return found


async def _describe(client: Client, row: dict[str, Any]) -> None:
    try:
        described = await client.get_workflow_handle(row["workflow_id"]).describe(
            rpc_timeout=RPC_TIMEOUT
        )
    except RPCError as error:
        if error.status != RPCStatusCode.NOT_FOUND:
            raise
        row["status"] = "NOT_STARTED"
        return
    row["status"] = described.status.name if described.status else None
    row["stage"] = described.typed_search_attributes.get(search.LIFECYCLE_STAGE)
