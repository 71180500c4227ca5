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

/// `GET /sandbox/checkout/{order_id}`: the page, or a page saying why there is none.
pub async fn page(State(app): State<Arc<App>>, Path(id): Path<String>) -> Response {
    match sandbox_order(&app, &id).await {
        Ok(order) => Html(render(&order, None, false, None)).into_response(),
        Err(e) => error_page(CHECKOUT, &e),
    }
}

/// Whether a request to the sandbox's pages is an API client's (JSON) rather than a form's.
pub(super) fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

/// `POST /sandbox/checkout/{order_id}`. A form is always answered with a page: a refusal while
/// the order is still open shows the form again with the reason beside the card field (a card
/// that is not a test card, say), anything else a page with the reason; a JSON request gets
/// the API's error.
pub async fn pay(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    if wants_json(&headers) {
        return pay_with(&app, &id, &headers, &body, true).await;
    }
    let e = match pay_with(&app, &id, &headers, &body, false).await {
        Ok(page) => return Ok(page),
        Err(e) => e,
    };
    let typed = card_field(&body, false)
        .map(|(card, _)| card)
        .unwrap_or_default();
    let open = match sandbox_order(&app, &id).await {
        Ok(o) if o.status == OrderStatus::Open && e.status.is_client_error() => Some(o),
        _ => None,
    };
    Ok(match open {
        Some(order) => {
            let beside = CardError {
                typed: &typed,
                message: &e.message,
            };
            (e.status, Html(render(&order, None, false, Some(beside)))).into_response()
        }
        None => error_page(CHECKOUT, &e),
    })
}

async fn pay_with(
    app: &App,
    id: &str,
    headers: &HeaderMap,
    body: &[u8],
    wants_json: bool,
) -> Result<Response, ApiError> {
    let (card, confirmed) = card_field(body, wants_json)?;
    let order = sandbox_order(app, id).await?;
    let (order, needs_confirmation) = charge(app, order, &card, confirmed).await?;
    let public = app.payments.base_url(app, headers);
    if wants_json {
        let mut body = json!({"order": order_json(&order, &public)});
        if needs_confirmation {
            body["next_action"] = json!("confirm");
        }
        return Ok(Json(body).into_response());
    }
    match (&order.success_url, order.status) {
        (Some(url), OrderStatus::Credited) => Ok(Redirect::to(url).into_response()),
        _ => Ok(Html(render(&order, Some(&card), needs_confirmation, None)).into_response()),
    }
}

/// The title of the checkout page.
const CHECKOUT: &str = "Sandbox checkout";

/// What was typed into a card field the sandbox refused, and why.
#[derive(Debug, Clone, Copy)]
pub(super) struct CardError<'a> {
    pub typed: &'a str,
    pub message: &'a str,
}

/// The card form: a labelled field, the refusal beside it (announced, and tied to the field
/// for screen readers), the test cards.
pub(super) fn card_form(button: &str, error: Option<CardError<'_>>) -> String {
    let (value, invalid, reason) = match error {
        Some(e) => (
            escape(e.typed),
            " aria-invalid=\"true\" aria-describedby=\"card-error\"",
            format!(
                "<p id=\"card-error\" class=\"failure\" role=\"alert\">{}</p>",
                escape(e.message)
            ),
        ),
        None => (String::new(), "", String::new()),
    };
    format!(
        "<form method=\"post\"><label for=\"card\">Card number</label> <input id=\"card\" \
         name=\"card\" value=\"{value}\" autocomplete=\"off\" inputmode=\"numeric\" \
         placeholder=\"4242 4242 4242 4242\" required{invalid}>{reason} \
         <button type=\"submit\">{button}</button></form>"
    )
}

/// A page of the sandbox (the checkout or the card setup) around `body`.
pub(super) fn sandbox_page(title: &str, body: &str) -> String {
    // The empty icon keeps the browser from asking for a /favicon.ico the gateway does not
    // serve (the browser tests count a 404 as an error, `docs/dashboard.md`).
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title><link rel=\"icon\" href=\"data:,\"></head><body style=\"font-family:system-ui,sans-serif;\
         max-width:36rem;margin:2rem auto;padding:0 1rem\"><h1>{title}</h1>{body}</body></html>"
    )
}

/// A refusal answered to a browser: its status and its reason on a page, not the API's JSON.
pub(super) fn error_page(title: &str, e: &ApiError) -> Response {
    let body = format!(
        "<p class=\"failure\" role=\"alert\">{}</p>",
        escape(&e.message)
    );
    (e.status, Html(sandbox_page(title, &body))).into_response()
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

fn render(
    order: &Order,
    card: Option<&str>,
    needs_confirmation: bool,
    error: Option<CardError<'_>>,
) -> String {
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
                "{}<p>This is the sandbox: no real card is charged. Test cards:</p><ul>{cards}</ul>",
                card_form(&format!("Pay {}", dollars(order.amount_cents)), error)
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
    sandbox_page(
        CHECKOUT,
        &format!("<p>Order <code>{id}</code>: {summary}</p>{body}"),
    )
}
