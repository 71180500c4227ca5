//! A stateful fake of the parts of Stripe's API creditgate uses, so the `stripe` provider is
//! tested end to end over HTTP: customers, Checkout Sessions, payment intents, refunds and
//! disputes, with signed event delivery to a webhook URL. Cards answer from the same test-card
//! table as creditgate's sandbox ([`creditgate_core::payments::cards`]).
//!
//! Stripe's routes (form-encoded; `Authorization: Bearer <key>`, `Stripe-Version` and, on every
//! POST, `Idempotency-Key` are required — a POST replayed with the same key answers the first
//! response): `POST /v1/customers`, `POST /v1/checkout/sessions` (`mode=payment`, or
//! `mode=setup` with a SetupIntent), `GET /v1/checkout/sessions/{id}`, `POST /v1/refunds`,
//! `POST /v1/payment_intents` (off-session, confirmed at once; a decline is a 402 card error),
//! `GET /v1/payment_intents/{id}`, `GET /v1/charges/{id}`, `GET /v1/disputes/{id}`,
//! `GET /v1/setup_intents/{id}`, `GET /v1/payment_methods/{id}`,
//! `POST /v1/payment_methods/{id}/detach`. The dispute card `4000 0000 0000 0259` is disputed
//! right after it pays (`charge.dispute.created`).
//!
//! Test controls (not Stripe's): `POST /_test/checkout/sessions/{id}/pay` `{"card"}` pays a
//! session (or saves the card of a setup session) as the customer would on Stripe's page; `POST /_test/checkout/sessions/{id}/expire`;
//! `POST /_test/charges/{payment_intent}/dispute`; `POST /_test/disputes/{id}/close` `{"won"}`;
//! `GET /_test/events`; `POST /_test/events/{id}/deliver` sends one again.
//!
//! Fault knob: [`FakeStripe::lose_intent_answers`] makes the next off-session charges happen
//! (the intent, its charge, its event, the idempotency record) while the answer is lost on the
//! way — the headers are sent and the connection breaks in the body, as when a network or a
//! client timeout cuts a call Stripe completed. A retry with the same `Idempotency-Key` gets the
//! first answer, as on Stripe.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use creditgate_core::payments::cards::{ChargeOutcome, TestCard};
use creditgate_core::payments::signature;
use serde_json::{json, Value};

/// The fake's shared state.
#[derive(Default)]
struct Books {
    next: u64,
    sessions: HashMap<String, Value>,
    /// Payment intents, charges and disputes, as Stripe shows them.
    intents: HashMap<String, Value>,
    charges: HashMap<String, Value>,
    disputes: HashMap<String, Value>,
    setup_intents: HashMap<String, Value>,
    payment_methods: HashMap<String, Value>,
    /// The test card behind each payment method (never shown: Stripe shows last four only).
    cards: HashMap<String, &'static TestCard>,
    idempotent: HashMap<String, Value>,
    events: Vec<Value>,
    webhook_url: Option<String>,
}

/// A running fake Stripe.
#[derive(Clone)]
pub struct FakeStripe {
    books: Arc<Mutex<Books>>,
    secret_key: String,
    webhook_secret: String,
    http: reqwest::Client,
    /// Seconds added to the real clock when signing (a test can send stale events).
    pub clock_skew_secs: Arc<std::sync::atomic::AtomicI64>,
    /// How many of the next `POST /v1/payment_intents` answers are lost after the charge.
    pub lose_intent_answers: Arc<std::sync::atomic::AtomicUsize>,
    /// `GET /v1/checkout/sessions/{id}` calls answered so far (how often creditgate asked again).
    pub session_reads: Arc<std::sync::atomic::AtomicUsize>,
}

fn error(status: StatusCode, message: &str) -> Response {
    (
        status,
        Json(json!({"error": {"type": "invalid_request_error", "message": message}})),
    )
        .into_response()
}

fn refuse(status: StatusCode, message: &str) -> Box<Response> {
    Box::new(error(status, message))
}

fn form(body: &[u8]) -> HashMap<String, String> {
    form_urlencoded::parse(body).into_owned().collect()
}

impl FakeStripe {
    pub fn new(secret_key: &str, webhook_secret: &str) -> Self {
        Self {
            books: Arc::default(),
            secret_key: secret_key.to_owned(),
            webhook_secret: webhook_secret.to_owned(),
            http: reqwest::Client::new(),
            clock_skew_secs: Arc::default(),
            lose_intent_answers: Arc::default(),
            session_reads: Arc::default(),
        }
    }

    /// Where events go (creditgate's `/webhooks/stripe`).
    pub fn set_webhook_url(&self, url: &str) {
        self.lock().webhook_url = Some(url.to_owned());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Books> {
        self.books.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn router(&self) -> Router {
        Router::new()
            .route("/v1/customers", post(create_customer))
            .route("/v1/checkout/sessions", post(create_session))
            .route("/v1/checkout/sessions/{id}", get(get_session))
            .route("/v1/refunds", post(create_refund))
            .route("/v1/payment_intents/{id}", get(get_object))
            .route("/v1/charges/{id}", get(get_object))
            .route("/v1/disputes/{id}", get(get_object))
            .route("/v1/setup_intents/{id}", get(get_object))
            .route("/v1/payment_methods/{id}", get(get_object))
            .route("/v1/payment_methods/{id}/detach", post(detach))
            .route("/v1/payment_intents", post(create_intent))
            .route("/_test/checkout/sessions/{id}/pay", post(pay_session))
            .route("/_test/checkout/sessions/{id}/expire", post(expire_session))
            .route("/_test/charges/{pi}/dispute", post(dispute))
            .route("/_test/disputes/{id}/close", post(close_dispute))
            .route("/_test/events", get(list_events))
            .route("/_test/events/{id}/deliver", post(redeliver))
            .with_state(self.clone())
    }

    fn new_id(&self, prefix: &str) -> String {
        let mut b = self.lock();
        b.next += 1;
        format!("{prefix}_fake{:08}", b.next)
    }

    /// Checks the key and version, and answers a replayed POST from its idempotency key.
    fn check(&self, headers: &HeaderMap, post: bool) -> Result<Option<Value>, Box<Response>> {
        let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
        if auth != Some(&format!("Bearer {}", self.secret_key)) {
            return Err(Box::new(error(
                StatusCode::UNAUTHORIZED,
                "Invalid API Key provided",
            )));
        }
        if headers.get("stripe-version").is_none() {
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                "Stripe-Version is required here",
            ));
        }
        if !post {
            return Ok(None);
        }
        let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok());
        let Some(key) = key.filter(|k| !k.is_empty()) else {
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                "Idempotency-Key is required here",
            ));
        };
        Ok(self.lock().idempotent.get(key).cloned())
    }

    fn remember(&self, headers: &HeaderMap, value: &Value) {
        if let Some(key) = headers.get("idempotency-key").and_then(|v| v.to_str().ok()) {
            self.lock().idempotent.insert(key.to_owned(), value.clone());
        }
    }

    /// Records an event and delivers it, signed, to the webhook URL (if set).
    pub async fn emit(&self, kind: &str, object: Value) -> Value {
        let event = json!({
            "id": self.new_id("evt"),
            "object": "event",
            "type": kind,
            "created": now_secs(),
            "data": {"object": object},
        });
        self.lock().events.push(event.clone());
        self.deliver(&event).await;
        event
    }

    /// Sends one event to the webhook; returns the webhook's status, if it answered.
    pub async fn deliver(&self, event: &Value) -> Option<u16> {
        let url = self.lock().webhook_url.clone()?;
        let body = event.to_string();
        let t = now_secs()
            + self
                .clock_skew_secs
                .load(std::sync::atomic::Ordering::Relaxed);
        let header = signature::header(&self.webhook_secret, t, body.as_bytes());
        let resp = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .header("stripe-signature", header)
            .body(body)
            .send()
            .await
            .ok()?;
        Some(resp.status().as_u16())
    }

    /// Every event emitted so far, oldest first.
    pub fn events(&self) -> Vec<Value> {
        self.lock().events.clone()
    }

    /// A session as stored.
    pub fn session(&self, id: &str) -> Option<Value> {
        self.lock().sessions.get(id).cloned()
    }
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

async fn create_customer(State(s): State<FakeStripe>, headers: HeaderMap, body: Bytes) -> Response {
    match s.check(&headers, true) {
        Err(r) => return *r,
        Ok(Some(done)) => return Json(done).into_response(),
        Ok(None) => {}
    }
    let f = form(&body);
    let c = json!({"id": s.new_id("cus"), "object": "customer", "email": f.get("email")});
    s.remember(&headers, &c);
    Json(c).into_response()
}

async fn create_session(State(s): State<FakeStripe>, headers: HeaderMap, body: Bytes) -> Response {
    match s.check(&headers, true) {
        Err(r) => return *r,
        Ok(Some(done)) => return Json(done).into_response(),
        Ok(None) => {}
    }
    let f = form(&body);
    if f.get("mode").map(String::as_str) == Some("setup") {
        let session = s.setup_session(&f);
        s.remember(&headers, &session);
        return Json(session).into_response();
    }
    let (amount, currency, items) = match line_items(&f) {
        Ok(parsed) => parsed,
        Err(message) => return error(StatusCode::BAD_REQUEST, &message),
    };
    let id = s.new_id("cs_test");
    let metadata: HashMap<&str, &String> = f
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("metadata[")?.strip_suffix(']')?, v)))
        .collect();
    let intent_metadata: HashMap<&str, &String> = f
        .iter()
        .filter_map(|(k, v)| {
            let key = k.strip_prefix("payment_intent_data[metadata][")?;
            Some((key.strip_suffix(']')?, v))
        })
        .collect();
    let session = json!({
        "id": id, "object": "checkout.session", "url": format!("https://checkout.fake/{id}"),
        "status": "open", "payment_status": "unpaid", "amount_total": amount,
        "currency": currency, "client_reference_id": f.get("client_reference_id"),
        "metadata": metadata, "payment_intent": null, "success_url": f.get("success_url"),
        "payment_intent_data": {"metadata": intent_metadata},
        "line_items": {"object": "list", "data": items},
    });
    s.lock().sessions.insert(id, session.clone());
    s.remember(&headers, &session);
    Json(session).into_response()
}

/// Stripe's arithmetic on a Checkout Session's `line_items[i][price_data]`: amount_total is the
/// sum of unit_amount × quantity over every line, all in one currency.
fn line_items(f: &HashMap<String, String>) -> Result<(i64, String, Vec<Value>), String> {
    let mut total = 0_i64;
    let mut currency: Option<String> = None;
    let mut items = Vec::new();
    for i in 0.. {
        let field = |name: &str| f.get(&format!("line_items[{i}]{name}"));
        let Some(unit) = field("[price_data][unit_amount]") else {
            break;
        };
        let unit: i64 =
            unit.parse().ok().filter(|u| *u >= 0).ok_or_else(|| {
                format!("Invalid integer: line_items[{i}][price_data][unit_amount]")
            })?;
        let quantity: i64 = match field("[quantity]") {
            Some(q) => q
                .parse()
                .ok()
                .filter(|q| *q > 0)
                .ok_or_else(|| format!("Invalid integer: line_items[{i}][quantity]"))?,
            None => {
                return Err(format!(
                    "Missing required param: line_items[{i}][quantity]."
                ))
            }
        };
        let cur = field("[price_data][currency]").ok_or_else(|| {
            format!("Missing required param: line_items[{i}][price_data][currency].")
        })?;
        if currency.as_ref().is_some_and(|c| c != cur) {
            return Err("All line items must use the same currency.".to_owned());
        }
        currency = Some(cur.clone());
        let amount = unit.checked_mul(quantity).ok_or("amount too large")?;
        total = total.checked_add(amount).ok_or("amount too large")?;
        items.push(json!({
            "object": "item", "quantity": quantity, "currency": cur, "amount_total": amount,
            "description": field("[price_data][product_data][name]"),
        }));
    }
    match currency {
        Some(c) => Ok((total, c, items)),
        None => Err("line_items[0][price_data] is required".to_owned()),
    }
}

async fn get_session(
    State(s): State<FakeStripe>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = s.check(&headers, false) {
        return *r;
    }
    s.session_reads
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    match s.session(&id) {
        Some(session) => Json(session).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            &format!("No such checkout.session: '{id}'"),
        ),
    }
}

/// The customer pays on the hosted page: the card answers from the shared table.
async fn pay_session(
    State(s): State<FakeStripe>,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    let card = body.get("card").and_then(Value::as_str).unwrap_or("");
    let confirmed = body
        .get("confirm")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let Some(card) = TestCard::lookup(card) else {
        return error(StatusCode::BAD_REQUEST, "Your card number is incorrect.");
    };
    let Some(session) = s.session(&id).filter(|v| v["status"] == "open") else {
        return error(StatusCode::BAD_REQUEST, "This checkout is not open.");
    };
    if session["mode"] == "setup" {
        return s.complete_setup(&id, card, confirmed).await;
    }
    match card.charge(true, confirmed) {
        ChargeOutcome::Succeeded => {
            let paid = s.record_payment(&id, &session);
            let event = s.emit("checkout.session.completed", paid.clone()).await;
            Json(json!({"session": paid, "event": event})).into_response()
        }
        ChargeOutcome::SucceededThenDisputed => {
            let paid = s.record_payment(&id, &session);
            let event = s.emit("checkout.session.completed", paid.clone()).await;
            let pi = paid["payment_intent"].as_str().unwrap_or("").to_owned();
            let dispute = s.open_dispute(&pi).await;
            Json(json!({"session": paid, "event": event, "dispute": dispute})).into_response()
        }
        ChargeOutcome::NeedsConfirmation => Json(json!({"next_action": "confirm"})).into_response(),
        ChargeOutcome::Failed(code) => {
            let pi = s.new_id("pi");
            let intent = json!({"id": pi, "object": "payment_intent",
                "status": "requires_payment_method", "amount": session["amount_total"],
                "currency": session["currency"],
                "metadata": session["payment_intent_data"]["metadata"],
                "last_payment_error": {"code": "card_declined", "decline_code": code.as_str()}});
            s.lock().intents.insert(pi, intent.clone());
            let event = s.emit("payment_intent.payment_failed", intent).await;
            Json(json!({"declined": code.as_str(), "event": event})).into_response()
        }
    }
}

async fn expire_session(State(s): State<FakeStripe>, Path(id): Path<String>) -> Response {
    let expired = s.lock().sessions.get_mut(&id).map(|v| {
        v["status"] = json!("expired");
        v.clone()
    });
    match expired {
        Some(session) => Json(s.emit("checkout.session.expired", session).await).into_response(),
        None => error(StatusCode::NOT_FOUND, "no such session"),
    }
}

async fn create_refund(State(s): State<FakeStripe>, headers: HeaderMap, body: Bytes) -> Response {
    match s.check(&headers, true) {
        Err(r) => return *r,
        Ok(Some(done)) => return Json(done).into_response(),
        Ok(None) => {}
    }
    let f = form(&body);
    let pi = f.get("payment_intent").cloned().unwrap_or_default();
    let amount: i64 = f.get("amount").and_then(|a| a.parse().ok()).unwrap_or(0);
    let charge = s.charge_of(&pi).and_then(|ch| {
        let mut b = s.lock();
        let c = b.charges.get_mut(&ch)?;
        let (paid, refunded) = (c["amount"].as_i64()?, c["amount_refunded"].as_i64()?);
        if amount <= 0 || refunded + amount > paid {
            return None;
        }
        c["amount_refunded"] = json!(refunded + amount);
        c["refunded"] = json!(refunded + amount == paid);
        Some(c.clone())
    });
    let Some(charge) = charge else {
        return error(
            StatusCode::BAD_REQUEST,
            "Refund amount exceeds the charge, or no charge",
        );
    };
    let refund = json!({"id": s.new_id("re"), "object": "refund", "amount": amount,
        "payment_intent": pi, "status": "succeeded"});
    s.remember(&headers, &refund);
    s.emit("charge.refunded", charge).await;
    Json(refund).into_response()
}

async fn dispute(State(s): State<FakeStripe>, Path(pi): Path<String>) -> Response {
    match s.open_dispute(&pi).await {
        Some(event) => Json(event).into_response(),
        None => error(StatusCode::NOT_FOUND, "no such payment"),
    }
}

/// Closes a dispute, won (`{"won": true}`) or lost.
async fn close_dispute(
    State(s): State<FakeStripe>,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    let won = body.get("won").and_then(Value::as_bool).unwrap_or(false);
    let closed = s.lock().disputes.get_mut(&id).map(|d| {
        d["status"] = json!(if won { "won" } else { "lost" });
        d.clone()
    });
    match closed {
        Some(d) => Json(s.emit("charge.dispute.closed", d).await).into_response(),
        None => error(StatusCode::NOT_FOUND, "no such dispute"),
    }
}

async fn list_events(State(s): State<FakeStripe>) -> Json<Value> {
    Json(json!({"data": s.events()}))
}

async fn redeliver(State(s): State<FakeStripe>, Path(id): Path<String>) -> Response {
    let event = s.events().into_iter().find(|e| e["id"] == id.as_str());
    match event {
        Some(e) => Json(json!({"status": s.deliver(&e).await})).into_response(),
        None => error(StatusCode::NOT_FOUND, "no such event"),
    }
}

impl FakeStripe {
    /// Marks a session paid: a payment intent (with the session's `payment_intent_data`
    /// metadata) and its charge.
    fn record_payment(&self, id: &str, session: &Value) -> Value {
        let (pi, ch) = (self.new_id("pi"), self.new_id("ch"));
        let amount = session["amount_total"].as_i64().unwrap_or(0);
        let mut b = self.lock();
        b.intents.insert(
            pi.clone(),
            json!({"id": pi, "object": "payment_intent", "amount": amount,
                "amount_received": amount, "currency": session["currency"],
                "status": "succeeded", "latest_charge": ch,
                "metadata": session["payment_intent_data"]["metadata"]}),
        );
        b.charges.insert(
            ch.clone(),
            json!({"id": ch, "object": "charge", "payment_intent": pi, "amount": amount,
                "amount_refunded": 0, "refunded": false}),
        );
        let stored = b.sessions.get_mut(id).map(|v| {
            v["status"] = json!("complete");
            v["payment_status"] = json!("paid");
            v["payment_intent"] = json!(pi);
            v.clone()
        });
        stored.unwrap_or_else(|| session.clone())
    }

    /// The charge of a payment intent.
    fn charge_of(&self, pi: &str) -> Option<String> {
        let b = self.lock();
        b.intents.get(pi)?["latest_charge"]
            .as_str()
            .map(str::to_owned)
    }
}

async fn get_object(
    State(s): State<FakeStripe>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = s.check(&headers, false) {
        return *r;
    }
    let b = s.lock();
    let found = b
        .intents
        .get(&id)
        .or_else(|| b.charges.get(&id))
        .or_else(|| b.disputes.get(&id))
        .or_else(|| b.setup_intents.get(&id))
        .or_else(|| b.payment_methods.get(&id))
        .cloned();
    drop(b);
    match found {
        Some(v) => Json(v).into_response(),
        None => error(StatusCode::NOT_FOUND, &format!("No such object: '{id}'")),
    }
}

impl FakeStripe {
    /// The cardholder disputes a payment: a dispute for its whole amount, and its event.
    async fn open_dispute(&self, pi: &str) -> Option<Value> {
        let amount = self
            .lock()
            .intents
            .get(pi)
            .and_then(|v| v["amount"].as_i64())?;
        let id = self.new_id("dp");
        let d = json!({"id": id, "object": "dispute", "payment_intent": pi,
            "charge": self.charge_of(pi), "amount": amount, "status": "needs_response"});
        self.lock().disputes.insert(id, d.clone());
        Some(self.emit("charge.dispute.created", d).await)
    }

    /// A Checkout Session in setup mode, with its SetupIntent (`setup_intent_data[metadata]`).
    fn setup_session(&self, f: &HashMap<String, String>) -> Value {
        let (id, seti) = (self.new_id("cs_test"), self.new_id("seti"));
        let meta = |prefix: &str| -> HashMap<String, String> {
            f.iter()
                .filter_map(|(k, v)| {
                    Some((
                        k.strip_prefix(prefix)?.strip_suffix(']')?.to_owned(),
                        v.clone(),
                    ))
                })
                .collect()
        };
        let intent = json!({"id": seti, "object": "setup_intent", "status":
            "requires_payment_method", "customer": f.get("customer"), "usage": "off_session",
            "payment_method": null, "metadata": meta("setup_intent_data[metadata]["),
            "last_setup_error": null});
        let session = json!({"id": id, "object": "checkout.session", "mode": "setup",
            "url": format!("https://checkout.fake/{id}"), "status": "open",
            "payment_status": "no_payment_required", "customer": f.get("customer"),
            "setup_intent": seti, "metadata": meta("metadata["), "payment_intent": null,
            "success_url": f.get("success_url")});
        let mut b = self.lock();
        b.setup_intents.insert(seti, intent);
        b.sessions.insert(id, session.clone());
        session
    }

    /// The customer enters a card on a setup session: saved unless the card cannot be;
    /// `…3184` asks for confirmation first.
    async fn complete_setup(&self, id: &str, card: &'static TestCard, confirmed: bool) -> Response {
        let seti = self
            .session(id)
            .and_then(|s| s["setup_intent"].as_str().map(str::to_owned));
        let seti = seti.unwrap_or_default();
        if card.charge(true, confirmed) == ChargeOutcome::NeedsConfirmation {
            return Json(json!({"next_action": "confirm"})).into_response();
        }
        if !card.can_save() {
            let code = match card.charge(true, true) {
                ChargeOutcome::Failed(code) => code.as_str(),
                _ => "card_declined",
            };
            let failed = self.lock().setup_intents.get_mut(&seti).map(|v| {
                v["status"] = json!("requires_payment_method");
                v["last_setup_error"] = json!({"code": "card_declined", "decline_code": code});
                v.clone()
            });
            let event = self
                .emit("setup_intent.setup_failed", failed.unwrap_or_default())
                .await;
            return Json(json!({"declined": code, "event": event})).into_response();
        }
        let pm = self.new_id("pm");
        let saved = {
            let mut b = self.lock();
            let customer = b.setup_intents.get(&seti).map(|v| v["customer"].clone());
            b.payment_methods.insert(
                pm.clone(),
                json!({"id": pm, "object": "payment_method",
                "type": "card", "customer": customer, "card": {"brand": card.brand,
                "last4": card.last4(), "exp_month": 12, "exp_year": 2034}}),
            );
            b.cards.insert(pm.clone(), card);
            if let Some(s) = b.sessions.get_mut(id) {
                s["status"] = json!("complete");
            }
            b.setup_intents.get_mut(&seti).map(|v| {
                v["status"] = json!("succeeded");
                v["payment_method"] = json!(pm);
                v.clone()
            })
        };
        let event = self
            .emit("setup_intent.succeeded", saved.unwrap_or_default())
            .await;
        if let Some(session) = self.session(id) {
            self.emit("checkout.session.completed", session).await;
        }
        Json(json!({"payment_method": pm, "event": event})).into_response()
    }
}

/// `POST /v1/payment_intents` with `confirm=true&off_session=true`: charges a saved card as
/// Stripe does off-session — a decline is a 402 `card_error` naming the failed intent.
async fn create_intent(State(s): State<FakeStripe>, headers: HeaderMap, body: Bytes) -> Response {
    match s.check(&headers, true) {
        Err(r) => return *r,
        Ok(Some(done)) => return replay_intent(done),
        Ok(None) => {}
    }
    let f = form(&body);
    let pm = f.get("payment_method").cloned().unwrap_or_default();
    let amount: i64 = f.get("amount").and_then(|a| a.parse().ok()).unwrap_or(0);
    let card = s.lock().cards.get(&pm).copied();
    let Some(card) = card.filter(|_| amount > 0) else {
        return error(
            StatusCode::BAD_REQUEST,
            "No such payment_method, or no amount",
        );
    };
    let metadata: HashMap<String, String> = f
        .iter()
        .filter_map(|(k, v)| {
            Some((
                k.strip_prefix("metadata[")?.strip_suffix(']')?.to_owned(),
                v.clone(),
            ))
        })
        .collect();
    let (pi, ch) = (s.new_id("pi"), s.new_id("ch"));
    let outcome = card.charge(false, false);
    let mut intent = json!({"id": pi, "object": "payment_intent", "amount": amount,
        "currency": f.get("currency"), "customer": f.get("customer"), "payment_method": pm,
        "metadata": metadata, "latest_charge": null, "last_payment_error": null});
    let failed = match outcome {
        ChargeOutcome::Succeeded | ChargeOutcome::SucceededThenDisputed => {
            intent["status"] = json!("succeeded");
            intent["amount_received"] = json!(amount);
            intent["latest_charge"] = json!(ch);
            s.lock().charges.insert(
                ch.clone(),
                json!({"id": ch, "object": "charge",
                "payment_intent": pi, "amount": amount, "amount_refunded": 0, "refunded": false}),
            );
            None
        }
        ChargeOutcome::Failed(code) => Some(code.as_str()),
        ChargeOutcome::NeedsConfirmation => Some("authentication_required"),
    };
    if let Some(code) = failed {
        let (code, decline) = match code {
            "authentication_required" => ("authentication_required", "authentication_required"),
            other => ("card_declined", other),
        };
        intent["status"] = json!("requires_payment_method");
        intent["last_payment_error"] = json!({"code": code, "decline_code": decline});
    }
    s.lock().intents.insert(pi.clone(), intent.clone());
    let answer = match failed {
        None => intent.clone(),
        Some(_) => json!({"error": {"type": "card_error",
            "code": intent["last_payment_error"]["code"],
            "decline_code": intent["last_payment_error"]["decline_code"],
            "message": "Your card was declined.", "payment_intent": intent}}),
    };
    s.remember(&headers, &answer);
    let kind = if failed.is_none() {
        "payment_intent.succeeded"
    } else {
        "payment_intent.payment_failed"
    };
    s.emit(kind, intent).await;
    if outcome == ChargeOutcome::SucceededThenDisputed {
        s.open_dispute(&pi).await;
    }
    if s.take_lost_answer() {
        return lost_answer();
    }
    replay_intent(answer)
}

impl FakeStripe {
    fn take_lost_answer(&self) -> bool {
        use std::sync::atomic::Ordering;
        self.lose_intent_answers
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }
}

/// A 200 whose body breaks off: the client sees the call fail after Stripe did the work.
fn lost_answer() -> Response {
    let broken = futures_util::stream::once(async {
        Err::<Bytes, std::io::Error>(std::io::Error::other("connection lost"))
    });
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        axum::body::Body::from_stream(broken),
    )
        .into_response()
}

/// An off-session answer: the intent (200) or the card error naming it (402).
fn replay_intent(answer: Value) -> Response {
    let status = if answer.get("error").is_some() {
        StatusCode::PAYMENT_REQUIRED
    } else {
        StatusCode::OK
    };
    (status, Json(answer)).into_response()
}

async fn detach(
    State(s): State<FakeStripe>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    match s.check(&headers, true) {
        Err(r) => return *r,
        Ok(Some(done)) => return Json(done).into_response(),
        Ok(None) => {}
    }
    let detached = s.lock().payment_methods.get_mut(&id).map(|v| {
        v["customer"] = Value::Null;
        v.clone()
    });
    match detached {
        Some(v) => {
            s.lock().cards.remove(&id);
            s.remember(&headers, &v);
            Json(v).into_response()
        }
        None => error(
            StatusCode::NOT_FOUND,
            &format!("No such payment_method: '{id}'"),
        ),
    }
}

/// Serves a fake Stripe on `listener` until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener, fake: FakeStripe) -> std::io::Result<()> {
    axum::serve(listener, fake.router()).await
}
