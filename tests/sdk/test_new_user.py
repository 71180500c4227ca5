"""A new user's walk through the demo, over HTTP and with the official SDK: sign in with the
printed email and password, invite a member (the email lands in the outbox), accept, create a key
with a spend limit, spend it down, see the 402 naming the limit, and find each step in the audit
log."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import anthropic
try:
    import httpx2 as httpx
except ImportError:  # older SDKs ship httpx
    import httpx  # type: ignore[no-redef]
import pytest


def _latest_link(outbox: Path, to: str, prefix: str) -> str:
    mails = sorted(outbox.glob("*.eml"))
    text = next(m.read_text() for m in reversed(mails) if f"To: {to}" in m.read_text())
    flat = text.replace("=\r\n", "").replace("=\n", "")
    return re.search(re.escape(prefix) + r"([0-9a-f]{64})", flat).group(1)


def test_a_new_user_signs_in_invites_limits_a_key_and_reads_the_audit_log(demo: dict[str, Any], model: str) -> None:
    base = demo["base_url"]
    with httpx.Client(base_url=base, timeout=30) as http:
        r = http.post("/auth/sign-in", json={"email": demo["dashboard_email"], "password": demo["dashboard_password"]})
        assert r.status_code == 200, r.text
        csrf = {"x-csrf-token": r.json()["csrf_token"]}
        assert r.json()["role"] == "owner"

        r = http.post("/v1/organizations/invites", json={"email": "dev@demo.example", "role": "developer"}, headers=csrf)
        assert r.status_code == 200, r.text
        token = _latest_link(Path(demo["outbox_dir"]), "dev@demo.example", "/join/")
        with httpx.Client(base_url=base, timeout=30) as newcomer:
            joined = newcomer.post(f"/invite/{token}", json={"name": "Dev", "password": "a long enough passphrase"})
            assert joined.status_code == 200, joined.text
            assert joined.json()["role"] == "developer"

        r = http.post("/v1/organizations/api_keys", json={"name": "capped", "limits": {"spend": {"daily": "0.02"}}}, headers=csrf)
        assert r.status_code == 200, r.text
        secret, key_id = r.json()["secret"], r.json()["id"]

    sdk = anthropic.Anthropic(base_url=base, api_key=secret, max_retries=0)
    refusal = None
    for _ in range(50):
        try:
            sdk.messages.create(model=model, max_tokens=64, messages=[{"role": "user", "content": "Hello"}])
        except anthropic.APIStatusError as e:
            refusal = e
            break
    sdk.close()
    assert refusal is not None and refusal.status_code == 402, "the cap was never reached"
    message = refusal.body["error"]["message"]
    assert refusal.body["error"]["type"] == "billing_error"
    assert "daily spend limit" in message and "resets at" in message, message

    with httpx.Client(base_url=base, timeout=30) as http:
        log = http.get("/v1/organizations/audit_log", headers={"x-api-key": demo["organization_admin_key"]})
        assert log.status_code == 200, log.text
        actions = [e["action"] for e in log.json()["data"]]
        for step in ("invite.created", "invite.accepted", "api_key.created"):
            assert step in actions, actions
        created = next(e for e in log.json()["data"] if e["action"] == "api_key.created")
        assert created["target"]["id"] == key_id
        assert secret not in log.text
