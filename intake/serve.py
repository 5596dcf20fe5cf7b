"""Serving the intake: the FastAPI app on uvicorn, wired to the real service."""

from __future__ import annotations

import uvicorn

from database.session import make_engine, make_sessionmaker, upgrade
from intake.app import create_app
from intake.service import LifecycleService
from settings import Settings
from temporal_client import connect


async def build_app(settings: Settings):  # type: ignore[no-untyped-def]
    from intake.preview import make_preview_router
    from messages.render import TemplateRenderer

    upgrade(settings.database_url)
    sessions = make_sessionmaker(make_engine(settings.database_url))
    client = await connect(settings)
    service = LifecycleService(
        sessions, client, task_queue=settings.lifecycle_task_queue,
        email_task_queue=settings.email_task_queue, rules=settings.rules(),
    )
    preview = make_preview_router(
        lambda: TemplateRenderer(settings.templates_dir), public_url=settings.public_url
    )
    return create_app(settings, service, extra_routers=[preview])


async def serve(settings: Settings, host: str, port: int) -> None:
    app = await build_app(settings)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="info",
                                           access_log=False))
    await server.serve()
