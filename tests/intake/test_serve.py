"""The intake on a real uvicorn server over TCP: what the in-process transport cannot show
(the body limit against a real HTTP parser and chunked uploads, startup configuration)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import httpx
import pytest
import uvicorn
from pydantic import SecretStr

from intake.limits import MAX_BODY_BYTES
from intake.serve import serve
from tests.intake.conftest import Intake, assert_refusal, make_intake_app


@pytest.fixture
async def served(intake: Intake) -> AsyncIterator[httpx.AsyncClient]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    app = make_intake_app(intake.kit, shop_keys=f"{intake.shop_id}:{intake.key}")
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=intake.auth) as http:
        yield http
    server.should_exit = True
    await task


async def test_purchase_and_health_over_tcp(intake: Intake, served: httpx.AsyncClient):
    assert (await served.get("/healthz")).status_code == 200
    response = await served.post("/v1/purchases", json=intake.purchase("9001"))
    assert response.status_code == 202, response.text


async def test_oversized_bodies_are_413_over_tcp(intake: Intake, served: httpx.AsyncClient):
    before = await intake.written()
    declared = await served.post("/v1/purchases", content=b"x" * (MAX_BODY_BYTES + 1))
    assert_refusal(declared, 413, "body")

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(MAX_BODY_BYTES // 4096 + 2):
            yield b" " * 4096

    streamed = await served.post("/v1/purchases", content=chunks())
    assert streamed.request.headers["transfer-encoding"] == "chunked"
    assert_refusal(streamed, 413, "body")
    assert await intake.written() == before


async def test_malformed_shop_keys_stop_the_server_with_one_line(intake: Intake):
    settings = intake.kit.settings.model_copy(
        update={"shop_keys": SecretStr("acme-without-a-secret")}
    )
    with pytest.raises(SystemExit) as stopped:
        await serve(settings, "127.0.0.1", 0)
    assert str(stopped.value).startswith("error: configuration: LOYALLOOP_SHOP_KEYS")
