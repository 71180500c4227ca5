//! Buying credits as a new user does it, against the real `creditgate demo` process: sign in
//! with the demo's owner, put a country on the billing profile, open a checkout for the
//! 10,000-credit pack, pay on the sandbox page with a declined card (nothing changes), then with
//! `4242…` (the balance rises by exactly 10,000, once), and read the receipt.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::time::Duration;

use creditgate_core::money::NanoCredits;
use serde_json::{json, Value};

pub(crate) struct Demo {
    child: Child,
    dir: std::path::PathBuf,
    /// The demo's JSON ready line.
    pub(crate) info: Value,
}

impl Demo {
    pub(crate) fn start() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "creditgate-demo-buy-{:016x}",
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_creditgate"));
        cmd.args(["demo", "--listen", "127.0.0.1:0", "--json"])
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("CREDITGATE_") {
                cmd.env_remove(name);
            }
        }
        let mut child = cmd.spawn().expect("start creditgate demo");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("the demo's ready line");
        let info: Value = serde_json::from_str(&line).expect("one JSON line");
        Self { child, dir, info }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.info["base_url"].as_str().unwrap())
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-INT")
            .arg(self.child.id().to_string())
            .status();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A signed-in browser: the session cookie and its CSRF token.
struct Browser {
    http: reqwest::Client,
    cookie: String,
    csrf: String,
}

impl Browser {
    async fn sign_in(demo: &Demo) -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let resp = http
            .post(demo.url("/auth/sign-in"))
            .json(&json!({"email": demo.info["dashboard_email"],
                          "password": demo.info["dashboard_password"]}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let cookie = resp.headers()["set-cookie"].to_str().unwrap();
        let cookie = cookie.split(';').next().unwrap().to_owned();
        let body: Value = resp.json().await.unwrap();
        let csrf = body["csrf_token"].as_str().unwrap().to_owned();
        Self { http, cookie, csrf }
    }

    async fn send(
        &self,
        method: reqwest::Method,
        url: String,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, url)
            .header("cookie", &self.cookie)
            .header("x-csrf-token", &self.csrf);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn balance(&self, demo: &Demo) -> NanoCredits {
        let url = demo.url("/v1/organizations/credits");
        let (status, body) = self.send(reqwest::Method::GET, url, None).await;
        assert_eq!(status, 200, "{body}");
        NanoCredits::from_str(body["balance"].as_str().unwrap()).unwrap()
    }

    async fn checkout(&self, demo: &Demo) -> (String, String) {
        let url = demo.url("/v1/billing/checkout");
        let pick = json!({"plan_id": "credits-10000"});
        let (status, body) = self.send(reqwest::Method::POST, url, Some(pick)).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["order"]["amount_cents"], 5000);
        (
            body["order"]["id"].as_str().unwrap().to_owned(),
            body["checkout_url"].as_str().unwrap().to_owned(),
        )
    }

    /// Submits the sandbox page's form, as the browser does.
    async fn pay(&self, checkout_url: &str, card: &str) -> String {
        let page = self.http.get(checkout_url).send().await.unwrap();
        assert_eq!(page.status(), 200);
        let html = page.text().await.unwrap();
        assert!(html.contains("10000 credits for $50.00"), "{html}");
        let resp = self
            .http
            .post(checkout_url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("card={}", card.replace(' ', "+")))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.text().await.unwrap()
    }
}

#[tokio::test]
async fn a_new_user_buys_the_10000_pack_on_the_demo_and_reads_the_receipt() {
    let demo = Demo::start();
    let me = Browser::sign_in(&demo).await;
    let (status, plans) = me
        .send(reqwest::Method::GET, demo.url("/v1/billing/plans"), None)
        .await;
    assert_eq!(status, 200);
    assert!(plans["data"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["id"] == "credits-10000"));
    let profile = json!({"name": "Ada Lovelace", "country": "GB"});
    let url = demo.url("/v1/billing/profile");
    let (status, body) = me.send(reqwest::Method::PUT, url, Some(profile)).await;
    assert_eq!(status, 200, "{body}");
    let before = me.balance(&demo).await;

    // A declined card: the page says why, nothing changes.
    let (declined, url) = me.checkout(&demo).await;
    let page = me.pay(&url, "4000 0000 0000 0002").await;
    assert!(page.contains("Your card was declined"), "{page}");
    assert_eq!(me.balance(&demo).await, before);
    let order_url = demo.url(&format!("/v1/billing/orders/{declined}"));
    let (_, order) = me.send(reqwest::Method::GET, order_url, None).await;
    assert_eq!(order["status"], "failed");
    assert_eq!(order["failure"]["code"], "card_declined");

    // 4242: exactly 10,000 more, once.
    let (id, url) = me.checkout(&demo).await;
    let form = me
        .http
        .get(&url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        form.contains("Pay $50.00") && form.contains("4242"),
        "{form}"
    );
    let page = me.pay(&url, "4242 4242 4242 4242").await;
    assert!(page.contains("credited"), "{page}");
    let after = me.balance(&demo).await;
    assert_eq!(
        after.checked_sub(before).unwrap(),
        NanoCredits::from_credits(10_000).unwrap()
    );
    me.pay(&url, "4242 4242 4242 4242").await;
    assert_eq!(
        me.balance(&demo).await,
        after,
        "paying again changes nothing"
    );

    let order_url = demo.url(&format!("/v1/billing/orders/{id}"));
    let (_, order) = me.send(reqwest::Method::GET, order_url, None).await;
    assert_eq!(order["status"], "credited");
    let number = order["receipt_number"].as_str().unwrap();
    let receipt = me
        .http
        .get(demo.url(&format!("/v1/billing/orders/{id}/receipt")))
        .header("cookie", &me.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(receipt.status(), 200);
    let html = receipt.text().await.unwrap();
    for want in [
        number,
        "10000 credit",
        "$50.00",
        "visa •••• 4242",
        "Ada Lovelace",
        "GB",
    ] {
        assert!(html.contains(want), "{want} missing from the receipt");
    }
}
