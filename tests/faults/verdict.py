"""Judging a fault run: what the customers got (at the provider), what the app recorded
(`email_send`, the ledger), and whether each story ended as it must.

The verdict says what the promise says (SPEC.md, "Properties that must hold"): every email and
every credit exactly once. A single duplicate fails the run, unless there is evidence for that
very key and copy that it is the known late-accept window: SendGrid accepted the copy, and the
app never recorded its 202 because the answer never reached it (held past the client's timeout,
dropped, written to a socket already gone), because the worker that asked was SIGKILLed before
it committed anything more, or because a cut interrupted the statement recording it (and the
audit trail shows no commit of that copy). The evidence is
read from per-request and per-write records (the provider's log, the database's audit trigger,
the worker's incarnations, the statements the connection cutter interrupted), never from a
fault merely being near in time. Nothing here needs a server: test_verdict.py feeds it by hand.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from typing import Protocol

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from database.models import Credit
from intake.store import workflow_id_for
from tests.faults.chaos import Cut, Written
from tests.faults.fake_sendgrid import (
    ANSWER_FAILED,
    DROPPED,
    HELD_PAST_TIMEOUT,
    Accepted,
    EventLog,
    ProviderLog,
)
from tests.faults.stories import Story
from tests.faults.worker_process import Incarnation

CRASH_POINTS = ("stored", "started", "routed")
STOP_SIGNALS = {"cancel": "cancel", "refund_early": "refund", "repeat_then_refund_it": "refund"}
INTAKE_APP = "faults-intake"
# A worker that commits anything this long after a 202 was alive to record that 202 too (its
# own concurrent transactions may still land in the instant before the SIGKILL).
SETTLE_S = 0.5


class Row(Protocol):
    """What the verdict reads of an `email_send` row (the model, or a hand-made one)."""

    idempotency_key: str
    workflow_id: str
    order_id: str
    step: str
    status: str
    skip_reason: str | None
    provider_message_id: str | None
    last_error: str | None


@dataclass(frozen=True)
class Excuse:
    """A copy the customer got that the app never recorded, put down to the known window."""

    key: str
    kind: str
    evidence: str
    duplicate: bool = True


@dataclass
class Verdict:
    problems: list[str] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    # Excused duplicate copies by kind of evidence.
    window: Counter[str] = field(default_factory=Counter)
    excuses: list[Excuse] = field(default_factory=list)
    # Every copy beyond the first that the provider accepted for a key, excused or not.
    duplicates: list[str] = field(default_factory=list)


@dataclass
class Trail:
    """What the run recorded besides the provider's log and the final rows."""

    written: list[Written] = field(default_factory=list)
    incarnations: list[Incarnation] = field(default_factory=list)
    cuts: list[Cut] = field(default_factory=list)
    # Stopped order → the steps whose send its lifecycle had scheduled before the stop's
    # signal reached it (its history).
    in_flight: dict[str, set[str]] = field(default_factory=dict)

    @cached_property
    def _by_key(self) -> dict[tuple[str, str], list[Written]]:
        index: dict[tuple[str, str], list[Written]] = {}
        for write in sorted(self.written, key=lambda w: w.at):
            index.setdefault((write.source, write.key), []).append(write)
        return index

    def writes(self, key: str, source: str = "email") -> list[Written]:
        return self._by_key.get((source, key), [])

    def sender_at(self, at: float) -> Incarnation | None:
        """The worker that made a request the provider read at `at`: the last one started
        before it (one runs at a time; a request read just after a kill is the killed one's)."""
        started = [i for i in self.incarnations if i.started_at <= at]
        return max(started, key=lambda i: i.started_at) if started else None

    def flying(self, row: Row) -> bool:
        return row.step in self.in_flight.get(row.order_id, set())


def _key(shop_id: str, order_id: str, step: str) -> str:
    return f"{workflow_id_for(shop_id, order_id)}:{step}"


def missed_202(key: str, copy: Accepted, trail: Trail, *, flying: bool) -> Excuse | None:
    """Evidence, for this key and this copy, that the app never recorded the copy's 202.

    `flying`: the step was in flight when its lifecycle stopped, so no retry may follow."""
    waited = copy.at - copy.requested_at
    if copy.answer == HELD_PAST_TIMEOUT:
        return Excuse(
            key,
            "late_202_after_client_timeout",
            f"{copy.message_id}: held {waited:.1f} s, past the client's timeout, "
            "then accepted; never answered",
        )
    if copy.answer == DROPPED:
        return Excuse(
            key, "202_dropped", f"{copy.message_id}: accepted, connection closed without the answer"
        )
    if copy.answer == ANSWER_FAILED:
        return Excuse(
            key,
            "worker_gone_before_202",
            f"{copy.message_id}: accepted, writing the 202 failed (socket gone)",
        )
    writes = trail.writes(key)
    if any(w.message_id == copy.message_id for w in writes):
        return None  # recorded sent, then sent again: not the window
    cut = next(
        (c for c in trail.cuts if c.at >= copy.at and copy.message_id in c.message_ids), None
    )
    if cut is not None:
        return Excuse(
            key,
            "commit_cut_after_202",
            f"{copy.message_id}: answered 202; {cut.at - copy.at:.2f} s later a cut terminated "
            "the connection whose statement recorded it, and it was never committed",
        )
    sender = trail.sender_at(copy.requested_at)
    if sender is None or sender.end != "killed":
        return None
    alive = [w for w in trail.written if w.app == sender.app and w.at > copy.at + SETTLE_S]
    after = [w for w in writes if w.at > copy.at]
    if alive or not (after or flying):
        return None
    then = f"{after[0].app} wrote {after[0].status} next" if after else "its lifecycle stopped"
    return Excuse(
        key,
        "worker_killed_after_202",
        f"{copy.message_id}: answered 202 to {sender.app}, SIGKILLed "
        f"{(sender.ended_at or 0) - copy.at:.2f} s later having committed nothing after it; {then}",
    )


def _what_shows(key: str, copy: Accepted, trail: Trail) -> str:
    """What the records say of a copy no evidence excuses (for the problem's text)."""
    sender = trail.sender_at(copy.requested_at)
    writes = [f"{w.status}@{w.at - copy.at:+.2f}s by {w.app}" for w in trail.writes(key)]
    who = f"{sender.app} (ended {sender.end})" if sender else "no worker"
    return f"answered 202 to {who}; writes of the key: {writes}"


def judge_duplicates(
    verdict: Verdict, rows: dict[str, Row], log: ProviderLog, trail: Trail
) -> None:
    """Each copy the provider accepted beyond one per key. Every copy the app did not record
    needs its own evidence of the window (`missed_202`); any other fails the run."""
    for key, copies in log.accepted.items():
        if len(copies) < 2:
            continue
        row = rows.get(key)
        recorded = row.provider_message_id if row is not None and row.status == "sent" else None
        verdict.duplicates += [f"{key} {copy.message_id}" for copy in copies[1:]]
        flying = row is not None and trail.flying(row)
        for copy in copies:
            if copy.message_id == recorded:
                continue
            if excuse := missed_202(key, copy, trail, flying=flying):
                verdict.window[excuse.kind] += 1
                verdict.excuses.append(excuse)
            else:
                verdict.problems.append(
                    f"duplicate {key}: copy {copy.message_id} with no evidence the app missed "
                    f"its 202: {_what_shows(key, copy, trail)}"
                )


def judge_event_feed(verdict: Verdict, events: EventLog) -> None:
    """SendGrid drops a batch the app refuses (4xx) and gives up on one it never takes: either
    loses the confirmation the late-accept window waits for."""
    verdict.problems += [f"the intake refused an Event Webhook batch: {r}" for r in events.refused]
    if events.undelivered:
        verdict.problems.append(
            f"{events.undelivered} SendGrid events were never taken by the intake"
        )


def judge_emails(
    verdict: Verdict,
    stories: list[Story],
    rows: dict[str, Row],
    log: ProviderLog,
    stage_of: dict[str, str],
    trail: Trail,
) -> None:
    """Every row decided, and the provider and `email_send` agreeing key by key."""
    stopped = {workflow_id_for(s.shop_id, s.stopped_order) for s in stories if s.stopped_order}
    for key, row in rows.items():
        copies = log.accepted.get(key, [])
        verdict.counts[f"recorded_{row.status}"] += 1
        closed = row.workflow_id in stopped and stage_of.get(row.workflow_id) in (
            "cancelled",
            "refunded",
        )
        if row.status == "skipped" and (row.skip_reason or "").startswith("lifecycle_"):
            # A person acted while the send waited on a retry: closed with the stop's reason.
            verdict.counts["closed_by_a_stop"] += 1
            if not closed:
                verdict.problems.append(f"{key} closed as {row.skip_reason} without a stop")
        elif row.status in ("failing", "sending", "deferred") and closed and trail.flying(row):
            # Its send was scheduled before the stop's signal reached the lifecycle, which then
            # ended without waiting for the attempt (or for a retry after it failed); an attempt
            # the frequency cap held back commits `deferred` after the summary closed the rest,
            # and nothing sends it (docs/testing.md).
            verdict.counts["in_flight_at_a_stop"] += 1
        elif row.status not in ("sent", "skipped"):
            why = "its send was not scheduled before the stop" if closed else row.last_error
            verdict.problems.append(f"{key} left {row.status}: {why}")
        if row.status == "sent" and not copies:
            verdict.problems.append(f"{key} recorded sent, never reached the provider")
        if row.status != "sent" and len(copies) == 1:
            # The customer got it and the app says otherwise: only the window explains that.
            if excuse := missed_202(key, copies[0], trail, flying=trail.flying(row)):
                verdict.counts[f"unrecorded_{excuse.kind}"] += 1
                verdict.excuses.append(
                    Excuse(key, excuse.kind, f"{excuse.evidence}; row {row.status}", False)
                )
            else:
                verdict.problems.append(
                    f"{key} reached the customer but is recorded {row.status}: "
                    f"{_what_shows(key, copies[0], trail)}"
                )
        if row.status == "sent" and row.provider_message_id not in {c.message_id for c in copies}:
            verdict.problems.append(f"{key} recorded a message id the provider never gave")
    verdict.problems += [
        f"{key} reached the provider with no email_send row"
        for key in set(log.accepted) - set(rows)
    ]


def stop_written(story: Story, trail: Trail) -> Written | None:
    """The audited write of the stop an unsubscribe or refund story made (the database, where
    each send checks it)."""
    if story.kind == "unsubscribe":
        writes = trail.writes(f"{story.shop_id}/{story.customer_id}", "unsubscribe")
    else:
        writes = trail.writes(f"{story.shop_id}/{story.stopped_order}", "refund")
    return writes[0] if writes else None


def on_its_way(story: Story, row: Row, log: ProviderLog, trail: Trail) -> tuple[str | None, str]:
    """(evidence, or None; what the records show) that a step sent on a stopped order was
    already on its way when the stop landed. A cancel is a signal only: its send must have been
    scheduled before the lifecycle received it. An unsubscribe or refund is checked in the
    database by the send's claiming transaction: that claim must have been written before the
    stop was (the claim's read came before its write, the stop's write before its commit)."""
    if story.kind == "cancel":
        if trail.flying(row):
            return "scheduled_before_cancel", "scheduled before the cancel signal"
        return None, "its send was scheduled after the cancel signal"
    stop = stop_written(story, trail)
    copy = next(
        (
            c
            for c in log.accepted.get(row.idempotency_key, [])
            if c.message_id == row.provider_message_id
        ),
        None,
    )
    if stop is None or copy is None:
        return None, f"no {'stop' if stop is None else 'copy'} recorded"
    claims = [
        w
        for w in trail.writes(row.idempotency_key)
        if w.status == "sending" and w.at <= copy.requested_at
    ]
    if not claims:
        return None, "no claim recorded before its request"
    claim = claims[-1]
    if claim.at < stop.at:
        return "claimed_before_stop", f"claimed {stop.at - claim.at:.3f} s before the stop"
    race = "read after the stop" if claim.xact_at > stop.at else "check-then-send race"
    return None, (
        f"claimed {claim.at - stop.at:.3f} s after the stop was written ({race}: nothing "
        "shows its check read the database before the stop committed)"
    )


def judge_stories(
    verdict: Verdict,
    stories: list[Story],
    rows: dict[str, Row],
    log: ProviderLog,
    stage_of: dict[str, str],
    ledger: list[Credit],
    trail: Trail,
) -> None:
    sent = {(r.order_id, r.step): r for r in rows.values() if r.status == "sent"}
    for story in stories:
        says = f"{story.kind} {story.customer_id}"
        if story.stuck:
            verdict.problems.append(f"{says}: {story.stuck}")
        for order_id, must in story.must_send().items():
            verdict.counts["must_send"] += len(must)
            got = {step for (o, step) in sent if o == order_id}
            extra = got - must - ({"referral_prompt"} if story.prompt_once else set())
            after_stop = []
            for step in sorted(extra):
                shown = "no stop on this order"
                if order_id == story.stopped_order:
                    evidence, shown = on_its_way(story, sent[(order_id, step)], log, trail)
                    if evidence:
                        verdict.counts["on_its_way_at_stop"] += 1
                        verdict.counts[f"on_its_way:{evidence}"] += 1
                        continue
                after_stop.append(f"{step} ({shown})")
            if must - got or after_stop:
                verdict.problems.append(
                    f"{says} {order_id}: missing {sorted(must - got)}, "
                    f"sent after the stop {after_stop}"
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


@dataclass
class FaultPlan:
    """The faults a run means to inject; each must be seen to fire."""

    intake: dict[str, str]  # order → crash point
    kills: int
    provider: dict[str, str]  # idempotency key → planned provider fault
    outage: bool = True


@dataclass
class FaultsSeen:
    intake: dict[str, str]  # order → crash point that fired
    kills: list[float]
    cuts: list[Cut]
    provider: dict[str, str]  # key → planned provider fault that fired
    outage_503s: int
    incarnations: list[Incarnation]


def judge_faults(verdict: Verdict, plan: FaultPlan, seen: FaultsSeen) -> None:
    """Every planned fault fired, each crash point on its own; a worker that died on its own
    did so for a reason the records show."""
    for point in CRASH_POINTS:
        planned = [o for o, p in plan.intake.items() if p == point]
        if not planned:
            verdict.problems.append(f"no intake crash planned at {point}")
        missed = [o for o in planned if seen.intake.get(o) != point]
        if missed:
            verdict.problems.append(
                f"intake crash at {point} fired {len(planned) - len(missed)} of "
                f"{len(planned)} times; never for {missed[:5]}"
            )
    if len(seen.kills) != plan.kills:
        verdict.problems.append(f"{len(seen.kills)} worker SIGKILLs of {plan.kills} planned")
    workers = {i.app for i in seen.incarnations}
    hit = Counter(
        "worker" if app in workers else app
        for c in seen.cuts
        for app, n in c.terminated.items()
        for _ in range(n)
    )
    for whose in ("worker", INTAKE_APP):
        if not hit[whose]:
            verdict.problems.append(
                f"{len(seen.cuts)} connection cuts terminated no {whose} connection"
            )
    for key, fault in plan.provider.items():
        if seen.provider.get(key) != fault:
            verdict.problems.append(f"planned provider fault {fault} never fired for {key}")
    if plan.outage and not seen.outage_503s:
        verdict.problems.append("the provider's outage answered no request")
    for incarnation in seen.incarnations:
        if incarnation.end != "crashed":
            continue
        cut = any(
            c.terminated.get(incarnation.app, 0) > 0
            and incarnation.started_at <= c.at <= (incarnation.ended_at or c.at)
            for c in seen.cuts
        )
        if cut and not incarnation.polling:
            verdict.counts["worker_died_at_start_by_a_cut"] += 1
        else:
            verdict.problems.append(
                f"{incarnation.app} died on its own "
                f"({'after' if incarnation.polling else 'before'} polling, "
                f"{'a' if cut else 'no'} cut of its connections)"
            )


async def sends_in_flight_at_stop(client: Client, stories: list[Story]) -> dict[str, set[str]]:
    """Stopped order → the steps whose send its lifecycle had scheduled before it received the
    stop's signal (cancel, refund): nothing stops an attempt already running (or one the server
    hands to a restarted worker before the workflow task that acts on the signal). A lifecycle
    that never received the signal (it had ended) had nothing in flight at a stop."""
    flying: dict[str, set[str]] = {}
    for story in stories:
        signal = STOP_SIGNALS.get(story.kind)
        if signal is None or story.stopped_order is None:
            continue
        history = await client.get_workflow_handle(
            workflow_id_for(story.shop_id, story.stopped_order)
        ).fetch_history()
        scheduled: set[str] = set()
        for event in history.events:
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED and (
                event.workflow_execution_signaled_event_attributes.signal_name == signal
            ):
                flying[story.stopped_order] = scheduled
                break
            if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                attributes = event.activity_task_scheduled_event_attributes
                if attributes.activity_type.name == "send_step":
                    scheduled.add(json.loads(attributes.input.payloads[0].data)["step"])
    return flying
