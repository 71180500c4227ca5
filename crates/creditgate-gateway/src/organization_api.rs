//! `/v1/organizations/*` in Anthropic's Admin API shapes (`docs/accounts.md`): the organization,
//! its members, invitations, API keys, admin keys, credits and audit log. Every handler takes
//! an [`OrgCaller`], asks for the role it needs, and touches only the caller's organization.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::Json;
use creditgate_core::accounts::{
    Action, AdminKeyRecord, AuditEvent, Email, Invite, KeyLimits, Role,
};
use creditgate_core::clock::Timestamp;
use creditgate_core::ids::{AdminKeyId, ApiKeyId, InviteId, UserId};
use creditgate_core::keys::{ApiKeyRecord, KeyStatus};
use creditgate_core::ledger::LedgerStore;
use serde::{Deserialize, Deserializer};
use serde_json::{json, Value};

use crate::caller::OrgCaller;
use crate::error::{ApiError, JsonBody};
pub use crate::lists::{page, ListQuery};
use crate::lists::{page_json, page_limit};
use crate::members::{self, user_json, Change, KeyUpdate};
use crate::App;

type Answer = Result<Json<Value>, ApiError>;

/// Anthropic's key status: `active`, `inactive` (disabled), `archived` (revoked), `expired`.
fn key_status(k: &ApiKeyRecord, now: Timestamp) -> &'static str {
    match k.status {
        KeyStatus::Active if k.expires_at.is_some_and(|e| e <= now) => "expired",
        KeyStatus::Active => "active",
        KeyStatus::Disabled => "inactive",
        KeyStatus::Revoked => "archived",
    }
}

pub fn api_key_json(k: &ApiKeyRecord, now: Timestamp) -> Value {
    json!({
        "id": k.id,
        "type": "api_key",
        "name": k.name,
        "status": key_status(k, now),
        "created_at": k.created_at.to_rfc3339(),
        "created_by": {"id": k.created_by.id, "type": k.created_by.kind},
        "partial_key_hint": k.hint.to_string(),
        "expires_at": k.expires_at.map(|t| t.to_rfc3339()),
        "limits": k.limits,
        "organization_id": k.org,
    })
}

pub fn admin_key_json(k: &AdminKeyRecord) -> Value {
    json!({
        "id": k.id,
        "type": "admin_key",
        "name": k.name,
        "status": if k.active { "active" } else { "inactive" },
        "created_at": k.created_at.to_rfc3339(),
        "created_by": {"id": k.created_by.id, "type": k.created_by.kind},
        "partial_key_hint": k.hint.to_string(),
    })
}

fn invite_json(i: &Invite, now: Timestamp) -> Value {
    json!({
        "id": i.id,
        "type": "invite",
        "email": i.email,
        "role": i.role.as_str(),
        "invited_at": i.invited_at.to_rfc3339(),
        "expires_at": i.expires_at.to_rfc3339(),
        "status": i.status(now),
    })
}

pub fn audit_json(e: &AuditEvent) -> Value {
    json!({
        "id": e.id,
        "type": "audit_event",
        "at": e.at.to_rfc3339(),
        "organization_id": e.org,
        "actor": {"type": e.actor.kind, "id": e.actor.id},
        "action": e.action,
        "target": {"type": e.target_type, "id": e.target_id},
        "ip": e.ip,
        "details": e.details,
    })
}

/// Reads a body's fields once the caller is known to be allowed (so that a caller without the
/// role learns nothing from validation errors).
fn parse_body<T: serde::de::DeserializeOwned>(raw: Value) -> Result<T, ApiError> {
    serde_json::from_value(raw)
        .map_err(|e| ApiError::invalid_request(format!("Invalid request body: {e}")))
}

fn parse_id<T>(
    text: &str,
    parse: fn(&str) -> Result<T, creditgate_core::ids::IdError>,
    what: &str,
) -> Result<T, ApiError> {
    parse(text).map_err(|_| ApiError::not_found(format!("No {what} {text} in this organization.")))
}

/// `GET /v1/organizations/me`.
pub async fn me(State(app): State<Arc<App>>, caller: OrgCaller) -> Answer {
    caller.require(Action::Read)?;
    let org = app.db.organization(&caller.org).await?;
    Ok(Json(
        json!({"id": org.id, "type": "organization", "name": org.name,
        "role": caller.role.as_str()}),
    ))
}

/// `GET /v1/organizations/users[?email=]`.
pub async fn list_users(
    State(app): State<Arc<App>>,
    caller: OrgCaller,
    Query(q): Query<ListQuery>,
) -> Answer {
    caller.require(Action::Read)?;
    let email = match &q.email {
        Some(e) => Some(Email::parse(e)?),
        None => None,
    };
    let members = app.db.members(&caller.org, email.as_ref()).await?;
    page(members.iter().map(user_json).collect(), &q)
}

/// `GET /v1/organizations/users/{id}`.
pub async fn get_user(
    State(app): State<Arc<App>>,
    caller: OrgCaller,
    Path(id): Path<String>,
) -> Answer {
    caller.require(Action::Read)?;
    let user = parse_id(&id, UserId::parse, "user")?;
    let m = app.db.member(&caller.org, &user).await?;
    let m = m.ok_or_else(|| ApiError::not_found(format!("No user {id} in this organization.")))?;
    Ok(Json(user_json(&m)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleChange {
    role: String,
}

/// `POST /v1/organizations/users/{id}` `{"role"}`.
pub async fn update_user(
    State(app): State<Arc<App>>,
    caller: OrgCaller,
    Path(id): Path<String>,
    JsonBody(raw): JsonBody<Value>,
) -> Answer {
    caller.require(Action::ManageMembers)?;
    let req: RoleChange = parse_body(raw)?;
    let user = parse_id(&id, UserId::parse, "user")?;
    let role = Role::parse(&req.role)?;
    let change = Change::by(&app.db, &caller, app.clock.now());
    let m = members::change_role(&caller, &change, &user, role).await?;
    Ok(Json(user_json(&m)))
}

/// `DELETE /v1/organizations/users/{id}` (a member may remove themselves: leave).
pub async fn delete_user(
    State(app): State<Arc<App>>,
    caller: OrgCaller,
    Path(id): Path<String>,
) -> Answer {
    let user = parse_id(&id, UserId::parse, "user")?;
    let change = Change::by(&app.db, &caller, app.clock.now());
    members::remove_member(&caller, &change, &user).await?;
    Ok(Json(json!({"id": user, "type": "user_deleted"})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transfer {
    user_id: String,
}

/// `POST /v1/organizations/transfer_ownership` `{"user_id"}` (extension; owner only).
pub async fn transfer_ownership(
    State(app): State<Arc<App>>,
    caller: OrgCaller,
    JsonBody(raw): JsonBody<Value>,
) -> Answer {
    caller.require(Action::Own)?;
    let req: Transfer = parse_body(raw)?;
    let to = parse_id(&req.user_id, UserId::parse, "user")?;
    let change = Change::by(&app.db, &caller, app.clock.now());
    members::transfer_ownership(&caller, &change, &to).await?;
    let m = app.db.member(&caller.org, &to).await?;
    Ok(Json(m.as_ref().map(user_json).unwrap_or(Value::Null)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewInvite {
    email: String,
    role: String,
}

/// `POST /v1/organizations/invites` `{"email","role"}`: emails a link to the page `/join/{token}`.
pub async fn create_invite(
    State(app): State<Arc<App>>,
    caller: OrgCaller,
    JsonBody(raw): JsonBody<Value>,
) -> Answer {
    caller.require(Action::ManageMembers)?;
    let req: NewInvite = parse_body(raw)?;
    let email = Email::parse(&req.email)?;
    let role = Role::parse(&req.role)?;
    let change = Change::by(&app.db, &caller, app.clock.now());
    let invite = members::invite(
        &change,
        &caller.org,
        caller.role,
        &email,
        role,
        &app.mailer,
        &app.cfg.accounts.public_url,
    )
    .await?;
    Ok(Json(invite_json(&invite, change.now)))
}

/// `GET /v1/organizations/invites`.
pub async fn list_invites(
    State(app): State<Arc<App>>,
    caller: OrgCaller,
    Query(q): Query<ListQuery>,
) -> Answer {
    caller.require(Action::Read)?;
    let now = app.clock.now();
    let invites = app.db.invites(&caller.org).await?;
    page(invites.iter().map(|i| invite_json(i, now)).collect(), &q)
}

/// `GET /v1/organizations/invites/{id}`.
pub async fn get_invite(
    State(app): State<Arc<App>>,
    caller: OrgCaller,
    Path(id): Path<String>,
) -> Answer {
    caller.require(Action::Read)?;
    let invite_id = parse_id(&id, InviteId::parse, "invite")?;
    let invite = app.db.invite(&caller.org, &invite_id).await?;
    let invite = invite
        .ok_or_else(|| ApiError::not_found(format!("No invite {id} in this organization.")))?;
    Ok(Json(invite_json(&invite, app.clock.now())))
}

/// `DELETE /v1/organizations/invites/{id}`.
pub async fn delete_invite(
    State(app): State<Arc<App>>,
    caller: OrgCaller,
    Path(id): Path<String>,
) -> Answer {
    caller.require(Action::ManageMembers)?;
    let invite_id = parse_id(&id, InviteId::parse, "invite")?;
    if !app.db.delete_invite(&caller.org, &invite_id).await? {
        return Err(ApiError::not_found(format!(
            "No invite {id} in this organization."
        )));
    }
    let change = Change::by(&app.db, &caller, app.clock.now());
    change
        .audit(&caller.org, "invite.deleted", "invite", &id, json!({}))
        .await?;
    Ok(Json(json!({"id": invite_id, "type": "invite_deleted"})))
}

/// `GET /v1/organizations/api_keys[?status=active|inactive|archived|expired]`.
pub async fn list_api_keys(
    State(app): State<Arc<App>>,
    caller: OrgCaller,
    Query(q): Query<ListQuery>,
) -> Answer {
    caller.require(Action::Read)?;
    if let Some(s) = &q.status {
        if !["active", "inactive", "archived", "expired"].contains(&s.as_str()) {
            return Err(ApiError::invalid_request(
                "status: must be active, inactive, archived or expired",
            ));
        }
    }
    let now = app.clock.now();
    let keys = app.db.api_keys(Some(&caller.org)).await?;
    let items = keys
        .iter()
        .filter(|k| q.status.as_deref().is_none_or(|s| key_status(k, now) == s))
        .map(|k| api_key_json(k, now))
        .collect();
    page(items, &q)
}

/// `GET /v1/organizations/api_keys/{id}`.
pub async fn get_api_key(
    State(app): State<Arc<App>>,
    caller: OrgCaller,
    Path(id): Path<String>,
) -> Answer {
    caller.require(Action::Read)?;
    let key_id = parse_id(&id, ApiKeyId::parse, "API key")?;
    let key = app.db.api_key(&caller.org, &key_id).await?;
    let key =
        key.ok_or_else(|| ApiError::not_found(format!("No API key {id} in this organization.")))?;
    Ok(Json(api_key_json(&key, app.clock.now())))
}

fn parse_expiry(text: Option<&str>) -> Result<Option<Timestamp>, ApiError> {
    text.map(|t| {
        Timestamp::parse_rfc3339(t)
            .ok_or_else(|| ApiError::invalid_request("expires_at: must be an RFC 3339 UTC time"))
    })
    .transpose()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewApiKey {
    name: String,
    #[serde(default)]
    limits: Option<KeyLimits>,
    #[serde(default)]
    expires_at: Option<String>,
}

/// `POST /v1/organizations/api_keys` `{"name","limits"?,"expires_at"?}` → the key plus
/// `"secret"`, shown this once.
pub async fn create_api_key(
    State(app): State<Arc<App>>,
    caller: OrgCaller,
    JsonBody(raw): JsonBody<Value>,
) -> Answer {
    caller.require(Action::ManageKeys)?;
    let req: NewApiKey = parse_body(raw)?;
    let expires_at = parse_expiry(req.expires_at.as_deref())?;
    let change = Change::by(&app.db, &caller, app.clock.now());
    let limits = req.limits.unwrap_or_default();
    let (key, secret) =
        members::create_api_key(&change, &caller.org, &req.name, limits, expires_at).await?;
    let mut v = api_key_json(&key, change.now);
    v["secret"] = json!(secret.expose());
    Ok(Json(v))
}

/// `Some(None)` for an explicit `null`, `None` when absent.
pub fn double_option<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyChange {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    limits: Option<KeyLimits>,
    #[serde(default, deserialize_with = "double_option")]
    expires_at: Option<Option<String>>,
}

/// `POST /v1/organizations/api_keys/{id}` `{"name"?,"status"?,"limits"?,"expires_at"?}`.
pub async fn update_api_key(
    State(app): State<Arc<App>>,
    caller: OrgCaller,
    Path(id): Path<String>,
    JsonBody(raw): JsonBody<Value>,
) -> Answer {
    caller.require(Action::ManageKeys)?;
    let req: ApiKeyChange = parse_body(raw)?;
    let key_id = parse_id(&id, ApiKeyId::parse, "API key")?;
    let status = match req.status.as_deref() {
        None => None,
        Some("active") => Some(KeyStatus::Active),
        Some("inactive") => Some(KeyStatus::Disabled),
        Some("archived") => Some(KeyStatus::Revoked),
        Some(_) => {
            return Err(ApiError::invalid_request(
                "status: must be active, inactive or archived",
            ))
        }
    };
    let expires_at = match req.expires_at {
        None => None,
        Some(t) => Some(parse_expiry(t.as_deref())?),
    };
    let update = KeyUpdate {
        name: req.name,
        status,
        limits: req.limits,
        expires_at,
    };
    let change = Change::by(&app.db, &caller, app.clock.now());
    let key = members::update_api_key(&change, &caller.org, &key_id, update).await?;
    Ok(Json(api_key_json(&key, change.now)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewAdminKey {
    name: String,
}

/// `POST /v1/organizations/admin_keys` `{"name"}` → the key plus `"secret"`, shown once.
pub async fn create_admin_key(
    State(app): State<Arc<App>>,
    caller: OrgCaller,
    JsonBody(raw): JsonBody<Value>,
) -> Answer {
    caller.require(Action::ManageMembers)?;
    let req: NewAdminKey = parse_body(raw)?;
    let change = Change::by(&app.db, &caller, app.clock.now());
    let (key, secret) = members::create_admin_key(&change, &caller.org, &req.name).await?;
    let mut v = admin_key_json(&key);
    v["secret"] = json!(secret.expose());
    Ok(Json(v))
}

/// `GET /v1/organizations/admin_keys`.
pub async fn list_admin_keys(
    State(app): State<Arc<App>>,
    caller: OrgCaller,
    Query(q): Query<ListQuery>,
) -> Answer {
    caller.require(Action::ManageMembers)?;
    let keys = app.db.admin_keys(&caller.org).await?;
    page(keys.iter().map(admin_key_json).collect(), &q)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminKeyChange {
    status: String,
}

/// `POST /v1/organizations/admin_keys/{id}` `{"status":"inactive"}` (final).
pub async fn update_admin_key(
    State(app): State<Arc<App>>,
    caller: OrgCaller,
    Path(id): Path<String>,
    JsonBody(raw): JsonBody<Value>,
) -> Answer {
    caller.require(Action::ManageMembers)?;
    let req: AdminKeyChange = parse_body(raw)?;
    let key_id = parse_id(&id, AdminKeyId::parse, "admin key")?;
    if req.status != "inactive" {
        return Err(ApiError::invalid_request(
            "status: only inactive (deactivation is final)",
        ));
    }
    let change = Change::by(&app.db, &caller, app.clock.now());
    members::deactivate_admin_key(&change, &caller.org, &key_id).await?;
    let keys = app.db.admin_keys(&caller.org).await?;
    let key = keys.iter().find(|k| k.id == key_id).map(admin_key_json);
    Ok(Json(key.unwrap_or(Value::Null)))
}

/// `GET /v1/organizations/credits`: the same object as `GET /v1/credits`.
pub async fn credits(State(app): State<Arc<App>>, caller: OrgCaller) -> Answer {
    caller.require(Action::Read)?;
    Ok(Json(crate::account::credits_of(&app, &caller.org).await?))
}

/// `GET /v1/organizations/audit_log` (newest first).
pub async fn audit_log(
    State(app): State<Arc<App>>,
    caller: OrgCaller,
    Query(q): Query<ListQuery>,
) -> Answer {
    caller.require(Action::Read)?;
    audit_page(&app, Some(&caller.org), &q).await
}

/// A page of the audit log, newest first, paged by `after_id` (older) or `before_id` (newer).
pub async fn audit_page(
    app: &App,
    org: Option<&creditgate_core::ids::OrganizationId>,
    q: &ListQuery,
) -> Answer {
    let limit = page_limit(q)?;
    let seq = |id: &str| {
        id.strip_prefix("audit_")
            .and_then(|n| n.parse::<i64>().ok())
            .ok_or_else(|| ApiError::invalid_request(format!("{id:?} is not an audit event id")))
    };
    if let Some(before) = &q.before_id {
        // Newer than an event: read them all since it is rare and bounded by the page size.
        let newer = seq(before)?;
        let all = app.db.audit_log(org, None, i64::MAX).await?;
        let items: Vec<Value> = all
            .iter()
            .filter(|e| seq(&e.id).is_ok_and(|s| s > newer))
            .map(audit_json)
            .collect();
        let from = items.len().saturating_sub(limit);
        return Ok(page_json(&items[from..], from > 0));
    }
    let after = q.after_id.as_deref().map(seq).transpose()?;
    let events = app.db.audit_log(org, after, limit as i64 + 1).await?;
    let data: Vec<Value> = events.iter().take(limit).map(audit_json).collect();
    Ok(page_json(&data, events.len() > limit))
}
