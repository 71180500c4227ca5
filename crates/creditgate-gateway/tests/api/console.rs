//! The operator console (`docs/dashboard.md`, "Operator console") over real HTTP: the operator
//! key signs in and is never the cookie, a wrong key is refused, a form without the session's
//! CSRF token changes nothing, and a grant or a manual payment through the forms moves the
//! balance exactly once (on SQLite and Postgres).

use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;
use reqwest::{Client, Response, StatusCode};

use crate::helpers::{credits, Setup, TestApp, ADMIN_KEY};
use crate::on_both_databases;

/// A browser-like client for the console: cookies sent by hand, redirects not followed.
struct Console {
    http: Client,
    base: String,
    cookie: String,
    csrf: String,
}

fn client() -> Client {
    Client::builder().redirect(Policy::none()).build().unwrap()
}

async fn sign_in_with(t: &TestApp, key: &str) -> Response {
    client()
        .post(t.url("/operator/sign-in"))
        .form(&[("key", key)])
        .send()
        .await
        .unwrap()
}

/// The value of `name="csrf_token"` in a page.
fn csrf_of(html: &str) -> String {
    let at = html
        .find("name=\"csrf_token\" value=\"")
        .expect("a form with a CSRF token");
    let rest = &html[at + "name=\"csrf_token\" value=\"".len()..];
    rest[..rest.find('"').unwrap()].to_owned()
}

impl Console {
    async fn sign_in(t: &TestApp) -> Self {
        let r = sign_in_with(t, ADMIN_KEY).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert_eq!(r.headers()[LOCATION], "/operator");
        let set = r.headers()[SET_COOKIE].to_str().unwrap().to_owned();
        let cookie = set.split(';').next().unwrap().to_owned();
        let mut c = Console {
            http: client(),
            base: t.address.clone(),
            cookie,
            csrf: String::new(),
        };
        let page = c.get("/operator").await;
        assert_eq!(page.status(), StatusCode::OK);
        c.csrf = csrf_of(&page.text().await.unwrap());
        c
    }

    async fn get(&self, path: &str) -> Response {
        let url = format!("{}{path}", self.base);
        self.http
            .get(url)
            .header(COOKIE, &self.cookie)
            .send()
            .await
            .unwrap()
    }

    /// Posts a form with the session's CSRF token added.
    async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Response {
        let mut all = fields.to_vec();
        all.push(("csrf_token", &self.csrf));
        self.post_raw(path, &all).await
    }

    async fn post_raw(&self, path: &str, fields: &[(&str, &str)]) -> Response {
        let url = format!("{}{path}", self.base);
        let req = self
            .http
            .post(url)
            .header(COOKIE, &self.cookie)
            .form(fields);
        req.send().await.unwrap()
    }
}

async fn the_operator_key_signs_in_and_is_never_the_cookie(setup: Setup) {
    let t = TestApp::spawn_with(setup).await;
    // Nobody signed in: the console sends the browser to its sign-in page.
    let anonymous = client().get(t.url("/operator")).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::SEE_OTHER);
    assert_eq!(anonymous.headers()[LOCATION], "/operator/sign-in");

    for wrong in [
        "",
        "cg-admin-not-the-key",
        &ADMIN_KEY[..ADMIN_KEY.len() - 1],
    ] {
        let r = sign_in_with(&t, wrong).await;
        assert!(r.status().is_client_error(), "{wrong:?}: {}", r.status());
        assert!(
            r.headers().get(SET_COOKIE).is_none(),
            "{wrong:?} got a cookie"
        );
        let page = r.text().await.unwrap();
        assert!(page.contains("operator key"), "{page}");
    }

    let r = sign_in_with(&t, ADMIN_KEY).await;
    let set = r.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    assert!(set.starts_with("cg_operator="), "{set}");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/operator"] {
        assert!(set.contains(attribute), "{set} lacks {attribute}");
    }
    assert!(
        !set.contains(ADMIN_KEY),
        "the cookie carries the operator key: {set}"
    );

    let c = Console::sign_in(&t).await;
    let page = c.get("/operator").await.text().await.unwrap();
    assert!(page.contains(t.org.as_str()), "the organization is listed");
    // The test organization's 1,000 credits, with their USD value beside.
    assert!(page.contains("1000") && page.contains("$5.00"), "{page}");
    for path in ["/operator/orders", "/operator/plans", "/operator/prices"] {
        assert_eq!(c.get(path).await.status(), StatusCode::OK, "{path}");
    }

    // Signing out ends the session on the server: the old cookie no longer opens a page.
    let out = c.post("/operator/sign-out", &[]).await;
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    let after = c.get("/operator").await;
    assert_eq!(after.headers()[LOCATION], "/operator/sign-in");
}

async fn a_form_without_the_csrf_token_changes_nothing(setup: Setup) {
    let t = TestApp::spawn_with(setup).await;
    let c = Console::sign_in(&t).await;
    let before = t.balance().await;
    let path = format!("/operator/organizations/{}/grants", t.org);
    let grant = [
        ("amount", "250"),
        ("category", "granted"),
        ("reference", "csrf-1"),
    ];
    let none = c.post_raw(&path, &grant).await;
    assert_eq!(none.status(), StatusCode::FORBIDDEN);
    let mut forged = grant.to_vec();
    forged.push(("csrf_token", "0000"));
    assert_eq!(
        c.post_raw(&path, &forged).await.status(),
        StatusCode::FORBIDDEN
    );
    // Without the cookie, the token alone is nothing either.
    let mut with_token = grant.to_vec();
    with_token.push(("csrf_token", &c.csrf));
    let anonymous = client()
        .post(t.url(&path))
        .form(&with_token)
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(t.balance().await.posted, before.posted);
}

async fn a_grant_through_the_form_changes_the_balance_once(setup: Setup) {
    let t = TestApp::spawn_with(setup).await;
    let c = Console::sign_in(&t).await;
    let before = t.balance().await;
    let path = format!("/operator/organizations/{}/grants", t.org);
    let grant = [
        ("amount", "250.5"),
        ("category", "granted"),
        ("reference", "welcome-1"),
    ];
    let r = c.post(&path, &grant).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let back = format!("/operator/organizations/{}?done=grant", t.org);
    assert_eq!(r.headers()[LOCATION], back.as_str());
    let after = t.balance().await;
    assert_eq!(
        after.posted,
        before.posted.checked_add(credits("250.5")).unwrap()
    );
    let page = c.get(&back).await.text().await.unwrap();
    assert!(page.contains("Credits granted."), "{page}");

    // The same reference again (a double click, a reload) grants nothing more.
    assert_eq!(c.post(&path, &grant).await.status(), StatusCode::SEE_OTHER);
    assert_eq!(t.balance().await.posted, after.posted);

    // A bad amount is said next to the field and changes nothing.
    let bad = [
        ("amount", "-3"),
        ("category", "granted"),
        ("reference", "welcome-2"),
    ];
    let r = c.post(&path, &bad).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let page = r.text().await.unwrap();
    assert!(page.contains("aria-invalid=\"true\""), "{page}");
    assert_eq!(t.balance().await.posted, after.posted);
}

async fn a_manual_payment_through_the_form_credits_once_and_refunds(setup: Setup) {
    let t = TestApp::spawn_with(setup).await;
    let c = Console::sign_in(&t).await;
    let before = t.balance().await;
    let path = format!("/operator/organizations/{}/payments", t.org);
    let paid = [
        ("method", "bank_transfer"),
        ("reference", "wire-2026-001"),
        ("amount", "12.50"),
        ("plan_id", ""),
        ("credits", "2500"),
    ];
    assert_eq!(c.post(&path, &paid).await.status(), StatusCode::SEE_OTHER);
    assert_eq!(c.post(&path, &paid).await.status(), StatusCode::SEE_OTHER);
    let after = t.balance().await;
    assert_eq!(
        after.posted,
        before.posted.checked_add(credits("2500")).unwrap()
    );

    let orders = c
        .get("/operator/orders?provider=manual")
        .await
        .text()
        .await
        .unwrap();
    let at = orders
        .find("data-order=\"")
        .expect("the manual order is listed");
    let id = &orders[at + 12..at + 12 + orders[at + 12..].find('"').unwrap()];
    assert!(
        orders.contains("$12.50") && orders.contains("credited"),
        "{orders}"
    );
    let refund = c
        .post(&format!("/operator/orders/{id}/refund"), &[("credits", "")])
        .await;
    assert_eq!(refund.status(), StatusCode::SEE_OTHER);
    assert_eq!(t.balance().await.posted, before.posted);
    // A second refund has nothing left to take: said on the page, nothing moves.
    let again = c.post(&format!("/operator/orders/{id}/refund"), &[]).await;
    assert!(again.status().is_client_error(), "{}", again.status());
    assert_eq!(t.balance().await.posted, before.posted);
}

on_both_databases!(
    the_operator_key_signs_in_and_is_never_the_cookie,
    a_form_without_the_csrf_token_changes_nothing,
    a_grant_through_the_form_changes_the_balance_once,
    a_manual_payment_through_the_form_credits_once_and_refunds,
);
