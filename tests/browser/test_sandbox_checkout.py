"""The sandbox provider's checkout page in a real browser: an order opened through
`POST /v1/billing/checkout` is paid by typing `4242…` into the page, and the order is credited
exactly once; a declined card shows the bank's reason and adds nothing."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from browser_support import Browser
from creditgate_support import Gateway


def open_checkout(demo: dict[str, Any], gw: Gateway, plan_id: str) -> dict[str, Any]:
    """An order for `plan_id` through the billing API with the demo's organization admin key."""
    r = gw.http.post(
        demo["base_url"] + "/v1/billing/checkout",
        json={"plan_id": plan_id},
        headers={"x-api-key": demo["organization_admin_key"]},
    )
    assert r.status_code == 200, f"checkout: {r.status_code} {r.text}"
    return r.json()


def order(demo: dict[str, Any], gw: Gateway, order_id: str) -> dict[str, Any]:
    r = gw.http.get(
        f"{demo['base_url']}/v1/billing/orders/{order_id}",
        headers={"x-api-key": demo["organization_admin_key"]},
    )
    assert r.status_code == 200, f"order: {r.status_code} {r.text}"
    return r.json()


def pay_in_page(browser: Browser, url: str, card: str) -> None:
    browser.open(url)
    field = browser.find("input[name=card]")
    field.send_keys(card)
    browser.find("form button[type=submit]").click()


def test_the_sandbox_page_pays_the_10000_pack_once(browser: Browser, demo: dict[str, Any], gw: Gateway) -> None:
    opened = open_checkout(demo, gw, "credits-10000")
    before = gw.credits()
    pay_in_page(browser, opened["checkout_url"], "4242 4242 4242 4242")
    browser.wait_text("credited")
    browser.screenshot("sandbox-checkout-paid")
    paid = order(demo, gw, opened["order"]["id"])
    assert paid["status"] == "credited", paid
    assert gw.credits().balance - before.balance == Decimal("10000")
    # The page now shows the order's state, with no card field to pay twice.
    browser.open(opened["checkout_url"])
    browser.wait_text("credited")
    assert not browser.all("input[name=card]")
    assert gw.credits().balance - before.balance == Decimal("10000")


def test_a_declined_card_shows_the_reason_and_adds_nothing(
    browser: Browser, demo: dict[str, Any], gw: Gateway
) -> None:
    opened = open_checkout(demo, gw, "credits-1000")
    before = gw.credits()
    browser.open(opened["checkout_url"])
    browser.screenshot("sandbox-checkout")
    pay_in_page(browser, opened["checkout_url"], "4000000000000002")
    browser.wait_text("Your card was declined.")
    reason = browser.find(".failure").text
    assert "Nothing was charged" in reason, reason
    failed = order(demo, gw, opened["order"]["id"])
    assert failed["status"] == "failed" and failed["failure"]["code"] == "card_declined", failed
    assert gw.credits().balance == before.balance


def test_a_number_that_is_no_test_card_is_refused_beside_the_field(
    browser: Browser, demo: dict[str, Any], gw: Gateway
) -> None:
    opened = open_checkout(demo, gw, "credits-1000")
    before = gw.credits()
    for wrong in ("4111 1111 1111 1111", "12ab"):
        pay_in_page(browser, opened["checkout_url"], wrong)
        reason = browser.find("#card-error")
        assert "test cards" in reason.text, reason.text
        # A page, not the API's JSON, and the reason is the field's description.
        assert '"error"' not in browser.text(), browser.text()
        field = browser.find("input[name=card]")
        assert field.get_attribute("aria-describedby") == "card-error"
        assert field.get_attribute("aria-invalid") == "true"
        assert field.get_attribute("value") == wrong
        # The refusal is answered 400, which Chromium logs: expected here, and only here.
        browser.collect()
        browser.console = [e for e in browser.console if "status of 400" not in e["message"]]
    still = order(demo, gw, opened["order"]["id"])
    assert still["status"] == "open", still
    assert gw.credits().balance == before.balance
    # The same form then pays with a test card.
    field = browser.find("input[name=card]")
    field.clear()
    field.send_keys("4242 4242 4242 4242")
    browser.find("form button[type=submit]").click()
    browser.wait_text("credited")
    assert gw.credits().balance - before.balance == Decimal("1000")
