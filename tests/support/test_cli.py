"""The support and finance commands as people type them: real CLI, real database, the kit's
Temporal server and workers. Each command runs in a thread with its own event loop, as it would
in its own process, while the workers keep running on the test's loop."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from cli.main import main
from settings import get_settings
from tests.lifecycle_kit import LifecycleKit

Loyalloop = Callable[..., Awaitable[Result]]


@pytest.fixture
def loyalloop(kit: LifecycleKit, monkeypatch: pytest.MonkeyPatch) -> Loyalloop:
    url = kit.sessions.kw["bind"].url.render_as_string(hide_password=False)
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("TEMPORAL_ADDRESS", kit.client.service_client.config.target_host)
    monkeypatch.setenv("USER", "cli.tester")

    async def invoke(*args: str) -> Result:
        get_settings.cache_clear()
        try:
            return await asyncio.to_thread(CliRunner().invoke, main, list(args))
        finally:
            get_settings.cache_clear()

    return invoke


async def test_inspect_resend_find_and_erase_from_the_command_line(
    kit: LifecycleKit, loyalloop: Loyalloop
):
    handle = await kit.buy(await kit.placed_now("9501", "c-77"))
    shop = kit.shop_id

    missing_reason = await loyalloop("resend", shop, "9501", "day_1")
    resent = await loyalloop("resend", shop, "9501", "day_1", "--reason", "lost in spam")
    unknown = await loyalloop("inspect", shop, "nope")
    await handle.result()
    timeline = await loyalloop("inspect", shop, "9501")
    as_json = await loyalloop("inspect", shop, "9501", "--json")
    found = await loyalloop("find", "--customer", "c-77", "--shop", shop)
    closed = await loyalloop("cancel", shop, "9501", "--reason", "asked to stop")
    erased = await loyalloop("erase-customer", shop, "c-77", "--reason", "GDPR request #5")

    assert missing_reason.exit_code == 2 and "--reason" in missing_reason.output
    assert resent.exit_code == 0, resent.output
    assert "resend:" in resent.output and "audit #" in resent.output
    assert unknown.exit_code == 1 and "error: order: no purchase nope" in unknown.output
    assert timeline.exit_code == 0, timeline.output
    assert "(COMPLETED)" in timeline.stdout and "(resend)" in timeline.stdout
    assert "cli.tester resend: lost in spam" in timeline.stdout
    assert "Temporal UI: http://localhost:8233/namespaces/default/workflows/" in timeline.stdout
    record = json.loads(as_json.stdout)
    assert [s["step"] for s in record["steps"]] == ["day_1", "day_7", "referral_prompt", "day_21"]
    assert found.exit_code == 0 and handle.id in found.stdout and "COMPLETED" in found.stdout
    assert closed.exit_code == 2 and "is closed (completed)" in closed.output
    assert "Traceback" not in closed.output
    assert erased.exit_code == 0 and "now anon-" in erased.stdout


async def test_credits_commands(kit: LifecycleKit, loyalloop: Loyalloop, tmp_path: Path):
    creator = kit.add_creator("CLI")
    handle = await kit.buy(await kit.placed_now("9601", referral=creator))
    await handle.result()
    [credit] = kit.credits(creator)
    batch = tmp_path / "batch.json"
    batch.write_text(json.dumps({"batch_id": f"PAY-{creator}", "credit_ids": [credit.id]}))
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"batch_id": f"PAY-{creator}-2", "credit_ids": [credit.id, 0]}))

    bad = await loyalloop("credits", "mark-paid", "--batch", str(wrong))
    exported = await loyalloop("credits", "--creator", creator, "--status", "approved",
                               "--format", "csv")
    paid = await loyalloop("credits", "mark-paid", "--batch", str(batch))
    again = await loyalloop("credits", "mark-paid", "--batch", str(batch))
    listed = await loyalloop("credits", "--creator", creator, "--since", "2000-01-01")
    summary = await loyalloop("credits", "summary", "--creator", creator, "--json")
    bad_since = await loyalloop("credits", "--since", "last week")

    assert bad.exit_code == 2 and "error: credit_ids: 0 does not exist" in bad.output
    assert exported.stdout.splitlines()[0].startswith("id,shop_id,")
    assert f"{credit.id},{kit.shop_id},creator,{creator}" in exported.stdout
    assert paid.exit_code == 0 and "marked paid 1 credit(s), 5.00 EUR" in paid.stdout
    assert again.exit_code == 0 and "already paid; nothing changed" in again.stdout
    assert f"batch PAY-{creator}" in listed.stdout and " paid " in listed.stdout
    [row] = json.loads(summary.stdout)
    assert (row["referred_customers"], row["credits"][0]["status"]) == (1, "paid")
    assert bad_since.exit_code == 2 and "error: since:" in bad_since.output
