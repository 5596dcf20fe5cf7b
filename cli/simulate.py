"""`loyalloop simulate`: a purchase's whole lifecycle in seconds, with the real workflow code
under Temporal's time-skipping test server, a throwaway database and the outbox.

It prints what the customer would get (each email's day, local time, template and subject) and
what the referrer would earn: the marketer's preview of the journey and support's "what should
have happened".
"""

from __future__ import annotations

import json
import math
import re
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import click
from pydantic import SecretStr
from sqlalchemy import select
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.testing import WorkflowEnvironment

from database.models import Creator, Credit, EmailSend, Purchase
from database.session import make_engine, make_sessionmaker, upgrade
from intake.service import LifecycleService
from settings import Settings
from shop_events.schemas import PurchaseEvent, RefundEvent, UnsubscribeEvent
from temporal_client import core_runtime, temporal_binary
from worker import build_workers
from workflows import search
from workflows.contract import LifecycleSummary
from workflows.lifecycle import PurchaseLifecycle
from workflows.rules import LifecycleRules

EVENT = re.compile(
    r"^(?P<kind>repeat|refund|unsubscribe|cancel)(?::(?P<arg>[^@]+))?@(?P<day>\d+(?:\.\d+)?)$"
)


@dataclass(frozen=True)
class ScheduledEvent:
    kind: str
    arg: str | None
    day: float

    @classmethod
    def parse(cls, text: str) -> ScheduledEvent:
        match = EVENT.match(text)
        if match is None:
            raise ValueError(
                f"--event {text!r}: expected repeat:FILE.json@DAY, refund:AMOUNT@DAY, "
                "unsubscribe@DAY or cancel@DAY"
            )
        kind, arg = match["kind"], match["arg"]
        if kind in ("repeat", "refund") and not arg:
            raise ValueError(f"--event {text!r}: {kind} needs an argument ({kind}:...@DAY)")
        if kind == "refund":
            try:
                if Decimal(arg) <= 0:
                    raise ValueError
            except (ArithmeticError, ValueError):
                raise ValueError(f"--event {text!r}: {arg!r} is not a positive amount") from None
        return cls(kind, arg, float(match["day"]))


async def simulate_lifecycle(
    purchase: PurchaseEvent,
    events: list[tuple[ScheduledEvent, PurchaseEvent | None]],
    creators: list[dict[str, str]],
    rules: LifecycleRules,
    templates_dir: Path,
) -> dict[str, Any]:
    """Run the journey and return {"emails": [...], "credits": [...]}; times are reported in
    the purchase's own dates, though the test server's clock starts today."""
    workdir = Path(tempfile.mkdtemp(prefix="loyalloop-simulate-"))
    try:
        url = f"sqlite:///{workdir / 'simulate.db'}"
        upgrade(url)
        engine = make_engine(url)
        sessions = make_sessionmaker(engine)
        with sessions.begin() as session:
            for creator in creators:
                session.add(
                    Creator(
                        code=creator["code"].upper(), name=creator["name"], email=creator["email"]
                    )
                )
        settings = Settings(
            database_url=SecretStr(url),
            templates_dir=templates_dir,
            sendgrid_api_key=None,
            lifecycle_task_queue="simulate-lifecycles",
            email_task_queue="simulate-emails",
        )
        async with AsyncExitStack() as stack:
            env = await WorkflowEnvironment.start_time_skipping(
                test_server_existing_path=temporal_binary("temporal-test-server"),
                runtime=core_runtime(),
            )
            stack.push_async_callback(env.shutdown)
            await env.client.operator_service.add_search_attributes(
                AddSearchAttributesRequest(
                    namespace="default",
                    search_attributes={
                        k.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD for k in search.ALL
                    },
                )
            )
            executor = stack.enter_context(ThreadPoolExecutor(max_workers=8))
            for worker in build_workers(env.client, sessions, settings, executor):
                await stack.enter_async_context(worker)
            service = LifecycleService(
                sessions,
                env.client,
                task_queue=settings.lifecycle_task_queue,
                email_task_queue=settings.email_task_queue,
                rules=rules,
                clock=env.get_current_time,
            )
            now = await env.get_current_time()
            shift = timedelta(
                days=max(0, math.ceil((now - purchase.placed_at) / timedelta(days=1)))
            )
            start = purchase.placed_at + shift
            workflow_ids = [(await service.accept_purchase(_moved(purchase, start)))[0]]
            day = timedelta(seconds=rules.day_seconds)
            for event, repeat in sorted(events, key=lambda pair: pair[0].day):
                wait = start + event.day * day - await env.get_current_time()
                if wait > timedelta(0):
                    await env.sleep(wait)
                at = start + event.day * day
                if event.kind == "repeat":
                    assert repeat is not None
                    workflow_ids.append(
                        (await service.accept_purchase(_moved(repeat, at, purchase)))[0]
                    )
                elif event.kind == "refund":
                    await service.accept_refund(
                        RefundEvent(
                            shop_id=purchase.shop_id,
                            order_id=purchase.order_id,
                            amount=Decimal(event.arg or "0"),
                            reason="simulated",
                        )
                    )
                elif event.kind == "unsubscribe":
                    await service.accept_unsubscribe(
                        UnsubscribeEvent(shop_id=purchase.shop_id, customer_id=purchase.customer.id)
                    )
                else:
                    await env.client.get_workflow_handle(workflow_ids[0]).signal(
                        PurchaseLifecycle.cancel
                    )
            endings: dict[str, str] = {}
            async with env.time_skipping_unlocked():  # type: ignore[attr-defined]
                for workflow_id in workflow_ids:
                    handle = env.client.get_workflow_handle(
                        workflow_id, result_type=LifecycleSummary
                    )
                    endings[workflow_id] = (await handle.result()).stage
        timeline = _timeline(sessions, workflow_ids, start, shift, purchase.customer.timezone)
        timeline["lifecycles"] = [
            {"order_id": order_id, "ended": endings[workflow_id]}
            for workflow_id, order_id in timeline.pop("orders").items()
            if workflow_id in endings
        ]
        timeline["events"] = [
            {"kind": event.kind, "arg": event.arg, "day": event.day} for event, _ in events
        ]
        return timeline
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _moved(event: PurchaseEvent, at: datetime, first: PurchaseEvent | None = None) -> PurchaseEvent:
    """The event placed at `at`; a repeat is the first purchase's customer buying again."""
    update: dict[str, Any] = {"placed_at": at}
    if first is not None:
        update |= {"shop_id": first.shop_id, "customer": first.customer}
    return event.model_copy(update=update)


def _timeline(sessions, workflow_ids, start, shift, timezone) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    zone = ZoneInfo(timezone)
    with sessions() as session:
        orders = {p.workflow_id: p.order_id for p in session.scalars(select(Purchase))}
        emails = session.scalars(
            select(EmailSend).where(EmailSend.workflow_id.in_(workflow_ids)).order_by(EmailSend.id)
        ).all()
        credits = session.scalars(select(Credit).order_by(Credit.id)).all()
    start_date = start.astimezone(zone).date()

    def when(at: datetime | None) -> dict[str, Any]:
        if at is None:
            return {"day": None, "local_time": None}
        local = at.astimezone(zone)
        return {
            "day": (local.date() - start_date).days,
            "local_time": (local - shift).isoformat(timespec="minutes"),
        }

    return {
        "orders": orders,
        "emails": [
            {
                "order_id": orders[e.workflow_id],
                "step": e.step,
                "status": e.status,
                "reason": e.skip_reason,
                **when(e.sent_at or e.decided_at),
                "template": e.template_name,
                "subject": e.subject,
            }
            for e in emails
        ],
        "credits": [
            {
                "milestone": c.milestone,
                "referrer": c.referrer_code,
                "order_id": c.order_id,
                "amount": str(c.amount),
                "currency": c.currency,
                "status": c.status,
            }
            for c in credits
        ],
    }


def _creators(settings: Settings, file: Path | None) -> list[dict[str, str]]:
    """Creators from the app database (`loyalloop creators add`), then from --creators."""
    from cli.common import fail

    found: dict[str, dict[str, str]] = {}
    # Read as it stands, never migrated: the simulation runs on a throwaway database of its own.
    try:
        engine = make_engine(settings.database_url.get_secret_value())
        try:
            with make_sessionmaker(engine)() as session:
                for c in session.scalars(select(Creator)):
                    found[c.code.upper()] = {"code": c.code, "name": c.name, "email": c.email}
        finally:
            engine.dispose()
    except Exception:  # noqa: BLE001 - no app database yet is fine for a simulation
        pass
    if file is not None:
        try:
            listed = json.loads(file.read_text())
        except (OSError, json.JSONDecodeError) as error:
            fail(f"--creators {file}: {error}")
        if not isinstance(listed, list):
            fail(f'--creators {file}: expected a list of {{"code", "name", "email"}}')
        for index, creator in enumerate(listed):
            if not isinstance(creator, dict) or not {"code", "name", "email"} <= set(creator):
                fail(f"--creators {file}: entry {index} needs code, name and email")
            found[str(creator["code"]).upper()] = {
                k: str(creator[k]) for k in ("code", "name", "email")
            }
    return list(found.values())


@click.command()
@click.argument("purchase_file", type=click.Path(path_type=Path))
@click.option(
    "--event",
    "events",
    multiple=True,
    metavar="KIND[:ARG]@DAY",
    help="repeat:FILE.json@30, refund:AMOUNT@3, unsubscribe@5, cancel@2",
)
@click.option(
    "--creators",
    "creators_file",
    type=click.Path(path_type=Path),
    default=None,
    help='JSON list of {"code", "name", "email"}',
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path),
    default=None,
    help="JSON schedule and reward rules (as LOYALLOOP_RULES_FILE)",
)
@click.option("--json", "as_json", is_flag=True, help="Print the timeline as JSON.")
def simulate(
    purchase_file: Path,
    events: tuple[str, ...],
    creators_file: Path | None,
    config_file: Path | None,
    as_json: bool,
) -> None:
    """Run a purchase's whole lifecycle in seconds and print what would happen."""
    from cli.common import fail, read_event, run, settings_or_fail

    settings = settings_or_fail()
    purchase = read_event(purchase_file, PurchaseEvent)
    scheduled: list[tuple[ScheduledEvent, PurchaseEvent | None]] = []
    for text in events:
        try:
            event = ScheduledEvent.parse(text)
        except ValueError as error:
            fail(str(error))
        repeat = (
            read_event(Path(event.arg or ""), PurchaseEvent) if event.kind == "repeat" else None
        )
        scheduled.append((event, repeat))
    try:
        rules = (
            LifecycleRules.from_dict({"day_seconds": 86400, **json.loads(config_file.read_text())})
            if config_file
            else LifecycleRules()
        )
    except (OSError, json.JSONDecodeError, TypeError, ValueError) as error:
        fail(f"--config {config_file}: {error}")
    creators = _creators(settings, creators_file)
    timeline = run(
        lambda: simulate_lifecycle(purchase, scheduled, creators, rules, settings.templates_dir)
    )
    if as_json:
        click.echo(json.dumps(timeline, indent=2))
        return
    click.echo(f"Lifecycle of order {purchase.order_id} ({purchase.customer.timezone})")
    for event in timeline["events"]:
        arg = f" {event['arg']}" if event["arg"] else ""
        click.echo(f"  day {event['day']:>3g}  event  {event['kind']}{arg}")
    for email in timeline["emails"]:
        outcome = (
            email["status"] if email["reason"] is None else f"{email['status']} ({email['reason']})"
        )
        local = email["local_time"][:16].replace("T", " ") if email["local_time"] else "-"
        click.echo(
            f"  day {email['day']!s:>3}  {local}  order {email['order_id']}  {email['step']:<16} "
            f"{outcome:<32} {email['template'] or ''}  {email['subject'] or ''}".rstrip()
        )
    for lifecycle in timeline["lifecycles"]:
        click.echo(f"  lifecycle of order {lifecycle['order_id']} ended: {lifecycle['ended']}")
    click.echo("Credits")
    if not timeline["credits"]:
        click.echo("  none")
    for credit in timeline["credits"]:
        click.echo(
            f"  {credit['milestone']:<24} {credit['referrer']:<12} {credit['amount']:>8} "
            f"{credit['currency']}  {credit['status']}  (order {credit['order_id']})"
        )
