"""Reports read with the official SDK: the SDK's own report pagination (`SyncReportPageCursor`,
following `has_more`/`next_page`) over `usage_report/messages` and `cost_report`, each bucket
validated by the SDK's admin report types (`BetaAnalyticsUsageReportTimeBucket`,
`BetaAnalyticsCostReportTimeBucket`: the same result shapes as Anthropic's usage and cost
reports, with `requests` and `list_amount`), and the numbers equal to the receipts."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import anthropic
from anthropic.pagination import SyncReportPageCursor
from anthropic.types.beta.organization.beta_analytics_cost_report_time_bucket import (
    BetaAnalyticsCostReportTimeBucket,
)
from anthropic.types.beta.organization.beta_analytics_usage_report_time_bucket import (
    BetaAnalyticsUsageReportTimeBucket,
)

from creditgate_support import Gateway, dec


def _new_key(demo: dict[str, Any], gw: Gateway) -> tuple[str, str]:
    """A fresh key of the demo organization (its own usage, apart from the other tests')."""
    r = gw.http.post(
        demo["base_url"] + "/v1/organizations/api_keys",
        headers={"x-api-key": demo["organization_admin_key"]},
        json={"name": "reports test"},
    )
    assert r.status_code == 200, r.text
    return r.json()["id"], r.json()["secret"]


def _window(hours: int) -> dict[str, str]:
    now = dt.datetime.now(dt.timezone.utc)
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    return {
        "starting_at": (now - dt.timedelta(hours=hours)).strftime(fmt),
        "ending_at": (now + dt.timedelta(hours=hours)).strftime(fmt),
    }


def _pages(admin: anthropic.Anthropic, path: str, model: type, params: dict[str, Any]) -> list[Any]:
    """Every bucket of a report through the SDK's report paginator, each also validated."""
    pages = admin.get_api_list(path, page=SyncReportPageCursor[model], model=model, options={"params": params})
    buckets = list(pages)  # follows next_page until has_more is false
    for b in buckets:
        model.model_validate(b.model_dump(mode="json"))  # strict validation of the same JSON
    return buckets


def test_reports_parse_with_the_sdk_types_and_match_the_receipts(
    demo: dict[str, Any], gw: Gateway, model: str
) -> None:
    key_id, secret = _new_key(demo, gw)
    client = anthropic.Anthropic(base_url=demo["base_url"], api_key=secret, max_retries=2)
    receipts = []
    for n in (5, 9, 13):
        msg = client.messages.create(
            model=model, max_tokens=64, messages=[{"role": "user", "content": f"Hi [[sim output_tokens={n}]]"}]
        )
        receipts.append(gw.receipt(msg._request_id, secret))
    client.close()
    charged = sum((dec(r["charged"]) for r in receipts), Decimal(0))
    output = sum(r["usage"]["output_tokens"] for r in receipts)
    uncached = sum(r["usage"]["input_tokens"] for r in receipts)

    admin = anthropic.Anthropic(base_url=demo["base_url"], api_key=demo["organization_admin_key"], max_retries=2)
    # The SDK writes lists with brackets: api_key_ids[]=…&group_by[]=…
    params = {**_window(2), "bucket_width": "1h", "limit": 1, "api_key_ids": [key_id], "group_by": ["model"]}
    usage = _pages(admin, "/v1/organizations/usage_report/messages", BetaAnalyticsUsageReportTimeBucket, params)
    assert len(usage) >= 4  # hourly buckets, one per page
    results = [r for b in usage for r in b.results]
    assert {r.model for r in results} == {model}
    assert sum(r.output_tokens for r in results) == output
    assert sum(r.uncached_input_tokens for r in results) == uncached
    assert sum(r.requests or 0 for r in results) == 3
    assert sum((dec(r.model_extra["credits"]) for r in results), Decimal(0)) == charged

    params = {**_window(24), "api_key_ids": [key_id], "group_by": ["description"]}
    cost = _pages(admin, "/v1/organizations/cost_report", BetaAnalyticsCostReportTimeBucket, params)
    lines = [r for b in cost for r in b.results]
    assert {r.token_type for r in lines} >= {"uncached_input_tokens", "output_tokens"}
    assert all(r.currency == "USD" and r.cost_type == "tokens" for r in lines)
    assert sum((dec(r.model_extra["credits"]) for r in lines), Decimal(0)) == charged
    # amount: USD cents at the credit's value, exactly.
    assert sum((Decimal(r.amount) for r in lines), Decimal(0)) == charged * gw.credit_usd * 100
    admin.close()
