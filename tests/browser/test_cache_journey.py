"""The cache page in a real browser: a long system prompt marked with `cache_control` is sent
twice through the official `anthropic` SDK against the demo's simulated upstream (the first call
writes the cache, the second reads it), and /cache then shows exactly the credits the read's
receipt saved, today's read and written tokens, the key and model, and its chart. See
docs/dashboard.md."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from typing import Any

import anthropic

from browser_support import Browser
from creditgate_support import Gateway
from test_member_journeys import MODEL, sign_in
from test_money_journeys import chart_drawn


def cached_prompt() -> list[dict[str, Any]]:
    """A system prompt well over the 1,024-token cache minimum, new to this run."""
    nonce = uuid.uuid4().hex[:8]
    text = " ".join(nonce if i == 0 else f"w{i:07d}" for i in range(700))
    return [{"type": "text", "text": text, "cache_control": {"type": "ephemeral"}}]


def shown_saved(browser: Browser) -> Decimal:
    return Decimal(browser.find("[data-testid=cache-saved]").text.replace(",", ""))


def today_row(browser: Browser) -> list[str]:
    """The cells of the by-day table's last row (today, by default)."""
    row = browser.find("table[data-testid=cache-days] tbody tr:last-child")
    return [c.text for c in row.find_elements("css selector", "td")]


def test_cached_prompts_from_the_sdk_show_their_savings_on_the_cache_page(
    browser: Browser, demo: dict[str, Any], gw: Gateway
) -> None:
    sign_in(browser, demo)
    browser.open(demo["base_url"] + "/cache")
    saved_before = shown_saved(browser)
    reads_before = int(today_row(browser)[1].replace(",", ""))

    system = cached_prompt()
    client = anthropic.Anthropic(base_url=demo["base_url"], api_key=demo["api_key"], max_retries=0)
    receipts = []
    try:
        for question in ("Write the cache [[sim output_tokens=4]]", "Read it back [[sim output_tokens=4]]"):
            message = client.messages.create(
                model=MODEL, max_tokens=32, system=system, messages=[{"role": "user", "content": question}]
            )
            receipts.append((message.usage, gw.receipt(message._request_id)))
    finally:
        client.close()
    (write_usage, write_receipt), (read_usage, read_receipt) = receipts
    assert write_usage.cache_creation_input_tokens and not write_usage.cache_read_input_tokens, write_usage
    assert read_usage.cache_read_input_tokens == write_usage.cache_creation_input_tokens, read_usage
    saved = Decimal(write_receipt["cache_savings"]) + Decimal(read_receipt["cache_savings"])
    assert saved > 0, read_receipt

    browser.open(demo["base_url"] + "/cache")
    chart_drawn(browser, "chart-cache")
    assert shown_saved(browser) - saved_before == saved
    cells = today_row(browser)
    assert int(cells[1].replace(",", "")) - reads_before == read_usage.cache_read_input_tokens, cells
    assert not browser.all("[data-testid=cache-empty]")
    groups = browser.find("table[data-testid=cache-groups]").text
    assert MODEL in groups, groups
    # The chart carries the same day's saving as the table.
    spec = json.loads(browser.find("script#chart-cache").get_attribute("textContent"))
    series = {s["label"]: s["values"] for s in spec["series"]}
    assert Decimal(series["saved by reads"][-1]) == Decimal(cells[3].split()[0].replace(",", "")), spec
    browser.screenshot("cache")
