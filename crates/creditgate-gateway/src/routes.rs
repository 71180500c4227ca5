//! The route table: every route with the credential it takes and the role it needs. The router
//! is built from it, and the access-matrix test and `/openapi.json` read it, so a route cannot
//! be served without being in all three.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::{delete, get, post, put, MethodRouter};
use axum::Json;
use creditgate_core::accounts::Action;
use serde_json::Value;

use crate::dashboard::operator as op;
use crate::dashboard::{self as dash, page};
use crate::openapi::{self, Operation};
use crate::payments::routes as pay;
use crate::{
    account, invoices, messages, models, notify, operator_api, organization_api as org, payments,
    reload, reports, sign_in, statements, App,
};

pub use crate::caller::Access;

/// One route.
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub access: Access,
    pub summary: &'static str,
    pub handler: MethodRouter<Arc<App>>,
}

fn r(
    method: &'static str,
    path: &'static str,
    access: Access,
    summary: &'static str,
    handler: MethodRouter<Arc<App>>,
) -> Route {
    Route {
        method,
        path,
        access,
        summary,
        handler,
    }
}

/// Every route of the gateway. Anthropic's own routes (`/v1/messages`, `/v1/models`) are
/// listed too; `/openapi.json` documents the rest.
///
/// Longer than a screen on purpose: it is a table, one line per route, and reading every route
/// with its credential in one place is the point (the access matrix test walks it).
#[rustfmt::skip]
pub fn table() -> Vec<Route> {
    use Access::*;
    use Action::*;
    vec![
        r("POST", "/v1/messages", ApiKey, "Create a message (Anthropic's API, metered)", post(messages::create)),
        r("POST", "/v1/messages/count_tokens", ApiKey, "Count tokens (free)", post(models::count_tokens)),
        r("POST", "/v1/messages/quote", ApiKey, "Price a Messages request without sending it: worst case, first stream slice, largest affordable max_tokens (free; nothing forwarded)", post(messages::quote)),
        r("GET", "/v1/models", ApiKey, "Models the key may use", get(models::list)),
        r("GET", "/v1/models/{id}", ApiKey, "One model", get(models::get)),
        r("GET", "/v1/credits", ApiKey, "The organization's credits", get(account::credits)),
        r("GET", "/v1/key", ApiKey, "The calling key, its limits and its usage against them", get(account::key)),
        r("GET", "/v1/requests/{id}", ApiKey, "The receipt of one request", get(account::request)),
        // Payments (`docs/payments.md`): the sandbox's checkout page and receipts are reached by
        // an unguessable order id; Stripe's webhook carries its own signature.
        r("GET", "/sandbox/checkout/{order_id}", Public, "The sandbox provider's checkout page", get(payments::sandbox::page)),
        r("POST", "/sandbox/checkout/{order_id}", Public, "Pay a sandbox order with a test card", post(payments::sandbox::pay)),
        r("GET", "/sandbox/setup/{method_id}", Public, "The sandbox provider's page to save a card", get(payments::saved::setup_page)),
        r("POST", "/sandbox/setup/{method_id}", Public, "Save a test card (sandbox)", post(payments::saved::setup_submit)),
        r("GET", "/receipts/{order_id}", Public, "A printable receipt", get(payments::receipt::page)),
        r("POST", "/webhooks/stripe", Public, "Stripe's events (verified by Stripe-Signature)", post(payments::webhooks::stripe)),
        r("GET", "/healthz", Public, "Liveness", get(|| async { "ok" })),
        r("GET", "/readyz", Public, "Readiness (the database answers)", get(models::ready)),
        r("GET", "/metrics", Operator, "Prometheus metrics (OpenMetrics text): requests, latency, charges, holds, upstream errors, spool", get(crate::metrics::serve)),
        r("GET", "/openapi.json", Public, "This document", get(openapi_json)),
        // Sign-in and links from emails (`docs/accounts.md`).
        r("POST", "/auth/sign-in", Public, "Sign in with email and password; sets the cg_session cookie", post(sign_in::sign_in)),
        r("POST", "/auth/sign-out", Session, "End this session (or every session with everywhere: true)", post(sign_in::sign_out)),
        r("GET", "/auth/session", Session, "The signed-in member and the CSRF token", get(sign_in::current)),
        r("POST", "/auth/sign-up", Public, "Open sign-up (only with [accounts] signup = \"open\")", post(sign_in::sign_up)),
        r("POST", "/auth/password-reset", Public, "Email a password-reset link (always answers the same)", post(sign_in::request_reset)),
        r("GET", "/auth/password-reset/{token}", Public, "Whether a reset link still works", get(sign_in::reset_status)),
        r("POST", "/auth/password-reset/{token}", Public, "Set a new password with a reset link (once)", post(sign_in::reset_password)),
        r("GET", "/invite/{token}", Public, "The invitation behind a link", get(sign_in::invite_status)),
        r("POST", "/invite/{token}", Public, "Accept an invitation (once) and sign in", post(sign_in::accept_invite)),
        // The organization (`docs/accounts.md`).
        r("GET", "/v1/organizations/me", Organization(Read), "The caller's organization", get(org::me)),
        r("GET", "/v1/organizations/users", Organization(Read), "List members", get(org::list_users)),
        r("GET", "/v1/organizations/users/{id}", Organization(Read), "One member", get(org::get_user)),
        r("POST", "/v1/organizations/users/{id}", Organization(ManageMembers), "Change a member's role", post(org::update_user)),
        r("DELETE", "/v1/organizations/users/{id}", Organization(ManageMembers), "Remove a member (any member may remove themselves)", delete(org::delete_user)),
        r("POST", "/v1/organizations/transfer_ownership", Organization(Own), "Hand ownership to another member", post(org::transfer_ownership)),
        r("POST", "/v1/organizations/invites", Organization(ManageMembers), "Invite by email", post(org::create_invite)),
        r("GET", "/v1/organizations/invites", Organization(Read), "List invitations", get(org::list_invites)),
        r("GET", "/v1/organizations/invites/{id}", Organization(Read), "One invitation", get(org::get_invite)),
        r("DELETE", "/v1/organizations/invites/{id}", Organization(ManageMembers), "Withdraw an invitation", delete(org::delete_invite)),
        r("GET", "/v1/organizations/api_keys", Organization(Read), "List API keys", get(org::list_api_keys)),
        r("POST", "/v1/organizations/api_keys", Organization(ManageKeys), "Create an API key (secret shown once)", post(org::create_api_key)),
        r("GET", "/v1/organizations/api_keys/{id}", Organization(Read), "One API key", get(org::get_api_key)),
        r("POST", "/v1/organizations/api_keys/{id}", Organization(ManageKeys), "Rename, disable, archive, limit or re-date a key", post(org::update_api_key)),
        r("GET", "/v1/organizations/admin_keys", Organization(ManageMembers), "List admin keys", get(org::list_admin_keys)),
        r("POST", "/v1/organizations/admin_keys", Organization(ManageMembers), "Create an admin key (secret shown once)", post(org::create_admin_key)),
        r("POST", "/v1/organizations/admin_keys/{id}", Organization(ManageMembers), "Deactivate an admin key", post(org::update_admin_key)),
        r("GET", "/v1/organizations/credits", Organization(Read), "The organization's credits", get(org::credits)),
        r("GET", "/v1/organizations/audit_log", Organization(Read), "The organization's audit log, newest first", get(org::audit_log)),
        // Reports (`docs/accounts.md`; docs/reports.md).
        r("GET", "/v1/organizations/usage_report/messages", Organization(Read), "Messages usage report in Anthropic's shape (tokens, requests, credits per bucket)", get(reports::usage_report)),
        r("GET", "/v1/organizations/cost_report", Organization(Read), "Cost report in Anthropic's shape (USD cents, credits, list price per day)", get(reports::cost_report)),
        r("GET", "/v1/organizations/cache_report", Organization(Read), "Cache report: writes, reads, credits saved by reads, credits of writes never read", get(reports::cache_report)),
        // Buying credits (`docs/payments.md`): any member reads; owner, admin and billing buy.
        r("GET", "/v1/billing/plans", Organization(Read), "The plans on sale and the custom amount's bounds", get(pay::plans)),
        r("GET", "/v1/billing/profile", Organization(Read), "The billing profile", get(pay::get_profile)),
        r("PUT", "/v1/billing/profile", Organization(ManageBilling), "Replace the billing profile (country required to buy)", put(pay::put_profile)),
        r("POST", "/v1/billing/checkout", Organization(ManageBilling), "Open a checkout for a plan or a custom amount", post(pay::checkout)),
        r("GET", "/v1/billing/orders", Organization(Read), "The organization's orders, newest first", get(pay::list_orders)),
        r("GET", "/v1/billing/orders/{id}", Organization(Read), "One order, with its refunds and disputes", get(pay::get_order)),
        r("GET", "/v1/billing/orders/{id}/receipt", Organization(Read), "The printable receipt of a credited order", get(pay::order_receipt)),
        r("GET", "/v1/billing/payment_methods", Organization(Read), "Saved cards: brand, last four, expiry", get(payments::saved::list)),
        r("POST", "/v1/billing/payment_methods", Organization(ManageBilling), "Save a card: answers the setup_url to enter it at", post(payments::saved::add)),
        r("DELETE", "/v1/billing/payment_methods/{id}", Organization(ManageBilling), "Remove a saved card", delete(payments::saved::remove)),
        // Invoices of an invoiced credit line (`docs/credit-lines.md`): owner, admin and billing.
        r("GET", "/v1/billing/invoices", Organization(ManageBilling), "The organization's monthly invoices, newest first", get(invoices::routes::list)),
        r("GET", "/v1/billing/invoices/{id}", Organization(ManageBilling), "One invoice", get(invoices::routes::get)),
        r("GET", "/v1/billing/invoices/{id}/html", Organization(ManageBilling), "The printable invoice", get(invoices::routes::html)),
        r("POST", "/v1/billing/invoices/{id}/checkout", Organization(ManageBilling), "Pay an open invoice through the provider: answers the checkout_url", post(invoices::routes::checkout)),
        r("GET", "/v1/billing/auto_reload", Organization(Read), "Auto-reload settings and status", get(reload::routes::get_settings)),
        r("PUT", "/v1/billing/auto_reload", Organization(ManageBilling), "Replace the auto-reload settings (saving them again resumes a paused auto-reload)", put(reload::routes::put_settings)),
        // Alerts and outbound webhooks (`docs/alerts.md`).
        r("GET", "/v1/billing/statement", Organization(ManageBilling), "The statement of account for a period: opening balance, purchases, grants, usage per day, refunds, expiries, invoices, closing balance (JSON or CSV)", get(statements::statement)),
        r("GET", "/v1/billing/alerts", Organization(Read), "Alert settings: low-balance thresholds and extra email addresses", get(notify::routes::get_settings)),
        r("PUT", "/v1/billing/alerts", Organization(ManageBilling), "Replace the alert settings", put(notify::routes::put_settings)),
        r("POST", "/v1/organizations/webhooks", Organization(ManageMembers), "Register a webhook endpoint (signing secret shown once)", post(notify::webhooks::create)),
        r("GET", "/v1/organizations/webhooks", Organization(ManageMembers), "List webhook endpoints", get(notify::webhooks::list)),
        r("DELETE", "/v1/organizations/webhooks/{id}", Organization(ManageMembers), "Delete a webhook endpoint", delete(notify::webhooks::delete)),
        r("GET", "/v1/organizations/webhooks/{id}/deliveries", Organization(ManageMembers), "An endpoint's deliveries, newest first, each with every attempt", get(notify::webhooks::deliveries)),
        r("POST", "/v1/organizations/webhooks/{id}/deliveries/{delivery_id}/retry", Organization(ManageMembers), "Attempt a delivery again now (a success enables a disabled endpoint)", post(notify::webhooks::retry)),
        // The operator (`docs/accounts.md`).
        r("POST", "/admin/v1/organizations", Operator, "Create an organization (owner_email gets an invitation)", post(operator_api::create)),
        r("GET", "/admin/v1/organizations", Operator, "Search organizations by id or name", get(operator_api::list)),
        r("GET", "/admin/v1/organizations/{id}", Operator, "One organization", get(operator_api::get)),
        r("POST", "/admin/v1/organizations/{id}", Operator, "Rename, suspend or reactivate, set the disconnect policy, invite an owner (none yet)", post(operator_api::update)),
        r("POST", "/admin/v1/organizations/{id}/grants", Operator, "Grant credits (idempotent on reference)", post(operator_api::grant)),
        r("POST", "/admin/v1/organizations/{id}/admin_keys", Operator, "Create an organization admin key", post(operator_api::create_admin_key)),
        r("GET", "/admin/v1/reports/usage", Operator, "The usage report across organizations", get(reports::operator_usage)),
        r("GET", "/admin/v1/reports/cost", Operator, "The cost report across organizations", get(reports::operator_cost)),
        r("GET", "/admin/v1/reports/cache", Operator, "The cache report across organizations", get(reports::operator_cache)),
        r("POST", "/admin/v1/organizations/{id}/payments", Operator, "Record a manual payment (idempotent on method and reference)", post(pay::admin_record_payment)),
        r("GET", "/admin/v1/orders", Operator, "Every order, newest first (?status=&organization_id=&provider=)", get(pay::admin_orders)),
        r("POST", "/admin/v1/orders/{id}/recheck", Operator, "Ask the order's provider again", post(pay::admin_recheck)),
        r("POST", "/admin/v1/orders/{id}/sandbox_dispute", Operator, "Close a sandbox order's dispute, won or lost", post(payments::sandbox::close_dispute)),
        r("POST", "/admin/v1/orders/{id}/refund", Operator, "Refund the unspent remainder (or credits) through the provider", post(pay::admin_refund)),
        r("POST", "/admin/v1/invoices/{id}/mark_paid", Operator, "Record an invoice's payment: credits its credits back (idempotent)", post(invoices::routes::mark_paid)),
        r("GET", "/admin/v1/plans", Operator, "Every plan, archived ones too", get(pay::admin_plans)),
        r("POST", "/admin/v1/plans", Operator, "Create a plan", post(pay::admin_create_plan)),
        r("POST", "/admin/v1/plans/{id}", Operator, "Edit or archive a plan", post(pay::admin_update_plan)),
        r("GET", "/admin/v1/audit_log", Operator, "Every organization's audit log, newest first", get(operator_api::audit_log)),
        // The dashboard (`docs/dashboard.md`): HTML pages over the same handlers as above.
        r("GET", "/assets/{*path}", PublicPage, "The dashboard's stylesheet, script and vendored libraries", get(dash::assets::serve)),
        r("GET", "/sign-in", PublicPage, "Sign-in page", page(get(dash::auth::sign_in_page))),
        r("POST", "/sign-in", PublicPage, "Sign in (form)", page(post(dash::auth::sign_in))),
        r("POST", "/sign-out", Page, "Sign out (form)", page(post(dash::auth::sign_out))),
        r("POST", "/switch", Page, "Act in another organization of the member", page(post(dash::auth::switch))),
        r("GET", "/", Page, "Overview: balance (live), holds, runway, lots", page(get(dash::overview::page))),
        r("GET", "/live/balance", Page, "The balance as server-sent events", page(get(dash::live::balance))),
        r("GET", "/buy", Page, "Buy credits: plans, custom amount, billing profile", page(get(dash::billing::page))),
        r("POST", "/buy", Page, "Open a checkout (form)", page(post(dash::billing::checkout))),
        r("POST", "/billing-profile", Page, "Save the billing profile (form)", page(post(dash::billing::save_profile))),
        r("GET", "/orders", Page, "Orders with receipt links", page(get(dash::billing::orders))),
        r("GET", "/orders/{id}", Page, "One order", page(get(dash::billing::order))),
        // The operator console (`docs/dashboard.md`): the same `/admin/v1` handlers behind forms.
        r("GET", "/operator/sign-in", PublicPage, "Operator console sign-in page", page(get(op::session::sign_in_page))),
        r("POST", "/operator/sign-in", PublicPage, "Operator sign-in with the operator key (form)", page(post(op::session::sign_in))),
        r("POST", "/operator/sign-out", OperatorPage, "Operator sign-out (form)", page(post(op::session::sign_out))),
        r("GET", "/operator", OperatorPage, "Organizations with balances, searched by id or name", page(get(op::organizations::list))),
        r("GET", "/operator/organizations/{id}", OperatorPage, "One organization: balance, lots, orders, grant and payment forms", page(get(op::organizations::show))),
        r("POST", "/operator/organizations/{id}/grants", OperatorPage, "Grant credits (form)", page(post(op::organizations::grant))),
        r("POST", "/operator/organizations/{id}/payments", OperatorPage, "Record a manual payment (form)", page(post(op::organizations::payment))),
        r("GET", "/operator/orders", OperatorPage, "Every order, filtered", page(get(op::orders::list))),
        r("POST", "/operator/orders/{id}/recheck", OperatorPage, "Recheck an order (form)", page(post(op::orders::recheck))),
        r("POST", "/operator/orders/{id}/refund", OperatorPage, "Refund an order (form)", page(post(op::orders::refund))),
        r("GET", "/operator/plans", OperatorPage, "Every plan, with edit forms", page(get(op::plans::list))),
        r("POST", "/operator/plans", OperatorPage, "Create a plan (form)", page(post(op::plans::create))),
        r("POST", "/operator/plans/{id}", OperatorPage, "Edit or archive a plan (form)", page(post(op::plans::update))),
        r("GET", "/operator/prices", OperatorPage, "The prices in force", page(get(op::prices::page))),
        r("GET", "/usage", Page, "Usage and cost by day, model and key, with CSV downloads", page(get(dash::usage::page))),
        r("GET", "/cache", Page, "Prompt cache: credits saved by reads, writes never read", page(get(dash::cache::page))),
        r("GET", "/auto-reload", Page, "Auto-reload: status, last attempt, recommendation, settings", page(get(dash::autoreload::page))),
        r("POST", "/auto-reload", Page, "Save the auto-reload settings (form)", page(post(dash::autoreload::save))),
        r("GET", "/payment-methods", Page, "Saved cards", page(get(dash::cards::page))),
        r("POST", "/payment-methods", Page, "Start saving a card at the provider (form)", page(post(dash::cards::add))),
        r("POST", "/payment-methods/{id}/remove", Page, "Remove a saved card (form)", page(post(dash::cards::remove))),
        r("GET", "/invoices", Page, "Invoices of the credit line, with printable pages and pay buttons", page(get(dash::invoices::page))),
        r("POST", "/invoices/{id}/checkout", Page, "Pay an open invoice through the provider (form)", page(post(dash::invoices::checkout))),
        r("GET", "/statement", Page, "The statement of account for a date range, with its CSV", page(get(dash::statement::page))),
        r("GET", "/audit", Page, "The audit log, newest first", page(get(dash::audit::page))),
        r("GET", "/keys", Page, "API keys: list and create", page(get(dash::keys::page))),
        r("POST", "/keys", Page, "Create an API key (form; the secret shown once)", page(post(dash::keys::create))),
        r("GET", "/keys/{id}", Page, "One API key and its limits", page(get(dash::keys::key))),
        r("POST", "/keys/{id}", Page, "Set limits, disable, enable or revoke a key (form)", page(post(dash::keys::update))),
        r("GET", "/members", Page, "Members with roles and pending invitations", page(get(dash::members::page))),
        r("POST", "/members/invite", Page, "Invite a member by email (form)", page(post(dash::members::invite))),
        r("POST", "/members/{id}/role", Page, "Change a member's role (form)", page(post(dash::members::change_role))),
        r("POST", "/members/{id}/remove", Page, "Remove a member, or leave (form)", page(post(dash::members::remove))),
        r("POST", "/members/invites/{id}/revoke", Page, "Withdraw an invitation (form)", page(post(dash::members::revoke))),
        r("GET", "/webhooks", Page, "Webhook endpoints: list and register", page(get(dash::webhooks::page))),
        r("POST", "/webhooks", Page, "Register a webhook endpoint (form; the signing secret shown once)", page(post(dash::webhooks::create))),
        r("GET", "/webhooks/{id}", Page, "One webhook endpoint and its delivery log", page(get(dash::webhooks::endpoint))),
        r("POST", "/webhooks/{id}/delete", Page, "Delete a webhook endpoint (form)", page(post(dash::webhooks::delete))),
        r("POST", "/webhooks/{id}/deliveries/{delivery_id}/retry", Page, "Attempt a webhook delivery again now (form)", page(post(dash::webhooks::retry))),
        r("GET", "/alerts", Page, "Alert settings: low-balance thresholds and extra email addresses", page(get(dash::alerts::page))),
        r("POST", "/alerts", Page, "Save the alert settings (form)", page(post(dash::alerts::save))),
        r("GET", "/join/{token}", PublicPage, "The page an invitation email links to", page(get(dash::join::page))),
        r("POST", "/join/{token}", PublicPage, "Accept an invitation and sign in (form)", page(post(dash::join::accept))),
        r("GET", "/reset", PublicPage, "Ask for a password-reset email", page(get(dash::reset::request_page))),
        r("POST", "/reset", PublicPage, "Email a password-reset link (form)", page(post(dash::reset::request))),
        r("GET", "/reset/{token}", PublicPage, "The page a password-reset email links to", page(get(dash::reset::link))),
        r("POST", "/reset/{token}", PublicPage, "Set a new password with the link (form)", page(post(dash::reset::set_password))),
        r("GET", "/sign-up", PublicPage, "Sign-up page (says when sign-up is by invitation)", page(get(dash::signup::page))),
        r("POST", "/sign-up", PublicPage, "Open sign-up (form)", page(post(dash::signup::sign_up))),
    ]
}

/// `GET /openapi.json`: the document of this table.
async fn openapi_json(State(app): State<Arc<App>>) -> Json<Value> {
    let operations: Vec<Operation> = table()
        .iter()
        .map(|r| Operation {
            method: r.method,
            path: r.path,
            access: r.access,
            summary: r.summary,
        })
        .collect();
    Json(openapi::document(&operations, &app.cfg.accounts.public_url))
}
