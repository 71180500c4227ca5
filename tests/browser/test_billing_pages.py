"""The statement and invoices pages in a real browser: spend from the SDK shows in the month's
statement with the balance after each line, the closing balance the statement route answers and
its CSV link; putting the demo organization on a credit line (the operator's route) brings
Invoices into the navigation, with the line and what to expect before the first invoice. See
docs/dashboard.md."""

from __future__ import annotations

from typing import Any

from browser_support import Browser
from creditgate_support import Gateway
from test_member_journeys import sign_in
from test_money_journeys import spend


def statement(demo: dict[str, Any], gw: Gateway) -> dict[str, Any]:
    r = gw.http.get(
        demo["base_url"] + "/v1/billing/statement",
        headers={"x-api-key": demo["organization_admin_key"]},
    )
    assert r.status_code == 200, f"statement: {r.status_code} {r.text}"
    return r.json()


def set_line(demo: dict[str, Any], gw: Gateway, line: dict[str, Any]) -> None:
    r = gw.http.post(
        f"{demo['base_url']}/admin/v1/organizations/{demo['organization_id']}",
        json=line,
        headers={"authorization": f"Bearer {demo['admin_key']}"},
    )
    assert r.status_code == 200, f"credit line: {r.status_code} {r.text}"


def test_the_statement_shows_the_month_with_its_running_balance(
    browser: Browser, demo: dict[str, Any], gw: Gateway
) -> None:
    spend(demo, gw, "Something for the statement")
    sign_in(browser, demo)
    browser.find('nav a[href="/statement"]').click()
    browser.find("table[data-testid=statement]")
    api = statement(demo, gw)
    shown = [c.text.split()[0] for c in browser.all("[data-testid=balance-after]")]
    assert shown == [line["balance_after"] for line in api["lines"]], (shown, api)
    assert browser.find("[data-testid=closing-balance]").text.split()[0] == api["closing_balance"]
    assert "Usage" in browser.find("table[data-testid=statement]").text
    csv = browser.find("[data-testid=statement-csv]").get_attribute("href")
    assert "/v1/billing/statement?" in csv and "format=csv" in csv, csv
    browser.screenshot("statement")


def test_a_credit_line_brings_invoices_into_the_navigation(
    browser: Browser, demo: dict[str, Any], gw: Gateway
) -> None:
    sign_in(browser, demo)
    assert not browser.all('nav a[href="/invoices"]'), "a prepaid organization without invoices"
    set_line(demo, gw, {"billing_mode": "invoiced", "credit_limit": "500"})
    try:
        browser.open(demo["base_url"] + "/")
        browser.find('nav a[href="/invoices"]').click()
        browser.wait_text("Credit line")
        assert browser.find("[data-testid=credit-limit]").text == "500"
        assert "drafted after the first month" in browser.find("[data-testid=invoices-empty]").text
        browser.screenshot("invoices")
    finally:
        set_line(demo, gw, {"billing_mode": "prepaid"})
    browser.open(demo["base_url"] + "/")
    browser.find("[data-testid=balance]")
    assert not browser.all('nav a[href="/invoices"]')
