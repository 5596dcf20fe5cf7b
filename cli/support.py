"""Support's commands: read a lifecycle's timeline, find lifecycles, and act on them (cancel,
resend, erase a customer); refund and unsubscribe are in cli/events.py, audited the same way.
The logic lives in support/; these only parse, call and print, through cli/output.py: names,
reasons and errors in a record are shops' and people's text."""

from __future__ import annotations

import asyncio
from typing import Any

import click

from cli import output
from cli.acting import acting, actor_options, support_actions
from cli.common import app_database, fail, run, settings_or_fail
from intake.delivery import one_line
from intake.timeline import inspect_lifecycle
from support.actions import ActionResult
from support.erase import Erased, erase_customer
from support.find import Criteria, find_lifecycles
from support.resubscribe import Resubscribed, resubscribe
from temporal_client import connect

WAITING_FOR = {
    "provider_confirmation": "for SendGrid's confirmation",
    "frequency_cap": "(deferred by the frequency cap)",
}


def print_timeline(record: dict[str, Any]) -> None:
    life = record.get("lifecycle") or {}
    status = record.get("workflow_status") or "unknown in Temporal"
    output.echo(f"{record['workflow_id']}  ({status})")
    output.echo(f"  placed {record['placed_at']}  total {record['total']} {record['currency']}"
                f"  customer {record['customer_id']}")
    output.echo(f"  attribution {record['attribution'] or 'pending'}"
                f"{'  referrer ' + record['referrer_code'] if record['referrer_code'] else ''}")
    if record.get("temporal_error"):
        output.echo(f"  Temporal: {record['temporal_error']}")
    if life:
        output.echo(f"  stage {life.get('stage') or '-'}; next {life.get('next_step') or '-'}"
                    f" at {life.get('next_at') or '-'}")
        if life.get("waiting_on"):
            why = WAITING_FOR.get(life.get("waiting_for") or "")
            until = f" until {life['waiting_until']}" if life.get("waiting_until") else ""
            output.echo(f"  waiting on the send of {life['waiting_on']}"
                        f"{' ' + why if why else ''}{until}")
    if record.get("closed_at"):
        output.echo(f"  closed {record['closed_at']}")
    if summary := record.get("summary"):
        output.echo(f"  ended {summary['stage']}: {summary['emails_sent']} email(s) sent, skipped "
                    f"{summary['emails_skipped'] or 'none'}, failed {summary['emails_failed']}, "
                    f"credits {summary['credits'] or 'none'}")
    for pending in record.get("pending_activities", []):
        output.echo(f"  retrying {pending['activity']} (attempt {pending['attempt']}): "
                    f"{pending['last_failure']}")
    output.echo("  steps done:")
    for s in record["steps"] or [{"step": "-", "outcome": "none yet", "at": ""}]:
        output.echo(f"    {s['step']:<16} {s['outcome']:<36} {s['at'] or ''}".rstrip())
    output.echo("  emails:")
    for e in record["emails"] or [{"step": "-", "status": "none yet"}]:
        detail = e.get("skip_reason") or e.get("last_error") or ""
        if e.get("deferred_until"):
            detail += f" until {e['deferred_until']}"
        resend = " (resend)" if e.get("resend") else ""
        output.echo(f"    {e['step']:<16} {e['status']:<8} {e.get('sent_at') or '':<26} "
                    f"{e.get('template') or ''} {(e.get('template_hash') or '')[:12]} "
                    f"{e.get('provider_message_id') or ''} {detail}{resend}".rstrip())
        if said := one_line(e.get("delivery")):
            output.echo(f"      SendGrid: {said}")
    if suppressed := record.get("suppression"):
        lift = ("support can lift it: loyalloop resubscribe" if suppressed["support_can_lift"]
                else "only the customer's own resubscribe lifts it")
        output.echo(f"  marketing email suppressed since {suppressed['at']}: "
                    f"{suppressed['reason']} ({lift})")
    output.echo("  credits:")
    for c in record["credits"]:
        output.echo(f"    #{c['id']:<5} {c['milestone']:<24} {c['referrer']:<12} {c['amount']:>8} "
                    f"{c['currency']} {c['status']}"
                    + (f" (batch {c['payout_batch']})" if c["payout_batch"] else ""))
    if not record["credits"]:
        output.echo("    none")
    for r in record["refunds"]:
        output.echo(f"  refund {r['amount']} at {r['at']}: {r['reason']}")
    for u in record["unsubscribes"]:
        reason = f": {u['reason']}" if u["reason"] else ""
        output.echo(f"  unsubscribed at {u['at']} by {u['by']}{reason}")
    for u in record.get("resubscribes", []):
        output.echo(f"  resubscribed at {u['at']} by {u['by']}: {u['reason']}")
    if record.get("erased_at"):
        output.echo(f"  customer erased at {record['erased_at']}")
    if record["audit"]:
        output.echo("  support actions:")
    for a in record["audit"]:
        output.echo(f"    #{a['id']} {a['at']} {a['actor']} {a['action']}: {a['reason']}")
    output.echo(f"  Temporal UI: {record['temporal_ui']}")


@click.command()
@click.argument("shop")
@click.argument("order")
@click.option("--json", "as_json", is_flag=True)
def inspect(shop: str, order: str, as_json: bool) -> None:
    """A lifecycle's timeline: steps, emails, credits, refunds, actions."""
    settings = settings_or_fail()

    async def go() -> dict[str, Any] | None:
        with app_database(settings) as sessions:
            client = await connect(settings)
            return await inspect_lifecycle(
                sessions, client, shop, order, settings.temporal_ui_url
            )

    record = run(go)
    if record is None:
        fail(f"order: no purchase {order} for shop {shop}", 1)
        return
    if as_json:
        click.echo(output.json_text(record))
    else:
        print_timeline(record)


@click.command()
@click.option("--customer", help="The shop's customer id.")
@click.option("--creator", help="A creator's (or advocate's) referral code.")
@click.option("--email", help="Looked up in the database only, never sent to Temporal.")
@click.option("--shop", help="Only this shop.")
@click.option("--json", "as_json", is_flag=True)
def find(customer: str | None, creator: str | None, email: str | None, shop: str | None,
         as_json: bool) -> None:
    """Lifecycles of a customer, a creator or an email address."""
    criteria = Criteria(customer=customer, creator=creator, email=email, shop_id=shop)
    settings = settings_or_fail()

    async def go() -> list[dict[str, Any]]:
        with app_database(settings) as sessions:
            client = await connect(settings)
            return await find_lifecycles(sessions, client, criteria)

    rows = run(go)
    if as_json:
        click.echo(output.json_text(rows))
        return
    for r in rows:
        status, stage = r.get("status") or "-", r.get("stage") or "-"
        money = f"{r.get('total') or ''} {r.get('currency') or ''}"
        note = r.get("referrer_code") or r.get("source") or ""
        output.echo(f"{r['workflow_id']:<40} {status:<11} {stage:<20} "
                    f"{r.get('placed_at') or '':<26} {money} {note}".rstrip())
    output.echo(f"{len(rows)} lifecycle(s)")


def _acted(result: ActionResult, what: str) -> None:
    again = " (already recorded)" if result.repeated else ""
    output.echo(f"{what} {result.workflow_id}{again}; audit #{result.audit_id}")


@click.command()
@click.argument("shop")
@click.argument("order")
@actor_options
def cancel(shop: str, order: str, reason: str, actor: str) -> None:
    """Stop a lifecycle's remaining emails (audited); its credits keep their course."""
    settings = settings_or_fail()

    async def go() -> ActionResult:
        async with support_actions(settings) as actions:
            return await actions.cancel(shop, order, acting(actor, reason))

    _acted(run(go), "cancel sent to")


@click.command()
@click.argument("shop")
@click.argument("order")
@click.argument("step")
@actor_options
def resend(shop: str, order: str, step: str, reason: str, actor: str) -> None:
    """Send a step again on purpose, under a new idempotency key (audited)."""
    settings = settings_or_fail()

    async def go() -> ActionResult:
        async with support_actions(settings) as actions:
            return await actions.resend(shop, order, step, acting(actor, reason))

    result = run(go)
    _acted(result, f"resend of {step} ({result.detail['idempotency_key']}) sent to")


@click.command("erase-customer")
@click.argument("shop")
@click.argument("customer")
@actor_options
def erase_customer_command(shop: str, customer: str, reason: str, actor: str) -> None:
    """Remove a customer's personal data; the ledger keeps its amounts under an anonymous id."""
    settings = settings_or_fail()

    async def go() -> Erased:
        with app_database(settings) as sessions:
            return await asyncio.to_thread(
                erase_customer, sessions, shop, customer, acting(actor, reason)
            )

    erased = run(go)
    output.echo(f"erased {customer} of {shop}: now {erased.anonymous_id}; {erased.emails} email "
                f"record(s), {erased.outbox_messages} outbox message(s) blanked, {erased.credits} "
                f"credit(s) re-keyed; audit #{erased.audit_id}")


@click.command("resubscribe")
@click.argument("shop")
@click.argument("customer")
@actor_options
def resubscribe_command(shop: str, customer: str, reason: str, actor: str) -> None:
    """Lift a bounce suppression or an unsubscribe (audited); a spam report needs the
    customer's own resubscribe."""
    settings = settings_or_fail()

    async def go() -> Resubscribed:
        with app_database(settings) as sessions:
            return await asyncio.to_thread(
                resubscribe, sessions, shop, customer, acting(actor, reason)
            )

    done = run(go)
    if done.audit_id is None:
        output.echo(f"{customer} of {shop} receives marketing email already; nothing to lift")
        return
    lifted = [f"the {done.suppression_lifted} suppression"] if done.suppression_lifted else []
    lifted += ["the unsubscribe"] if done.unsubscribe_lifted else []
    output.echo(f"resubscribed {customer} of {shop}: lifted {' and '.join(lifted)}; "
                f"audit #{done.audit_id}")
