//! `creditgate report usage|cost|cache`, with the built binary, over a SQLite file holding
//! settlements made through the storage's settle path at known times: the reports' credits add
//! up to the charges, as JSON, CSV and text, for one organization and for all.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::Arc;

use creditgate_core::clock::{ManualClock, Timestamp};
use creditgate_core::ids::{ApiKeyId, LotId, OrganizationId, TransferId};
use creditgate_core::ledger::{GrantRequest, HoldRequest, LedgerStore, SettleRequest};
use creditgate_core::money::NanoCredits;
use creditgate_core::usage::{
    DisconnectPolicy, Lines, PicoUsd, ReceiptStatus, Service, Tokens, UsageRecord,
};
use creditgate_storage::Database;
use serde_json::Value;

/// 2026-11-02T00:00:00Z.
const DAY: i64 = 1_793_577_600_000;

struct Workdir(PathBuf);

impl Drop for Workdir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn record(key: &str, model: &str, nanos: i64) -> UsageRecord {
    UsageRecord {
        key_id: Some(ApiKeyId::parse(key).unwrap()),
        model: model.into(),
        tokens: Some(Tokens {
            input: 100,
            cache_write_5m: 10,
            output: 20,
            ..Tokens::default()
        }),
        service: Service::default(),
        credits: Lines {
            input: NanoCredits::from_nanos(nanos),
            output: NanoCredits::from_nanos(nanos),
            ..Lines::default()
        },
        list: Lines {
            input: PicoUsd::from_pico(nanos * 1000),
            ..Lines::default()
        },
        cache_savings: NanoCredits::ZERO,
        price_version: None,
        latency_ms: 5,
        status: ReceiptStatus::Settled,
        stream: false,
        disconnect_policy: DisconnectPolicy::Drain,
        upstream_request_id: None,
        flags: Vec::new(),
        note: None,
    }
}

async fn org_with_usage(db: &Database, clock: &ManualClock, name: &str, charges: &[i64]) {
    let org = OrganizationId::parse(name).unwrap();
    db.create_organization(org.clone(), name.into())
        .await
        .unwrap();
    db.grant(GrantRequest::purchase(
        TransferId::parse(&format!("fund-{name}")).unwrap(),
        org.clone(),
        LotId::parse(&format!("lot-{name}")).unwrap(),
        NanoCredits::from_credits(1000).unwrap(),
    ))
    .await
    .unwrap();
    for (i, nanos) in charges.iter().enumerate() {
        // One settlement a day apart, the last on the window's last day.
        clock.set(Timestamp::from_millis(
            DAY + i as i64 * 86_400_000 + 3_600_000,
        ));
        let id = format!("{name}-req-{i}");
        db.reserve(HoldRequest {
            transfer_id: TransferId::parse(&id).unwrap(),
            org: org.clone(),
            amount: NanoCredits::from_nanos(2 * nanos),
            timeout_ms: 60_000,
            scope: None,
            limits: Vec::new(),
            memo: None,
        })
        .await
        .unwrap();
        let model = if i % 2 == 0 {
            "claude-haiku-4-5"
        } else {
            "claude-sonnet-4-5"
        };
        db.settle(SettleRequest {
            transfer_id: TransferId::parse(&format!("{id}-s")).unwrap(),
            hold: TransferId::parse(&id).unwrap(),
            amount: NanoCredits::from_nanos(2 * nanos),
            memo: None,
            usage: Some(Box::new(record("key_0123456789abcdef", model, *nanos))),
            leased: None,
        })
        .await
        .unwrap();
    }
}

fn run(url: &str, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_creditgate"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("CREDITGATE_") {
            cmd.env_remove(name);
        }
    }
    let out = cmd
        .arg("--database")
        .arg(url)
        .args(args)
        .output()
        .expect("run creditgate");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn total(report: &Value, pointer: &str) -> NanoCredits {
    NanoCredits::checked_sum(report["data"].as_array().unwrap().iter().flat_map(|b| {
        b["results"].as_array().unwrap().iter().map(|r| {
            r.pointer(pointer)
                .unwrap()
                .as_str()
                .unwrap()
                .parse()
                .unwrap()
        })
    }))
    .unwrap()
}

#[tokio::test]
async fn reports_from_the_cli_add_up_to_the_charges() {
    let dir =
        Workdir(std::env::temp_dir().join(format!("cg-report-cli-{:016x}", rand::random::<u64>())));
    std::fs::create_dir_all(&dir.0).unwrap();
    let url = format!("sqlite://{}", dir.0.join("r.db").display());
    let clock = ManualClock::new(Timestamp::from_millis(DAY));
    {
        let db = Database::connect(&url, Arc::new(clock.clone()))
            .await
            .unwrap();
        org_with_usage(&db, &clock, "org-a", &[1_000, 2_500, 40_000]).await;
        org_with_usage(&db, &clock, "org-b", &[7]).await;
    }
    let window = ["--starting-at", "2026-11-02", "--ending-at", "2026-11-05"];
    let a_total = NanoCredits::from_nanos(2 * (1_000 + 2_500 + 40_000));
    let b_total = NanoCredits::from_nanos(14);

    let mut args = vec![
        "--json",
        "report",
        "usage",
        "--org",
        "org-a",
        "--group-by",
        "model",
    ];
    args.extend(window);
    let json: Value = serde_json::from_slice(&run(&url, &args).stdout).unwrap();
    assert_eq!(json["data"].as_array().unwrap().len(), 3, "{json}");
    assert_eq!(total(&json, "/credits"), a_total, "{json}");
    assert_eq!(json["has_more"], false);

    let mut args = vec![
        "--json",
        "report",
        "cost",
        "--all",
        "--group-by",
        "description",
    ];
    args.extend(window);
    let json: Value = serde_json::from_slice(&run(&url, &args).stdout).unwrap();
    assert_eq!(
        total(&json, "/credits"),
        a_total.checked_add(b_total).unwrap(),
        "{json}"
    );

    let mut args = vec![
        "report",
        "cache",
        "--org",
        "org-a",
        "--csv",
        "--bucket-width",
        "1h",
    ];
    args.extend(window);
    let csv = String::from_utf8(run(&url, &args).stdout).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = header.iter().position(|h| *h == "credits.total").unwrap();
    let sum = NanoCredits::checked_sum(lines.map(|l| {
        l.split(',')
            .nth(col)
            .unwrap()
            .parse::<NanoCredits>()
            .unwrap()
    }))
    .unwrap();
    assert_eq!(sum, a_total, "{csv}");

    let mut args = vec!["report", "usage", "--org", "org-b"];
    args.extend(window);
    let text = String::from_utf8(run(&url, &args).stdout).unwrap();
    assert!(
        text.contains("2026-11-02T00:00:00Z") && text.contains("0.000000014 credits"),
        "{text}"
    );
}

/// `creditgate statement`: the operator's copy of `GET /v1/billing/statement`, as JSON, CSV and
/// text: the grant, one usage line per day, and a closing balance that is the ledger's.
#[tokio::test]
async fn the_statement_from_the_cli_reconciles_with_the_ledger() {
    let dir = Workdir(
        std::env::temp_dir().join(format!("cg-statement-cli-{:016x}", rand::random::<u64>())),
    );
    std::fs::create_dir_all(&dir.0).unwrap();
    let url = format!("sqlite://{}", dir.0.join("s.db").display());
    let clock = ManualClock::new(Timestamp::from_millis(DAY));
    let posted = {
        let db = Database::connect(&url, Arc::new(clock.clone()))
            .await
            .unwrap();
        org_with_usage(&db, &clock, "org-s", &[1_000, 2_500, 40_000]).await;
        let org = OrganizationId::parse("org-s").unwrap();
        db.balance(&org).await.unwrap().posted
    };
    let window = ["--starting-at", "2026-11-01", "--ending-at", "2026-12-01"];
    let mut args = vec!["--json", "statement", "--org", "org-s"];
    args.extend(window);
    let json: Value = serde_json::from_slice(&run(&url, &args).stdout).unwrap();
    let kinds: Vec<&str> = json["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["kind"].as_str().unwrap())
        .collect();
    // A lot granted outside any order is a grant, whatever its source says.
    assert_eq!(kinds, ["grant", "usage", "usage", "usage"], "{json}");
    assert_eq!(json["opening_balance"], "0");
    assert_eq!(json["closing_balance"], posted.to_string(), "{json}");

    let mut args = vec!["statement", "--org", "org-s", "--csv"];
    args.extend(window);
    let csv = String::from_utf8(run(&url, &args).stdout).unwrap();
    let last = csv.lines().last().unwrap();
    assert!(
        last.contains("closing_balance") && last.contains(&posted.to_string()),
        "{csv}"
    );

    let mut args = vec!["statement", "--org", "org-s"];
    args.extend(window);
    let text = String::from_utf8(run(&url, &args).stdout).unwrap();
    assert!(
        text.contains(&format!("closing balance {posted}")),
        "{text}"
    );
}
