"""`GET /r/{code}` on both databases: the exact redirect, the click recorded with nothing about
who clicked, unknown codes recording nothing, and the clicks in `credits summary`."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import inspect, select

from database.models import Creator, ReferralClick
from support import finance
from tests.public.conftest import SHOP_URL, Public, configure_shop

BROWSER = {"User-Agent": "Mozilla/5.0 (X11; Linux) Friend/1.0", "X-Forwarded-For": "203.0.113.9"}


def clicks(public: Public) -> list[ReferralClick]:
    with public.kit.sessions() as session:
        return list(session.scalars(select(ReferralClick).where(
            ReferralClick.shop_id == public.shop_id).order_by(ReferralClick.id)))


def advocate(public: Public, code: str) -> str:
    public.customer("c-advocate", referral_code=code)
    return code


async def test_a_customers_code_redirects_to_the_shop_with_ref_and_records_the_click(
    public: Public,
) -> None:
    code = advocate(public, f"R-{public.shop_id[-8:].upper()}")
    before = datetime.now(UTC)
    response = await public.http.get(f"/r/{code}", headers=BROWSER)

    assert response.status_code == 302
    assert response.headers["location"] == f"{SHOP_URL}&ref={code}"
    [click] = clicks(public)
    assert (click.code, click.shop_id, click.referrer_kind) == (code, public.shop_id, "customer")
    assert before <= click.clicked_at <= datetime.now(UTC)


async def test_nothing_about_who_clicked_is_kept(public: Public) -> None:
    code = advocate(public, f"R-{public.shop_id[-8:].upper()}")
    await public.http.get(f"/r/{code}", headers=BROWSER)
    with public.kit.sessions() as session:
        columns = {c["name"] for c in inspect(session.get_bind()).get_columns("referral_click")}
        [click] = clicks(public)
    assert columns == {"id", "code", "shop_id", "referrer_kind", "clicked_at"}
    stored = " ".join(str(getattr(click, column)) for column in columns)
    assert "203.0.113.9" not in stored and "Friend" not in stored and "testclient" not in stored


async def test_the_code_is_matched_in_any_case_and_the_stored_spelling_sent(
    public: Public,
) -> None:
    code = advocate(public, f"R-{public.shop_id[-8:].upper()}")
    response = await public.http.get(f"/r/{code.lower()}")
    assert response.headers["location"] == f"{SHOP_URL}&ref={code}"


async def test_the_parameter_name_is_the_shops_or_the_setting(public: Public) -> None:
    code = advocate(public, f"R-{public.shop_id[-8:].upper()}")
    configure_shop(public.kit.settings.templates_dir, public.shop_id,
                   url="https://store.example/?ref=stale", referral_param="friend")
    response = await public.http.get(f"/r/{code}")
    assert response.headers["location"] == f"https://store.example/?ref=stale&friend={code}"


async def test_a_parameter_already_in_the_shops_url_is_replaced(public: Public) -> None:
    code = advocate(public, f"R-{public.shop_id[-8:].upper()}")
    configure_shop(public.kit.settings.templates_dir, public.shop_id,
                   url="https://store.example/?ref=stale&lang=pt")
    response = await public.http.get(f"/r/{code}")
    assert response.headers["location"] == f"https://store.example/?lang=pt&ref={code}"


async def test_an_unknown_code_naming_a_shop_goes_there_and_records_nothing(
    public: Public,
) -> None:
    response = await public.http.get(f"/r/R-NOSUCHCODE?shop={public.shop_id}")
    assert response.status_code == 302 and response.headers["location"] == SHOP_URL
    assert clicks(public) == []


@pytest.mark.parametrize("path", ["/r/R-NOSUCHCODE", "/r/R-NOSUCHCODE?shop=not-configured",
                                  "/r/%00bad", f"/r/{'A' * 65}"])
async def test_an_unknown_code_without_a_known_shop_is_a_plain_404(
    public: Public, path: str
) -> None:
    before = public.counts()
    response = await public.http.get(path)
    assert response.status_code == 404 and "leads nowhere" in response.text
    assert public.counts() == before


async def test_a_creators_code_needs_the_shop_in_the_link(public: Public) -> None:
    code = f"MAYA{public.shop_id[-6:].upper()}"
    with public.kit.sessions.begin() as session:
        session.add(Creator(code=code, name="Maya", email="maya@creators.example"))
    assert (await public.http.get(f"/r/{code}")).status_code == 404
    assert clicks(public) == []

    response = await public.http.get(f"/r/{code}?shop={public.shop_id}")
    assert response.headers["location"] == f"{SHOP_URL}&ref={code}"
    assert [(c.code, c.referrer_kind) for c in clicks(public)] == [(code, "creator")]


async def test_clicks_per_code_show_in_the_credits_summary(public: Public) -> None:
    code = advocate(public, f"R-{public.shop_id[-8:].upper()}")
    for _ in range(3):
        await public.http.get(f"/r/{code}")
    with public.kit.sessions() as session:
        [row] = finance.summary(session, code.lower())
    assert (row["creator"], row["kind"], row["clicks"], row["credits"]) == (
        code, "customer", 3, [])
    assert "3 link click(s)" in finance.summary_table([row])
