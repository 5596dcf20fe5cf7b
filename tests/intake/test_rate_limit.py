"""Failed authentication is limited per client address: keys and Shopify signatures cannot be
found by trying, and shops calling with their right key never notice the limit."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from intake.ratelimit import MAX_FAILURES, WINDOW_S, FailureWindows
from tests.intake.conftest import Intake, assert_refusal, make_intake_app

Clients = Callable[[str], httpx.AsyncClient]


@pytest.fixture
async def clients(intake: Intake) -> AsyncIterator[Clients]:
    """HTTP clients of one intake, each calling from the address it is asked for."""
    app = make_intake_app(intake.kit, shop_keys=f"{intake.shop_id}:{intake.key}",
                          shopify_secrets=f"{intake.shop_id}:{intake.shopify_secret}")
    opened: list[httpx.AsyncClient] = []

    def client(address: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, client=(address, 40000))
        opened.append(httpx.AsyncClient(transport=transport, base_url="http://intake"))
        return opened[-1]

    yield client
    for http in opened:
        await http.aclose()


async def guess(http: httpx.AsyncClient, intake: Intake, times: int) -> None:
    for attempt in range(times):
        wrong = await http.get(f"/v1/lifecycles/{intake.shop_id}/1",
                               headers={"Authorization": f"Bearer guess-{attempt}"})
        assert_refusal(wrong, 401, "Authorization")


async def test_too_many_wrong_keys_are_429_even_for_the_right_key(
    intake: Intake, clients: Clients
):
    attacker, shop = clients("203.0.113.7"), clients("198.51.100.2")
    await guess(attacker, intake, MAX_FAILURES)
    before = await intake.written()
    blocked = await attacker.post("/v1/purchases", json=intake.purchase(), headers=intake.auth)
    assert_refusal(blocked, 429, "client")
    assert 0 < int(blocked.headers["Retry-After"]) <= WINDOW_S
    assert await intake.written() == before, "a blocked call reaches nothing"

    accepted = await shop.post("/v1/purchases", json=intake.purchase(), headers=intake.auth)
    assert accepted.status_code == 202, "another address is not limited"


async def test_wrong_shopify_signatures_count_too(intake: Intake, clients: Clients):
    attacker = clients("203.0.113.8")
    raw = json.dumps({"id": 1}).encode()
    path = f"/webhooks/shopify/{intake.shop_id}/orders-create"
    for attempt in range(MAX_FAILURES):
        headers = intake.signed(raw, f"guess-{attempt}")
        assert_refusal(await attacker.post(path, content=raw, headers=headers), 401)
    right = await attacker.post(path, content=raw, headers=intake.signed(raw))
    assert_refusal(right, 429, "client")


async def test_successful_calls_are_never_limited_and_do_not_reset_the_count(
    intake: Intake, clients: Clients
):
    shop = clients("198.51.100.3")
    await guess(shop, intake, MAX_FAILURES - 1)
    for _ in range(3 * MAX_FAILURES):
        ok = await shop.get("/healthz", headers=intake.auth)
        assert ok.status_code == 200, ok.text
    await guess(shop, intake, 1)  # a shop's own right key buys no more guesses
    assert_refusal(await shop.get("/healthz", headers=intake.auth), 429, "client")


def test_an_address_may_try_again_when_its_window_ends():
    now = [1000.0]
    windows = FailureWindows(max_failures=3, window_s=60, clock=lambda: now[0])
    for _ in range(3):
        assert windows.retry_after("a") is None
        windows.failed("a")
    now[0] += 20
    assert windows.retry_after("a") == pytest.approx(40)
    now[0] += 40
    assert windows.retry_after("a") is None
    windows.failed("a")
    assert windows.retry_after("a") is None, "a new window starts with one failure"


def test_memory_stays_bounded_under_a_spray_of_addresses():
    windows = FailureWindows(max_failures=2, window_s=60, max_addresses=100)
    for number in range(10_000):
        windows.failed(f"10.{number // 65536}.{number // 256 % 256}.{number % 256}")
    assert len(windows) == 100
    windows.failed("10.0.39.15")  # among the last 100: still counted, now blocked
    assert windows.retry_after("10.0.39.15") is not None
