//! The `sandbox` provider: a checkout page served by creditgate itself, answering Stripe's test
//! cards as Stripe would (`docs/payments.md`). `GET /sandbox/checkout/{order_id}` shows the page;
//! `POST` with a form or JSON `{"card", "confirm"?}` pays, then redirects to the order's
//! `success_url` (a form) or answers the order as JSON (a JSON request).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Json;
use creditgate_core::ids::OrderId;
use creditgate_core::payments::cards::{ChargeOutcome, TestCard, TEST_CARDS};
use creditgate_core::payments::{
    FailureCode, Order, OrderStatus, PaymentState, Provider, ProviderPayment,
};
use creditgate_storage::payments::{PaymentOutcome, ProviderClawback, ProviderEvent};
use serde::Deserialize;
use serde_json::json;

use super::order_json;
use super::receipt::{dollars, escape};
use crate::error::ApiError;
use crate::App;

#[derive(Debug, Default, Deserialize)]
struct PayForm {
    #[serde(default)]
    card: String,
    /// The customer passed the extra authentication step (cards that require it).
    #[serde(default)]
    confirm: Option<String>,
}

async fn sandbox_order(app: &App, id: &str) -> Result<Order, ApiError> {
    let missing = || ApiError::not_found("There is no sandbox checkout here.");
    let id = OrderId::parse(id).map_err(|_| missing())?;
    match app.db.order(&id).await? {
        Some(o) if o.provider == Provider::Sandbox => Ok(o),
        _ => Err(missing()),
    }
}

pub async fn page(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Html<String>, ApiError> {
    let order = sandbox_order(&app, &id).await?;
    Ok(Html(render(&order, None, false)))
}

pub async fn pay(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let wants_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let (card, confirmed) = card_field(&body, wants_json)?;
    let order = sandbox_order(&app, &id).await?;
    let (order, needs_confirmation) = charge(&app, order, &card, confirmed).await?;
    let public = app.payments.base_url(&app, &headers);
    if wants_json {
        let mut body = json!({"order": order_json(&order, &public)});
        if needs_confirmation {
            body["next_action"] = json!("confirm");
        }
        return Ok(Json(body).into_response());
    }
    match (&order.success_url, order.status) {
        (Some(url), OrderStatus::Credited) => Ok(Redirect::to(url).into_response()),
        _ => Ok(Html(render(&order, Some(&card), needs_confirmation)).into_response()),
    }
}

/// The card number and whether the customer confirmed, from a form or a JSON body.
pub(super) fn card_field(body: &[u8], json: bool) -> Result<(String, bool), ApiError> {
    let form: PayForm = if json {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::invalid_request(format!("invalid JSON: {e}")))?
    } else {
        parse_form(body)?
    };
    let confirmed = form
        .confirm
        .as_deref()
        .is_some_and(|v| matches!(v, "true" | "1" | "yes"));
    Ok((form.card, confirmed))
}

/// The sandbox's dispute of an order paid with `4000 0000 0000 0259`, raised right after the
/// payment as the card's issuer would: claws back the order's credits (the rest as debt).
pub(super) async fn dispute(app: &App, id: &OrderId) -> Result<(), ApiError> {
    let Some(order) = app.db.order(id).await? else {
        return Ok(());
    };
    let report = ProviderClawback::Disputed {
        dispute: sandbox_dispute_id(id),
        cents: order.amount_cents,
    };
    let event = ProviderEvent {
        provider: Provider::Sandbox,
        id: format!("sbx_dispute_{id}"),
        kind: "sandbox.dispute.created".to_owned(),
    };
    if let Some((order, Some(moved))) = app.db.apply_clawback(Some(event), id, report).await? {
        let credits = moved
            .credits
            .checked_add(moved.debt)
            .unwrap_or(moved.credits);
        super::announce_clawback(app, "dispute.created", &order, credits, &moved.transfer_id).await;
    }
    tracing::info!(order = %id, "sandbox dispute opened");
    Ok(())
}

fn sandbox_dispute_id(id: &OrderId) -> String {
    format!("sbxdp_{}", id.as_str().trim_start_matches("ord_"))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CloseDispute {
    won: bool,
}

/// `POST /admin/v1/orders/{id}/sandbox_dispute` `{"won"}`: the operator closes a sandbox
/// order's dispute, as a card issuer would decide it. Won gives the credits back (once); lost
/// keeps them clawed back.
pub async fn close_dispute(
    State(app): State<Arc<App>>,
    _op: crate::caller::Operator,
    Path(id): Path<String>,
    crate::error::JsonBody(raw): crate::error::JsonBody<serde_json::Value>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let missing = || ApiError::not_found(format!("No sandbox order {id}."));
    let order_id = OrderId::parse(&id).map_err(|_| missing())?;
    let order = sandbox_order(&app, order_id.as_str()).await?;
    let body: CloseDispute = serde_json::from_value(raw)
        .map_err(|e| ApiError::invalid_request(format!("Invalid request body: {e}")))?;
    let disputed = app
        .db
        .order_clawbacks(&order.id)
        .await?
        .iter()
        .any(|c| c.transfer_id == format!("dispute:{}", sandbox_dispute_id(&order.id)));
    if !disputed {
        return Err(ApiError::invalid_request(format!(
            "Order {id} has no open dispute."
        )));
    }
    if body.won {
        let event = ProviderEvent {
            provider: Provider::Sandbox,
            id: format!("sbx_dispute_won_{id}"),
            kind: "sandbox.dispute.closed".to_owned(),
        };
        let won = ProviderClawback::DisputeWon {
            dispute: sandbox_dispute_id(&order.id),
        };
        app.db.apply_clawback(Some(event), &order.id, won).await?;
    }
    let order = reload(&app, &order.id).await?;
    let base = app.payments.public_url(&app);
    Ok(Json(json!({
        "order": order_json(&order, &base),
        "dispute": if body.won { "won" } else { "lost" },
    })))
}

/// Pays an open order with a test card. Returns the order after it and whether the card asks
/// for the extra confirmation step first.
async fn charge(
    app: &App,
    order: Order,
    card: &str,
    confirmed: bool,
) -> Result<(Order, bool), ApiError> {
    if order.status != OrderStatus::Open {
        return Ok((order, false));
    }
    if app.clock.now() >= order.checkout_expires_at() {
        app.payments.recheck(app, &order.id).await?;
        return Ok((reload(app, &order.id).await?, false));
    }
    let card = TestCard::lookup(card).ok_or_else(|| {
        ApiError::invalid_request(format!(
            "{} Use one of the sandbox's test cards, such as 4242 4242 4242 4242.",
            FailureCode::InvalidCard.message()
        ))
    })?;
    let state = match card.charge(true, confirmed) {
        ChargeOutcome::NeedsConfirmation => return Ok((order, true)),
        ChargeOutcome::Succeeded | ChargeOutcome::SucceededThenDisputed => PaymentState::Paid,
        ChargeOutcome::Failed(code) => PaymentState::Failed { code },
    };
    let report = ProviderPayment {
        provider: Provider::Sandbox,
        order: order.id.clone(),
        org: order.org.clone(),
        amount_cents: order.amount_cents,
        currency: order.currency.clone(),
        state,
        method: Some(card.describe()),
        reference: None,
    };
    let event = ProviderEvent {
        provider: Provider::Sandbox,
        id: crate::ids::fresh("sbx"),
        kind: "sandbox.charge".to_owned(),
    };
    let outcome = app.payments.apply(app, event, report).await?;
    if card.charge(true, confirmed) == ChargeOutcome::SucceededThenDisputed
        && matches!(outcome, PaymentOutcome::Credited(_))
    {
        dispute(app, &order.id).await?;
        return Ok((reload(app, &order.id).await?, false));
    }
    let order = match outcome {
        PaymentOutcome::Credited(o) | PaymentOutcome::NotPaid(o) => *o,
        _ => reload(app, &order.id).await?,
    };
    Ok((order, false))
}

async fn reload(app: &App, id: &OrderId) -> Result<Order, ApiError> {
    app.db
        .order(id)
        .await?
        .ok_or_else(|| ApiError::not_found("There is no sandbox checkout here."))
}

fn parse_form(body: &[u8]) -> Result<PayForm, ApiError> {
    let mut form = PayForm::default();
    for (k, v) in form_urlencoded::parse(body) {
        match k.as_ref() {
            "card" => form.card = v.into_owned(),
            "confirm" => form.confirm = Some(v.into_owned()),
            _ => {}
        }
    }
    Ok(form)
}

fn render(order: &Order, card: Option<&str>, needs_confirmation: bool) -> String {
    let id = escape(order.id.as_str());
    let summary = format!(
        "{} credits for {}",
        order.credits,
        dollars(order.amount_cents)
    );
    let body = match order.status {
        OrderStatus::Open if needs_confirmation => format!(
            "<p>Your bank asks you to confirm this payment.</p>\
             <form method=\"post\"><input type=\"hidden\" name=\"card\" value=\"{}\">\
             <input type=\"hidden\" name=\"confirm\" value=\"true\">\
             <button type=\"submit\">Confirm payment</button></form>",
            escape(card.unwrap_or(""))
        ),
        OrderStatus::Open => {
            let cards: String = TEST_CARDS
                .iter()
                .map(|c| format!("<li><code>{}</code> — {:?}</li>", c.number, c.behavior))
                .collect();
            format!(
                "<form method=\"post\"><label>Card number <input name=\"card\" \
                 autocomplete=\"off\" placeholder=\"4242 4242 4242 4242\" required></label> \
                 <button type=\"submit\">Pay {}</button></form>\
                 <p>This is the sandbox: no real card is charged. Test cards:</p><ul>{cards}</ul>",
                dollars(order.amount_cents)
            )
        }
        status => {
            let failure = order
                .failure
                .as_ref()
                .map(|f| format!("<p class=\"failure\">{}</p>", escape(&f.message)))
                .unwrap_or_default();
            let receipt = order
                .receipt_number
                .as_ref()
                .map(|n| {
                    format!(
                        "<p><a href=\"/receipts/{id}\">Receipt {}</a></p>",
                        escape(n)
                    )
                })
                .unwrap_or_default();
            format!(
                "<p>Status: <strong>{}</strong></p>{failure}{receipt}",
                status.as_str()
            )
        }
    };
    // The empty icon keeps the browser from asking for a /favicon.ico the gateway does not
    // serve (the browser tests count a 404 as an error, `docs/dashboard.md`).
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Sandbox checkout</title><link rel=\"icon\" href=\"data:,\"></head><body style=\"font-family:system-ui,sans-serif;\
         max-width:36rem;margin:2rem auto\"><h1>Sandbox checkout</h1><p>Order <code>{id}</code>: \
         {summary}</p>{body}</body></html>"
    )
}
