"""A lifecycle whose send SendGrid takes while its answer is lost, on real parts: the real email
step and SendGrid client against a local server speaking SendGrid's HTTP, the time-skipping
Temporal server, and a stand-in for SendGrid's event at a moment the test chooses. Used by
test_unconfirmed_send.py and to record histories (tests/replay/record_unconfirmed.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from activities.emails import EmailActivities, EmailIdentity, _Claimed
from database.models import EmailSend
from messages.render import TemplateRenderer
from messages.senders import Message, Sender, SendGridSender
from tests.lifecycle_kit import LifecycleKit, confirm_as_webhook
from workflows.contract import LifecycleSummary, SendStep, StepResult
from workflows.rules import LifecycleRules, StepRule

WAIT = timedelta(seconds=600)
ONE_STEP = LifecycleRules(day_seconds=60, steps=[StepRule("day_1", 1)], attribution_window_days=1)


class NotedSender:
    """The real SendGrid sender, noting when (on the Temporal server's clock) each request went."""

    name = "sendgrid"

    def __init__(self, sender: Sender) -> None:
        self.sender = sender
        self.requests: list[datetime] = []

    def send(self, connection: Any, email_id: int, message: Message) -> str:
        self.requests.append(activity.info().current_attempt_scheduled_time)
        return self.sender.send(connection, email_id, message)


class AnswerLost(EmailActivities):
    """The real step. With `lose_commit`, the first write recording SendGrid's 202 fails (a
    failing disk, or a worker killed right after the 202): the row stays `sending`. Notes each
    answer, and plays SendGrid's `processed` event once the step has answered `unconfirmed`
    `confirm_after` times (never, with None)."""

    def __init__(
        self, sessions: sessionmaker[Session], templates_dir: Path, sender: NotedSender, *,
        lose_commit: bool, confirm_after: int | None, wait: timedelta = WAIT,
    ) -> None:
        super().__init__(
            sessions, TemplateRenderer(templates_dir), sender,
            EmailIdentity("hello@shop.example", "https://shop.example", "secret"), wait,
        )
        self.sessions = sessions
        self.noted = sender
        self.lose_commit = lose_commit
        self.confirm_after = confirm_after
        self.answers: list[tuple[datetime, str]] = []
        self.confirmed_at: datetime | None = None

    @activity.defn(name="send_step")
    def send_step(self, req: SendStep) -> StepResult:
        at = activity.info().current_attempt_scheduled_time
        try:
            result = super().send_step(req)
        except Exception:
            self.answers.append((at, "raised"))
            raise
        self.answers.append((at, result.status))
        unconfirmed = sum(1 for _, status in self.answers if status == "unconfirmed")
        if result.status == "unconfirmed" and unconfirmed == self.confirm_after:
            self.confirmed_at = at
            assert confirm_as_webhook(self.sessions, self._row_id(req.key), at)
        return result

    def _confirm_sent(self, claimed: _Claimed, message_id: str, now: datetime) -> None:
        if self.lose_commit:
            self.lose_commit = False
            raise RuntimeError("worker lost after SendGrid's 202")
        super()._confirm_sent(claimed, message_id, now)

    def _row_id(self, key: str) -> int:
        with self.sessions() as session:
            row_id = session.scalar(select(EmailSend.id).where(EmailSend.idempotency_key == key))
        assert row_id is not None
        return row_id


@dataclass
class Run:
    kit: LifecycleKit
    handle: WorkflowHandle[Any, LifecycleSummary]
    summary: LifecycleSummary
    emails: AnswerLost


async def run_lifecycle(
    env: WorkflowEnvironment, sessions: sessionmaker[Session], templates_dir: Path,
    sendgrid_url: str, order_id: str, *, lose_commit: bool = True,
    confirm_after: int | None = None, client_timeout: float = 10.0, shop_id: str | None = None,
) -> Run:
    """One lifecycle of one step whose send goes through `AnswerLost` on SendGrid."""
    sender = NotedSender(SendGridSender("SG.test", host=sendgrid_url, timeout=client_timeout))
    emails = AnswerLost(sessions, templates_dir, sender, lose_commit=lose_commit,
                        confirm_after=confirm_after)
    handle, summary, kit = await one_step(env, sessions, templates_dir, emails, order_id,
                                          shop_id=shop_id)
    return Run(kit, handle, summary, emails)


async def one_step(
    env: WorkflowEnvironment, sessions: sessionmaker[Session], templates_dir: Path,
    emails: EmailActivities, order_id: str, *, shop_id: str | None = None,
) -> tuple[WorkflowHandle[Any, LifecycleSummary], LifecycleSummary, LifecycleKit]:
    """One lifecycle of one step, its sends made by `emails` on the email task queue."""
    async with LifecycleKit.running(env, sessions, templates_dir, emails=emails) as kit:
        if shop_id:
            kit.shop_id = shop_id
        kit.service.rules = ONE_STEP
        handle = await kit.buy(await kit.placed_now(order_id))
        summary = await handle.result()
    return handle, summary, kit
