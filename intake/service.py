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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
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

from activities.schedule import days
from database.models import Customer, Purchase, Refund
from database.session import lock_for_decision
from intake.errors import EventRejected
from intake.store import StoredPurchase, mark_routed, store_purchase
from intake.subscription import mark_unsubscribed
from intake.timeline import inspect_lifecycle
from ledger import credits
from messages.links import signed
from shop_events.money import in_minor_units
from shop_events.schemas import PurchaseEvent, RefundEvent, UnsubscribeEvent
from workflows import search
from workflows.contract import LifecycleInput, RefundRequest, RepeatPurchase
from workflows.lifecycle import PurchaseLifecycle
from workflows.rules import LifecycleRules
from workflows.state import CREDITED


@dataclass(frozen=True)
class OpenLifecycle:
    shop_id: str
    order_id: str
    workflow_id: str


@dataclass(frozen=True)
class StoredRefund:
    refund_id: int
    created: bool
    workflow_id: str
    amount: Decimal


def refund_keys(event: RefundEvent, amount: Decimal) -> list[str]:
    """The refund's idempotency key, then the one it had before amounts were normalised (so
    a retry across the upgrade finds its refund). The shop's refund id when it sends one."""
    if event.refund_id:
        return [event.refund_id]
    parts = [event.order_id, str(amount), event.reason]
    key = hashlib.sha256(signed(*parts)).hexdigest()[:40]
    legacy = hashlib.sha256("|".join(parts).encode()).hexdigest()[:40]
    return [key, legacy]


async def wall_clock() -> datetime:
    return datetime.now(UTC)


# A shop's clock may run a little ahead of ours; a purchase days ahead is a mistake.
FUTURE_TOLERANCE = timedelta(days=1)


class LifecycleService:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        client: Client,
        *,
        task_queue: str,
        email_task_queue: str,
        rules: LifecycleRules,
        clock: Callable[[], Awaitable[datetime]] = wall_clock,
    ) -> None:
        self.sessions = sessions
        self.client = client
        self.task_queue = task_queue
        self.email_task_queue = email_task_queue
        self.rules = rules
        self.clock = clock

    # Purchases

    async def accept_purchase(self, event: PurchaseEvent) -> tuple[str, bool]:
        """Returns the lifecycle's workflow id and whether this call stored the purchase (a
        retry after a failed start finds it stored, and starts its lifecycle).

        A new customer's first purchase costs one transaction and one start: nothing earlier
        can need the repeat signal, so it is stored already routed, and its lifecycle's first
        step records that it runs."""
        self._check_placed_at(event, await self.clock())
        try:
            stored = await asyncio.to_thread(self._store_purchase, event)
        except IntegrityError:  # the same order was stored by a concurrent call
            stored = await asyncio.to_thread(self._store_purchase, event)
        if not stored.started:
            await self._start(stored.workflow_id, event.shop_id, event.order_id,
                              stored.customer_id)
        if not stored.routed:
            await self._route_repeat(event.shop_id, event.order_id)
            await asyncio.to_thread(self._mark_routed, event.shop_id, event.order_id)
        return stored.workflow_id, stored.new

    def _check_placed_at(self, event: PurchaseEvent, now: datetime) -> None:
        """A purchase whose attribution window closed before it arrived can earn nothing and
        would send every onboarding email at once; one from days ahead is a wrong clock."""
        rules = self.rules
        window = days(rules, rules.attribution_window_days)
        if event.placed_at > now + FUTURE_TOLERANCE:
            raise EventRejected(
                422, "placed_at",
                f"is more than a day ahead of now ({now.astimezone(UTC):%Y-%m-%dT%H:%MZ})",
            )
        if event.placed_at < now - window:
            raise EventRejected(
                422, "placed_at",
                f"is older than the {rules.attribution_window_days}-day attribution window: "
                "its lifecycle would have nothing left to do",
            )

    def _store_purchase(self, event: PurchaseEvent) -> StoredPurchase:
        return store_purchase(self.sessions, event, self.rules)

    def _mark_routed(self, shop_id: str, order_id: str) -> None:
        mark_routed(self.sessions, shop_id, order_id)

    def _lifecycle_input(self, shop_id: str, order_id: str) -> LifecycleInput:
        return LifecycleInput(shop_id, order_id, self.rules, self.email_task_queue)

    async def _start(
        self, workflow_id: str, shop_id: str, order_id: str, customer_id: str
    ) -> bool:
        try:
            await self.client.start_workflow(
                PurchaseLifecycle.run,
                self._lifecycle_input(shop_id, order_id),
                id=workflow_id,
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
                    id=lifecycle.workflow_id,
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
            # not attributed yet (its lifecycle not begun), or crediting a referrer
            may_credit = other.attribution is None or other.attribution in CREDITED
            if open_window and may_credit and other.refunded_amount == 0:
                earlier.append(OpenLifecycle(other.shop_id, other.order_id, other.workflow_id))
        repeat = RepeatPurchase(order_id, str(purchase.total), str(spend), purchase.placed_at)
        return repeat, earlier

    # Refunds and unsubscribes

    async def accept_refund(self, event: RefundEvent) -> dict[str, object]:
        stored = await asyncio.to_thread(self._store_refund, event)
        handle: WorkflowHandle = self.client.get_workflow_handle(stored.workflow_id)
        try:
            request = RefundRequest(stored.refund_id, str(stored.amount))
            await handle.signal(PurchaseLifecycle.refund, request)
        except RPCError as error:
            if error.status != RPCStatusCode.NOT_FOUND:
                raise
            await asyncio.to_thread(self._reverse_closed, event.shop_id, event.order_id)
        return {"workflow_id": stored.workflow_id, "refund_id": stored.refund_id,
                "created": stored.created}

    def _store_refund(self, event: RefundEvent) -> StoredRefund:
        with self.sessions.begin() as session:
            # SQLite has no row locks: the database's write lock before the first read, or two
            # refunds both read what is left and both are stored.
            lock_for_decision(session.connection())
            # The customer's row first, as every email step's decision holds it from its read
            # of the refunded amount to its claim: a refund committing in between would let an
            # email decided "not refunded" go out after it. Customer, then purchase, is the
            # order the purchase's first step and an erasure take them in too (no deadlock).
            session.execute(
                select(Customer.id)
                .join(Purchase, Purchase.customer_pk == Customer.id)
                .where(Purchase.shop_id == event.shop_id, Purchase.order_id == event.order_id)
                .with_for_update(of=Customer)
            )
            purchase = session.scalar(
                select(Purchase)
                .where(Purchase.shop_id == event.shop_id, Purchase.order_id == event.order_id)
                .with_for_update(of=Purchase)
            )
            if purchase is None:
                raise EventRejected(
                    404, "order_id", f"no purchase {event.order_id} for shop {event.shop_id}"
                )
            try:
                amount = in_minor_units(event.amount, purchase.currency)
            except ValueError as error:
                raise EventRejected(422, "amount", str(error)) from None
            keys = refund_keys(event, amount)
            existing = session.scalar(
                select(Refund).where(Refund.shop_id == event.shop_id, Refund.refund_key.in_(keys))
            )
            if existing is not None:
                if (existing.order_id, existing.amount) != (event.order_id, amount):
                    raise EventRejected(
                        409, "refund_id",
                        f"refund {event.refund_id} is recorded for another order or amount; "
                        "a refund id names one refund",
                    )
                return StoredRefund(existing.id, False, purchase.workflow_id, existing.amount)
            left = purchase.total - purchase.refunded_amount
            if amount > left:
                raise EventRejected(
                    422, "amount",
                    f"refund {amount} exceeds the {left} left to refund on this order",
                )
            refund = Refund(
                shop_id=event.shop_id, order_id=event.order_id, refund_key=keys[0],
                amount=amount, reason=event.reason,
            )
            session.add(refund)
            purchase.refunded_amount = purchase.refunded_amount + amount
            session.flush()
            return StoredRefund(refund.id, True, purchase.workflow_id, amount)

    def _reverse_closed(self, shop_id: str, order_id: str) -> None:
        """The lifecycle has ended (or never ran): take the credits back directly."""
        with self.sessions.begin() as session:
            credits.reverse_order(session, shop_id, order_id, datetime.now(UTC))

    async def accept_unsubscribe(self, event: UnsubscribeEvent) -> dict[str, object]:
        workflow_ids = await asyncio.to_thread(self._store_unsubscribe, event)
        signalled = 0
        for workflow_id in workflow_ids:
            handle = self.client.get_workflow_handle(workflow_id)
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
        with self.sessions.begin() as session:
            return mark_unsubscribed(session, event.shop_id, event.customer_id).workflow_ids

    async def lifecycle(
        self, shop_id: str, order_id: str, ui_url: str
    ) -> dict[str, object] | None:
        """The lifecycle as support sees it, its Temporal UI link at `ui_url`."""
        return await inspect_lifecycle(self.sessions, self.client, shop_id, order_id, ui_url)
