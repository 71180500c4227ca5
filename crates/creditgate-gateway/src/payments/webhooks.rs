//! `POST /webhooks/stripe`: the raw body's signature is verified (HMAC-SHA256, 300 s
//! tolerance, any of several `v1`), the session the event names is fetched from Stripe again,
//! and the storage's crediting transaction records the event id and applies it once. Events
//! that name no order of ours, or do not match theirs, are answered 200 (so Stripe stops
//! retrying) and logged; a forged signature is answered 400.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use creditgate_core::payments::signature::{self, TOLERANCE_SECS};
use creditgate_core::payments::Provider;
use creditgate_storage::payments::{ProviderClawback, ProviderEvent};
use serde::Deserialize;
use serde_json::{json, Value};

use super::stripe::session_payment;
use crate::error::ApiError;
use crate::App;

/// Largest webhook body read (Stripe's events are a few KiB).
pub const MAX_WEBHOOK_BYTES: usize = 256 * 1024;

/// The events that move an order.
const CHECKOUT_EVENTS: &[&str] = &[
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "checkout.session.async_payment_failed",
    "checkout.session.expired",
];

/// The events that take credits back (or give them back: a dispute won).
const CLAWBACK_EVENTS: &[&str] = &[
    "charge.refunded",
    "charge.dispute.created",
    "charge.dispute.closed",
];

/// Off-session charges (and the payment intents behind checkouts) report here.
const INTENT_EVENTS: &[&str] = &["payment_intent.succeeded", "payment_intent.payment_failed"];

fn answer(outcome: &str) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({"received": true, "outcome": outcome})))
}

fn object_id(event: &Event) -> &str {
    event
        .data
        .object
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// `setup_intent.succeeded` / `setup_intent.setup_failed`: the SetupIntent is read back from
/// Stripe; its metadata names creditgate's pending payment method and organization, which must
/// match; the card's brand, last four and expiry are read from its payment method.
async fn setup_intent(
    app: &App,
    stripe: &super::stripe::StripeClient,
    event: Event,
) -> Result<Json<Value>, ApiError> {
    if object_id(&event).is_empty() {
        return answer("ignored");
    }
    let seti = stripe.object("setup_intents", object_id(&event)).await?;
    let meta = &seti["metadata"];
    let method = match meta["payment_method_id"].as_str() {
        Some(id) => app.db.payment_method(id).await?,
        None => None,
    };
    let org = meta["organization_id"].as_str().unwrap_or("");
    let Some(method) = method.filter(|m| m.org.as_str() == org && m.provider == Provider::Stripe)
    else {
        tracing::warn!(event = %event.id, "stripe setup intent names no payment method of ours");
        return answer("ignored");
    };
    if event.kind != "setup_intent.succeeded" || seti["status"] != "succeeded" {
        let why = super::stripe::failure_code(&seti["last_setup_error"]).message();
        app.db.fail_payment_method(&method.id, why).await?;
        return answer("setup_failed");
    }
    let pm_id = seti["payment_method"].as_str().unwrap_or("");
    let pm = stripe.object("payment_methods", pm_id).await?;
    let card = &pm["card"];
    let saved = creditgate_storage::payments::SavedCard {
        brand: card["brand"].as_str().unwrap_or("card").to_owned(),
        last4: card["last4"].as_str().unwrap_or("").to_owned(),
        exp_month: card["exp_month"].as_i64().unwrap_or(0),
        exp_year: card["exp_year"].as_i64().unwrap_or(0),
    };
    let customer = seti["customer"].as_str();
    let fresh = super::saved::activate(app, &method, pm_id, customer, &saved).await?;
    answer(if fresh { "card_saved" } else { "duplicate" })
}

/// `payment_intent.succeeded` / `payment_failed`: the intent is read back from Stripe; its
/// metadata names the order and organization (set at checkout and on off-session charges);
/// the report goes through the same crediting transaction as a checkout's.
async fn payment_intent(
    app: &App,
    stripe: &super::stripe::StripeClient,
    event: Event,
) -> Result<Json<Value>, ApiError> {
    if object_id(&event).is_empty() {
        return answer("ignored");
    }
    let pi = stripe.object("payment_intents", object_id(&event)).await?;
    let order = pi["metadata"]["order_id"]
        .as_str()
        .and_then(|s| creditgate_core::ids::OrderId::parse(s).ok());
    let org = pi["metadata"]["organization_id"]
        .as_str()
        .and_then(|s| creditgate_core::ids::OrganizationId::parse(s).ok());
    let (Some(order), Some(org)) = (order, org) else {
        tracing::warn!(event = %event.id, "stripe payment intent names no order");
        return answer("ignored");
    };
    let state = match pi["status"].as_str() {
        Some("succeeded") => creditgate_core::payments::PaymentState::Paid,
        Some("requires_payment_method" | "canceled") => {
            creditgate_core::payments::PaymentState::Failed {
                code: super::stripe::failure_code(&pi["last_payment_error"]),
            }
        }
        _ => creditgate_core::payments::PaymentState::Pending,
    };
    let report = creditgate_core::payments::ProviderPayment {
        provider: Provider::Stripe,
        order,
        org,
        amount_cents: pi["amount"].as_i64().unwrap_or(0),
        currency: pi["currency"].as_str().unwrap_or("").to_owned(),
        state,
        method: None,
        reference: pi["id"].as_str().map(str::to_owned),
    };
    let provider_event = ProviderEvent {
        provider: Provider::Stripe,
        id: event.id,
        kind: event.kind,
    };
    let outcome = app.payments.apply(app, provider_event, report).await?;
    answer(outcome.label())
}

#[derive(Debug, Deserialize)]
struct Event {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    data: EventData,
}

#[derive(Debug, Deserialize)]
struct EventData {
    object: Value,
}

pub async fn stripe(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let Some(stripe) = &app.payments.stripe else {
        return Err(ApiError::not_found("Stripe is not configured."));
    };
    if body.len() > MAX_WEBHOOK_BYTES {
        return Err(ApiError::too_large("webhook body too large"));
    }
    let header = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let now_secs = app.clock.now().millis().div_euclid(1000);
    if let Err(e) = signature::verify(
        header,
        &body,
        &stripe.webhook_secrets,
        now_secs,
        TOLERANCE_SECS,
    ) {
        tracing::warn!(error = %e, "stripe webhook refused: bad signature");
        return Err(ApiError::invalid_request(format!(
            "Stripe-Signature refused: {e}"
        )));
    }
    let event: Event = serde_json::from_slice(&body)
        .map_err(|e| ApiError::invalid_request(format!("not a Stripe event: {e}")))?;
    if CLAWBACK_EVENTS.contains(&event.kind.as_str()) {
        return clawback(&app, stripe, event).await;
    }
    if event.kind.starts_with("setup_intent.") {
        return setup_intent(&app, stripe, event).await;
    }
    if INTENT_EVENTS.contains(&event.kind.as_str()) {
        return payment_intent(&app, stripe, event).await;
    }
    if !CHECKOUT_EVENTS.contains(&event.kind.as_str()) {
        tracing::info!(event = %event.id, kind = %event.kind, "stripe event acknowledged, not used");
        return Ok(Json(json!({"received": true, "outcome": "not_used"})));
    }
    // A setup-mode session saves a card; its SetupIntent's own event does the work.
    if event.data.object.get("mode").and_then(Value::as_str) == Some("setup") {
        return answer("not_used");
    }
    let Some(session_id) = event.data.object.get("id").and_then(Value::as_str) else {
        return Ok(Json(json!({"received": true, "outcome": "ignored"})));
    };
    // The event's copy is not trusted: the session is read back from Stripe. An error here is
    // a 503, so Stripe delivers the event again later.
    let session = stripe.checkout_session(session_id).await?;
    let Some(report) = session_payment(&session, Some(&event.kind)) else {
        tracing::warn!(event = %event.id, session = session_id, "stripe session names no order");
        return Ok(Json(json!({"received": true, "outcome": "ignored"})));
    };
    let outcome = app
        .payments
        .apply(
            &app,
            ProviderEvent {
                provider: Provider::Stripe,
                id: event.id,
                kind: event.kind,
            },
            report,
        )
        .await?;
    Ok(Json(json!({"received": true, "outcome": outcome.label()})))
}

/// A refund or dispute raised at Stripe. The charge or dispute is read back from Stripe, and
/// its payment intent names the order (metadata set at checkout); the organization must match
/// the order's. Refund totals are cumulative: only the difference is clawed back.
async fn clawback(
    app: &App,
    stripe: &super::stripe::StripeClient,
    event: Event,
) -> Result<Json<Value>, ApiError> {
    let id = event
        .data
        .object
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or("");
    let kind = if event.kind == "charge.refunded" {
        "charges"
    } else {
        "disputes"
    };
    let object = stripe.object(kind, id).await?;
    let pi = object["payment_intent"].as_str().unwrap_or("");
    let ignored = |why: &str| {
        tracing::warn!(event = %event.id, kind = %event.kind, reason = why, "stripe event ignored");
        Ok(Json(json!({"received": true, "outcome": "ignored"})))
    };
    let Some((order_id, org)) = stripe.intent_order(pi).await? else {
        return ignored("the payment names no order");
    };
    match app.db.order(&order_id).await? {
        Some(o) if o.org == org && o.provider == Provider::Stripe => {}
        _ => return ignored("the payment does not match an order of ours"),
    }
    let report = match (event.kind.as_str(), object["status"].as_str()) {
        ("charge.refunded", _) => ProviderClawback::Refunded {
            cumulative_cents: object["amount_refunded"].as_i64().unwrap_or(0),
        },
        ("charge.dispute.created", _) => ProviderClawback::Disputed {
            dispute: id.to_owned(),
            cents: object["amount"].as_i64().unwrap_or(0),
        },
        (_, Some("won")) => ProviderClawback::DisputeWon {
            dispute: id.to_owned(),
        },
        // A lost dispute keeps what its creation clawed back.
        _ => return Ok(Json(json!({"received": true, "outcome": "not_used"}))),
    };
    let provider_event = ProviderEvent {
        provider: Provider::Stripe,
        id: event.id.clone(),
        kind: event.kind.clone(),
    };
    let outcome = match app
        .db
        .apply_clawback(Some(provider_event), &order_id, report)
        .await?
    {
        None => "duplicate",
        Some((_, None)) => "unchanged",
        Some((order, Some(moved))) => {
            tracing::info!(order = %order.id, transfer = %moved.transfer_id, credits = %moved.credits,
                debt = %moved.debt, "stripe clawback");
            let kind = match event.kind.as_str() {
                "charge.refunded" => Some("refund.created"),
                "charge.dispute.created" => Some("dispute.created"),
                _ => None,
            };
            if let Some(kind) = kind {
                let credits = moved
                    .credits
                    .checked_add(moved.debt)
                    .unwrap_or(moved.credits);
                super::announce_clawback(app, kind, &order, credits, &moved.transfer_id).await;
            }
            "applied"
        }
    };
    Ok(Json(json!({"received": true, "outcome": outcome})))
}
