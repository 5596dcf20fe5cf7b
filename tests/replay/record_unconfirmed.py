"""Record the histories of sends SendGrid may have taken (`wait-for-unconfirmed-send`), which
the outbox scenarios of tests/histories/record.py never reach:

    .venv/bin/python -m tests.replay.record_unconfirmed [--tag TAG]

`unconfirmed_send_confirmed`: the 202's commit fails, SendGrid's event arrives during the wait;
`unconfirmed_send_resent`: no event, the step is sent again once the wait is over. Like the
recorder, it never overwrites a file (docs/testing.md).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from datetime import UTC, datetime

from temporalio.testing import WorkflowEnvironment

from database.session import make_engine, make_sessionmaker, upgrade
from temporal_client import temporal_binary
from tests.conftest import register_search_attributes
from tests.faults.fake_sendgrid import FaultySendGrid
from tests.histories.record import HERE, SHOP_ID, TEMPLATES
from tests.workflows.unconfirmed_sends import run_lifecycle

SCENARIOS = {"unconfirmed_send_confirmed": 2, "unconfirmed_send_resent": None}


async def record(tag: str) -> None:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=temporal_binary("temporal-test-server")
    )
    provider = FaultySendGrid("SG.test", seed=0, client_timeout_s=10.0, faults={})
    try:
        await register_search_attributes(env.client)
        with provider.serving() as url:
            for name, confirm_after in SCENARIOS.items():
                path = HERE / f"{tag}--{name}--purchase.json"
                if path.exists():
                    raise SystemExit(f"{path} exists: histories are never overwritten")
                with tempfile.TemporaryDirectory() as tmp:
                    db = f"sqlite:///{tmp}/app.db"
                    upgrade(db)
                    engine = make_engine(db)
                    run = await run_lifecycle(
                        env, make_sessionmaker(engine), TEMPLATES, url, f"8{len(name)}",
                        confirm_after=confirm_after, shop_id=SHOP_ID,
                    )
                    engine.dispose()
                history = await env.client.get_workflow_handle(run.handle.id).fetch_history()
                path.write_text(history.to_json())
                print(f"{path.name}: {len(history.events)} events")
    finally:
        await env.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tag", default=datetime.now(UTC).strftime("%Y%m%d"))
    asyncio.run(record(parser.parse_args().tag))


if __name__ == "__main__":
    main()
