//! Saved cards and off-session charges. A card is saved through its provider's setup flow —
//! the sandbox's setup page, or a Stripe Checkout Session in setup mode (a SetupIntent on the
//! organization's Customer) — and becomes `active` once the provider reports it. Only brand,
//! last four digits and expiry are kept. [`Payments::charge_saved`] charges one off-session
//! (the entry point of auto-reload): its idempotency key is durable, so a retry with the same
//! key never charges twice and answers the same order.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use creditgate_core::accounts::Action;
use creditgate_core::ids::{OrderId, OrganizationId};
use creditgate_core::payments::cards::{CardBehavior, ChargeOutcome, TestCard};
use creditgate_core::payments::{
    check_cents, FailureCode, Order, OrderStatus, PaymentState, Provider, ProviderPayment, Quote,
};
use creditgate_storage::payments::{MethodStatus, PaymentMethod, ProviderEvent, SavedCard};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::receipt::escape;
use super::sandbox::{card_form, error_page, sandbox_page, wants_json, CardError};
use super::stripe::OffSession;
use super::{new_order, Payments};
use crate::caller::OrgCaller;
use crate::error::ApiError;
use crate::members::Change;
use crate::App;

/// Where Stripe's setup page sends the customer back: the dashboard's payment methods, saying
/// the card was added, or as they were when the customer went back.
pub const SETUP_DONE: &str = "/payment-methods?done=added";
pub const SETUP_CANCELLED: &str = "/payment-methods";

/// The expiry the sandbox gives every saved test card.
const SANDBOX_EXPIRY: (i64, i64) = (12, 2034);

/// A saved card as the API shows it: brand, last four, expiry; never a number.
pub fn method_json(m: &PaymentMethod) -> Value {
    json!({
        "id": m.id,
        "type": "payment_method",
        "provider": m.provider.as_str(),
        "status": m.status.as_str(),
        "brand": m.card.as_ref().map(|c| c.brand.clone()),
        "last4": m.card.as_ref().map(|c| c.last4.clone()),
        "exp_month": m.card.as_ref().map(|c| c.exp_month),
        "exp_year": m.card.as_ref().map(|c| c.exp_year),
        "failure": m.failure,
        "created_at": m.created_at.to_rfc3339(),
    })
}

fn new_method_id() -> String {
    crate::ids::fresh("card")
}

/// The order an off-session charge with `key` creates: the same key, the same order.
pub fn off_session_order_id(org: &OrganizationId, key: &str) -> OrderId {
    let digest = Sha256::digest(format!("off-session:{org}:{key}").as_bytes());
    OrderId::parse(&format!("ord_{}", &hex::encode(digest)[..32]))
        .unwrap_or_else(|_| unreachable!("hex ids are valid"))
}

impl Payments {
    /// Starts saving a card: a pending payment method and the URL where the customer enters
    /// the card (the sandbox's setup page, or Stripe's hosted page in setup mode).
    pub async fn add_payment_method(
        &self,
        app: &App,
        org: &OrganizationId,
        base: &str,
    ) -> Result<(PaymentMethod, String), ApiError> {
        let mut m = PaymentMethod {
            id: new_method_id(),
            org: org.clone(),
            provider: Provider::Sandbox,
            status: MethodStatus::Pending,
            setup_ref: None,
            provider_ref: None,
            customer_ref: None,
            card: None,
            failure: None,
            created_at: app.clock.now(),
        };
        let sandbox_url = format!("{base}/sandbox/setup/{}", m.id);
        let Some(stripe) = self.stripe.as_ref().filter(|_| self.uses_stripe()) else {
            app.db.create_payment_method(&m).await?;
            return Ok((m, sandbox_url));
        };
        let customer = match app.db.stripe_customer(org).await? {
            Some(c) => c,
            None => {
                let c = stripe.create_customer(org).await?;
                app.db.set_stripe_customer(org, &c).await?
            }
        };
        m.provider = Provider::Stripe;
        m.customer_ref = Some(customer.clone());
        app.db.create_payment_method(&m).await?;
        // The customer comes back to the dashboard's payment methods (as from the sandbox's
        // page), where the card shows once Stripe's `setup_intent.succeeded` is in.
        let session = stripe
            .create_setup_session(
                &m.id,
                org,
                &customer,
                &format!("{base}{SETUP_DONE}"),
                &format!("{base}{SETUP_CANCELLED}"),
            )
            .await?;
        app.db.set_payment_method_setup(&m.id, &session.id).await?;
        m.setup_ref = Some(session.id.clone());
        Ok((m, session.url.unwrap_or_default()))
    }

    fn uses_stripe(&self) -> bool {
        matches!(self.cfg.provider, crate::config::CheckoutProvider::Stripe)
    }

    /// Charges a saved card off-session for `quote`. `key` is the caller's durable
    /// idempotency key (auto-reload: one per attempt): the same key never charges twice and
    /// answers the same order. The order says why when the charge fails.
    pub async fn charge_saved(
        &self,
        app: &App,
        org: &OrganizationId,
        method_id: &str,
        quote: &Quote,
        key: &str,
    ) -> Result<Order, ApiError> {
        if key.is_empty() || key.len() > 200 {
            return Err(ApiError::invalid_request(
                "an idempotency key of 1-200 characters is required",
            ));
        }
        let method = match app.db.payment_method(method_id).await? {
            Some(m) if m.org == *org && m.status == MethodStatus::Active => m,
            _ => {
                return Err(ApiError::invalid_request(format!(
                    "There is no saved card {method_id}; add a payment method first."
                )))
            }
        };
        let id = off_session_order_id(org, key);
        if let Some(done) = app.db.order(&id).await? {
            if done.status != OrderStatus::Open {
                return Ok(done);
            }
        } else {
            let mut order = new_order(
                org,
                method.provider,
                quote,
                app.clock.now(),
                &Default::default(),
            );
            let profile = app.db.billing_profile(org).await?;
            let tax = self
                .cfg
                .tax
                .apply(profile.country.as_deref(), quote.amount_cents);
            check_cents(tax.amount_cents)?;
            order.apply_tax(&tax, &profile);
            order.id = id.clone();
            order.method = method
                .card
                .as_ref()
                .map(|c| format!("{} •••• {}", c.brand, c.last4));
            app.db.create_order(&order).await?;
        }
        let order = app
            .db
            .order(&id)
            .await?
            .ok_or_else(|| ApiError::internal("order vanished"))?;
        match method.provider {
            Provider::Stripe => self.charge_stripe(app, order, &method, key).await,
            _ => charge_sandbox(app, order, &method).await,
        }
    }

    async fn charge_stripe(
        &self,
        app: &App,
        order: Order,
        method: &PaymentMethod,
        key: &str,
    ) -> Result<Order, ApiError> {
        let stripe = self
            .stripe
            .as_ref()
            .ok_or_else(|| ApiError::unavailable("Stripe is not configured."))?;
        let (Some(customer), Some(pm)) = (&method.customer_ref, &method.provider_ref) else {
            return Err(ApiError::invalid_request(
                "the saved card has no Stripe reference",
            ));
        };
        let outcome = stripe
            .charge_off_session(
                &order,
                customer,
                pm,
                &format!("off-session:{}:{key}", order.org),
            )
            .await?;
        let (state, intent, amount, currency) = match outcome {
            OffSession::Paid {
                intent,
                amount,
                currency,
            } => (PaymentState::Paid, Some(intent), amount, currency),
            OffSession::Failed { intent, code } => (
                PaymentState::Failed { code },
                intent,
                order.amount_cents,
                order.currency.clone(),
            ),
        };
        if let Some(pi) = &intent {
            app.db.set_order_provider_ref(&order.id, pi).await?;
        }
        let report = ProviderPayment {
            provider: Provider::Stripe,
            order: order.id.clone(),
            org: order.org.clone(),
            amount_cents: amount,
            currency,
            state,
            method: order.method.clone(),
            reference: intent,
        };
        settle_report(app, &order.id, report).await
    }
}

/// Applies what an off-session charge reported (no event: the order's single credit transfer
/// keeps it once) and returns the order after it.
async fn settle_report(
    app: &App,
    id: &OrderId,
    report: ProviderPayment,
) -> Result<Order, ApiError> {
    let outcome = app.db.apply_payment(None, report).await?;
    super::announce(app, &outcome).await;
    app.db
        .order(id)
        .await?
        .ok_or_else(|| ApiError::internal("order vanished"))
}

/// The sandbox charges a saved test card off-session as Stripe would: cards that need
/// authentication fail `authentication_required`; `…0341` saves but every charge is declined;
/// `…0259` succeeds, then is disputed.
async fn charge_sandbox(
    app: &App,
    order: Order,
    method: &PaymentMethod,
) -> Result<Order, ApiError> {
    let card = method
        .provider_ref
        .as_deref()
        .and_then(TestCard::by_token)
        .ok_or_else(|| ApiError::invalid_request("the saved card is not a sandbox card"))?;
    let outcome = card.charge(false, false);
    let state = match outcome {
        ChargeOutcome::Succeeded | ChargeOutcome::SucceededThenDisputed => PaymentState::Paid,
        ChargeOutcome::Failed(code) => PaymentState::Failed { code },
        ChargeOutcome::NeedsConfirmation => PaymentState::Failed {
            code: FailureCode::AuthenticationRequired,
        },
    };
    let report = ProviderPayment {
        provider: Provider::Sandbox,
        order: order.id.clone(),
        org: order.org.clone(),
        amount_cents: order.amount_cents,
        currency: order.currency.clone(),
        state,
        method: order.method.clone(),
        reference: None,
    };
    let event = ProviderEvent {
        provider: Provider::Sandbox,
        id: format!("sbx_off_{}", order.id),
        kind: "sandbox.off_session_charge".to_owned(),
    };
    app.payments.apply(app, event, report).await?;
    if outcome == ChargeOutcome::SucceededThenDisputed {
        super::sandbox::dispute(app, &order.id).await?;
    }
    app.db
        .order(&order.id)
        .await?
        .ok_or_else(|| ApiError::internal("order vanished"))
}

/// `GET /v1/billing/payment_methods`: saved cards (and setups not finished).
pub async fn list(State(app): State<Arc<App>>, caller: OrgCaller) -> Result<Json<Value>, ApiError> {
    caller.require(Action::Read)?;
    let methods = app.db.payment_methods(&caller.org).await?;
    Ok(Json(json!({
        "data": methods.iter().map(method_json).collect::<Vec<_>>(),
        "has_more": false,
        "first_id": methods.first().map(|m| m.id.clone()),
        "last_id": methods.last().map(|m| m.id.clone()),
    })))
}

/// `POST /v1/billing/payment_methods` → `{"setup_url", "payment_method"}`.
pub async fn add(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    caller: OrgCaller,
) -> Result<Json<Value>, ApiError> {
    caller.require(Action::ManageBilling)?;
    let base = app.payments.base_url(&app, &headers);
    let (m, url) = app
        .payments
        .add_payment_method(&app, &caller.org, &base)
        .await?;
    Ok(Json(
        json!({"setup_url": url, "payment_method": method_json(&m)}),
    ))
}

/// `DELETE /v1/billing/payment_methods/{id}` (audited; detached at Stripe).
pub async fn remove(
    State(app): State<Arc<App>>,
    caller: OrgCaller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Action::ManageBilling)?;
    let missing = || ApiError::not_found(format!("No payment method {id}."));
    let m = app
        .db
        .payment_method(&id)
        .await?
        .filter(|m| m.org == caller.org);
    let m = m
        .filter(|m| m.status != MethodStatus::Removed)
        .ok_or_else(missing)?;
    if let (Provider::Stripe, Some(stripe), Some(pm)) =
        (m.provider, &app.payments.stripe, &m.provider_ref)
    {
        stripe.detach(pm).await?;
    }
    if !app.db.remove_payment_method(&caller.org, &id).await? {
        return Err(missing());
    }
    Change::by(&app.db, &caller, app.clock.now())
        .audit(
            &caller.org,
            "payment_method.removed",
            "payment_method",
            &id,
            method_json(&m),
        )
        .await?;
    Ok(Json(json!({"id": id, "type": "payment_method_deleted"})))
}

/// Makes a pending card active (once) and audits it.
pub async fn activate(
    app: &App,
    m: &PaymentMethod,
    provider_ref: &str,
    customer: Option<&str>,
    card: &SavedCard,
) -> Result<bool, ApiError> {
    let fresh = app
        .db
        .activate_payment_method(&m.id, provider_ref, customer, card)
        .await?;
    if fresh {
        let details =
            json!({"brand": card.brand, "last4": card.last4, "provider": m.provider.as_str()});
        Change::new(
            &app.db,
            creditgate_core::accounts::Actor::system(),
            None,
            app.clock.now(),
        )
        .audit(
            &m.org,
            "payment_method.added",
            "payment_method",
            &m.id,
            details,
        )
        .await?;
    }
    Ok(fresh)
}

async fn sandbox_setup(app: &App, id: &str) -> Result<PaymentMethod, ApiError> {
    match app.db.payment_method(id).await? {
        Some(m) if m.provider == Provider::Sandbox => Ok(m),
        _ => Err(ApiError::not_found("There is no sandbox card setup here.")),
    }
}

/// The title of the sandbox's page to save a card.
const SETUP: &str = "Save a card (sandbox)";

/// `GET /sandbox/setup/{id}`: the sandbox's page to save a card, or a page saying why there is
/// none.
pub async fn setup_page(State(app): State<Arc<App>>, Path(id): Path<String>) -> Response {
    match sandbox_setup(&app, &id).await {
        Ok(m) => Html(render_setup(&m, None, None)).into_response(),
        Err(e) => error_page(SETUP, &e),
    }
}

/// `POST /sandbox/setup/{id}` with a form or JSON `{"card","confirm"?}`: saves the test card
/// as Stripe would (declined cards cannot be saved; `…3184` asks for confirmation first). A
/// form is answered with a page: a refusal while the setup is pending shows the form again
/// with the reason beside the card field, anything else a page with the reason.
pub async fn setup_submit(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    if wants_json(&headers) {
        return setup_with(&app, &id, &body, true).await;
    }
    let e = match setup_with(&app, &id, &body, false).await {
        Ok(page) => return Ok(page),
        Err(e) => e,
    };
    let typed = super::sandbox::card_field(&body, false)
        .map(|(card, _)| card)
        .unwrap_or_default();
    Ok(match sandbox_setup(&app, &id).await {
        Ok(m) if m.status == MethodStatus::Pending && e.status.is_client_error() => {
            let beside = CardError {
                typed: &typed,
                message: &e.message,
            };
            (e.status, Html(render_setup(&m, None, Some(beside)))).into_response()
        }
        _ => error_page(SETUP, &e),
    })
}

async fn setup_with(
    app: &App,
    id: &str,
    body: &[u8],
    wants_json: bool,
) -> Result<Response, ApiError> {
    let (card, confirmed) = super::sandbox::card_field(body, wants_json)?;
    let m = sandbox_setup(app, id).await?;
    let mut next_action = None;
    if m.status == MethodStatus::Pending {
        let card = TestCard::lookup(&card).ok_or_else(|| {
            ApiError::invalid_request(format!(
                "{} Use one of the sandbox's test cards, such as 4242 4242 4242 4242.",
                FailureCode::InvalidCard.message()
            ))
        })?;
        if !card.can_save() {
            let code = match card.behavior {
                CardBehavior::InsufficientFunds => FailureCode::InsufficientFunds,
                _ => FailureCode::CardDeclined,
            };
            app.db.fail_payment_method(&m.id, code.message()).await?;
        } else if card.behavior == CardBehavior::RequiresAuthentication && !confirmed {
            next_action = Some("confirm");
        } else {
            let saved = SavedCard {
                brand: card.brand.to_owned(),
                last4: card.last4().to_owned(),
                exp_month: SANDBOX_EXPIRY.0,
                exp_year: SANDBOX_EXPIRY.1,
            };
            activate(app, &m, &card.token(), None, &saved).await?;
        }
    }
    let m = sandbox_setup(app, id).await?;
    if wants_json {
        let mut body = json!({"payment_method": method_json(&m)});
        if let Some(next) = next_action {
            body["next_action"] = json!(next);
        }
        return Ok(Json(body).into_response());
    }
    let confirm = next_action.map(|_| card.as_str());
    Ok(Html(render_setup(&m, confirm, None)).into_response())
}

fn render_setup(
    m: &PaymentMethod,
    confirm_card: Option<&str>,
    error: Option<CardError<'_>>,
) -> String {
    let body = match (m.status, confirm_card) {
        (MethodStatus::Pending, Some(card)) => format!(
            "<p>Your bank asks you to confirm saving this card.</p><form method=\"post\">\
             <input type=\"hidden\" name=\"card\" value=\"{}\"><input type=\"hidden\" \
             name=\"confirm\" value=\"true\"><button type=\"submit\">Confirm</button></form>",
            escape(card)
        ),
        (MethodStatus::Pending, None) => format!(
            "{}<p>This is the sandbox: no real card is saved.</p>",
            card_form("Save card", error)
        ),
        (MethodStatus::Active, _) => format!(
            "<p>Saved: {}</p>",
            escape(
                &m.card
                    .as_ref()
                    .map(|c| format!("{} •••• {}", c.brand, c.last4))
                    .unwrap_or_default()
            )
        ),
        (status, _) => format!(
            "<p>Status: <strong>{}</strong></p><p class=\"failure\">{}</p>",
            status.as_str(),
            escape(m.failure.as_deref().unwrap_or(""))
        ),
    };
    sandbox_page(
        SETUP,
        &format!("{body}<p><a href=\"/payment-methods\">Back to payment methods</a></p>"),
    )
}
