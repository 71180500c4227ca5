//! Prometheus `/metrics` scraped after real requests: the counters moved by exactly what was
//! served and charged, the latency histograms count both sides, and no label holds a secret.

use creditgate_core::money::NanoCredits;
use reqwest::Method;
use serde_json::json;

use crate::accounts::{call, Cred};
use crate::helpers::{body, body_for, TestApp, ADMIN_KEY, MODEL, UPSTREAM_KEY};

/// The sum of the samples of `name` whose labels include all of `labels`.
pub(crate) fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<u64> {
    let mut found = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let (metric, label_text) = series.split_once('{').unwrap_or((series, ""));
        if metric != name
            || !labels
                .iter()
                .all(|(k, v)| label_text.contains(&format!("{k}=\"{v}\"")))
        {
            continue;
        }
        let v: f64 = value.parse().expect("a number");
        // Counts and nano-credits are whole numbers in the exposition.
        *found.get_or_insert(0) += v as u64;
    }
    found
}

pub(crate) async fn scrape(t: &TestApp, cred: &Cred) -> (u16, String, String) {
    let mut req = t.client.get(t.url("/metrics"));
    req = match cred {
        Cred::Operator => req.header("authorization", format!("Bearer {ADMIN_KEY}")),
        Cred::Key(k) => req.header("x-api-key", k),
        _ => req,
    };
    let resp = req.send().await.expect("scrape");
    let status = resp.status().as_u16();
    let kind = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, kind, resp.text().await.unwrap())
}

#[tokio::test]
async fn metrics_count_real_requests_and_charges_for_the_operator_only() {
    let t = TestApp::spawn().await;
    assert_eq!(scrape(&t, &Cred::None).await.0, 401);
    assert_eq!(scrape(&t, &Cred::Key(t.api_key.clone())).await.0, 401);

    let mut charged = NanoCredits::ZERO;
    let mut ids = Vec::new();
    for _ in 0..2 {
        let r = t.message(&body(32, "output_tokens=7")).await;
        assert_eq!(r.status, 200, "{}", r.body);
        charged = charged.checked_add(r.charged()).unwrap();
        ids.push(r.request_id());
    }
    let mut streamed = body(64, "output_tokens=9");
    streamed["stream"] = json!(true);
    let s = t.stream(&streamed).await;
    charged = charged.checked_add(s.charged()).unwrap();
    ids.push(s.request_id());
    for (directives, kind) in [("error_after=3", "event"), ("reset_after=3", "broken")] {
        let mut broken = body(
            256,
            &format!("output_tokens=100 chunk_tokens=2 {directives}"),
        );
        broken["stream"] = json!(true);
        let s = t.stream(&broken).await;
        assert!(
            s.charged().is_positive(),
            "{kind}: input and observed output are charged"
        );
        charged = charged.checked_add(s.charged()).unwrap();
    }
    let failed = t.message(&body(32, "status=500")).await;
    assert_eq!(failed.status, 500, "{}", failed.body);
    let unknown = t.message(&body_for("claude-nope-9", 8, "")).await;
    assert!(unknown.status >= 400);
    let receipt = call(
        &t,
        Method::GET,
        &format!("/v1/requests/{}", ids[0]),
        &Cred::Key(t.api_key.clone()),
        None,
    )
    .await;
    assert_eq!(receipt.status, 200);

    let (status, kind, text) = scrape(&t, &Cred::Operator).await;
    assert_eq!(status, 200, "{text}");
    assert!(kind.starts_with("application/openmetrics-text"), "{kind}");
    let ok = [
        ("route", "/v1/messages"),
        ("status", "200"),
        ("model", MODEL),
    ];
    assert_eq!(
        sample(&text, "creditgate_requests_total", &ok),
        Some(5),
        "{text}"
    );
    for kind in ["stream_error_event", "stream_broken"] {
        let n = sample(&text, "creditgate_upstream_errors_total", &[("kind", kind)]);
        assert_eq!(n, Some(1), "{kind}");
    }
    let upstream_500 = [
        ("route", "/v1/messages"),
        ("status", "500"),
        ("model", MODEL),
    ];
    assert_eq!(
        sample(&text, "creditgate_requests_total", &upstream_500),
        Some(1)
    );
    assert_eq!(
        sample(
            &text,
            "creditgate_upstream_errors_total",
            &[("kind", "http_5xx")]
        ),
        Some(1)
    );
    assert_eq!(
        sample(
            &text,
            "creditgate_charged_nanocredits_total",
            &[("model", MODEL)]
        ),
        Some(charged.nanos() as u64),
        "the charges, exactly"
    );
    let messages = [("route", "/v1/messages")];
    assert!(sample(&text, "creditgate_gateway_seconds_count", &messages) >= Some(7));
    assert_eq!(
        sample(
            &text,
            "creditgate_upstream_seconds_count",
            &[("model", MODEL)]
        ),
        Some(6)
    );
    assert_eq!(sample(&text, "creditgate_holds_in_flight", &[]), Some(0));
    assert_eq!(
        sample(&text, "creditgate_settlement_spool_depth", &[]),
        Some(0)
    );
    // Routes are labelled by their template, never by an id.
    assert_eq!(
        sample(
            &text,
            "creditgate_requests_total",
            &[("route", "/v1/requests/{id}"), ("status", "200")]
        ),
        Some(1)
    );
    for secret in [t.api_key.as_str(), ADMIN_KEY, UPSTREAM_KEY, "claude-nope-9"] {
        assert!(!text.contains(secret), "{secret} in the metrics");
    }
    for id in &ids {
        assert!(!text.contains(id.as_str()), "a request id in the metrics");
    }
    assert!(text.trim_end().ends_with("# EOF"));
}
