//! The people pages over real HTTP (`docs/dashboard.md`): members with roles and invitations,
//! accepting an invitation through the page its email links to — role hiding, CSRF refusals,
//! errors beside the field they are about, the security headers.

use creditgate_core::accounts::Role;
use reqwest::header::{LOCATION, SET_COOKIE};

use crate::accounts::{add_member, link_token};
use crate::dashboard::{csrf_of, get_page, post_form, sign_in_form, Page};
use crate::helpers::{Setup, TestApp};

const OWNER: &str = "owner@example.com";
const NEW_PASSWORD: &str = "a fresh long passphrase";

fn assert_csp(p: &Page) {
    let csp = p.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert_eq!(p.headers["x-frame-options"], "DENY");
}

async fn a_user_sees_the_members_but_no_action_and_cannot_post_one(setup: Setup) {
    let t = TestApp::spawn_with(setup).await;
    add_member(&t, &t.org, OWNER, Role::Owner).await;
    add_member(&t, &t.org, "user@example.com", Role::User).await;
    let owner = get_page(&t, "/members", Some(&sign_in_form(&t, OWNER).await)).await;
    assert_eq!(owner.status, 200, "{}", owner.html);
    assert_csp(&owner);
    assert!(owner.html.contains("action=\"/members/invite\""));
    assert!(owner.html.contains("Change role"));
    let cookie = sign_in_form(&t, "user@example.com").await;
    let user = get_page(&t, "/members", Some(&cookie)).await;
    assert_eq!(user.status, 200, "{}", user.html);
    assert_csp(&user);
    assert!(user.html.contains(OWNER), "the user sees the members");
    for action in [
        "/members/invite",
        "Change role",
        "/remove",
        "/revoke",
        "href=\"/buy\"",
    ] {
        assert!(!user.html.contains(action), "{action} shown to a user");
    }
    let csrf = csrf_of(&user.html);
    let forced = post_form(
        &t,
        "/members/invite",
        Some(&cookie),
        &[
            ("csrf_token", &csrf),
            ("email", "x@example.com"),
            ("role", "admin"),
        ],
    )
    .await;
    assert_eq!(forced.status, 403, "{}", forced.html);
    let checkout = post_form(&t, "/buy", Some(&cookie), &[("csrf_token", &csrf)]).await;
    assert_eq!(
        checkout.status, 403,
        "a user's billing post: {}",
        checkout.html
    );
    assert!(crate::accounts::outbox(&t).is_empty(), "nothing was sent");
}

async fn an_invitation_is_sent_accepted_on_its_page_and_used_once(setup: Setup) {
    let t = TestApp::spawn_with(setup).await;
    add_member(&t, &t.org, OWNER, Role::Owner).await;
    let cookie = sign_in_form(&t, OWNER).await;
    let fields = [("email", "new@example.com"), ("role", "developer")];
    let no_token = post_form(&t, "/members/invite", Some(&cookie), &fields).await;
    assert_eq!(no_token.status, 403, "{}", no_token.html);
    assert!(crate::accounts::outbox(&t).is_empty());
    let csrf = csrf_of(&get_page(&t, "/members", Some(&cookie)).await.html);
    let mut with_token = vec![("csrf_token", csrf.as_str())];
    with_token.extend(fields);
    let sent = post_form(&t, "/members/invite", Some(&cookie), &with_token).await;
    assert_eq!(sent.status, 303, "{}", sent.html);
    assert_eq!(sent.headers[LOCATION], "/members?done=invited");
    let listed = get_page(&t, "/members?done=invited", Some(&cookie)).await;
    assert!(
        listed.html.contains("data-invite=\"new@example.com\""),
        "{}",
        listed.html
    );

    let token = link_token(&t, "new@example.com", "/join/");
    let path = format!("/join/{token}");
    let join = get_page(&t, &path, None).await;
    assert_eq!(join.status, 200, "{}", join.html);
    assert_csp(&join);
    assert!(
        join.html.contains("data-testid=\"invite-role\">developer<"),
        "{}",
        join.html
    );
    assert!(join.html.contains("Test organization"), "{}", join.html);
    assert!(join.html.contains("<label for=\"name\">"));
    let short = post_form(&t, &path, None, &[("name", "New"), ("password", "short")]).await;
    assert_eq!(short.status, 400, "{}", short.html);
    assert!(
        short.html.contains("id=\"password-error\""),
        "{}",
        short.html
    );
    assert!(short.html.contains("aria-describedby=\"password-error\""));
    let nameless = post_form(&t, &path, None, &[("password", NEW_PASSWORD)]).await;
    assert!(
        nameless.html.contains("id=\"name-error\""),
        "{}",
        nameless.html
    );
    let joined = post_form(
        &t,
        &path,
        None,
        &[("name", "New"), ("password", NEW_PASSWORD)],
    )
    .await;
    assert_eq!(joined.status, 303, "{}", joined.html);
    assert_eq!(joined.headers[LOCATION], "/");
    let set = joined.headers[SET_COOKIE].to_str().unwrap();
    let session = set
        .split(';')
        .next()
        .unwrap()
        .strip_prefix("cg_session=")
        .unwrap();
    let members = get_page(&t, "/members", Some(session)).await;
    assert_eq!(members.status, 200, "{}", members.html);
    assert!(
        members.html.contains("new@example.com · developer"),
        "{}",
        members.html
    );
    assert!(
        members.html.contains("data-testid=\"invites-empty\""),
        "accepted: no longer pending"
    );

    let again = get_page(&t, &path, None).await;
    assert_eq!(again.status, 404, "{}", again.html);
    assert!(again.html.contains("used, withdrawn or has expired"));
    let replay = post_form(
        &t,
        &path,
        None,
        &[("name", "X"), ("password", NEW_PASSWORD)],
    )
    .await;
    assert_eq!(replay.status, 404);
}

async fn owner_rules_and_bad_input_are_shown_beside_their_form(setup: Setup) {
    let t = TestApp::spawn_with(setup).await;
    let owner = add_member(&t, &t.org, OWNER, Role::Owner).await;
    let dev = add_member(&t, &t.org, "dev@example.com", Role::Developer).await;
    let cookie = sign_in_form(&t, OWNER).await;
    let csrf = csrf_of(&get_page(&t, "/members", Some(&cookie)).await.html);
    let demote = format!("/members/{owner}/role");
    let p = post_form(
        &t,
        &demote,
        Some(&cookie),
        &[("csrf_token", &csrf), ("role", "admin")],
    )
    .await;
    assert!(p.status >= 400, "{}", p.html);
    assert!(
        p.html.contains(&format!("id=\"error-{owner}\"")),
        "{}",
        p.html
    );
    let leave = format!("/members/{owner}/remove");
    let p = post_form(&t, &leave, Some(&cookie), &[("csrf_token", &csrf)]).await;
    assert!(p.status >= 400, "the last owner cannot leave: {}", p.html);
    assert!(
        p.html.contains("data-testid=\"member-error\""),
        "{}",
        p.html
    );
    let bad = [
        ("csrf_token", csrf.as_str()),
        ("email", "not-an-email"),
        ("role", "user"),
    ];
    let p = post_form(&t, "/members/invite", Some(&cookie), &bad).await;
    assert_eq!(p.status, 400, "{}", p.html);
    assert!(p.html.contains("id=\"email-error\""), "{}", p.html);
    assert!(
        p.html.contains("value=\"not-an-email\""),
        "the typed email kept"
    );
    let role = format!("/members/{dev}/role");
    let p = post_form(
        &t,
        &role,
        Some(&cookie),
        &[("csrf_token", &csrf), ("role", "billing")],
    )
    .await;
    assert_eq!(p.status, 303, "{}", p.html);
    let listed = get_page(&t, "/members", Some(&cookie)).await;
    let row = &listed.html[listed.html.find("data-member=\"dev@example.com\"").unwrap()..];
    assert!(
        row[..row.find("</tr>").unwrap()].contains(">billing</td>"),
        "{row}"
    );
    let remove = format!("/members/{dev}/remove");
    let p = post_form(&t, &remove, Some(&cookie), &[("csrf_token", &csrf)]).await;
    assert_eq!(p.headers[LOCATION], "/members?done=removed");
    let listed = get_page(&t, "/members", Some(&cookie)).await;
    assert!(!listed.html.contains("dev@example.com"));
}

async fn a_password_is_reset_through_the_pages_once(setup: Setup) {
    let t = TestApp::spawn_with(setup).await;
    add_member(&t, &t.org, OWNER, Role::Owner).await;
    let ask = get_page(&t, "/reset", None).await;
    assert_eq!(ask.status, 200);
    assert_csp(&ask);
    assert!(ask.html.contains("<label for=\"email\">"));
    let empty = post_form(&t, "/reset", None, &[("email", "")]).await;
    assert_eq!(empty.status, 400);
    assert!(empty.html.contains("id=\"email-error\""), "{}", empty.html);
    let nobody = post_form(&t, "/reset", None, &[("email", "nobody@example.com")]).await;
    let sent = post_form(&t, "/reset", None, &[("email", OWNER)]).await;
    assert_eq!((nobody.status, sent.status), (200, 200));
    assert!(
        sent.html.contains("data-testid=\"notice\""),
        "{}",
        sent.html
    );
    assert_eq!(
        crate::accounts::outbox(&t).len(),
        1,
        "only the account's email is sent"
    );
    let token = link_token(&t, OWNER, "/reset/");
    let path = format!("/reset/{token}");
    let open = get_page(&t, &path, None).await;
    assert_eq!(open.status, 200, "{}", open.html);
    assert_csp(&open);
    assert!(open
        .html
        .contains(&format!("data-testid=\"reset-email\">{OWNER}<")));
    let short = post_form(&t, &path, None, &[("password", "short")]).await;
    assert_eq!(short.status, 400, "{}", short.html);
    assert!(
        short.html.contains("id=\"password-error\""),
        "{}",
        short.html
    );
    let done = post_form(&t, &path, None, &[("password", NEW_PASSWORD)]).await;
    assert_eq!(done.status, 200, "{}", done.html);
    assert!(
        done.html.contains("Your password is changed"),
        "{}",
        done.html
    );
    let old = post_form(
        &t,
        "/sign-in",
        None,
        &[("email", OWNER), ("password", crate::accounts::PASSWORD)],
    )
    .await;
    assert_eq!(old.status, 401, "{}", old.html);
    let new = post_form(
        &t,
        "/sign-in",
        None,
        &[("email", OWNER), ("password", NEW_PASSWORD)],
    )
    .await;
    assert_eq!(new.status, 303, "{}", new.html);
    let again = get_page(&t, &path, None).await;
    assert_eq!(again.status, 404, "the link works once");
    let replay = post_form(&t, &path, None, &[("password", "another long passphrase")]).await;
    assert_eq!(replay.status, 404);
}

async fn sign_up_through_the_page_only_when_open(setup: Setup) {
    let closed = TestApp::spawn_with(setup.clone()).await;
    let p = get_page(&closed, "/sign-up", None).await;
    assert_eq!(p.status, 403);
    assert!(
        p.html.contains("data-testid=\"signup-closed\""),
        "{}",
        p.html
    );
    let fields = [
        ("name", "Nina"),
        ("email", "nina@example.com"),
        ("password", NEW_PASSWORD),
    ];
    assert_eq!(
        post_form(&closed, "/sign-up", None, &fields).await.status,
        403
    );
    let t = TestApp::spawn_with(Setup {
        signup_open: true,
        ..setup
    })
    .await;
    let p = get_page(&t, "/sign-up", None).await;
    assert_eq!(p.status, 200);
    assert_csp(&p);
    assert!(p.html.contains("<label for=\"organization_name\">"));
    let short = [
        ("name", "Nina"),
        ("email", "nina@example.com"),
        ("password", "short"),
    ];
    let p = post_form(&t, "/sign-up", None, &short).await;
    assert_eq!(p.status, 400, "{}", p.html);
    assert!(p.html.contains("id=\"password-error\""), "{}", p.html);
    assert!(
        p.html.contains("value=\"nina@example.com\""),
        "typed values kept"
    );
    let made = post_form(&t, "/sign-up", None, &fields).await;
    assert_eq!(made.status, 303, "{}", made.html);
    let set = made.headers[SET_COOKIE].to_str().unwrap();
    let session = set
        .split(';')
        .next()
        .unwrap()
        .strip_prefix("cg_session=")
        .unwrap();
    let members = get_page(&t, "/members", Some(session)).await;
    assert!(
        members.html.contains("nina@example.com · owner"),
        "{}",
        members.html
    );
    let again = post_form(&t, "/sign-up", None, &fields).await;
    assert_eq!(again.status, 409, "the email is taken: {}", again.html);
}

crate::on_both_databases!(
    sign_up_through_the_page_only_when_open,
    a_password_is_reset_through_the_pages_once,
    a_user_sees_the_members_but_no_action_and_cannot_post_one,
    an_invitation_is_sent_accepted_on_its_page_and_used_once,
    owner_rules_and_bad_input_are_shown_beside_their_form,
);
