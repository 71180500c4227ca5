//! Buying credits over HTTP: checkouts with the configured provider (the embedded `sandbox` or
//! Stripe), the sandbox's checkout page, Stripe's webhook, receipts, rechecks and refunds.
//! Money moves only through the storage's crediting transaction and the ledger.

pub mod receipt;
pub mod routes;
pub mod sandbox;
pub mod saved;
pub mod stripe;
pub mod webhooks;

use std::sync::Arc;

use creditgate_core::accounts::Actor;
use creditgate_core::ids::{InvoiceId, OrderId, OrganizationId};
use creditgate_core::ledger::{LedgerError, LedgerStore};
use creditgate_core::money::NanoCredits;
use creditgate_core::payments::tax::TaxTable;
use creditgate_core::payments::{
    check_cents, quote_custom, Order, OrderStatus, PaymentError, PaymentState, Provider,
    ProviderPayment, Quote, CURRENCY, MAX_REFERENCE_LEN,
};
use creditgate_core::pricing::CustomAmount;
use creditgate_storage::payments::{OrderFilter, PaymentOutcome, ProviderEvent};
use creditgate_storage::Database;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::config::{CheckoutProvider, PaymentsConfig};
use crate::error::ApiError;
use crate::App;

use self::stripe::StripeClient;

/// Open orders one reconciliation pass re-checks.
pub const RECONCILE_BATCH: i64 = 200;
/// The job lease's name: one replica reconciles per interval.
const RECONCILE_JOB: &str = "reconciliation";

/// The payment side of the app: its settings and the Stripe client, if configured.
pub struct Payments {
    pub cfg: PaymentsConfig,
    pub stripe: Option<StripeClient>,
}

/// What a customer asks to buy.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckoutRequest {
    pub plan_id: Option<String>,
    /// Whole credits, as a decimal string (a custom amount).
    pub credits: Option<String>,
    pub success_url: Option<String>,
    pub cancel_url: Option<String>,
    /// The base of the links handed back (see [`Payments::base_url`]); the config's
    /// `public_url` when absent.
    #[serde(skip)]
    pub base_url: Option<String>,
}

/// A payment the operator took outside any provider (`docs/accounts.md`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManualPayment {
    pub method: String,
    pub reference: String,
    pub amount_cents: i64,
    pub currency: String,
    pub plan_id: Option<String>,
    pub credits: Option<String>,
}

impl From<PaymentError> for ApiError {
    fn from(e: PaymentError) -> Self {
        ApiError::invalid_request(e.to_string())
    }
}

fn new_order_id() -> OrderId {
    OrderId::parse(&crate::ids::fresh("ord")).unwrap_or_else(|_| unreachable!("hex ids are valid"))
}

impl Payments {
    pub fn new(cfg: PaymentsConfig) -> Result<Self, String> {
        let stripe = match &cfg.stripe {
            Some(s) => Some(StripeClient::new(s)?),
            None => None,
        };
        Ok(Self { cfg, stripe })
    }

    /// The base of links handed to customers.
    pub fn public_url(&self, app: &App) -> String {
        self.cfg
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", app.cfg.listen))
    }

    /// The base of links handed to the caller of a request: the configured `public_url`, else
    /// the address the caller reached this server at (its `Host`).
    pub fn base_url(&self, app: &App, headers: &axum::http::HeaderMap) -> String {
        if let Some(url) = &self.cfg.public_url {
            return url.clone();
        }
        headers
            .get(axum::http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .filter(|h| {
                !h.is_empty()
                    && h.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
            })
            .map(|h| format!("http://{h}"))
            .unwrap_or_else(|| self.public_url(app))
    }

    /// The price and credits of a plan (not archived) or of a custom amount.
    pub async fn quote(
        &self,
        app: &App,
        plan_id: Option<&str>,
        credits: Option<&str>,
    ) -> Result<Quote, ApiError> {
        Self::quote_in(&app.db, self.cfg.custom.as_ref(), plan_id, credits).await
    }

    /// [`Self::quote`] from the database and the custom-amount settings alone (the CLI).
    pub async fn quote_in(
        db: &Database,
        custom: Option<&CustomAmount>,
        plan_id: Option<&str>,
        credits: Option<&str>,
    ) -> Result<Quote, ApiError> {
        match (plan_id, credits) {
            (Some(id), None) => match db.plan(id).await? {
                Some(p) if !p.archived => Ok(p.quote()),
                Some(_) => Err(ApiError::invalid_request(format!(
                    "Plan {id} is no longer sold; choose another plan."
                ))),
                None => Err(ApiError::invalid_request(format!("There is no plan {id}."))),
            },
            (None, Some(text)) => {
                let custom = custom.ok_or_else(|| {
                    ApiError::invalid_request("Custom amounts are not offered; choose a plan.")
                })?;
                let credits: NanoCredits = text.parse().map_err(|_| {
                    ApiError::invalid_request("credits must be a whole number of credits")
                })?;
                Ok(quote_custom(custom, credits)?)
            }
            _ => Err(ApiError::invalid_request(
                "Give either plan_id or credits, not both.",
            )),
        }
    }

    /// Creates an order and the provider's checkout for it; returns the order and the URL to
    /// pay at. Refused, saying why, without a country or from a country not served.
    pub async fn checkout(
        &self,
        app: &App,
        org: &OrganizationId,
        req: CheckoutRequest,
    ) -> Result<(Order, String), ApiError> {
        let profile = app.db.billing_profile(org).await?;
        profile.check_can_buy(&self.cfg.served_countries)?;
        let quote = self
            .quote(app, req.plan_id.as_deref(), req.credits.as_deref())
            .await?;
        self.open_checkout(app, org, &quote, &req, None).await
    }

    /// Opens a checkout with the configured provider for `quote`: the open order (linked to
    /// `invoice` when it pays one, `docs/credit-lines.md`) and the URL to pay it at.
    pub async fn open_checkout(
        &self,
        app: &App,
        org: &OrganizationId,
        quote: &Quote,
        req: &CheckoutRequest,
        invoice: Option<&InvoiceId>,
    ) -> Result<(Order, String), ApiError> {
        for url in [&req.success_url, &req.cancel_url].into_iter().flatten() {
            if !(url.starts_with("http://") || url.starts_with("https://")) || url.len() > 2048 {
                return Err(ApiError::invalid_request(
                    "success_url and cancel_url must be http(s) URLs of at most 2048 characters",
                ));
            }
        }
        let provider = match self.cfg.provider {
            CheckoutProvider::Sandbox => Provider::Sandbox,
            CheckoutProvider::Stripe => Provider::Stripe,
        };
        let mut order = new_order(org, provider, quote, app.clock.now(), req);
        match invoice {
            Some(invoice) => app.db.create_invoice_order(&order, invoice).await?,
            None => {
                // A purchase pays its buyer's country tax on top (`docs/tax.md`); an invoice's
                // amount is what is owed as invoiced.
                let profile = app.db.billing_profile(org).await?;
                let tax = self
                    .cfg
                    .tax
                    .apply(profile.country.as_deref(), quote.amount_cents);
                check_cents(tax.amount_cents)?;
                order.apply_tax(&tax, &profile);
                app.db.create_order(&order).await?
            }
        }
        let url = match (&self.stripe, provider) {
            (Some(stripe), Provider::Stripe) => {
                let session = stripe
                    .create_checkout_session(&order, &self.public_url(app))
                    .await?;
                app.db
                    .set_order_provider_ref(&order.id, &session.id)
                    .await?;
                session.url.unwrap_or_default()
            }
            _ => {
                let base = req.base_url.clone();
                format!(
                    "{}/sandbox/checkout/{}",
                    base.unwrap_or_else(|| self.public_url(app)),
                    order.id
                )
            }
        };
        let order = app.db.order(&order.id).await?.unwrap_or(order);
        Ok((order, url))
    }

    /// Asks the order's provider again and applies the answer (the reconciliation job and the
    /// operator's `recheck`). A sandbox order is its own provider: past its checkout lifetime an
    /// unpaid one expires.
    pub async fn recheck(&self, app: &App, id: &OrderId) -> Result<PaymentOutcome, ApiError> {
        let order = app
            .db
            .order(id)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("There is no order {id}.")))?;
        let report = match (order.provider, &self.stripe) {
            (Provider::Stripe, Some(stripe)) => match &order.provider_ref {
                // An off-session charge: its PaymentIntent.
                Some(pi) if pi.starts_with("pi_") => {
                    let intent = stripe.object("payment_intents", pi).await?;
                    stripe::intent_payment(&intent, &order)
                }
                Some(session) => {
                    let s = stripe.checkout_session(session).await?;
                    stripe::session_payment(&s, None).unwrap_or_else(|| pending(&order))
                }
                // Nothing reached Stripe (or its answer was lost): past the checkout's lifetime
                // it expires; a payment Stripe reports later still credits it.
                None if app.clock.now() >= order.checkout_expires_at() => {
                    let mut p = pending(&order);
                    p.state = PaymentState::Expired;
                    p
                }
                None => pending(&order),
            },
            (Provider::Sandbox, _) if order.status == OrderStatus::Open => {
                let mut p = pending(&order);
                if app.clock.now() >= order.checkout_expires_at() {
                    p.state = PaymentState::Expired;
                }
                p
            }
            _ => pending(&order),
        };
        let outcome = app.db.apply_payment(None, report).await?;
        announce(app, &outcome).await;
        Ok(outcome)
    }

    /// Re-checks every open order once (oldest first); errors are logged and the next pass
    /// tries again.
    pub async fn reconcile(&self, app: &App) -> usize {
        let open = match app
            .db
            .orders(&OrderFilter {
                status: Some(OrderStatus::Open),
                limit: RECONCILE_BATCH,
                ..Default::default()
            })
            .await
        {
            Ok(o) => o,
            Err(error) => {
                tracing::error!(%error, "reconciliation could not list open orders");
                return 0;
            }
        };
        let mut changed = 0;
        for order in open.iter().rev() {
            match self.recheck(app, &order.id).await {
                Ok(PaymentOutcome::Credited(_) | PaymentOutcome::NotPaid(_)) => changed += 1,
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(order = %order.id, error = %error.message, "recheck failed")
                }
            }
        }
        changed
    }

    /// Records a manual payment and credits it, once per (method, reference).
    pub async fn record_manual(
        &self,
        app: &App,
        org: &OrganizationId,
        m: ManualPayment,
        actor: &Actor,
    ) -> Result<(Order, bool), ApiError> {
        let terms = (self.cfg.custom.as_ref(), &self.cfg.tax);
        Self::record_manual_in(&app.db, terms, org, m, actor).await
    }

    /// [`Self::record_manual`] from the database alone (the CLI). The amount received includes
    /// tax: it is split by the buyer's country rate (`docs/tax.md`).
    pub async fn record_manual_in(
        db: &Database,
        (custom, tax): (Option<&CustomAmount>, &TaxTable),
        org: &OrganizationId,
        m: ManualPayment,
        actor: &Actor,
    ) -> Result<(Order, bool), ApiError> {
        if !matches!(
            m.method.as_str(),
            "crypto" | "bank_transfer" | "chat" | "other"
        ) {
            return Err(ApiError::invalid_request(
                "method must be crypto, bank_transfer, chat or other",
            ));
        }
        let reference = m.reference.trim();
        if reference.is_empty() || reference.len() > MAX_REFERENCE_LEN {
            return Err(ApiError::invalid_request(format!(
                "reference must be 1-{MAX_REFERENCE_LEN} characters"
            )));
        }
        if !m.currency.eq_ignore_ascii_case(CURRENCY) {
            return Err(ApiError::invalid_request("currency must be usd"));
        }
        check_cents(m.amount_cents)?;
        let mut quote = Self::quote_in(db, custom, m.plan_id.as_deref(), m.credits.as_deref())
            .await
            .or_else(|e| manual_credits(m.credits.as_deref()).ok_or(e))?;
        // What was actually received is what the order and receipt show, tax included.
        quote.amount_cents = m.amount_cents;
        db.organization(org).await?;
        let profile = db.billing_profile(org).await?;
        let mut order = new_order(org, Provider::Manual, &quote, db.now(), &Default::default());
        order.apply_tax(
            &tax.split_received(profile.country.as_deref(), m.amount_cents),
            &profile,
        );
        order.provider_ref = Some(format!("{}:{reference}", m.method));
        order.method = Some(m.method.clone());
        Ok(db.record_manual_payment(order, actor).await?)
    }

    /// Refunds a credited order's unspent remainder: the ledger claws it back once, then the
    /// provider refunds its share of the price. Returns the order and the cents refunded.
    pub async fn refund(
        &self,
        app: &App,
        id: &OrderId,
        actor: &Actor,
    ) -> Result<(Order, i64), ApiError> {
        let (order, refunded, cents) = match app.db.refund_order(id, actor).await {
            // Refused while holds need the lot's credits: a credit lease's headroom does not.
            Err(LedgerError::Insufficient { .. }) if app.leases.shrink_all(app).await => {
                app.db.refund_order(id, actor).await
            }
            done => done,
        }?;
        tracing::info!(order = %id, credits = %refunded.amount, cents, "order refunded");
        let cause = format!("refund:{id}");
        announce_clawback(app, "refund.created", &order, refunded.amount, &cause).await;
        self.provider_refund(&order, cents, &cause).await?;
        Ok((order, cents))
    }

    /// Refunds `credits` of a credited order's lot (at most what is left and not held), then
    /// the provider refunds their share of the price.
    pub async fn refund_credits(
        &self,
        app: &App,
        id: &OrderId,
        credits: NanoCredits,
        actor: &Actor,
    ) -> Result<(Order, i64), ApiError> {
        let (order, refunded, cents) = match app.db.refund_order_credits(id, credits, actor).await {
            Err(LedgerError::Insufficient { .. }) if app.leases.shrink_all(app).await => {
                app.db.refund_order_credits(id, credits, actor).await
            }
            done => done,
        }?;
        tracing::info!(order = %id, credits = %refunded.amount, cents, "order partly refunded");
        let key = app
            .db
            .order_clawbacks(id)
            .await?
            .last()
            .map(|c| c.transfer_id.clone())
            .unwrap_or_else(|| format!("refund:{id}"));
        announce_clawback(app, "refund.created", &order, refunded.amount, &key).await;
        self.provider_refund(&order, cents, &key).await?;
        Ok((order, cents))
    }

    /// Sends a refund to the order's provider (Stripe; the sandbox and manual payments have
    /// no money to send back here). `key` is the idempotency key: a retry never refunds twice.
    async fn provider_refund(&self, order: &Order, cents: i64, key: &str) -> Result<(), ApiError> {
        if let (Provider::Stripe, Some(stripe)) = (order.provider, &self.stripe) {
            if cents > 0 {
                if let Some(session) = &order.provider_ref {
                    stripe.refund_session(session, cents, key).await?;
                }
            }
        }
        Ok(())
    }

    /// The sandbox and Stripe webhooks report through here: one event, deduplicated by id.
    pub async fn apply(
        &self,
        app: &App,
        event: ProviderEvent,
        report: ProviderPayment,
    ) -> Result<PaymentOutcome, ApiError> {
        let outcome = app.db.apply_payment(Some(event.clone()), report).await?;
        match &outcome {
            PaymentOutcome::Ignored(why) => {
                tracing::warn!(event = %event.id, kind = %event.kind, reason = %why, "payment event ignored")
            }
            other => tracing::info!(event = %event.id, outcome = other.label(), "payment event"),
        }
        announce(app, &outcome).await;
        Ok(outcome)
    }
}

/// Tells the organization's webhooks what a payment did (`docs/alerts.md`): an order credited,
/// or failed. The event id comes from the order, so a second report of it is no new event.
pub(crate) async fn announce(app: &App, outcome: &PaymentOutcome) {
    let (kind, order) = match outcome {
        PaymentOutcome::Credited(o) => ("order.credited", o),
        PaymentOutcome::NotPaid(o) if o.status == OrderStatus::Failed => ("order.failed", o),
        _ => return,
    };
    let data = order_json(order, &app.cfg.accounts.public_url);
    crate::notify::emit(app, &order.org, kind, Some(order.id.as_str()), data).await;
}

/// Tells the organization's webhooks about a refund or a dispute that took `credits` back;
/// `cause` (the clawback's own id) makes the event once.
pub(crate) async fn announce_clawback(
    app: &App,
    kind: &str,
    order: &Order,
    credits: NanoCredits,
    cause: &str,
) {
    let data = json!({"order": order_json(order, &app.cfg.accounts.public_url),
        "credits": credits.to_string()});
    crate::notify::emit(app, &order.org, kind, Some(cause), data).await;
}

/// A manual payment may name any whole number of credits when no custom amount is configured.
fn manual_credits(credits: Option<&str>) -> Option<Quote> {
    let credits: NanoCredits = credits?.parse().ok()?;
    credits.is_positive().then_some(Quote {
        plan_id: None,
        credits,
        amount_cents: 0,
        expires_in_days: None,
    })
}

fn pending(order: &Order) -> ProviderPayment {
    ProviderPayment {
        provider: order.provider,
        order: order.id.clone(),
        org: order.org.clone(),
        amount_cents: order.amount_cents,
        currency: order.currency.clone(),
        state: PaymentState::Pending,
        method: None,
        reference: None,
    }
}

fn new_order(
    org: &OrganizationId,
    provider: Provider,
    quote: &Quote,
    now: creditgate_core::clock::Timestamp,
    req: &CheckoutRequest,
) -> Order {
    Order {
        id: new_order_id(),
        org: org.clone(),
        status: OrderStatus::Open,
        plan_id: quote.plan_id.clone(),
        credits: quote.credits,
        amount_cents: quote.amount_cents,
        currency: CURRENCY.to_owned(),
        provider,
        provider_ref: None,
        method: None,
        expires_in_days: quote.expires_in_days,
        success_url: req.success_url.clone(),
        cancel_url: req.cancel_url.clone(),
        created_at: now,
        paid_at: None,
        lot_id: None,
        receipt_number: None,
        failure: None,
        refunded_cents: 0,
        subtotal_cents: quote.amount_cents,
        tax_cents: 0,
        tax_rate: "0".to_owned(),
        buyer_country: None,
        buyer_tax_id: None,
    }
}

/// An order as the API shows it (`docs/payments.md`).
pub fn order_json(order: &Order, public_url: &str) -> Value {
    json!({
        "id": order.id,
        "type": "order",
        // The operator's order list spans organizations (`docs/payments.md`).
        "organization_id": order.org,
        "status": order.status.as_str(),
        "plan_id": order.plan_id,
        "credits": order.credits.to_string(),
        "subtotal_cents": order.subtotal_cents,
        "tax_cents": order.tax_cents,
        "tax_rate": order.tax_rate,
        "tax_label": order.tax_label(),
        "amount_cents": order.amount_cents,
        "currency": order.currency,
        "buyer_country": order.buyer_country,
        "buyer_tax_id": order.buyer_tax_id,
        "provider": order.provider.as_str(),
        "method": order.method,
        "created_at": order.created_at.to_rfc3339(),
        "paid_at": order.paid_at.map(|t| t.to_rfc3339()),
        "lot_id": order.lot_id,
        "receipt_number": order.receipt_number,
        "receipt_url": order
            .receipt_number
            .as_ref()
            .map(|_| format!("{public_url}/receipts/{}", order.id)),
        "refunded_cents": order.refunded_cents,
        "failure": order.failure.as_ref().map(|f| json!({"code": f.code.as_str(), "message": f.message})),
    })
}

/// Offers to run reconciliation at the configured interval; the replica holding the job's lease
/// for that interval runs it, so replicas sharing a database do not ask the provider about the
/// same orders at once (`docs/payments.md`).
pub async fn reconcile_forever(app: Arc<App>) {
    let every = std::time::Duration::from_millis(app.payments.cfg.reconcile_interval_ms.max(1_000));
    let lease_ms = i64::try_from(every.as_millis() * 9 / 10).unwrap_or(i64::MAX);
    let job = crate::jobs::LeasedJob::new(RECONCILE_JOB, lease_ms);
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tick.tick().await;
        if !job.claim(&app).await {
            continue;
        }
        let changed = app.payments.reconcile(&app).await;
        if changed > 0 {
            tracing::info!(changed, "reconciled open orders");
        }
    }
}
