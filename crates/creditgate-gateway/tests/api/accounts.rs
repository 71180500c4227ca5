//! Members, roles and sign-in, over HTTP: sessions with CSRF, invitations and resets through
//! the outbox, the owner rules, admin keys, tenant isolation, the operator routes.

use creditgate_core::accounts::{Email, Role, User};
use creditgate_core::clock::Timestamp;
use creditgate_core::ids::{OrganizationId, UserId};
use creditgate_gateway::passwords::hash_password;
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{body, credits, JsonReply, Setup, TestApp, ADMIN_KEY};

pub const OWNER_EMAIL: &str = "owner@example.com";
pub const PASSWORD: &str = "a long enough passphrase";

/// How a request is authenticated.
#[derive(Clone, Debug)]
pub enum Cred {
    None,
    /// `x-api-key` (an inference key or an admin key).
    Key(String),
    /// The operator's Bearer key.
    Operator,
    /// A session cookie, with the CSRF token sent or not.
    Session {
        cookie: String,
        csrf: Option<String>,
    },
}

/// A signed-in member.
#[derive(Clone, Debug)]
pub struct SignedIn {
    pub cookie: String,
    pub csrf: String,
    pub user_id: String,
}

impl SignedIn {
    pub fn cred(&self) -> Cred {
        Cred::Session {
            cookie: self.cookie.clone(),
            csrf: Some(self.csrf.clone()),
        }
    }
}

pub async fn call(
    t: &TestApp,
    method: Method,
    path: &str,
    cred: &Cred,
    body: Option<Value>,
) -> JsonReply {
    let req = request(t, method, path, cred, body);
    JsonReply::read(req.send().await.expect("request sent")).await
}

/// The request [`call`] sends, for a caller that reads the answer its own way (a stream).
pub fn request(
    t: &TestApp,
    method: Method,
    path: &str,
    cred: &Cred,
    body: Option<Value>,
) -> reqwest::RequestBuilder {
    let mut req = t.client.request(method, t.url(path));
    req = match cred {
        Cred::None => req,
        Cred::Key(k) => req.header("x-api-key", k),
        Cred::Operator => req.header("authorization", format!("Bearer {ADMIN_KEY}")),
        Cred::Session { cookie, csrf } => {
            let req = req.header("cookie", format!("cg_session={cookie}"));
            match csrf {
                Some(c) => req.header("x-csrf-token", c),
                None => req,
            }
        }
    };
    match body {
        Some(b) => req.json(&b),
        None => req,
    }
}

/// Adds a member with a password directly through the storage (as the CLI would).
pub async fn add_member(t: &TestApp, org: &OrganizationId, email: &str, role: Role) -> UserId {
    let user = User {
        id: UserId::parse(&format!("user_{}", crate::helpers::random_hex(6))).unwrap(),
        email: Email::parse(email).unwrap(),
        name: email.split('@').next().unwrap().to_owned(),
        created_at: Timestamp::from_millis(0),
    };
    let hash = hash_password(PASSWORD.to_owned()).await.unwrap();
    assert!(t.app.db.create_user(&user, Some(&hash)).await.unwrap());
    assert!(t
        .app
        .db
        .add_member(org, &user.id, role, t.app.clock.now())
        .await
        .unwrap());
    user.id
}

pub async fn sign_in(t: &TestApp, email: &str, password: &str) -> JsonReply {
    call(
        t,
        Method::POST,
        "/auth/sign-in",
        &Cred::None,
        Some(json!({"email": email, "password": password})),
    )
    .await
}

pub fn session_of(reply: &JsonReply) -> SignedIn {
    assert_eq!(reply.status, 200, "{}", reply.body);
    let set = reply
        .headers
        .get("set-cookie")
        .expect("cookie set")
        .to_str()
        .unwrap();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Lax"),
        "{set}"
    );
    let cookie = set
        .split(';')
        .next()
        .unwrap()
        .strip_prefix("cg_session=")
        .unwrap()
        .to_owned();
    SignedIn {
        cookie,
        csrf: reply.body["csrf_token"].as_str().unwrap().to_owned(),
        user_id: reply.body["user"]["id"].as_str().unwrap().to_owned(),
    }
}

/// Adds a member and signs them in.
pub async fn member(t: &TestApp, email: &str, role: Role) -> SignedIn {
    add_member(t, &t.org, email, role).await;
    session_of(&sign_in(t, email, PASSWORD).await)
}

/// The emails in the outbox, oldest first.
pub fn outbox(t: &TestApp) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(t.outbox()) else {
        return Vec::new();
    };
    let mut names: Vec<_> = dir
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    names.sort();
    names
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect()
}

/// The token of the last link to `prefix` (`/invite/` or `/auth/password-reset/`) mailed to `to`.
pub fn link_token(t: &TestApp, to: &str, prefix: &str) -> String {
    let mail = outbox(t)
        .into_iter()
        .rev()
        .find(|m| m.contains(&format!("To: {to}")))
        .expect("mail sent");
    token_in(&mail, prefix)
}

/// The token of the link to `prefix` in one raw email.
pub fn token_in(mail: &str, prefix: &str) -> String {
    // Quoted-printable may wrap long lines; undo soft breaks first.
    let flat = mail.replace("=\r\n", "").replace("=\n", "");
    let start = flat.find(prefix).expect("link in mail") + prefix.len();
    flat[start..]
        .chars()
        .take_while(|c| c.is_ascii_hexdigit())
        .collect()
}

pub async fn admin_key(t: &TestApp, org: &OrganizationId) -> String {
    let r = call(
        t,
        Method::POST,
        &format!("/admin/v1/organizations/{org}/admin_keys"),
        &Cred::Operator,
        Some(json!({"name": "automation"})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["secret"].as_str().unwrap().to_owned()
}

pub fn actions(log: &JsonReply) -> Vec<String> {
    log.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect()
}

async fn owner_signs_in_invites_and_the_member_joins_once(setup: Setup) {
    let t = TestApp::spawn_with(setup).await;
    let owner = member(&t, OWNER_EMAIL, Role::Owner).await;
    let me = call(&t, Method::GET, "/v1/organizations/me", &owner.cred(), None).await;
    assert_eq!(
        (me.status, me.body["id"].as_str()),
        (200, Some(t.org.as_str()))
    );

    let invite = json!({"email": "Dev@Example.com", "role": "developer"});
    let no_csrf = Cred::Session {
        cookie: owner.cookie.clone(),
        csrf: None,
    };
    let r = call(
        &t,
        Method::POST,
        "/v1/organizations/invites",
        &no_csrf,
        Some(invite.clone()),
    )
    .await;
    assert_eq!(
        (r.status, r.body["error"]["type"].as_str()),
        (403, Some("permission_error"))
    );
    assert!(outbox(&t).is_empty(), "a refused request changes nothing");
    let wrong_csrf = Cred::Session {
        cookie: owner.cookie.clone(),
        csrf: Some("0".repeat(64)),
    };
    let r = call(
        &t,
        Method::POST,
        "/v1/organizations/invites",
        &wrong_csrf,
        Some(invite.clone()),
    )
    .await;
    assert_eq!(r.status, 403);

    let r = call(
        &t,
        Method::POST,
        "/v1/organizations/invites",
        &owner.cred(),
        Some(invite),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        (r.body["type"].as_str(), r.body["status"].as_str()),
        (Some("invite"), Some("pending"))
    );
    assert_eq!(r.body["email"], "dev@example.com");
    let token = link_token(&t, "dev@example.com", "/join/");
    assert_eq!(token.len(), 64);

    let shown = call(
        &t,
        Method::GET,
        &format!("/invite/{token}"),
        &Cred::None,
        None,
    )
    .await;
    assert_eq!(
        (shown.status, shown.body["role"].as_str()),
        (200, Some("developer"))
    );
    let weak = call(
        &t,
        Method::POST,
        &format!("/invite/{token}"),
        &Cred::None,
        Some(json!({"name": "Dev", "password": "password123"})),
    )
    .await;
    assert_eq!(weak.status, 400, "{}", weak.body);
    let joined = call(
        &t,
        Method::POST,
        &format!("/invite/{token}"),
        &Cred::None,
        Some(json!({"name": "Dev", "password": PASSWORD})),
    )
    .await;
    let dev = session_of(&joined);
    assert_eq!(joined.body["role"], "developer");
    let again = call(
        &t,
        Method::POST,
        &format!("/invite/{token}"),
        &Cred::None,
        Some(json!({"name": "Dev", "password": PASSWORD})),
    )
    .await;
    assert_eq!(again.status, 404, "single use");

    let users = call(
        &t,
        Method::GET,
        "/v1/organizations/users",
        &dev.cred(),
        None,
    )
    .await;
    let roles: Vec<_> = users.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["owner", "developer"]);
    assert_eq!(users.body["has_more"], false);
    let log = call(
        &t,
        Method::GET,
        "/v1/organizations/audit_log",
        &owner.cred(),
        None,
    )
    .await;
    assert_eq!(actions(&log), ["invite.accepted", "invite.created"]);
    let event = &log.body["data"][1];
    assert_eq!(
        (
            event["actor"]["type"].as_str(),
            event["actor"]["id"].as_str()
        ),
        (Some("user"), Some(owner.user_id.as_str()))
    );
    assert_eq!(event["ip"], "127.0.0.1");
    assert!(
        !log.body.to_string().contains(&token),
        "no secret in the audit log"
    );
}

async fn sessions_rotate_at_sign_in_and_sign_out_ends_them(setup: Setup) {
    let t = TestApp::spawn_with(setup).await;
    add_member(&t, &t.org, OWNER_EMAIL, Role::Owner).await;
    let planted = Cred::Session {
        cookie: "f".repeat(64),
        csrf: None,
    };
    let r = call(&t, Method::GET, "/v1/organizations/me", &planted, None).await;
    assert_eq!(r.status, 401, "a cookie from before sign-in is nobody");
    let first = session_of(&sign_in(&t, OWNER_EMAIL, PASSWORD).await);
    let second = session_of(&sign_in(&t, OWNER_EMAIL, PASSWORD).await);
    assert_ne!(first.cookie, second.cookie);
    assert_ne!(first.csrf, second.csrf);
    let who = call(&t, Method::GET, "/auth/session", &first.cred(), None).await;
    assert_eq!(who.body["csrf_token"].as_str(), Some(first.csrf.as_str()));

    let out = call(&t, Method::POST, "/auth/sign-out", &first.cred(), None).await;
    assert_eq!(out.status, 200, "{}", out.body);
    assert_eq!(
        call(&t, Method::GET, "/v1/organizations/me", &first.cred(), None)
            .await
            .status,
        401
    );
    assert_eq!(
        call(
            &t,
            Method::GET,
            "/v1/organizations/me",
            &second.cred(),
            None
        )
        .await
        .status,
        200
    );
    let third = session_of(&sign_in(&t, OWNER_EMAIL, PASSWORD).await);
    let all = call(
        &t,
        Method::POST,
        "/auth/sign-out",
        &third.cred(),
        Some(json!({"everywhere": true})),
    )
    .await;
    assert_eq!(all.body["sessions_ended"], 2);
    assert_eq!(
        call(
            &t,
            Method::GET,
            "/v1/organizations/me",
            &second.cred(),
            None
        )
        .await
        .status,
        401
    );
}

async fn failed_sign_ins_are_throttled_alike_for_every_email(setup: Setup) {
    let t = TestApp::spawn_with(setup).await;
    add_member(&t, &t.org, OWNER_EMAIL, Role::Owner).await;
    for email in [OWNER_EMAIL, "nobody@example.com"] {
        let mut answers = Vec::new();
        for _ in 0..5 {
            let r = sign_in(&t, email, "wrong password here").await;
            answers.push((r.status, r.body["error"]["message"].clone()));
        }
        assert!(
            answers.iter().all(|a| a.0 == 401 && a.1 == answers[0].1),
            "{answers:?}"
        );
        let throttled = sign_in(&t, email, PASSWORD).await;
        assert_eq!(
            throttled.status, 429,
            "even the right password waits: {}",
            throttled.body
        );
        assert_eq!(throttled.body["error"]["type"], "rate_limit_error");
        assert!(throttled.headers.contains_key("retry-after"));
    }
}

async fn password_reset_links_work_once_and_end_sessions(setup: Setup) {
    let t = TestApp::spawn_with(setup).await;
    let old = member(&t, OWNER_EMAIL, Role::Owner).await;
    let a = call(
        &t,
        Method::POST,
        "/auth/password-reset",
        &Cred::None,
        Some(json!({"email": OWNER_EMAIL})),
    )
    .await;
    let b = call(
        &t,
        Method::POST,
        "/auth/password-reset",
        &Cred::None,
        Some(json!({"email": "nobody@example.com"})),
    )
    .await;
    assert_eq!(
        (a.status, &a.body),
        (b.status, &b.body),
        "the same answer either way"
    );
    assert_eq!(outbox(&t).len(), 1);
    let token = link_token(&t, OWNER_EMAIL, "/reset/");
    let path = format!("/auth/password-reset/{token}");
    assert_eq!(
        call(&t, Method::GET, &path, &Cred::None, None).await.body["email"],
        OWNER_EMAIL
    );
    let short = call(
        &t,
        Method::POST,
        &path,
        &Cred::None,
        Some(json!({"password": "short"})),
    )
    .await;
    assert_eq!(short.status, 400);
    let new_password = "another long passphrase";
    let done = call(
        &t,
        Method::POST,
        &path,
        &Cred::None,
        Some(json!({"password": new_password})),
    )
    .await;
    assert_eq!(done.status, 200, "{}", done.body);
    let reuse = call(
        &t,
        Method::POST,
        &path,
        &Cred::None,
        Some(json!({"password": "yet another passphrase"})),
    )
    .await;
    assert_eq!(reuse.status, 404, "single use");
    assert_eq!(
        call(&t, Method::GET, "/v1/organizations/me", &old.cred(), None)
            .await
            .status,
        401
    );
    assert_eq!(sign_in(&t, OWNER_EMAIL, PASSWORD).await.status, 401);
    assert_eq!(sign_in(&t, OWNER_EMAIL, new_password).await.status, 200);
}

async fn roles_and_owner_rules_are_enforced(setup: Setup) {
    let t = TestApp::spawn_with(setup).await;
    let owner = member(&t, OWNER_EMAIL, Role::Owner).await;
    let admin = member(&t, "admin@example.com", Role::Admin).await;
    let user = member(&t, "user@example.com", Role::User).await;
    let billing = member(&t, "billing@example.com", Role::Billing).await;
    let dev = member(&t, "dev@example.com", Role::Developer).await;
    let path = |id: &str| format!("/v1/organizations/users/{id}");

    let r = call(
        &t,
        Method::POST,
        &path(&user.user_id),
        &user.cred(),
        Some(json!({"role": "admin"})),
    )
    .await;
    assert_eq!(r.status, 403, "no self-raise: {}", r.body);
    let r = call(
        &t,
        Method::POST,
        &path(&admin.user_id),
        &admin.cred(),
        Some(json!({"role": "developer"})),
    )
    .await;
    assert_eq!(r.status, 403, "no changing one's own role");
    let r = call(
        &t,
        Method::POST,
        &path(&user.user_id),
        &admin.cred(),
        Some(json!({"role": "owner"})),
    )
    .await;
    assert_eq!(r.status, 400, "owner only by transfer");
    let r = call(
        &t,
        Method::POST,
        &path(&user.user_id),
        &admin.cred(),
        Some(json!({"role": "root"})),
    )
    .await;
    assert_eq!(
        (r.status, r.body["error"]["type"].as_str()),
        (400, Some("invalid_request_error"))
    );
    assert!(r.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("role"));
    let r = call(
        &t,
        Method::POST,
        &path(&user.user_id),
        &admin.cred(),
        Some(json!({"role": "billing"})),
    )
    .await;
    assert_eq!((r.status, r.body["role"].as_str()), (200, Some("billing")));
    let r = call(
        &t,
        Method::POST,
        &path(&owner.user_id),
        &admin.cred(),
        Some(json!({"role": "user"})),
    )
    .await;
    assert_eq!(r.status, 403, "the owner is not demoted");
    let r = call(
        &t,
        Method::DELETE,
        &path(&owner.user_id),
        &owner.cred(),
        None,
    )
    .await;
    assert_eq!(r.status, 403, "the last owner cannot leave: {}", r.body);

    let key = json!({"name": "ci"});
    let r = call(
        &t,
        Method::POST,
        "/v1/organizations/api_keys",
        &billing.cred(),
        Some(key.clone()),
    )
    .await;
    assert_eq!(r.status, 403);
    let r = call(
        &t,
        Method::POST,
        "/v1/organizations/api_keys",
        &dev.cred(),
        Some(key),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = call(
        &t,
        Method::POST,
        "/v1/organizations/invites",
        &dev.cred(),
        Some(json!({"email": "x@example.com", "role": "user"})),
    )
    .await;
    assert_eq!(r.status, 403);
    let r = call(
        &t,
        Method::POST,
        "/v1/organizations/invites",
        &admin.cred(),
        Some(json!({"email": "not an email", "role": "user"})),
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(r.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("email"));

    let r = call(
        &t,
        Method::POST,
        "/v1/organizations/transfer_ownership",
        &admin.cred(),
        Some(json!({"user_id": admin.user_id})),
    )
    .await;
    assert_eq!(r.status, 403);
    let r = call(
        &t,
        Method::POST,
        "/v1/organizations/transfer_ownership",
        &owner.cred(),
        Some(json!({"user_id": admin.user_id})),
    )
    .await;
    assert_eq!(
        (r.status, r.body["role"].as_str()),
        (200, Some("owner")),
        "{}",
        r.body
    );
    let r = call(
        &t,
        Method::DELETE,
        &path(&owner.user_id),
        &owner.cred(),
        None,
    )
    .await;
    assert_eq!(
        r.body["type"], "user_deleted",
        "the former owner may leave now: {}",
        r.body
    );
    let r = call(&t, Method::DELETE, &path(&dev.user_id), &dev.cred(), None).await;
    assert_eq!(r.status, 200, "a member may leave");
}

async fn admin_keys_and_inference_keys_stay_in_their_lanes(setup: Setup) {
    let t = TestApp::spawn_with(setup).await;
    let admin = admin_key(&t, &t.org).await;
    assert!(admin.starts_with("sk-cg-admin-"));
    let r = t.message_as(&admin, &body(8, "")).await;
    assert_eq!(r.status, 401, "an admin key is refused on /v1/messages");
    assert_eq!(t.balance().await.active_holds, 0);
    let r = call(
        &t,
        Method::GET,
        "/v1/organizations/me",
        &Cred::Key(t.api_key.clone()),
        None,
    )
    .await;
    assert_eq!(
        r.status, 401,
        "an inference key is refused on /v1/organizations/*"
    );
    let r = call(
        &t,
        Method::GET,
        "/v1/organizations/me",
        &Cred::Key(ADMIN_KEY.into()),
        None,
    )
    .await;
    assert_eq!(r.status, 401, "the operator key is not an organization key");
    let admin_cred = Cred::Key(admin.clone());
    let r = call(
        &t,
        Method::POST,
        "/v1/organizations/api_keys",
        &admin_cred,
        Some(json!({"name": "from automation"})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let secret = r.body["secret"].as_str().unwrap().to_owned();
    let hint = r.body["partial_key_hint"].as_str().unwrap();
    assert!(hint.starts_with("sk-cg-") && hint.ends_with(&secret[secret.len() - 4..]));
    assert_eq!(r.body["created_by"]["type"], "admin_key");
    let list = call(
        &t,
        Method::GET,
        "/v1/organizations/api_keys",
        &admin_cred,
        None,
    )
    .await;
    assert_eq!(list.body["data"].as_array().unwrap().len(), 2);
    assert!(
        !list.body.to_string().contains(&secret),
        "the secret is shown once"
    );
    assert_eq!(t.message_as(&secret, &body(8, "")).await.status, 200);

    let keys = call(
        &t,
        Method::GET,
        "/v1/organizations/admin_keys",
        &admin_cred,
        None,
    )
    .await;
    let id = keys.body["data"][0]["id"].as_str().unwrap().to_owned();
    let r = call(
        &t,
        Method::POST,
        &format!("/v1/organizations/admin_keys/{id}"),
        &admin_cred,
        Some(json!({"status": "inactive"})),
    )
    .await;
    assert_eq!(r.body["status"], "inactive");
    assert_eq!(
        call(&t, Method::GET, "/v1/organizations/me", &admin_cred, None)
            .await
            .status,
        401
    );
}

async fn another_organizations_ids_answer_404(setup: Setup) {
    let t = TestApp::spawn_with(setup).await;
    let mine = admin_key(&t, &t.org).await;
    let (other, _) = t.other_org(credits("10")).await;
    let theirs = admin_key(&t, &other).await;
    let their_user = add_member(&t, &other, "them@example.com", Role::Admin).await;
    let their_keys = call(
        &t,
        Method::GET,
        "/v1/organizations/api_keys",
        &Cred::Key(theirs.clone()),
        None,
    )
    .await;
    let their_key = their_keys.body["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let inv = call(
        &t,
        Method::POST,
        "/v1/organizations/invites",
        &Cred::Key(theirs),
        Some(json!({"email": "new@example.com", "role": "user"})),
    )
    .await;
    let their_invite = inv.body["id"].as_str().unwrap().to_owned();
    let me = Cred::Key(mine);
    for (method, path, body) in [
        (
            Method::GET,
            format!("/v1/organizations/api_keys/{their_key}"),
            None,
        ),
        (
            Method::POST,
            format!("/v1/organizations/api_keys/{their_key}"),
            Some(json!({"status": "inactive"})),
        ),
        (
            Method::GET,
            format!("/v1/organizations/users/{their_user}"),
            None,
        ),
        (
            Method::POST,
            format!("/v1/organizations/users/{their_user}"),
            Some(json!({"role": "user"})),
        ),
        (
            Method::DELETE,
            format!("/v1/organizations/users/{their_user}"),
            None,
        ),
        (
            Method::GET,
            format!("/v1/organizations/invites/{their_invite}"),
            None,
        ),
        (
            Method::DELETE,
            format!("/v1/organizations/invites/{their_invite}"),
            None,
        ),
        (
            Method::GET,
            "/v1/organizations/api_keys/key_doesnotexist".to_owned(),
            None,
        ),
    ] {
        let r = call(&t, method.clone(), &path, &me, body).await;
        assert_eq!(
            (r.status, r.body["error"]["type"].as_str()),
            (404, Some("not_found_error")),
            "{method} {path}"
        );
    }
    let still = t.app.db.api_keys(Some(&other)).await.unwrap();
    assert!(still
        .iter()
        .all(|k| k.status == creditgate_core::keys::KeyStatus::Active));
}

async fn the_operator_creates_searches_suspends_and_grants(setup: Setup) {
    let t = TestApp::spawn_with(setup).await;
    let r = call(
        &t,
        Method::POST,
        "/admin/v1/organizations",
        &Cred::Operator,
        Some(json!({"name": "Acme Research", "owner_email": "boss@acme.example"})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let org = r.body["id"].as_str().unwrap().to_owned();
    let token = link_token(&t, "boss@acme.example", "/join/");
    let joined = call(
        &t,
        Method::POST,
        &format!("/invite/{token}"),
        &Cred::None,
        Some(json!({"name": "Boss", "password": PASSWORD})),
    )
    .await;
    assert_eq!(joined.body["role"], "owner", "{}", joined.body);

    let found = call(
        &t,
        Method::GET,
        "/admin/v1/organizations?q=acme",
        &Cred::Operator,
        None,
    )
    .await;
    let ids: Vec<_> = found.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [org.as_str()]);
    let grant = json!({"amount": "25.5", "category": "granted", "expires_in_days": 30, "reference": "promo-1"});
    let path = format!("/admin/v1/organizations/{org}/grants");
    let first = call(
        &t,
        Method::POST,
        &path,
        &Cred::Operator,
        Some(grant.clone()),
    )
    .await;
    assert_eq!(
        (first.status, first.body["amount"].as_str()),
        (200, Some("25.5")),
        "{}",
        first.body
    );
    let replay = call(&t, Method::POST, &path, &Cred::Operator, Some(grant)).await;
    assert_eq!(replay.body["id"], first.body["id"]);
    let org_id = OrganizationId::parse(&org).unwrap();
    assert_eq!(
        t.balance_of(&org_id).await.posted,
        credits("25.5"),
        "granted once"
    );
    let bad = call(
        &t,
        Method::POST,
        &path,
        &Cred::Operator,
        Some(json!({"amount": "-1", "category": "granted", "reference": "x"})),
    )
    .await;
    assert_eq!(bad.status, 400);

    let key = t.app.db.create_api_key(&org_id, "k", None).await.unwrap().1;
    assert_eq!(t.message_as(key.expose(), &body(8, "")).await.status, 200);
    let r = call(
        &t,
        Method::POST,
        &format!("/admin/v1/organizations/{org}"),
        &Cred::Operator,
        Some(json!({"status": "suspended"})),
    )
    .await;
    assert_eq!(r.body["status"], "suspended");
    // Suspension reaches the key within the key cache's half second.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    let refused = loop {
        let r = t.message_as(key.expose(), &body(8, "")).await;
        if r.status != 200 || std::time::Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(
        (refused.status, refused.body["error"]["type"].as_str()),
        (403, Some("permission_error")),
        "{}",
        refused.body
    );
    let log = call(
        &t,
        Method::GET,
        &format!("/admin/v1/audit_log?organization_id={org}"),
        &Cred::Operator,
        None,
    )
    .await;
    assert_eq!(
        actions(&log),
        [
            "organization.suspended",
            "credits.granted",
            "invite.accepted",
            "invite.created",
            "organization.created"
        ]
    );
    let r = call(
        &t,
        Method::GET,
        "/admin/v1/organizations",
        &Cred::Key(t.api_key.clone()),
        None,
    )
    .await;
    assert_eq!(r.status, 401);
}

async fn operator(t: &TestApp, method: Method, path: &str, body: Option<Value>) -> JsonReply {
    call(t, method, path, &Cred::Operator, body).await
}

async fn accept_invite(t: &TestApp, token: &str) -> JsonReply {
    let body = json!({"name": "Boss", "password": PASSWORD});
    call(
        t,
        Method::POST,
        &format!("/invite/{token}"),
        &Cred::None,
        Some(body),
    )
    .await
}

async fn the_operator_invites_an_owner_only_where_there_is_none(setup: Setup) {
    let t = TestApp::spawn_with(setup).await;
    let r = operator(
        &t,
        Method::POST,
        "/admin/v1/organizations",
        Some(json!({"name": "Ownerless"})),
    )
    .await;
    assert_eq!(
        (r.status, &r.body["owner"]),
        (200, &Value::Null),
        "{}",
        r.body
    );
    let org = r.body["id"].as_str().unwrap().to_owned();
    let path = format!("/admin/v1/organizations/{org}");

    // Every field is checked before anything changes.
    let bad = operator(
        &t,
        Method::POST,
        &path,
        Some(json!({"name": "Renamed", "disconnect_policy": "bogus"})),
    )
    .await;
    bad.assert_error(400, "invalid_request_error");
    let bad = operator(
        &t,
        Method::POST,
        &path,
        Some(json!({"name": "Renamed", "owner_email": "nope"})),
    )
    .await;
    bad.assert_error(400, "invalid_request_error");
    assert_eq!(
        operator(&t, Method::GET, &path, None).await.body["name"],
        "Ownerless"
    );

    let r = operator(
        &t,
        Method::POST,
        &path,
        Some(json!({"owner_email": "first@acme.example"})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let first = link_token(&t, "first@acme.example", "/join/");
    // A second invitation replaces the first: one link at a time can make an owner.
    let r = operator(
        &t,
        Method::POST,
        &path,
        Some(json!({"owner_email": "second@acme.example", "name": "Acme"})),
    )
    .await;
    assert_eq!(
        (r.status, r.body["name"].as_str()),
        (200, Some("Acme")),
        "{}",
        r.body
    );
    let second = link_token(&t, "second@acme.example", "/join/");
    assert_eq!(
        accept_invite(&t, &first).await.status,
        404,
        "the replaced link is dead"
    );
    let joined = accept_invite(&t, &second).await;
    assert_eq!(joined.body["role"], "owner", "{}", joined.body);
    let shown = operator(&t, Method::GET, &path, None).await;
    assert_eq!(shown.body["owner"]["email"], "second@acme.example");

    let r = operator(
        &t,
        Method::POST,
        &path,
        Some(json!({"owner_email": "third@acme.example"})),
    )
    .await;
    r.assert_error(409, "invalid_request_error");
    assert!(
        r.error_message().contains("transfer_ownership"),
        "{}",
        r.body
    );
    let log = operator(
        &t,
        Method::GET,
        &format!("/admin/v1/audit_log?organization_id={org}"),
        None,
    )
    .await;
    assert_eq!(
        actions(&log),
        [
            "invite.accepted",
            "invite.created",
            "invite.deleted",
            "organization.renamed",
            "invite.created",
            "organization.created"
        ]
    );
}

crate::on_both_databases!(
    owner_signs_in_invites_and_the_member_joins_once,
    sessions_rotate_at_sign_in_and_sign_out_ends_them,
    failed_sign_ins_are_throttled_alike_for_every_email,
    password_reset_links_work_once_and_end_sessions,
    roles_and_owner_rules_are_enforced,
    admin_keys_and_inference_keys_stay_in_their_lanes,
    another_organizations_ids_answer_404,
    the_operator_creates_searches_suspends_and_grants,
    the_operator_invites_an_owner_only_where_there_is_none,
);
