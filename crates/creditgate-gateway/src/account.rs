//! The customer's own view through its key: `GET /v1/credits`, `GET /v1/key`,
//! `GET /v1/requests/{id}` (§9). Every read is scoped to the key's organization; another
//! organization's ids answer 404.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use creditgate_core::accounts::{period_start, LimitPeriod};
use creditgate_core::ids::{OrganizationId, TransferId};
use creditgate_core::keys::ApiKeyRecord;
use creditgate_core::ledger::LedgerStore;
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
    let b = app.db.balance(org).await?;
    let now = app.clock.now();
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
        "lots": lots,
        "expiring_soon": expiring,
        // A usage forecast needs the reports of a later issue; null means "not computed".
        "forecast": Value::Null,
    }))
}

pub async fn key(State(app): State<Arc<App>>, ApiKeyCaller(key): ApiKeyCaller) -> Response {
    respond(key_json(&app, &key).await)
}

async fn key_json(app: &App, key: &ApiKeyRecord) -> Result<Value, ApiError> {
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
        },
    }))
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
    let rec = app.db.receipt(&key.org, &id).await?.ok_or_else(not_found)?;
    if let Some((receipt, settlement)) = rec.settled {
        // The receipt written with the charge, completed by what the ledger did with it.
        let mut v: Value = serde_json::from_str(&receipt).unwrap_or_else(|_| json!({}));
        v["held"] = json!(settlement.held);
        v["charged"] = json!(settlement.charged);
        v["overrun"] = json!(settlement.overrun);
        v["late"] = json!(settlement.late);
        v["lots"] = json!(settlement.draws);
        return Ok(v);
    }
    let admission: Value = rec
        .admission
        .as_deref()
        .and_then(|a| serde_json::from_str(a).ok())
        .unwrap_or(Value::Null);
    // In flight, or a hold that ended without a charge (released, or expired unsettled).
    let (status, note) = match rec.resolution {
        None => ("pending", None),
        Some(r) => (
            "free",
            Some(format!("hold {} without a charge", r.as_str())),
        ),
    };
    Ok(json!({
        "id": rec.id,
        "model": admission["model"],
        "key_id": admission["key_id"],
        "stream": admission["stream"],
        "usage": Value::Null,
        "held": rec.held,
        "charged": "0",
        "status": status,
        "note": note,
        "created_at": rec.created_at.to_rfc3339(),
    }))
}

/// The receipt of a settlement waiting in this process's spool: what it will charge, marked
/// pending (the outcome it will have is kept as `outcome`).
fn pending_receipt(spooled: &crate::spool::Spooled) -> Value {
    let mut v: Value = spooled
        .settle
        .memo
        .as_deref()
        .and_then(|m| serde_json::from_str(m).ok())
        .unwrap_or_else(|| json!({"id": spooled.settle.hold}));
    v["outcome"] = v.get("status").cloned().unwrap_or(Value::Null);
    v["status"] = json!("pending");
    v["charged"] = json!(spooled.settle.amount);
    v["note"] = json!(
        "charge pending: the database could not take it; it is applied, exactly once, when it is back"
    );
    v
}
