//! Cheap attacks (`docs/gateway.md`, reliability cases J): slow headers and bodies, too many
//! connections, oversized and hostile input. Each is refused quickly and costs a bounded amount.

use std::time::Duration;

use creditgate_core::keys::ApiKeySecret;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{body, Setup, TestApp};

/// Longer than any timeout configured below: a test that waits this long has failed.
const PATIENCE: Duration = Duration::from_secs(10);

trait Ok200 {
    fn assert_ok(&self);
}

impl Ok200 for crate::helpers::JsonReply {
    fn assert_ok(&self) {
        assert_eq!(self.status, 200, "{self:?}");
    }
}

/// Reads until the server closes the connection (or `PATIENCE` runs out: `None`).
async fn read_to_close(stream: &mut TcpStream) -> Option<String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(PATIENCE, read).await.ok()?;
    Some(String::from_utf8_lossy(&out).into_owned())
}

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.addr).await.expect("connect")
}

#[tokio::test]
async fn a_connection_sending_partial_headers_is_dropped() {
    let app = TestApp::spawn_with(Setup {
        header_read_timeout_ms: 500,
        ..Setup::default()
    })
    .await;
    let mut slow = connect(&app).await;
    slow.write_all(b"POST /v1/messages HTTP/1.1\r\nhost: localhost\r\nx-api-key: sk-cg-")
        .await
        .unwrap();
    let answer = read_to_close(&mut slow).await;
    assert!(
        answer.is_some(),
        "a client still sending its headers after the timeout keeps its connection"
    );
    // A connection that never sends anything is closed too.
    let mut idle = connect(&app).await;
    assert!(read_to_close(&mut idle).await.is_some());
    // Normal requests are unaffected.
    app.message(&body(5, "")).await.assert_ok();
}

#[tokio::test]
async fn a_body_that_trickles_in_gets_408() {
    let app = TestApp::spawn_with(Setup {
        body_read_timeout_ms: 500,
        ..Setup::default()
    })
    .await;
    let mut slow = connect(&app).await;
    let head = format!(
        "POST /v1/messages HTTP/1.1\r\nhost: localhost\r\nx-api-key: {}\r\n\
         anthropic-version: 2023-06-01\r\ncontent-type: application/json\r\n\
         content-length: 1000\r\n\r\n{{\"model\":",
        app.api_key
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    let answer = read_to_close(&mut slow).await.expect("answered, not held");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("timeout_error"), "{answer}");
    app.assert_ledger_clean().await;
}

#[tokio::test]
async fn connections_beyond_the_limit_wait_until_one_closes() {
    let app = TestApp::spawn_with(Setup {
        max_connections: 2,
        ..Setup::default()
    })
    .await;
    let first = connect(&app).await;
    let second = connect(&app).await;
    let waiting = tokio::time::timeout(
        Duration::from_millis(700),
        app.client.get(app.url("/healthz")).send(),
    )
    .await;
    assert!(
        waiting.is_err(),
        "a third connection was served: {waiting:?}"
    );
    drop(first);
    let served = tokio::time::timeout(PATIENCE, app.client.get(app.url("/healthz")).send())
        .await
        .expect("served once a connection closed")
        .expect("response");
    assert_eq!(served.status(), 200);
    drop(second);
}

#[tokio::test]
async fn a_declared_oversized_body_is_refused_before_it_is_read() {
    let app = TestApp::spawn().await;
    let mut client = connect(&app).await;
    let head = format!(
        "POST /v1/messages HTTP/1.1\r\nhost: localhost\r\nx-api-key: {}\r\n\
         content-type: application/json\r\ncontent-length: 5000000000\r\n\r\n",
        app.api_key
    );
    client.write_all(head.as_bytes()).await.unwrap();
    let answer = read_to_close(&mut client).await.expect("answered at once");
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
}

#[tokio::test]
async fn bodies_in_flight_share_one_memory_budget() {
    let app = TestApp::spawn_with(Setup {
        max_body_bytes: 1024 * 1024,
        max_body_bytes_in_flight: 1024 * 1024,
        ..Setup::default()
    })
    .await;
    // One client declares 900 KB and sends it slowly: it holds that much of the budget.
    let mut holder = connect(&app).await;
    let head = format!(
        "POST /v1/messages HTTP/1.1\r\nhost: localhost\r\nx-api-key: {}\r\n\
         content-type: application/json\r\ncontent-length: 900000\r\n\r\n{{",
        app.api_key
    );
    holder.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let big = json!({"model": "claude-haiku-4-5", "max_tokens": 5,
        "messages": [{"role": "user", "content": "x".repeat(200_000)}]});
    let refused = app.message(&big).await;
    refused.assert_error(529, "overloaded_error");
    assert_eq!(refused.header("x-should-retry"), Some("true"));
    drop(holder);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut accepted = app.message(&big).await;
    if accepted.status == 529 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        accepted = app.message(&big).await;
    }
    accepted.assert_ok();
}

#[tokio::test]
async fn a_3_mb_model_name_is_a_short_400_that_does_not_echo_it() {
    let app = TestApp::spawn_with(Setup {
        max_body_bytes: 8 * 1024 * 1024,
        ..Setup::default()
    })
    .await;
    let name = format!("claude-haiku-4-5{}", "x".repeat(3 * 1024 * 1024));
    let request = json!({"model": name, "max_tokens": 5,
        "messages": [{"role": "user", "content": "hi"}]});
    for path in ["/v1/messages", "/v1/messages/count_tokens"] {
        let resp = app
            .client
            .post(app.url(path))
            .header("x-api-key", &app.api_key)
            .header("anthropic-version", "2023-06-01")
            .json(&request)
            .send()
            .await
            .unwrap();
        let reply = crate::helpers::JsonReply::read(resp).await;
        reply.assert_error(400, "invalid_request_error");
        let shown = reply.body.to_string();
        assert!(shown.len() < 500, "{path}: {} bytes", shown.len());
        assert!(
            !shown.contains("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"),
            "{shown}"
        );
    }
    // A long id in the path is not looked up character by character either.
    let reply = app
        .get(&format!("/v1/models/claude-{}", "y".repeat(20_000)))
        .await;
    reply.assert_error(404, "not_found_error");
    assert!(reply.body.to_string().len() < 500, "{}", reply.body);
    app.assert_ledger_clean().await;
}

/// Error bodies and receipts say what failed, never where: no upstream URL, host or port.
#[tokio::test]
async fn errors_and_receipts_never_name_the_upstream() {
    let closed = crate::helpers::closed_port().await;
    let app = TestApp::spawn_with(Setup {
        upstream_base_url: Some(format!("http://{closed}")),
        ..Setup::default()
    })
    .await;
    let port = closed.port().to_string();
    for stream in [false, true] {
        let mut request = body(16, "");
        request["stream"] = json!(stream);
        let reply = app.message(&request).await;
        reply.assert_error(502, "api_error");
        let shown = reply.body.to_string();
        assert!(
            !shown.contains("http://") && !shown.contains(&port),
            "{shown}"
        );
        let receipt = app.receipt(&reply.request_id()).await;
        assert!(!receipt.0.to_string().contains(&port), "{}", receipt.0);
    }
    let resp = app
        .client
        .post(app.url("/v1/messages/count_tokens"))
        .header("x-api-key", &app.api_key)
        .json(&json!({"model": "claude-haiku-4-5", "messages": []}))
        .send()
        .await
        .unwrap();
    let reply = crate::helpers::JsonReply::read(resp).await;
    reply.assert_error(502, "api_error");
    assert!(!reply.body.to_string().contains(&port), "{}", reply.body);

    // A stream the upstream breaks mid-way: the receipt's note names no address either.
    let app = TestApp::spawn().await;
    let mut request = body(256, "output_tokens=100 chunk_tokens=2 reset_after=3");
    request["stream"] = json!(true);
    let reply = app.stream(&request).await;
    let receipt = app.final_receipt(&reply.request_id()).await;
    let note = receipt.0["note"].to_string();
    assert!(note.contains("upstream"), "{}", receipt.0);
    assert!(
        !note.contains("http") && !note.contains("127.0.0.1"),
        "{note}"
    );
}

#[tokio::test]
async fn failed_authentications_are_throttled_per_address() {
    let app = TestApp::spawn_with(Setup {
        auth_failures_per_minute: 5,
        ..Setup::default()
    })
    .await;
    for _ in 0..5 {
        app.message_as("sk-cg-not-a-key", &body(5, ""))
            .await
            .assert_error(401, "authentication_error");
    }
    // The rest of a burst of bad keys is refused before any lookup, with a time to come back.
    for _ in 0..200 {
        let locked = app.message_as("sk-cg-not-a-key", &body(5, "")).await;
        locked.assert_error(429, "rate_limit_error");
        let wait: u64 = locked.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=10).contains(&wait), "{wait}");
    }
    // The address is locked out whatever key it presents…
    app.message(&body(5, ""))
        .await
        .assert_error(429, "rate_limit_error");
    // …while another address is unaffected.
    let other = reqwest::Client::builder()
        .local_address("127.0.0.2".parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap();
    let resp = other
        .post(app.url("/v1/messages"))
        .header("x-api-key", &app.api_key)
        .header("anthropic-version", "2023-06-01")
        .json(&body(5, ""))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        app.sim.stats().messages,
        1,
        "only the valid request was forwarded"
    );
    app.assert_ledger_clean().await;
}

/// Sends `request` with these `anthropic-beta` header values.
async fn with_betas(app: &TestApp, betas: &[&str], path: &str) -> crate::helpers::JsonReply {
    let mut req = app
        .client
        .post(app.url(path))
        .header("x-api-key", &app.api_key)
        .header("anthropic-version", "2023-06-01")
        .json(&body(5, ""));
    for b in betas {
        req = req.header("anthropic-beta", *b);
    }
    crate::helpers::JsonReply::read(req.send().await.unwrap()).await
}

#[tokio::test]
async fn only_betas_the_price_book_bills_are_forwarded() {
    let app = TestApp::spawn().await;
    let before = app.balance().await;
    for path in ["/v1/messages", "/v1/messages/count_tokens"] {
        for betas in [
            vec!["code-execution-2025-08-25"],
            vec!["claude-code-20250219,code-execution-2025-08-25"],
            vec!["claude-code-20250219", "skills-2025-10-02"],
        ] {
            let reply = with_betas(&app, &betas, path).await;
            reply.assert_error(400, "invalid_request_error");
            assert!(
                reply.error_message().contains("is not enabled"),
                "{}",
                reply.body
            );
        }
    }
    assert_eq!(app.sim.stats().messages + app.sim.stats().count_tokens, 0);
    assert_eq!(app.balance().await, before, "a refused beta costs nothing");

    let reply = with_betas(
        &app,
        &["claude-code-20250219, interleaved-thinking-2025-05-14"],
        "/v1/messages",
    )
    .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let forwarded = app.sim.recorded();
    let beta = forwarded
        .last()
        .unwrap()
        .headers
        .iter()
        .find(|(n, _)| n == "anthropic-beta")
        .map(|(_, v)| v.clone());
    assert_eq!(
        beta.as_deref(),
        Some("claude-code-20250219, interleaved-thinking-2025-05-14")
    );
}

/// Issue 7: the body's `betas` field goes through the same allow-list as the header: an entry
/// that is not enabled, not a string, or a `betas` that is not an array is a 400 that costs
/// nothing and reaches nothing; enabled ones pass, byte for byte.
#[tokio::test]
async fn betas_in_the_body_go_through_the_allow_list() {
    let app = TestApp::spawn().await;
    let before = app.balance().await;
    let with = |betas: Value| {
        let mut b = body(5, "");
        b["betas"] = betas;
        b
    };
    for betas in [
        json!(["code-execution-2025-08-25"]),
        json!(["claude-code-20250219", "skills-2025-10-02"]),
        json!(["claude-code-20250219", 7]),
        json!("claude-code-20250219"),
        json!(vec!["claude-code-20250219"; 65]),
    ] {
        let reply = app.message(&with(betas.clone())).await;
        reply.assert_error(400, "invalid_request_error");
        assert!(
            reply.error_message().starts_with("betas: "),
            "{betas}: {}",
            reply.body
        );
    }
    assert_eq!(app.sim.stats().messages, 0, "nothing was forwarded");
    assert_eq!(app.balance().await, before, "a refused beta costs nothing");

    let allowed = with(json!(["claude-code-20250219"]));
    let reply = app.message(&allowed).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let forwarded = app.sim.recorded();
    assert_eq!(
        forwarded.last().unwrap().body,
        allowed.to_string(),
        "the body is forwarded unchanged"
    );
    app.assert_ledger_clean().await;
}

/// J61, auth timing, shown by construction rather than with a stopwatch: a presented key is
/// looked up by the SHA-256 of the whole key (an equality on `key_hash` in storage; the replica's
/// cache is keyed by the same hash), so the characters a wrong key shares with a real one change
/// nothing the gateway computes. Both keys here are well-formed (valid checksums, so both reach
/// the lookup) — one shares its first 22 characters with the real key, one is random — and
/// their answers are the same, field for field, but for the request id. Why not a timing test:
/// see `docs/gateway.md` (J61).
#[tokio::test]
async fn a_key_sharing_a_prefix_with_a_real_key_is_handled_like_a_random_one() {
    let app = TestApp::spawn().await;
    let real = app.api_key.clone();
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let shared = "sk-cg-".len() + 16;
    let mut random: [u8; 32] = rand::random();
    for (i, c) in real.as_bytes()["sk-cg-".len()..shared].iter().enumerate() {
        random[i] = ALPHABET.iter().position(|a| a == c).unwrap() as u8;
    }
    let near = ApiKeySecret::from_random(random).expose().to_owned();
    let far = ApiKeySecret::from_random(rand::random())
        .expose()
        .to_owned();
    assert!(
        near.starts_with(&real[..shared]) && near != real,
        "{near} / {real}"
    );
    assert!(ApiKeySecret::parse(&near).is_ok() && ApiKeySecret::parse(&far).is_ok());
    let hash = |k: &str| ApiKeySecret::parse(k).unwrap().hash();
    assert_ne!(
        hash(&near)[..8],
        hash(&real)[..8],
        "the hashes do not share the prefix"
    );

    let before = app.balance().await;
    let mut answers = Vec::new();
    for key in [&near, &far, &near, &far] {
        let reply = app.message_as(key, &body(5, "")).await;
        reply.assert_error(401, "authentication_error");
        let mut shown = reply.body.clone();
        shown.as_object_mut().unwrap().remove("request_id");
        answers.push((reply.status, shown, reply.headers.len()));
    }
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "{answers:#?}");
    assert_eq!(app.sim.stats().messages, 0);
    assert_eq!(app.balance().await, before);
}

/// J58: odd hosts and non-canonical paths route exactly as the canonical path does: to the
/// same handler with the same authentication, or to 404, and nothing else reaches the upstream.
#[tokio::test]
async fn host_and_path_confusion_changes_nothing() {
    let app = TestApp::spawn().await;
    let payload = body(5, "").to_string();
    let send = |path: &str, host: &str, key: Option<&str>| {
        let key = key
            .map(|k| format!("x-api-key: {k}\r\n"))
            .unwrap_or_default();
        format!(
            "POST {path} HTTP/1.1\r\nhost: {host}\r\n{key}anthropic-version: 2023-06-01\r\n\
             content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{payload}",
            payload.len()
        )
    };
    let status = |answer: &str| answer.get(9..12).unwrap_or("").to_owned();
    let key = app.api_key.clone();
    for path in [
        "//v1/messages",
        "/v1//messages",
        "/v1/%2e%2e/v1/messages",
        "/v1/../v1/messages",
        "/v1/messages/",
        "/V1/MESSAGES",
        "/v1/messages%2f",
        "/v1/models/../messages",
    ] {
        let mut c = connect(&app).await;
        c.write_all(send(path, "localhost", Some(&key)).as_bytes())
            .await
            .unwrap();
        let answer = read_to_close(&mut c).await.unwrap();
        assert!(
            ["404", "400", "405"].contains(&status(&answer).as_str()),
            "{path}: {answer}"
        );
    }
    assert_eq!(app.sim.stats().messages, 0, "no odd path was forwarded");
    for host in ["localhost/#@evil.example", "evil.example", "127.0.0.1:1"] {
        let mut c = connect(&app).await;
        c.write_all(send("/v1/messages", host, None).as_bytes())
            .await
            .unwrap();
        let answer = read_to_close(&mut c).await.unwrap();
        assert_eq!(status(&answer), "401", "{host}: {answer}");
        let mut c = connect(&app).await;
        c.write_all(send("/v1/messages", host, Some(&key)).as_bytes())
            .await
            .unwrap();
        let answer = read_to_close(&mut c).await.unwrap();
        assert_eq!(status(&answer), "200", "{host}: {answer}");
    }
    // The upstream saw only its own host and the canonical path.
    for r in app.sim.recorded() {
        assert_eq!(r.path, "/v1/messages");
        let host = r
            .headers
            .iter()
            .find(|(n, _)| n == "host")
            .map(|(_, v)| v.as_str());
        assert!(
            host.is_some_and(|h| h.starts_with("127.0.0.1:")),
            "{host:?}"
        );
    }
    app.assert_ledger_clean().await;
}
