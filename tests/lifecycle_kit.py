"""A test's own Loyalloop: real workers on fresh task queues, the real intake service, a shop
of its own, and readers for what the customer and the creator got."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.emails import EmailActivities
from activities.purchases import PurchaseActivities
from database.models import Creator, Credit, EmailSend, OutboxMessage
from intake.service import LifecycleService
from settings import Settings
from shop_events.schemas import PurchaseEvent
from worker import build_workers
from workflows.contract import LifecycleSummary
from workflows.rules import LifecycleRules


class _Handle(WorkflowHandle[Any, LifecycleSummary]):
    """A lifecycle handle whose `result()` lets the time-skipping server skip ahead, as the
    handles `start_workflow` returns there do (the intake starts lifecycles, not the test)."""

    def __init__(self, env: WorkflowEnvironment, workflow_id: str) -> None:
        super().__init__(env.client, workflow_id, result_type=LifecycleSummary)
        self._env = env

    async def result(self, **kwargs: Any) -> LifecycleSummary:
        if not self._env.supports_time_skipping_v1:
            return await super().result(**kwargs)
        async with self._env.time_skipping_unlocked():
            return await super().result(**kwargs)


class LifecycleKit:
    def __init__(
        self,
        env: WorkflowEnvironment,
        sessions: sessionmaker[Session],
        settings: Settings,
        workers: list[Worker],
    ) -> None:
        self.env = env
        self.client = env.client
        self.sessions = sessions
        self.settings = settings
        self.workers = workers
        self.shop_id = f"shop-{uuid.uuid4().hex[:10]}"
        self.service = LifecycleService(
            sessions,
            env.client,
            task_queue=settings.lifecycle_task_queue,
            email_task_queue=settings.email_task_queue,
            rules=settings.rules(),
            clock=env.get_current_time,  # the intake's "now" is the lifecycles' clock
        )

    @classmethod
    @asynccontextmanager
    async def running(
        cls,
        env: WorkflowEnvironment,
        sessions: sessionmaker[Session],
        templates_dir: Path,
        *,
        max_cached_workflows: int = 1000,
        purchases: PurchaseActivities | None = None,
        emails: EmailActivities | None = None,
        **overrides: Any,
    ) -> AsyncIterator[LifecycleKit]:
        """Production's workers (worker.build_workers) on this test's own task queues;
        `purchases` and `emails` replace the real activity objects (a crash, a failing
        provider), `overrides` the settings."""
        suffix = uuid.uuid4().hex[:8]
        values: dict[str, Any] = {
            "lifecycle_task_queue": f"lifecycles-{suffix}",
            "email_task_queue": f"emails-{suffix}",
            "templates_dir": templates_dir,
            "sendgrid_api_key": None,
        }
        settings = Settings(**(values | overrides))
        async with AsyncExitStack() as stack:
            executor = stack.enter_context(ThreadPoolExecutor(max_workers=16))
            workers = build_workers(
                env.client, sessions, settings, executor,
                max_cached_workflows=max_cached_workflows, purchases=purchases, emails=emails,
            )
            for worker in workers:
                await stack.enter_async_context(worker)
            yield cls(env, sessions, settings, workers)

    @property
    def rules(self) -> LifecycleRules:
        return self.service.rules

    async def now(self) -> datetime:
        return await self.env.get_current_time()

    def purchase(
        self,
        order_id: str,
        customer_id: str = "c-42",
        *,
        total: str = "49.00",
        referral: str | None = None,
        skus: Sequence[str] = ("KETTLE-1",),
        email: str | None = None,
        consent: bool = True,
        placed_at: datetime | None = None,
        locale: str = "en",
        timezone: str = "Europe/Lisbon",
    ) -> PurchaseEvent:
        cents, rest = divmod(int(Decimal(total) * 100), len(skus))
        prices = [Decimal(cents + (1 if i < rest else 0)) / 100 for i in range(len(skus))]
        return PurchaseEvent.model_validate(
            {
                "shop_id": self.shop_id,
                "order_id": order_id,
                "placed_at": (placed_at or datetime.now().astimezone()).isoformat(),
                "customer": {
                    "id": customer_id,
                    "email": email or f"{customer_id}@example.com",
                    "first_name": "Ana",
                    "locale": locale,
                    "timezone": timezone,
                    "marketing_consent": consent,
                },
                "items": [
                    {"sku": sku, "name": f"Item {sku}", "quantity": 1,
                     "unit_price": f"{price:.2f}"}
                    for sku, price in zip(skus, prices, strict=True)
                ],
                "total": total,
                "currency": "EUR",
                **({"referral": {"code": referral}} if referral else {}),
            }
        )

    async def buy(self, event: PurchaseEvent) -> WorkflowHandle[Any, LifecycleSummary]:
        if event.placed_at is None:
            raise AssertionError("purchase needs placed_at")
        workflow_id, _ = await self.service.accept_purchase(event)
        return self.handle(workflow_id)

    def handle(self, workflow_id: str) -> WorkflowHandle[Any, LifecycleSummary]:
        return _Handle(self.env, workflow_id)

    async def placed_now(
        self, order_id: str, customer_id: str = "c-42", **kwargs: Any
    ) -> PurchaseEvent:
        return self.purchase(order_id, customer_id, placed_at=await self.now(), **kwargs)

    def add_creator(self, code: str, name: str = "Maya") -> str:
        code = f"{code}{uuid.uuid4().hex[:4].upper()}"
        with self.sessions.begin() as session:
            session.add(Creator(code=code, name=name, email=f"{code.lower()}@creators.example"))
        return code

    def emails(self, workflow_id: str) -> list[EmailSend]:
        with self.sessions() as session:
            return list(
                session.scalars(
                    select(EmailSend)
                    .where(EmailSend.workflow_id == workflow_id)
                    .order_by(EmailSend.id)
                )
            )

    def outbox(self, workflow_id: str) -> list[OutboxMessage]:
        with self.sessions() as session:
            return list(
                session.scalars(
                    select(OutboxMessage)
                    .join(EmailSend, OutboxMessage.email_send_id == EmailSend.id)
                    .where(EmailSend.workflow_id == workflow_id)
                    .order_by(OutboxMessage.id)
                )
            )

    def credits(self, referrer_code: str | None = None) -> list[Credit]:
        with self.sessions() as session:
            query = select(Credit).where(Credit.shop_id == self.shop_id).order_by(Credit.id)
            if referrer_code:
                query = query.where(Credit.referrer_code == referrer_code)
            return list(session.scalars(query))

    async def skip(self, days: float) -> None:
        await self.env.sleep(timedelta(days=days))


def confirm_as_webhook(
    sessions: sessionmaker[Session], row_id: int, at: datetime, message_id: str = "sg-event"
) -> bool:
    """Stand in for SendGrid's Event Webhook recording a `processed` or `delivered` event of an
    email still `sending` (the contract with the webhook's branch): in one transaction the row
    becomes sent at the event's time, by SendGrid, keeping a message id it has. Whether it did."""
    with sessions.begin() as session:
        row = session.get(EmailSend, row_id, with_for_update=True)
        if row is None or row.status != "sending":
            return False
        session.execute(
            update(EmailSend).where(EmailSend.id == row_id).values(
                status="sent", sent_at=at, provider="sendgrid",
                provider_message_id=row.provider_message_id or message_id,
            )
        )
    return True
