"""Support's commands: read a lifecycle's timeline."""

from __future__ import annotations

import json
from typing import Any

import click

from cli.main import fail, run, settings_or_fail
from database.session import make_engine, make_sessionmaker, upgrade
from support.inspect import inspect_lifecycle
from temporal_client import connect


def print_timeline(record: dict[str, Any]) -> None:
    life = record.get("lifecycle") or {}
    click.echo(f"{record['workflow_id']}  ({record.get('workflow_status') or 'unknown in Temporal'})")
    click.echo(f"  placed {record['placed_at']}  total {record['total']} {record['currency']}"
               f"  customer {record['customer_id']}")
    click.echo(f"  attribution {record['attribution'] or 'pending'}"
               f"{'  referrer ' + record['referrer_code'] if record['referrer_code'] else ''}")
    if life:
        click.echo(f"  stage {life['stage']}; next {life['next_step'] or '-'} at {life['next_at'] or '-'}")
        if life.get("waiting_on"):
            click.echo(f"  waiting on the send of {life['waiting_on']}")
    for pending in record.get("pending_activities", []):
        click.echo(f"  retrying {pending['activity']} (attempt {pending['attempt']}): {pending['last_failure']}")
    click.echo("  emails:")
    for e in record["emails"] or [{"step": "-", "status": "none yet"}]:
        detail = e.get("skip_reason") or e.get("last_error") or ""
        click.echo(f"    {e['step']:<16} {e['status']:<8} {e.get('sent_at') or '':<26} "
                   f"{e.get('template') or ''} {(e.get('template_hash') or '')[:12]} "
                   f"{e.get('provider_message_id') or ''} {detail}".rstrip())
    click.echo("  credits:")
    for c in record["credits"] or [{"milestone": "-", "referrer": "", "amount": "", "currency": "", "status": "none"}]:
        click.echo(f"    {c['milestone']:<24} {c['referrer']:<12} {c['amount']:>8} {c['currency']} {c['status']}")
    for r in record["refunds"]:
        click.echo(f"  refund {r['amount']} at {r['at']}: {r['reason']}")
    if record.get("unsubscribed_at"):
        click.echo(f"  unsubscribed at {record['unsubscribed_at']}")
    for a in record["audit"]:
        click.echo(f"  {a['at']} {a['actor']} {a['action']}: {a['reason']}")
    click.echo(f"  Temporal UI: {record['temporal_ui']}")


@click.command()
@click.argument("shop")
@click.argument("order")
@click.option("--json", "as_json", is_flag=True)
def inspect(shop: str, order: str, as_json: bool) -> None:
    """A lifecycle's timeline: steps, emails, credits, refunds, actions."""
    settings = settings_or_fail()

    async def go() -> dict[str, Any] | None:
        upgrade(settings.database_url)
        sessions = make_sessionmaker(make_engine(settings.database_url))
        client = await connect(settings)
        return await inspect_lifecycle(sessions, client, shop, order, settings.temporal_ui_url)

    record = run(go)
    if record is None:
        fail(f"no purchase {order} for shop {shop}", 1)
    if as_json:
        click.echo(json.dumps(record, indent=2, default=str))
    else:
        print_timeline(record)
