"""The Loyalloop worker: lifecycles and database activities on one task queue, email sends on
another whose rate is capped at the provider's."""

from __future__ import annotations

import asyncio
import logging
import signal
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack
from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.emails import EmailActivities, EmailIdentity
from activities.purchases import PurchaseActivities
from database.session import make_engine, make_sessionmaker, require_head
from messages.render import TemplateRenderer
from messages.senders import make_sender
from settings import Settings, get_settings
from temporal_client import connect
from temporal_setup import require as require_search_attributes
from workflows.lifecycle import PurchaseLifecycle
from workflows.resend import ResendStep

# On SIGTERM, activities in flight (a send, a ledger write) get this long to finish.
GRACEFUL_SHUTDOWN = timedelta(seconds=20)


def workflow_runner() -> SandboxedWorkflowRunner:
    """The sandbox, reusing the modules this worker already imported instead of re-importing
    the workflow's modules for every lifecycle it creates or replays (28% of the CPU of opening a
    lifecycle, bench/). Calls a workflow must not make (the clock, I/O, randomness) are still
    refused; this is safe because no module a workflow imports keeps state of its own."""
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_all_modules()
    )


def build_workers(
    client: Client,
    sessions: sessionmaker[Session],
    settings: Settings,
    executor: ThreadPoolExecutor,
    *,
    max_cached_workflows: int = 1000,
    purchases: PurchaseActivities | None = None,
    emails: EmailActivities | None = None,
) -> list[Worker]:
    """The two workers production runs, and so every test, `simulate` and the benchmark: the
    same sandbox, queues and send rate limit. A test hands in its own activity objects (a
    subclass that crashes, a provider that fails) instead of building workers of its own."""
    purchases = purchases or PurchaseActivities(sessions)
    emails = emails or email_activities(sessions, settings)
    lifecycles = Worker(
        client,
        task_queue=settings.lifecycle_task_queue,
        workflows=[PurchaseLifecycle, ResendStep],
        activities=[
            purchases.begin_lifecycle,
            purchases.credit_milestones,
            purchases.approve_credits,
            purchases.reverse_order_credits,
            purchases.summarize_lifecycle,
        ],
        activity_executor=executor,
        workflow_runner=workflow_runner(),
        max_cached_workflows=max_cached_workflows,
        graceful_shutdown_timeout=GRACEFUL_SHUTDOWN,
    )
    sends = Worker(
        client,
        task_queue=settings.email_task_queue,
        activities=[emails.send_step],
        activity_executor=executor,
        max_task_queue_activities_per_second=settings.send_rate_per_second,
        disable_eager_activity_execution=True,
        graceful_shutdown_timeout=GRACEFUL_SHUTDOWN,
    )
    return [lifecycles, sends]


def email_activities(sessions: sessionmaker[Session], settings: Settings) -> EmailActivities:
    """The email step on its real parts: the templates, the provider, the shop's identity."""
    return EmailActivities(
        sessions,
        TemplateRenderer(settings.templates_dir),
        make_sender(
            settings.sendgrid_api_key.get_secret_value() if settings.sendgrid_api_key else None,
            settings.sendgrid_host,
        ),
        EmailIdentity(
            settings.from_email, settings.public_url, settings.link_secret.get_secret_value()
        ),
        timedelta(seconds=settings.uncertain_send_wait),
    )


async def run_workers(client: Client, settings: Settings, stop: asyncio.Event) -> None:
    """Poll both task queues until `stop` is set, then finish in-flight tasks and return. Only
    on a schema at the migrations' head: `loyalloop db upgrade` (or `dev`) migrates it."""
    url = settings.database_url.get_secret_value()
    require_head(url)
    engine = make_engine(url)
    with ThreadPoolExecutor(max_workers=32) as executor:
        async with AsyncExitStack() as stack:
            for worker in build_workers(client, make_sessionmaker(engine), settings, executor):
                await stack.enter_async_context(worker)
            logging.info(
                "worker polling %s and %s", settings.lifecycle_task_queue, settings.email_task_queue
            )
            await stop.wait()
    engine.dispose()


async def run(settings: Settings) -> None:
    client = await connect(settings)
    await require_search_attributes(client, settings.temporal_namespace)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    await run_workers(client, settings, stop)


def main() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # At INFO SQLAlchemy logs every statement: noise and CPU on the hot path (values are hidden).
    logging.getLogger("sqlalchemy").setLevel(logging.WARNING)
    settings = get_settings()
    try:
        settings.check_for_worker()
    except ValueError as error:
        raise SystemExit(f"error: configuration: {error}") from None
    asyncio.run(run(settings))


if __name__ == "__main__":
    main()
