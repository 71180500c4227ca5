//! The dashboard over real HTTP (`docs/dashboard.md`): security headers, the session cookie of
//! the sign-in form, CSRF refusals, what each role is shown, and the live balance stream.

use std::time::Duration;

use creditgate_core::accounts::Role;
use creditgate_gateway::dashboard::assets::ASSET_VERSION;
use futures_util::StreamExt;
use reqwest::header::{CONTENT_TYPE, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;

use crate::accounts::{add_member, member, PASSWORD};
use crate::helpers::{body, Setup, TestApp};

const OWNER: &str = "owner@example.com";

/// A browser that does not follow redirects, so each answer is seen as sent.
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap()
}

/// What a page answered.
pub struct Page {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub html: String,
}

/// `GET path` with the session cookie (if any).
pub async fn get_page(t: &TestApp, path: &str, cookie: Option<&str>) -> Page {
    let mut req = browser().get(t.url(path));
    if let Some(c) = cookie {
        req = req.header("cookie", format!("cg_session={c}"));
    }
    read(req.send().await.unwrap()).await
}

/// A form post with the session cookie (if any).
pub async fn post_form(
    t: &TestApp,
    path: &str,
    cookie: Option<&str>,
    fields: &[(&str, &str)],
) -> Page {
    let encoded: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish();
    let mut req = browser()
        .post(t.url(path))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(encoded);
    if let Some(c) = cookie {
        req = req.header("cookie", format!("cg_session={c}"));
    }
    read(req.send().await.unwrap()).await
}

async fn read(r: reqwest::Response) -> Page {
    Page {
        status: r.status().as_u16(),
        headers: r.headers().clone(),
        html: r.text().await.unwrap(),
    }
}

/// Signs in through the dashboard's form; answers the session cookie.
pub async fn sign_in_form(t: &TestApp, email: &str) -> String {
    let p = post_form(
        t,
        "/sign-in",
        None,
        &[("email", email), ("password", PASSWORD)],
    )
    .await;
    assert_eq!(p.status, 303, "{}", p.html);
    assert_eq!(p.headers[LOCATION], "/");
    let set = p.headers[SET_COOKIE].to_str().unwrap().to_owned();
    for flag in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(set.contains(flag), "{set}");
    }
    assert!(!set.contains("Secure"), "plain HTTP on loopback: {set}");
    let cookie = set.split(';').next().unwrap();
    cookie.strip_prefix("cg_session=").unwrap().to_owned()
}

/// The CSRF token a page's forms carry.
pub fn csrf_of(html: &str) -> String {
    let at = html
        .find("name=\"csrf_token\" value=\"")
        .expect("a form with the token");
    let rest = &html[at + "name=\"csrf_token\" value=\"".len()..];
    rest[..rest.find('"').unwrap()].to_owned()
}

fn assert_secure(p: &Page) {
    let csp = p.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'self'"), "{csp}");
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(!csp.contains("unsafe"), "{csp}");
    assert_eq!(p.headers["x-frame-options"], "DENY");
    assert_eq!(p.headers["x-content-type-options"], "nosniff");
}

async fn pages_carry_a_strict_csp_and_refuse_framing(setup: Setup) {
    let t = TestApp::spawn_with(setup).await;
    add_member(&t, &t.org, OWNER, Role::Owner).await;
    let sign_in = get_page(&t, "/sign-in", None).await;
    assert_eq!(sign_in.status, 200);
    assert_secure(&sign_in);
    assert!(sign_in.html.contains("<label for=\"email\">"));
    // No inline script or style anywhere: the policy would block it.
    assert!(!sign_in.html.contains("<style"));
    assert!(!sign_in.html.contains(" style="));
    let anonymous = get_page(&t, "/", None).await;
    assert_eq!(anonymous.status, 303);
    assert_eq!(anonymous.headers[LOCATION], "/sign-in");
    let cookie = sign_in_form(&t, OWNER).await;
    let overview = get_page(&t, "/", Some(&cookie)).await;
    assert_eq!(overview.status, 200, "{}", overview.html);
    assert_secure(&overview);
    assert_eq!(overview.headers["cache-control"], "no-store");
    assert!(
        overview.html.contains("data-testid=\"balance\">1000<"),
        "{}",
        overview.html
    );
    assert!(overview.html.contains("$5.00"), "1000 credits at $0.005");
    for script in overview.html.split("<script").skip(1) {
        assert!(script.contains("src=\"/assets/"), "inline script: {script}");
    }
}

async fn a_bad_password_changes_nothing_and_says_so(setup: Setup) {
    let t = TestApp::spawn_with(setup).await;
    add_member(&t, &t.org, OWNER, Role::Owner).await;
    let p = post_form(
        &t,
        "/sign-in",
        None,
        &[("email", OWNER), ("password", "wrong <b>")],
    )
    .await;
    assert_eq!(p.status, 401);
    assert!(p.headers.get(SET_COOKIE).is_none());
    assert!(p.html.contains("Wrong email or password."), "{}", p.html);
    assert!(
        p.html.contains("value=\"owner@example.com\""),
        "the email is kept"
    );
}

async fn forms_without_the_csrf_token_are_refused(setup: Setup) {
    let t = TestApp::spawn_with(setup).await;
    add_member(&t, &t.org, OWNER, Role::Owner).await;
    let cookie = sign_in_form(&t, OWNER).await;
    let refused = post_form(&t, "/sign-out", Some(&cookie), &[]).await;
    assert_eq!(refused.status, 403, "{}", refused.html);
    assert!(refused.html.contains("x-csrf-token"), "{}", refused.html);
    let forged = post_form(&t, "/sign-out", Some(&cookie), &[("csrf_token", "f00")]).await;
    assert_eq!(forged.status, 403);
    let overview = get_page(&t, "/", Some(&cookie)).await;
    assert_eq!(overview.status, 200, "the session survived both");
    let token = csrf_of(&overview.html);
    let out = post_form(&t, "/sign-out", Some(&cookie), &[("csrf_token", &token)]).await;
    assert_eq!(out.status, 303);
    assert_eq!(out.headers[LOCATION], "/sign-in");
    assert!(out.headers[SET_COOKIE]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    let after = get_page(&t, "/", Some(&cookie)).await;
    assert_eq!(after.status, 303, "signed out");
}

async fn a_user_sees_no_billing_actions(setup: Setup) {
    let t = TestApp::spawn_with(setup).await;
    add_member(&t, &t.org, OWNER, Role::Owner).await;
    add_member(&t, &t.org, "user@example.com", Role::User).await;
    let owner = get_page(&t, "/", Some(&sign_in_form(&t, OWNER).await)).await;
    assert!(owner.html.contains("href=\"/buy\""));
    let user = get_page(&t, "/", Some(&sign_in_form(&t, "user@example.com").await)).await;
    assert_eq!(user.status, 200);
    assert!(!user.html.contains("href=\"/buy\""), "{}", user.html);
    assert!(!user.html.contains("href=\"/payment-methods\""));
    assert!(
        user.html.contains("Ask an owner, admin or billing member")
            || user.html.contains("data-testid=\"lots\"")
    );
}

async fn the_live_balance_shows_a_charge_within_a_second(setup: Setup) {
    let t = TestApp::spawn_with(setup).await;
    let signed = member(&t, OWNER, Role::Owner).await;
    let stream = browser()
        .get(t.url("/live/balance"))
        .header("cookie", format!("cg_session={}", signed.cookie))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    assert_eq!(stream.headers()[CONTENT_TYPE], "text/event-stream");
    let mut chunks: Chunks = Box::pin(stream.bytes_stream());
    let mut seen = String::new();
    let first = next_balance(&mut chunks, &mut seen).await;
    assert!(first.contains("\"available\":\"1000\""), "{first}");
    let r = t.message(&body(64, "output_tokens=20")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let after = next_balance(&mut chunks, &mut seen).await;
    assert!(!after.contains("\"available\":\"1000\""), "{after}");
    // As the gateway shows it (with a credit lease, the lease's unused part is not held).
    let charged = t.balance().await;
    assert!(
        after.contains(&format!("\"available\":\"{}\"", charged.available)),
        "{after}"
    );
}

type Chunks =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>;

/// The next `balance` event of a stream, within a second.
async fn next_balance(chunks: &mut Chunks, seen: &mut String) -> String {
    loop {
        if let Some(end) = seen.find("\n\n") {
            let event: String = seen.drain(..end + 2).collect();
            if event.contains("event: balance") {
                return event;
            }
            continue;
        }
        let chunk = tokio::time::timeout(Duration::from_secs(1), chunks.next())
            .await
            .expect("an event within a second")
            .expect("the stream goes on")
            .unwrap();
        seen.push_str(std::str::from_utf8(&chunk).unwrap());
    }
}

async fn an_owner_buys_a_pack_through_the_sandbox_and_sees_the_order(setup: Setup) {
    let t = TestApp::spawn_with(Setup {
        extra_toml: "[payments]\nserved_countries = [\"FR\", \"US\"]\n".to_owned(),
        ..setup
    })
    .await;
    add_member(&t, &t.org, OWNER, Role::Owner).await;
    let cookie = sign_in_form(&t, OWNER).await;
    let buy = get_page(&t, "/buy", Some(&cookie)).await;
    assert_eq!(buy.status, 200, "{}", buy.html);
    assert!(buy.html.contains("value=\"credits-10000\""), "{}", buy.html);
    let token = csrf_of(&buy.html);
    // No country yet: refused, said on the page, nothing ordered.
    let refused = post_form(
        &t,
        "/buy",
        Some(&cookie),
        &[("csrf_token", &token), ("plan_id", "credits-10000")],
    )
    .await;
    assert_eq!(refused.status, 400, "{}", refused.html);
    assert!(
        refused.html.contains("data-testid=\"buy-error\""),
        "{}",
        refused.html
    );
    let none = get_page(&t, "/orders", Some(&cookie)).await;
    assert!(none.html.contains("No orders yet."), "{}", none.html);
    let bad = post_form(
        &t,
        "/billing-profile",
        Some(&cookie),
        &[
            ("csrf_token", &token),
            ("name", "Acme"),
            ("country", "Atlantis"),
        ],
    )
    .await;
    assert_eq!(bad.status, 400, "{}", bad.html);
    assert!(
        bad.html.contains("id=\"country-error\""),
        "the error is next to the field: {}",
        bad.html
    );
    let saved = post_form(
        &t,
        "/billing-profile",
        Some(&cookie),
        &[("csrf_token", &token), ("name", "Acme"), ("country", "FR")],
    )
    .await;
    assert_eq!(saved.status, 200, "{}", saved.html);
    assert!(saved.html.contains("Billing profile saved."));
    let go = post_form(
        &t,
        "/buy",
        Some(&cookie),
        &[("csrf_token", &token), ("plan_id", "credits-10000")],
    )
    .await;
    assert_eq!(go.status, 303, "{}", go.html);
    let checkout = go.headers[LOCATION].to_str().unwrap().to_owned();
    assert!(checkout.contains("/sandbox/checkout/"), "{checkout}");
    let paid = browser()
        .post(&checkout)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body("card=4242424242424242")
        .send()
        .await
        .unwrap();
    assert_eq!(paid.status(), 303);
    assert_eq!(paid.headers()[LOCATION], t.url("/orders"));
    let orders = get_page(&t, "/orders", Some(&cookie)).await;
    assert!(orders.html.contains("credited"), "{}", orders.html);
    assert!(orders.html.contains(">Receipt<"), "{}", orders.html);
    let overview = get_page(&t, "/", Some(&cookie)).await;
    assert!(
        overview.html.contains("data-testid=\"balance\">11000<"),
        "{}",
        overview.html
    );
}

async fn a_developer_creates_limits_disables_and_revokes_a_key(setup: Setup) {
    let t = TestApp::spawn_with(setup).await;
    add_member(&t, &t.org, "dev@example.com", Role::Developer).await;
    add_member(&t, &t.org, "user@example.com", Role::User).await;
    let cookie = sign_in_form(&t, "dev@example.com").await;
    let keys = get_page(&t, "/keys", Some(&cookie)).await;
    assert!(
        keys.html.contains("<label for=\"name\">Name</label>"),
        "{}",
        keys.html
    );
    let token = csrf_of(&keys.html);
    let empty = post_form(
        &t,
        "/keys",
        Some(&cookie),
        &[("csrf_token", &token), ("name", "")],
    )
    .await;
    assert_eq!(empty.status, 400, "{}", empty.html);
    assert!(!empty.html.contains("data-testid=\"secret\""));
    let made = post_form(
        &t,
        "/keys",
        Some(&cookie),
        &[
            ("csrf_token", &token),
            ("name", "ci <bot>"),
            ("spend_monthly", "50"),
        ],
    )
    .await;
    assert_eq!(made.status, 200, "{}", made.html);
    assert!(
        made.html.contains("ci &#60;bot&#62;") || made.html.contains("ci &lt;bot&gt;"),
        "escaped: {}",
        made.html
    );
    let marker = "data-testid=\"secret\">";
    let at = made.html.find(marker).unwrap();
    let secret = &made.html[at + marker.len()..];
    let secret = &secret[..secret.find('<').unwrap()];
    assert!(secret.starts_with("sk-cg-"), "{secret}");
    assert!(made.html.contains("data-copy=\"new-secret\""));
    assert!(made.html.contains("monthly 50"), "{}", made.html);
    let again = get_page(&t, "/keys", Some(&cookie)).await;
    assert!(!again.html.contains(secret), "shown once");
    let id_at = again.html.find("data-testid=\"key-key_").unwrap() + "data-testid=\"key-".len();
    let id = &again.html[id_at..];
    let id = id[..id.find('"').unwrap()].to_owned();
    let path = format!("/keys/{id}");
    let limited = post_form(
        &t,
        &path,
        Some(&cookie),
        &[
            ("csrf_token", &token),
            ("action", "limits"),
            ("spend_daily", "5"),
            ("spend_monthly", ""),
        ],
    )
    .await;
    assert_eq!(limited.status, 200, "{}", limited.html);
    assert!(limited.html.contains("Limits saved."));
    assert!(
        limited
            .html
            .contains("id=\"spend_daily\" name=\"spend_daily\" inputmode=\"decimal\" value=\"5\""),
        "{}",
        limited.html
    );
    let bad = post_form(
        &t,
        &path,
        Some(&cookie),
        &[
            ("csrf_token", &token),
            ("action", "limits"),
            ("spend_daily", "-1"),
        ],
    )
    .await;
    assert_eq!(bad.status, 400, "{}", bad.html);
    for (action, status) in [
        ("disable", "inactive"),
        ("enable", "active"),
        ("revoke", "archived"),
    ] {
        let done = post_form(
            &t,
            &path,
            Some(&cookie),
            &[("csrf_token", &token), ("action", action)],
        )
        .await;
        assert_eq!(done.status, 303, "{action}: {}", done.html);
        let shown = get_page(&t, &path, Some(&cookie)).await;
        assert!(
            shown
                .html
                .contains(&format!("data-testid=\"key-status\">{status}<")),
            "{action}"
        );
    }
    let audit = get_page(&t, "/audit", Some(&cookie)).await;
    assert_eq!(audit.status, 200, "{}", audit.html);
    assert!(
        audit.html.contains("<code>api_key.created</code>"),
        "{}",
        audit.html
    );
    let user = sign_in_form(&t, "user@example.com").await;
    let seen = get_page(&t, "/keys", Some(&user)).await;
    assert!(!seen.html.contains("Create key"), "{}", seen.html);
    let token = csrf_of(&seen.html);
    let refused = post_form(
        &t,
        "/keys",
        Some(&user),
        &[("csrf_token", &token), ("name", "sneaky")],
    )
    .await;
    assert_eq!(refused.status, 403, "{}", refused.html);
}

async fn assets_are_embedded_and_cached_for_a_year(setup: Setup) {
    let t = TestApp::spawn_with(setup).await;
    let css = format!("/assets/app.v{ASSET_VERSION}.css");
    let js = format!("/assets/app.v{ASSET_VERSION}.js");
    let page = get_page(&t, "/sign-in", None).await;
    assert!(
        page.html.contains(&css) && page.html.contains(&js),
        "{}",
        page.html
    );
    for (path, mime) in [
        (css.as_str(), "text/css"),
        (js.as_str(), "text/javascript"),
        ("/assets/vendor/htmx-2.0.11.min.js", "text/javascript"),
        ("/assets/vendor/uPlot-1.6.32.iife.min.js", "text/javascript"),
        ("/assets/vendor/htmx.LICENSE", "text/plain"),
    ] {
        let p = get_page(&t, path, None).await;
        assert_eq!(p.status, 200, "{path}");
        assert!(
            p.headers[CONTENT_TYPE].to_str().unwrap().starts_with(mime),
            "{path}"
        );
        assert!(p.headers["cache-control"]
            .to_str()
            .unwrap()
            .contains("max-age=31536000"));
        assert!(!p.html.is_empty());
    }
    assert_eq!(
        get_page(&t, "/assets/../Cargo.toml", None).await.status,
        404
    );
    assert_eq!(get_page(&t, "/assets/nothing.js", None).await.status, 404);
    // An older version's name is not served the new bytes under a year-long cache.
    assert_eq!(get_page(&t, "/assets/app.v1.js", None).await.status, 404);
}

crate::on_both_databases!(
    pages_carry_a_strict_csp_and_refuse_framing,
    a_bad_password_changes_nothing_and_says_so,
    forms_without_the_csrf_token_are_refused,
    a_user_sees_no_billing_actions,
    the_live_balance_shows_a_charge_within_a_second,
    assets_are_embedded_and_cached_for_a_year,
    an_owner_buys_a_pack_through_the_sandbox_and_sees_the_order,
    a_developer_creates_limits_disables_and_revokes_a_key,
);
