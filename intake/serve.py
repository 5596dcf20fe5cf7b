"""Serving the intake: the FastAPI app on uvicorn (uvloop and httptools when installed), wired
to the real service.

The purchase path spends most of its time waiting on the database from worker threads, so the
thread pool and the connection pool are sized together, and connections are not pinged before
each use (a round trip per transaction): a connection lost to a database restart fails one
request with 503, which the shop retries.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import uvicorn
from sqlalchemy import Engine, create_engine

from database.session import make_engine, make_sessionmaker, require_head
from intake.app import create_app
from intake.service import LifecycleService
from settings import Settings
from temporal_client import connect
from temporal_setup import require as require_search_attributes

DATABASE_THREADS = 32


def intake_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        return make_engine(url)
    return create_engine(url, pool_size=DATABASE_THREADS, max_overflow=0, pool_recycle=1800)


async def build_app(settings: Settings, *, dev: bool = False):  # type: ignore[no-untyped-def]
    """`dev` opens the template previews without a shop key (`loyalloop dev` only)."""
    from intake.auth import ShopKeys
    from intake.preview import make_preview_router
    from messages.render import TemplateRenderer

    client = await connect(settings)
    await require_search_attributes(client, settings.temporal_namespace)
    url = settings.database_url.get_secret_value()
    require_head(url)
    sessions = make_sessionmaker(intake_engine(url))
    service = LifecycleService(
        sessions, client, task_queue=settings.lifecycle_task_queue,
        email_task_queue=settings.email_task_queue, rules=settings.rules(),
    )
    preview = make_preview_router(
        lambda: TemplateRenderer(settings.templates_dir), public_url=settings.public_url,
        keys=ShopKeys(settings.shop_key_map()), dev=dev,
    )
    return create_app(settings, service, extra_routers=[preview])


async def serve(settings: Settings, host: str, port: int) -> None:
    try:
        settings.shop_key_map(), settings.shopify_secret_map()
    except ValueError as error:
        raise SystemExit(f"error: configuration: {error}") from None
    if not settings.shop_key_map() and not settings.shopify_secret_map():
        print("warning: LOYALLOOP_SHOP_KEYS is empty: every shop request will be refused (401)")
    asyncio.get_running_loop().set_default_executor(
        ThreadPoolExecutor(DATABASE_THREADS, thread_name_prefix="intake-db")
    )
    app = await build_app(settings)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="info",
                                           access_log=False))
    await server.serve()


def run(main: Coroutine[Any, Any, None]) -> None:
    """Run the intake on uvloop when it is installed (a faster event loop), else asyncio's."""
    loop_factory = None
    with contextlib.suppress(ImportError):
        import uvloop

        loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(main)
