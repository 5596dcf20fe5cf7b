"""The unsubscribe page in real headless Chromium with JavaScript off, against the intake served
by uvicorn: GET shows one button and changes nothing, clicking unsubscribes, a second click (from
a second tab opened before the first click) changes nothing, and resubscribe works.

Screenshots go to the test's folder; with LOYALLOOP_UPDATE_SCREENSHOTS=1 to docs/ as well."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import uvicorn

from intake.app import create_app
from tests.public.conftest import Public

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DOCS = Path(__file__).resolve().parents[2] / "docs"
playwright_api = pytest.importorskip(
    "playwright.async_api", reason="browser test skipped: pip install playwright (dev extras)")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="browser test skipped: Debian's `chromium` is not installed")


@pytest.fixture
async def served(public: Public) -> AsyncIterator[str]:
    """The intake app on a real port, in this test's event loop (its Temporal client's)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(
        create_app(public.kit.settings, public.kit.service), host="127.0.0.1", port=port,
        log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await task


def shoot(tmp_path: Path, name: str) -> list[Path]:
    paths = [tmp_path / name]
    if os.environ.get("LOYALLOOP_UPDATE_SCREENSHOTS") == "1":
        paths.append(DOCS / name)
    return paths


async def test_the_page_confirms_unsubscribes_once_and_resubscribes(
    public: Public, served: str, tmp_path: Path
) -> None:
    public.customer("c-42")
    link = served + public.link()
    async with playwright_api.async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM)
        context = await browser.new_context(java_script_enabled=False,
                                            viewport={"width": 640, "height": 420})
        page, second_tab = await context.new_page(), await context.new_page()
        await page.goto(link)
        await second_tab.goto(link)
        buttons = page.get_by_role("button")
        assert await buttons.count() == 1 and await buttons.inner_text() == "Unsubscribe"
        assert "Ana's Kettles" in await page.inner_text("header")
        for path in shoot(tmp_path, "unsubscribe-confirm.png"):
            await page.screenshot(path=str(path))
        assert public.unsubscribed_at() is None and public.audit() == []

        await buttons.click()
        await page.wait_for_load_state()
        assert await page.inner_text("h1") == "You are unsubscribed"
        at = public.unsubscribed_at()
        assert at is not None and public.audit() == [("customer", "unsubscribe", "c-42")]
        for path in shoot(tmp_path, "unsubscribe-done.png"):
            await page.screenshot(path=str(path))

        await second_tab.get_by_role("button", name="Unsubscribe").click()
        await second_tab.wait_for_load_state()
        assert await second_tab.inner_text("h1") == "You are unsubscribed"
        assert public.unsubscribed_at() == at and len(public.audit()) == 1

        await page.get_by_role("button", name="Resubscribe").click()
        await page.wait_for_load_state()
        assert await page.inner_text("h1") == "You are subscribed"
        assert public.unsubscribed_at() is None
        assert [action for _, action, _ in public.audit()] == ["unsubscribe", "resubscribe"]
        for path in shoot(tmp_path, "unsubscribe-resubscribed.png"):
            await page.screenshot(path=str(path))
        await browser.close()
