"""Support's actions on lifecycles: refund, unsubscribe, cancel, resend. Each is audited (who,
when, why) and goes through the same service or signal a shop's event would, so there is one
implementation of each effect."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode

from database.models import Purchase
from intake.service import LifecycleService
from intake.store import workflow_id_for
from shop_events.schemas import RefundEvent, UnsubscribeEvent
from support import audit
from support.audit import Actor
from support.errors import ActionRefused
from workflows.contract import ResendRequest
from workflows.lifecycle import PurchaseLifecycle
from workflows.resend import ResendInput, ResendStep

RPC_TIMEOUT = timedelta(seconds=10)


@dataclass(frozen=True)
class ActionResult:
    audit_id: int
    workflow_id: str | None
    repeated: bool
    detail: dict[str, object]


class SupportActions:
    def __init__(self, service: LifecycleService, steps: list[str]) -> None:
        self.service = service
        self.sessions: sessionmaker[Session] = service.sessions
        self.client: Client = service.client
        self.steps = steps

    async def refund(self, event: RefundEvent, actor: Actor) -> ActionResult:
        """The shop's refund, recorded with who asked; repeating it finds the same refund."""
        actor = actor.checked()
        outcome = await self.service.accept_refund(event)
        entry = await asyncio.to_thread(
            audit.record, self.sessions, actor, "refund", event.shop_id,
            order_id=event.order_id,
            key=audit.action_key("refund", event.shop_id, str(outcome["refund_id"])),
            detail={"refund_id": outcome["refund_id"], "amount": str(event.amount)},
        )
        return ActionResult(entry.id, str(outcome["workflow_id"]), not entry.created, entry.detail)

    async def unsubscribe(self, event: UnsubscribeEvent, actor: Actor) -> ActionResult:
        actor = actor.checked()
        outcome = await self.service.accept_unsubscribe(event)
        entry = await asyncio.to_thread(
            audit.record, self.sessions, actor, "unsubscribe", event.shop_id,
            customer_id=event.customer_id,
            key=audit.action_key("unsubscribe", event.shop_id, event.customer_id),
            detail={"lifecycles_signalled": outcome["lifecycles_signalled"]},
        )
        return ActionResult(entry.id, None, not entry.created, entry.detail)

    async def cancel(self, shop_id: str, order_id: str, actor: Actor) -> ActionResult:
        """Stop a lifecycle's remaining emails; its credits keep their course."""
        actor = actor.checked()
        workflow_id, customer_id = await self._purchase(shop_id, order_id)
        await self._require_running(workflow_id, "cancel")
        entry = await asyncio.to_thread(
            audit.record, self.sessions, actor, "cancel", shop_id, order_id=order_id,
            customer_id=customer_id, key=audit.action_key("cancel", workflow_id),
        )
        await self._signal(entry, workflow_id, "cancel", PurchaseLifecycle.cancel)
        return ActionResult(entry.id, workflow_id, not entry.created, entry.detail)

    async def resend(self, shop_id: str, order_id: str, step: str, actor: Actor) -> ActionResult:
        """Send a step again on purpose, under a new idempotency key: the audit entry's id.

        A running lifecycle takes it as its `resend` signal; for a closed one a one-step
        `ResendStep` workflow (id `resend-<audit id>`) runs the same email activity. Either way
        the send is retried and recorded like any other."""
        actor = actor.checked()
        if step not in self.steps:
            raise ActionRefused("step", f"{step!r} is not a step; steps: {', '.join(self.steps)}")
        workflow_id, customer_id = await self._purchase(shop_id, order_id)
        status = await lifecycle_status(self.client, workflow_id)
        if status is None:
            raise ActionRefused(
                "order", f"lifecycle {workflow_id} was never started; nothing to resend"
            )
        entry = await asyncio.to_thread(
            audit.record, self.sessions, actor, "resend", shop_id, order_id=order_id,
            customer_id=customer_id, detail={"step": step},
        )
        key = f"resend:{entry.id}"
        await asyncio.to_thread(audit.note, self.sessions, entry.id, idempotency_key=key)
        if status == WorkflowExecutionStatus.RUNNING:
            await self._signal(entry, workflow_id, "resend", PurchaseLifecycle.resend,
                               ResendRequest(step, key))
        else:
            await self.client.start_workflow(
                ResendStep.run,
                ResendInput(shop_id, order_id, workflow_id, step, key,
                            self.service.email_task_queue),
                id=f"resend-{entry.id}",
                task_queue=self.service.task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            )
            await asyncio.to_thread(
                audit.note, self.sessions, entry.id, outcome=f"started resend-{entry.id}"
            )
        return ActionResult(entry.id, workflow_id, False, {"step": step, "idempotency_key": key})

    async def _purchase(self, shop_id: str, order_id: str) -> tuple[str, str]:
        def read() -> tuple[str, str] | None:
            with self.sessions() as session:
                purchase = session.scalar(
                    select(Purchase).where(
                        Purchase.shop_id == shop_id, Purchase.order_id == order_id
                    )
                )
                if purchase is None:
                    return None
                return purchase.workflow_id, purchase.customer.customer_id

        found = await asyncio.to_thread(read)
        if found is None:
            raise ActionRefused("order", f"no purchase {order_id} for shop {shop_id}")
        return found

    async def _require_running(self, workflow_id: str, action: str) -> None:
        status = await lifecycle_status(self.client, workflow_id)
        if status is None:
            raise ActionRefused(
                "order", f"lifecycle {workflow_id} was never started; nothing to {action}"
            )
        if status != WorkflowExecutionStatus.RUNNING:
            raise ActionRefused(
                "order",
                f"lifecycle {workflow_id} is closed ({status.name.lower()}); "
                f"{action} needs a running lifecycle, nothing was done",
            )

    async def _signal(self, entry: audit.Recorded, workflow_id: str, action: str, signal,  # type: ignore[no-untyped-def]
                      *args) -> None:
        """Deliver the action and note the outcome on its audit entry (a repeated command
        re-delivers, which the lifecycle ignores, and leaves the first entry as it was)."""
        try:
            await self.client.get_workflow_handle(workflow_id).signal(
                signal, *args, rpc_timeout=RPC_TIMEOUT
            )
        except RPCError as error:
            closed = error.status == RPCStatusCode.NOT_FOUND
            outcome = "lifecycle closed first" if closed else f"signal failed: {error.message}"
            if entry.created:
                await asyncio.to_thread(audit.note, self.sessions, entry.id, outcome=outcome)
            raise ActionRefused(
                "order", f"{action} of {workflow_id} not delivered: {outcome}"
            ) from error
        if entry.created:
            await asyncio.to_thread(audit.note, self.sessions, entry.id, outcome="signalled")


async def lifecycle_status(client: Client, workflow_id: str) -> WorkflowExecutionStatus | None:
    """The lifecycle's Temporal status, or None if Temporal has no such workflow."""
    try:
        described = await client.get_workflow_handle(workflow_id).describe(rpc_timeout=RPC_TIMEOUT)
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            return None
        raise
    return described.status


__all__ = ["ActionResult", "Actor", "SupportActions", "lifecycle_status", "workflow_id_for"]
