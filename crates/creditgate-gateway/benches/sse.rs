//! What metering a stream costs per event (issue 14): the events of a stream like the one
//! `bench/run.sh` sends (Claude Haiku 4.5, 64 output tokens in 32 text deltas) split out of one
//! upstream read by `SseScanner` and read by `UsageTally`, against a baseline in the same run
//! that only splits the read at its blank lines and copies the events out (the least a proxy
//! that passes whole events does). Prints nanoseconds per event for both and their ratio.
//!
//! `cargo bench -p creditgate-gateway --bench sse`. `CREDITGATE_BENCH_STREAMS` (streams per round,
//! default 20,000), `CREDITGATE_BENCH_ROUNDS` (alternating rounds of each, default 5).

use std::hint::black_box;
use std::time::{Duration, Instant};

use creditgate_gateway::sse::{SseScanner, UsageTally};

const WORDS: [&str; 8] = [
    " bird", " song", " dusk", " walk", " wind", " and", " with", " air",
];

/// A stream in Anthropic's wire format, as the simulated upstream writes it.
fn transcript(deltas: usize) -> Vec<u8> {
    let mut s = String::new();
    s.push_str("event: message_start\ndata: {\"message\":{\"content\":[],\"id\":\"msg_sim_baad39917e469c6c449e22a1\",\"model\":\"claude-haiku-4-5\",\"role\":\"assistant\",\"stop_reason\":null,\"stop_sequence\":null,\"type\":\"message\",\"usage\":{\"cache_creation\":{\"ephemeral_1h_input_tokens\":0,\"ephemeral_5m_input_tokens\":0},\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0,\"inference_geo\":\"global\",\"input_tokens\":32,\"output_tokens\":1,\"service_tier\":\"standard\",\"speed\":\"standard\"}},\"type\":\"message_start\"}\n\n");
    s.push_str("event: content_block_start\ndata: {\"content_block\":{\"text\":\"\",\"type\":\"text\"},\"index\":0,\"type\":\"content_block_start\"}\n\n");
    s.push_str("event: ping\ndata: {\"type\":\"ping\"}\n\n");
    for i in 0..deltas {
        let text = format!("{}{}", WORDS[i % 8], WORDS[(i * 3 + 1) % 8]);
        s.push_str(&format!("event: content_block_delta\ndata: {{\"delta\":{{\"text\":\"{text}\",\"type\":\"text_delta\"}},\"index\":0,\"type\":\"content_block_delta\"}}\n\n"));
    }
    s.push_str(
        "event: content_block_stop\ndata: {\"index\":0,\"type\":\"content_block_stop\"}\n\n",
    );
    s.push_str(&format!("event: message_delta\ndata: {{\"delta\":{{\"stop_reason\":\"end_turn\",\"stop_sequence\":null}},\"type\":\"message_delta\",\"usage\":{{\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0,\"input_tokens\":32,\"output_tokens\":{}}}}}\n\n", deltas * 2));
    s.push_str("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
    s.into_bytes()
}

/// Metering: the gateway's scanner and tally, the events' bytes copied into the batch passed on.
fn metered(read: &[u8]) -> (usize, u64) {
    let mut scanner = SseScanner::default();
    let mut tally = UsageTally::default();
    scanner.push(read).expect("a small stream");
    let mut batch = Vec::with_capacity(read.len());
    let mut events = 0;
    while let Some(ev) = scanner.next_event() {
        tally.observe(&ev);
        batch.extend_from_slice(&ev.raw);
        events += 1;
    }
    assert!(tally.saw_message_stop && tally.final_usage().is_some());
    black_box(&batch);
    (events, tally.output_estimate)
}

/// The baseline: the read copied in, split at its blank lines, each event copied out.
fn passed(read: &[u8]) -> (usize, u64) {
    let buf = read.to_vec();
    let mut batch = Vec::with_capacity(read.len());
    let blank = memchr::memmem::Finder::new(b"\n\n");
    let (mut events, mut at) = (0, 0);
    while let Some(end) = blank.find(&buf[at..]) {
        batch.extend_from_slice(&buf[at..at + end + 2]);
        at += end + 2;
        events += 1;
    }
    black_box(&batch);
    (events, 0)
}

fn round(streams: usize, read: &[u8], f: fn(&[u8]) -> (usize, u64)) -> (Duration, usize) {
    let started = Instant::now();
    let mut events = 0;
    for _ in 0..streams {
        events += black_box(f(black_box(read))).0;
    }
    (started.elapsed(), events)
}

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let streams = setting("CREDITGATE_BENCH_STREAMS", 20_000);
    let rounds = setting("CREDITGATE_BENCH_ROUNDS", 5);
    let read = transcript(32);
    assert_eq!(metered(&read).1, 64, "two tokens estimated per delta");
    let (mut best_metered, mut best_passed) = (f64::MAX, f64::MAX);
    for _ in 0..rounds {
        let (t, events) = round(streams, &read, metered);
        best_metered = best_metered.min(t.as_nanos() as f64 / events as f64);
        let (t, events) = round(streams, &read, passed);
        best_passed = best_passed.min(t.as_nanos() as f64 / events as f64);
    }
    println!(
        "sse: {} events per stream, {streams} streams x {rounds} rounds (best round)",
        metered(&read).0
    );
    println!("  metered (scanner + tally): {best_metered:.0} ns/event");
    println!("  passed (split + copy):     {best_passed:.0} ns/event");
    println!(
        "  metered / passed:          {:.1}x",
        best_metered / best_passed
    );
}
