//! The `sandbox` provider: a checkout page served by creditgate itself, answering Stripe's test
//! cards as Stripe would (`API.md` §7). `GET /sandbox/checkout/{order_id}` shows the page;
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
use creditgate_storage::payments::{PaymentOutcome, ProviderEvent};
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
    let form: PayForm = if wants_json {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::invalid_request(format!("invalid JSON: {e}")))?
    } else {
        parse_form(&body)?
    };
    let order = sandbox_order(&app, &id).await?;
    let confirmed = form
        .confirm
        .as_deref()
        .is_some_and(|v| matches!(v, "true" | "1" | "yes"));
    let (order, needs_confirmation) = charge(&app, order, &form.card, confirmed).await?;
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
        _ => Ok(Html(render(&order, Some(&form.card), needs_confirmation)).into_response()),
    }
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
        id: format!("sbx_{}", hex::encode(rand::random::<[u8; 12]>())),
        kind: "sandbox.charge".to_owned(),
    };
    let outcome = app.payments.apply(app, event, report).await?;
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
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Sandbox checkout</title></head><body style=\"font-family:system-ui,sans-serif;\
         max-width:36rem;margin:2rem auto\"><h1>Sandbox checkout</h1><p>Order <code>{id}</code>: \
         {summary}</p>{body}</body></html>"
    )
}
