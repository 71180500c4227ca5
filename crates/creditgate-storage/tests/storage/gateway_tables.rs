//! The gateway's storage (API keys, organization settings, receipts read from the ledger), on
//! SQLite and on Postgres (when `CREDITGATE_TEST_POSTGRES_URL` is set).

use crate::common::*;
use creditgate_core::clock::Clock;
use creditgate_core::ids::ApiKeyId;
use creditgate_core::keys::KeyStatus;
use creditgate_core::ledger::{ExtendHoldRequest, HoldResolution, LedgerError, LedgerStore};
use creditgate_core::money::NanoCredits;
use creditgate_core::pricing::UsageFlag;
use creditgate_core::usage::{
    Admission, DisconnectPolicy, Lines, PicoUsd, ReceiptStatus, Service, Tokens, UsageRecord,
};
use creditgate_storage::Database;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

contract!(
    keys_are_stored_as_hashes_and_revocation_is_final,
    disconnect_policy_is_set_cleared_and_checked,
    receipts_follow_the_hold_from_admission_to_charge,
    another_organizations_receipt_is_not_found,
    usage_records_add_up_to_the_charges_after_a_random_run,
    a_record_that_does_not_add_up_is_refused_and_changes_nothing,
    old_receipts_are_carried_over_by_the_migration,
);

async fn keys_are_stored_as_hashes_and_revocation_is_final(h: Harness) {
    let db = &h.db;
    funded(db, "acme", 0).await;
    let (key, secret) = db
        .create_api_key(&org("acme"), "laptop", None)
        .await
        .unwrap();
    let found = db.api_key_by_hash(&secret.hash()).await.unwrap().unwrap();
    assert_eq!(found, key);
    assert!(
        db.api_key_by_hash(secret.expose()).await.unwrap().is_none(),
        "only the hash"
    );
    assert_eq!(
        db.api_keys(Some(&org("acme"))).await.unwrap(),
        vec![key.clone()]
    );
    assert!(db.api_keys(Some(&org("other"))).await.unwrap().is_empty());

    let disabled = db
        .set_api_key_status(&key.id, KeyStatus::Disabled)
        .await
        .unwrap();
    assert_eq!(disabled.unwrap().status, KeyStatus::Disabled);
    let revoked = db
        .set_api_key_status(&key.id, KeyStatus::Revoked)
        .await
        .unwrap();
    assert_eq!(revoked.unwrap().status, KeyStatus::Revoked);
    assert!(
        db.set_api_key_status(&key.id, KeyStatus::Active)
            .await
            .unwrap()
            .is_none(),
        "a revoked key stays revoked"
    );
    let stored = db.api_key_by_hash(&secret.hash()).await.unwrap().unwrap();
    assert_eq!(stored.status, KeyStatus::Revoked);
    assert!(db.create_api_key(&org("nobody"), "x", None).await.is_err());
}

async fn disconnect_policy_is_set_cleared_and_checked(h: Harness) {
    let db = &h.db;
    funded(db, "acme", 0).await;
    assert_eq!(db.disconnect_policy(&org("acme")).await.unwrap(), None);
    db.set_disconnect_policy(&org("acme"), Some(DisconnectPolicy::Cancel))
        .await
        .unwrap();
    assert_eq!(
        db.disconnect_policy(&org("acme")).await.unwrap(),
        Some(DisconnectPolicy::Cancel)
    );
    db.set_disconnect_policy(&org("acme"), Some(DisconnectPolicy::Drain))
        .await
        .unwrap();
    assert_eq!(
        db.disconnect_policy(&org("acme")).await.unwrap(),
        Some(DisconnectPolicy::Drain)
    );
    db.set_disconnect_policy(&org("acme"), None).await.unwrap();
    assert_eq!(db.disconnect_policy(&org("acme")).await.unwrap(), None);
    assert!(db
        .set_disconnect_policy(&org("nobody"), Some(DisconnectPolicy::Drain))
        .await
        .is_err());
}

async fn receipts_follow_the_hold_from_admission_to_charge(h: Harness) {
    let db = &h.db;
    funded(db, "acme", 1_000).await;
    let admission = Admission {
        model: "m".into(),
        key_id: ApiKeyId::parse("key_1").unwrap(),
        stream: true,
    };
    let mut hold = hold_req("acme", "req_1", 100);
    hold.memo = Some(serde_json::to_string(&admission).unwrap());
    db.reserve(hold).await.unwrap();
    db.extend_hold(ExtendHoldRequest {
        transfer_id: tid("req_1:grow:1"),
        hold: tid("req_1"),
        amount: nc(50),
        timeout_ms: 60_000,
        limits: Vec::new(),
    })
    .await
    .unwrap();

    let pending = db
        .receipt(&org("acme"), &tid("req_1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(pending.held, nc(150), "the grown hold");
    assert_eq!(pending.admission, Some(admission.clone()));
    assert!(pending.charge.is_none() && pending.record.is_none());
    assert_eq!(pending.resolution, None);

    let record = sample_record(120, 7);
    let mut settle = settle_req("req_1", "req_1:settle", 120);
    settle.usage = Some(Box::new(record.clone()));
    db.settle(settle).await.unwrap();
    let done = db
        .receipt(&org("acme"), &tid("req_1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        done.record,
        Some(record),
        "the typed record reads back as written"
    );
    let charge = done.charge.unwrap();
    assert_eq!((charge.held, charge.charged), (nc(150), nc(120)));
    assert_eq!(charge.at, START);
    assert_eq!(
        charge.lots.iter().map(|d| d.amount.nanos()).sum::<i64>(),
        120
    );
    assert_eq!(done.resolution, Some(HoldResolution::Settled));

    db.reserve(hold_req("acme", "req_2", 10)).await.unwrap();
    db.release(release_req("req_2", "req_2:release"))
        .await
        .unwrap();
    let released = db
        .receipt(&org("acme"), &tid("req_2"))
        .await
        .unwrap()
        .unwrap();
    assert!(released.charge.is_none() && released.record.is_none());
    assert_eq!(released.resolution, Some(HoldResolution::Released));
    assert!(db
        .receipt(&org("acme"), &tid("req_3"))
        .await
        .unwrap()
        .is_none());
}

async fn another_organizations_receipt_is_not_found(h: Harness) {
    let db = &h.db;
    funded(db, "acme", 1_000).await;
    funded(db, "rival", 1_000).await;
    db.reserve(hold_req("acme", "req_a", 100)).await.unwrap();
    assert!(db
        .receipt(&org("rival"), &tid("req_a"))
        .await
        .unwrap()
        .is_none());
    assert!(db
        .receipt(&org("acme"), &tid("req_a"))
        .await
        .unwrap()
        .is_some());
}

/// A usage record charging `charged`, spread over the lines by `seed`, every field set.
pub(crate) fn sample_record(charged: i64, seed: u64) -> UsageRecord {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut credits = Lines::<NanoCredits>::default();
    let mut left = charged;
    let mut slots = [
        &mut credits.input,
        &mut credits.cache_write_5m,
        &mut credits.cache_write_1h,
        &mut credits.cache_read,
        &mut credits.output,
        &mut credits.web_search,
    ];
    let last = slots.len() - 1;
    for (i, slot) in slots.iter_mut().enumerate() {
        let take = if i == last {
            left
        } else {
            rng.gen_range(0..=left)
        };
        **slot = nc(take);
        left -= take;
    }
    UsageRecord {
        key_id: Some(ApiKeyId::parse(&format!("key_{}", seed % 3)).unwrap()),
        model: ["claude-sonnet-4-5", "claude-haiku-4-5"][(seed % 2) as usize].into(),
        tokens: Some(Tokens {
            input: rng.gen_range(0..10_000),
            cache_write_5m: rng.gen_range(0..100),
            cache_write_1h: rng.gen_range(0..100),
            cache_read: rng.gen_range(0..100),
            output: rng.gen_range(0..4_000),
            thinking: rng.gen_bool(0.5).then_some(7),
            web_search_requests: rng.gen_range(0..3),
            web_fetch_requests: 0,
        }),
        service: Service {
            tier: Some("standard".into()),
            inference_geo: Some("global".into()),
            speed: None,
            long_context: rng.gen_bool(0.2),
        },
        credits,
        list: Lines {
            input: PicoUsd::from_pico(rng.gen_range(0..1_000_000)),
            output: PicoUsd::from_pico(rng.gen_range(0..1_000_000)),
            ..Lines::default()
        },
        cache_savings: nc(rng.gen_range(0..1_000)),
        price_version: Some("2026-01-01".into()),
        latency_ms: rng.gen_range(1..5_000),
        status: ReceiptStatus::Settled,
        stream: rng.gen_bool(0.5),
        disconnect_policy: DisconnectPolicy::Cancel,
        upstream_request_id: Some(format!("req_up_{seed}")),
        flags: vec![UsageFlag::BatchTierNotRequested],
        note: Some("note".into()),
    }
}

/// Σ of the charges of `org` as the journal has them: every entry into `sys:revenue`.
async fn journal_charges(db: &Database, o: &str) -> i64 {
    db.entries(&org(o))
        .await
        .unwrap()
        .iter()
        .filter(|e| e.credit == "sys:revenue")
        .map(|e| e.amount.nanos())
        .sum()
}

/// Random holds settled (some over their hold, some late, some replayed), released or left to
/// expire, over three organizations; afterwards each organization's usage records add up to
/// its charges in the journal exactly, one record per charge.
async fn usage_records_add_up_to_the_charges_after_a_random_run(h: Harness) {
    let db = &h.db;
    let seed: u64 = std::env::var("CREDITGATE_USAGE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::thread_rng().gen());
    eprintln!("usage records run on {:?}: seed {seed}", h.backend);
    let mut rng = StdRng::seed_from_u64(seed);
    let orgs = ["a", "b", "c"];
    for o in orgs {
        funded(db, o, 1_000_000).await;
    }
    let mut charges = 0usize;
    for n in 0..150u64 {
        let o = orgs[rng.gen_range(0..orgs.len())];
        let id = format!("req_{n}");
        let held = rng.gen_range(0..20_000);
        if db.reserve(hold_req(o, &id, held)).await.is_err() {
            continue;
        }
        if rng.gen_bool(0.1) {
            h.clock.advance(16 * 60 * 1000);
            db.expire_holds().await.unwrap();
        }
        match rng.gen_range(0..10) {
            0 => {
                db.release(release_req(&id, &format!("{id}:release")))
                    .await
                    .ok();
            }
            _ => {
                let amount = rng.gen_range(0..=held + 5_000);
                let mut settle = settle_req(&id, &format!("{id}:settle"), amount);
                settle.usage = Some(Box::new(sample_record(amount, n)));
                if db.settle(settle.clone()).await.is_ok() {
                    charges += 1;
                    // A replay answers the first result and writes no second record.
                    db.settle(settle).await.unwrap();
                }
            }
        }
        h.clock.advance(rng.gen_range(0..90_000));
    }
    let mut records = 0;
    for o in orgs {
        let rows = db
            .usage_records(&org(o), START, h.clock.now().plus_millis(1), 10_000)
            .await
            .unwrap();
        let mut total = NanoCredits::ZERO;
        for r in &rows {
            total = total
                .checked_add(r.record.credits.total().unwrap())
                .unwrap();
        }
        assert_eq!(
            total.nanos(),
            journal_charges(db, o).await,
            "seed {seed}, org {o}"
        );
        records += rows.len();
    }
    assert!(charges > 50, "seed {seed}: only {charges} charges");
    assert_eq!(records, charges, "seed {seed}: one record per charge");
    assert_clean(db).await;
}

async fn a_record_that_does_not_add_up_is_refused_and_changes_nothing(h: Harness) {
    let db = &h.db;
    funded(db, "acme", 1_000).await;
    db.reserve(hold_req("acme", "req_1", 100)).await.unwrap();
    let before = db.balance(&org("acme")).await.unwrap();
    let mut settle = settle_req("req_1", "req_1:settle", 90);
    settle.usage = Some(Box::new(sample_record(80, 1)));
    assert!(matches!(
        db.settle(settle).await,
        Err(LedgerError::InvalidRequest(_))
    ));
    assert_eq!(db.balance(&org("acme")).await.unwrap(), before);
    let receipt = db
        .receipt(&org("acme"), &tid("req_1"))
        .await
        .unwrap()
        .unwrap();
    assert!(receipt.record.is_none() && receipt.charge.is_none());
    let mut settle = settle_req("req_1", "req_1:settle", 80);
    settle.usage = Some(Box::new(sample_record(80, 1)));
    db.settle(settle).await.unwrap();
    assert_clean(db).await;
}

/// Charges settled with the receipt in their memo (as before usage records existed) get their
/// record when the migration that creates the table runs.
async fn old_receipts_are_carried_over_by_the_migration(h: Harness) {
    let db = &h.db;
    funded(db, "acme", 10_000_000).await;
    let mut hold = hold_req("acme", "req_old", 5_000_000);
    hold.memo = Some(r#"{"model":"claude-sonnet-4-5","key_id":"key_9","stream":true}"#.into());
    db.reserve(hold).await.unwrap();
    let receipt = serde_json::json!({
        "id": "req_old", "model": "claude-sonnet-4-5",
        "usage": {"input_tokens": 100, "cache_creation_input_tokens": 30,
                  "cache_creation": {"ephemeral_5m_input_tokens": 10, "ephemeral_1h_input_tokens": 20},
                  "cache_read_input_tokens": 5, "output_tokens": 40,
                  "service_tier": "standard", "inference_geo": "global"},
        "held": "0.005", "charged": "0.001234567", "unit": "credit",
        "price_version": "claude-sonnet-4-5@2025-09-29", "status": "partial",
        "disconnect_policy": "cancel", "stream": true, "key_id": "key_9",
        "lines": [
            {"category": "input", "quantity": 100, "credits": "0.0006", "list_usd": "0.0003"},
            {"category": "output", "quantity": 40, "credits": "0.000634567", "list_usd": "0.0006"}
        ],
        "flags": [], "note": "upstream error event", "latency_ms": 812,
    });
    let mut settle = settle_req("req_old", "req_old:settle", 1_234_567);
    settle.memo = Some(receipt.to_string());
    db.settle(settle).await.unwrap();
    // A charge with no memo at all (a settle from outside the gateway) is carried over too.
    db.reserve(hold_req("acme", "req_bare", 100)).await.unwrap();
    db.settle(settle_req("req_bare", "req_bare:settle", 60))
        .await
        .unwrap();

    let db = forget_usage_records(&h).await;
    let r = db
        .receipt(&org("acme"), &tid("req_old"))
        .await
        .unwrap()
        .unwrap()
        .record
        .expect("carried over");
    assert_eq!(r.model, "claude-sonnet-4-5");
    assert_eq!(r.key_id, Some(ApiKeyId::parse("key_9").unwrap()));
    let t = r.tokens.unwrap();
    assert_eq!(
        (
            t.input,
            t.cache_write_5m,
            t.cache_write_1h,
            t.cache_read,
            t.output
        ),
        (100, 10, 20, 5, 40)
    );
    assert_eq!(r.credits.input, nc(600_000));
    assert_eq!(r.credits.output, nc(634_567));
    assert_eq!(r.list.output, PicoUsd::from_pico(600_000_000));
    assert_eq!(r.status, ReceiptStatus::Partial);
    assert_eq!(r.disconnect_policy, DisconnectPolicy::Cancel);
    assert!(r.stream);
    assert_eq!(r.latency_ms, 812);
    assert_eq!(r.note.as_deref(), Some("upstream error event"));
    assert_eq!(r.service.tier.as_deref(), Some("standard"));
    let bare = db
        .receipt(&org("acme"), &tid("req_bare"))
        .await
        .unwrap()
        .unwrap()
        .record
        .expect("carried over");
    assert_eq!(
        (bare.model.as_str(), bare.credits.input),
        ("unknown", nc(60))
    );
    let all = db
        .usage_records(&org("acme"), START, h.clock.now().plus_millis(1), 100)
        .await
        .unwrap();
    let total: i64 = all
        .iter()
        .map(|r| r.record.credits.total().unwrap().nanos())
        .sum();
    assert_eq!(total, journal_charges(&db, "acme").await);
}

/// Takes the database back to before usage records (drops the table, forgets the migration)
/// and reconnects, so the migration runs again over the charges already there.
async fn forget_usage_records(h: &Harness) -> Database {
    let sql = "DROP TABLE usage_rollups; DROP TABLE usage_records;\n               DELETE FROM schema_migrations WHERE name LIKE '%_usage_%';";
    match h.backend {
        Backend::Sqlite => {
            let path = h.url.strip_prefix("sqlite://").unwrap().to_owned();
            let conn = rusqlite::Connection::open(path).unwrap();
            conn.execute_batch(sql).unwrap();
        }
        Backend::Postgres => {
            let (client, conn) = tokio_postgres::connect(&h.url, tokio_postgres::NoTls)
                .await
                .unwrap();
            let task = tokio::spawn(conn);
            client.batch_execute(sql).await.unwrap();
            drop(client);
            let _ = task.await;
        }
    }
    h.replica().await
}
