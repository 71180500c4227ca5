//! Cheap attacks (PRODUCT.md §13, reliability §4 J): slow headers and bodies, too many
//! connections, oversized and hostile input. Each is refused quickly and costs a bounded amount.

use std::time::Duration;

use serde_json::json;
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
