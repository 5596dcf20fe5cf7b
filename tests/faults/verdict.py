"""Judging a fault run: what the customers got (at the provider), what the app recorded
(`email_send`, the ledger), and whether each story ended as it must."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from database.models import Credit, EmailSend
from intake.store import workflow_id_for
from tests.faults.fake_sendgrid import Accepted, ProviderLog
from tests.faults.stories import Story

# A duplicate is put down to the known window only if its fault struck this soon after the
# provider accepted the orphaned copy (the window itself lasts milliseconds).
WINDOW_S = 2.0
# Between the activity's unsubscribe/refund check and its request to the provider.
STOP_SLACK_S = 1.0


@dataclass
class Verdict:
    problems: list[str] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    window: Counter[str] = field(default_factory=Counter)


def _key(shop_id: str, order_id: str, step: str) -> str:
    return f"{workflow_id_for(shop_id, order_id)}:{step}"


def on_its_way(
    story: Story, log: ProviderLog, order_id: str, step: str, in_flight: set[str]
) -> bool:
    """Whether a step's email was on its way when the stop landed: requested before it (an
    unsubscribe or refund is checked in the database at the moment of sending), or, for a
    cancel (a signal only), its send already scheduled when the lifecycle got the signal."""
    assert story.stopped_at is not None
    copies = log.accepted.get(_key(story.shop_id, order_id, step), [])
    requested = any(c.requested_at <= story.stopped_at + STOP_SLACK_S for c in copies)
    return requested or step in in_flight


def judge_stories(
    verdict: Verdict,
    stories: list[Story],
    rows: dict[str, EmailSend],
    log: ProviderLog,
    stage_of: dict[str, str],
    ledger: list[Credit],
    in_flight: dict[str, set[str]],
) -> None:
    sent = {(r.order_id, r.step) for r in rows.values() if r.status == "sent"}
    for story in stories:
        says = f"{story.kind} {story.customer_id}"
        if story.stuck:
            verdict.problems.append(f"{says}: {story.stuck}")
        for order_id, must in story.must_send().items():
            verdict.counts["must_send"] += len(must)
            got = {step for (o, step) in sent if o == order_id}
            extra = got - must - ({"referral_prompt"} if story.prompt_once else set())
            if order_id == story.stopped_order:
                flying = in_flight.get(order_id, set())
                raced = {s for s in extra if on_its_way(story, log, order_id, s, flying)}
                verdict.counts["on_its_way_at_stop"] += len(raced)
                extra -= raced
            if must - got or extra:
                verdict.problems.append(
                    f"{says} {order_id}: missing {sorted(must - got)}, "
                    f"sent after the stop {sorted(extra)}"
                )
        if story.prompt_once:
            prompts = sum((o, "referral_prompt") in sent for o in (story.first, story.repeat))
            verdict.counts["must_send"] += 1
            if prompts != 1:
                verdict.problems.append(f"{says}: {prompts} referral prompts, expected 1")
        for order_id, stages in story.expected_stages().items():
            actual = stage_of.get(workflow_id_for(story.shop_id, order_id), "never started")
            if actual not in stages:
                verdict.problems.append(f"{says} {order_id}: ended {actual}, expected {stages}")
        timing = ""
        if story.repeated_at is not None:
            timing = f" (repeat placed {story.repeated_at - story.began_at:.0f} s after the first)"
        credits = [c for c in ledger if c.customer_id == story.customer_id]
        wrong = story.check_credits(credits)
        verdict.problems += [f"{says}: {p}{timing}" for p in wrong]


def judge_emails(
    verdict: Verdict,
    stories: list[Story],
    rows: dict[str, EmailSend],
    log: ProviderLog,
    stage_of: dict[str, str],
    kills: list[float],
    cuts: list[float],
) -> None:
    """Every row decided, and the provider and `email_send` agreeing key by key."""
    stopped = {workflow_id_for(s.shop_id, s.stopped_order) for s in stories if s.stopped_order}
    for key, row in rows.items():
        copies = log.accepted.get(key, [])
        verdict.counts[f"recorded_{row.status}"] += 1
        if row.status == "skipped" and (row.skip_reason or "").startswith("lifecycle_"):
            # A person acted while the send waited on a retry: closed with the stop's reason.
            verdict.counts["closed_by_a_stop"] += 1
            if row.workflow_id not in stopped or stage_of.get(row.workflow_id) not in (
                "cancelled",
                "refunded",
            ):
                verdict.problems.append(f"{key} closed as {row.skip_reason} without a stop")
        elif (
            row.status in ("failing", "sending")
            and row.workflow_id in stopped
            and stage_of.get(row.workflow_id) in ("cancelled", "refunded")
        ):
            # Its attempt was on its way to SendGrid when the stop landed, and failed (or its
            # worker died) after the lifecycle had closed its other sends.
            verdict.counts["in_flight_at_a_stop"] += 1
        elif row.status not in ("sent", "skipped"):
            verdict.problems.append(f"{key} left {row.status}: {row.last_error}")
        if row.status == "sent" and not copies:
            verdict.problems.append(f"{key} recorded sent, never reached the provider")
        answered = [c for c in copies if c.answered]
        if row.status != "sent" and copies and not answered:
            # SendGrid took it after the client gave up; a stop or a skip then ended the step.
            verdict.window["late_202_after_client_timeout"] += len(copies)
        elif (
            row.status == "sending"
            and answered
            and (cause := _fault_after(answered[-1], kills, cuts))
        ):
            # SendGrid said 202 and the worker never recorded it; a stop then closed the
            # lifecycle before a retry could. The row says so: handed over, not confirmed.
            verdict.window[cause] += 1
        elif row.status != "sent" and copies:
            verdict.problems.append(f"{key} reached the customer but is recorded {row.status}")
        if row.status == "sent" and row.provider_message_id not in {c.message_id for c in copies}:
            verdict.problems.append(f"{key} recorded a message id the provider never gave")
    verdict.problems += [
        f"{key} reached the provider with no email_send row"
        for key in set(log.accepted) - set(rows)
    ]


def judge_duplicates(
    verdict: Verdict,
    rows: dict[str, EmailSend],
    log: ProviderLog,
    kills: list[float],
    cuts: list[float],
) -> None:
    """Each extra copy the provider accepted, by cause. The known window (activities/emails.py):
    SendGrid said 202 but the worker never committed `sent`: it was killed, its database
    connection was cut, or the 202 came after the client had given up."""
    for key, accepted in log.accepted.items():
        recorded = rows[key].provider_message_id if key in rows else None
        for copy in accepted if len(accepted) > 1 else []:
            if copy.message_id == recorded:
                continue
            if not copy.answered:
                verdict.window["late_202_after_client_timeout"] += 1
            elif cause := _fault_after(copy, kills, cuts):
                verdict.window[cause] += 1
            else:
                verdict.problems.append(
                    f"duplicate {key}: copy {copy.message_id}, no fault near it"
                )


def _fault_after(copy: Accepted, kills: list[float], cuts: list[float]) -> str | None:
    """The fault that kept the worker from recording this accepted copy, if one struck in time."""
    if any(copy.at <= t <= copy.at + WINDOW_S for t in kills):
        return "worker_killed_after_202"
    if any(copy.at - 0.1 <= t <= copy.at + WINDOW_S for t in cuts):
        return "connection_cut_after_202"
    return None


async def sends_in_flight_at_cancel(client: Client, stories: list[Story]) -> dict[str, set[str]]:
    """Order → the steps whose send the cancelled lifecycle had scheduled before it received
    the cancel signal: a cancel is a signal only, and nothing stops an attempt already running
    (or one the server hands to a restarted worker before the workflow task that cancels it)."""
    flying: dict[str, set[str]] = {}
    for story in stories:
        if story.kind != "cancel":
            continue
        history = await client.get_workflow_handle(
            workflow_id_for(story.shop_id, story.first)
        ).fetch_history()
        scheduled: set[str] = set()
        for event in history.events:
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED and (
                event.workflow_execution_signaled_event_attributes.signal_name == "cancel"
            ):
                break
            if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                attributes = event.activity_task_scheduled_event_attributes
                if attributes.activity_type.name == "send_step":
                    scheduled.add(json.loads(attributes.input.payloads[0].data)["step"])
        flying[story.first] = scheduled
    return flying
