//! `GET` / `PUT /v1/billing/auto_reload` (`docs/payments.md`): any member reads; owner, admin and
//! billing write. Bad settings are refused with a 400 saying why, and change nothing.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use creditgate_core::accounts::Action;
use creditgate_core::ids::OrganizationId;
use creditgate_core::money::NanoCredits;
use creditgate_storage::payments::{MethodStatus, ReloadSettings, ReloadStatus};
use serde::Deserialize;
use serde_json::{json, Value};

use super::advice;
use crate::caller::OrgCaller;
use crate::error::{ApiError, JsonBody};
use crate::members::Change;
use crate::App;

/// The body of `PUT /v1/billing/auto_reload`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsBody {
    enabled: bool,
    threshold: NanoCredits,
    #[serde(default)]
    amount: Option<NanoCredits>,
    #[serde(default)]
    plan_id: Option<String>,
    /// Default: the newest saved card.
    #[serde(default)]
    payment_method_id: Option<String>,
    monthly_limit: NanoCredits,
}

/// The settings as the API shows them (`status: "off"` when never set).
pub fn settings_json(org: &OrganizationId, s: Option<&ReloadSettings>) -> Value {
    let Some(s) = s else {
        return json!({
            "type": "auto_reload", "organization_id": org, "enabled": false, "status": "off",
            "paused_reason": null, "threshold": null, "amount": null, "plan_id": null,
            "payment_method_id": null, "monthly_limit": null, "retry_at": null,
            "last_attempt": null,
        });
    };
    let last = s.last_at.map(
        |at| json!({"at": at.to_rfc3339(), "outcome": s.last_outcome, "order_id": s.last_order}),
    );
    json!({
        "type": "auto_reload",
        "organization_id": org,
        "enabled": s.status != ReloadStatus::Off,
        "status": s.status.as_str(),
        "paused_reason": s.paused_reason,
        "threshold": s.threshold.to_string(),
        "amount": s.amount.map(|a| a.to_string()),
        "plan_id": s.plan_id,
        "payment_method_id": s.payment_method_id,
        "monthly_limit": s.monthly_limit.to_string(),
        "retry_at": s.retry_at.map(|t| t.to_rfc3339()),
        "last_attempt": last,
    })
}

/// `GET /v1/billing/auto_reload`.
pub async fn get_settings(
    State(app): State<Arc<App>>,
    caller: OrgCaller,
) -> Result<Json<Value>, ApiError> {
    caller.require(Action::Read)?;
    let s = app.db.auto_reload(&caller.org).await?;
    let v = settings_json(&caller.org, s.as_ref());
    Ok(Json(with_recommendation(&app, &caller.org, v).await?))
}

/// Adds the recommended threshold and amount from the last days' spend (`null` without).
async fn with_recommendation(
    app: &App,
    org: &OrganizationId,
    mut v: Value,
) -> Result<Value, ApiError> {
    let spend = advice::recent_spend(app, org, app.clock.now()).await?;
    let plans = app.db.plans(false).await?;
    v["recommendation"] = advice::recommend(&spend, &plans).unwrap_or(Value::Null);
    Ok(v)
}

/// `PUT /v1/billing/auto_reload`: replaces the settings (audited). Saving them again is how a
/// paused auto-reload is turned back on.
pub async fn put_settings(
    State(app): State<Arc<App>>,
    caller: OrgCaller,
    JsonBody(raw): JsonBody<Value>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Action::ManageBilling)?;
    let body: SettingsBody = serde_json::from_value(raw)
        .map_err(|e| ApiError::invalid_request(format!("Invalid request body: {e}")))?;
    let settings = validate(&app, &caller.org, body).await?;
    app.db.put_auto_reload(&settings).await?;
    let saved = app
        .db
        .auto_reload(&caller.org)
        .await?
        .ok_or_else(|| ApiError::internal("the auto-reload settings vanished"))?;
    app.reloads.remember(&saved);
    let shown = settings_json(&caller.org, Some(&saved));
    Change::by(&app.db, &caller, app.clock.now())
        .audit(
            &caller.org,
            "auto_reload.updated",
            "organization",
            caller.org.as_str(),
            shown.clone(),
        )
        .await?;
    Ok(Json(with_recommendation(&app, &caller.org, shown).await?))
}

async fn validate(
    app: &App,
    org: &OrganizationId,
    b: SettingsBody,
) -> Result<ReloadSettings, ApiError> {
    let bad = |m: String| Err(ApiError::invalid_request(m));
    if !b.threshold.is_positive() {
        return bad("threshold must be more than zero credits.".to_owned());
    }
    if !b.monthly_limit.is_positive() {
        return bad("monthly_limit must be more than zero credits.".to_owned());
    }
    if b.amount.is_some_and(|a| !a.is_positive()) {
        return bad("amount must be more than zero credits.".to_owned());
    }
    let (plan, amount) = match (b.plan_id.as_deref(), b.amount) {
        (Some(p), None) => (Some(p), None),
        (None, Some(a)) => (None, Some(a.to_string())),
        _ => return bad("Give either amount (credits) or plan_id, not both.".to_owned()),
    };
    let quote = app.payments.quote(app, plan, amount.as_deref()).await?;
    if quote.credits > b.monthly_limit {
        return bad(format!(
            "The reload ({} credits) is above the monthly limit ({} credits): raise \
             monthly_limit or reload less.",
            quote.credits, b.monthly_limit
        ));
    }
    let method = payment_method(app, org, b.payment_method_id.as_deref(), b.enabled).await?;
    Ok(ReloadSettings {
        org: org.clone(),
        status: if b.enabled {
            ReloadStatus::Active
        } else {
            ReloadStatus::Off
        },
        threshold: b.threshold,
        amount: b.amount.filter(|_| b.plan_id.is_none()),
        plan_id: b.plan_id,
        payment_method_id: method,
        monthly_limit: b.monthly_limit,
        paused_reason: None,
        failures: 0,
        retry_at: None,
        pending_key: None,
        last_at: None,
        last_outcome: None,
        last_order: None,
    })
}

/// The saved card to charge: the one named (it must be the organization's and saved), or
/// the newest saved card. Turning auto-reload on needs one.
async fn payment_method(
    app: &App,
    org: &OrganizationId,
    id: Option<&str>,
    required: bool,
) -> Result<Option<String>, ApiError> {
    let methods = app.db.payment_methods(org).await?;
    let active = methods.iter().filter(|m| m.status == MethodStatus::Active);
    let found = match id {
        Some(id) => {
            let found = active.clone().find(|m| m.id == id);
            if found.is_none() {
                return Err(ApiError::invalid_request(format!(
                    "There is no saved card {id}; choose one of GET /v1/billing/payment_methods."
                )));
            }
            found
        }
        None => active.clone().next(),
    };
    if required && found.is_none() {
        return Err(ApiError::invalid_request(
            "Auto-reload needs a saved card: add one with POST /v1/billing/payment_methods \
             first.",
        ));
    }
    Ok(found.map(|m| m.id.clone()))
}
