//! Auto-reload and alerts against the real `creditgate demo` process (`docs/auto-reload.md`,
//! `docs/alerts.md`): with a saved sandbox card, spending the demo organization below its
//! threshold buys the reload amount once (the balance and the receipt show it) and a signed
//! `auto_reload.succeeded` reaches a local receiver that verifies the signature; then a card
//! that declines every charge fails its first try, with the email in the outbox and the signed
//! `auto_reload.failed` event. (The pause after the backoff needs a test clock: the API tests
//! `reload_alerts` drive it.)

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use creditgate_core::money::NanoCredits;
use creditgate_core::payments::signature;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::demo_purchase::Demo;

/// Signed events received: (event type, the signature matched).
type Inbox = Arc<Mutex<Vec<(String, bool)>>>;

/// A minimal HTTP receiver on 127.0.0.1:0 answering 200 to every POST; checks each
/// `creditgate-signature` with the secret once it is set.
async fn receiver(secret: Arc<Mutex<String>>) -> (String, Inbox) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let inbox: Inbox = Arc::default();
    let got = inbox.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let (secret, got) = (secret.clone(), got.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let (head, body) = loop {
                    let n = conn.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                    let len: usize = header(&head, "content-length").parse().unwrap_or(0);
                    if buf.len() >= end + 4 + len {
                        break (head, buf[end + 4..end + 4 + len].to_vec());
                    }
                };
                let sig = header(&head, "creditgate-signature");
                let secret = secret.lock().unwrap().clone();
                let now = i64::try_from(
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap()
                        .as_secs(),
                )
                .unwrap();
                let ok = signature::verify(&sig, &body, &[secret], now, 300).is_ok();
                got.lock()
                    .unwrap()
                    .push((header(&head, "creditgate-event"), ok));
                let _ = conn
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await;
            });
        }
    });
    (url, inbox)
}

fn header(head: &str, name: &str) -> String {
    head.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .unwrap_or_default()
        .trim()
        .to_owned()
}

async fn call(demo: &Demo, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
    let key = demo.info["organization_admin_key"].as_str().unwrap();
    let mut req = reqwest::Client::new()
        .request(method, demo.url(path))
        .header("x-api-key", key);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{path}: {status} {v}");
    v
}

/// Saves `card` on the sandbox; answers its payment method id.
async fn save_card(demo: &Demo, card: &str) -> String {
    let setup = call(
        demo,
        reqwest::Method::POST,
        "/v1/billing/payment_methods",
        None,
    )
    .await;
    let saved: Value = reqwest::Client::new()
        .post(setup["setup_url"].as_str().unwrap())
        .json(&json!({"card": card}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(saved["payment_method"]["status"], "active", "{saved}");
    setup["payment_method"]["id"].as_str().unwrap().to_owned()
}

/// Sends one request with the demo's key.
async fn spend(demo: &Demo) {
    let r = reqwest::Client::new()
        .post(demo.url("/v1/messages"))
        .header("x-api-key", demo.info["api_key"].as_str().unwrap())
        .header("anthropic-version", "2023-06-01")
        .json(&json!({"model": "claude-haiku-4-5", "max_tokens": 10,
            "messages": [{"role": "user", "content": "Hello"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// Waits until `check` holds (the demo runs reloads and deliveries after the answers).
async fn eventually<F: FnMut() -> bool>(what: &str, mut check: F) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_demo_reloads_once_below_its_threshold_with_signed_webhooks() {
    let demo = Demo::start();
    let secret = Arc::new(Mutex::new(String::new()));
    let (url, inbox) = receiver(secret.clone()).await;
    use reqwest::Method;
    call(
        &demo,
        Method::PUT,
        "/v1/billing/profile",
        Some(json!({"name": "Demo", "country": "FR"})),
    )
    .await;
    let events = json!(["auto_reload.succeeded", "auto_reload.failed"]);
    let hook = call(
        &demo,
        Method::POST,
        "/v1/organizations/webhooks",
        Some(json!({"url": url, "events": events})),
    )
    .await;
    *secret.lock().unwrap() = hook["secret"].as_str().unwrap().to_owned();
    let visa = save_card(&demo, "4242424242424242").await;
    let settings = json!({"enabled": true, "threshold": "1000", "plan_id": "credits-1000",
        "payment_method_id": visa, "monthly_limit": "100000"});
    call(
        &demo,
        Method::PUT,
        "/v1/billing/auto_reload",
        Some(settings),
    )
    .await;
    spend(&demo).await;
    let received = |kind: &str| {
        let inbox = inbox.clone();
        let kind = kind.to_owned();
        move || {
            inbox
                .lock()
                .unwrap()
                .iter()
                .any(|(k, ok)| *k == kind && *ok)
        }
    };
    eventually(
        "a signed auto_reload.succeeded",
        received("auto_reload.succeeded"),
    )
    .await;
    let orders = call(&demo, Method::GET, "/v1/billing/orders", None).await;
    let orders = orders["data"].as_array().unwrap();
    assert_eq!(
        orders.len(),
        2,
        "the demo's own open checkout and one reload: {orders:?}"
    );
    let reload = orders
        .iter()
        .find(|o| o["status"] == "credited")
        .expect("the reload");
    let receipt = reqwest::get(reload["receipt_url"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(receipt.status(), 200);
    let credits = call(&demo, Method::GET, "/v1/organizations/credits", None).await;
    let balance: NanoCredits = credits["balance"].as_str().unwrap().parse().unwrap();
    let (low, high): (NanoCredits, NanoCredits) =
        ("1999".parse().unwrap(), "2000".parse().unwrap());
    assert!(
        low < balance && balance < high,
        "1000 + 1000 - one request: {credits}"
    );
    // A card that declines every charge: the first try fails, emailed and announced.
    let declining = save_card(&demo, "4000000000000341").await;
    let settings = json!({"enabled": true, "threshold": "5000", "plan_id": "credits-1000",
        "payment_method_id": declining, "monthly_limit": "100000"});
    call(
        &demo,
        Method::PUT,
        "/v1/billing/auto_reload",
        Some(settings),
    )
    .await;
    spend(&demo).await;
    eventually(
        "a signed auto_reload.failed",
        received("auto_reload.failed"),
    )
    .await;
    let outbox = std::path::PathBuf::from(demo.info["outbox_dir"].as_str().unwrap());
    eventually("the decline email", || {
        std::fs::read_dir(&outbox)
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| {
                std::fs::read_to_string(e.path())
                    .is_ok_and(|m| m.contains("Auto-reload failed: the card was declined"))
            })
    })
    .await;
    assert!(
        inbox.lock().unwrap().iter().all(|(_, ok)| *ok),
        "every delivery signed"
    );
}
