//! Email over SMTP: with `[email] smtp_url` the invitations and password resets go out through
//! lettre to a real SMTP server on loopback (the test's sink), not to the outbox.

use creditgate_core::accounts::Role;
use reqwest::Method;
use serde_json::json;

use crate::accounts::{
    call, member, outbox, session_of, sign_in, token_in, Cred, OWNER_EMAIL, PASSWORD,
};
use crate::helpers::{Setup, TestApp};
use crate::smtp_sink::{Received, SmtpSink};

/// The last message the sink received for `to`.
fn mail_to(sink: &SmtpSink, to: &str) -> Received {
    sink.messages()
        .into_iter()
        .rev()
        .find(|m| m.to.iter().any(|r| r == to))
        .unwrap_or_else(|| panic!("no mail to {to} in {:?}", sink.messages()))
}

#[tokio::test]
async fn invitations_and_password_resets_arrive_over_smtp() {
    let sink = SmtpSink::start().await;
    let t = TestApp::spawn_with(Setup {
        smtp_url: Some(sink.url.clone()),
        ..Setup::default()
    })
    .await;
    let owner = member(&t, OWNER_EMAIL, Role::Owner).await;

    let r = call(
        &t,
        Method::POST,
        "/v1/organizations/invites",
        &owner.cred(),
        Some(json!({"email": "dev@example.com", "role": "developer"})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let invitation = mail_to(&sink, "dev@example.com");
    assert_eq!(invitation.from, "no-reply@localhost");
    assert!(
        invitation
            .data
            .contains("Subject: Join Test organization on creditgate"),
        "{}",
        invitation.data
    );
    let token = token_in(&invitation.data, "/join/");
    assert_eq!(token.len(), 64, "{}", invitation.data);
    let joined = call(
        &t,
        Method::POST,
        &format!("/invite/{token}"),
        &Cred::None,
        Some(json!({"name": "Dev", "password": PASSWORD})),
    )
    .await;
    assert_eq!(joined.body["role"], "developer", "{}", joined.body);
    session_of(&joined);

    let r = call(
        &t,
        Method::POST,
        "/auth/password-reset",
        &Cred::None,
        Some(json!({"email": OWNER_EMAIL})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let reset = mail_to(&sink, OWNER_EMAIL);
    assert!(
        reset.data.contains("Subject: Reset your password"),
        "{}",
        reset.data
    );
    let token = token_in(&reset.data, "/reset/");
    let new_password = "another long passphrase";
    let done = call(
        &t,
        Method::POST,
        &format!("/auth/password-reset/{token}"),
        &Cred::None,
        Some(json!({"password": new_password})),
    )
    .await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert_eq!(sign_in(&t, OWNER_EMAIL, new_password).await.status, 200);

    // An unknown email gets the same answer and no mail.
    let count = sink.messages().len();
    let r = call(
        &t,
        Method::POST,
        "/auth/password-reset",
        &Cred::None,
        Some(json!({"email": "nobody@example.com"})),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(sink.messages().len(), count);
    assert_eq!(sink.messages().len(), 2, "the invitation and the reset");
    assert!(
        outbox(&t).is_empty(),
        "with SMTP nothing is written to the outbox"
    );
}

#[tokio::test]
async fn an_unreachable_smtp_server_is_a_clear_503() {
    let sink = SmtpSink::start().await;
    let url = sink.url.clone();
    drop(sink);
    let t = TestApp::spawn_with(Setup {
        smtp_url: Some(url),
        ..Setup::default()
    })
    .await;
    let owner = member(&t, OWNER_EMAIL, Role::Owner).await;
    let r = call(
        &t,
        Method::POST,
        "/v1/organizations/invites",
        &owner.cred(),
        Some(json!({"email": "dev@example.com", "role": "developer"})),
    )
    .await;
    r.assert_error(503, "api_error");
    assert!(r.error_message().contains("email"), "{}", r.body);
    let invites = call(
        &t,
        Method::GET,
        "/v1/organizations/invites",
        &owner.cred(),
        None,
    )
    .await;
    assert_eq!(
        invites.body["data"],
        json!([]),
        "an invitation nobody received is withdrawn"
    );
    let log = call(
        &t,
        Method::GET,
        "/v1/organizations/audit_log",
        &owner.cred(),
        None,
    )
    .await;
    assert_eq!(log.body["data"], json!([]), "and not audited");
}
