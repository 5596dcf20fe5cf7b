"""Accepting shop events: store first, then start or signal lifecycles.

The purchase is committed before its lifecycle starts, and `lifecycle_started_at` is set only
by the lifecycle's first step, so a crash in between loses nothing: the shop's retry finds the
stored purchase and asks for the start again (refused if it had happened). Repeat purchases are
routed to the customer's earlier open lifecycles with signal-with-start, so a signal can never
miss a lifecycle that is not started yet.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client, WorkflowHandle
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from database.models import Customer, Purchase, Refund
from intake.errors import EventRejected
from intake.schemas import PurchaseEvent, RefundEvent, UnsubscribeEvent
from intake.store import StoredPurchase, mark_routed, store_purchase, workflow_id_for
from ledger import credits
from workflows import search
from workflows.contract import LifecycleInput, RefundRequest, RepeatPurchase
from workflows.lifecycle import PurchaseLifecycle
from workflows.rules import LifecycleRules


@dataclass(frozen=True)
class OpenLifecycle:
    shop_id: str
    order_id: str


class LifecycleService:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        client: Client,
        *,
        task_queue: str,
        email_task_queue: str,
        rules: LifecycleRules,
    ) -> None:
        self.sessions = sessions
        self.client = client
        self.task_queue = task_queue
        self.email_task_queue = email_task_queue
        self.rules = rules

    # Purchases

    async def accept_purchase(self, event: PurchaseEvent) -> tuple[str, bool]:
        """Returns the lifecycle's workflow id and whether this call stored the purchase (a
        retry after a failed start finds it stored, and starts its lifecycle).

        A new customer's first purchase costs one transaction and one start: nothing earlier
        can need the repeat signal, so it is stored already routed, and its lifecycle's first
        step records that it runs."""
        try:
            stored = await asyncio.to_thread(self._store_purchase, event)
        except IntegrityError:  # the same order was stored by a concurrent call
            stored = await asyncio.to_thread(self._store_purchase, event)
        if not stored.started:
            await self._start(event.shop_id, event.order_id, stored.customer_id)
        if not stored.routed:
            await self._route_repeat(event.shop_id, event.order_id)
            await asyncio.to_thread(self._mark_routed, event.shop_id, event.order_id)
        return stored.workflow_id, stored.new

    def _store_purchase(self, event: PurchaseEvent) -> StoredPurchase:
        return store_purchase(self.sessions, event, self.rules)

    def _mark_routed(self, shop_id: str, order_id: str) -> None:
        mark_routed(self.sessions, shop_id, order_id)

    def _lifecycle_input(self, shop_id: str, order_id: str) -> LifecycleInput:
        return LifecycleInput(shop_id, order_id, self.rules, self.email_task_queue)

    async def _start(self, shop_id: str, order_id: str, customer_id: str) -> bool:
        try:
            await self.client.start_workflow(
                PurchaseLifecycle.run,
                self._lifecycle_input(shop_id, order_id),
                id=workflow_id_for(shop_id, order_id),
                task_queue=self.task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                search_attributes=TypedSearchAttributes(
                    [
                        SearchAttributePair(search.SHOP_ID, shop_id),
                        SearchAttributePair(search.CUSTOMER_ID, customer_id),
                        SearchAttributePair(search.LIFECYCLE_STAGE, "starting"),
                    ]
                ),
            )
        except WorkflowAlreadyStartedError:
            return False
        return True

    # Repeat purchases

    async def _route_repeat(self, shop_id: str, order_id: str) -> None:
        repeat, earlier = await asyncio.to_thread(
            self._repeat_and_open_lifecycles, shop_id, order_id
        )
        for lifecycle in earlier:
            # a closed lifecycle refuses the start: its attribution window is over
            with contextlib.suppress(WorkflowAlreadyStartedError):
                await self.client.start_workflow(
                    PurchaseLifecycle.run,
                    self._lifecycle_input(lifecycle.shop_id, lifecycle.order_id),
                    id=workflow_id_for(lifecycle.shop_id, lifecycle.order_id),
                    task_queue=self.task_queue,
                    id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                    id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                    start_signal=PurchaseLifecycle.repeat_purchase.__name__,
                    start_signal_args=[repeat],
                )

    def _repeat_and_open_lifecycles(
        self, shop_id: str, order_id: str
    ) -> tuple[RepeatPurchase, list[OpenLifecycle]]:
        """The customer's cumulative spend up to this order, and their earlier lifecycles
        that may still credit a referrer (attributed, or not attributed yet)."""
        with self.sessions() as session:
            purchase = session.scalar(
                select(Purchase).where(Purchase.shop_id == shop_id, Purchase.order_id == order_id)
            )
            assert purchase is not None
            history = session.scalars(
                select(Purchase)
                .where(Purchase.customer_pk == purchase.customer_pk)
                .order_by(Purchase.placed_at, Purchase.id)
            ).all()
        spend = Decimal(0)
        earlier: list[OpenLifecycle] = []
        for other in history:
            if (other.placed_at, other.id) > (purchase.placed_at, purchase.id):
                break
            spend += other.total - other.refunded_amount
            if other.id == purchase.id:
                continue
            closes = other.window_closes_at
            open_window = closes is None or closes > purchase.placed_at
            may_credit = other.attribution in (None, "creator", "customer")
            if open_window and may_credit and other.refunded_amount == 0:
                earlier.append(OpenLifecycle(other.shop_id, other.order_id))
        repeat = RepeatPurchase(
            order_id, str(purchase.total), str(spend), purchase.placed_at.isoformat()
        )
        return repeat, earlier

    # Refunds and unsubscribes

    async def accept_refund(self, event: RefundEvent) -> dict[str, object]:
        refund_id, created = await asyncio.to_thread(self._store_refund, event)
        workflow_id = workflow_id_for(event.shop_id, event.order_id)
        handle: WorkflowHandle = self.client.get_workflow_handle(workflow_id)
        try:
            request = RefundRequest(refund_id, str(event.amount))
            await handle.signal(PurchaseLifecycle.refund, request)
        except RPCError as error:
            if error.status != RPCStatusCode.NOT_FOUND:
                raise
            await asyncio.to_thread(self._reverse_closed, event.shop_id, event.order_id)
        return {"workflow_id": workflow_id, "refund_id": refund_id, "created": created}

    def _store_refund(self, event: RefundEvent) -> tuple[int, bool]:
        key = event.refund_id or hashlib.sha256(
            f"{event.order_id}|{event.amount}|{event.reason}".encode()
        ).hexdigest()[:40]
        with self.sessions.begin() as session:
            purchase = session.scalar(
                select(Purchase)
                .where(Purchase.shop_id == event.shop_id, Purchase.order_id == event.order_id)
                # the purchase row only: the joined customer row is locked by activities that
                # update it before the purchase, and taking both here would deadlock with them
                .with_for_update(of=Purchase)
            )
            if purchase is None:
                raise EventRejected(
                    404, "order_id", f"no purchase {event.order_id} for shop {event.shop_id}"
                )
            existing = session.scalar(
                select(Refund).where(Refund.shop_id == event.shop_id, Refund.refund_key == key)
            )
            if existing is not None:
                return existing.id, False
            left = purchase.total - purchase.refunded_amount
            if event.amount > left:
                raise EventRejected(
                    422, "amount",
                    f"refund {event.amount} exceeds the {left} left to refund on this order",
                )
            refund = Refund(
                shop_id=event.shop_id, order_id=event.order_id, refund_key=key,
                amount=event.amount, reason=event.reason,
            )
            session.add(refund)
            purchase.refunded_amount = purchase.refunded_amount + event.amount
            session.flush()
            return refund.id, True

    def _reverse_closed(self, shop_id: str, order_id: str) -> None:
        """The lifecycle has ended (or never ran): take the credits back directly."""
        with self.sessions.begin() as session:
            credits.reverse_order(session, shop_id, order_id, datetime.now(UTC))

    async def accept_unsubscribe(self, event: UnsubscribeEvent) -> dict[str, object]:
        order_ids = await asyncio.to_thread(self._store_unsubscribe, event)
        signalled = 0
        for order_id in order_ids:
            handle = self.client.get_workflow_handle(workflow_id_for(event.shop_id, order_id))
            try:
                await handle.signal(PurchaseLifecycle.unsubscribe)
                signalled += 1
            except RPCError as error:
                if error.status != RPCStatusCode.NOT_FOUND:
                    raise
        return {"lifecycles_signalled": signalled}

    def _store_unsubscribe(self, event: UnsubscribeEvent) -> list[str]:
        """Unsubscribe takes effect in the database, where every send checks it; the signals only
        let each lifecycle show it, so every order is signalled (one whose lifecycle is over or
        not started answers not found). An unknown customer is remembered for their first
        purchase."""
        now = datetime.now(UTC)
        with self.sessions.begin() as session:
            customer = session.scalar(
                select(Customer).where(
                    Customer.shop_id == event.shop_id, Customer.customer_id == event.customer_id
                )
            )
            if customer is None:
                customer = Customer(shop_id=event.shop_id, customer_id=event.customer_id)
                session.add(customer)
                session.flush()
            customer.unsubscribed_at = customer.unsubscribed_at or now
            return list(
                session.scalars(
                    select(Purchase.order_id).where(Purchase.customer_pk == customer.id)
                )
            )

    async def lifecycle(self, shop_id: str, order_id: str) -> dict[str, object] | None:
        from support.inspect import inspect_lifecycle

        return await inspect_lifecycle(self.sessions, self.client, shop_id, order_id)
