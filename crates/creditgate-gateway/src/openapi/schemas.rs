//! The bodies of `/openapi.json`: the JSON schemas of the objects the routes exchange, and which
//! request and answer each route of the table has. A route of the table without an entry here
//! is caught by the test that checks the document against the router.

use serde_json::{json, Value};

/// What a route takes as its body.
pub enum Takes {
    /// No body.
    Nothing,
    /// A JSON body with this schema.
    Json(Value),
    /// A JSON or form-encoded body with this schema.
    JsonOrForm(Value),
}

/// What a route answers with on success.
pub enum Gives {
    Json(Value),
    /// JSON, or CSV with `Accept: text/csv` or `?format=csv`.
    JsonOrCsv(Value),
    /// A page (`text/html`).
    Html,
    /// Plain text.
    Text,
}

fn r(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn list_of(name: &str) -> Value {
    json!({"allOf": [r("List"), {"properties": {"data": {"type": "array", "items": r(name)}}}]})
}

fn obj(required: &[&str], properties: Value) -> Value {
    json!({"type": "object", "required": required, "properties": properties})
}

const S: &str = "string";

fn s() -> Value {
    json!({"type": S})
}
fn ns() -> Value {
    json!({"type": [S, "null"]})
}
fn time() -> Value {
    json!({"type": S, "format": "date-time"})
}
fn ntime() -> Value {
    json!({"type": [S, "null"], "format": "date-time"})
}
/// A credit amount: an exact decimal string.
fn credits() -> Value {
    json!({"type": S, "pattern": "^-?[0-9]+(\\.[0-9]+)?$"})
}
fn ncredits() -> Value {
    json!({"type": [S, "null"], "pattern": "^-?[0-9]+(\\.[0-9]+)?$"})
}
fn int() -> Value {
    json!({"type": "integer"})
}
fn nint() -> Value {
    json!({"type": ["integer", "null"]})
}
fn role() -> Value {
    json!({"enum": ["owner", "admin", "billing", "developer", "user"]})
}

/// The request and the answer of a route, by method and path (`None`: not described).
///
/// Longer than a screen on purpose: a table, one line per route, beside the route table.
#[rustfmt::skip]
pub fn of(method: &str, path: &str) -> Option<(Takes, Gives)> {
    use Gives::{Html, Json as J, JsonOrCsv, Text};
    use Takes::{Json, JsonOrForm, Nothing};
    let ok = |n: &str| J(r(n));
    Some(match (method, path) {
        ("GET", "/v1/credits" | "/v1/organizations/credits") => (Nothing, ok("Credits")),
        ("GET", "/v1/key") => (Nothing, ok("KeyUsage")),
        ("POST", "/v1/messages/quote") => (Json(json!({"type": "object", "required": ["model", "max_tokens", "messages"],
            "description": "A Messages request body, as for POST /v1/messages."})), ok("Quote")),
        ("GET", "/v1/requests/{id}") => (Nothing, ok("Receipt")),
        ("GET", "/sandbox/checkout/{order_id}") => (Nothing, Html),
        ("POST", "/sandbox/checkout/{order_id}") => (JsonOrForm(obj(&["card"], json!({"card": s()}))), ok("Order")),
        ("GET", "/receipts/{order_id}") => (Nothing, Html),
        ("POST", "/webhooks/stripe") => (Json(json!({"type": "object", "description": "A Stripe event, signed with Stripe-Signature."})),
            J(obj(&["received"], json!({"received": {"type": "boolean"}, "outcome": s()})))),
        ("GET", "/healthz" | "/metrics") => (Nothing, Text),
        ("GET", "/readyz") => (Nothing, J(json!({"type": "object"}))),
        ("GET", "/openapi.json") => (Nothing, J(json!({"type": "object", "description": "This OpenAPI 3.1 document."}))),
        ("POST", "/auth/sign-in") => (Json(r("SignIn")), ok("Session")),
        ("POST", "/auth/sign-out") => (Json(obj(&[], json!({"everywhere": {"type": "boolean", "default": false}}))),
            J(obj(&["type", "sessions_ended"], json!({"type": {"const": "signed_out"}, "sessions_ended": int()})))),
        ("GET", "/auth/session") => (Nothing, ok("Session")),
        ("POST", "/auth/sign-up") => (Json(r("SignUp")), ok("Session")),
        ("POST", "/auth/password-reset") => (Json(obj(&["email"], json!({"email": s()}))),
            J(obj(&["type", "message"], json!({"type": {"const": "password_reset_requested"}, "message": s()})))),
        ("GET", "/auth/password-reset/{token}") => (Nothing, J(obj(&["type", "email"], json!({"type": {"const": "password_reset"}, "email": s()})))),
        ("POST", "/auth/password-reset/{token}") => (Json(obj(&["password"], json!({"password": s()}))),
            J(obj(&["type", "email"], json!({"type": {"const": "password_reset_done"}, "email": s()})))),
        ("GET", "/invite/{token}") => (Nothing, ok("InviteLink")),
        ("POST", "/invite/{token}") => (Json(obj(&["password"], json!({"name": s(), "password": s()}))), ok("Session")),
        ("GET", "/v1/organizations/me") => (Nothing, J(obj(&["id", "type", "name"], json!({"id": s(), "type": {"const": "organization"}, "name": s()})))),
        ("GET", "/v1/organizations/users") => (Nothing, J(list_of("User"))),
        ("GET", "/v1/organizations/users/{id}") => (Nothing, ok("User")),
        ("POST", "/v1/organizations/users/{id}") => (Json(obj(&["role"], json!({"role": role()}))), ok("User")),
        ("DELETE", "/v1/organizations/users/{id}") => (Nothing, ok("Deleted")),
        ("POST", "/v1/organizations/transfer_ownership") => (Json(obj(&["user_id"], json!({"user_id": s()}))), J(json!({"type": "object"}))),
        ("POST", "/v1/organizations/invites") => (Json(obj(&["email", "role"], json!({"email": s(), "role": role()}))), ok("Invite")),
        ("GET", "/v1/organizations/invites") => (Nothing, J(list_of("Invite"))),
        ("GET", "/v1/organizations/invites/{id}") => (Nothing, ok("Invite")),
        ("DELETE", "/v1/organizations/invites/{id}") => (Nothing, ok("Deleted")),
        ("GET", "/v1/organizations/api_keys") => (Nothing, J(list_of("ApiKey"))),
        ("POST", "/v1/organizations/api_keys") => (Json(r("NewApiKey")), J(json!({"allOf": [r("ApiKey"), obj(&["secret"], json!({"secret": s()}))]}))),
        ("GET", "/v1/organizations/api_keys/{id}") => (Nothing, ok("ApiKey")),
        ("POST", "/v1/organizations/api_keys/{id}") => (Json(r("ApiKeyChange")), ok("ApiKey")),
        ("GET", "/v1/organizations/admin_keys") => (Nothing, J(list_of("AdminKey"))),
        ("POST", "/v1/organizations/admin_keys" | "/admin/v1/organizations/{id}/admin_keys") => (Json(obj(&["name"], json!({"name": s()}))),
            J(json!({"allOf": [r("AdminKey"), obj(&["secret"], json!({"secret": s()}))]}))),
        ("POST", "/v1/organizations/admin_keys/{id}") => (Json(obj(&["status"], json!({"status": {"const": "inactive"}}))), ok("AdminKey")),
        ("GET", "/v1/organizations/audit_log" | "/admin/v1/audit_log") => (Nothing, J(list_of("AuditEvent"))),
        ("GET", "/v1/organizations/usage_report/messages" | "/admin/v1/reports/usage") => (Nothing, JsonOrCsv(r("Report"))),
        ("GET", "/v1/organizations/cost_report" | "/admin/v1/reports/cost") => (Nothing, JsonOrCsv(r("Report"))),
        ("GET", "/v1/organizations/cache_report" | "/admin/v1/reports/cache") => (Nothing, JsonOrCsv(r("Report"))),
        ("GET", "/v1/billing/plans") => (Nothing, J(obj(&["data"], json!({"data": {"type": "array", "items": r("Plan")},
            "custom": {"type": ["object", "null"], "properties": {"min_credits": credits(), "max_credits": ncredits(), "cents_per_credit": ns()}}})))),
        ("GET", "/v1/billing/profile") => (Nothing, ok("BillingProfile")),
        ("PUT", "/v1/billing/profile") => (Json(r("BillingProfile")), ok("BillingProfile")),
        ("POST", "/v1/billing/checkout") => (Json(obj(&[], json!({"plan_id": s(), "credits": credits(), "success_url": s(), "cancel_url": s()}))),
            J(obj(&["order", "checkout_url"], json!({"order": r("Order"), "checkout_url": s()})))),
        ("GET", "/v1/billing/orders" | "/admin/v1/orders") => (Nothing, J(list_of("Order"))),
        ("GET", "/v1/billing/orders/{id}") => (Nothing, ok("Order")),
        ("GET", "/v1/billing/orders/{id}/receipt") => (Nothing, Html),
        ("GET", "/v1/billing/invoices") => (Nothing, J(list_of("Invoice"))),
        ("GET", "/v1/billing/invoices/{id}") => (Nothing, ok("Invoice")),
        ("GET", "/v1/billing/invoices/{id}/html") => (Nothing, Html),
        ("POST", "/v1/billing/invoices/{id}/checkout") => (Json(obj(&[], json!({"success_url": s(), "cancel_url": s()}))),
            J(obj(&["order", "checkout_url"], json!({"order": r("Order"), "checkout_url": s()})))),
        ("POST", "/admin/v1/invoices/{id}/mark_paid") => (Nothing,
            J(json!({"allOf": [r("Invoice"), {"properties": {"paid_now": {"type": "boolean"}}}]}))),
        ("GET", "/sandbox/setup/{method_id}") => (Nothing, Html),
        ("POST", "/sandbox/setup/{method_id}") => (JsonOrForm(obj(&["card"], json!({"card": s(), "confirm": {"type": "boolean"}}))),
            J(obj(&["payment_method"], json!({"payment_method": r("PaymentMethod"), "next_action": {"type": "object"}})))),
        ("GET", "/v1/billing/payment_methods") => (Nothing, J(obj(&["data"], json!({"data": {"type": "array", "items": r("PaymentMethod")}})))),
        ("POST", "/v1/billing/payment_methods") => (Nothing, J(obj(&["setup_url", "payment_method"], json!({"setup_url": s(), "payment_method": r("PaymentMethod")})))),
        ("GET", "/v1/billing/auto_reload") => (Nothing, ok("AutoReload")),
        ("PUT", "/v1/billing/auto_reload") => (Json(obj(&["enabled", "threshold", "monthly_limit"], json!({"enabled": {"type": "boolean"},
            "threshold": credits(), "amount": credits(), "plan_id": s(), "payment_method_id": s(), "monthly_limit": credits()}))), ok("AutoReload")),
        ("GET", "/v1/billing/statement") => (Nothing, JsonOrCsv(r("Statement"))),
        ("GET", "/v1/billing/alerts") => (Nothing, ok("AlertSettings")),
        ("PUT", "/v1/billing/alerts") => (Json(obj(&["low_balance_thresholds", "emails"], json!({
            "low_balance_thresholds": {"type": "array", "items": credits(), "maxItems": 10},
            "emails": {"type": "array", "items": s(), "maxItems": 20}}))), ok("AlertSettings")),
        ("POST", "/v1/organizations/webhooks") => (Json(obj(&["url", "events"], json!({"url": s(),
            "events": {"type": "array", "items": r("EventType")}}))),
            J(json!({"allOf": [r("WebhookEndpoint"), {"required": ["secret"], "properties": {"secret": s()}}]}))),
        ("GET", "/v1/organizations/webhooks") => (Nothing, J(list_of("WebhookEndpoint"))),
        ("DELETE", "/v1/organizations/webhooks/{id}") => (Nothing, J(obj(&["id", "type"], json!({"id": s(), "type": {"const": "webhook_endpoint_deleted"}})))),
        ("GET", "/v1/organizations/webhooks/{id}/deliveries") => (Nothing, J(list_of("WebhookDelivery"))),
        ("POST", "/v1/organizations/webhooks/{id}/deliveries/{delivery_id}/retry") => (Nothing, ok("WebhookDelivery")),
        ("DELETE", "/v1/billing/payment_methods/{id}") => (Nothing, J(obj(&["id", "type"], json!({"id": s(), "type": {"const": "payment_method_deleted"}})))),
        ("POST", "/admin/v1/orders/{id}/sandbox_dispute") => (Json(obj(&["won"], json!({"won": {"type": "boolean"}}))),
            J(obj(&["order", "dispute"], json!({"order": r("Order"), "dispute": {"enum": ["won", "lost"]}})))),
        ("POST", "/admin/v1/organizations") => (Json(obj(&["name"], json!({"name": s(), "owner_email": s()}))), ok("OperatorOrganization")),
        ("GET", "/admin/v1/organizations") => (Nothing, J(list_of("OperatorOrganization"))),
        ("GET", "/admin/v1/organizations/{id}") => (Nothing, ok("OperatorOrganization")),
        ("POST", "/admin/v1/organizations/{id}") => (Json(obj(&[], json!({"name": s(), "status": {"enum": ["active", "suspended"]},
            "disconnect_policy": {"enum": ["drain", "cancel", null]}, "owner_email": s(),
            "billing_mode": {"enum": ["prepaid", "invoiced"]}, "credit_limit": credits()}))), ok("OperatorOrganization")),
        ("POST", "/admin/v1/organizations/{id}/grants") => (Json(r("Grant")), ok("Lot")),
        ("POST", "/admin/v1/organizations/{id}/payments") => (Json(obj(&["method", "reference", "amount_cents", "currency"], json!({
            "method": {"enum": ["crypto", "bank_transfer", "chat", "other"]}, "reference": s(), "amount_cents": int(),
            "currency": s(), "plan_id": s(), "credits": credits()}))), J(json!({"allOf": [r("Order"), {"properties": {"created": {"type": "boolean"}}}]}))),
        ("POST", "/admin/v1/orders/{id}/recheck") => (Nothing, J(obj(&["order"], json!({"order": r("Order"), "outcome": s()})))),
        ("POST", "/admin/v1/orders/{id}/refund") => (Json(obj(&[], json!({"credits": credits()}))),
            J(obj(&["order"], json!({"order": r("Order"), "refunded_cents": int()})))),
        ("GET", "/admin/v1/plans") => (Nothing, J(list_of("Plan"))),
        ("POST", "/admin/v1/plans" | "/admin/v1/plans/{id}") => (Json(obj(&[], json!({"id": s(), "name": s(), "credits": credits(),
            "amount_cents": int(), "expires_in_days": nint(), "archived": {"type": "boolean"}}))), ok("Plan")),
        _ => return None,
    })
}

/// The named schemas the routes refer to.
///
/// Longer than a screen on purpose: a table, one entry per schema.
#[rustfmt::skip]
pub fn components() -> Value {
    let limits = obj(&[], json!({
        "allowed_models": {"type": ["array", "null"], "items": s()},
        "requests_per_minute": nint(),
        "tokens_per_minute": nint(),
        "spend": obj(&[], json!({"daily": ncredits(), "weekly": ncredits(), "monthly": ncredits(), "total": ncredits()})),
    }));
    let actor = obj(&["type"], json!({"type": s(), "id": ns()}));
    let lot = obj(&["id", "category", "remaining"], json!({"id": s(), "category": {"enum": ["paid", "granted"]},
        "remaining": credits(), "expires_at": ntime()}));
    let mut all = json!({
        "Error": {
            "type": "object",
            "required": ["type", "error"],
            "properties": {
                "type": {"const": "error"},
                "error": {"type": "object", "required": ["type", "message"], "properties": {
                    "type": {"type": "string"}, "message": {"type": "string"}}},
                "request_id": {"type": ["string", "null"]},
            },
        },
        "List": obj(&["data", "has_more"], json!({"data": {"type": "array"}, "has_more": {"type": "boolean"},
            "first_id": ns(), "last_id": ns()})),
        "Deleted": obj(&["id", "type"], json!({"id": s(), "type": {"enum": ["user_deleted", "invite_deleted"]}})),
    });
    let people = json!({
        "KeyLimits": limits,
        "User": obj(&["id", "type", "email", "name", "role", "added_at"], json!({"id": s(), "type": {"const": "user"},
            "email": s(), "name": s(), "role": role(), "added_at": time()})),
        "Invite": obj(&["id", "type", "email", "role", "invited_at", "expires_at", "status"], json!({"id": s(),
            "type": {"const": "invite"}, "email": s(), "role": role(), "invited_at": time(), "expires_at": time(),
            "status": {"enum": ["pending", "accepted", "expired"]}})),
        "InviteLink": obj(&["type", "email", "role", "organization", "expires_at", "account_exists"], json!({
            "type": {"const": "invite"}, "email": s(), "role": role(),
            "organization": obj(&["id", "name"], json!({"id": s(), "name": s()})),
            "expires_at": time(), "account_exists": {"type": "boolean"}})),
        "ApiKey": obj(&["id", "type", "name", "status", "created_at", "created_by", "partial_key_hint", "limits"], json!({
            "id": s(), "type": {"const": "api_key"}, "name": s(),
            "status": {"enum": ["active", "inactive", "archived", "expired"]}, "created_at": time(),
            "created_by": actor, "partial_key_hint": s(), "expires_at": ntime(), "limits": r("KeyLimits"),
            "organization_id": s()})),
        "NewApiKey": obj(&["name"], json!({"name": s(), "limits": r("KeyLimits"), "expires_at": ntime()})),
        "ApiKeyChange": obj(&[], json!({"name": s(), "status": {"enum": ["active", "inactive", "archived"]},
            "limits": r("KeyLimits"), "expires_at": ntime()})),
        "AdminKey": obj(&["id", "type", "name", "status", "created_at", "partial_key_hint"], json!({"id": s(),
            "type": {"const": "admin_key"}, "name": s(), "status": {"enum": ["active", "inactive"]},
            "created_at": time(), "created_by": actor, "partial_key_hint": s()})),
        "AuditEvent": obj(&["id", "type", "at", "actor", "action", "target"], json!({"id": s(),
            "type": {"const": "audit_event"}, "at": time(), "organization_id": ns(), "actor": actor,
            "action": s(), "target": obj(&["type", "id"], json!({"type": s(), "id": s()})), "ip": ns(),
            "details": {"type": "object", "description": "What changed; never a secret."}})),
        "SignIn": obj(&["email", "password"], json!({"email": s(), "password": s(), "organization_id": s()})),
        "SignUp": obj(&["email", "password", "name"], json!({"email": s(), "password": s(), "name": s(), "organization_name": s()})),
        "Session": obj(&["type", "user", "organization_id", "role", "csrf_token"], json!({"type": {"const": "session"},
            "user": r("User"), "organization_id": s(), "role": role(),
            "csrf_token": {"type": "string", "description": "Send it as x-csrf-token on every request that is not a GET."}})),
    });
    let money = json!({
        "Credits": obj(&["available", "pending", "balance", "lots"], json!({"organization_id": s(), "unit": {"type": "object"},
            "available": credits(), "pending": credits(), "balance": credits(), "debt": credits(),
            "billing_mode": {"enum": ["prepaid", "invoiced"]}, "credit_limit": credits(), "spendable": credits(), "credit_line_suspended_at": ntime(),
            "lots": {"type": "array", "items": lot}, "expiring_soon": {"type": "array", "items": {"type": "object"}},
            "forecast": {"type": ["object", "null"], "properties": {"days_of_runway": s(), "average_daily_spend": credits(), "basis_days": int()}}})),
        "Quote": obj(&["type", "model", "stream", "max_tokens", "input_tokens", "worst_case", "first_slice", "hold",
            "available", "limited_by", "affordable", "affordable_in_full", "max_affordable_max_tokens", "unit"], json!({
            "type": {"const": "quote"}, "model": s(), "stream": {"type": "boolean"}, "max_tokens": int(),
            "input_tokens": {"type": "integer", "description": "Estimated, as admission estimates it."},
            "worst_case": credits(),
            "first_slice": obj(&["output_tokens", "credits"], json!({"output_tokens": int(), "credits": credits()})),
            "hold": {"type": "string", "description": "What admission would hold now: the worst case, or a stream's first slice."},
            "available": credits(), "limited_by": {"type": "string", "description": "balance, or the key's spend limit that binds"},
            "affordable": {"type": "boolean"}, "affordable_in_full": {"type": "boolean"},
            "max_affordable_max_tokens": int(), "unit": s()})),
        "KeyUsage": obj(&["id", "name", "status", "limits", "usage"], json!({"id": s(), "name": s(), "organization_id": s(),
            "hint": s(), "status": s(), "created_at": time(), "expires_at": ntime(), "limits": r("KeyLimits"),
            "usage": {"type": "object", "description": "Per period (day, week, month, total): requests, credits, limit, remaining, tokens."}})),
        "Receipt": obj(&["id", "held", "charged", "status"], json!({"id": s(), "model": ns(), "key_id": ns(), "stream": {"type": ["boolean", "null"]},
            "usage": {"type": ["object", "null"], "description": "Anthropic's usage object."}, "held": credits(), "charged": credits(),
            "unit": s(), "price_version": ns(), "status": {"type": "string", "description": "settled, partial, estimated, free, or pending while in flight"},
            "disconnect_policy": ns(), "lots": {"type": "array", "items": {"type": "object"}}, "created_at": time()})),
        "OperatorOrganization": obj(&["id", "type", "name", "created_at", "status"], json!({"id": s(), "type": {"const": "organization"},
            "name": s(), "created_at": time(), "status": {"enum": ["active", "suspended"]},
            "disconnect_policy": {"enum": ["drain", "cancel", null]}, "owner": {"oneOf": [r("User"), {"type": "null"}]},
            "billing_mode": {"enum": ["prepaid", "invoiced"]}, "credit_limit": credits()})),
        "Grant": obj(&["amount", "category", "reference"], json!({"amount": credits(), "category": {"enum": ["granted", "paid"]},
            "expires_in_days": nint(), "reference": s(), "memo": s()})),
        "Lot": obj(&["id", "type", "amount", "remaining", "category"], json!({"id": s(), "type": {"const": "lot"},
            "organization_id": s(), "amount": credits(), "remaining": credits(), "category": s(), "expires_at": ntime(),
            "created_at": time(), "reference": s(), "replayed": {"type": "boolean"}})),
        "Plan": obj(&["id", "type", "name", "credits", "amount_cents", "currency"], json!({"id": s(), "type": {"const": "plan"},
            "name": s(), "credits": credits(), "amount_cents": int(), "currency": s(), "expires_in_days": nint(),
            "archived": {"type": "boolean"}})),
    });
    let billing = json!({
        "BillingProfile": obj(&[], json!({"type": {"const": "billing_profile"}, "name": ns(), "email": ns(),
            "country": {"type": ["string", "null"], "description": "ISO 3166-1 alpha-2"},
            "address": obj(&[], json!({"line1": ns(), "line2": ns(), "city": ns(), "postal_code": ns(), "state": ns()})),
            "tax_id": ns()})),
        "AutoReload": obj(&["type", "enabled", "status"], json!({"type": {"const": "auto_reload"}, "organization_id": s(),
            "enabled": {"type": "boolean"}, "status": {"enum": ["active", "paused", "off"]}, "paused_reason": ns(),
            "threshold": ncredits(), "amount": ncredits(), "plan_id": ns(), "payment_method_id": ns(), "monthly_limit": ncredits(),
            "retry_at": ntime(), "recommendation": {"type": ["object", "null"], "properties": {"threshold": credits(), "amount": credits(),
                "plan_id": ns(), "basis_days": int(), "average_daily_spend": credits()}}, "last_attempt": {"type": ["object", "null"], "properties": {"at": time(), "outcome": ns(), "order_id": ns()}}})),
        "Statement": obj(&["type", "organization_id", "starting_at", "ending_at", "opening_balance", "closing_balance", "lines"], json!({
            "type": {"const": "statement"}, "organization_id": s(), "starting_at": time(), "ending_at": time(),
            "opening_balance": credits(), "closing_balance": credits(),
            "lines": {"type": "array", "items": obj(&["date", "at", "kind", "credits", "balance_after", "reference"], json!({
                "date": s(), "at": time(), "kind": {"enum": ["purchase", "grant", "usage", "refund", "expiry", "adjustment", "invoice"]},
                "credits": credits(), "balance_after": credits(), "reference": s(),
                "requests": {"type": ["integer", "null"]}}))}})),
        "AlertSettings": obj(&["type", "low_balance_thresholds", "emails"], json!({"type": {"const": "alert_settings"},
            "organization_id": s(), "low_balance_thresholds": {"type": "array", "items": credits()}, "emails": {"type": "array", "items": s()}})),
        "EventType": {"enum": crate::notify::EVENT_TYPES},
        "WebhookEndpoint": obj(&["id", "type", "url", "events", "status", "created_at"], json!({"id": s(), "type": {"const": "webhook_endpoint"},
            "url": s(), "events": {"type": "array", "items": r("EventType")}, "status": {"enum": ["enabled", "disabled"]},
            "created_at": time(), "failing_since": ntime(), "disabled_at": ntime()})),
        "WebhookDelivery": obj(&["id", "type", "endpoint_id", "event_id", "event_type", "status", "attempts", "created_at"], json!({
            "id": s(), "type": {"const": "webhook_delivery"}, "endpoint_id": s(), "event_id": s(), "event_type": r("EventType"),
            "status": {"enum": ["pending", "delivered", "failed"]},
            "attempts": {"type": "array", "items": obj(&["n", "at", "duration_ms", "manual"], json!({"n": int(), "at": time(),
                "status_code": nint(), "error": ns(), "duration_ms": int(), "manual": {"type": "boolean"}}))},
            "next_attempt_at": ntime(), "created_at": time(), "delivered_at": ntime()})),
        "PaymentMethod": obj(&["id", "type", "provider", "status", "created_at"], json!({"id": s(), "type": {"const": "payment_method"},
            "provider": s(), "status": s(), "brand": ns(), "last4": ns(), "exp_month": nint(), "exp_year": nint(),
            "failure": {"type": ["object", "string", "null"]}, "created_at": time()})),
        "Order": obj(&["id", "type", "status", "credits", "subtotal_cents", "tax_cents", "tax_rate", "amount_cents", "currency",
            "provider", "created_at"], json!({
            "id": s(), "type": {"const": "order"}, "organization_id": s(),
            "status": {"enum": ["open", "paid", "credited", "failed", "expired", "refunded", "partially_refunded", "disputed"]},
            "plan_id": ns(), "credits": credits(), "subtotal_cents": int(), "tax_cents": int(), "tax_rate": s(),
            "tax_label": s(), "amount_cents": int(), "currency": s(), "buyer_country": ns(), "buyer_tax_id": ns(),
            "provider": {"enum": ["stripe", "sandbox", "manual"]}, "method": ns(), "created_at": time(), "paid_at": ntime(),
            "lot_id": ns(), "receipt_number": ns(), "receipt_url": ns(), "refunded_cents": nint(),
            "failure": {"type": ["object", "null"], "properties": {"code": s(), "message": s()}}})),
        "Invoice": obj(&["id", "type", "number", "period_start", "period_end", "credits", "subtotal_cents", "tax_cents",
            "amount_cents", "status", "due_at", "url"], json!({"id": s(), "type": {"const": "invoice"}, "organization_id": s(),
            "number": s(), "period_start": time(), "period_end": time(), "credits": credits(), "usd_per_credit": s(),
            "subtotal_cents": int(), "tax_rate": s(), "tax_cents": int(), "amount_cents": int(), "currency": s(),
            "status": {"enum": ["open", "paid", "void"]}, "due_at": time(), "created_at": time(), "paid_at": ntime(),
            "paid_by": ns(), "lot_id": ns(), "url": s()})),
        "Report": obj(&["data", "has_more"], json!({
            "data": {"type": "array", "items": obj(&["starting_at", "ending_at", "results"], json!({
                "starting_at": time(), "ending_at": time(),
                "results": {"type": "array", "items": {"type": "object",
                    "description": "Anthropic's usage or cost result; cost results add credits and list_amount."}}}))},
            "has_more": {"type": "boolean"}, "next_page": ns()})),
    });
    for group in [people, money, billing] {
        if let (Some(all), Value::Object(more)) = (all.as_object_mut(), group) {
            all.extend(more);
        }
    }
    all
}
