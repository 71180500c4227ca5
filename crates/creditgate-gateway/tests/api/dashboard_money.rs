//! The dashboard's money pages over real HTTP (`docs/dashboard.md`): usage and cost, cache,
//! auto-reload, payment methods and key usage — what each role sees, CSRF refusals, the
//! security headers, empty states and the CSV downloads.

use creditgate_core::accounts::Role;
use reqwest::header::{CONTENT_TYPE, LOCATION};

use crate::accounts::add_member;
use crate::dashboard::{browser, csrf_of, get_page, post_form, sign_in_form, Page};
use crate::helpers::{body, Setup, TestApp};

const OWNER: &str = "owner@example.com";

fn assert_strict(p: &Page) {
    let csp = p.headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe"),
        "{csp}"
    );
    assert_eq!(p.headers["x-frame-options"], "DENY");
    // Chart data travels in JSON blocks the browser never runs; every other script is a file.
    for script in p.html.split("<script").skip(1) {
        assert!(
            script.contains("src=\"/assets/") || script.starts_with(" type=\"application/json\""),
            "inline script: {script}"
        );
    }
}

/// Today (UTC) as `YYYY-MM-DD` on the app's clock.
fn today(t: &TestApp) -> String {
    t.app.clock.now().to_rfc3339()[..10].to_owned()
}

async fn the_usage_page_shows_spend_by_day_model_and_key_with_csv(setup: Setup) {
    let t = TestApp::spawn_with(setup).await;
    add_member(&t, &t.org, OWNER, Role::Owner).await;
    let cookie = sign_in_form(&t, OWNER).await;
    let empty = get_page(&t, "/usage", Some(&cookie)).await;
    assert_eq!(empty.status, 200, "{}", empty.html);
    assert_strict(&empty);
    assert!(
        empty.html.contains("data-testid=\"usage-empty\""),
        "{}",
        empty.html
    );
    assert!(empty.html.contains("aria-current=\"page\">Usage<"));

    let reply = t.message(&body(64, "")).await;
    assert_eq!(reply.status, 200);
    let charged = reply.charged();
    let p = get_page(&t, "/usage", Some(&cookie)).await;
    assert_eq!(p.status, 200, "{}", p.html);
    assert!(!p.html.contains("data-testid=\"usage-empty\""));
    let row = format!("<tr data-day=\"{}\">", today(&t));
    let at = p.html.find(&row).expect("today's row");
    let today_row = &p.html[at..at + p.html[at..].find("</tr>").unwrap()];
    assert!(
        today_row.contains(&format!("data-testid=\"day-credits\">{charged} ")),
        "{today_row} vs {charged}"
    );
    assert!(p
        .html
        .contains(&format!("data-testid=\"usage-total\">{charged}<")));
    assert!(
        p.html.contains(&format!(">{}</a>", t.key.name)),
        "the key by name"
    );
    assert!(
        p.html.contains("id=\"chart-days\""),
        "the chart's data block"
    );

    // The CSV link is the report route itself, read with the session cookie.
    let at = p.html.find("data-testid=\"csv-usage\"").unwrap();
    let href_at = p.html[..at].rfind("href=\"").unwrap() + 6;
    let href = p.html[href_at..]
        .split('"')
        .next()
        .unwrap()
        .replace("&#38;", "&")
        .replace("&amp;", "&");
    let csv = browser()
        .get(t.url(&href))
        .header("cookie", format!("cg_session={cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(csv.status(), 200);
    let kind = csv.headers()[CONTENT_TYPE].to_str().unwrap().to_owned();
    let text = csv.text().await.unwrap();
    assert!(kind.starts_with("text/csv"), "{href}: {kind} {text}");
    assert!(text.starts_with("starting_at,ending_at"), "{text}");
    assert!(text.contains(&charged.to_string()), "{text}");
}

async fn a_bad_usage_range_is_shown_beside_its_field(setup: Setup) {
    let t = TestApp::spawn_with(setup).await;
    add_member(&t, &t.org, OWNER, Role::Owner).await;
    let cookie = sign_in_form(&t, OWNER).await;
    let p = get_page(&t, "/usage?from=yesterday&to=", Some(&cookie)).await;
    assert_eq!(p.status, 400);
    assert!(p.html.contains("id=\"from-error\""), "{}", p.html);
    assert!(p.html.contains("value=\"yesterday\""), "the input is kept");
    let p = get_page(&t, "/usage?from=2026-01-01&to=2026-03-01", Some(&cookie)).await;
    assert_eq!(p.status, 400, "{}", p.html);
    assert!(p.html.contains("id=\"to-error\""), "{}", p.html);
    let p = get_page(&t, "/usage?from=2026-03-01&to=2026-02-01", Some(&cookie)).await;
    assert_eq!(p.status, 400);
    assert!(p.html.contains("id=\"to-error\""));
    assert_eq!(get_page(&t, "/usage", None).await.status, 303, "signed out");
}

/// Adds a card through the page and the sandbox's form; answers the card's row id.
async fn add_card(t: &TestApp, cookie: &str, card: &str) -> String {
    let p = get_page(t, "/payment-methods", Some(cookie)).await;
    let token = csrf_of(&p.html);
    let started = post_form(
        t,
        "/payment-methods",
        Some(cookie),
        &[("csrf_token", &token)],
    )
    .await;
    assert_eq!(started.status, 303, "{}", started.html);
    let setup = started.headers[LOCATION].to_str().unwrap().to_owned();
    assert!(setup.contains("/sandbox/setup/"), "{setup}");
    let path = &setup[setup.find("/sandbox/").unwrap()..];
    let saved = post_form(t, path, None, &[("card", card)]).await;
    assert_eq!(saved.status, 200, "{}", saved.html);
    assert!(
        saved.html.contains("href=\"/payment-methods\""),
        "a way back"
    );
    path.rsplit('/').next().unwrap().to_owned()
}

async fn payment_methods_are_added_through_the_sandbox_and_removed(setup: Setup) {
    let t = TestApp::spawn_with(setup).await;
    add_member(&t, &t.org, OWNER, Role::Owner).await;
    add_member(&t, &t.org, "user@example.com", Role::User).await;
    let cookie = sign_in_form(&t, OWNER).await;
    let empty = get_page(&t, "/payment-methods", Some(&cookie)).await;
    assert_eq!(empty.status, 200);
    assert_strict(&empty);
    assert!(
        empty.html.contains("data-testid=\"cards-empty\""),
        "{}",
        empty.html
    );
    let refused = post_form(&t, "/payment-methods", Some(&cookie), &[]).await;
    assert_eq!(refused.status, 403, "no CSRF token: {}", refused.html);
    assert!(
        t.app.db.payment_methods(&t.org).await.unwrap().is_empty(),
        "nothing started"
    );

    let id = add_card(&t, &cookie, "4242 4242 4242 4242").await;
    let p = get_page(&t, "/payment-methods", Some(&cookie)).await;
    assert!(p.html.contains("data-testid=\"last4\">4242<"), "{}", p.html);
    assert!(p.html.contains("12/2034"));

    let user = sign_in_form(&t, "user@example.com").await;
    let seen = get_page(&t, "/payment-methods", Some(&user)).await;
    assert_eq!(seen.status, 200);
    assert!(seen.html.contains(">4242<"), "any member reads");
    assert!(!seen.html.contains("Add a card") && !seen.html.contains("/remove\""));
    let token = csrf_of(&seen.html);
    let remove = format!("/payment-methods/{id}/remove");
    let denied = post_form(&t, &remove, Some(&user), &[("csrf_token", &token)]).await;
    assert_eq!(denied.status, 403, "{}", denied.html);

    let token = csrf_of(&p.html);
    let forged = post_form(&t, &remove, Some(&cookie), &[("csrf_token", "f00")]).await;
    assert_eq!(forged.status, 403);
    let removed = post_form(&t, &remove, Some(&cookie), &[("csrf_token", &token)]).await;
    assert_eq!(removed.status, 303, "{}", removed.html);
    let p = get_page(&t, "/payment-methods?done=removed", Some(&cookie)).await;
    assert!(p.html.contains("data-testid=\"card-removed\""));
    assert!(p.html.contains("data-testid=\"cards-empty\""), "{}", p.html);
}

async fn auto_reload_takes_the_recommended_values_in_one_click(setup: Setup) {
    let t = TestApp::spawn_with(setup).await;
    add_member(&t, &t.org, OWNER, Role::Owner).await;
    add_member(&t, &t.org, "dev@example.com", Role::Developer).await;
    let cookie = sign_in_form(&t, OWNER).await;
    let p = get_page(&t, "/auto-reload", Some(&cookie)).await;
    assert_eq!(p.status, 200, "{}", p.html);
    assert_strict(&p);
    assert!(
        p.html.contains("data-testid=\"reload-status\">off<"),
        "{}",
        p.html
    );
    assert!(p.html.contains("data-testid=\"no-recommendation\""));
    assert!(p.html.contains("data-testid=\"reload-no-card\""));

    // A blank field is named beside it; the service's refusal too; nothing is saved.
    let token = csrf_of(&p.html);
    let blank = [
        ("csrf_token", token.as_str()),
        ("enabled", "on"),
        ("threshold", ""),
        ("plan_id", "credits-1000"),
        ("monthly_limit", "5000"),
    ];
    let r = post_form(&t, "/auto-reload", Some(&cookie), &blank).await;
    assert_eq!(r.status, 400);
    assert!(r.html.contains("id=\"threshold-error\""), "{}", r.html);
    let no_card = [
        ("csrf_token", token.as_str()),
        ("enabled", "on"),
        ("threshold", "100"),
        ("plan_id", "credits-1000"),
        ("monthly_limit", "5000"),
    ];
    let r = post_form(&t, "/auto-reload", Some(&cookie), &no_card).await;
    assert_eq!(r.status, 400);
    assert!(r.html.contains("id=\"payment_method-error\""), "{}", r.html);
    assert!(r.html.contains("value=\"100\""), "what was typed is kept");
    let forged = post_form(&t, "/auto-reload", Some(&cookie), &no_card[1..]).await;
    assert_eq!(forged.status, 403);
    assert!(t.app.db.auto_reload(&t.org).await.unwrap().is_none());

    assert_eq!(t.message(&body(64, "")).await.status, 200);
    add_card(&t, &cookie, "4242424242424242").await;
    let p = get_page(&t, "/auto-reload", Some(&cookie)).await;
    assert!(
        p.html.contains("data-testid=\"recommendation\""),
        "{}",
        p.html
    );
    let dev = get_page(
        &t,
        "/auto-reload",
        Some(&sign_in_form(&t, "dev@example.com").await),
    )
    .await;
    assert!(
        dev.html.contains("data-testid=\"recommendation\""),
        "any member reads"
    );
    assert!(!dev.html.contains("use-recommended") && !dev.html.contains("action=\"/auto-reload\""));

    // The one-click form carries the recommended values as they are shown.
    let at = p.html.find("data-testid=\"use-recommended\"").unwrap();
    let form = &p.html[p.html[..at].rfind("<form").unwrap()..at];
    let value = |name: &str| {
        let at = form.find(&format!("name=\"{name}\" value=\"")).unwrap() + name.len() + 15;
        form[at..].split('"').next().unwrap().to_owned()
    };
    let fields = [
        ("csrf_token", token.clone()),
        ("enabled", value("enabled")),
        ("threshold", value("threshold")),
        ("plan_id", value("plan_id")),
        ("monthly_limit", value("monthly_limit")),
    ];
    let pairs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = post_form(&t, "/auto-reload", Some(&cookie), &pairs).await;
    assert_eq!(r.status, 303, "{}", r.html);
    let p = get_page(&t, "/auto-reload?saved=1", Some(&cookie)).await;
    assert!(
        p.html.contains("data-testid=\"reload-status\">active<"),
        "{}",
        p.html
    );
    let saved = t.app.db.auto_reload(&t.org).await.unwrap().unwrap();
    assert_eq!(saved.threshold.to_string(), value("threshold"));
    assert_eq!(saved.plan_id.as_deref(), Some(value("plan_id").as_str()));
    assert_eq!(saved.monthly_limit.to_string(), value("monthly_limit"));
}

async fn a_key_page_shows_its_usage_against_its_limits(setup: Setup) {
    let t = TestApp::spawn_with(setup).await;
    add_member(&t, &t.org, OWNER, Role::Owner).await;
    let cookie = sign_in_form(&t, OWNER).await;
    let path = format!("/keys/{}", t.key.id);
    let p = get_page(&t, &path, Some(&cookie)).await;
    assert_eq!(p.status, 200, "{}", p.html);
    assert_strict(&p);
    let token = csrf_of(&p.html);
    let fields = [
        ("csrf_token", token.as_str()),
        ("action", "limits"),
        ("spend_daily", "100"),
    ];
    let set = post_form(&t, &path, Some(&cookie), &fields).await;
    assert_eq!(set.status, 200, "{}", set.html);
    let reply = t.message(&body(64, "")).await;
    assert_eq!(reply.status, 200);
    let charged = reply.charged();
    let p = get_page(&t, &path, Some(&cookie)).await;
    let at = p
        .html
        .find("<tr data-period=\"daily\">")
        .expect("the daily row");
    let daily = &p.html[at..at + p.html[at..].find("</tr>").unwrap()];
    assert!(
        daily.contains(&format!("data-testid=\"spent\">{charged} ")),
        "{daily}"
    );
    let left = creditgate_core::money::NanoCredits::from_credits(100)
        .unwrap()
        .checked_sub(charged)
        .unwrap();
    assert!(
        daily.contains(&format!("data-testid=\"left\">{left}<")),
        "{daily}"
    );
    assert!(daily.contains("<meter min=\"0\" max=\"100\""), "{daily}");
    let at = p.html.find("<tr data-period=\"weekly\">").unwrap();
    let weekly = &p.html[at..at + p.html[at..].find("</tr>").unwrap()];
    assert!(
        weekly.contains(">none<") && !weekly.contains("<meter"),
        "{weekly}"
    );
}

/// A request whose long system prompt is marked for caching: the first writes, a repeat reads.
fn cached() -> serde_json::Value {
    let text: Vec<String> = (0..1500).map(|i| format!("w{}", i % 97)).collect();
    let mut b = body(64, "output_tokens=8");
    b["system"] = serde_json::json!([{"type": "text", "text": text.join(" "),
                                      "cache_control": {"type": "ephemeral"}}]);
    b
}

fn testid<'a>(html: &'a str, id: &str) -> &'a str {
    let at = html.find(&format!("data-testid=\"{id}\">")).expect(id) + id.len() + 15;
    &html[at..at + html[at..].find('<').unwrap()]
}

async fn the_cache_page_shows_savings_and_waste(setup: Setup) {
    let t = TestApp::spawn_with(setup).await;
    add_member(&t, &t.org, OWNER, Role::Owner).await;
    let cookie = sign_in_form(&t, OWNER).await;
    let empty = get_page(&t, "/cache", Some(&cookie)).await;
    assert_eq!(empty.status, 200, "{}", empty.html);
    assert_strict(&empty);
    assert!(
        empty.html.contains("data-testid=\"cache-empty\""),
        "{}",
        empty.html
    );
    assert_eq!(testid(&empty.html, "cache-saved"), "0");

    for _ in 0..2 {
        assert_eq!(t.message(&cached()).await.status, 200);
    }
    let p = get_page(&t, "/cache", Some(&cookie)).await;
    assert_eq!(p.status, 200, "{}", p.html);
    assert!(
        !p.html.contains("data-testid=\"cache-empty\""),
        "{}",
        p.html
    );
    assert!(p.html.contains("id=\"chart-cache\""));
    // The page's total is the cache report's, read by the same member.
    let input = "name=\"from\" type=\"date\" value=\"";
    let from = &p.html[p.html.find(input).unwrap() + input.len()..][..10];
    let report: serde_json::Value = browser()
        .get(t.url(&format!(
            "/v1/organizations/cache_report?starting_at={from}&limit=31"
        )))
        .header("cookie", format!("cg_session={cookie}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut saved = creditgate_core::money::NanoCredits::ZERO;
    for b in report["data"].as_array().unwrap() {
        for r in b["results"].as_array().unwrap() {
            let s: creditgate_core::money::NanoCredits =
                r["saved_by_reads"].as_str().unwrap().parse().unwrap();
            saved = saved.checked_add(s).unwrap();
        }
    }
    assert!(saved.is_positive(), "{from}: {report}");
    assert_eq!(testid(&p.html, "cache-saved"), saved.to_string());
    let at = p.html.find("data-testid=\"csv-cache\"").unwrap();
    let href_at = p.html[..at].rfind("href=\"").unwrap() + 6;
    let href = p.html[href_at..]
        .split('"')
        .next()
        .unwrap()
        .replace("&#38;", "&")
        .replace("&amp;", "&");
    let csv = browser()
        .get(t.url(&href))
        .header("cookie", format!("cg_session={cookie}"))
        .send()
        .await
        .unwrap();
    assert!(csv.headers()[CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let bad = get_page(&t, "/cache?from=2026-02-30", Some(&cookie)).await;
    assert_eq!(bad.status, 400);
    assert!(bad.html.contains("id=\"from-error\""), "{}", bad.html);
}

/// Saving a card through Stripe's setup page comes back to the dashboard's payment methods (not
/// to a JSON route), where the saved card is listed.
async fn a_card_saved_at_stripe_comes_back_to_the_payment_methods_page(setup: Setup) {
    let (t, fake) = crate::payments::stripe_buyer_on(setup).await;
    let fake_base = t.app.cfg.payments.stripe.as_ref().unwrap().api_base.clone();
    add_member(&t, &t.org, OWNER, Role::Owner).await;
    let cookie = sign_in_form(&t, OWNER).await;
    let p = get_page(&t, "/payment-methods", Some(&cookie)).await;
    let started = post_form(
        &t,
        "/payment-methods",
        Some(&cookie),
        &[("csrf_token", &csrf_of(&p.html))],
    )
    .await;
    assert_eq!(started.status, 303, "{}", started.html);
    let hosted = started.headers[LOCATION].to_str().unwrap();
    assert!(
        hosted.starts_with("https://checkout.fake/cs_test"),
        "{hosted}"
    );
    let methods = t.app.db.payment_methods(&t.org).await.unwrap();
    let session_id = methods[0].setup_ref.clone().unwrap();
    let session = fake.session(&session_id).unwrap();
    let back = session["success_url"].as_str().unwrap();
    assert_eq!(back, format!("{}/payment-methods?done=added", t.address));
    let pay = crate::payments::fake_pay(&t, &fake_base, &session_id, "4242424242424242").await;
    assert!(pay["payment_method"].is_string(), "{pay}");
    // Stripe sends the browser to the success URL: the dashboard's page, with the new card.
    let path = back.strip_prefix(&t.address).unwrap();
    let returned = get_page(&t, path, Some(&cookie)).await;
    assert_eq!(returned.status, 200, "{}", returned.html);
    assert!(
        returned.html.contains("data-testid=\"card-added\""),
        "{}",
        returned.html
    );
    assert!(
        returned.html.contains("data-testid=\"last4\">4242<"),
        "{}",
        returned.html
    );
    let active = t
        .app
        .db
        .payment_method(&methods[0].id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(active.status.as_str(), "active");
}

crate::on_both_databases!(
    a_card_saved_at_stripe_comes_back_to_the_payment_methods_page,
    the_usage_page_shows_spend_by_day_model_and_key_with_csv,
    a_bad_usage_range_is_shown_beside_its_field,
    payment_methods_are_added_through_the_sandbox_and_removed,
    auto_reload_takes_the_recommended_values_in_one_click,
    a_key_page_shows_its_usage_against_its_limits,
    the_cache_page_shows_savings_and_waste,
);
