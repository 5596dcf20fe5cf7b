"""Exactly once and nothing lost, with everything breaking at once.

The real worker runs as a child process against a Temporal dev server and PostgreSQL, sending
through the real SendGrid sender to a provider that rate-limits, fails, hangs and has an outage.
Meanwhile the worker is SIGKILLed and restarted, every app connection to PostgreSQL is cut every
few seconds, and the intake dies between storing a purchase and starting (or routing) it.
Afterwards every email is counted at the provider by idempotency key and in `email_send`, every
credit in the ledger; any loss or unexplained duplicate fails the run. See docs/testing.md.

    LOYALLOOP_FAULT_LIFECYCLES=2000 LOYALLOOP_FAULT_KILLS=20 .venv/bin/pytest -s tests/faults
"""

from __future__ import annotations

import asyncio
import os
import random
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import select
from temporalio.testing import WorkflowEnvironment

from database.models import Creator, Credit, EmailSend
from database.session import make_engine, make_sessionmaker
from tests.faults.chaos import ConnectionCutter, CrashingIntake, Retries, run_chaos
from tests.faults.conftest import FaultDatabase
from tests.faults.fake_sendgrid import FaultySendGrid
from tests.faults.stories import KINDS, RULES, Story, Watcher
from tests.faults.verdict import (
    Verdict,
    judge_duplicates,
    judge_emails,
    judge_stories,
    sends_in_flight_at_cancel,
)
from tests.faults.worker_process import WorkerProcess
from workflows.contract import LifecycleSummary

LIFECYCLES = int(os.environ.get("LOYALLOOP_FAULT_LIFECYCLES", "200"))
KILLS = int(os.environ.get("LOYALLOOP_FAULT_KILLS", "5"))
CHAOS_PHASE_S = float(os.environ.get("LOYALLOOP_FAULT_PHASE_S", "25"))
SEED = int(os.environ.get("LOYALLOOP_FAULT_SEED") or random.randrange(1_000_000))
SENDGRID_CLIENT_TIMEOUT_S = 10.0  # SendGridSender's default, which make_sender uses


def build_stories(shop_id: str, creator: str) -> list[Story]:
    stories: list[Story] = []
    while sum(s.lifecycles for s in stories) < LIFECYCLES:
        index = len(stories)
        stories.append(Story(index, KINDS[index % len(KINDS)], shop_id, creator))
    return stories


def plan_intake_crashes(stories: list[Story], rng: random.Random) -> dict[str, str]:
    crashes: dict[str, str] = {}
    for story in stories:
        draw = rng.random()
        if draw < 0.10:
            crashes[story.first] = "stored"
        elif draw < 0.15:
            crashes[story.first] = "started"
        if story.kind.startswith("repeat") and rng.random() < 0.3:
            crashes[story.repeat] = rng.choice(["stored", "started", "routed"])
    return crashes


@pytest.mark.faults
@pytest.mark.timeout(1800)
async def test_every_email_and_credit_exactly_once_under_faults(
    dev_server: WorkflowEnvironment, fault_database: FaultDatabase, tmp_path: Path
):
    rng = random.Random(SEED)
    run = uuid.uuid4().hex[:8]
    shop_id, creator = f"faults-{run}", f"CHAOS{run.upper()}"
    api_key = f"SG.fault-suite-{uuid.uuid4().hex}"
    queues = {
        "LOYALLOOP_TASK_QUEUE": f"lifecycles-{run}",
        "LOYALLOOP_EMAIL_TASK_QUEUE": f"emails-{run}",
    }
    provider = FaultySendGrid(api_key, seed=SEED, client_timeout_s=SENDGRID_CLIENT_TIMEOUT_S)
    engine = make_engine(fault_database.url)
    sessions = make_sessionmaker(engine)
    with sessions.begin() as session:
        session.add(Creator(code=creator, name="Chaos Creator", email="chaos@creators.example"))
    stories = build_stories(shop_id, creator)
    intake = CrashingIntake(
        sessions,
        dev_server.client,
        task_queue=queues["LOYALLOOP_TASK_QUEUE"],
        email_task_queue=queues["LOYALLOOP_EMAIL_TASK_QUEUE"],
        rules=RULES,
        crashes=plan_intake_crashes(stories, rng),
    )
    shop, watcher, stop = Retries(), Watcher(sessions, shop_id), asyncio.Event()
    cutter = ConnectionCutter(fault_database.admin_url, fault_database.name)
    began = time.monotonic()

    with provider.serving() as sendgrid_url:
        worker = WorkerProcess(
            {
                "TEMPORAL_ADDRESS": dev_server.client.service_client.config.target_host,
                "DATABASE_URL": fault_database.url,
                "SENDGRID_API_KEY": api_key,
                "SENDGRID_HOST": sendgrid_url,
                "LOYALLOOP_LINK_SECRET": "a-link-secret-for-the-fault-run",
                "LOYALLOOP_SEND_RATE": "1000",
                **queues,
            },
            tmp_path,
        )
        worker.start()
        provider.outage_for(start_in_s=6.0, length_s=4.0)
        background = [
            asyncio.create_task(watcher.run(stop)),
            asyncio.create_task(
                run_chaos(worker, cutter, rng, kills=KILLS, phase_s=CHAOS_PHASE_S, stop=stop)
            ),
        ]
        try:
            await asyncio.gather(*(s.play(intake, shop, watcher) for s in stories))
            handles = [
                dev_server.client.get_workflow_handle(wid, result_type=LifecycleSummary)
                for story in stories
                for wid in story.workflow_ids
            ]
            results = await asyncio.gather(*(h.result() for h in handles), return_exceptions=True)
        finally:
            stop.set()
            await asyncio.gather(*background, return_exceptions=True)
            worker.stop()
    elapsed = time.monotonic() - began

    with sessions() as session:
        rows = {
            r.idempotency_key: r
            for r in session.scalars(select(EmailSend).where(EmailSend.shop_id == shop_id))
        }
        ledger = list(session.scalars(select(Credit).where(Credit.shop_id == shop_id)))
    engine.dispose()
    log = provider.log
    verdict = Verdict()
    stage_of = {}
    for handle, result in zip(handles, results, strict=True):
        if isinstance(result, BaseException):
            verdict.problems.append(f"{handle.id} did not complete: {result!r}")
        else:
            stage_of[handle.id] = result.stage
    in_flight = await sends_in_flight_at_cancel(dev_server.client, stories)
    judge_stories(verdict, stories, rows, log, stage_of, ledger, in_flight)
    judge_emails(verdict, stories, rows, log, stage_of, worker.kills, cutter.sweeps)
    judge_duplicates(verdict, rows, log, worker.kills, cutter.sweeps)

    counts, problems = verdict.counts, verdict.problems
    copies = sum(map(len, log.accepted.values()))
    print(
        f"\nfault run seed={SEED}: {len(handles)} lifecycles of {len(stories)} customers "
        f"in {elapsed:.0f} s\n"
        f"  stories: {dict(Counter(s.kind for s in stories))}\n"
        f"  emails: must send {counts['must_send']} (+{counts['on_its_way_at_stop']} on their way "
        f"when a stop landed); recorded sent {counts['recorded_sent']}, skipped "
        f"{counts['recorded_skipped']}, closed by a stop {counts['closed_by_a_stop']}, "
        f"in flight at a stop {counts['in_flight_at_a_stop']}\n"
        f"  provider: accepted {len(log.accepted)} keys, {copies} copies; answers "
        f"{dict(log.outcomes)}; faulty keys {dict(Counter(log.faults.values()))}\n"
        f"  duplicates in the known 202-before-commit window: {dict(verdict.window)}; "
        f"other duplicates: {sum(p.startswith('duplicate') for p in problems)}\n"
        f"  credits: {dict(Counter(c.status for c in ledger))} "
        f"{dict(Counter(c.milestone.split(':')[0] for c in ledger))}\n"
        f"  worker: {len(worker.kills)} SIGKILLs, {worker.crashes} died on its own, "
        f"{worker.starts} starts; PostgreSQL: {len(cutter.sweeps)} cuts, "
        f"{cutter.terminated} connections terminated\n"
        f"  intake crashes: {dict(intake.crashed)}; shop retries: {dict(shop.counts)}\n"
        f"  problems: {len(problems)}"
    )
    print("\n".join(f"    {p}" for p in problems[:40]))
    assert api_key not in worker.logs(), "the SendGrid API key reached the worker's log"
    assert not problems, f"{len(problems)} problems, first: {problems[:5]}"
    assert sum(intake.crashed.values()) > 0 and len(worker.kills) == KILLS and cutter.terminated > 0
