//! A slow reader (reliability case C20, `docs/gateway.md`): the gateway passes a stream
//! through with a bounded
//! buffer, so a client reading one byte a second holds back the upstream instead of growing the
//! gateway's memory; when it finally reads, the settlement is exact.

use std::time::Duration;

use creditgate_core::money::NanoCredits;
use serde_json::json;

use crate::helpers::{body, Setup, TestApp, MODEL};

/// A long answer: 1,000,000 tokens in 20,000 deltas, about 5 MB of SSE.
const OUTPUT_TOKENS: u64 = 1_000_000;
const SLOW_SECONDS: u64 = 4;

#[tokio::test]
async fn a_slow_reader_holds_back_the_upstream_and_is_settled_exactly() {
    let app = TestApp::spawn_with(Setup {
        credits: creditgate_core::money::NanoCredits::from_credits(5_000).unwrap(),
        first_slice_tokens: 100_000,
        slice_tokens: 100_000,
        ..Setup::default()
    })
    .await;
    let request = body(OUTPUT_TOKENS, "output_tokens=1000000 chunk_tokens=50");

    let mut stream = app.open_stream(&request, Some(4096)).await;
    for _ in 0..SLOW_SECONDS {
        assert!(stream.read_byte().await.is_some());
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    // Several seconds later the upstream has still not been read to its end: its stream is
    // not settled, its hold is still active. (Read at full speed, the whole answer passes
    // through the gateway in well under a second: a gateway that buffered it for the slow
    // client would have settled long ago.)
    assert_eq!(app.sim.stats().streams, 1);
    let b = app.balance().await;
    assert_eq!(b.active_holds, 1, "the stream is still in flight: {b:?}");
    assert!(stream.received() < 64 * 1024);

    assert_eq!(stream.read_head().await, 200);
    stream.read_to_end().await;
    let id = stream.header("request-id").expect("request-id");
    let (events, summary) = stream.events();
    assert!(events.iter().any(|e| e.name == "message_stop"));
    let summary = summary.expect("cost comment");
    let r = app.receipt(&id).await;
    assert_eq!(r.status(), "settled", "{}", r.0);
    assert_eq!(r.output_tokens(), OUTPUT_TOKENS);
    let expected = app.cost_of(MODEL, r.usage());
    assert_eq!(r.charged(), expected);
    assert_eq!(summary["charged"], json!(expected.to_string()));
    let b = app.balance().await;
    assert_eq!(
        b.posted,
        NanoCredits::from_credits(5_000)
            .unwrap()
            .checked_sub(expected)
            .unwrap()
    );
    app.assert_ledger_clean().await;
}
