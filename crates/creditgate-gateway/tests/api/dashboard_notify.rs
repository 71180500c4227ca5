//! The webhooks and alerts pages over real HTTP (`docs/dashboard.md`): who is shown what, CSRF
//! refusals, the service's refusals beside the field they are about, a new endpoint's secret
//! shown once, a delivery's attempts in the log and "Retry now", delete, and alert settings
//! saved through the page being the settings the API reports.

use std::time::{Duration, Instant};

use creditgate_core::accounts::Role;
use creditgate_gateway::notify::emit;
use reqwest::header::LOCATION;
use reqwest::Method;
use serde_json::json;

use crate::accounts::{add_member, admin_key, call, Cred};
use crate::alerts::{allowing_loopback, received};
use crate::dashboard::{csrf_of, get_page, post_form, sign_in_form, Page};
use crate::helpers::{Setup, TestApp};
use crate::receiver::{Mode, Receiver};

const OWNER: &str = "owner@example.com";

/// The part of `html` from the element marked `marker` to the end of its row or section.
fn part<'a>(html: &'a str, marker: &str, end: &str) -> &'a str {
    let at = html
        .find(marker)
        .unwrap_or_else(|| panic!("{marker} in {html}"));
    let rest = &html[at..];
    &rest[..rest.find(end).unwrap_or(rest.len())]
}

async fn endpoints_via_api(t: &TestApp) -> Vec<serde_json::Value> {
    let cred = Cred::Key(admin_key(t, &t.org).await);
    let r = call(t, Method::GET, "/v1/organizations/webhooks", &cred, None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["data"].as_array().unwrap().clone()
}

async fn webhooks_are_for_owner_and_admin_and_alerts_read_only_without_billing(setup: Setup) {
    let t = TestApp::spawn_with(setup).await;
    add_member(&t, &t.org, OWNER, Role::Owner).await;
    add_member(&t, &t.org, "admin@example.com", Role::Admin).await;
    add_member(&t, &t.org, "billing@example.com", Role::Billing).await;
    add_member(&t, &t.org, "dev@example.com", Role::Developer).await;
    for email in [OWNER, "admin@example.com"] {
        let cookie = sign_in_form(&t, email).await;
        let p = get_page(&t, "/webhooks", Some(&cookie)).await;
        assert_eq!(p.status, 200, "{email}: {}", p.html);
        assert!(p.html.contains("href=\"/webhooks\""), "nav for {email}");
        assert!(p.html.contains("action=\"/webhooks\""), "form for {email}");
        assert!(p.html.contains("data-testid=\"endpoints-empty\""));
        assert!(p.html.contains("<label for=\"url\">"));
    }
    for email in ["billing@example.com", "dev@example.com"] {
        let cookie = sign_in_form(&t, email).await;
        let overview = get_page(&t, "/", Some(&cookie)).await;
        assert!(!overview.html.contains("href=\"/webhooks\""), "{email}");
        assert!(overview.html.contains("href=\"/alerts\""), "{email}");
        let p = get_page(&t, "/webhooks", Some(&cookie)).await;
        assert_eq!(p.status, 200, "{email}: {}", p.html);
        assert!(p.html.contains("data-testid=\"webhooks-not-allowed\""));
        assert!(
            !p.html.contains("action=\"/webhooks\""),
            "{email}: {}",
            p.html
        );
        let endpoint = get_page(&t, "/webhooks/whe_x", Some(&cookie)).await;
        assert_eq!(endpoint.status, 303, "{email}: {}", endpoint.html);
        assert_eq!(endpoint.headers[LOCATION], "/webhooks");
        let csrf = csrf_of(&overview.html);
        let forced = post_form(
            &t,
            "/webhooks",
            Some(&cookie),
            &[
                ("csrf_token", &csrf),
                ("url", "http://93.184.216.34/hook"),
                ("events", "credits.low"),
            ],
        )
        .await;
        assert_eq!(forced.status, 403, "{email}: {}", forced.html);
    }
    assert!(endpoints_via_api(&t).await.is_empty(), "nothing registered");

    // Alerts: billing may save; a developer reads them without the form and is refused a post.
    let billing = sign_in_form(&t, "billing@example.com").await;
    let p = get_page(&t, "/alerts", Some(&billing)).await;
    assert_eq!(p.status, 200, "{}", p.html);
    assert!(p.html.contains("action=\"/alerts\""));
    assert!(p.html.contains("data-testid=\"thresholds-empty\""));
    let saved = post_form(
        &t,
        "/alerts",
        Some(&billing),
        &[
            ("csrf_token", &csrf_of(&p.html)),
            ("low_balance_thresholds", "100, 2500"),
            ("emails", "oncall@example.com"),
        ],
    )
    .await;
    assert_eq!(saved.status, 303, "{}", saved.html);
    let dev = sign_in_form(&t, "dev@example.com").await;
    let p = get_page(&t, "/alerts", Some(&dev)).await;
    assert_eq!(p.status, 200, "{}", p.html);
    assert!(!p.html.contains("action=\"/alerts\""), "{}", p.html);
    assert!(p.html.contains("data-testid=\"alerts-read-only\""));
    // Highest first, each with its USD value (1 credit = $0.005 in the tests' unit).
    let table = part(&p.html, "data-testid=\"thresholds\"", "</table>");
    let first = table.find(">2500<").expect("2500 shown");
    assert!(first < table.find(">100<").expect("100 shown"), "{table}");
    assert!(
        table.contains("$12.50") && table.contains("$0.50"),
        "{table}"
    );
    assert!(p.html.contains("oncall@example.com"));
    let forced = post_form(
        &t,
        "/alerts",
        Some(&dev),
        &[
            ("csrf_token", &csrf_of(&p.html)),
            ("low_balance_thresholds", "1"),
            ("emails", ""),
        ],
    )
    .await;
    assert_eq!(forced.status, 403, "{}", forced.html);
    let cred = Cred::Key(admin_key(&t, &t.org).await);
    let r = call(&t, Method::GET, "/v1/billing/alerts", &cred, None).await;
    assert_eq!(r.body["low_balance_thresholds"], json!(["2500", "100"]));
    assert_eq!(r.body["emails"], json!(["oncall@example.com"]));
}

async fn alert_settings_refused_beside_their_field_and_without_the_token(setup: Setup) {
    let t = TestApp::spawn_with(setup).await;
    add_member(&t, &t.org, OWNER, Role::Owner).await;
    let cookie = sign_in_form(&t, OWNER).await;
    let csrf = csrf_of(&get_page(&t, "/alerts", Some(&cookie)).await.html);
    let fields = [("low_balance_thresholds", "50"), ("emails", "")];
    let no_token = post_form(&t, "/alerts", Some(&cookie), &fields).await;
    assert_eq!(no_token.status, 403, "{}", no_token.html);
    let post = |thresholds: &'static str, emails: &'static str| {
        let (t, cookie, csrf) = (&t, cookie.clone(), csrf.clone());
        async move {
            let fields = [
                ("csrf_token", csrf.as_str()),
                ("low_balance_thresholds", thresholds),
                ("emails", emails),
            ];
            post_form(t, "/alerts", Some(&cookie), &fields).await
        }
    };
    for bad in ["-5", "abc", "10, 10"] {
        let p = post(bad, "ok@example.com").await;
        assert_eq!(p.status, 400, "{bad}: {}", p.html);
        assert!(
            p.html.contains("id=\"low_balance_thresholds-error\""),
            "{bad}: {}",
            p.html
        );
        assert!(p.html.contains("aria-invalid=\"true\""));
        assert!(p.html.contains(&format!("value=\"{bad}\"")), "typed kept");
        assert!(!p.html.contains("id=\"emails-error\""));
    }
    let p = post("50", "not-an-address").await;
    assert_eq!(p.status, 400, "{}", p.html);
    assert!(p.html.contains("id=\"emails-error\""), "{}", p.html);
    assert!(p.html.contains("value=\"not-an-address\""));
    let cred = Cred::Key(admin_key(&t, &t.org).await);
    let r = call(&t, Method::GET, "/v1/billing/alerts", &cred, None).await;
    assert_eq!(r.body["low_balance_thresholds"], json!([]), "nothing saved");
    let ok = post("50", "").await;
    assert_eq!(ok.status, 303, "{}", ok.html);
    assert_eq!(ok.headers[LOCATION], "/alerts?saved=1");
    let p = get_page(&t, "/alerts?saved=1", Some(&cookie)).await;
    assert!(p.html.contains("data-testid=\"alerts-saved\""));
    assert!(p.html.contains("value=\"50\""), "{}", p.html);
}

/// The endpoint's page once its log shows `n` attempts in all.
async fn log_with_attempts(t: &TestApp, cookie: &str, endpoint: &str, n: usize) -> Page {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let p = get_page(t, &format!("/webhooks/{endpoint}"), Some(cookie)).await;
        assert_eq!(p.status, 200, "{}", p.html);
        if p.html.matches("data-testid=\"attempt\"").count() >= n {
            return p;
        }
        assert!(
            Instant::now() < deadline,
            "{n} attempts never shown: {}",
            p.html
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn an_endpoint_is_registered_its_log_shown_retried_and_deleted(setup: Setup) {
    let t = TestApp::spawn_with(allowing_loopback(setup)).await;
    add_member(&t, &t.org, OWNER, Role::Owner).await;
    let cookie = sign_in_form(&t, OWNER).await;
    let csrf = csrf_of(&get_page(&t, "/webhooks", Some(&cookie)).await.html);
    let rx = Receiver::start(Mode::Fail).await;
    let url = rx.url();
    let form = |url: &str, events: &[&str]| {
        let mut f = vec![
            ("csrf_token".to_owned(), csrf.clone()),
            ("url".to_owned(), url.to_owned()),
        ];
        f.extend(
            events
                .iter()
                .map(|e| ("events".to_owned(), (*e).to_owned())),
        );
        f
    };
    let send = |fields: Vec<(String, String)>| {
        let (t, cookie) = (&t, cookie.clone());
        async move {
            let pairs: Vec<(&str, &str)> = fields
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            post_form(t, "/webhooks", Some(&cookie), &pairs).await
        }
    };

    let no_token = form(&url, &["order.failed"])[1..].to_vec();
    assert_eq!(send(no_token).await.status, 403);
    // The SSRF guard refuses the gateway itself even where private addresses are allowed.
    let itself = send(form(&t.url("/hook"), &["order.failed"])).await;
    assert_eq!(itself.status, 400, "{}", itself.html);
    assert!(itself.html.contains("id=\"url-error\""), "{}", itself.html);
    assert!(itself.html.contains("gateway itself"), "{}", itself.html);
    assert!(itself.html.contains("checked"), "the ticked event kept");
    let none = send(form(&url, &[])).await;
    assert_eq!(none.status, 400, "{}", none.html);
    assert!(none.html.contains("id=\"events-error\""), "{}", none.html);
    assert!(
        none.html.contains(&format!("value=\"{url}\"")),
        "typed url kept"
    );
    assert!(endpoints_via_api(&t).await.is_empty(), "nothing registered");

    let made = send(form(&url, &["order.failed", "credits.low"])).await;
    assert_eq!(made.status, 200, "{}", made.html);
    let secret = part(&made.html, "data-testid=\"secret\">", "</code>")
        ["data-testid=\"secret\">".len()..]
        .to_owned();
    assert!(secret.starts_with("whsec_"), "{secret}");
    assert!(made.html.contains("data-copy=\"new-secret\""));
    let listed = endpoints_via_api(&t).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    let id = listed[0]["id"].as_str().unwrap().to_owned();
    let list = get_page(&t, "/webhooks", Some(&cookie)).await;
    assert!(!list.html.contains(&secret), "the secret is shown once");
    let row = part(&list.html, &format!("data-endpoint=\"{id}\""), "</tr>");
    assert!(row.contains(&url) && row.contains("order.failed"), "{row}");
    assert!(row.contains(">enabled<"), "{row}");

    let empty = get_page(&t, &format!("/webhooks/{id}"), Some(&cookie)).await;
    assert!(empty.html.contains("data-testid=\"deliveries-empty\""));
    rx.set_secret(&secret);
    emit(&t.app, &t.org, "order.failed", Some("ord_page"), json!({})).await;
    received(&t, &rx, "order.failed", 1).await;
    let log = log_with_attempts(&t, &cookie, &id, 1).await;
    let delivery = part(&log.html, "data-delivery=", "</section>");
    assert!(delivery.contains("<code>order.failed</code>"), "{delivery}");
    assert!(delivery.contains("HTTP 500"), "{delivery}");
    assert!(delivery.contains(" ms<"), "the duration: {delivery}");
    let delivery_id = part(delivery, "dlv_", "\"").to_owned();

    rx.set_mode(Mode::Ok);
    let retry = format!("/webhooks/{id}/deliveries/{delivery_id}/retry");
    assert_eq!(post_form(&t, &retry, Some(&cookie), &[]).await.status, 403);
    let retried = post_form(&t, &retry, Some(&cookie), &[("csrf_token", &csrf)]).await;
    assert_eq!(retried.status, 303, "{}", retried.html);
    assert_eq!(
        retried.headers[LOCATION],
        format!("/webhooks/{id}?done=retried").as_str()
    );
    let log = log_with_attempts(&t, &cookie, &id, 2).await;
    let delivery = part(&log.html, "data-delivery=", "</section>");
    assert!(delivery.contains(">delivered<"), "{delivery}");
    assert!(delivery.contains("(retry now)"), "{delivery}");
    assert!(delivery.contains("HTTP 200"), "{delivery}");
    assert_eq!(rx.received().len(), 2);

    let delete = format!("/webhooks/{id}/delete");
    assert_eq!(post_form(&t, &delete, Some(&cookie), &[]).await.status, 403);
    assert_eq!(
        endpoints_via_api(&t).await.len(),
        1,
        "a refused post deletes nothing"
    );
    let gone = post_form(&t, &delete, Some(&cookie), &[("csrf_token", &csrf)]).await;
    assert_eq!(gone.status, 303, "{}", gone.html);
    assert_eq!(gone.headers[LOCATION], "/webhooks?done=deleted");
    let list = get_page(&t, "/webhooks?done=deleted", Some(&cookie)).await;
    assert!(list.html.contains("data-testid=\"endpoints-empty\""));
    assert!(endpoints_via_api(&t).await.is_empty());
    let page = get_page(&t, &format!("/webhooks/{id}"), Some(&cookie)).await;
    assert_eq!(page.status, 404, "{}", page.html);
}

crate::on_both_databases!(
    webhooks_are_for_owner_and_admin_and_alerts_read_only_without_billing,
    alert_settings_refused_beside_their_field_and_without_the_token,
    an_endpoint_is_registered_its_log_shown_retried_and_deleted,
);
