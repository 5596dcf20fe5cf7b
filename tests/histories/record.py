"""Record the histories the replay tests check every workflow change against.

    .venv/bin/python -m tests.histories.record [--tag TAG] [--only SCENARIO ...] [--list]

Runs the full lifecycle scenarios with the real workflow, activities and a fresh SQLite app
database on the time-skipping test server, and writes each lifecycle's history (every run, when
it continued-as-new) to `tests/histories/<tag>--<scenario>--<lifecycle>[--run<N>].json` in the
format of `WorkflowHistory.to_json()` (the same as `temporal workflow show --output json`).

Histories are never overwritten: a file that exists makes the recorder stop. A workflow change
keeps the old files (they are the lifecycles in flight) and adds new ones under a new tag; see
docs/testing.md. The customer and creator details below are distinctive on purpose, so the
privacy test can prove none of them reaches a history.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import select
from temporalio.client import Client, WorkflowHistory
from temporalio.testing import WorkflowEnvironment

from database.models import Creator, Customer
from database.session import make_engine, make_sessionmaker, upgrade
from shop_events.schemas import PurchaseEvent, RefundEvent, UnsubscribeEvent
from temporal_client import temporal_binary
from tests.conftest import register_search_attributes
from tests.lifecycle_kit import LifecycleKit
from workflows.contract import RepeatPurchase, ResendRequest
from workflows.lifecycle import REPEATS_BEFORE_CONTINUE_AS_NEW, PurchaseLifecycle

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE.parents[1] / "templates"
SHOP_ID = "recorded-shop"

# Personal data the recorder feeds in; tests/security scans every history for each of these.
CUSTOMER_NAME = "Ana Ñúñez-Recorded"
CUSTOMER_EMAIL = "ana.nunez.recorded@example.com"
FRIEND_NAME = "Bea Quixote-Recorded"
FRIEND_EMAIL = "bea.quixote.recorded@example.org"
CREATOR_NAME = "Maya Creator-Recorded"
CREATOR_EMAIL = "maya.creator.recorded@creators.example"
CREATOR_CODE = "MAYAREC"
PERSONAL_DATA = (
    CUSTOMER_NAME, CUSTOMER_EMAIL, FRIEND_NAME, FRIEND_EMAIL, CREATOR_NAME, CREATOR_EMAIL,
)


@dataclass
class Recorded:
    """A scenario's lifecycles: a short role name for each workflow id."""

    lifecycles: dict[str, str]


async def _purchase(
    kit: LifecycleKit, order_id: str, *, customer: str = "c-ana", name: str = CUSTOMER_NAME,
    email: str = CUSTOMER_EMAIL, **kwargs: Any,
) -> PurchaseEvent:
    event = await kit.placed_now(order_id, customer, email=email, **kwargs)
    customer_data = event.customer.model_copy(update={"first_name": name})
    return event.model_copy(update={"customer": customer_data})


def _add_creator(kit: LifecycleKit) -> str:
    with kit.sessions.begin() as session:
        session.add(Creator(code=CREATOR_CODE, name=CREATOR_NAME, email=CREATOR_EMAIL))
    return CREATOR_CODE


async def happy_path_with_creator(kit: LifecycleKit) -> Recorded:
    code = _add_creator(kit)
    handle = await kit.buy(await _purchase(kit, "1001", referral=code))
    await handle.result()
    return Recorded({"purchase": handle.id})


async def repeat_purchase_thresholds_and_tier(kit: LifecycleKit) -> Recorded:
    """49 then 250: first repeat purchase, spend 100 and 250, tier silver, all approved; a friend
    referred by the customer's own code earns the customer a referral credit."""
    code = _add_creator(kit)
    first = await kit.buy(await _purchase(kit, "2001", referral=code))
    await kit.skip(30)
    second = await kit.buy(await _purchase(kit, "2002", total="250.00", skus=["GRINDER-2"]))
    with kit.sessions() as session:
        own_code = session.scalar(
            select(Customer.referral_code).where(Customer.shop_id == kit.shop_id)
        )
    friend = await kit.buy(
        await _purchase(kit, "2003", customer="c-bea", name=FRIEND_NAME, email=FRIEND_EMAIL,
                        referral=own_code, locale="pt")
    )
    for handle in (first, second, friend):
        await handle.result()
    return Recorded({"first": first.id, "repeat": second.id, "friend": friend.id})


async def refund_before_day_7(kit: LifecycleKit) -> Recorded:
    code = _add_creator(kit)
    handle = await kit.buy(await _purchase(kit, "3001", referral=code))
    await kit.skip(3)
    await kit.service.accept_refund(
        RefundEvent(shop_id=kit.shop_id, order_id="3001", amount=Decimal("49.00"), reason="broken")
    )
    await handle.result()
    return Recorded({"purchase": handle.id})


async def unsubscribe_midway(kit: LifecycleKit) -> Recorded:
    handle = await kit.buy(await _purchase(kit, "4001"))
    await kit.skip(3)
    await kit.service.accept_unsubscribe(UnsubscribeEvent(shop_id=kit.shop_id, customer_id="c-ana"))
    await handle.result()
    return Recorded({"purchase": handle.id})


async def cancel_midway(kit: LifecycleKit) -> Recorded:
    handle = await kit.buy(await _purchase(kit, "5001"))
    await kit.skip(2)
    await kit.client.get_workflow_handle(handle.id).signal(PurchaseLifecycle.cancel)
    await handle.result()
    return Recorded({"purchase": handle.id})


async def resend_a_step(kit: LifecycleKit) -> Recorded:
    handle = await kit.buy(await _purchase(kit, "6001"))
    await kit.skip(2)
    await kit.client.get_workflow_handle(handle.id).signal(
        PurchaseLifecycle.resend, ResendRequest("day_1", "support-resend-1")
    )
    await handle.result()
    return Recorded({"purchase": handle.id})


async def many_repeats_continue_as_new(kit: LifecycleKit) -> Recorded:
    """More repeat purchases than one run keeps: the lifecycle continues-as-new."""
    code = _add_creator(kit)
    handle = await kit.buy(await _purchase(kit, "7001", referral=code))
    await kit.skip(2)
    signals = kit.client.get_workflow_handle(handle.id)
    spend = Decimal("49.00")
    placed_at = await kit.now()
    for n in range(REPEATS_BEFORE_CONTINUE_AS_NEW + 20):
        spend += 1
        repeat = RepeatPurchase(f"7001-r{n}", "1.00", str(spend), placed_at)
        await signals.signal(PurchaseLifecycle.repeat_purchase, repeat)
    await handle.result()
    return Recorded({"purchase": handle.id})


SCENARIOS: dict[str, Callable[[LifecycleKit], Awaitable[Recorded]]] = {
    fn.__name__: fn
    for fn in (
        happy_path_with_creator, repeat_purchase_thresholds_and_tier, refund_before_day_7,
        unsubscribe_midway, cancel_midway, resend_a_step, many_repeats_continue_as_new,
    )
}


async def fetch_runs(client: Client, workflow_id: str) -> list[WorkflowHistory]:
    """Every run of a lifecycle, first to last, following continue-as-new backwards."""
    runs: list[WorkflowHistory] = []
    run_id: str | None = None
    while True:
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        runs.insert(0, history)
        started = history.events[0].workflow_execution_started_event_attributes
        run_id = started.continued_execution_run_id or None
        if run_id is None:
            return runs


async def record(tag: str, names: list[str], out: Path) -> list[Path]:
    written: list[Path] = []
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=temporal_binary("temporal-test-server")
    )
    try:
        await register_search_attributes(env.client)
        for name in names:
            with tempfile.TemporaryDirectory() as tmp:
                url = f"sqlite:///{tmp}/app.db"
                upgrade(url)
                engine = make_engine(url)
                async with LifecycleKit.running(env, make_sessionmaker(engine), TEMPLATES) as kit:
                    kit.shop_id = SHOP_ID
                    recorded = await SCENARIOS[name](kit)
                    for role, workflow_id in recorded.lifecycles.items():
                        runs = await fetch_runs(env.client, workflow_id)
                        for index, history in enumerate(runs, start=1):
                            suffix = f"--run{index}" if len(runs) > 1 else ""
                            path = out / f"{tag}--{name}--{role}{suffix}.json"
                            if path.exists():
                                raise SystemExit(f"{path} exists: histories are never overwritten, "
                                                 "record under a new --tag")
                            path.write_text(history.to_json())
                            written.append(path)
                            print(f"{path.name}: {len(history.events)} events, "
                                  f"{path.stat().st_size} bytes")
                engine.dispose()
    finally:
        await env.shutdown()
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tag", default=datetime.now(UTC).strftime("%Y%m%d"),
                        help="prefix of the new files (default: today, e.g. 20261123)")
    parser.add_argument("--only", nargs="+", choices=sorted(SCENARIOS), default=list(SCENARIOS))
    parser.add_argument("--out", type=Path, default=HERE)
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(SCENARIOS))
        return
    clashes = sorted(p.name for p in args.out.glob(f"{args.tag}--*.json")
                     if p.name.split("--")[1] in args.only)
    if clashes:
        sys.exit(f"tag {args.tag!r} is already recorded ({', '.join(clashes)}): choose a new --tag")
    asyncio.run(record(args.tag, args.only, args.out))


if __name__ == "__main__":
    main()
