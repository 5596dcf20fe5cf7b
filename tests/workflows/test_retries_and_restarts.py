"""Exactly-once when activities fail after doing their work, and when the worker goes away."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Connection, select
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.testing import WorkflowEnvironment

from activities.emails import EmailActivities, EmailIdentity
from activities.purchases import PurchaseActivities
from database.models import Customer
from messages.render import TemplateRenderer
from messages.senders import Message, OutboxSender, SendError
from tests.lifecycle_kit import LifecycleKit
from workflows.contract import BeginLifecycle, LifecyclePlan


def customer_codes(sessions: sessionmaker[Session], shop_id: str) -> list[str | None]:
    """Every customer's referral code in the shop."""
    with sessions() as session:
        return list(
            session.scalars(select(Customer.referral_code).where(Customer.shop_id == shop_id))
        )


def quoted_in_prompt(kit: LifecycleKit, workflow_id: str, code: str) -> bool:
    """The referral prompt this lifecycle sent gives the customer `code`."""
    (sent,) = [e.id for e in kit.emails(workflow_id) if e.step == "referral_prompt"]
    (prompt,) = [m for m in kit.outbox(workflow_id) if m.email_send_id == sent]
    return code in (prompt.text or "")


class CrashAfterCommit(PurchaseActivities):
    """Does the real work, commits it, then fails on its first two attempts: a worker that
    died right after the database said yes. Notes the customer's code after each attempt."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        super().__init__(sessions)
        self.sessions = sessions
        self.codes_after_attempt: list[list[str | None]] = []

    @activity.defn(name="begin_lifecycle")
    def begin_lifecycle(self, req: BeginLifecycle) -> LifecyclePlan:
        plan = super().begin_lifecycle(req)
        self.codes_after_attempt.append(customer_codes(self.sessions, req.shop_id))
        if activity.info().attempt <= 2:
            raise RuntimeError(f"worker lost after commit (attempt {activity.info().attempt})")
        return plan


class FlakyProvider(OutboxSender):
    """A provider that is down for the first two sends."""

    def __init__(self) -> None:
        self.calls = 0

    def send(self, connection: Connection | None, email_id: int, message: Message) -> str:
        self.calls += 1
        if self.calls <= 2:
            raise SendError("503 Service Unavailable", retryable=True, status=503)
        return super().send(connection, email_id, message)


async def test_activity_failing_twice_gives_one_email_and_one_credit(
    env: WorkflowEnvironment, sessions: sessionmaker[Session], templates_dir: Path
):
    purchases = CrashAfterCommit(sessions)
    provider = FlakyProvider()
    emails = EmailActivities(
        sessions,
        TemplateRenderer(templates_dir),
        provider,
        EmailIdentity("hello@shop.example", "https://shop.example", "secret"),
    )
    async with LifecycleKit.running(
        env, sessions, templates_dir, purchases=purchases, emails=emails
    ) as kit:
        creator = kit.add_creator("MAYA")
        handle = await kit.buy(await kit.placed_now("f-1", referral=creator))
        summary = await handle.result()

        assert provider.calls == 6  # two failures, then the four steps
        assert summary.emails_sent == 4 and len(kit.outbox(handle.id)) == 4
        assert [e.attempts for e in kit.emails(handle.id)] == [3, 1, 1, 1]
        assert [(c.milestone, c.status) for c in kit.credits(creator)] == [("referral", "approved")]
        codes = customer_codes(sessions, kit.shop_id)
    # One code, given on the first attempt and kept by the two retries, and the one the
    # customer was told.
    assert len(codes) == 1 and codes[0], codes
    assert purchases.codes_after_attempt == [codes] * 3
    assert quoted_in_prompt(kit, handle.id, codes[0])


async def test_worker_stopped_and_restarted_mid_lifecycle(
    env: WorkflowEnvironment, sessions: sessionmaker[Session], templates_dir: Path
):
    # No workflow cache, so no sticky queue: a real server moves a lifecycle off a dead worker's
    # sticky queue after a timeout, which the time-skipping server never reaches.
    async with LifecycleKit.running(env, sessions, templates_dir, max_cached_workflows=0) as kit:
        creator = kit.add_creator("MAYA")
        handle = await kit.buy(await kit.placed_now("r-1", referral=creator))
        await kit.skip(8)
        queues = kit.settings.lifecycle_task_queue, kit.settings.email_task_queue
    codes = customer_codes(sessions, kit.shop_id)
    assert len(codes) == 1 and codes[0], codes
    # The worker is gone; the lifecycle waits on the server, losing nothing.
    assert [e.step for e in kit.emails(handle.id)] == ["day_1", "day_7", "referral_prompt"]
    async with LifecycleKit.running(
        env, sessions, templates_dir, lifecycle_task_queue=queues[0], email_task_queue=queues[1]
    ) as again:
        assert again.settings.lifecycle_task_queue == queues[0]
        summary = await handle.result()
        # The same customer buys again: their code stays the one they were given.
        second = await kit.buy(await kit.placed_now("r-2"))
        await second.result()
    assert summary.emails_sent == 4
    assert [e.step for e in kit.emails(handle.id)] == [
        "day_1",
        "day_7",
        "referral_prompt",
        "day_21",
    ]
    assert len(kit.outbox(handle.id)) == 4
    assert [(c.milestone, c.status) for c in kit.credits(creator)] == [("referral", "approved")]
    assert customer_codes(sessions, kit.shop_id) == codes  # one customer row, one code
    assert quoted_in_prompt(kit, handle.id, codes[0])
