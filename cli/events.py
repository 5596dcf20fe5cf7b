"""`loyalloop purchase | refund | unsubscribe`: shop events from the command line, through the
same validation and the same service as the HTTP intake."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from pathlib import Path

import click
from pydantic import ValidationError

from cli.acting import acting, actor_options, lifecycle_service, support_actions
from cli.common import fail, read_event, run, settings_or_fail
from shop_events.schemas import PurchaseEvent, RefundEvent, UnsubscribeEvent, describe_errors
from support.actions import ActionResult


class EventCommand(click.Command):
    """A usage mistake (a missing argument or option) ends in one line too, like a bad event."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as error:
            fail(f"{error.format_message()} (see `loyalloop {self.name} --help`)")


def _validated(model, **fields):  # type: ignore[no-untyped-def]
    try:
        return model.model_validate(fields)
    except ValidationError as error:
        fail("; ".join(f"{p['field']}: {p['problem']}" for p in describe_errors(error)))


@click.command(cls=EventCommand)
@click.argument("file", type=click.Path(path_type=Path))
def purchase(file: Path) -> None:
    """Report a purchase from a JSON file (the event format of docs/intake.md)."""
    event = read_event(file, PurchaseEvent)
    settings = settings_or_fail()

    async def go() -> tuple[str, bool]:
        async with lifecycle_service(settings) as service:
            return await service.accept_purchase(event)

    workflow_id, created = run(go)
    click.echo(f"{'started' if created else 'already known'}: {workflow_id}")


@click.command(cls=EventCommand, context_settings={"ignore_unknown_options": True})
@click.argument("shop")
@click.argument("order")
@click.argument("amount")  # "-5" is an amount (refused as negative), not an unknown option
@actor_options
def refund(shop: str, order: str, amount: str, reason: str, actor: str) -> None:
    """Refund an order: stops its emails and takes back the credits it earned (audited)."""
    try:
        Decimal(amount)
    except InvalidOperation:
        fail(f"amount: {amount!r} is not a decimal amount")
    event = _validated(RefundEvent, shop_id=shop, order_id=order, amount=amount, reason=reason)
    settings = settings_or_fail()

    async def go() -> ActionResult:
        async with support_actions(settings) as actions:
            return await actions.refund(event, acting(actor, reason))

    result = run(go)
    again = " (already recorded)" if result.repeated else ""
    click.echo(f"refund recorded for {result.workflow_id}{again}; audit #{result.audit_id}")


@click.command(cls=EventCommand)
@click.argument("shop")
@click.argument("customer")
@actor_options
def unsubscribe(shop: str, customer: str, reason: str, actor: str) -> None:
    """Stop every marketing email to a customer (audited)."""
    event = _validated(UnsubscribeEvent, shop_id=shop, customer_id=customer)
    settings = settings_or_fail()

    async def go() -> ActionResult:
        async with support_actions(settings) as actions:
            return await actions.unsubscribe(event, acting(actor, reason))

    result = run(go)
    again = " (already recorded)" if result.repeated else ""
    click.echo(f"unsubscribed; {result.detail['lifecycles_signalled']} lifecycle(s) told{again}; "
               f"audit #{result.audit_id}")
