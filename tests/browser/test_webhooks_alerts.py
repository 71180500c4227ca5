"""Webhooks and alerts in a real browser: the owner registers an endpoint pointing at a receiver
this test runs on 127.0.0.1 (the demo allows private webhook URLs), copies its signing secret
shown once, a declined purchase sends `order.failed`, the receiver answers 500 and the attempt
shows in the endpoint's delivery log, "Retry now" delivers it; the endpoint is deleted through
its confirm step. A low-balance threshold set on the alerts page is the setting the API
reports, and a refused one is shown beside its field."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from selenium.webdriver.common.keys import Keys

from browser_support import PHONE, Browser
from creditgate_support import Gateway
from test_member_journeys import assert_fits, sign_in
from test_sandbox_checkout import open_checkout

DECLINED = "4000000000000002"


class Receiver:
    """A webhook receiver on 127.0.0.1:0 that records each delivery and answers `status`."""

    def __init__(self) -> None:
        self.status = 500
        self.received: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the http.server name)
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with receiver.lock:
                    receiver.received.append(
                        {"signature": self.headers.get("creditgate-signature", ""), "body": body}
                    )
                    status = receiver.status
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/creditgate-events"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def deliveries(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.received)


@contextmanager
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    try:
        yield r
    finally:
        r.close()


def signed(secret: str, delivery: dict[str, Any]) -> bool:
    """The `creditgate-signature` checked as a receiver would: HMAC-SHA256 of `t.body`."""
    parts = dict(p.split("=", 1) for p in delivery["signature"].split(","))
    mac = hmac.new(secret.encode(), parts["t"].encode() + b"." + delivery["body"], hashlib.sha256)
    return hmac.compare_digest(mac.hexdigest(), parts["v1"])


def reload_until(browser: Browser, url: str, css: str, text: str) -> None:
    """Opens `url` again until an element `css` holds `text` (the log is read per page view)."""

    def shown() -> bool:
        browser.open(url)
        return any(text in e.text for e in browser.all(css))

    browser.wait_for(shown, f"{text!r} in {css} at {url}", timeout=20)


def test_a_webhook_is_registered_delivered_retried_and_deleted(
    browser: Browser, demo: dict[str, Any], gw: Gateway
) -> None:
    base = demo["base_url"]
    with receiver() as rx:
        sign_in(browser, demo)
        browser.find("nav a[href='/webhooks']").click()
        browser.find("[data-testid=endpoints-empty]")
        browser.find("#url").send_keys(rx.url)
        browser.find("input[name=events][value='order.failed']").click()
        browser.find("form[action='/webhooks'] button[type=submit]").click()
        secret = browser.find("[data-testid=secret]").text.strip()
        assert secret.startswith("whsec_"), secret
        assert browser.find("button[data-copy=new-secret]").is_displayed()
        row = browser.find("tr[data-endpoint]")
        assert rx.url in row.text and "order.failed" in row.text, row.text
        assert browser.find("[data-testid=endpoint-status]").text.startswith("enabled")
        endpoint_id = row.get_attribute("data-endpoint")
        browser.screenshot("webhooks")
        # Shown once: the list opened again has the endpoint but not its secret.
        browser.open(base + "/webhooks")
        browser.find(f"tr[data-endpoint='{endpoint_id}']")
        assert secret not in browser.driver.page_source

        # A declined card fails an order: the event goes to the receiver, which answers 500.
        opened = open_checkout(demo, gw, "credits-1000")
        paid = gw.http.post(opened["checkout_url"], json={"card": DECLINED})
        assert paid.status_code in (200, 402), paid.text
        order_id = opened["order"]["id"]
        got = browser.wait_for(lambda: rx.deliveries(), "a delivery at the receiver", timeout=20)
        assert signed(secret, got[0]), got[0]
        event = json.loads(got[0]["body"])
        assert event["type"] == "order.failed" and event["data"]["id"] == order_id, event

        page = f"{base}/webhooks/{endpoint_id}"
        reload_until(browser, page, "[data-testid=attempt-outcome]", "HTTP 500")
        delivery = browser.find("section[data-delivery]")
        assert "order.failed" in delivery.text, delivery.text
        assert browser.find("[data-testid=delivery-status]").text == "pending"

        rx.status = 200
        browser.find("[data-testid=retry]").click()
        browser.find("[data-testid=done]")
        browser.wait_for(
            lambda: browser.find("[data-testid=delivery-status]").text == "delivered", "delivered"
        )
        outcomes = [e.text for e in browser.all("[data-testid=attempt-outcome]")]
        assert outcomes == ["HTTP 500", "HTTP 200"], outcomes
        assert "(retry now)" in browser.all("[data-testid=attempt]")[1].text
        assert len(rx.deliveries()) == 2 and all(signed(secret, d) for d in rx.deliveries())
        browser.screenshot("webhook-deliveries")

        # Delete: the button is behind a confirm step (a disclosure, no script needed).
        confirm = browser.find("[data-testid=confirm-delete]")
        assert not confirm.is_displayed()
        browser.find("[data-testid=delete-step] summary").click()
        confirm.click()
        browser.find("[data-testid=done]")
        browser.find("[data-testid=endpoints-empty]")
        listed = gw.http.get(
            base + "/v1/organizations/webhooks", headers={"x-api-key": demo["organization_admin_key"]}
        )
        assert listed.json()["data"] == [], listed.text


def alerts_api(demo: dict[str, Any], gw: Gateway, settings: dict[str, Any] | None = None) -> dict[str, Any]:
    headers = {"x-api-key": demo["organization_admin_key"]}
    url = demo["base_url"] + "/v1/billing/alerts"
    r = gw.http.put(url, json=settings, headers=headers) if settings else gw.http.get(url, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


def test_a_low_balance_threshold_is_saved_and_a_bad_one_refused_beside_its_field(
    browser: Browser, demo: dict[str, Any], gw: Gateway
) -> None:
    try:
        sign_in(browser, demo)
        browser.find("nav a[href='/alerts']").click()
        field = browser.find("#low_balance_thresholds")
        field.clear()
        field.send_keys("-5" + Keys.ENTER)
        error = browser.find("#low_balance_thresholds-error")
        described = browser.find("#low_balance_thresholds").get_attribute("aria-describedby")
        assert "low_balance_thresholds-error" in described, error.text
        assert browser.find("#low_balance_thresholds").get_attribute("value") == "-5"
        # The refusal is answered 400, which Chromium logs: expected here, and only here.
        browser.collect()
        browser.console = [e for e in browser.console if "status of 400" not in e["message"]]

        field = browser.find("#low_balance_thresholds")
        field.clear()
        field.send_keys("50, 250")
        browser.find("#emails").send_keys("oncall@demo.example")
        browser.find("form[action='/alerts'] button[type=submit]").click()
        browser.find("[data-testid=alerts-saved]")
        rows = [r.text for r in browser.all("[data-testid=threshold]")]
        # Highest first, each with its USD value (1 credit = $0.005 in the demo).
        assert rows == ["250 $1.25", "50 $0.25"], rows
        assert "oncall@demo.example" in browser.find("[data-testid=emails]").text
        saved = alerts_api(demo, gw)
        assert saved["low_balance_thresholds"] == ["250", "50"], saved
        assert saved["emails"] == ["oncall@demo.example"], saved
        browser.screenshot("alerts")
    finally:
        # Leave the shared demo without alerts for the other tests.
        alerts_api(demo, gw, {"low_balance_thresholds": [], "emails": []})


def test_the_webhooks_and_alerts_pages_fit_a_phone(demo: dict[str, Any]) -> None:
    phone = Browser(PHONE)
    try:
        sign_in(phone, demo)
        for path in ("/webhooks", "/alerts"):
            phone.open(demo["base_url"] + path)
            phone.find("main h1")
            assert_fits(phone, path)
        phone.assert_clean()
    finally:
        phone.close()
