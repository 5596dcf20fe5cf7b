"""No email sent twice (issue 18 §3): a send SendGrid may have taken (its 202 lost to a dead
worker, a failed commit or a client timeout) waits for SendGrid's event instead of going out
again, and is resent once, only when no event came within the wait. The outbox never waits."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.testing import WorkflowEnvironment

from activities.emails import EmailActivities, EmailIdentity
from database.session import lock_for_decision
from messages.render import TemplateRenderer
from messages.senders import Message, OutboxSender, SendGridSender
from settings import Settings
from tests.messages.test_senders import FakeSendGrid, Reply, fake_sendgrid  # noqa: F401
from tests.workflows.unconfirmed_sends import (
    WAIT,
    NotedSender,
    one_step,
    run_lifecycle,
)
from worker import build_workers
from workflows.contract import SendStep, StepResult
from workflows.unconfirmed import next_check

T0 = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)


def test_checks_grow_from_10_s_to_2_minutes_and_never_pass_the_resend() -> None:
    deadline = T0 + WAIT
    assert [next_check(T0, deadline, n) for n in range(6)] == [
        timedelta(seconds=s) for s in (10, 20, 40, 80, 120, 120)
    ]
    assert next_check(deadline - timedelta(seconds=7), deadline, 5) == timedelta(seconds=7)
    assert next_check(deadline + timedelta(seconds=1), deadline, 0) == timedelta(0)
    assert next_check(T0, deadline, 10_000) == timedelta(minutes=2)


@pytest.mark.parametrize("lost", ["commit_of_202_fails", "client_timed_out"])
async def test_a_send_whose_answer_was_lost_is_confirmed_by_its_event_and_sent_once(
    env: WorkflowEnvironment, sessions: sessionmaker[Session], templates_dir: Path,
    fake_sendgrid: FakeSendGrid, lost: str,  # noqa: F811
) -> None:
    if lost == "client_timed_out":  # SendGrid takes it, and answers after the client gave up
        fake_sendgrid.reply = Reply(202, delay_s=1.0)
    run = await run_lifecycle(
        env, sessions, templates_dir, fake_sendgrid.url, f"confirmed-{lost}",
        lose_commit=lost == "commit_of_202_fails", confirm_after=2,
        client_timeout=0.3 if lost == "client_timed_out" else 10.0,
    )

    assert len(fake_sendgrid.received) == 1
    statuses = [status for _, status in run.emails.answers]
    assert statuses == ["raised", "unconfirmed", "unconfirmed", "sent"]
    [row] = run.kit.emails(run.handle.id)
    assert (row.status, row.provider, row.attempts) == ("sent", "sendgrid", 1)
    assert row.sent_at == run.emails.confirmed_at  # the event's time
    assert run.summary.emails_sent == 1


async def test_an_unconfirmed_send_goes_out_again_once_after_the_wait_never_before(
    env: WorkflowEnvironment, sessions: sessionmaker[Session], templates_dir: Path,
    fake_sendgrid: FakeSendGrid,  # noqa: F811
) -> None:
    run = await run_lifecycle(
        env, sessions, templates_dir, fake_sendgrid.url, "never-confirmed", lose_commit=True
    )

    assert len(fake_sendgrid.received) == 2
    first, resent = run.emails.noted.requests
    assert WAIT <= resent - first < WAIT + timedelta(seconds=30)
    checks = [at for at, status in run.emails.answers if status == "unconfirmed"]
    assert len(checks) >= 5 and all(at < first + WAIT for at in checks)
    gaps = [b - a for a, b in zip(checks, checks[1:], strict=False)]
    assert gaps[0] < gaps[1] < gaps[2]  # growing intervals, not polling
    assert [status for _, status in run.emails.answers][-1] == "sent"
    [row] = run.kit.emails(run.handle.id)
    assert (row.status, row.attempts) == ("sent", 2)
    assert run.summary.emails_sent == 1


class RefusedOnce(NotedSender):
    """SendGrid unreachable on the first request (connection refused: it never got it)."""

    def __init__(self, url: str) -> None:
        super().__init__(SendGridSender("SG.test", host=url))
        self.refusing = SendGridSender("SG.test", host="http://127.0.0.1:9", timeout=2)

    def send(self, connection: object, email_id: int, message: Message) -> str:
        if not self.requests:
            self.requests.append(activity.info().current_attempt_scheduled_time)
            return self.refusing.send(None, email_id, message)
        return super().send(connection, email_id, message)


async def test_a_request_that_never_reached_sendgrid_is_retried_at_once(
    env: WorkflowEnvironment, sessions: sessionmaker[Session], templates_dir: Path,
    fake_sendgrid: FakeSendGrid,  # noqa: F811
) -> None:
    sender = RefusedOnce(fake_sendgrid.url)
    emails = EmailActivities(
        sessions, TemplateRenderer(templates_dir), sender,
        EmailIdentity("hello@shop.example", "https://shop.example", "secret"), WAIT,
    )
    handle, summary, kit = await one_step(env, sessions, templates_dir, emails, "refused-1")

    first, retried = sender.requests
    assert retried - first < timedelta(minutes=1)  # the retry policy's backoff, no wait
    assert len(fake_sendgrid.received) == 1
    [row] = kit.emails(handle.id)
    assert (row.status, row.attempts) == ("sent", 2)
    assert summary.emails_sent == 1


class LeftSending(EmailActivities):
    """The first attempt claims the step (the row committed `sending`, as a SendGrid worker
    leaves it) and dies; the retry runs on the outbox."""

    answers: list[tuple[datetime, str]]

    @activity.defn(name="send_step")
    def send_step(self, req: SendStep) -> StepResult:
        at = activity.info().current_attempt_scheduled_time
        if activity.info().attempt == 1:
            with self.engine.begin() as connection:
                lock_for_decision(connection)
                self._claim(connection, req, datetime.now(UTC))
            self.answers.append((at, "raised"))
            raise RuntimeError("worker lost after the claim")
        result = super().send_step(req)
        self.answers.append((at, result.status))
        return result


async def test_the_outbox_sends_a_step_left_sending_at_once(
    env: WorkflowEnvironment, sessions: sessionmaker[Session], templates_dir: Path
) -> None:
    emails = LeftSending(
        sessions, TemplateRenderer(templates_dir), OutboxSender(),
        EmailIdentity("hello@shop.example", "https://shop.example", "secret"), WAIT,
    )
    emails.answers = []
    handle, summary, kit = await one_step(env, sessions, templates_dir, emails, "outbox-1")

    (first, _), (retried, status) = emails.answers
    assert status == "sent" and retried - first < timedelta(minutes=1)
    assert len(kit.outbox(handle.id)) == 1
    assert summary.emails_sent == 1



async def test_the_wait_is_ten_minutes_unless_set_and_the_worker_uses_it(
    env: WorkflowEnvironment, monkeypatch: pytest.MonkeyPatch, sessions: sessionmaker[Session],
) -> None:
    """LOYALLOOP_UNCERTAIN_SEND_WAIT: 600 s by default; the worker's email step waits that long."""
    assert Settings(_env_file=None).uncertain_send_wait == 600
    monkeypatch.setenv("LOYALLOOP_UNCERTAIN_SEND_WAIT", "42")
    settings = Settings(_env_file=None, sendgrid_api_key=None)
    with ThreadPoolExecutor(max_workers=1) as executor:
        workers = build_workers(env.client, sessions, settings, executor)
    # The Worker keeps its activities in its config: the email step's bound method.
    [step] = [a for w in workers for a in w._config["activities"]
              if getattr(a, "__name__", "") == "send_step"]
    assert step.__self__.unconfirmed_wait == timedelta(seconds=42)
