"""The shop-facing HTTP intake: purchases, refunds, unsubscribes, a lifecycle's timeline and the
Shopify `orders/create` webhook.

Bodies are read raw and validated by the event schemas, so every refusal has the same JSON shape
and names the field; an event is validated and its shop checked before anything is written.
Infrastructure trouble (Temporal or the database down) answers 503, so the shop retries.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import Iterable
from datetime import timedelta
from typing import Any, TypeVar

from fastapi import APIRouter, FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from temporalio.service import RPCError

from intake.auth import ShopKeys, require_shop, verify_shopify, verify_shopify_domain
from intake.errors import EventRejected
from intake.limits import BodyLimit
from intake.public import make_public_router
from intake.ratelimit import AuthFailureLimit
from intake.responses import error_body, error_response
from intake.sendgrid_webhook import sendgrid_router
from intake.service import LifecycleService
from intake.shopify import purchase_from_order
from settings import Settings
from shop_events.schemas import ID, PurchaseEvent, RefundEvent, UnsubscribeEvent, describe_errors
from temporal_setup import SETUP_COMMAND, UNMAPPED

Event = TypeVar("Event", bound=BaseModel)
log = logging.getLogger("loyalloop.intake")
SHOPIFY_TOPIC = "orders/create"
TEMPORAL_UNREACHABLE = "Failed client connect"  # how a lazy client reports a server it cannot reach


def create_app(
    settings: Settings, service: LifecycleService, extra_routers: Iterable[APIRouter] = ()
) -> FastAPI:
    keys = ShopKeys(settings.shop_key_map())
    shopify_secrets = settings.shopify_secret_map()
    shopify_domains = settings.shopify_domain_map()
    no_ones_secret = secrets.token_urlsafe(32)  # what an unknown shop's webhook is checked with
    app = FastAPI(title="Loyalloop intake", version="1", redoc_url=None, redirect_slashes=False)
    app.add_middleware(BodyLimit)
    app.add_middleware(AuthFailureLimit)  # added last, runs first: a blocked caller reaches nothing
    _error_handlers(app, settings)

    @app.post("/v1/purchases", openapi_extra=_body(PurchaseEvent))
    async def purchases(request: Request) -> JSONResponse:
        shop = keys.shop_for(request.headers.get("authorization"))
        event = parse(PurchaseEvent, await request.body())
        require_shop(shop, event.shop_id)
        return await _accept(service, event)

    @app.post("/v1/refunds", openapi_extra=_body(RefundEvent))
    async def refunds(request: Request) -> JSONResponse:
        shop = keys.shop_for(request.headers.get("authorization"))
        event = parse(RefundEvent, await request.body())
        require_shop(shop, event.shop_id)
        result = await service.accept_refund(event)
        return JSONResponse(
            {"workflow_id": result["workflow_id"], "refund_id": result["refund_id"]},
            202 if result["created"] else 200,
        )

    @app.post("/v1/unsubscribes", openapi_extra=_body(UnsubscribeEvent))
    async def unsubscribes(request: Request) -> JSONResponse:
        shop = keys.shop_for(request.headers.get("authorization"))
        event = parse(UnsubscribeEvent, await request.body())
        require_shop(shop, event.shop_id)
        return JSONResponse(await service.accept_unsubscribe(event))

    @app.get("/v1/lifecycles/{shop_id}/{order_id}")
    async def lifecycle(shop_id: str, order_id: str, request: Request) -> JSONResponse:
        require_shop(keys.shop_for(request.headers.get("authorization")), shop_id)
        # no order id can hold what no id may (a NUL is a driver error on PostgreSQL)
        timeline = (await service.lifecycle(shop_id, order_id, settings.temporal_ui_url)
                    if ID.match(order_id) else None)
        if timeline is None:
            raise EventRejected(404, "order_id", f"no purchase {order_id!r} for this shop")
        return JSONResponse(jsonable_encoder(timeline))

    @app.post("/webhooks/shopify/{shop_id}/orders-create")
    async def shopify_order(shop_id: str, request: Request) -> JSONResponse:
        """A shop with no Shopify secret is checked against a secret no one holds, so it is
        answered as a wrong signature is, in the same time: the answer tells no one which
        shops exist."""
        body = await request.body()
        secret = shopify_secrets.get(shop_id, no_ones_secret)
        verify_shopify(secret, body, request.headers.get("x-shopify-hmac-sha256"))
        verify_shopify_domain(
            shopify_domains.get(shop_id), request.headers.get("x-shopify-shop-domain")
        )
        topic = request.headers.get("x-shopify-topic")
        if topic is not None and topic != SHOPIFY_TOPIC:
            raise EventRejected(422, "X-Shopify-Topic", f"must be {SHOPIFY_TOPIC!r} here")
        event = purchase_from_order(shop_id, parse_json(body))
        if event is None:
            return JSONResponse({"workflow_id": None, "skipped": "the order has no customer"})
        return await _accept(service, event)

    @app.get("/healthz")
    async def healthz(request: Request) -> JSONResponse:
        """Public, for load balancers: up (200) or unable to take purchases (503), nothing
        more. A shop's key also names what is down; a wrong key is a 401 like anywhere."""
        authorization = request.headers.get("authorization")
        shop = keys.shop_for(authorization) if authorization else None
        down = await _health(service)
        body: dict[str, Any] = {"status": "unavailable" if down else "ok"}
        if shop is not None:
            body["problems"] = [{"field": name, "problem": "is not answering"} for name in down]
        return JSONResponse(body, 503 if down else 200)

    app.include_router(make_public_router(settings, service))
    if settings.sendgrid_webhook_key is not None:
        key = settings.sendgrid_webhook_key.get_secret_value()
        app.include_router(sendgrid_router(key, service.sessions))
    for router in extra_routers:
        app.include_router(router)
    return app


async def _accept(service: LifecycleService, event: PurchaseEvent) -> JSONResponse:
    workflow_id, created = await service.accept_purchase(event)
    return JSONResponse({"workflow_id": workflow_id}, 202 if created else 200)


def parse(model: type[Event], body: bytes) -> Event:
    try:
        return model.model_validate_json(body)
    except ValidationError as error:
        invalid_json = [e for e in error.errors(include_url=False) if e["type"] == "json_invalid"]
        if invalid_json:
            problem = f"is not valid JSON: {invalid_json[0]['msg']}"
            raise EventRejected(400, "body", problem) from None
        raise EventRejected.invalid(describe_errors(error)) from None


def parse_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except UnicodeDecodeError:
        raise EventRejected(400, "body", "is not UTF-8 text") from None
    except (ValueError, RecursionError) as error:
        problem = str(error) if isinstance(error, ValueError) else "nested too deeply"
        raise EventRejected(400, "body", f"is not valid JSON: {problem}") from None


async def _health(service: LifecycleService) -> list[str]:
    """The dependencies that do not answer (a purchase needs both). Their errors go to the log
    only: a driver's message names hosts, ports, users and databases."""
    def database() -> None:
        with service.sessions() as session:
            session.execute(text("SELECT 1"))

    down = []
    try:
        await asyncio.to_thread(database)
    except DBAPIError as error:
        down.append("database")
        log.warning("health: the database is not answering: %s", _first_line(error.orig))
    try:
        await service.client.service_client.check_health(timeout=timedelta(seconds=2))
    except (RPCError, RuntimeError) as error:
        down.append("temporal")
        log.warning("health: Temporal is not answering: %s", _first_line(error))
    return down


def _first_line(error: BaseException) -> str:
    return str(error).strip().partition("\n")[0][:300]


def _body(model: type[BaseModel]) -> dict[str, Any]:
    """The event schema in the OpenAPI document, since the body is read raw."""
    schema = model.model_json_schema()  # nested models stay in its own $defs
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def _error_handlers(app: FastAPI, settings: Settings) -> None:
    async def rejected(_: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, EventRejected)
        return error_response(error)

    async def request_invalid(_: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, RequestValidationError)
        problems = [{"field": ".".join(str(p) for p in e["loc"]), "problem": e["msg"]}
                    for e in error.errors()]
        return JSONResponse(error_body(422, problems), 422)

    async def http_error(_: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, HTTPException)
        field = "path" if error.status_code in (404, 405) else "body"
        body = error_body(error.status_code, [{"field": field, "problem": str(error.detail)}])
        return JSONResponse(body, error.status_code, headers=error.headers)

    async def conflict(_: Request, error: Exception) -> JSONResponse:
        """A unique key the event ran into that no check named first: the event conflicts with
        something stored, and retrying it would only conflict again."""
        log.warning("answered 409: %s", type(getattr(error, "orig", error)).__name__)
        problem = "conflicts with a record already stored; nothing was written"
        return JSONResponse(error_body(409, [{"field": "body", "problem": problem}]), 409)

    async def unavailable(_: Request, error: Exception) -> JSONResponse:
        if isinstance(error, IntegrityError):
            return await conflict(_, error)
        if isinstance(error, RuntimeError) and not str(error).startswith(TEMPORAL_UNREACHABLE):
            raise error
        problem = "the database" if isinstance(error, DBAPIError) else "Temporal"
        # the driver's message only: SQLAlchemy's adds the statement's parameters (emails)
        detail = str(error.orig if isinstance(error, DBAPIError) else error).strip()
        log.warning("answered 503: %s is not answering: %s", problem, detail.partition("\n")[0])
        says = f"{problem} is not answering"
        if isinstance(error, RPCError) and UNMAPPED in detail:
            # Temporal answered: the namespace lacks a setup step an operator can do.
            says = (f"Temporal namespace {settings.temporal_namespace} lacks Loyalloop's search "
                    f"attributes: an operator runs `{SETUP_COMMAND}`")
        body = error_body(503, [{"field": "service", "problem": says}])
        return JSONResponse(body, 503, headers={"Retry-After": "5"})

    app.add_exception_handler(EventRejected, rejected)
    app.add_exception_handler(RequestValidationError, request_invalid)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RPCError, unavailable)
    app.add_exception_handler(DBAPIError, unavailable)
    app.add_exception_handler(RuntimeError, unavailable)
