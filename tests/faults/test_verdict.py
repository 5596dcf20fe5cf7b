"""The fault verdict's rules, one by one, on hand-made records: no server, no database.

Each rule says what the promise says (every email and credit exactly once, docs/testing.md "The
fault suite's verdict"): a duplicate is excused only by evidence for its own key and copy, a fault
nearby is no evidence, a stopped lifecycle's unfinished row and a send after a stop each need
evidence of their own, and every planned fault must have fired.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from types import SimpleNamespace

from intake.store import workflow_id_for
from tests.faults.chaos import Cut, Written
from tests.faults.fake_sendgrid import (
    ANSWERED,
    DROPPED,
    HELD_PAST_TIMEOUT,
    Accepted,
    EventLog,
    ProviderLog,
)
from tests.faults.stories import Story
from tests.faults.verdict import (
    FaultPlan,
    FaultsSeen,
    Trail,
    Verdict,
    judge_duplicates,
    judge_emails,
    judge_event_feed,
    judge_faults,
    judge_stories,
)
from tests.faults.worker_process import Incarnation

SHOP = "acme"
T0 = 1_000_000.0
WORKER_1 = Incarnation(1, "faults-worker-1", T0 - 60, T0 + 5, "killed", True)
WORKER_2 = Incarnation(2, "faults-worker-2", T0 + 5.5, T0 + 120, "stopped", True)


@dataclass
class FakeRow:
    idempotency_key: str
    workflow_id: str
    order_id: str
    step: str
    status: str
    skip_reason: str | None = None
    provider_message_id: str | None = None
    last_error: str | None = None


def row(order_id: str, step: str, status: str, message_id: str | None = None) -> FakeRow:
    workflow_id = workflow_id_for(SHOP, order_id)
    return FakeRow(f"{workflow_id}:{step}", workflow_id, order_id, step, status, None, message_id)


def provider(copies: dict[str, list[Accepted]]) -> ProviderLog:
    log = ProviderLog()
    log.accepted = defaultdict(list, copies)
    return log


def claim(key: str, at: float, app: str = WORKER_1.app) -> Written:
    return Written("email", key, "sending", None, app, at - 0.01, at)


def sent(key: str, message_id: str, at: float, app: str = WORKER_2.app) -> Written:
    return Written("email", key, "sent", message_id, app, at - 0.01, at)


def sent_twice(first: Accepted, written: list[Written], cuts: list[Cut] = ()) -> Verdict:
    """A day_1 key the provider accepted twice (`first`, then m2 recorded sent by worker 2)."""
    done = row("1-a", "day_1", "sent", "m2")
    second = Accepted("m2", T0 + 10.0, T0 + 10.01)
    verdict = Verdict()
    trail = Trail(
        [
            *written,
            claim(done.idempotency_key, T0 + 9.9, WORKER_2.app),
            sent(done.idempotency_key, "m2", T0 + 10.02),
        ],
        [WORKER_1, WORKER_2],
        list(cuts),
    )
    judge_duplicates(
        verdict,
        {done.idempotency_key: done},
        provider({done.idempotency_key: [first, second]}),
        trail,
    )
    return verdict


KEY = row("1-a", "day_1", "sent").idempotency_key


def other(at: float, app: str = WORKER_1.app) -> Written:
    """A write of another key: its writer was alive and its database reachable."""
    return claim(workflow_id_for(SHOP, "9-a") + ":day_1", at, app)


def test_a_duplicate_with_a_cut_a_second_away_and_no_evidence_for_its_key_fails():
    # The first copy was answered to worker 1, which went on working (its writes of other keys);
    # a cut a second later terminated some of its connections, but none recording this copy.
    first = Accepted("m1", T0, T0 + 0.01, ANSWERED)
    cut = Cut(T0 + 1.0, {WORKER_1.app: 3, "faults-intake": 2}, frozenset({"m9"}))
    verdict = sent_twice(first, [claim(KEY, T0 - 0.1), other(T0 + 2.0)], cuts=[cut])
    assert [p for p in verdict.problems if p.startswith(f"duplicate {KEY}: copy m1")]
    assert not verdict.window
    assert verdict.duplicates == [f"{KEY} m2"]


def test_a_killed_worker_that_went_on_committing_after_the_202_is_no_excuse():
    # Worker 1 was killed at T0 + 5, 3 s after this copy's 202, and committed other rows in
    # between: it was alive to record the 202 and did not. A kill of its sender is not enough.
    first = Accepted("m1", T0 + 2.0, T0 + 2.01, ANSWERED)
    verdict = sent_twice(first, [claim(KEY, T0 + 1.9), other(T0 + 3.5), other(T0 + 4.5)])
    assert any(p.startswith(f"duplicate {KEY}") for p in verdict.problems)


def test_a_duplicate_whose_first_copy_was_recorded_sent_fails_even_with_a_kill_just_after():
    # Recorded sent (the audit has the commit), then sent again: a broken "already sent" guard,
    # never the late-accept window, however close the kill.
    first = Accepted("m1", T0 + 4.0, T0 + 4.01, ANSWERED)
    verdict = sent_twice(first, [claim(KEY, T0 + 3.9), sent(KEY, "m1", T0 + 4.02, WORKER_1.app)])
    assert any(p.startswith(f"duplicate {KEY}") for p in verdict.problems)


def test_a_copy_held_past_the_client_timeout_is_the_window_counted_and_shown():
    first = Accepted("m1", T0, T0 + 11.5, HELD_PAST_TIMEOUT)
    verdict = sent_twice(first, [claim(KEY, T0 - 0.1)])
    assert not verdict.problems
    assert verdict.window == {"late_202_after_client_timeout": 1}
    assert verdict.duplicates == [f"{KEY} m2"]
    assert [e.key for e in verdict.excuses] == [KEY]


def test_a_dropped_202_is_the_window_counted_and_shown():
    verdict = sent_twice(Accepted("m1", T0, T0 + 0.01, DROPPED), [claim(KEY, T0 - 0.1)])
    assert not verdict.problems
    assert verdict.window == {"202_dropped": 1}
    assert verdict.duplicates


def test_a_worker_killed_after_the_202_before_any_commit_of_the_key_is_the_window():
    # Worker 1 asked, got its 202 and was SIGKILLed before writing the key again; worker 2 then
    # claimed it and sent the second copy.
    first = Accepted("m1", T0 + 4.9, T0 + 4.91, ANSWERED)
    verdict = sent_twice(first, [claim(KEY, T0 + 4.8)])
    assert not verdict.problems
    assert verdict.window == {"worker_killed_after_202": 1}


def test_a_killed_worker_that_had_claimed_the_key_again_itself_is_no_excuse():
    # The kill came, but the copy's sender went on to claim the key again before it: the kill
    # did not keep it from recording the 202.
    first = Accepted("m1", T0 + 1.0, T0 + 1.01, ANSWERED)
    verdict = sent_twice(first, [claim(KEY, T0 + 0.9), claim(KEY, T0 + 3.0)])
    assert any(p.startswith(f"duplicate {KEY}") for p in verdict.problems)


def test_a_commit_cut_after_the_202_needs_the_cut_statement_to_name_that_copy():
    first = Accepted("m1", T0 + 1.0, T0 + 1.01, ANSWERED)
    written = [claim(KEY, T0 + 0.9), other(T0 + 2.0), claim(KEY, T0 + 4.5)]  # no commit of m1
    own = sent_twice(first, written, cuts=[Cut(T0 + 1.02, {WORKER_1.app: 4}, frozenset({"m1"}))])
    assert not own.problems
    assert own.window == {"commit_cut_after_202": 1}
    cut_elsewhere = Cut(T0 + 1.02, {WORKER_1.app: 4}, frozenset({"m7"}))
    others = sent_twice(first, written, cuts=[cut_elsewhere])
    assert any(p.startswith(f"duplicate {KEY}") for p in others.problems)


def test_a_copy_the_app_recorded_unsent_needs_evidence_too():
    skipped = row("1-a", "day_7", "skipped")
    copy = Accepted("m1", T0 + 1.0, T0 + 1.01, ANSWERED)
    verdict = Verdict()
    judge_emails(
        verdict,
        [],
        {skipped.idempotency_key: skipped},
        provider({skipped.idempotency_key: [copy]}),
        {},
        Trail([claim(skipped.idempotency_key, T0 + 0.9)], [WORKER_1, WORKER_2]),
    )
    assert any("reached the customer but is recorded skipped" in p for p in verdict.problems)


def stopped_lifecycle(kind: str, status: str, in_flight: set[str]) -> Verdict:
    story = Story(4, kind, SHOP, "MAYA")
    left = row(story.first, "day_7", status)
    verdict = Verdict()
    judge_emails(
        verdict,
        [story],
        {left.idempotency_key: left},
        provider({}),
        {left.workflow_id: "cancelled" if kind == "cancel" else "refunded"},
        Trail([], [WORKER_1], [], {story.first: in_flight}),
    )
    return verdict


def test_a_failing_row_of_a_stopped_lifecycle_is_excused_only_if_in_flight_at_the_stop():
    assert any(
        "left failing" in p for p in stopped_lifecycle("refund_early", "failing", set()).problems
    )
    assert any(
        "left sending" in p for p in stopped_lifecycle("cancel", "sending", {"day_1"}).problems
    )
    flying = stopped_lifecycle("cancel", "failing", {"day_1", "day_7"})
    assert not flying.problems
    assert flying.counts["in_flight_at_a_stop"] == 1


def test_a_deferred_row_of_a_stopped_lifecycle_is_excused_only_if_in_flight_at_the_stop():
    """An attempt scheduled before a cancel that the frequency cap held back commits `deferred`
    after the lifecycle's summary; one whose send was not scheduled before the stop is a
    problem."""
    assert any("left deferred" in p
               for p in stopped_lifecycle("cancel", "deferred", {"day_1"}).problems)
    flying = stopped_lifecycle("cancel", "deferred", {"day_1", "day_7"})
    assert not flying.problems
    assert flying.counts["in_flight_at_a_stop"] == 1


def referral_credit(story: Story) -> SimpleNamespace:
    """The creator's approved referral credit for the story's first purchase."""
    return SimpleNamespace(
        customer_id=story.customer_id,
        milestone="referral",
        status="approved",
        order_id=story.first,
        amount=500,
    )


def unsubscribed_story(claimed_at: float, requested_at: float) -> Verdict:
    """An unsubscribe written at T0 + 10 (and answered at T0 + 10.05); day_7 claimed and sent."""
    story = Story(3, "unsubscribe", SHOP, "MAYA")
    story.stopped_at = T0 + 10.05
    day_1 = row(story.first, "day_1", "sent", "d1")
    day_7 = row(story.first, "day_7", "sent", "d7")
    rows = {r.idempotency_key: r for r in (day_1, day_7)}
    log = provider(
        {
            day_1.idempotency_key: [Accepted("d1", T0 + 2, T0 + 2.01)],
            day_7.idempotency_key: [Accepted("d7", requested_at, requested_at + 0.01)],
        }
    )
    written = [
        claim(day_1.idempotency_key, T0 + 1.9),
        claim(day_7.idempotency_key, claimed_at),
        Written(
            "unsubscribe",
            f"{SHOP}/{story.customer_id}",
            "unsubscribed",
            None,
            "faults-intake",
            T0 + 9.99,
            T0 + 10.0,
        ),
    ]
    verdict = Verdict()
    stage_of = {day_1.workflow_id: "completed"}
    ledger = [referral_credit(story)]
    judge_stories(verdict, [story], rows, log, stage_of, ledger, Trail(written, [WORKER_1]))
    return verdict


def test_a_send_claimed_after_the_stops_commit_is_a_violation_however_soon():
    # Claimed half a second after the unsubscribe was written, requested 0.6 s after it was
    # answered: within the old one-second slack, and still a send the check should have stopped.
    verdict = unsubscribed_story(claimed_at=T0 + 10.5, requested_at=T0 + 10.6)
    assert any("sent after the stop ['day_7" in p for p in verdict.problems)


def test_a_send_whose_check_came_before_the_stop_is_on_its_way():
    # Claimed (its check read the database) before the unsubscribe was written, requested after.
    verdict = unsubscribed_story(claimed_at=T0 + 9.8, requested_at=T0 + 12.0)
    assert not verdict.problems
    assert verdict.counts["on_its_way:claimed_before_stop"] == 1


def test_a_credit_recorded_twice_fails():
    story = Story(0, "plain", SHOP, "MAYA")
    credit = referral_credit(story)
    verdict = Verdict()
    stage_of = {workflow_id_for(SHOP, story.first): "completed"}
    judge_stories(verdict, [story], {}, provider({}), stage_of, [credit, credit], Trail())
    assert any("referral recorded 2 times" in p for p in verdict.problems)


PLAN = FaultPlan(
    intake={"1-a": "stored", "2-a": "started", "3-b": "routed"},
    kills=2,
    provider={"k:day_7": "drop_202"},
)


def seen(**changes: object) -> FaultsSeen:
    everything = FaultsSeen(
        intake=dict(PLAN.intake),
        kills=[T0, T0 + 5],
        cuts=[Cut(T0 + 1, {WORKER_1.app: 3, "faults-intake": 2})],
        provider={"k:day_7": "drop_202"},
        outage_503s=4,
        incarnations=[WORKER_1, WORKER_2],
    )
    for name, value in changes.items():
        setattr(everything, name, value)
    return everything


def judged_faults(plan: FaultPlan = PLAN, **changes: object) -> list[str]:
    verdict = Verdict()
    judge_faults(verdict, plan, seen(**changes))
    return verdict.problems


def test_every_planned_fault_that_fired_passes():
    assert judged_faults() == []


def test_an_intake_crash_point_that_never_fires_fails_though_others_did():
    problems = judged_faults(intake={"1-a": "stored", "3-b": "routed"})
    assert problems and all("started" in p for p in problems)


def test_a_crash_point_never_planned_fails():
    plan = FaultPlan({"1-a": "stored", "3-b": "routed"}, 2, {})
    assert any("no intake crash planned at started" in p for p in judged_faults(plan))


def test_missing_kills_cuts_dropped_202s_or_outage_fail():
    assert judged_faults(kills=[T0])
    assert judged_faults(cuts=[])
    assert judged_faults(cuts=[Cut(T0 + 1, {"faults-intake": 2})])
    assert judged_faults(provider={})
    assert judged_faults(outage_503s=0)


def test_a_worker_that_died_on_its_own_needs_a_reason():
    crashed = Incarnation(2, "faults-worker-2", T0 + 5.5, T0 + 6, "crashed", polling=True)
    assert any("died on its own" in p for p in judged_faults(incarnations=[WORKER_1, crashed]))
    at_start = Incarnation(2, "faults-worker-2", T0 + 5.5, T0 + 6, "crashed", polling=False)
    cut = Cut(T0 + 5.8, {"faults-worker-2": 1, WORKER_1.app: 1, "faults-intake": 1})
    verdict = Verdict()
    judge_faults(verdict, PLAN, seen(incarnations=[WORKER_1, at_start], cuts=[cut]))
    assert not verdict.problems
    assert verdict.counts["worker_died_at_start_by_a_cut"] == 1


def test_an_event_webhook_batch_the_intake_refused_or_never_took_fails():
    verdict = Verdict()
    judge_event_feed(verdict, EventLog(delivered=40, batches=9))
    assert verdict.problems == []
    judge_event_feed(verdict, EventLog(refused=["400: b'body[0].timestamp ...'"], undelivered=2))
    assert verdict.problems == [
        "the intake refused an Event Webhook batch: 400: b'body[0].timestamp ...'",
        "2 SendGrid events were never taken by the intake",
    ]
