"""Buying credits on the demo's sandbox: the demo opens a checkout for the 10,000-credit pack; a
card that needs the bank's confirmation changes nothing until confirmed elsewhere, `4242…` pays,
the balance rises by exactly 10,000, paying again changes nothing, and the receipt is readable."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from creditgate_support import Gateway, httpx


def pay(checkout_url: str, card: str) -> dict[str, Any]:
    r = httpx.post(checkout_url, json={"card": card}, timeout=30.0)
    assert r.status_code == 200, f"POST {checkout_url}: {r.status_code} {r.text}"
    return r.json()


def test_the_sandbox_sells_the_10000_pack_once(demo: dict[str, Any], gw: Gateway) -> None:
    url = demo["checkout_url"]
    assert url == f"{demo['base_url']}/sandbox/checkout/{demo['order_id']}"
    page = httpx.get(url, timeout=30.0)
    assert page.status_code == 200 and "4242" in page.text

    before = gw.credits()
    waiting = pay(url, "4000002760003184")
    assert waiting.get("next_action") == "confirm"
    assert waiting["order"]["status"] == "open"
    assert gw.credits().balance == before.balance

    paid = pay(url, "4242 4242 4242 4242")
    order = paid["order"]
    assert order["status"] == "credited", order
    assert (order["credits"], order["amount_cents"], order["currency"]) == ("10000", 5000, "usd")
    after = gw.credits()
    assert after.balance - before.balance == Decimal("10000")
    assert after.available - before.available == Decimal("10000")

    again = pay(url, "4242424242424242")
    assert again["order"]["status"] == "credited"
    assert gw.credits().balance == after.balance

    receipt = httpx.get(order["receipt_url"], timeout=30.0)
    assert receipt.status_code == 200
    for text in (order["receipt_number"], "10000 credit", "$50.00", "visa •••• 4242"):
        assert text in receipt.text, f"{text!r} missing from the receipt"
