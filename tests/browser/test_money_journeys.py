"""The money pages in a real browser: spend from the official `anthropic` SDK shows in the live
balance and, after a reload, in the usage chart and its table; a card is saved through the
sandbox's page and removed; auto-reload is turned on with the recommended values in one click;
the pages fit a phone's width. See docs/dashboard.md."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import anthropic
from selenium.webdriver.common.keys import Keys

from browser_support import PHONE, Browser
from creditgate_support import Gateway
from test_member_journeys import MODEL, assert_fits, sign_in, wait_balance


def spend(demo: dict[str, Any], gw: Gateway, text: str) -> Decimal:
    """One message through the official SDK; answers what its receipt charged."""
    client = anthropic.Anthropic(base_url=demo["base_url"], api_key=demo["api_key"], max_retries=0)
    try:
        message = client.messages.create(
            model=MODEL, max_tokens=64, messages=[{"role": "user", "content": text}]
        )
        receipt = gw.receipt(message._request_id)
    finally:
        client.close()
    charged = Decimal(receipt["charged"])
    assert charged > 0, receipt
    return charged


def usage_today(browser: Browser) -> tuple[Decimal, Decimal]:
    """The usage page's last day (today, by default): (the table's credits, the chart's sum)."""
    cell = browser.find("table[data-testid=usage-days] tbody tr:last-child [data-testid=day-credits]")
    table = Decimal(cell.text.split()[0].replace(",", ""))
    spec = json.loads(browser.find("script#chart-days").get_attribute("textContent"))
    chart = sum((Decimal(s["values"][-1]) for s in spec["series"]), Decimal(0))
    return table, chart


def chart_drawn(browser: Browser, chart: str) -> None:
    browser.wait_for(
        lambda: browser.all(f"[data-chart={chart}][data-drawn] canvas"), f"the {chart} chart drawn"
    )


def test_sdk_spend_shows_in_the_live_balance_and_the_usage_chart(
    browser: Browser, demo: dict[str, Any], gw: Gateway
) -> None:
    sign_in(browser, demo)
    overview = browser.driver.current_window_handle
    before = gw.credits().available
    wait_balance(browser, before)
    browser.driver.switch_to.new_window("tab")
    browser.open(demo["base_url"] + "/usage")
    chart_drawn(browser, "chart-days")
    table_before, chart_before = usage_today(browser)
    assert table_before == chart_before

    charged = spend(demo, gw, "Hello from the usage journey")
    browser.driver.switch_to.window(overview)
    wait_balance(browser, before - charged, timeout=3.0)

    browser.driver.switch_to.window(browser.driver.window_handles[-1])
    browser.driver.refresh()
    chart_drawn(browser, "chart-days")
    chart_drawn(browser, "chart-models")
    chart_drawn(browser, "chart-keys")
    table_after, chart_after = usage_today(browser)
    assert table_after - table_before == charged, (table_before, table_after, charged)
    assert chart_after - chart_before == charged, (chart_before, chart_after, charged)
    assert MODEL in browser.find("table[data-testid=usage-models]").text
    browser.screenshot("usage")


def add_card(browser: Browser, demo: dict[str, Any], card: str) -> str:
    """Payment methods → Add a card → the sandbox's form → back; answers the new card's id."""
    browser.open(demo["base_url"] + "/payment-methods")
    before = {row.get_attribute("data-card") for row in browser.all("tr[data-card]")}
    browser.find("form[action='/payment-methods'] button[type=submit]").click()
    browser.wait_for(lambda: "/sandbox/setup/" in browser.driver.current_url, "the sandbox's card page")
    browser.find("input[name=card]").send_keys(card + Keys.ENTER)
    browser.wait_text("Saved:")
    browser.find("a[href='/payment-methods']").click()
    browser.wait_for(
        lambda: {r.get_attribute("data-card") for r in browser.all("tr[data-card]")} - before,
        "the new card in the list",
    )
    after = {row.get_attribute("data-card") for row in browser.all("tr[data-card]")}
    (new,) = after - before
    return new


def test_a_card_is_saved_through_the_sandbox_and_removed(
    browser: Browser, demo: dict[str, Any], gw: Gateway
) -> None:
    sign_in(browser, demo)
    card = add_card(browser, demo, "4242 4242 4242 4242")
    row = browser.find(f"tr[data-card='{card}']")
    assert "4242" in row.text and "12/2034" in row.text, row.text
    browser.screenshot("payment-methods")
    listed = gw.http.get(
        demo["base_url"] + "/v1/billing/payment_methods",
        headers={"x-api-key": demo["organization_admin_key"]},
    ).json()["data"]
    assert [m["status"] for m in listed if m["id"] == card] == ["active"]

    row.find_element("css selector", "button[type=submit]").click()
    browser.find("[data-testid=card-removed]")
    assert not browser.all(f"tr[data-card='{card}']")
    listed = gw.http.get(
        demo["base_url"] + "/v1/billing/payment_methods",
        headers={"x-api-key": demo["organization_admin_key"]},
    ).json()["data"]
    assert card not in [m["id"] for m in listed], listed


def auto_reload(demo: dict[str, Any], gw: Gateway) -> dict[str, Any]:
    r = gw.http.get(
        demo["base_url"] + "/v1/billing/auto_reload",
        headers={"x-api-key": demo["organization_admin_key"]},
    )
    assert r.status_code == 200, r.text
    return r.json()


def test_auto_reload_turns_on_with_the_recommended_values(
    browser: Browser, demo: dict[str, Any], gw: Gateway
) -> None:
    # The recommendation comes from recent spend; auto-reload charges a saved card.
    spend(demo, gw, "Some usage to recommend from")
    sign_in(browser, demo)
    card = add_card(browser, demo, "4242 4242 4242 4242")
    browser.open(demo["base_url"] + "/auto-reload")
    recommended = auto_reload(demo, gw)["recommendation"]
    assert recommended is not None
    shown = browser.find("[data-testid=recommendation]").text
    assert recommended["threshold"] in shown and recommended["amount"] in shown, (shown, recommended)
    browser.find("[data-testid=use-recommended]").click()
    browser.find("[data-testid=reload-saved]")
    assert browser.find("[data-testid=reload-status]").text == "active"
    browser.screenshot("auto-reload")
    saved = auto_reload(demo, gw)
    assert saved["status"] == "active" and saved["threshold"] == recommended["threshold"], saved
    assert saved["plan_id"] == recommended["plan_id"] and saved["payment_method_id"] == card, saved

    # Off again through the same form (the demo's other journeys count credits exactly).
    box = browser.find("input[name=enabled][type=checkbox]")
    assert box.is_selected()
    box.click()
    browser.submit(browser.find("form[aria-labelledby=settings] button[type=submit]").click)
    browser.find("[data-testid=reload-saved]")
    assert browser.find("[data-testid=reload-status]").text == "off"
    assert auto_reload(demo, gw)["status"] == "off"


def test_the_money_pages_fit_a_phone(demo: dict[str, Any]) -> None:
    phone = Browser(PHONE)
    try:
        sign_in(phone, demo)
        for path in ("/usage", "/cache", "/auto-reload", "/payment-methods", "/statement", "/invoices"):
            phone.open(demo["base_url"] + path)
            phone.find("main h1")
            assert_fits(phone, path)
        phone.open(demo["base_url"] + "/usage")
        chart_drawn(phone, "chart-days")
        assert_fits(phone, "/usage with its charts")
        phone.screenshot("usage-phone")
        phone.assert_clean()
    finally:
        phone.close()
