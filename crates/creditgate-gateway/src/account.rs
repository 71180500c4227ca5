//! The customer's own view through its key: `GET /v1/credits`, `GET /v1/key`,
//! `GET /v1/requests/{id}` (`docs/reports.md`). Every read is scoped to the key's
//! organization; another organization's ids answer 404.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use creditgate_core::accounts::{period_start, LimitPeriod};
use creditgate_core::clock::Timestamp;
use creditgate_core::ids::{OrganizationId, TransferId};
use creditgate_core::keys::ApiKeyRecord;
use creditgate_core::ledger::{LedgerError, LedgerStore};
use creditgate_core::money::NanoCredits;
use creditgate_core::payments::credit_line::CreditLine;
use creditgate_core::receipt::Receipt;
use creditgate_core::usage::UsageRecord;
use serde_json::{json, Value};

use crate::auth::ApiKeyCaller;
use crate::error::ApiError;
use crate::App;

/// Lots expiring within this many days are listed as `expiring_soon`.
const EXPIRING_SOON_DAYS: i64 = 30;
const DAY_MS: i64 = 86_400_000;

fn respond(result: Result<Value, ApiError>) -> Response {
    match result {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

pub async fn credits(State(app): State<Arc<App>>, ApiKeyCaller(key): ApiKeyCaller) -> Response {
    respond(credits_json(&app, &key).await)
}

async fn credits_json(app: &App, key: &ApiKeyRecord) -> Result<Value, ApiError> {
    credits_of(app, &key.org).await
}

/// An organization's credits as `GET /v1/credits` shows them.
pub async fn credits_of(app: &App, org: &OrganizationId) -> Result<Value, ApiError> {
    let b = app.balance(org).await?;
    let line = app
        .db
        .credit_line(org)
        .await?
        .unwrap_or(CreditLine::PREPAID);
    // An overdue invoice suspends the line (`[invoices] suspend_when_overdue`).
    let suspended = app.db.credit_line_suspended_at(org).await?;
    let usable = if suspended.is_some() {
        NanoCredits::ZERO
    } else {
        line.limit
    };
    let now = app.clock.now();
    let spend = crate::reload::advice::recent_spend(app, org, now).await?;
    let soon = now.plus_millis(EXPIRING_SOON_DAYS * DAY_MS);
    let lots: Vec<Value> = b
        .lots
        .iter()
        .map(|l| {
            json!({
                "id": l.id,
                "category": l.category,
                "remaining": l.remaining,
                "expires_at": l.expires_at.map(|t| t.to_rfc3339()),
            })
        })
        .collect();
    let expiring: Vec<Value> = b
        .lots
        .iter()
        .filter(|l| l.expires_at.is_some_and(|e| e <= soon))
        .map(|l| {
            json!({"id": l.id, "remaining": l.remaining,
                   "expires_at": l.expires_at.map(|t| t.to_rfc3339())})
        })
        .collect();
    Ok(json!({
        "organization_id": org,
        "unit": app.cfg.credit_unit,
        "available": b.available,
        "pending": b.held,
        "balance": b.posted,
        "debt": b.debt,
        // The credit line (`docs/credit-lines.md`): an invoiced organization's requests are
        // admitted while available + credit_limit covers their hold; `spendable` is that sum
        // (available alone while an overdue invoice suspends the line).
        "billing_mode": line.mode.as_str(),
        "credit_limit": line.limit,
        "credit_line_suspended_at": suspended.map(|t| t.to_rfc3339()),
        "spendable": b.available.checked_add(usable).map_err(LedgerError::from)?,
        "lots": lots,
        "expiring_soon": expiring,
        // Days of runway at the last days' average spend; null without spend.
        "forecast": crate::reload::advice::forecast(&spend, b.available),
    }))
}

pub async fn key(State(app): State<Arc<App>>, ApiKeyCaller(key): ApiKeyCaller) -> Response {
    respond(key_json(&app, &key).await)
}

pub(crate) async fn key_json(app: &App, key: &ApiKeyRecord) -> Result<Value, ApiError> {
    let now = app.clock.now();
    let scope = key.scope();
    let mut usage = serde_json::Map::new();
    let mut remaining = serde_json::Map::new();
    for period in LimitPeriod::ALL {
        let spent = app
            .db
            .scope_spend(&scope, period_start(period, now))
            .await?;
        usage.insert(period.as_str().to_owned(), json!(spent));
        let left = key
            .limits
            .spend
            .get(period)
            .map(|cap| cap.checked_sub(spent).ok());
        remaining.insert(period.as_str().to_owned(), json!(left));
    }
    let periods = key_periods(app, key, now).await?;
    Ok(json!({
        "id": key.id,
        "name": key.name,
        "organization_id": key.org,
        "hint": key.hint.to_string(),
        "status": key.status,
        "created_at": key.created_at.to_rfc3339(),
        "expires_at": key.expires_at.map(|t| t.to_rfc3339()),
        "limits": key.limits,
        // Spent (charges plus active holds) since the start of each period, and what is left
        // under each cap.
        "usage": {
            "unit": app.cfg.credit_unit.name,
            "day": usage["daily"],
            "week": usage["weekly"],
            "month": usage["monthly"],
            "total": usage["total"],
            "spend_remaining": remaining,
            "periods": periods,
        },
    }))
}

/// The key's settled usage this UTC day, week (from Monday) and month, summed from the daily
/// usage rollups (the records every settle writes), against its spend limit for the period.
async fn key_periods(app: &App, key: &ApiKeyRecord, now: Timestamp) -> Result<Value, ApiError> {
    let mut out = serde_json::Map::new();
    for (name, period) in [
        ("day", LimitPeriod::Daily),
        ("week", LimitPeriod::Weekly),
        ("month", LimitPeriod::Monthly),
    ] {
        let since = period_start(period, now);
        let s = app.db.key_usage(&key.org, &key.id, since).await?;
        let credits = s
            .credits
            .total()
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let limit = key.limits.spend.get(period);
        let t = &s.tokens;
        out.insert(
            name.to_owned(),
            json!({
                "starting_at": since.to_rfc3339(),
                "resets_at": period.resets_at(now).map(|t| t.to_rfc3339()),
                "requests": s.requests,
                "credits": credits,
                "limit": limit,
                "remaining": limit.map(|cap| cap.checked_sub(credits).ok()),
                "uncached_input_tokens": t.input,
                "cache_creation": {"ephemeral_1h_input_tokens": t.cache_write_1h,
                                   "ephemeral_5m_input_tokens": t.cache_write_5m},
                "cache_read_input_tokens": t.cache_read,
                "output_tokens": t.output,
                "server_tool_use": {"web_search_requests": t.web_search_requests},
            }),
        );
    }
    Ok(Value::Object(out))
}

pub async fn request(
    State(app): State<Arc<App>>,
    ApiKeyCaller(key): ApiKeyCaller,
    Path(id): Path<String>,
) -> Response {
    respond(request_json(&app, &key, &id).await)
}

async fn request_json(app: &App, key: &ApiKeyRecord, id: &str) -> Result<Value, ApiError> {
    let not_found = || ApiError::not_found(format!("No request {id}"));
    let id = TransferId::parse(id).map_err(|_| not_found())?;
    if let Some(spooled) = app.spool.pending_for(&id).filter(|s| s.org == key.org) {
        return Ok(pending_receipt(&spooled));
    }
    // Admitted against this replica's credit lease and not settled yet. Asked before the
    // ledger: a request leaves the lease's books only after its settlement is committed, so one
    // not found there is in the ledger if anywhere (the other order could miss a request
    // settling between the two reads).
    let rec = match app.leases.receipt(&key.org, &id) {
        Some(rec) => rec,
        None => app.db.receipt(&key.org, &id).await?.ok_or_else(not_found)?,
    };
    Ok(receipt_json(&rec, &app.cfg.credit_unit.name))
}

/// A receipt as `GET /v1/requests/{id}` shows it (`docs/reports.md`): the usage in Anthropic's
/// shape, held and charged, the charge per line, the lots drawn. A request in flight is
/// `pending`; a hold that ended without a charge (released, or expired unsettled) is `free`.
pub fn receipt_json(rec: &Receipt, unit: &str) -> Value {
    let admission = rec.admission.as_ref();
    let mut v = json!({
        "id": rec.id,
        "model": admission.map(|a| a.model.clone()),
        "key_id": admission.map(|a| a.key_id.clone()),
        "stream": admission.map(|a| a.stream),
        "usage": Value::Null,
        "held": rec.held,
        "charged": "0",
        "unit": unit,
        "created_at": rec.created_at.to_rfc3339(),
    });
    let (Some(charge), Some(record)) = (&rec.charge, &rec.record) else {
        let (status, note) = match rec.resolution {
            None => ("pending", None),
            Some(r) => (
                "free",
                Some(format!("hold {} without a charge", r.as_str())),
            ),
        };
        v["status"] = json!(status);
        v["note"] = json!(note);
        return v;
    };
    record_fields(&mut v, record);
    v["held"] = json!(charge.held);
    v["charged"] = json!(charge.charged);
    v["overrun"] = json!(charge.overrun);
    v["late"] = json!(charge.late);
    v["lots"] = json!(charge.lots);
    v["settled_at"] = json!(charge.at.to_rfc3339());
    v
}

/// What a receipt shows of its usage record.
fn record_fields(v: &mut Value, record: &UsageRecord) {
    v["model"] = json!(record.model);
    v["key_id"] = json!(record.key_id);
    v["stream"] = json!(record.stream);
    v["usage"] = record
        .tokens
        .map_or(Value::Null, |t| t.anthropic_json(&record.service));
    v["status"] = json!(record.status);
    v["price_version"] = json!(record.price_version);
    v["disconnect_policy"] = json!(record.disconnect_policy);
    v["lines"] = lines_json(record);
    v["list_usd"] = json!(record.list.total().map(|l| l.to_usd()).ok());
    v["cache_savings"] = json!(record.cache_savings);
    v["context_window"] = json!(record.service.context_window());
    v["flags"] = json!(record.flags);
    v["note"] = json!(record.note);
    v["latency_ms"] = json!(record.latency_ms);
    v["upstream_request_id"] = json!(record.upstream_request_id);
}

/// The charge per line: the token lines always, server tools when used.
fn lines_json(record: &UsageRecord) -> Value {
    let tokens = record.tokens.unwrap_or_default();
    let list = record.list.each();
    let lines: Vec<Value> = record
        .credits
        .each()
        .iter()
        .zip(list.iter())
        .filter(|((category, credits), _)| {
            category.is_tokens() || credits.is_positive() || tokens.quantity(*category) > 0
        })
        .map(|((category, credits), (_, list))| {
            json!({
                "category": category,
                "quantity": tokens.quantity(*category),
                "credits": credits,
                "list_usd": list.to_usd(),
            })
        })
        .collect();
    Value::Array(lines)
}

/// The receipt of a settlement waiting in this process's spool: what it will charge, marked
/// pending (the outcome it will have is kept as `outcome`).
fn pending_receipt(spooled: &crate::spool::Spooled) -> Value {
    let mut v = json!({"id": spooled.settle.hold});
    if let Some(record) = &spooled.settle.usage {
        record_fields(&mut v, record);
        v["outcome"] = json!(record.status);
    }
    v["status"] = json!("pending");
    v["charged"] = json!(spooled.settle.amount);
    v["note"] = json!(
        "charge pending: the database could not take it; it is applied, exactly once, when it is back"
    );
    v
}
