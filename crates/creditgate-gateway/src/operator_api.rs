//! `/admin/v1/*` (`docs/accounts.md`): the operator manages every organization — create, search,
//! suspend, grant credits, issue admin keys, read the audit log — through the same service the
//! CLI uses.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::Json;
use creditgate_core::accounts::{parse_name, Actor, Email};
use creditgate_core::ids::OrganizationId;
use creditgate_core::ledger::{LedgerStore, LotCategory, Organization};
use creditgate_core::money::NanoCredits;
use creditgate_core::payments::credit_line::CreditLine;
use creditgate_core::usage::DisconnectPolicy;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::billing::{self, Expiry, GrantKey, GrantOrder};
use crate::caller::Operator;
use crate::error::{ApiError, JsonBody};
use crate::members::{self, Change};
use crate::organization_api::{admin_key_json, audit_page, ListQuery};
use crate::App;

type Answer = Result<Json<Value>, ApiError>;

/// Most organizations one search answers.
const MAX_SEARCH_RESULTS: i64 = 1000;

fn change<'a>(app: &'a App, op: &Operator) -> Change<'a> {
    Change::new(&app.db, Actor::operator(), op.ip.clone(), app.clock.now())
}

async fn org_json(app: &App, org: &Organization) -> Result<Value, ApiError> {
    let suspended = app.db.organization_suspended(&org.id).await?;
    let policy = app.db.disconnect_policy(&org.id).await?;
    let line = app
        .db
        .credit_line(&org.id)
        .await?
        .unwrap_or(CreditLine::PREPAID);
    Ok(json!({
        "id": org.id,
        "type": "organization",
        "name": org.name,
        "created_at": org.created_at.to_rfc3339(),
        "status": if suspended { "suspended" } else { "active" },
        "disconnect_policy": policy.map(DisconnectPolicy::as_str),
        "billing_mode": line.mode.as_str(),
        "credit_limit": line.limit,
        "owner": members::owner(&app.db, &org.id).await?.map(|m| members::user_json(&m)),
    }))
}

async fn find(app: &App, id: &str) -> Result<Organization, ApiError> {
    let not_found = || ApiError::not_found(format!("No organization {id}."));
    let org = OrganizationId::parse(id).map_err(|_| not_found())?;
    app.db.organization(&org).await.map_err(|_| not_found())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewOrganization {
    name: String,
    owner_email: Option<String>,
}

/// `POST /admin/v1/organizations` `{"name","owner_email"?}` (the owner gets an invitation).
pub async fn create(
    State(app): State<Arc<App>>,
    op: Operator,
    JsonBody(req): JsonBody<NewOrganization>,
) -> Answer {
    let email = req.owner_email.as_deref().map(Email::parse).transpose()?;
    let change = change(&app, &op);
    let owner = email
        .as_ref()
        .map(|e| (e, &app.mailer, app.cfg.accounts.public_url.as_str()));
    let org = members::create_organization(&change, None, &req.name, owner).await?;
    Ok(Json(org_json(&app, &org).await?))
}

#[derive(Deserialize)]
pub struct Search {
    q: Option<String>,
}

/// `GET /admin/v1/organizations[?q=]`: search by id or name.
pub async fn list(
    State(app): State<Arc<App>>,
    _op: Operator,
    Query(s): Query<Search>,
    Query(q): Query<ListQuery>,
) -> Answer {
    let orgs = app
        .db
        .search_organizations(s.q.as_deref().unwrap_or(""), MAX_SEARCH_RESULTS)
        .await?;
    let mut items = Vec::with_capacity(orgs.len());
    for org in &orgs {
        items.push(org_json(&app, org).await?);
    }
    crate::organization_api::page(items, &q)
}

/// `GET /admin/v1/organizations/{id}`.
pub async fn get(State(app): State<Arc<App>>, _op: Operator, Path(id): Path<String>) -> Answer {
    let org = find(&app, &id).await?;
    Ok(Json(org_json(&app, &org).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrganizationChange {
    name: Option<String>,
    status: Option<String>,
    #[serde(default, deserialize_with = "crate::organization_api::double_option")]
    disconnect_policy: Option<Option<String>>,
    /// Invites an owner, for an organization that has none.
    owner_email: Option<String>,
    billing_mode: Option<String>,
    /// Credits, as a decimal string or an integer (`docs/credit-lines.md`).
    credit_limit: Option<Value>,
}

/// `POST /admin/v1/organizations/{id}` `{"name"?,"status"?,"disconnect_policy"?,
/// "owner_email"?,"billing_mode"?,"credit_limit"?}`. Every field is checked before anything
/// changes.
pub async fn update(
    State(app): State<Arc<App>>,
    op: Operator,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<OrganizationChange>,
) -> Answer {
    let org = find(&app, &id).await?;
    let change = change(&app, &op);
    let suspend = match req.status.as_deref() {
        None => None,
        Some("active") => Some(false),
        Some("suspended") => Some(true),
        Some(_) => {
            return Err(ApiError::invalid_request(
                "status: must be active or suspended",
            ))
        }
    };
    if let Some(name) = &req.name {
        parse_name("name", name)?;
    }
    let policy = req
        .disconnect_policy
        .as_ref()
        .map(|p| billing::parse_policy(p.as_deref()))
        .transpose()?;
    let owner_email = req.owner_email.as_deref().map(Email::parse).transpose()?;
    let line = credit_line(&change, &org.id, &req).await?;
    if owner_email.is_some() && members::owner(&app.db, &org.id).await?.is_some() {
        return Err(ApiError::new(
            axum::http::StatusCode::CONFLICT,
            "invalid_request_error",
            "owner_email: this organization has an owner; ownership moves only by transfer_ownership",
        ));
    }
    if let Some(name) = &req.name {
        members::rename_organization(&change, &org.id, name).await?;
    }
    if let Some(policy) = policy {
        billing::set_disconnect_policy(&change, &org.id, policy).await?;
    }
    if let Some(s) = suspend {
        members::set_suspended(&change, &org.id, s).await?;
    }
    if let Some(line) = line {
        billing::set_credit_line(&change, &org.id, line).await?;
    }
    if let Some(email) = &owner_email {
        let url = app.cfg.accounts.public_url.as_str();
        members::invite_owner(&change, &org.id, email, &app.mailer, url).await?;
    }
    Ok(Json(org_json(&app, &find(&app, &id).await?).await?))
}

/// The credit line a change asks for, checked (`None` when it names neither field).
async fn credit_line(
    change: &Change<'_>,
    org: &OrganizationId,
    req: &OrganizationChange,
) -> Result<Option<CreditLine>, ApiError> {
    if req.billing_mode.is_none() && req.credit_limit.is_none() {
        return Ok(None);
    }
    let mode = req
        .billing_mode
        .as_deref()
        .map(billing::parse_billing_mode)
        .transpose()?;
    let limit = req
        .credit_limit
        .as_ref()
        .map(billing::parse_credit_limit)
        .transpose()?;
    billing::next_credit_line(change, org, mode, limit)
        .await
        .map(Some)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewGrant {
    amount: NanoCredits,
    category: String,
    #[serde(default)]
    expires_in_days: Option<i64>,
    reference: String,
    #[serde(default)]
    memo: Option<String>,
}

/// `POST /admin/v1/organizations/{id}/grants` → the `lot`; idempotent on `reference`.
pub async fn grant(
    State(app): State<Arc<App>>,
    op: Operator,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<NewGrant>,
) -> Answer {
    let org = find(&app, &id).await?;
    let category = LotCategory::parse(&req.category)
        .ok_or_else(|| ApiError::invalid_request("category: must be granted or paid"))?;
    let order = GrantOrder {
        amount: req.amount,
        category,
        source: None,
        price_per_credit: None,
        expiry: req.expires_in_days.map_or(Expiry::Never, Expiry::InDays),
        memo: req.memo,
        key: GrantKey::Reference(req.reference.clone()),
    };
    let grant = billing::grant(&change(&app, &op), &org.id, order).await?;
    let (g, replayed) = (grant.granted, grant.replayed);
    Ok(Json(json!({
        "id": g.lot.id,
        "type": "lot",
        "organization_id": g.lot.org,
        "amount": g.lot.amount,
        "remaining": g.lot.remaining,
        "category": g.lot.category,
        "expires_at": g.lot.expires_at.map(|t| t.to_rfc3339()),
        "created_at": g.lot.created_at.to_rfc3339(),
        "repaid_overrun": g.repaid_overrun,
        "reference": req.reference,
        "replayed": replayed,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewAdminKey {
    name: String,
}

/// `POST /admin/v1/organizations/{id}/admin_keys` `{"name"}` → the key plus `"secret"`, once.
pub async fn create_admin_key(
    State(app): State<Arc<App>>,
    op: Operator,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<NewAdminKey>,
) -> Answer {
    let org = find(&app, &id).await?;
    let change = change(&app, &op);
    let (key, secret) = members::create_admin_key(&change, &org.id, &req.name).await?;
    let mut v = admin_key_json(&key);
    v["secret"] = json!(secret.expose());
    Ok(Json(v))
}

#[derive(Deserialize)]
pub struct AuditFilter {
    organization_id: Option<String>,
}

/// `GET /admin/v1/audit_log[?organization_id=]`, newest first.
pub async fn audit_log(
    State(app): State<Arc<App>>,
    _op: Operator,
    Query(f): Query<AuditFilter>,
    Query(q): Query<ListQuery>,
) -> Answer {
    let org = match &f.organization_id {
        Some(id) => Some(find(&app, id).await?.id),
        None => None,
    };
    audit_page(&app, org.as_ref(), &q).await
}
