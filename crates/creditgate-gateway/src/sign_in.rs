//! Signing in and out (`docs/accounts.md`): argon2id passwords, sessions in the database behind the
//! `cg_session` cookie, throttled failures, password reset and invitation links, open sign-up.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use creditgate_core::accounts::{
    check_password, parse_name, Actor, Email, Member, Role, User, RESET_TTL_MS,
};
use creditgate_core::ids::UserId;
use creditgate_core::ledger::LotCategory;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::billing::{self, Expiry, GrantKey, GrantOrder};
use crate::caller::{token_hash, OrgCaller, SESSION_COOKIE};
use crate::error::ApiError;
use crate::members::{self, Change};
use crate::passwords::{hash_password, random_token, verify_password};
use crate::App;

/// Failed sign-ins counted per account and per address within this window.
pub const THROTTLE_WINDOW_MS: i64 = 15 * 60 * 1000;
/// Failures of one account (existing or not) within the window before sign-in is refused.
pub const MAX_FAILURES_PER_ACCOUNT: i64 = 5;
/// Failures from one address within the window before sign-in is refused.
pub const MAX_FAILURES_PER_ADDRESS: i64 = 20;
fn session_cookie(app: &App, token: &str, max_age_s: i64) -> HeaderValue {
    let secure = if app.cfg.accounts.public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    let text = format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_s}{secure}"
    );
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Starts a fresh session (a new token every time: a cookie from before sign-in is never the
/// one after it) and answers with its cookie and CSRF token.
async fn start_session(app: &App, member: Member) -> Result<Response, ApiError> {
    let now = app.clock.now();
    let token = random_token();
    let csrf = random_token();
    let idle = app.cfg.accounts.session_idle_ms;
    app.db
        .create_session(
            &token_hash(&token),
            &member,
            &csrf,
            now,
            now.plus_millis(idle),
        )
        .await?;
    let body = session_json(&member, &csrf);
    let mut resp = Json(body).into_response();
    resp.headers_mut()
        .insert(SET_COOKIE, session_cookie(app, &token, idle / 1000));
    Ok(resp)
}

fn session_json(member: &Member, csrf: &str) -> Value {
    json!({
        "type": "session",
        "user": members::user_json(member),
        "organization_id": member.org,
        "role": member.role.as_str(),
        "csrf_token": csrf,
    })
}

#[derive(Deserialize)]
pub struct SignIn {
    email: String,
    password: String,
    /// Which organization to act in, for a member of several (default: the oldest membership).
    organization_id: Option<String>,
}

/// `POST /auth/sign-in`.
pub async fn sign_in(
    State(app): State<Arc<App>>,
    ip: ClientIp,
    Json(req): Json<SignIn>,
) -> Result<Response, ApiError> {
    let refused = || ApiError::authentication("Wrong email or password.");
    let email = Email::parse(&req.email).map_err(|_| refused())?;
    let now = app.clock.now();
    let since = now.plus_millis(-THROTTLE_WINDOW_MS);
    let subjects = vec![
        format!("account:{email}"),
        format!("ip:{}", ip.0.as_deref().unwrap_or("unknown")),
    ];
    let by_account = app.db.sign_in_failures(&subjects[0], since).await?;
    let by_address = app.db.sign_in_failures(&subjects[1], since).await?;
    if by_account >= MAX_FAILURES_PER_ACCOUNT || by_address >= MAX_FAILURES_PER_ADDRESS {
        return Err(ApiError::rate_limited(
            "Too many failed sign-ins; try again later.",
            (THROTTLE_WINDOW_MS / 1000) as u64,
        ));
    }
    let found = app.db.user_by_email(&email).await?;
    let (user, hash) = match found {
        Some((u, h)) => (Some(u), h),
        None => (None, None),
    };
    let ok = verify_password(req.password, hash).await;
    let member = match (ok, user) {
        (true, Some(u)) => pick_membership(&app, &u, req.organization_id.as_deref()).await?,
        _ => None,
    };
    let Some(member) = member else {
        app.db.record_sign_in_failure(&subjects, now, since).await?;
        return Err(refused());
    };
    start_session(&app, member).await
}

async fn pick_membership(
    app: &App,
    user: &User,
    org: Option<&str>,
) -> Result<Option<Member>, ApiError> {
    let all = app.db.memberships_of(&user.id).await?;
    Ok(match org {
        Some(o) => all.into_iter().find(|m| m.org.as_str() == o),
        None => all.into_iter().next(),
    })
}

/// Moves a member's session to another organization they belong to (the dashboard's
/// organization switcher): the old session ends and a fresh one starts, as a sign-in would.
pub async fn switch_organization(
    app: &App,
    caller: &OrgCaller,
    organization_id: &str,
) -> Result<Response, ApiError> {
    let (Some(hash), Some(user)) = (&caller.session, &caller.user) else {
        return Err(ApiError::authentication(
            "Only a member session can switch.",
        ));
    };
    let member = pick_membership(app, user, Some(organization_id))
        .await?
        .ok_or_else(|| ApiError::not_found("You are not a member of that organization."))?;
    app.db.delete_session(hash).await?;
    start_session(app, member).await
}

#[derive(Deserialize, Default)]
pub struct SignOut {
    #[serde(default)]
    everywhere: bool,
}

/// `POST /auth/sign-out` (`{"everywhere": true}` ends every session of the member).
pub async fn sign_out(
    State(app): State<Arc<App>>,
    caller: OrgCaller,
    body: Option<Json<SignOut>>,
) -> Result<Response, ApiError> {
    let (Some(hash), Some(user)) = (&caller.session, &caller.user) else {
        return Err(ApiError::authentication(
            "Only a member session can sign out.",
        ));
    };
    let everywhere = body.map(|Json(b)| b.everywhere).unwrap_or(false);
    let ended = if everywhere {
        app.db.delete_user_sessions(&user.id).await?
    } else {
        app.db.delete_session(hash).await?;
        1
    };
    let mut resp = Json(json!({"type": "signed_out", "sessions_ended": ended})).into_response();
    resp.headers_mut()
        .insert(SET_COOKIE, session_cookie(&app, "", 0));
    Ok(resp)
}

/// `GET /auth/session`: who is signed in, with the CSRF token to send back.
pub async fn current(
    State(app): State<Arc<App>>,
    caller: OrgCaller,
) -> Result<Json<Value>, ApiError> {
    let (Some(hash), Some(user)) = (&caller.session, &caller.user) else {
        return Err(ApiError::authentication("No session."));
    };
    let session = app.db.session(hash, app.clock.now()).await?;
    let session = session.ok_or_else(|| ApiError::authentication("No session."))?;
    let _ = user;
    Ok(Json(session_json(&session.member, &session.csrf_token)))
}

#[derive(Deserialize)]
pub struct SignUp {
    email: String,
    password: String,
    name: String,
    organization_name: Option<String>,
}

/// `POST /auth/sign-up`, only with `[accounts] signup = "open"`: a new user owning a new
/// organization, with the operator's trial grant.
pub async fn sign_up(
    State(app): State<Arc<App>>,
    ip: ClientIp,
    Json(req): Json<SignUp>,
) -> Result<Response, ApiError> {
    if !app.cfg.accounts.signup_open {
        return Err(ApiError::permission(
            "Sign-up is by invitation only on this gateway.",
        ));
    }
    let email = Email::parse(&req.email)?;
    let name = parse_name("name", &req.name)?;
    check_password(&req.password, email.as_str())?;
    let org_name = match &req.organization_name {
        Some(n) => parse_name("organization_name", n)?,
        None => format!("{name}'s organization"),
    };
    let hash = hash_password(req.password).await?;
    let now = app.clock.now();
    let user = User {
        id: members::new_id("user", UserId::parse)?,
        email,
        name,
        created_at: now,
    };
    if !app.db.create_user(&user, Some(&hash)).await? {
        // Same answer shape as success would not be honest; the email is simply taken.
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "invalid_request_error",
            "An account with this email exists; sign in or reset the password.",
        ));
    }
    let change = Change::new(&app.db, Actor::user(user.id.as_str()), ip.0, now);
    let org = members::create_organization(&change, None, &org_name, None).await?;
    app.db
        .add_member(&org.id, &user.id, Role::Owner, now)
        .await?;
    change
        .audit(
            &org.id,
            "user.signed_up",
            "user",
            user.id.as_str(),
            json!({"email": user.email, "role": Role::Owner.as_str()}),
        )
        .await?;
    if let Some(trial) = app.cfg.accounts.trial_credits {
        let reference = format!("trial:{}", org.id);
        let order = GrantOrder {
            amount: trial,
            category: LotCategory::Granted,
            source: None,
            price_per_credit: None,
            expiry: Expiry::Never,
            memo: Some("trial".into()),
            key: GrantKey::Reference(reference),
        };
        billing::grant(&change, &org.id, order).await?;
    }
    let member = app.db.member(&org.id, &user.id).await?;
    start_session(
        &app,
        member.ok_or_else(|| ApiError::internal("membership lost"))?,
    )
    .await
}

#[derive(Deserialize)]
pub struct ResetRequest {
    email: String,
}

/// `POST /auth/password-reset`: emails a single-use link when the account exists; always
/// answers the same.
pub async fn request_reset(
    State(app): State<Arc<App>>,
    Json(req): Json<ResetRequest>,
) -> Result<Json<Value>, ApiError> {
    let answer = json!({"type": "password_reset_requested",
        "message": "If an account exists for this email, a reset link is on its way."});
    let Ok(email) = Email::parse(&req.email) else {
        return Ok(Json(answer));
    };
    if let Some((user, _)) = app.db.user_by_email(&email).await? {
        let token = random_token();
        let now = app.clock.now();
        app.db
            .create_password_reset(
                &token_hash(&token),
                &user.id,
                now,
                now.plus_millis(RESET_TTL_MS),
            )
            .await?;
        let link = format!("{}/reset/{token}", app.cfg.accounts.public_url);
        let body = format!(
            "Someone asked to reset the password of {email} on creditgate.\n\n\
             Choose a new password here (the link works once, for 30 minutes):\n{link}\n\n\
             If it was not you, ignore this message.\n"
        );
        if let Err(e) = app
            .mailer
            .send(email.as_str(), "Reset your password", body)
            .await
        {
            tracing::error!(error = %e, "password reset email not sent");
        }
    }
    Ok(Json(answer))
}

/// `GET /auth/password-reset/{token}`: whether the link still works, and for which email.
pub async fn reset_status(
    State(app): State<Arc<App>>,
    Path(token): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let user = app
        .db
        .password_reset_user(&token_hash(&token), app.clock.now())
        .await?
        .ok_or_else(|| ApiError::not_found("This reset link was used or has expired."))?;
    Ok(Json(json!({"type": "password_reset", "email": user.email})))
}

#[derive(Deserialize)]
pub struct NewPassword {
    password: String,
}

/// `POST /auth/password-reset/{token}` `{"password"}`: sets the password once and ends every
/// session of the account.
pub async fn reset_password(
    State(app): State<Arc<App>>,
    ip: ClientIp,
    Path(token): Path<String>,
    Json(req): Json<NewPassword>,
) -> Result<Json<Value>, ApiError> {
    let spent = || ApiError::not_found("This reset link was used or has expired.");
    let hash = token_hash(&token);
    let now = app.clock.now();
    let user = app
        .db
        .password_reset_user(&hash, now)
        .await?
        .ok_or_else(spent)?;
    check_password(&req.password, user.email.as_str())?;
    let new_hash = hash_password(req.password).await?;
    if !app
        .db
        .use_password_reset(&hash, &user.id, &new_hash, now)
        .await?
    {
        return Err(spent());
    }
    let change = Change::new(&app.db, Actor::user(user.id.as_str()), ip.0, now);
    for m in app.db.memberships_of(&user.id).await? {
        change
            .audit(
                &m.org,
                "user.password_reset",
                "user",
                user.id.as_str(),
                json!({}),
            )
            .await?;
    }
    Ok(Json(
        json!({"type": "password_reset_done", "email": user.email}),
    ))
}

/// `GET /invite/{token}`: the invitation behind a link.
pub async fn invite_status(
    State(app): State<Arc<App>>,
    Path(token): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let now = app.clock.now();
    let invite = app
        .db
        .invite_by_token(&token_hash(&token))
        .await?
        .filter(|i| i.status(now) == "pending")
        .ok_or_else(|| {
            ApiError::not_found("This invitation was used, withdrawn or has expired.")
        })?;
    let org = creditgate_core::ledger::LedgerStore::organization(&app.db, &invite.org).await?;
    let existing = app.db.user_by_email(&invite.email).await?.is_some();
    Ok(Json(json!({
        "type": "invite",
        "email": invite.email,
        "role": invite.role.as_str(),
        "organization": {"id": org.id, "name": org.name},
        "expires_at": invite.expires_at.to_rfc3339(),
        "account_exists": existing,
    })))
}

#[derive(Deserialize)]
pub struct AcceptInvite {
    name: Option<String>,
    password: String,
}

/// `POST /invite/{token}` `{"name","password"}`: joins the organization (creating the account,
/// or with an existing account's password) and signs in.
pub async fn accept_invite(
    State(app): State<Arc<App>>,
    ip: ClientIp,
    Path(token): Path<String>,
    Json(req): Json<AcceptInvite>,
) -> Result<Response, ApiError> {
    let member = members::accept_invite(&app, &token, req.name, req.password, ip.0).await?;
    start_session(&app, member).await
}

/// The client's address, when the server was started with connect info.
pub struct ClientIp(pub Option<String>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(crate::caller::client_ip(parts)))
    }
}
