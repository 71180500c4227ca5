//! The dashboard's invoices and statement pages over real HTTP (`docs/dashboard.md`): the
//! invoices of a credit line with their printable pages and the pay button through the sandbox,
//! the statement's lines, running balance and CSV, the date form's errors beside their fields,
//! and what each role sees (the navigation links Invoices only when there is something to show).

use creditgate_core::accounts::Role;
use reqwest::header::LOCATION;
use reqwest::Method;
use serde_json::Value;

use crate::accounts::{add_member, admin_key, call, Cred};
use crate::dashboard::{csrf_of, get_page, post_form, sign_in_form, Page};
use crate::helpers::{body, Setup, TestApp};
use crate::invoices::{with_january_invoice, BILLING_EMAIL};

const OWNER: &str = "owner@example.com";
const USER: &str = "user@example.com";

fn nav(p: &Page) -> &str {
    let start = p.html.find("<nav").expect("a navigation");
    &p.html[start..start + p.html[start..].find("</nav>").unwrap()]
}

async fn an_invoiced_organization_sees_and_pays_its_invoices_on_the_page(setup: Setup) {
    let (t, _clock, id, _credits, key) = with_january_invoice(setup).await;
    add_member(&t, &t.org, OWNER, Role::Owner).await;
    add_member(&t, &t.org, USER, Role::User).await;
    let cred = Cred::Key(key);
    let api = call(
        &t,
        Method::GET,
        &format!("/v1/billing/invoices/{id}"),
        &cred,
        None,
    )
    .await;
    let number = api.body["number"].as_str().unwrap().to_owned();

    for email in [OWNER, BILLING_EMAIL] {
        let cookie = sign_in_form(&t, email).await;
        let home = get_page(&t, "/", Some(&cookie)).await;
        assert!(
            nav(&home).contains("href=\"/invoices\""),
            "{email}: {}",
            nav(&home)
        );
        assert!(nav(&home).contains("href=\"/statement\""), "{email}");
    }
    let cookie = sign_in_form(&t, OWNER).await;
    let p = get_page(&t, "/invoices", Some(&cookie)).await;
    assert_eq!(p.status, 200, "{}", p.html);
    assert!(
        p.html.contains("aria-current=\"page\">Invoices"),
        "{}",
        nav(&p)
    );
    assert!(p.html.contains(&number), "{}", p.html);
    assert!(p.html.contains("data-testid=\"billing-mode\">Credit line<"));
    let printable = format!("/v1/billing/invoices/{id}/html");
    assert!(
        p.html.contains(&format!("href=\"{printable}\"")),
        "{}",
        p.html
    );
    let printed = get_page(&t, &printable, Some(&cookie)).await;
    assert_eq!(printed.status, 200);
    assert!(printed.html.contains(&number));
    let pay = format!("/invoices/{id}/checkout");
    assert!(
        p.html.contains(&format!("action=\"{pay}\"")),
        "the API offers a checkout"
    );
    assert!(p.html.contains(&format!(
        "{} {}",
        api.body["credits"].as_str().unwrap(),
        "<span"
    )));

    // The pay button: without the session's token refused, with it the provider's page, which
    // comes back to the invoices once paid.
    let refused = post_form(&t, &pay, Some(&cookie), &[]).await;
    assert_eq!(refused.status, 403, "{}", refused.html);
    let started = post_form(
        &t,
        &pay,
        Some(&cookie),
        &[("csrf_token", &csrf_of(&p.html))],
    )
    .await;
    assert_eq!(started.status, 303, "{}", started.html);
    let checkout = started.headers[LOCATION].to_str().unwrap().to_owned();
    let sandbox = &checkout[checkout.find("/sandbox/checkout/").expect(&checkout)..];
    let paid = post_form(&t, sandbox, None, &[("card", "4242 4242 4242 4242")]).await;
    assert_eq!(paid.status, 303, "{}", paid.html);
    assert_eq!(paid.headers[LOCATION], t.url("/invoices").as_str());
    let after = get_page(&t, "/invoices", Some(&cookie)).await;
    assert!(
        after.html.contains("data-testid=\"invoice-status\">paid"),
        "{}",
        after.html
    );
    assert!(
        !after.html.contains(&format!("action=\"{pay}\"")),
        "nothing left to pay"
    );
    let api = call(
        &t,
        Method::GET,
        &format!("/v1/billing/invoices/{id}"),
        &cred,
        None,
    )
    .await;
    assert_eq!(api.body["status"], "paid", "{}", api.body);
    // Paying it again anyway: the service's refusal in the invoice's row.
    let again = post_form(
        &t,
        &pay,
        Some(&cookie),
        &[("csrf_token", &csrf_of(&after.html))],
    )
    .await;
    assert_eq!(again.status, 409, "{}", again.html);
    let row = &again.html[again.html.find(&format!("data-invoice=\"{id}\"")).unwrap()..];
    let row = &row[..row.find("</tr>").unwrap()];
    assert!(row.contains("data-testid=\"invoice-error\""), "{row}");
    assert!(row.contains("nothing to pay"), "{row}");

    // A user: no link, no invoice, no button; the post refused by the service.
    let user = sign_in_form(&t, USER).await;
    let home = get_page(&t, "/", Some(&user)).await;
    assert!(!nav(&home).contains("/invoices") && !nav(&home).contains("/statement"));
    let seen = get_page(&t, "/invoices", Some(&user)).await;
    assert_eq!(seen.status, 200);
    assert!(
        seen.html.contains("data-testid=\"invoices-refused\""),
        "{}",
        seen.html
    );
    assert!(!seen.html.contains(&number) && !seen.html.contains("/checkout"));
    let token = csrf_of(&seen.html);
    let posted = post_form(&t, &pay, Some(&user), &[("csrf_token", &token)]).await;
    assert_eq!(posted.status, 403, "{}", posted.html);
    t.assert_ledger_clean().await;
}

async fn a_prepaid_organization_without_invoices_has_no_invoices_link(setup: Setup) {
    let t = TestApp::spawn_with(setup).await;
    add_member(&t, &t.org, OWNER, Role::Owner).await;
    let cookie = sign_in_form(&t, OWNER).await;
    let home = get_page(&t, "/", Some(&cookie)).await;
    assert!(!nav(&home).contains("/invoices"), "{}", nav(&home));
    assert!(nav(&home).contains("href=\"/statement\""));
    let p = get_page(&t, "/invoices", Some(&cookie)).await;
    assert_eq!(p.status, 200, "{}", p.html);
    assert!(
        p.html.contains("data-testid=\"invoices-empty\""),
        "{}",
        p.html
    );
    assert!(p.html.contains("data-testid=\"billing-mode\">Prepaid<"));
}

fn cell(html: &str, testid: &str) -> String {
    let marker = format!("data-testid=\"{testid}\">");
    let rest = &html[html.find(&marker).expect(testid) + marker.len()..];
    rest[..rest.find(' ').unwrap()].to_owned()
}

async fn the_statement_page_shows_each_line_with_the_balance_after_and_its_csv(setup: Setup) {
    let t = TestApp::spawn_with(setup).await;
    add_member(&t, &t.org, OWNER, Role::Owner).await;
    add_member(&t, &t.org, USER, Role::User).await;
    for _ in 0..2 {
        let r = t.message(&body(1024, "output_tokens=20")).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let cred = Cred::Key(admin_key(&t, &t.org).await);
    let api: Value = call(&t, Method::GET, "/v1/billing/statement", &cred, None)
        .await
        .body;
    let cookie = sign_in_form(&t, OWNER).await;
    let p = get_page(&t, "/statement", Some(&cookie)).await;
    assert_eq!(p.status, 200, "{}", p.html);
    assert!(p.html.contains("aria-current=\"page\">Statement"));
    let lines = api["lines"].as_array().unwrap();
    assert!(lines.len() >= 2, "the grant and the day's usage: {api}");
    assert_eq!(
        p.html.matches("data-testid=\"statement-line\"").count(),
        lines.len()
    );
    // Each line's balance after it, in order, as the route computes them; the closing balance.
    let shown: Vec<String> = p
        .html
        .split("data-testid=\"balance-after\">")
        .skip(1)
        .map(|s| s[..s.find(' ').unwrap()].to_owned())
        .collect();
    let want: Vec<String> = lines
        .iter()
        .map(|l| l["balance_after"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(shown, want);
    assert_eq!(
        cell(&p.html, "closing-balance"),
        api["closing_balance"].as_str().unwrap()
    );
    assert!(
        p.html.contains(">Usage<") && p.html.contains(">Grant<"),
        "{}",
        p.html
    );
    // The CSV link is the route's CSV of the same period.
    let at = p.html.find("data-testid=\"statement-csv\"").unwrap();
    let href_at = p.html[..at].rfind("href=\"").unwrap() + 6;
    let href = p.html[href_at..at]
        .trim_end_matches("\" ")
        .replace("&#38;", "&")
        .replace("&amp;", "&");
    let csv = get_page(&t, &href, Some(&cookie)).await;
    assert_eq!(csv.status, 200, "{href}: {}", csv.html);
    assert!(
        csv.html
            .starts_with("date,at,kind,credits,balance_after,reference"),
        "{href}: {}",
        csv.html
    );
    assert!(csv.html.contains(&format!(
        "closing_balance,,{}",
        api["closing_balance"].as_str().unwrap()
    )));

    // Dates that are no dates, or a range ending before it starts: beside the field, kept.
    let bad = get_page(&t, "/statement?from=nope&to=", Some(&cookie)).await;
    assert_eq!(bad.status, 400);
    assert!(bad.html.contains("id=\"from-error\"") && bad.html.contains("value=\"nope\""));
    let bad = get_page(
        &t,
        "/statement?from=2026-03-02&to=2026-03-01",
        Some(&cookie),
    )
    .await;
    assert_eq!(bad.status, 400);
    assert!(bad.html.contains("id=\"to-error\""), "{}", bad.html);
    // A range with nothing in it says what to do.
    let empty = get_page(
        &t,
        "/statement?from=2001-01-01&to=2001-01-31",
        Some(&cookie),
    )
    .await;
    assert_eq!(empty.status, 200);
    assert!(
        empty.html.contains("data-testid=\"statement-empty\""),
        "{}",
        empty.html
    );

    // A user sees whom to ask, not the statement.
    let user = sign_in_form(&t, USER).await;
    let seen = get_page(&t, "/statement", Some(&user)).await;
    assert_eq!(seen.status, 200);
    assert!(seen.html.contains("data-testid=\"statement-refused\""));
    assert!(!seen.html.contains("data-testid=\"statement\""));
}

crate::on_both_databases!(
    an_invoiced_organization_sees_and_pays_its_invoices_on_the_page,
    a_prepaid_organization_without_invoices_has_no_invoices_link,
    the_statement_page_shows_each_line_with_the_balance_after_and_its_csv,
);
