//! The dashboard's money pages over real HTTP (`docs/dashboard.md`): usage and cost, cache,
//! auto-reload, payment methods and key usage — what each role sees, CSRF refusals, the
//! security headers, empty states and the CSV downloads.

use creditgate_core::accounts::Role;
use reqwest::header::CONTENT_TYPE;

use crate::accounts::add_member;
use crate::dashboard::{browser, get_page, sign_in_form, Page};
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

crate::on_both_databases!(
    the_usage_page_shows_spend_by_day_model_and_key_with_csv,
    a_bad_usage_range_is_shown_beside_its_field,
);
