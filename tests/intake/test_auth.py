"""Bearer keys per shop: no key, a wrong key or another shop's key reaches nothing."""

from __future__ import annotations

import pytest

from intake.store import workflow_id_for
from tests.intake.conftest import Intake, assert_refusal

BAD_AUTHORIZATIONS = [None, "", "Bearer", "Bearer ", "Basic abc", "bearer wrong", "Token x"]


@pytest.mark.parametrize("authorization", BAD_AUTHORIZATIONS)
async def test_missing_or_wrong_key_is_401_before_the_body_is_read(
    intake: Intake, authorization: str | None
):
    headers = {} if authorization is None else {"Authorization": authorization}
    before = await intake.written()
    for path, body in (("/v1/purchases", intake.purchase()), ("/v1/refunds", b"{"),
                       ("/v1/unsubscribes", {"shop_id": intake.shop_id, "customer_id": "c"})):
        response = await intake.http.post(path, json=body if not isinstance(body, bytes) else None,
                                          content=body if isinstance(body, bytes) else None,
                                          headers=headers)
        assert_refusal(response, 401, "Authorization")
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    timeline = await intake.http.get(f"/v1/lifecycles/{intake.shop_id}/1", headers=headers)
    assert_refusal(timeline, 401, "Authorization")
    assert await intake.written() == before


async def test_a_prefix_of_the_right_key_is_refused(intake: Intake):
    response = await intake.post(
        "/v1/purchases", intake.purchase(), Authorization=f"Bearer {intake.key[:-1]}"
    )
    assert_refusal(response, 401, "Authorization")


async def test_a_shop_cannot_touch_another_shops_orders(intake: Intake):
    await intake.post("/v1/purchases", intake.purchase("5001"))
    before = await intake.written()
    other = {"Authorization": f"Bearer {intake.other_key}"}

    purchase = await intake.post("/v1/purchases", intake.purchase("5002"), **other)
    assert_refusal(purchase, 403, "shop_id")
    refund = {"shop_id": intake.shop_id, "order_id": "5001", "amount": "1.00"}
    assert_refusal(await intake.post("/v1/refunds", refund, **other), 403, "shop_id")
    unsubscribe = {"shop_id": intake.shop_id, "customer_id": "c-42"}
    assert_refusal(await intake.post("/v1/unsubscribes", unsubscribe, **other), 403, "shop_id")
    timeline = await intake.http.get(f"/v1/lifecycles/{intake.shop_id}/5001", headers=other)
    assert_refusal(timeline, 403, "shop_id")
    assert await intake.written() == before


async def test_the_other_shop_reaches_its_own_orders(intake: Intake):
    event = intake.purchase("6001", shop_id=intake.other_shop)
    response = await intake.post(
        "/v1/purchases", event, Authorization=f"Bearer {intake.other_key}"
    )
    assert response.status_code == 202
    assert response.json()["workflow_id"] == workflow_id_for(intake.other_shop, "6001")
