//! The durability and failure promises of `docs/gateway.md` (issue 7), against the real
//! `creditgate serve` binary over real sockets, with the simulated upstream in the test process,
//! on SQLite and, when `CREDITGATE_TEST_POSTGRES_URL` is set, on Postgres (`process` is the
//! harness):
//! - a slow reader that stalls longer than the hold timeout keeps its hold, and that credit is
//!   not spendable by another request (C20 with a long stall);
//! - a settlement the database cannot take (SQLite: its file write-locked; Postgres: the
//!   database read-only) is spooled, the receipt says pending, `/readyz` reports the depth, and
//!   it is applied once the database is back;
//! - SIGTERM waits for a drain after a client hang-up and settles it exactly;
//! - SIGTERM past the shutdown deadline settles what was observed, spools it when the database
//!   cannot take it, and a restart applies the spool;
//! - `kill -9` under load loses no committed charge, leaves no hold behind after restart, and
//!   `ledger verify` is clean (E26);
//! - all of it at once (`chaos`).

use std::time::{Duration, Instant};

use creditgate_core::ids::TransferId;
use creditgate_core::ledger::LedgerStore;
use creditgate_core::money::NanoCredits;
use creditgate_gateway::account::receipt_json;
use serde_json::{json, Value};

use crate::process::{body, Backend, Gateway, Raw, World};

/// Two tests per scenario: SQLite, and Postgres (passing without running when it is not set).
macro_rules! on_both {
    ($scenario:ident: $sqlite:ident, $postgres:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $sqlite() {
            $scenario(Backend::Sqlite).await
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $postgres() {
            $scenario(Backend::Postgres).await
        }
    };
}

on_both!(slow_reader:
    a_slow_reader_keeps_its_hold_past_the_hold_timeout,
    a_slow_reader_keeps_its_hold_past_the_hold_timeout_on_postgres
);
/// Issue 7, leak 1 (and C20 with a stall longer than the hold timeout): a client that stops
/// reading keeps its hold; the credit it holds cannot be spent by another request meanwhile;
/// when it reads again, the stream is settled exactly and not late.
async fn slow_reader(backend: Backend) {
    let Some(w) = World::on(backend).await else {
        return;
    };
    // The hold is kept alive every third of its timeout; 2.5 s leaves the keep-alive 1.7 s of
    // slack on a loaded machine (at 1 s a CI run under the chaos tests' load saw it lapse).
    let config = w.config(
        "hold_timeout_ms = 2500\nsweep_interval_ms = 100\n\
         first_slice_tokens = 200000\nslice_tokens = 200000",
    );
    // About 7 MB of SSE: far more than the socket buffers and the gateway's own buffers.
    let long = body(200_000, "output_tokens=200000 chunk_tokens=4", true);
    let small = body(16, "output_tokens=4", false);
    let (first_hold, small_hold) = (w.hold_for(&long, 200_000), w.hold_for(&small, 16));
    // Enough for the stream's hold and not quite for the small request besides.
    let granted = first_hold
        .checked_add(small_hold)
        .unwrap()
        .checked_sub(NanoCredits::from_nanos(1))
        .unwrap();
    w.grant(granted).await;
    let gw = Gateway::start(&config);

    let mut slow = Raw::open(&gw, &w.key, &long, Some(4096)).await;
    slow.read_until("content_block_delta").await;
    // A stall of more than twice the hold timeout.
    tokio::time::sleep(Duration::from_millis(6_000)).await;

    let b = w.db.balance(&w.org).await.unwrap();
    assert_eq!(
        (b.active_holds, b.held),
        (1, first_hold),
        "the stalled stream's hold is still active ({} bytes read; gateway log: {:#?})",
        slow.buf.len(),
        gw.log.lock().unwrap()
    );
    let refused = reqwest::Client::new()
        .post(gw.url("/v1/messages"))
        .header("x-api-key", &w.key)
        .header("anthropic-version", "2023-06-01")
        .json(&small)
        .send()
        .await
        .unwrap();
    assert_eq!(
        refused.status().as_u16(),
        402,
        "the credit held by a live stream is not spendable"
    );

    slow.read_to_end().await;
    let id = slow.request_id();
    let summary = slow.summary().expect("cost comment");
    assert_eq!(summary["status"], "settled", "{summary}");
    let record = w.receipt(&id).await;
    let settlement = record.charge.clone().expect("settled");
    let receipt = receipt_json(&record, "credit");
    assert!(!settlement.late, "settled while its hold was alive");
    assert_eq!(receipt["usage"]["output_tokens"], 200_000);
    assert_eq!(settlement.charged, w.cost_of(&receipt["usage"]));
    assert_eq!(summary["charged"], json!(settlement.charged.to_string()));
    let b = w.db.balance(&w.org).await.unwrap();
    assert_eq!(b.posted, granted.checked_sub(settlement.charged).unwrap());
    assert_eq!(b.active_holds, 0);
    w.assert_clean().await;
}

on_both!(spooled:
    a_settlement_the_database_cannot_take_is_spooled_and_applied_later,
    a_settlement_the_database_cannot_take_is_spooled_and_applied_later_on_postgres
);
/// Issue 7, leak 2: the database cannot take the settlement (write-locked far longer than the
/// retries): the charge goes to the spool, the client and the receipt say pending, `/readyz`
/// reports the depth, and once the database is back the charge is applied exactly once.
async fn spooled(backend: Backend) {
    let Some(w) = World::on(backend).await else {
        return;
    };
    let config = w.config("hold_timeout_ms = 60000");
    w.grant(NanoCredits::from_credits(1_000).unwrap()).await;
    let gw = Gateway::start(&config);
    let client = reqwest::Client::new();

    let mut stream = Raw::open(
        &gw,
        &w.key,
        &body(1024, "output_tokens=300 chunk_tokens=2 latency_ms=5", true),
        None,
    )
    .await;
    stream.read_until("content_block_delta").await;
    let lock = w.outage().await;
    stream.read_to_end().await;
    let id = stream.request_id();
    let summary = stream.summary().expect("cost comment");
    assert_eq!(summary["status"], "pending", "{summary}");
    let charged: NanoCredits = serde_json::from_value(summary["charged"].clone()).unwrap();
    assert!(charged.is_positive(), "{summary}");

    let ready = client.get(gw.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.headers()["x-creditgate-spool-depth"], "1");
    assert_eq!(ready.json::<Value>().await.unwrap()["spool_depth"], 1);
    let receipt: Value = client
        .get(gw.url(&format!("/v1/requests/{id}")))
        .header("x-api-key", &w.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(receipt["status"], "pending", "{receipt}");
    assert_eq!(receipt["outcome"], "settled", "{receipt}");
    assert!(std::fs::metadata(w.spool_path()).unwrap().len() > 0);

    lock.end().await;
    let (stored, amount) = w.settled(&id, Duration::from_secs(10)).await;
    assert_eq!(amount, charged);
    assert_eq!(amount, w.cost_of(&stored["usage"]));
    assert_eq!(stored["usage"]["output_tokens"], 300);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let ready: Value = client
            .get(gw.url("/readyz"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if ready["spool_depth"] == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{ready}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let b = w.db.balance(&w.org).await.unwrap();
    assert_eq!(
        b.posted,
        NanoCredits::from_credits(1_000)
            .unwrap()
            .checked_sub(amount)
            .unwrap()
    );
    w.assert_clean().await;
}

on_both!(sigterm_drain:
    sigterm_waits_for_a_drain_and_settles_it,
    sigterm_waits_for_a_drain_and_settles_it_on_postgres
);
/// Issue 7, leak 5: SIGTERM right after a client hung up under `drain`: the process waits for
/// the drain and settles the exact final usage before it exits.
///
/// The hold timeout is long on purpose: what is asserted is that the settlement is posted before
/// the process exits (the charge is read as soon as it has), which a short hold timeout does not
/// make stricter; on a loaded machine a 1 s hold timeout only added a race between the drain's
/// keep-alive and the sweeper that has its own test (the slow reader above).
async fn sigterm_drain(backend: Backend) {
    let Some(w) = World::on(backend).await else {
        return;
    };
    let config = w.config("hold_timeout_ms = 60000");
    w.grant(NanoCredits::from_credits(1_000).unwrap()).await;
    let mut gw = Gateway::start(&config);

    let mut stream = Raw::open(
        &gw,
        &w.key,
        &body(1024, "output_tokens=60 chunk_tokens=1 latency_ms=40", true),
        None,
    )
    .await;
    stream.read_until("content_block_delta").await;
    let id = stream.request_id();
    drop(stream);
    tokio::time::sleep(Duration::from_millis(100)).await;
    gw.signal("TERM");
    let status = gw.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "{status}");
    assert!(
        w.receipt(&id).await.charge.is_some(),
        "settled before the exit: {:#?}",
        gw.log.lock().unwrap()
    );

    let (receipt, charged) = w.settled(&id, Duration::from_secs(1)).await;
    assert_eq!(receipt["status"], "settled", "{receipt}");
    assert_eq!(receipt["usage"]["output_tokens"], 60);
    assert_eq!(charged, w.cost_of(&receipt["usage"]));
    assert_eq!(w.db.balance(&w.org).await.unwrap().active_holds, 0);
    w.assert_clean().await;
}

on_both!(shutdown_spool:
    shutdown_spools_what_it_cannot_settle_and_a_restart_applies_it,
    shutdown_spools_what_it_cannot_settle_and_a_restart_applies_it_on_postgres
);
/// Issue 7, leak 5 with leak 2: a stream still running at the shutdown deadline is settled from
/// what was observed; the database is write-locked, so the settlement is spooled; the restarted
/// gateway applies it.
async fn shutdown_spool(backend: Backend) {
    let Some(w) = World::on(backend).await else {
        return;
    };
    let config = w.config("hold_timeout_ms = 60000\nshutdown_timeout_ms = 1000");
    w.grant(NanoCredits::from_credits(1_000).unwrap()).await;
    let mut gw = Gateway::start(&config);

    let mut stream = Raw::open(
        &gw,
        &w.key,
        &body(1024, "output_tokens=600 chunk_tokens=1 latency_ms=50", true),
        None,
    )
    .await;
    stream.read_until("content_block_delta").await;
    let id = stream.request_id();
    let lock = w.outage().await;
    let reader = tokio::spawn(async move {
        stream.read_to_end().await;
        stream
    });
    gw.signal("TERM");
    let status = gw.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "{status}");
    let stream = reader.await.unwrap();
    let summary = stream.summary().expect("cost comment");
    assert_eq!(summary["status"], "pending", "{summary}");
    assert!(stream.text().contains("The gateway is shutting down."));
    assert!(w.receipt(&id).await.charge.is_none());

    lock.end().await;
    let gw = Gateway::start(&config);
    let (receipt, charged) = w.settled(&id, Duration::from_secs(10)).await;
    assert_eq!(receipt["status"], "partial", "{receipt}");
    assert_eq!(json!(charged.to_string()), summary["charged"]);
    assert_eq!(charged, w.cost_of(&receipt["usage"]));
    let out = receipt["usage"]["output_tokens"].as_u64().unwrap();
    assert!(out > 0 && out < 600, "{receipt}");
    drop(gw);
    assert_eq!(w.db.balance(&w.org).await.unwrap().active_holds, 0);
    w.assert_clean().await;
}

on_both!(kill_9:
    kill_9_under_load_loses_no_committed_charge_and_leaves_no_hold,
    kill_9_under_load_loses_no_committed_charge_and_leaves_no_hold_on_postgres
);
/// Catalogue E26: `kill -9` in the middle of 40 concurrent requests (streams and JSON), then a
/// restart: every charge a client was told about is in the ledger, no hold is left once the
/// hold timeout has passed, the balance is the grant minus the receipts, `verify` is clean.
async fn kill_9(backend: Backend) {
    let Some(w) = World::on(backend).await else {
        return;
    };
    let config = w.config("hold_timeout_ms = 1000\nsweep_interval_ms = 100");
    let granted = NanoCredits::from_credits(1_000).unwrap();
    w.grant(granted).await;
    let mut gw = Gateway::start(&config);
    let client = reqwest::Client::new();

    let mut tasks = Vec::new();
    for i in 0..40u64 {
        let stream = i % 2 == 0;
        let request = body(
            512,
            &format!("output_tokens={} chunk_tokens=2 latency_ms=25", 10 + i * 3),
            stream,
        );
        let (client, url, key) = (client.clone(), gw.url("/v1/messages"), w.key.clone());
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(i * 40)).await;
            let resp = client
                .post(url)
                .header("x-api-key", key)
                .header("anthropic-version", "2023-06-01")
                .json(&request)
                .send()
                .await
                .ok()?;
            let id = resp.headers().get("request-id")?.to_str().ok()?.to_owned();
            let header = resp
                .headers()
                .get("x-creditgate-charged")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let text =
                String::from_utf8_lossy(&resp.bytes().await.ok().unwrap_or_default()).into_owned();
            let told = header.or_else(|| {
                text.lines()
                    .find_map(|l| l.strip_prefix(": creditgate "))
                    .and_then(|j| serde_json::from_str::<Value>(j).ok())
                    .and_then(|v| v["charged"].as_str().map(str::to_owned))
            });
            Some((id, told))
        }));
    }
    tokio::time::sleep(Duration::from_millis(900)).await;
    gw.signal("KILL");
    gw.wait_exit(Duration::from_secs(10));
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.extend(task.await.unwrap());
    }

    let restarted = Gateway::start(&config);
    // No hold survives the restart: all are swept within the hold timeout (or `quiet` fails).
    let b = w.quiet(&restarted, Duration::from_secs(30)).await;
    let mut charged_total = NanoCredits::ZERO;
    let (mut told, mut settled) = (0, 0);
    for (id, told_charge) in &outcomes {
        let record = w.receipt(id).await;
        let charged = record
            .charge
            .as_ref()
            .map_or(NanoCredits::ZERO, |c| c.charged);
        if record.charge.is_some() {
            settled += 1;
        }
        if let Some(text) = told_charge {
            told += 1;
            let said: NanoCredits = text.parse().unwrap();
            assert_eq!(
                charged, said,
                "{id}: the charge the client was told is committed"
            );
        }
        charged_total = charged_total.checked_add(charged).unwrap();
    }
    assert!(
        told > 0 && told < 40,
        "the kill fell mid-load ({told} of 40 told)"
    );
    assert!(settled >= told);
    // Every charge in the ledger is a request's settle. Besides those of the requests whose
    // clients had an answer, it may hold the charge of a JSON request whose settle committed
    // just before the kill, before the answer's first byte left: the upstream produced it, so it
    // is charged, and its client, which saw no answer, is not in `outcomes`.
    let answered: std::collections::HashSet<String> = outcomes
        .iter()
        .map(|(id, _)| format!("{id}:settle"))
        .collect();
    let (mut ledger_charged, mut unanswered) = (NanoCredits::ZERO, NanoCredits::ZERO);
    for e in w.db.entries(&w.org).await.unwrap() {
        if e.credit == creditgate_core::ledger::account::REVENUE {
            ledger_charged = ledger_charged.checked_add(e.amount).unwrap();
            if !answered.contains(e.transfer_id.as_str()) {
                assert!(e.transfer_id.as_str().ends_with(":settle"), "{e:?}");
                unanswered = unanswered.checked_add(e.amount).unwrap();
            }
        }
    }
    assert_eq!(
        ledger_charged,
        charged_total.checked_add(unanswered).unwrap()
    );
    assert_eq!(b.posted, granted.checked_sub(ledger_charged).unwrap());
    w.assert_clean().await;
}

/// The database outage of the chaos test: `CREDITGATE_CHAOS_OUTAGE_S` seconds, 30 by default
/// (the figure; shorter runs are for iterating on the test). `CREDITGATE_CHAOS_LOG`
/// names a file for the first gateway's log.
fn chaos_outage() -> Duration {
    let secs = std::env::var("CREDITGATE_CHAOS_OUTAGE_S")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    Duration::from_secs(secs)
}

/// What a client of the chaos test does with its stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Client {
    /// Reads it all.
    Reads,
    /// Hangs up after a few deltas (the gateway drains and charges what the upstream produced).
    HangsUp,
    /// Stops reading for longer than the hold timeout, then reads the rest.
    Stalls,
    /// Reads a stream long enough to be in flight at the SIGTERM (cut at the deadline).
    Long,
}

/// What one client saw.
struct Seen {
    client: Client,
    request_id: Option<String>,
    status: Option<u16>,
    summary: Option<Value>,
}

const CHAOS_HOLD_TIMEOUT_MS: u64 = 2_000;
const CHAOS_SLICE_TOKENS: u64 = 64;

/// The request of client `i`. The clients are many, so each stream is a few frames (the
/// machine may be two busy cores); a staller's stream is large enough to outlast the socket
/// buffers when the gateway keeps up (the exact slow-reader case has its own test above).
fn chaos_request(client: Client, i: u64) -> (Value, Option<u32>) {
    match client {
        Client::Reads | Client::HangsUp => (
            body(
                512,
                &format!(
                    "output_tokens={} chunk_tokens=10 latency_ms=50",
                    100 + i % 7 * 20
                ),
                true,
            ),
            None,
        ),
        Client::Stalls => (
            body(32_000, "output_tokens=20000 chunk_tokens=8", true),
            Some(4096),
        ),
        Client::Long => (
            body(
                2048,
                "output_tokens=1500 chunk_tokens=4 latency_ms=60",
                true,
            ),
            None,
        ),
    }
}

/// Client `i`'s behaviour: 5% stall, 10% long streams, 20% hang up, the rest read.
fn chaos_kind(i: u64) -> Client {
    match i % 20 {
        0 => Client::Stalls,
        1 | 2 => Client::Long,
        3..=6 => Client::HangsUp,
        _ => Client::Reads,
    }
}

/// Counts a client's stream as live until it is dropped.
struct Live(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl Drop for Live {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// One client: opens its stream against `address` and behaves as `client` says. A stalling
/// client stops reading until the outage has begun (`outage` turns true), then for longer than
/// the hold timeout, so that streams are live during the outage however fast the machine is.
async fn chaos_client(
    address: String,
    key: String,
    client: Client,
    i: u64,
    mut outage: tokio::sync::watch::Receiver<bool>,
    live: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) -> Seen {
    let (request, recv_buffer) = chaos_request(client, i);
    let mut seen = Seen {
        client,
        request_id: None,
        status: None,
        summary: None,
    };
    let Some(mut raw) = Raw::try_open(&address, &key, &request, recv_buffer).await else {
        return seen;
    };
    if !raw.wait_for("\r\n\r\n").await {
        return seen;
    }
    seen.status = raw.status();
    seen.request_id = raw.try_request_id();
    if seen.status != Some(200) {
        return seen;
    }
    live.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let _live = Live(live);
    match client {
        Client::HangsUp => {
            let deltas = 1 + (i % 5) as usize;
            while raw.text().matches("content_block_delta").count() < deltas {
                if !raw.fill().await {
                    break;
                }
            }
            return seen;
        }
        Client::Stalls => {
            raw.wait_for("content_block_delta").await;
            let _ = outage.wait_for(|begun| *begun).await;
            let stall = CHAOS_HOLD_TIMEOUT_MS + 500;
            tokio::time::sleep(Duration::from_millis(stall)).await;
        }
        Client::Reads | Client::Long => {}
    }
    raw.read_to_end().await;
    seen.summary = raw.summary();
    seen
}

on_both!(chaos:
    chaos_200_streams_hang_ups_stalls_an_outage_and_a_restart,
    chaos_200_streams_hang_ups_stalls_an_outage_and_a_restart_on_postgres
);
/// Issue 7, "Done when": 200 concurrent streams over real sockets against the real binary, with
/// random hang-ups, stalls longer than the hold timeout, a database outage (30 s by default)
/// and a SIGTERM in its middle with a restart after it. Afterwards: `ledger verify` is clean, no
/// hold is left and the spool is empty; the balance is the grant minus the receipts; every
/// receipt's charge is the price of its usage; and the balance (sampled all along) never went
/// below zero by more than one slice per stream the gateway cut.
async fn chaos(backend: Backend) {
    let Some(w) = World::on(backend).await else {
        return;
    };
    let config = w.config(&format!(
        "hold_timeout_ms = {CHAOS_HOLD_TIMEOUT_MS}\nsweep_interval_ms = 200\n\
         shutdown_timeout_ms = 3000\nfirst_slice_tokens = {CHAOS_SLICE_TOKENS}\n\
         slice_tokens = {CHAOS_SLICE_TOKENS}"
    ));
    // Less than the streams would spend: some are refused or cut for want of credit.
    let granted = NanoCredits::from_credits(30).unwrap();
    w.grant(granted).await;
    let outage = chaos_outage();
    let started = Instant::now();
    let mut gw = Gateway::start(&config);

    let lowest = std::sync::Arc::new(std::sync::Mutex::new(granted));
    let sampler = {
        let (db, org, lowest) = (w.db.clone(), w.org.clone(), lowest.clone());
        tokio::spawn(async move {
            loop {
                if let Ok(b) = db.balance(&org).await {
                    let mut low = lowest.lock().unwrap();
                    *low = (*low).min(b.posted);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let (outage_begun, outage_seen) = tokio::sync::watch::channel(false);
    let live = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut clients = Vec::new();
    for i in 0..200u64 {
        let (address, key, live) = (gw.address.clone(), w.key.clone(), live.clone());
        let (kind, seen) = (chaos_kind(i), outage_seen.clone());
        clients.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(i * 5)).await;
            chaos_client(address, key, kind, i, seen, live).await
        }));
    }

    // The outage starts while the streams run; SIGTERM in its middle; restart after it.
    let phase = |name: &str| eprintln!("chaos: {name} at {:?}", started.elapsed());
    // The outage begins while streams are live: after half a second once ten are, and at two
    // seconds at the latest (on a fast machine the credit runs out, and the streams with it, in
    // well under two seconds).
    loop {
        let elapsed = started.elapsed();
        let streaming = live.load(std::sync::atomic::Ordering::SeqCst);
        if elapsed >= Duration::from_secs(2)
            || (elapsed >= Duration::from_millis(500) && streaming >= 10)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    phase("outage");
    let down = w.outage().await;
    outage_begun.send_replace(true);
    tokio::time::sleep(outage / 2).await;
    phase("SIGTERM");
    gw.signal("TERM");
    let status = gw.wait_exit(Duration::from_secs(60));
    assert!(status.success(), "{status}: {:#?}", gw.log.lock().unwrap());
    let first_log = gw.log.lock().unwrap().clone();
    if let Ok(path) = std::env::var("CREDITGATE_CHAOS_LOG") {
        std::fs::write(path, first_log.join("\n")).unwrap();
    }
    phase("exited");
    tokio::time::sleep(outage.saturating_sub(outage / 2)).await;
    down.end().await;
    phase("outage over");
    let gw = Gateway::start(&config);
    phase("restarted");
    // Credit for the clients after the restart (it repays any debt first).
    let regranted = NanoCredits::from_credits(10).unwrap();
    w.grant(regranted).await;
    let granted = granted.checked_add(regranted).unwrap();
    for i in 200..240u64 {
        let (address, key, seen) = (gw.address.clone(), w.key.clone(), outage_seen.clone());
        let live = live.clone();
        clients.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis((i - 200) * 10)).await;
            chaos_client(address, key, Client::Reads, i, seen, live).await
        }));
    }
    let mut seen = Vec::new();
    for c in clients {
        seen.push(c.await.unwrap());
    }
    phase("clients done");
    let b = w.quiet(&gw, Duration::from_secs(60)).await;
    sampler.abort();
    eprintln!(
        "chaos ({backend:?}, outage {outage:?}): {:?}",
        started.elapsed()
    );
    let lowest = *lowest.lock().unwrap();
    chaos_checks(&w, &seen, b.posted, lowest, granted, &first_log).await;
    w.assert_clean().await;
    // The operator's own check, as the operator runs it.
    let verify = std::process::Command::new(env!("CARGO_BIN_EXE_creditgate"))
        .args(["--database", &w.database_url, "ledger", "verify"])
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "creditgate ledger verify: {}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
}

/// The invariants of the chaos test over what the clients saw and the ledger holds.
async fn chaos_checks(
    w: &World,
    seen: &[Seen],
    posted: NanoCredits,
    lowest: NanoCredits,
    granted: NanoCredits,
    first_log: &[String],
) {
    let mut charged_total = NanoCredits::ZERO;
    let (mut settled, mut pending, mut cut, mut refused) = (0, 0, 0, 0);
    let mut statuses = std::collections::BTreeMap::<String, usize>::new();
    for s in seen {
        if s.status.is_some_and(|c| c != 200) {
            refused += 1;
        }
        if s.summary.as_ref().is_some_and(|v| v["status"] == "pending") {
            pending += 1;
        }
        let Some(id) = s.request_id.as_deref().filter(|_| s.status == Some(200)) else {
            continue;
        };
        let record = w.receipt(id).await;
        let charge = record
            .charge
            .clone()
            .unwrap_or_else(|| panic!("{id} ({:?}) was never settled: {record:?}", s.client));
        let receipt = receipt_json(&record, "credit");
        *statuses
            .entry(receipt["status"].as_str().unwrap_or("?").to_owned())
            .or_default() += 1;
        if receipt["status"] == "partial" {
            cut += 1;
        }
        settled += 1;
        assert_eq!(
            charge.charged,
            w.cost_of(&receipt["usage"]),
            "{id} ({:?}): the charge is the price of its usage: {receipt}",
            s.client
        );
        charged_total = charged_total.checked_add(charge.charged).unwrap();
    }
    eprintln!(
        "chaos: {} clients, {settled} settled ({statuses:?}), {pending} told pending, \
         {refused} refused, lowest balance {lowest}",
        seen.len()
    );
    assert_eq!(
        posted,
        granted.checked_sub(charged_total).unwrap(),
        "the balance is the grant minus the receipts"
    );
    assert!(pending > 0, "the outage spooled settlements");
    assert!(
        first_log.iter().any(|l| l.contains("shutting down")),
        "the SIGTERM fell on live requests"
    );
    let slice = w
        .hold_for(&body(512, "", true), CHAOS_SLICE_TOKENS)
        .checked_mul(cut.max(1))
        .unwrap();
    assert!(
        lowest >= NanoCredits::ZERO.checked_sub(slice).unwrap(),
        "the balance went to {lowest}, below one slice per cut stream ({cut} cut: -{slice})"
    );
}

on_both!(killed_holding_a_lease:
    a_replica_killed_holding_a_credit_lease_gets_it_back_on_restart,
    a_replica_killed_holding_a_credit_lease_gets_it_back_on_restart_on_postgres
);
/// Credit leases (`docs/ledger.md`): a gateway killed while its lease holds credit, with a
/// stream admitted against it, leaves the lease held. The charges it settled are all there;
/// the stream it never settled is not charged; the restarted process of the same replica
/// returns its predecessor's lease at once (its spool is empty), long before the lease's 60 s
/// timeout, and the whole balance is available again.
async fn killed_holding_a_lease(backend: Backend) {
    let Some(w) = World::on(backend).await else {
        return;
    };
    let config = w.config("hold_timeout_ms = 600000\nsweep_interval_ms = 100");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("credit_lease = true\n{text}")).unwrap();
    let granted = NanoCredits::from_credits(1_000).unwrap();
    w.grant(granted).await;
    let gw = Gateway::start(&config);
    let client = reqwest::Client::new();
    let mut charged = NanoCredits::ZERO;
    for _ in 0..5 {
        let resp = client
            .post(gw.url("/v1/messages"))
            .header("x-api-key", &w.key)
            .header("anthropic-version", "2023-06-01")
            .json(&body(64, "output_tokens=8", false))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let told: NanoCredits = resp.headers()["x-creditgate-charged"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        charged = charged.checked_add(told).unwrap();
    }
    let long = body(
        4_000,
        "output_tokens=4000 chunk_tokens=2 latency_ms=10",
        true,
    );
    let mut live = Raw::open(&gw, &w.key, &long, Some(4096)).await;
    live.read_until("content_block_delta").await;
    let live_id = live.request_id();

    let mut gw = gw;
    gw.signal("KILL");
    gw.wait_exit(Duration::from_secs(10));
    let b = w.db.balance(&w.org).await.unwrap();
    assert_eq!(b.active_holds, 1, "the lease outlives its replica: {b:?}");
    assert!(b.held.is_positive(), "{b:?}");
    assert_eq!(b.posted, granted.checked_sub(charged).unwrap());
    let unsettled = TransferId::parse(&live_id).unwrap();
    assert!(
        w.db.receipt(&w.org, &unsettled).await.unwrap().is_none(),
        "a request admitted against the lease leaves nothing until it settles"
    );

    let restarted = Gateway::start(&config);
    let b = w.quiet(&restarted, Duration::from_secs(15)).await;
    assert_eq!((b.held, b.available), (NanoCredits::ZERO, b.posted));
    assert_eq!(b.posted, granted.checked_sub(charged).unwrap());
    drop(restarted);
    w.assert_clean().await;
}
