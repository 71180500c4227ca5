//! Two `creditgate serve` processes on one database (a SQLite file, or Postgres when
//! `CREDITGATE_TEST_POSTGRES_URL` is set) given 40 concurrent settlements that cross the
//! auto-reload threshold: the lease row taken by a conditional UPDATE lets exactly one of them
//! buy the reload (`docs/auto-reload.md`), credited once.

use std::time::{Duration, Instant};

use creditgate_core::ledger::LedgerStore;
use serde_json::{json, Value};

use crate::process::{body, Backend, Gateway, World, ADMIN_KEY};

async fn call(
    gw: &Gateway,
    method: reqwest::Method,
    path: &str,
    key: &str,
    b: Option<Value>,
) -> Value {
    let mut req = reqwest::Client::new().request(method, gw.url(path));
    req = if key == ADMIN_KEY {
        req.header("authorization", format!("Bearer {key}"))
    } else {
        req.header("x-api-key", key)
    };
    if let Some(b) = b {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("request sent");
    let status = resp.status();
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{path}: {status} {v}");
    v
}

/// Through the first gateway's HTTP API: an admin key, a billing country, a sandbox card saved,
/// auto-reload on (threshold 100, the 1,000-credit plan). Answers the admin key.
async fn turn_on_auto_reload(world: &World, gw: &Gateway) -> String {
    use reqwest::Method;
    let path = format!("/admin/v1/organizations/{}/admin_keys", world.org);
    let admin = call(
        gw,
        Method::POST,
        &path,
        ADMIN_KEY,
        Some(json!({"name": "ops"})),
    )
    .await;
    let admin = admin["secret"].as_str().unwrap().to_owned();
    let profile = json!({"name": "Ops", "country": "FR"});
    call(
        gw,
        Method::PUT,
        "/v1/billing/profile",
        &admin,
        Some(profile),
    )
    .await;
    let setup = call(
        gw,
        Method::POST,
        "/v1/billing/payment_methods",
        &admin,
        None,
    )
    .await;
    let url = setup["setup_url"].as_str().unwrap();
    let saved: Value = reqwest::Client::new()
        .post(url)
        .json(&json!({"card": "4242424242424242"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(saved["payment_method"]["status"], "active", "{saved}");
    let settings = json!({"enabled": true, "threshold": "100", "plan_id": "credits-1000",
        "monthly_limit": "100000"});
    call(
        gw,
        Method::PUT,
        "/v1/billing/auto_reload",
        &admin,
        Some(settings),
    )
    .await;
    admin
}

async fn two_processes_start_one_reload(backend: Backend) {
    let Some(world) = World::on(backend).await else {
        return;
    };
    world.grant("10".parse().unwrap()).await;
    let config = world.config("");
    // Each process keeps its own settlement spool.
    let text = std::fs::read_to_string(&config).unwrap();
    let config_b = world.dir.join("creditgate-b.toml");
    std::fs::write(
        &config_b,
        text.replace("settlements.spool", "settlements-b.spool"),
    )
    .unwrap();
    let a = Gateway::start(&config);
    let b = Gateway::start(&config_b);
    let admin = turn_on_auto_reload(&world, &a).await;
    let request = body(10, "", false);
    let mut sends = tokio::task::JoinSet::new();
    for n in 0..40 {
        let url = if n % 2 == 0 { &a } else { &b }.url("/v1/messages");
        let (key, request) = (world.key.clone(), request.clone());
        sends.spawn(async move {
            let r = reqwest::Client::new()
                .post(url)
                .header("x-api-key", key)
                .header("anthropic-version", "2023-06-01")
                .json(&request)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        });
    }
    while let Some(done) = sends.join_next().await {
        done.expect("request task");
    }
    // Reloads run after the answers: wait for the order, then a while longer for a second.
    let deadline = Instant::now() + Duration::from_secs(60);
    let credited = |orders: &Value| {
        orders["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|o| o["status"] == "credited")
            .count()
    };
    loop {
        let orders = call(&a, reqwest::Method::GET, "/v1/billing/orders", &admin, None).await;
        if credited(&orders) >= 1 {
            break;
        }
        assert!(Instant::now() < deadline, "no reload: {orders}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let orders = call(&b, reqwest::Method::GET, "/v1/billing/orders", &admin, None).await;
    assert_eq!(orders["data"].as_array().unwrap().len(), 1, "{orders}");
    let balance = world.db.balance(&world.org).await.unwrap();
    assert!(
        balance.posted > "1000".parse().unwrap(),
        "one reload of 1,000 credited: {balance:?}"
    );
    assert!(
        balance.posted < "1010".parse().unwrap(),
        "once: {balance:?}"
    );
    drop((a, b));
}

#[tokio::test]
async fn two_processes_on_sqlite_start_one_reload() {
    two_processes_start_one_reload(Backend::Sqlite).await
}

#[tokio::test]
async fn two_processes_on_postgres_start_one_reload() {
    two_processes_start_one_reload(Backend::Postgres).await
}
