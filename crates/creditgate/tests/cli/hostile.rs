//! A hostile customer against the real `creditgate serve` binary (issue 7, `docs/gateway.md`):
//! - memory: a large body costs the gateway about its size, not a parsed tree of it (peak RSS
//!   of the process, read from `/proc`);
//! - J59, secret canary: on the error paths (bad key, budget exceeded, upstream 401, upstream
//!   5xx) neither a canary customer key nor a canary upstream key appears in the process's
//!   output, the error bodies, the receipts, the audit rows or the database file.

use creditgate_core::keys::ApiKeySecret;
use creditgate_core::money::NanoCredits;
use creditgate_sim::SimConfig;
use serde_json::Value;

use crate::process::{body, Gateway, World};

/// The body size of the memory test: `CREDITGATE_TEST_BODY_MB`, 30 MB by default (close to the
/// 32 MB limit, the size the issue reproduced with).
fn body_bytes() -> usize {
    std::env::var("CREDITGATE_TEST_BODY_MB")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(30)
        * 1024
        * 1024
}

/// The largest resident set the process has had, in bytes (`VmHWM`).
fn peak_rss(pid: u32) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: usize = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/<pid>/status");
    kb * 1024
}

/// A valid request of about `size` bytes made of the smallest content blocks: the shape that
/// costs a parsed tree the most per byte (a map and two strings per 26 bytes).
fn many_small_blocks(size: usize) -> String {
    let block = r#"{"type":"text","text":"a"},"#;
    let mut out = String::with_capacity(size + 256);
    out.push_str(
        r#"{"model":"claude-haiku-4-5","max_tokens":16,"messages":[{"role":"user","content":["#,
    );
    while out.len() + block.len() < size {
        out.push_str(block);
    }
    out.push_str(r#"{"type":"text","text":"end"}]}]}"#);
    out
}

/// Issue 7, memory: a 30 MB body of tiny content blocks, refused with 402 after its estimate
/// (and the same body on `count_tokens`, refused for its unknown model), raises the gateway's
/// peak RSS by less than 5× its size (a parsed `Value` tree of it cost ~31×), and the gateway
/// answers the next request normally.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_body_costs_the_gateway_about_its_size_in_memory() {
    let w = World::new().await;
    let gw = Gateway::start(&w.config(""));
    let client = reqwest::Client::new();
    let send = |body: String| {
        client
            .post(gw.url("/v1/messages"))
            .header("x-api-key", &w.key)
            .header("anthropic-version", "2023-06-01")
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    // Warm up the paths a request takes, so what follows measures the body alone.
    let small = send(body(16, "output_tokens=4", false).to_string())
        .await
        .unwrap();
    assert_eq!(small.status(), 402, "nothing granted yet");

    let big = many_small_blocks(body_bytes());
    let before = peak_rss(gw.child.id());
    let resp = send(big.clone()).await.unwrap();
    let status = resp.status().as_u16();
    let answer = resp.text().await.unwrap();
    let after = peak_rss(gw.child.id());
    assert_eq!(status, 402, "the estimate was made and refused: {answer}");
    let growth = after.saturating_sub(before);
    eprintln!(
        "body {} MB: peak RSS {} MB -> {} MB (+{:.1}x the body)",
        big.len() >> 20,
        before >> 20,
        after >> 20,
        growth as f64 / big.len() as f64
    );
    assert!(
        growth < 5 * big.len(),
        "peak RSS grew by {} MB for a {} MB body",
        growth >> 20,
        big.len() >> 20
    );

    // The free route reads bodies the same way (an unknown model stops it before the upstream).
    let unknown = big.replacen("claude-haiku-4-5", "claude-unknown-9", 1);
    let resp = client
        .post(gw.url("/v1/messages/count_tokens"))
        .header("x-api-key", &w.key)
        .header("anthropic-version", "2023-06-01")
        .header("content-type", "application/json")
        .body(unknown)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    assert!(
        status == 400 || status == 404,
        "{}",
        resp.text().await.unwrap()
    );
    let again = peak_rss(gw.child.id());
    assert!(
        again.saturating_sub(before) < 5 * big.len(),
        "count_tokens: peak RSS grew by {} MB for a {} MB body",
        again.saturating_sub(before) >> 20,
        big.len() >> 20
    );

    w.grant(NanoCredits::from_credits(1_000).unwrap()).await;
    let ok = send(body(16, "output_tokens=4", false).to_string())
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
}

const CANARY_UPSTREAM_KEY: &str = "sk-ant-api03-CANARYupstreamKEY7d1f0c9e2b4a6e8f0a1b3c5d";

/// Sends `body` with `key`; returns the status and the body's text.
async fn post(gw: &Gateway, key: &str, body: &Value) -> (u16, String) {
    let resp = reqwest::Client::new()
        .post(gw.url("/v1/messages"))
        .header("x-api-key", key)
        .header("anthropic-version", "2023-06-01")
        .json(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let headers = format!("{:?}", resp.headers());
    (status, format!("{headers}\n{}", resp.text().await.unwrap()))
}

/// The pieces of a secret whose appearance anywhere would leak it: the whole, and each half of
/// what follows its fixed prefix (a redaction keeping a few characters at the ends is fine).
fn pieces(secret: &str, prefix: &str) -> Vec<String> {
    let rest = &secret[prefix.len()..];
    let half = rest.len() / 2;
    vec![
        secret.to_owned(),
        rest[..half].to_owned(),
        rest[half..].to_owned(),
    ]
}

/// J59: the error paths run with a canary customer key and a canary upstream key; neither
/// appears in what the process printed (at `debug`), in any answer (headers and bodies), in the
/// receipts, in the audit rows, in the ledger file or in the spool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_canaries_never_appear_in_logs_answers_or_the_database() {
    let w = World::new().await;
    // An upstream that does not know the canary key (401), and one that does (for the 5xx).
    let (refusing, _refusing_sim, _t1) = creditgate_sim::spawn(SimConfig {
        api_key: Some("sk-ant-sim-some-other-key".into()),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let (accepting, _accepting_sim, _t2) = creditgate_sim::spawn(SimConfig {
        api_key: Some(CANARY_UPSTREAM_KEY.into()),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let unknown_key = ApiKeySecret::from_random(rand::random())
        .expose()
        .to_owned();
    let mut answers = Vec::new();
    let mut logs = Vec::new();
    let mut ids = Vec::new();

    // Upstream 401 (the canary upstream key refused), bad keys, budget exceeded.
    let gw = Gateway::start_logging(&w.config_for(refusing, CANARY_UPSTREAM_KEY, ""), "debug");
    answers.push(post(&gw, &unknown_key, &body(16, "", false)).await);
    answers.push(post(&gw, "sk-cg-CANARY-not-a-key", &body(16, "", false)).await);
    answers.push(post(&gw, &w.key, &body(16, "", false)).await);
    assert_eq!(
        answers.iter().map(|a| a.0).collect::<Vec<_>>(),
        [401, 401, 402]
    );
    w.grant(NanoCredits::from_credits(1_000).unwrap()).await;
    for stream in [false, true] {
        let (status, text) = post(&gw, &w.key, &body(16, "output_tokens=4", stream)).await;
        assert!(status >= 400, "the upstream refused the canary key: {text}");
        answers.push((status, text));
    }
    logs.extend(gw.stop());

    // Upstream 5xx, before any byte and as a stream that fails midway.
    let gw = Gateway::start_logging(&w.config_for(accepting, CANARY_UPSTREAM_KEY, ""), "debug");
    for directive in ["status=500", "status=504"] {
        for stream in [false, true] {
            answers.push(post(&gw, &w.key, &body(16, directive, stream)).await);
        }
    }
    answers.push(
        post(
            &gw,
            &w.key,
            &body(64, "output_tokens=40 error_after=2", true),
        )
        .await,
    );
    for (_, text) in &answers {
        if let Some(id) = text
            .split("\"request-id\": \"")
            .nth(1)
            .and_then(|r| r.split('"').next())
        {
            ids.push(id.to_owned());
        }
    }
    for id in &ids {
        let (_, receipt) = post_get(&gw, &w.key, &format!("/v1/requests/{id}")).await;
        answers.push((0, receipt));
    }
    logs.extend(gw.stop());

    let audit = w.db.audit_log(None, None, 10_000).await.unwrap();
    let ledger = std::fs::read(&w.db_path).unwrap();
    let spool = std::fs::read(w.spool_path()).unwrap_or_default();
    let mut canaries = pieces(&w.key, "sk-cg-");
    canaries.extend(pieces(&unknown_key, "sk-cg-"));
    canaries.extend(pieces(CANARY_UPSTREAM_KEY, "sk-ant-api03-"));
    canaries.push("CANARY".into());
    let everything = [
        ("the process's output", logs.join("\n")),
        (
            "the answers",
            answers
                .iter()
                .map(|(_, t)| t.as_str())
                .collect::<Vec<_>>()
                .join("\n"),
        ),
        ("the audit rows", format!("{audit:?}")),
        (
            "the ledger file",
            String::from_utf8_lossy(&ledger).into_owned(),
        ),
        ("the spool", String::from_utf8_lossy(&spool).into_owned()),
    ];
    assert!(
        !ids.is_empty() && logs.len() > 5,
        "the paths ran: {logs:#?}"
    );
    for (place, text) in &everything {
        for canary in &canaries {
            assert!(
                !text.contains(canary.as_str()),
                "`{canary}` appears in {place}:\n{}",
                text.lines()
                    .filter(|l| l.contains(canary.as_str()))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
    }
}

async fn post_get(gw: &Gateway, key: &str, path: &str) -> (u16, String) {
    let resp = reqwest::Client::new()
        .get(gw.url(path))
        .header("x-api-key", key)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}
