"""A send whose activity dies after recording the step `sent` is retried by Temporal and must
not go out again: the retry finds its own row sent (the "row already sent" guard of
`EmailActivities._claim`) and returns it."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.testing import WorkflowEnvironment

from activities.emails import EmailActivities, EmailIdentity
from messages.render import TemplateRenderer
from messages.senders import OutboxSender, Sender, SendGridSender
from tests.lifecycle_kit import LifecycleKit
from tests.messages.test_senders import FakeSendGrid, fake_sendgrid  # noqa: F401
from workflows.contract import SendStep, StepResult
from workflows.rules import LifecycleRules, StepRule


class CrashAfterSent(EmailActivities):
    """The real send, then a worker lost on the first attempt of each step, after the row was
    committed `sent` and before Temporal heard the result."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.attempts: list[tuple[str, int, str]] = []

    @activity.defn(name="send_step")
    def send_step(self, req: SendStep) -> StepResult:
        result = super().send_step(req)
        attempt = activity.info().attempt
        self.attempts.append((req.step, attempt, result.status))
        if attempt == 1:
            raise RuntimeError("worker lost after the send was committed")
        return result


@pytest.mark.parametrize("provider", ["sendgrid", "outbox"])
async def test_a_send_retried_after_its_commit_goes_out_once(
    env: WorkflowEnvironment,
    sessions: sessionmaker[Session],
    templates_dir: Path,
    fake_sendgrid: FakeSendGrid,  # noqa: F811
    provider: str,
) -> None:
    sender: Sender = (
        SendGridSender("SG.test", host=fake_sendgrid.url)
        if provider == "sendgrid"
        else OutboxSender()
    )
    emails = CrashAfterSent(
        sessions,
        TemplateRenderer(templates_dir),
        sender,
        EmailIdentity("hello@shop.example", "https://shop.example", "secret"),
    )
    async with LifecycleKit.running(env, sessions, templates_dir, emails=emails) as kit:
        kit.service.rules = LifecycleRules(
            day_seconds=60, steps=[StepRule("day_1", 1)], attribution_window_days=1
        )
        handle = await kit.buy(await kit.placed_now("after-commit-1"))
        summary = await handle.result()

    # The first attempt sent and committed, then died; the retry found the row sent.
    assert emails.attempts == [("day_1", 1, "sent"), ("day_1", 2, "sent")]
    assert [(e.step, e.status, e.attempts) for e in kit.emails(handle.id)] == [("day_1", "sent", 1)]
    if provider == "sendgrid":
        assert len(fake_sendgrid.received) == 1
    else:
        assert len(kit.outbox(handle.id)) == 1
    assert summary.emails_sent == 1
