//! The HTTP routes of buying credits: the organization's `/v1/billing/*` (`docs/payments.md`: any
//! member reads, owner/admin/billing write) and the operator's orders, plans and manual payments
//! (`docs/accounts.md`). Handlers stay thin: the services of [`super::Payments`] and the storage's
//! crediting transaction do the work. Another organization's ids answer 404, like ids that do
//! not exist.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Html;
use axum::Json;
use creditgate_core::accounts::{Action, Actor, AuditEvent};
use creditgate_core::ids::{OrderId, OrganizationId};
use creditgate_core::ledger::LedgerStore;
use creditgate_core::money::{Decimal, NanoCredits};
use creditgate_core::payments::{
    Address, BillingProfile, Order, OrderStatus, Plan, Provider, CURRENCY,
};
use creditgate_storage::payments::{OrderFilter, PaymentOutcome, MAX_ORDER_PAGE};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{order_json, CheckoutRequest, ManualPayment};
use crate::caller::{Operator, OrgCaller};
use crate::error::{ApiError, JsonBody};
use crate::lists::{page, ListQuery};
use crate::App;

type Answer = Result<Json<Value>, ApiError>;

fn parse<T: DeserializeOwned>(raw: Value) -> Result<T, ApiError> {
    serde_json::from_value(raw)
        .map_err(|e| ApiError::invalid_request(format!("Invalid request body: {e}")))
}

fn no_order(id: &str) -> ApiError {
    ApiError::not_found(format!("No order {id}."))
}

/// The order `id` if it belongs to `org` (any organization for the operator); 404 otherwise.
async fn find_order(app: &App, id: &str, org: Option<&OrganizationId>) -> Result<Order, ApiError> {
    let parsed = OrderId::parse(id).map_err(|_| no_order(id))?;
    match app.db.order(&parsed).await? {
        Some(o) if org.is_none_or(|org| *org == o.org) => Ok(o),
        _ => Err(no_order(id)),
    }
}

/// An order with its refunds and disputes, each the ledger transfer that moved its credits.
pub async fn order_full(app: &App, order: &Order, base: &str) -> Result<Value, ApiError> {
    let mut v = order_json(order, base);
    let clawbacks = app.db.order_clawbacks(&order.id).await?;
    v["clawbacks"] = clawbacks
        .iter()
        .map(|c| {
            json!({
                "transfer_id": c.transfer_id,
                "kind": c.kind,
                "amount_cents": c.amount_cents,
                "credits": c.credits.to_string(),
                "debt": c.debt.to_string(),
                "at": c.at.to_rfc3339(),
            })
        })
        .collect();
    Ok(v)
}

async fn orders_page(app: &App, filter: OrderFilter, q: &ListQuery, base: &str) -> Answer {
    let orders = app.db.orders(&filter).await?;
    let mut items = Vec::with_capacity(orders.len());
    for o in &orders {
        items.push(order_full(app, o, base).await?);
    }
    page(items, q)
}

pub fn plan_json(p: &Plan) -> Value {
    json!({
        "id": p.id,
        "type": "plan",
        "name": p.name,
        "credits": p.credits.to_string(),
        "amount_cents": p.amount_cents,
        "currency": p.currency,
        "expires_in_days": p.expires_in_days,
        "archived": p.archived,
    })
}

/// `GET /v1/billing/plans`: the plans on sale and the custom amount's bounds.
pub async fn plans(State(app): State<Arc<App>>, caller: OrgCaller) -> Answer {
    caller.require(Action::Read)?;
    let plans = app.db.plans(false).await?;
    let custom = app.payments.cfg.custom.as_ref().map(|c| {
        json!({
            "min_credits": c.min_credits.to_string(),
            "max_credits": c.max_credits.map(|m| m.to_string()),
            "cents_per_credit": Decimal::new(100, 0)
                .and_then(|h| c.price_per_credit_usd.checked_mul(h))
                .map(|d| d.to_string())
                .ok(),
        })
    });
    Ok(Json(json!({
        "data": plans.iter().map(plan_json).collect::<Vec<_>>(),
        "custom": custom,
    })))
}

fn profile_json(p: &BillingProfile) -> Value {
    let a = &p.address;
    json!({
        "type": "billing_profile",
        "name": p.name,
        "email": p.email,
        "country": p.country,
        "address": {"line1": a.line1, "line2": a.line2, "city": a.city,
                    "postal_code": a.postal_code, "state": a.state},
        "tax_id": p.tax_id,
    })
}

/// `GET /v1/billing/profile`.
pub async fn get_profile(State(app): State<Arc<App>>, caller: OrgCaller) -> Answer {
    caller.require(Action::Read)?;
    Ok(Json(profile_json(
        &app.db.billing_profile(&caller.org).await?,
    )))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileBody {
    name: Option<String>,
    email: Option<String>,
    country: Option<String>,
    #[serde(default)]
    address: AddressBody,
    tax_id: Option<String>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AddressBody {
    line1: Option<String>,
    line2: Option<String>,
    city: Option<String>,
    postal_code: Option<String>,
    state: Option<String>,
}

/// `PUT /v1/billing/profile`: replaces the profile (audited).
pub async fn put_profile(
    State(app): State<Arc<App>>,
    caller: OrgCaller,
    JsonBody(raw): JsonBody<Value>,
) -> Answer {
    caller.require(Action::ManageBilling)?;
    let b: ProfileBody = parse(raw)?;
    let profile = BillingProfile {
        name: b.name,
        email: b.email,
        country: b.country,
        address: Address {
            line1: b.address.line1,
            line2: b.address.line2,
            city: b.address.city,
            postal_code: b.address.postal_code,
            state: b.address.state,
        },
        tax_id: b.tax_id,
    }
    .normalized()?;
    app.db.put_billing_profile(&caller.org, &profile).await?;
    crate::members::Change::by(&app.db, &caller, app.clock.now())
        .audit(
            &caller.org,
            "billing_profile.updated",
            "organization",
            caller.org.as_str(),
            json!({"country": profile.country}),
        )
        .await?;
    Ok(Json(profile_json(&profile)))
}

/// `POST /v1/billing/checkout` `{"plan_id"}` or `{"credits"}` → `{"order","checkout_url"}`.
pub async fn checkout(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    caller: OrgCaller,
    JsonBody(raw): JsonBody<Value>,
) -> Answer {
    caller.require(Action::ManageBilling)?;
    let mut req: CheckoutRequest = parse(raw)?;
    req.base_url = Some(app.payments.base_url(&app, &headers));
    let (order, url) = app.payments.checkout(&app, &caller.org, req).await?;
    Ok(Json(json!({
        "order": order_full(&app, &order, &app.payments.base_url(&app, &headers)).await?,
        "checkout_url": url,
    })))
}

/// `GET /v1/billing/orders`, newest first.
pub async fn list_orders(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    caller: OrgCaller,
    Query(q): Query<ListQuery>,
) -> Answer {
    caller.require(Action::Read)?;
    let filter = OrderFilter {
        org: Some(caller.org.clone()),
        limit: MAX_ORDER_PAGE,
        ..Default::default()
    };
    orders_page(&app, filter, &q, &app.payments.base_url(&app, &headers)).await
}

/// `GET /v1/billing/orders/{id}`.
pub async fn get_order(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    caller: OrgCaller,
    Path(id): Path<String>,
) -> Answer {
    caller.require(Action::Read)?;
    let order = find_order(&app, &id, Some(&caller.org)).await?;
    Ok(Json(
        order_full(&app, &order, &app.payments.base_url(&app, &headers)).await?,
    ))
}

/// `GET /v1/billing/orders/{id}/receipt`: the printable receipt of a credited order.
pub async fn order_receipt(
    State(app): State<Arc<App>>,
    caller: OrgCaller,
    Path(id): Path<String>,
) -> Result<Html<String>, ApiError> {
    caller.require(Action::Read)?;
    let order = find_order(&app, &id, Some(&caller.org)).await?;
    super::receipt::render_order(&app, &order).await
}

#[derive(Deserialize)]
pub struct AdminOrderQuery {
    status: Option<String>,
    organization_id: Option<String>,
    provider: Option<String>,
}

/// `GET /admin/v1/orders[?status=&organization_id=&provider=]`.
pub async fn admin_orders(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    _op: Operator,
    Query(f): Query<AdminOrderQuery>,
    Query(q): Query<ListQuery>,
) -> Answer {
    let bad = |what: &str| ApiError::invalid_request(format!("{what} is not valid here"));
    let filter = OrderFilter {
        org: f
            .organization_id
            .map(|o| OrganizationId::parse(&o).map_err(|_| bad("organization_id")))
            .transpose()?,
        status: f
            .status
            .map(|s| OrderStatus::parse(&s).ok_or_else(|| bad("status")))
            .transpose()?,
        provider: f
            .provider
            .map(|p| Provider::parse(&p).ok_or_else(|| bad("provider")))
            .transpose()?,
        limit: MAX_ORDER_PAGE,
    };
    orders_page(&app, filter, &q, &app.payments.base_url(&app, &headers)).await
}

/// `POST /admin/v1/orders/{id}/recheck`: asks the provider again and applies the answer.
pub async fn admin_recheck(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    _op: Operator,
    Path(id): Path<String>,
) -> Answer {
    let order = find_order(&app, &id, None).await?;
    let outcome = app.payments.recheck(&app, &order.id).await?;
    let order = find_order(&app, &id, None).await?;
    let label = match &outcome {
        PaymentOutcome::Ignored(why) => format!("ignored: {why}"),
        other => other.label().to_owned(),
    };
    Ok(Json(json!({
        "order": order_full(&app, &order, &app.payments.base_url(&app, &headers)).await?,
        "outcome": label,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RefundBody {
    credits: Option<NanoCredits>,
}

/// `POST /admin/v1/orders/{id}/refund` `{"credits"?}`: claws back the lot's unspent remainder
/// once and refunds its share of the price through the provider.
pub async fn admin_refund(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    op: Operator,
    Path(id): Path<String>,
    JsonBody(raw): JsonBody<Value>,
) -> Answer {
    let order = find_order(&app, &id, None).await?;
    let body: RefundBody = parse(raw)?;
    let actor = Actor::operator();
    let (order, cents) = match body.credits {
        None => app.payments.refund(&app, &order.id, &actor).await?,
        Some(credits) => {
            app.payments
                .refund_credits(&app, &order.id, credits, &actor)
                .await?
        }
    };
    tracing::info!(order = %order.id, cents, ip = ?op.ip, "operator refund");
    Ok(Json(json!({
        "order": order_full(&app, &order, &app.payments.base_url(&app, &headers)).await?,
        "refunded_cents": cents,
    })))
}

/// `GET /admin/v1/plans`: every plan, archived ones too.
pub async fn admin_plans(
    State(app): State<Arc<App>>,
    _op: Operator,
    Query(q): Query<ListQuery>,
) -> Answer {
    let plans = app.db.plans(true).await?;
    page(plans.iter().map(plan_json).collect(), &q)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanBody {
    id: Option<String>,
    name: Option<String>,
    credits: Option<NanoCredits>,
    amount_cents: Option<i64>,
    #[serde(default, deserialize_with = "present")]
    expires_in_days: Option<Option<u32>>,
    archived: Option<bool>,
}

/// A field that may be absent (keep), `null` (clear) or a value.
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

async fn audit_plan(app: &App, action: &str, plan: &Plan) -> Result<(), ApiError> {
    app.db
        .append_audit(&AuditEvent {
            id: String::new(),
            org: None,
            at: app.clock.now(),
            actor: Actor::operator(),
            action: action.to_owned(),
            target_type: "plan".to_owned(),
            target_id: plan.id.clone(),
            ip: None,
            details: plan_json(plan),
        })
        .await?;
    Ok(())
}

/// `POST /admin/v1/plans` `{"id","name","credits","amount_cents","expires_in_days"?}`.
pub async fn admin_create_plan(
    State(app): State<Arc<App>>,
    _op: Operator,
    JsonBody(raw): JsonBody<Value>,
) -> Answer {
    let b: PlanBody = parse(raw)?;
    let missing = |f: &str| ApiError::invalid_request(format!("{f}: required"));
    let plan = Plan {
        id: b.id.ok_or_else(|| missing("id"))?,
        name: b.name.ok_or_else(|| missing("name"))?,
        credits: b.credits.ok_or_else(|| missing("credits"))?,
        amount_cents: b.amount_cents.ok_or_else(|| missing("amount_cents"))?,
        currency: CURRENCY.to_owned(),
        expires_in_days: b.expires_in_days.flatten(),
        archived: b.archived.unwrap_or(false),
    };
    plan.validate()?;
    if !app.db.create_plan(&plan).await? {
        return Err(ApiError::new(
            axum::http::StatusCode::CONFLICT,
            "invalid_request_error",
            format!("A plan {} exists already.", plan.id),
        ));
    }
    audit_plan(&app, "plan.created", &plan).await?;
    Ok(Json(plan_json(&plan)))
}

/// `POST /admin/v1/plans/{id}` `{"name"?,"credits"?,"amount_cents"?,"expires_in_days"?,
/// "archived"?}`: an edit never changes an order already open.
pub async fn admin_update_plan(
    State(app): State<Arc<App>>,
    _op: Operator,
    Path(id): Path<String>,
    JsonBody(raw): JsonBody<Value>,
) -> Answer {
    let mut plan = app
        .db
        .plan(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("No plan {id}.")))?;
    let b: PlanBody = parse(raw)?;
    if b.id.as_ref().is_some_and(|new| *new != id) {
        return Err(ApiError::invalid_request("id: a plan's id cannot change"));
    }
    plan.name = b.name.unwrap_or(plan.name);
    plan.credits = b.credits.unwrap_or(plan.credits);
    plan.amount_cents = b.amount_cents.unwrap_or(plan.amount_cents);
    plan.expires_in_days = b.expires_in_days.unwrap_or(plan.expires_in_days);
    plan.archived = b.archived.unwrap_or(plan.archived);
    plan.validate()?;
    app.db.update_plan(&plan).await?;
    let action = if plan.archived {
        "plan.archived"
    } else {
        "plan.updated"
    };
    audit_plan(&app, action, &plan).await?;
    Ok(Json(plan_json(&plan)))
}

/// `POST /admin/v1/organizations/{id}/payments`: a manual payment, credited with a receipt;
/// idempotent on (`method`, `reference`).
pub async fn admin_record_payment(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    _op: Operator,
    Path(id): Path<String>,
    JsonBody(raw): JsonBody<Value>,
) -> Answer {
    let missing = || ApiError::not_found(format!("No organization {id}."));
    let org = OrganizationId::parse(&id).map_err(|_| missing())?;
    app.db.organization(&org).await.map_err(|_| missing())?;
    let m: ManualPayment = parse(raw)?;
    let (order, created) = app
        .payments
        .record_manual(&app, &org, m, &Actor::operator())
        .await?;
    let mut v = order_full(&app, &order, &app.payments.base_url(&app, &headers)).await?;
    v["created"] = created.into();
    Ok(Json(v))
}
