//! A thin Stripe client for the few calls creditgate makes: form-encoded bodies, an
//! `Idempotency-Key` on every POST, a pinned `Stripe-Version`, a configurable API base (tests
//! point it at the fake in `creditgate-sim`). Serde structs read only the fields used.

use std::collections::HashMap;
use std::time::Duration;

use creditgate_core::ids::{OrderId, OrganizationId};
use creditgate_core::payments::{FailureCode, Order, PaymentState, Provider, ProviderPayment};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::config::payments::STRIPE_TIMEOUT_MS;
use crate::config::StripeConfig;
use crate::error::ApiError;

/// The API version every request pins, so that Stripe's answers keep the shape read here.
pub const STRIPE_VERSION: &str = "2024-06-20";

/// A Checkout Session, as far as creditgate reads it.
#[derive(Debug, Clone, Deserialize)]
pub struct CheckoutSession {
    pub id: String,
    pub url: Option<String>,
    /// `open`, `complete` or `expired`.
    pub status: String,
    /// `paid`, `unpaid` or `no_payment_required`.
    pub payment_status: String,
    pub amount_total: Option<i64>,
    pub currency: Option<String>,
    pub client_reference_id: Option<String>,
    #[serde(default)]
    pub metadata: HashMap<String, String>,
    pub payment_intent: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Refund {
    pub id: String,
    pub amount: i64,
    pub status: String,
}

/// The client.
pub struct StripeClient {
    http: reqwest::Client,
    base: String,
    key: String,
    pub webhook_secrets: Vec<String>,
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "stripe {what} failed");
    ApiError::unavailable(format!(
        "The payment provider could not be reached ({what}); nothing was charged. Try again."
    ))
}

impl StripeClient {
    pub fn new(cfg: &StripeConfig) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(STRIPE_TIMEOUT_MS))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            http,
            base: cfg.api_base.clone(),
            key: cfg.secret_key.clone(),
            webhook_secrets: cfg.webhook_secrets.clone(),
        })
    }

    async fn read<T: DeserializeOwned>(
        what: &str,
        resp: Result<reqwest::Response, reqwest::Error>,
    ) -> Result<T, ApiError> {
        let resp = resp.map_err(|e| unavailable(what, e))?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| unavailable(what, e))?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body);
            return Err(unavailable(what, format!("HTTP {status}: {text}")));
        }
        serde_json::from_slice(&body).map_err(|e| unavailable(what, e))
    }

    /// POSTs a form with an idempotency key: a retry of the same call never acts twice.
    async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        form: &[(&str, String)],
        idempotency_key: &str,
    ) -> Result<T, ApiError> {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.key)
            .header("Stripe-Version", STRIPE_VERSION)
            .header("Idempotency-Key", idempotency_key)
            .form(form)
            .send()
            .await;
        Self::read(path, resp).await
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ApiError> {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.key)
            .header("Stripe-Version", STRIPE_VERSION)
            .send()
            .await;
        Self::read(path, resp).await
    }

    /// A hosted Checkout Session for the order, carrying the order and organization ids.
    pub async fn create_checkout_session(
        &self,
        order: &Order,
        public_url: &str,
    ) -> Result<CheckoutSession, ApiError> {
        let back = format!("{public_url}/sandbox/checkout/{}", order.id);
        let mut form = vec![
            ("mode", "payment".to_owned()),
            ("client_reference_id", order.id.to_string()),
            ("metadata[order_id]", order.id.to_string()),
            ("metadata[organization_id]", order.org.to_string()),
            (
                "payment_intent_data[metadata][order_id]",
                order.id.to_string(),
            ),
            (
                "payment_intent_data[metadata][organization_id]",
                order.org.to_string(),
            ),
            ("line_items[0][quantity]", "1".to_owned()),
            (
                "line_items[0][price_data][currency]",
                order.currency.clone(),
            ),
            (
                "line_items[0][price_data][unit_amount]",
                order.subtotal_cents.to_string(),
            ),
            (
                "line_items[0][price_data][product_data][name]",
                format!("{} credits", order.credits),
            ),
            (
                "success_url",
                order.success_url.clone().unwrap_or(back.clone()),
            ),
            ("cancel_url", order.cancel_url.clone().unwrap_or(back)),
        ];
        // The tax is its own line, so the session's amount_total is the order's total.
        if order.tax_cents > 0 {
            form.extend([
                ("line_items[1][quantity]", "1".to_owned()),
                (
                    "line_items[1][price_data][currency]",
                    order.currency.clone(),
                ),
                (
                    "line_items[1][price_data][unit_amount]",
                    order.tax_cents.to_string(),
                ),
                (
                    "line_items[1][price_data][product_data][name]",
                    order.tax_label(),
                ),
            ]);
        }
        self.post(
            "/v1/checkout/sessions",
            &form,
            &format!("checkout:{}", order.id),
        )
        .await
    }

    /// Reads a session back from Stripe (never trusting a webhook's copy).
    pub async fn checkout_session(&self, id: &str) -> Result<CheckoutSession, ApiError> {
        if !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(ApiError::invalid_request("not a checkout session id"));
        }
        self.get(&format!("/v1/checkout/sessions/{id}")).await
    }

    /// Reads a payment intent, charge or dispute back from Stripe by id.
    pub async fn object(&self, kind: &str, id: &str) -> Result<serde_json::Value, ApiError> {
        if !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(ApiError::invalid_request("not a Stripe object id"));
        }
        self.get(&format!("/v1/{kind}/{id}")).await
    }

    /// The order and organization a payment intent was made for (its metadata, set when the
    /// checkout was created).
    pub async fn intent_order(
        &self,
        pi: &str,
    ) -> Result<Option<(OrderId, OrganizationId)>, ApiError> {
        let intent = self.object("payment_intents", pi).await?;
        let meta = &intent["metadata"];
        let order = meta["order_id"]
            .as_str()
            .and_then(|s| OrderId::parse(s).ok());
        let org = meta["organization_id"]
            .as_str()
            .and_then(|s| OrganizationId::parse(s).ok());
        Ok(order.zip(org))
    }

    /// The organization's Customer, created once (idempotency key `customer:<org>`).
    pub async fn create_customer(&self, org: &OrganizationId) -> Result<String, ApiError> {
        let c: serde_json::Value = self
            .post(
                "/v1/customers",
                &[("metadata[organization_id]", org.to_string())],
                &format!("customer:{org}"),
            )
            .await?;
        c["id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| unavailable("customers", "no customer id"))
    }

    /// A hosted Checkout Session in setup mode (a SetupIntent saving a card for off-session
    /// use), carrying creditgate's payment method id and the organization; Stripe sends the
    /// customer to `success_url` once the card is saved, to `cancel_url` when they go back.
    pub async fn create_setup_session(
        &self,
        method_id: &str,
        org: &OrganizationId,
        customer: &str,
        success_url: &str,
        cancel_url: &str,
    ) -> Result<CheckoutSession, ApiError> {
        let form = [
            ("mode", "setup".to_owned()),
            ("currency", creditgate_core::payments::CURRENCY.to_owned()),
            ("customer", customer.to_owned()),
            ("payment_method_types[0]", "card".to_owned()),
            (
                "setup_intent_data[metadata][payment_method_id]",
                method_id.to_owned(),
            ),
            (
                "setup_intent_data[metadata][organization_id]",
                org.to_string(),
            ),
            ("metadata[payment_method_id]", method_id.to_owned()),
            ("metadata[organization_id]", org.to_string()),
            ("success_url", success_url.to_owned()),
            ("cancel_url", cancel_url.to_owned()),
        ];
        self.post(
            "/v1/checkout/sessions",
            &form,
            &format!("setup:{method_id}"),
        )
        .await
    }

    /// Detaches a saved card from its Customer.
    pub async fn detach(&self, pm: &str) -> Result<(), ApiError> {
        if !pm.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(ApiError::invalid_request("not a payment method id"));
        }
        let _: serde_json::Value = self
            .post(
                &format!("/v1/payment_methods/{pm}/detach"),
                &[],
                &format!("detach:{pm}"),
            )
            .await?;
        Ok(())
    }

    /// Charges a saved card off-session for `order` (a PaymentIntent created and confirmed at
    /// once). `idempotency_key` is durable: the same key never charges twice.
    pub async fn charge_off_session(
        &self,
        order: &Order,
        customer: &str,
        pm: &str,
        idempotency_key: &str,
    ) -> Result<OffSession, ApiError> {
        let form = [
            ("amount", order.amount_cents.to_string()),
            ("currency", order.currency.clone()),
            ("customer", customer.to_owned()),
            ("payment_method", pm.to_owned()),
            ("off_session", "true".to_owned()),
            ("confirm", "true".to_owned()),
            ("metadata[order_id]", order.id.to_string()),
            ("metadata[organization_id]", order.org.to_string()),
        ];
        let resp = self
            .http
            .post(format!("{}/v1/payment_intents", self.base))
            .bearer_auth(&self.key)
            .header("Stripe-Version", STRIPE_VERSION)
            .header("Idempotency-Key", idempotency_key)
            .form(&form)
            .send()
            .await
            .map_err(|e| unavailable("payment_intents", e))?;
        let status = resp.status();
        let body: serde_json::Value = resp
            .json()
            .await
            .map_err(|e| unavailable("payment_intents", e))?;
        if status.is_server_error() || status == reqwest::StatusCode::UNAUTHORIZED {
            return Err(unavailable(
                "payment_intents",
                format!("HTTP {status}: {body}"),
            ));
        }
        // A decline is an error answer (402) naming the payment intent, as Stripe does.
        let (intent, error) = match body.get("error") {
            Some(e) => (e["payment_intent"].clone(), Some(e.clone())),
            None => (body.clone(), None),
        };
        let id = intent["id"].as_str().map(str::to_owned);
        match (intent["status"].as_str(), error) {
            (Some("succeeded"), _) => Ok(OffSession::Paid {
                intent: id.unwrap_or_default(),
                amount: intent["amount"].as_i64().unwrap_or(0),
                currency: intent["currency"].as_str().unwrap_or("").to_owned(),
            }),
            (_, Some(e)) => Ok(OffSession::Failed {
                intent: id,
                code: failure_code(&e),
            }),
            _ => Ok(OffSession::Failed {
                intent: id,
                code: failure_code(&intent["last_payment_error"]),
            }),
        }
    }

    /// Refunds `cents` of the session's payment.
    pub async fn refund_session(
        &self,
        session: &str,
        cents: i64,
        idempotency_key: &str,
    ) -> Result<Refund, ApiError> {
        let intent = if session.starts_with("pi_") {
            session.to_owned()
        } else {
            self.checkout_session(session)
                .await?
                .payment_intent
                .ok_or_else(|| ApiError::invalid_request("the checkout has no payment to refund"))?
        };
        self.post(
            "/v1/refunds",
            &[("payment_intent", intent), ("amount", cents.to_string())],
            idempotency_key,
        )
        .await
    }
}

/// What an off-session charge came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OffSession {
    /// The PaymentIntent succeeded.
    Paid {
        intent: String,
        amount: i64,
        currency: String,
    },
    /// Declined, insufficient funds, authentication required…
    Failed {
        intent: Option<String>,
        code: FailureCode,
    },
}

/// A Stripe error or PaymentIntent's `last_payment_error` in creditgate's words.
pub fn failure_code(error: &serde_json::Value) -> FailureCode {
    let code = error["code"].as_str().unwrap_or("");
    let decline = error["decline_code"].as_str().unwrap_or("");
    match (code, decline) {
        (_, "insufficient_funds") | ("insufficient_funds", _) => FailureCode::InsufficientFunds,
        ("authentication_required", _) | (_, "authentication_required") => {
            FailureCode::AuthenticationRequired
        }
        ("card_declined", _) => FailureCode::CardDeclined,
        ("expired_card" | "incorrect_number" | "invalid_number", _) => FailureCode::InvalidCard,
        _ => FailureCode::PaymentFailed,
    }
}

/// What a PaymentIntent (read back from Stripe) says about `order`'s payment; its metadata
/// must name the order, or the report names no order of ours and is ignored.
pub fn intent_payment(pi: &serde_json::Value, order: &Order) -> ProviderPayment {
    let named = |key: &str| pi["metadata"][key].as_str().unwrap_or("").to_owned();
    let state = match pi["status"].as_str() {
        Some("succeeded") => PaymentState::Paid,
        Some("requires_payment_method" | "canceled") => PaymentState::Failed {
            code: failure_code(&pi["last_payment_error"]),
        },
        _ => PaymentState::Pending,
    };
    ProviderPayment {
        provider: Provider::Stripe,
        order: OrderId::parse(&named("order_id")).unwrap_or_else(|_| order.id.clone()),
        org: OrganizationId::parse(&named("organization_id")).unwrap_or_else(|_| order.org.clone()),
        amount_cents: pi["amount"].as_i64().unwrap_or(0),
        currency: pi["currency"].as_str().unwrap_or("").to_owned(),
        state,
        method: None,
        reference: pi["id"].as_str().map(str::to_owned),
    }
}

/// What a session says about its order's payment; `None` if it names no order of ours.
/// `failed_event`: the event announced an async payment failure.
pub fn session_payment(s: &CheckoutSession, event_kind: Option<&str>) -> Option<ProviderPayment> {
    let order = s
        .metadata
        .get("order_id")
        .or(s.client_reference_id.as_ref())?;
    let org = s.metadata.get("organization_id")?;
    let state = match (s.status.as_str(), s.payment_status.as_str()) {
        (_, "paid") => PaymentState::Paid,
        ("expired", _) => PaymentState::Expired,
        _ if event_kind == Some("checkout.session.async_payment_failed") => PaymentState::Failed {
            code: FailureCode::PaymentFailed,
        },
        _ => PaymentState::Pending,
    };
    Some(ProviderPayment {
        provider: Provider::Stripe,
        order: OrderId::parse(order).ok()?,
        org: OrganizationId::parse(org).ok()?,
        amount_cents: s.amount_total.unwrap_or(0),
        currency: s.currency.clone().unwrap_or_default(),
        state,
        method: Some("card (Stripe)".to_owned()),
        reference: Some(s.id.clone()),
    })
}
