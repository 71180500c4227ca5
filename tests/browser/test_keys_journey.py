"""Keys on the dashboard, in a real browser: a new key's secret is shown once (and works), and a
spend limit set on the key's page is the limit the API reports."""

from __future__ import annotations

from typing import Any

from selenium.webdriver.common.keys import Keys

from browser_support import Browser
from creditgate_support import Gateway
from test_member_journeys import sign_in


def test_a_new_key_shows_its_secret_once_and_takes_a_spend_limit(
    browser: Browser, demo: dict[str, Any], gw: Gateway
) -> None:
    sign_in(browser, demo)
    browser.open(demo["base_url"] + "/keys")
    browser.find("#name").send_keys("browser key")
    browser.find("#spend_monthly").send_keys("250" + Keys.ENTER)
    secret = browser.find("[data-testid=secret]").text.strip()
    assert secret.startswith("sk-cg-"), secret
    browser.screenshot("keys")
    key = gw.get("/v1/key", secret)
    assert key.status_code == 200, key.text
    key_id = key.json()["id"]
    # Shown once: the list, opened again, has the key but not its secret.
    browser.open(demo["base_url"] + "/keys")
    browser.find(f"tr[data-testid=key-{key_id}]")
    assert secret not in browser.driver.page_source

    browser.open(f"{demo['base_url']}/keys/{key_id}")
    daily = browser.find("#spend_daily")
    daily.clear()
    daily.send_keys("12.5" + Keys.ENTER)
    browser.find("[data-testid=limits-saved]")
    # The gateway reads keys through its key cache: the new limit shows within its TTL.
    def spend() -> dict[str, Any]:
        return gw.get("/v1/key", secret).json()["limits"]["spend"]

    browser.wait_for(lambda: spend().get("daily") == "12.5", "the daily limit in /v1/key")
    assert spend()["monthly"] == "250", spend()
