//! Who manages an organization, as axum extractors: [`OrgCaller`] (an organization admin key
//! `sk-cg-admin-…` in `x-api-key` or, as recent Anthropic SDKs send keys, `Authorization: Bearer`;
//! or a member's `cg_session` cookie plus `x-csrf-token` on
//! every state-changing request) and [`Operator`] (the config's `admin_key` as a Bearer token).
//!
//! A handler takes the extractor and asks for what it needs:
//!
//! ```ignore
//! async fn handler(caller: OrgCaller, State(app): State<Arc<App>>) -> Result<Json<Value>, ApiError> {
//!     caller.require(Action::Read)?;
//!     let org = &caller.org; // every read and write is scoped to it
//!     …
//! }
//! ```
//!
//! A credential of the wrong kind gets 401, a right kind without the role 403 (`docs/accounts.md`).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method};
use creditgate_core::accounts::{Action, Actor, Role, Session, User};
use creditgate_core::clock::Timestamp;
use creditgate_core::ids::OrganizationId;
use creditgate_core::keys::{AdminKeySecret, ADMIN_KEY_PREFIX};
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::App;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "cg_session";
/// The header that must repeat the session's CSRF token on every state-changing request.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// An authenticated caller of the organization routes, acting in one organization with a role
/// (an admin key acts as `admin`).
#[derive(Debug, Clone)]
pub struct OrgCaller {
    pub org: OrganizationId,
    pub role: Role,
    pub actor: Actor,
    /// The signed-in member, for a session.
    pub user: Option<User>,
    /// The hash of the session token, for a session (sign-out ends it).
    pub session: Option<String>,
    /// The client's address, for the audit log.
    pub ip: Option<String>,
}

impl OrgCaller {
    /// 403 `permission_error` unless the caller's role allows `action` (`docs/accounts.md`).
    pub fn require(&self, action: Action) -> Result<(), ApiError> {
        self.role.require(action).map_err(ApiError::from)
    }
}

/// The operator, authenticated by the config's `admin_key`.
#[derive(Debug, Clone)]
pub struct Operator {
    pub ip: Option<String>,
}

/// The peer address of the connection (the gateway is served with connect info).
pub fn client_ip(parts: &Parts) -> Option<String> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_string())
}

/// The hex SHA-256 of a token: what is stored for sessions and emailed links.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Compares secrets without an early exit on the first differing byte.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let (a, b) = (Sha256::digest(a), Sha256::digest(b));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// The value of one cookie of the request.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all("cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn denied() -> ApiError {
    ApiError::authentication("invalid x-api-key or session")
}

impl FromRequestParts<Arc<App>> for OrgCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, ApiError> {
        let ip = client_ip(parts);
        // Anthropic's SDKs send an admin key as `x-api-key`; recent ones send every key as
        // `Authorization: Bearer`, which is taken when it holds an organization admin key.
        let presented = match parts.headers.get("x-api-key") {
            Some(v) => Some(v.to_str().ok()),
            None => bearer(parts)
                .filter(|t| t.starts_with(ADMIN_KEY_PREFIX))
                .map(Some),
        };
        if let Some(presented) = presented {
            let secret = presented.map(AdminKeySecret::parse);
            let Some(Ok(secret)) = secret else {
                return Err(denied());
            };
            let key = app.db.admin_key_by_hash(&secret.hash()).await?;
            let key = key.filter(|k| k.active).ok_or_else(denied)?;
            return Ok(OrgCaller {
                org: key.org,
                role: Role::Admin,
                actor: Actor::admin_key(key.id.as_str()),
                user: None,
                session: None,
                ip,
            });
        }
        let token = cookie(&parts.headers, SESSION_COOKIE).ok_or_else(denied)?;
        let hash = token_hash(token);
        let now = app.clock.now();
        let session = app.db.session(&hash, now).await?.ok_or_else(denied)?;
        if !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS) {
            let sent = parts.headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
            if !sent.is_some_and(|t| constant_time_eq(t.as_bytes(), session.csrf_token.as_bytes()))
            {
                return Err(ApiError::permission(
                    "This request needs the session's x-csrf-token header.",
                ));
            }
        }
        keep_alive(app, &hash, &session, now).await?;
        let member = session.member;
        Ok(OrgCaller {
            org: member.org,
            role: member.role,
            actor: Actor::user(member.user.id.as_str()),
            user: Some(member.user),
            session: Some(hash),
            ip,
        })
    }
}

/// The token of an `Authorization: Bearer …` header.
fn bearer(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
}

impl FromRequestParts<Arc<App>> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, ApiError> {
        match (&app.cfg.admin_key, bearer(parts)) {
            (Some(key), Some(token)) if constant_time_eq(key.as_bytes(), token.as_bytes()) => {
                Ok(Operator {
                    ip: client_ip(parts),
                })
            }
            _ => Err(ApiError::authentication("invalid operator key")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn cookies_are_found_among_others() {
        let mut h = HeaderMap::new();
        h.append(
            "cookie",
            HeaderValue::from_static("a=1; cg_session=abc ;b=2"),
        );
        assert_eq!(cookie(&h, "cg_session"), Some("abc"));
        assert_eq!(cookie(&h, "cg"), None);
        assert!(constant_time_eq(b"x", b"x"));
        assert!(!constant_time_eq(b"x", b"y"));
    }
}

/// A session is written back (its idle expiry pushed) at most this often.
const TOUCH_EVERY_MS: i64 = 60_000;

/// Pushes an active session's idle expiry forward, at most once a minute.
pub async fn keep_alive(
    app: &App,
    hash: &str,
    session: &Session,
    now: Timestamp,
) -> Result<(), ApiError> {
    let idle = app.cfg.accounts.session_idle_ms;
    if session.expires_at.millis() - now.millis() < idle - TOUCH_EVERY_MS {
        app.db
            .touch_session(hash, now, now.plus_millis(idle))
            .await?;
    }
    Ok(())
}

/// The credential a route takes (`docs/accounts.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No credential (health, sign-in, links from emails).
    Public,
    /// An inference key `sk-cg-…`.
    ApiKey,
    /// An organization admin key or a member session, with a role allowing the action.
    Organization(Action),
    /// A member session only (signing out, who am I).
    Session,
    /// The operator key.
    Operator,
    /// A dashboard page for a signed-in member (`docs/dashboard.md`): HTML, never in
    /// `/openapi.json`; without a session it redirects to the sign-in page, and what it does
    /// is checked by the service it calls, as over the API.
    Page,
    /// A dashboard page anyone may open (sign-in, sign-up, reset, invitation, the assets).
    PublicPage,
    /// An operator console page (`docs/dashboard.md`): the console's own session cookie, never
    /// the Bearer key; without it a page redirects to the console's sign-in and a form is 401.
    OperatorPage,
}

impl Access {
    /// Whether the route is a dashboard page rather than an API operation.
    pub fn is_page(self) -> bool {
        matches!(
            self,
            Access::Page | Access::PublicPage | Access::OperatorPage
        )
    }
}
