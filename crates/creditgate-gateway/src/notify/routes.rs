//! `GET` / `PUT /v1/billing/alerts` (`docs/alerts.md`): any member reads; owner, admin and
//! billing write (audited). Bad settings are refused with a 400 saying why, and change nothing.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use creditgate_core::accounts::{Action, Email};
use creditgate_core::ids::OrganizationId;
use creditgate_core::money::NanoCredits;
use creditgate_storage::notify::AlertSettings;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::caller::OrgCaller;
use crate::error::{ApiError, JsonBody};
use crate::members::Change;
use crate::App;

/// Most low-balance thresholds an organization may set.
pub const MAX_THRESHOLDS: usize = 10;
/// Most extra addresses alerts are emailed to.
pub const MAX_EMAILS: usize = 20;

/// The body of `PUT /v1/billing/alerts`: both lists, replacing the stored ones.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsBody {
    low_balance_thresholds: Vec<NanoCredits>,
    emails: Vec<String>,
}

fn settings_json(org: &OrganizationId, s: &AlertSettings) -> Value {
    json!({
        "type": "alert_settings",
        "organization_id": org,
        "low_balance_thresholds": s.thresholds.iter().map(|t| t.to_string()).collect::<Vec<_>>(),
        "emails": s.emails,
    })
}

/// `GET /v1/billing/alerts`.
pub async fn get_settings(
    State(app): State<Arc<App>>,
    caller: OrgCaller,
) -> Result<Json<Value>, ApiError> {
    caller.require(Action::Read)?;
    let s = app.db.alert_settings(&caller.org).await?;
    Ok(Json(settings_json(&caller.org, &s)))
}

/// `PUT /v1/billing/alerts`: replaces the thresholds and the extra addresses (audited).
pub async fn put_settings(
    State(app): State<Arc<App>>,
    caller: OrgCaller,
    JsonBody(raw): JsonBody<Value>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Action::ManageBilling)?;
    let body: SettingsBody = serde_json::from_value(raw)
        .map_err(|e| ApiError::invalid_request(format!("Invalid request body: {e}")))?;
    let settings = validate(body)?;
    let now = app.clock.now();
    app.db
        .put_alert_settings(&caller.org, &settings, now)
        .await?;
    let saved = app.db.alert_settings(&caller.org).await?;
    super::alerts::remember(&app, &caller.org, saved.thresholds.clone());
    let shown = settings_json(&caller.org, &saved);
    Change::by(&app.db, &caller, now)
        .audit(
            &caller.org,
            "alerts.updated",
            "organization",
            caller.org.as_str(),
            shown.clone(),
        )
        .await?;
    Ok(Json(shown))
}

fn validate(b: SettingsBody) -> Result<AlertSettings, ApiError> {
    let bad = |m: String| Err(ApiError::invalid_request(m));
    if b.low_balance_thresholds.len() > MAX_THRESHOLDS {
        return bad(format!(
            "low_balance_thresholds: at most {MAX_THRESHOLDS} thresholds."
        ));
    }
    let mut thresholds = Vec::new();
    for t in b.low_balance_thresholds {
        if !t.is_positive() {
            return bad(format!(
                "low_balance_thresholds: {t} is not more than zero credits."
            ));
        }
        if thresholds.contains(&t) {
            return bad(format!("low_balance_thresholds: {t} is given twice."));
        }
        thresholds.push(t);
    }
    thresholds.sort_by(|a, b| b.cmp(a));
    if b.emails.len() > MAX_EMAILS {
        return bad(format!("emails: at most {MAX_EMAILS} addresses."));
    }
    let mut emails: Vec<String> = Vec::new();
    for e in &b.emails {
        let email = Email::parse(e).map_err(|err| {
            ApiError::invalid_request(format!("emails: {e:?} is not an email address ({err})."))
        })?;
        let email = email.as_str().to_owned();
        if emails.iter().any(|x| x.eq_ignore_ascii_case(&email)) {
            return bad(format!("emails: {email} is given twice."));
        }
        emails.push(email);
    }
    Ok(AlertSettings { thresholds, emails })
}
