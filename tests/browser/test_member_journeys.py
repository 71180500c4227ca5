"""A member's day on the dashboard, in a real browser: sign in (also by keyboard alone), watch
the overview's balance rise without a reload when the 10,000 pack is paid on the sandbox page,
and fall as the official `anthropic` SDK spends; the pages fit a phone's width."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import anthropic
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.keys import Keys

from browser_support import PHONE, Browser
from creditgate_support import Gateway

MODEL = "claude-haiku-4-5"


def sign_in(browser: Browser, demo: dict[str, Any]) -> None:
    browser.open(demo["base_url"] + "/sign-in")
    browser.find("#email").send_keys(demo["dashboard_email"])
    browser.find("#password").send_keys(demo["dashboard_password"] + Keys.ENTER)
    browser.find("[data-testid=balance]")


def shown_balance(browser: Browser) -> Decimal:
    return Decimal(browser.find("[data-testid=balance]").text.replace(",", ""))


def wait_balance(browser: Browser, expected: Decimal, timeout: float = 5.0) -> None:
    """Waits for the overview (still the same page: nothing reloads it) to show `expected`."""
    browser.wait_for(lambda: shown_balance(browser) == expected, f"the live balance {expected}", timeout)


def test_keyboard_alone_signs_in(browser: Browser, demo: dict[str, Any]) -> None:
    browser.open(demo["base_url"] + "/sign-in")
    browser.screenshot("sign-in")
    keys = ActionChains(browser.driver)
    # From the top of the page, Tab reaches the email field, then the password, then Enter.
    for _ in range(10):
        keys.send_keys(Keys.TAB).perform()
        if browser.driver.switch_to.active_element.get_attribute("id") == "email":
            break
    assert browser.driver.switch_to.active_element.get_attribute("id") == "email"
    keys.send_keys(demo["dashboard_email"], Keys.TAB, demo["dashboard_password"], Keys.ENTER).perform()
    browser.find("[data-testid=balance]")
    assert demo["dashboard_email"] in browser.find("[data-testid=signed-in-as]").text


def buy(browser: Browser, demo: dict[str, Any], plan_id: str, card: str) -> None:
    """Buy credits -> the plan's button -> the sandbox's card field."""
    browser.open(demo["base_url"] + "/buy")
    browser.find(f"form[data-testid=plan-{plan_id}] button[type=submit]").click()
    browser.wait_for(lambda: "/sandbox/checkout/" in browser.driver.current_url, "the sandbox checkout")
    browser.find("input[name=card]").send_keys(card + Keys.ENTER)


def test_buying_the_pack_raises_the_open_overview_without_a_reload(
    browser: Browser, demo: dict[str, Any], gw: Gateway
) -> None:
    sign_in(browser, demo)
    overview = browser.driver.current_window_handle
    start = gw.credits().available
    wait_balance(browser, start)
    # Buy in a second tab, as a customer would, while the overview stays open in the first.
    browser.driver.switch_to.new_window("tab")
    browser.open(demo["base_url"] + "/buy")
    browser.screenshot("buy")
    buy(browser, demo, "credits-10000", "4242 4242 4242 4242")
    # The sandbox sends the customer back to the orders, the new one credited.
    browser.wait_for(lambda: browser.driver.current_url.endswith("/orders"), "the orders page")
    status = browser.find("tr[data-testid^=order-] [data-testid=order-status]").text
    assert status.startswith("credited"), status
    browser.screenshot("orders")
    browser.driver.switch_to.window(overview)
    wait_balance(browser, start + Decimal("10000"))
    assert gw.credits().available == start + Decimal("10000")
    browser.screenshot("overview")


def test_a_declined_card_on_the_dashboard_says_why(browser: Browser, demo: dict[str, Any], gw: Gateway) -> None:
    sign_in(browser, demo)
    start = gw.credits().available
    buy(browser, demo, "credits-1000", "4000000000009995")
    browser.wait_text("Nothing was charged")
    browser.open(demo["base_url"] + "/orders")
    row = browser.find("tr[data-testid^=order-]")
    status = row.find_element("css selector", "[data-testid=order-status]").text
    assert status.startswith("failed") and "insufficient funds" in status.lower(), status
    assert gw.credits().available == start


def test_the_live_balance_follows_sdk_spending(browser: Browser, demo: dict[str, Any], gw: Gateway) -> None:
    sign_in(browser, demo)
    client = anthropic.Anthropic(base_url=demo["base_url"], api_key=demo["api_key"], max_retries=0)
    try:
        before = gw.credits().available
        wait_balance(browser, before)
        message = client.messages.create(
            model=MODEL, max_tokens=64, messages=[{"role": "user", "content": "Hello from the browser test"}]
        )
        receipt = gw.receipt(message._request_id)
    finally:
        client.close()
    charged = Decimal(receipt["charged"])
    assert charged > 0
    # Within a second or so of the charge, without a reload.
    wait_balance(browser, before - charged, timeout=3.0)


def test_a_phone_width_has_no_horizontal_scroll(demo: dict[str, Any]) -> None:
    phone = Browser(PHONE)
    try:
        for path in ("/sign-in",):
            phone.open(demo["base_url"] + path)
            phone.find("main")
            assert_fits(phone, path)
        sign_in(phone, demo)
        assert_fits(phone, "/")
        phone.screenshot("overview-phone")
        phone.assert_clean()
    finally:
        phone.close()


def assert_fits(browser: Browser, what: str) -> None:
    wide, view = browser.driver.execute_script(
        "return [document.documentElement.scrollWidth, window.innerWidth]"
    )
    assert wide <= view, f"{what} is {wide}px wide in a {view}px viewport: {browser.overflowing()}"
