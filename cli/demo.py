"""`loyalloop demo-purchase`: a purchase for the demo shop of `loyalloop dev`, placed the moment
it is asked for.

Written when `dev` started, a purchase sent minutes later was already "days" old on a compressed
schedule, and day 1, day 7 and the prompt fired in the same second; made on demand, its
schedule starts when it is sent.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from cli.common import app_database, fail, settings_or_fail
from database.models import Purchase

DEMO_SHOP = "demo"
FIRST_DEMO_ORDER = 1001


def demo_purchase(sessions: sessionmaker[Session], now: datetime) -> dict[str, Any]:
    """Placed at `now`, by a new customer (a repeat buyer would rightly not get the same steps
    again), under the next order id the demo shop has not used: sending the same one twice
    shows the intake's idempotency, asking again gives a fresh lifecycle."""
    with sessions() as session:
        known = session.scalar(
            select(func.count()).select_from(Purchase).where(Purchase.shop_id == DEMO_SHOP)
        ) or 0
    order_id = str(FIRST_DEMO_ORDER + known)
    return {
        "shop_id": DEMO_SHOP,
        "order_id": order_id,
        "placed_at": now.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        "customer": {"id": f"c-{order_id}", "email": f"ana.{order_id}@example.com",
                     "first_name": "Ana", "locale": "en", "timezone": "Europe/Lisbon",
                     "marketing_consent": True},
        "items": [{"sku": "KETTLE-1", "name": "Pour-over kettle", "quantity": 1,
                   "unit_price": "49.00"}],
        "total": "49.00",
        "currency": "EUR",
    }


@click.command("demo-purchase")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write it to this file instead of stdout.")
def demo_purchase_command(out: Path | None) -> None:
    """Print a demo purchase placed now (for `loyalloop dev`'s shop "demo")."""
    with app_database(settings_or_fail()) as sessions:
        text = json.dumps(demo_purchase(sessions, datetime.now(UTC)), indent=2) + "\n"
    if out is None:
        click.echo(text, nl=False)
        return
    try:
        out.write_text(text)
    except OSError as error:
        fail(f"--out {out}: {error.strerror}")
    click.echo(f"wrote {out} (order {json.loads(text)['order_id']})")
