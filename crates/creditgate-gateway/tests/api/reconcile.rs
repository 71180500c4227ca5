//! Order reconciliation runs on one replica per interval: two gateways on one database, each
//! ticking every second, ask Stripe about an open order once per lease, not once each.

use std::sync::atomic::Ordering;
use std::time::Duration;

use creditgate_core::clock::ManualClock;

use crate::helpers::{now, random_hex, Setup, TestApp};
use crate::on_both_databases;
use crate::payments::{checkout, fake_stripe, profile, stripe_setup};

on_both_databases!(two_replicas_reconcile_an_open_order_once_per_interval);

/// Waits until the fake has answered `n` session reads, then as long again as two more ticks of
/// every replica would take, and returns the count then.
async fn reads_settled_at(reads: &std::sync::atomic::AtomicUsize, n: usize) -> usize {
    for _ in 0..300 {
        if reads.load(Ordering::SeqCst) >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    reads.load(Ordering::SeqCst)
}

async fn two_replicas_reconcile_an_open_order_once_per_interval(setup: Setup) {
    let file = std::env::temp_dir().join(format!("cg-reconcile-{}.db", random_hex(6)));
    let clock = ManualClock::new(now());
    let shared = Setup {
        database_url: Some(
            setup
                .database_url
                .clone()
                .unwrap_or_else(|| format!("sqlite://{}", file.display())),
        ),
        clock: Some(clock.clone()),
        ..setup
    };
    let (fake, addr) = fake_stripe().await;
    let every_second = "reconcile_interval_ms = 1000";
    let a = TestApp::spawn_with(stripe_setup(shared.clone(), addr, every_second)).await;
    let b = TestApp::spawn_with(stripe_setup(shared, addr, every_second)).await;
    profile(&a, "FR").await;
    checkout(&a, "credits-10000", None).await;
    // The test clock stands still: the first replica to tick holds the lease, and no one
    // reconciles again however often both tick (without the lease: once per tick each).
    let first = reads_settled_at(&fake.session_reads, 1).await;
    assert_eq!(first, 1, "one read while the lease holds");
    // The lease lapses: again exactly one replica asks.
    clock.advance(1_000);
    let second = reads_settled_at(&fake.session_reads, 2).await;
    assert_eq!(second, 2, "one more read per lapsed lease");
    drop((a, b));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", file.display()));
    }
}
