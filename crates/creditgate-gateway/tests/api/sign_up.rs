//! Open sign-up (`[accounts] signup = "open"`): a new user owns a new organization holding the
//! operator's trial grant; invitation-only (the default) refuses it and changes nothing.

use creditgate_core::ids::OrganizationId;
use reqwest::Method;
use serde_json::json;

use crate::accounts::{actions, call, session_of, sign_in, Cred, PASSWORD};
use crate::helpers::{body, credits, Setup, TestApp};

const NEW_USER: &str = "founder@startup.example";

fn sign_up_body(email: &str, password: &str) -> serde_json::Value {
    json!({"email": email, "password": password, "name": "Founder",
        "organization_name": "Startup Labs"})
}

async fn organizations(t: &TestApp) -> usize {
    let all = call(
        t,
        Method::GET,
        "/admin/v1/organizations",
        &Cred::Operator,
        None,
    )
    .await;
    all.body["data"].as_array().expect("a list").len()
}

async fn invite_only_refuses_sign_up(setup: Setup) {
    let t = TestApp::spawn_with(setup).await;
    let before = organizations(&t).await;
    let r = call(
        &t,
        Method::POST,
        "/auth/sign-up",
        &Cred::None,
        Some(sign_up_body(NEW_USER, PASSWORD)),
    )
    .await;
    r.assert_error(403, "permission_error");
    assert!(r.error_message().contains("invitation"), "{}", r.body);
    assert_eq!(organizations(&t).await, before, "nothing was created");
    assert_eq!(sign_in(&t, NEW_USER, PASSWORD).await.status, 401);
}

async fn open_sign_up_makes_the_user_owner_of_a_new_organization(setup: Setup) {
    let t = TestApp::spawn_with(Setup {
        signup_open: true,
        trial_credits: Some("20"),
        credits: credits("0"),
        ..setup
    })
    .await;
    let before = organizations(&t).await;
    for (bad, field) in [
        (sign_up_body("not-an-email", PASSWORD), "email"),
        (sign_up_body(NEW_USER, "password123"), "password"),
        (
            json!({"email": NEW_USER, "password": PASSWORD, "name": ""}),
            "name",
        ),
    ] {
        let r = call(&t, Method::POST, "/auth/sign-up", &Cred::None, Some(bad)).await;
        r.assert_error(400, "invalid_request_error");
        assert!(r.error_message().contains(field), "{}", r.body);
    }
    assert_eq!(organizations(&t).await, before, "bad input changes nothing");

    let r = call(
        &t,
        Method::POST,
        "/auth/sign-up",
        &Cred::None,
        Some(sign_up_body(NEW_USER, PASSWORD)),
    )
    .await;
    let owner = session_of(&r);
    assert_eq!(r.body["role"], "owner", "{}", r.body);
    let org = r.body["organization_id"].as_str().unwrap().to_owned();
    assert_ne!(org, t.org.as_str(), "a new organization");
    let me = call(&t, Method::GET, "/v1/organizations/me", &owner.cred(), None).await;
    assert_eq!(
        (me.body["id"].as_str(), me.body["name"].as_str()),
        (Some(org.as_str()), Some("Startup Labs"))
    );
    let users = call(
        &t,
        Method::GET,
        "/v1/organizations/users",
        &owner.cred(),
        None,
    )
    .await;
    assert_eq!(users.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(users.body["data"][0]["email"], NEW_USER);
    let org_id = OrganizationId::parse(&org).unwrap();
    assert_eq!(
        t.balance_of(&org_id).await.posted,
        credits("20"),
        "the trial grant"
    );

    // The trial pays for real requests with a key the owner creates.
    let key = call(
        &t,
        Method::POST,
        "/v1/organizations/api_keys",
        &owner.cred(),
        Some(json!({"name": "first key"})),
    )
    .await;
    assert_eq!(key.status, 200, "{}", key.body);
    let answer = t
        .message_as(key.body["secret"].as_str().unwrap(), &body(16, ""))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);

    let again = call(
        &t,
        Method::POST,
        "/auth/sign-up",
        &Cred::None,
        Some(sign_up_body(NEW_USER, PASSWORD)),
    )
    .await;
    again.assert_error(409, "invalid_request_error");
    assert_eq!(
        organizations(&t).await,
        before + 1,
        "one new organization, once"
    );
    assert_eq!(
        session_of(&sign_in(&t, NEW_USER, PASSWORD).await).user_id,
        owner.user_id
    );

    let log = call(
        &t,
        Method::GET,
        "/v1/organizations/audit_log",
        &owner.cred(),
        None,
    )
    .await;
    assert_eq!(
        actions(&log),
        [
            "api_key.created",
            "credits.granted",
            "user.signed_up",
            "organization.created"
        ]
    );
    assert_eq!(log.body["data"][2]["actor"]["id"], owner.user_id.as_str());
    assert!(
        !log.body.to_string().contains(PASSWORD),
        "no secret in the audit log"
    );
}

crate::on_both_databases!(
    invite_only_refuses_sign_up,
    open_sign_up_makes_the_user_owner_of_a_new_organization,
);
