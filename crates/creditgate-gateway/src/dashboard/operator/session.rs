//! The operator's sign-in to the console: the config's `admin_key` typed once, answered with a
//! random session token in an HttpOnly, SameSite=Strict cookie (the key itself is never in a
//! cookie), sessions kept in this process's memory with a CSRF token each, and the [`Console`]
//! extractor every console page and form goes through (`docs/dashboard.md`, "Operator
//! console").

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use askama::Template;
use axum::extract::{FromRequestParts, State};
use axum::http::header::SET_COOKIE;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use creditgate_core::clock::Timestamp;

use crate::caller::{client_ip, constant_time_eq, cookie, token_hash, Operator, CSRF_HEADER};
use crate::dashboard::form::{see_other, Fields};
use crate::dashboard::pages::{html, ErrorPage, FormErrors};
use crate::error::ApiError;
use crate::passwords::random_token;
use crate::App;

/// The console's session cookie (the members' `cg_session` is another credential).
pub const OPERATOR_COOKIE: &str = "cg_operator";
/// A console session ends this long after sign-in, however busy (the idle limit is the
/// members' `accounts.session_idle_minutes`).
pub const MAX_SESSION_MS: i64 = 12 * 60 * 60 * 1000;
/// Sessions one process keeps; past it the one that expires first is dropped.
pub const MAX_SESSIONS: usize = 1000;

#[derive(Debug, Clone)]
struct Session {
    csrf: String,
    idle_until: Timestamp,
    ends_at: Timestamp,
}

/// The console's sessions, by the SHA-256 of their token. In memory: a restart signs the
/// operator out, and each replica has its own (`docs/dashboard.md`).
#[derive(Debug, Default)]
pub struct OperatorSessions(Mutex<HashMap<String, Session>>);

impl OperatorSessions {
    fn start(&self, now: Timestamp, idle_ms: i64) -> (String, String) {
        let (token, csrf) = (random_token(), random_token());
        let session = Session {
            csrf: csrf.clone(),
            idle_until: now.plus_millis(idle_ms),
            ends_at: now.plus_millis(MAX_SESSION_MS),
        };
        let mut all = self.0.lock().unwrap_or_else(|e| e.into_inner());
        all.retain(|_, s| s.idle_until > now && s.ends_at > now);
        if all.len() >= MAX_SESSIONS {
            if let Some(oldest) = all
                .iter()
                .min_by_key(|(_, s)| s.ends_at)
                .map(|(k, _)| k.clone())
            {
                all.remove(&oldest);
            }
        }
        all.insert(token_hash(&token), session);
        (token, csrf)
    }

    /// The session's CSRF token, its idle expiry pushed forward; `None` when unknown or over.
    fn touch(&self, token: &str, now: Timestamp, idle_ms: i64) -> Option<String> {
        let mut all = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let hash = token_hash(token);
        let live = all
            .get(&hash)
            .is_some_and(|s| s.idle_until > now && s.ends_at > now);
        if !live {
            all.remove(&hash);
            return None;
        }
        let session = all.get_mut(&hash)?;
        session.idle_until = now.plus_millis(idle_ms);
        Some(session.csrf.clone())
    }

    fn end(&self, token: &str) {
        let mut all = self.0.lock().unwrap_or_else(|e| e.into_inner());
        all.remove(&token_hash(token));
    }
}

/// A signed-in operator on a console page: the same [`Operator`] the `/admin/v1` handlers take,
/// and the CSRF token the page's forms carry.
pub struct Console {
    pub op: Operator,
    pub csrf: String,
}

impl FromRequestParts<Arc<App>> for Console {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, Response> {
        let now = app.clock.now();
        let idle = app.cfg.accounts.session_idle_ms;
        let csrf = cookie(&parts.headers, OPERATOR_COOKIE)
            .and_then(|token| app.operator_sessions.touch(token, now, idle));
        let Some(csrf) = csrf else {
            if parts.method == Method::GET {
                return Err(Redirect::to("/operator/sign-in").into_response());
            }
            return Err(ErrorPage::response(ApiError::authentication(
                "Sign in to the operator console first.",
            )));
        };
        if parts.method != Method::GET {
            // The form's hidden token, lifted into the header by the dashboard's guard.
            let sent = parts.headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
            if !sent.is_some_and(|t| constant_time_eq(t.as_bytes(), csrf.as_bytes())) {
                return Err(ErrorPage::response(ApiError::permission(
                    "This form is out of date or was not sent by the console; reload the page and try again.",
                )));
            }
        }
        let op = Operator {
            ip: client_ip(parts),
        };
        Ok(Console { op, csrf })
    }
}

/// The console's sign-in page.
#[derive(Template, Default)]
#[template(path = "operator/sign_in.html")]
pub struct SignInPage {
    pub errors: FormErrors,
}

fn operator_cookie(app: &App, token: &str, max_age_s: i64) -> HeaderValue {
    // Secure whenever the gateway is reached over TLS, as the members' cookie.
    let secure = if app.cfg.accounts.public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    let text = format!(
        "{OPERATOR_COOKIE}={token}; Path=/operator; HttpOnly; SameSite=Strict; Max-Age={max_age_s}{secure}"
    );
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// `GET /operator/sign-in`.
pub async fn sign_in_page() -> Response {
    html(StatusCode::OK, &SignInPage::default())
}

/// `POST /operator/sign-in` (`key`): the operator key, compared in constant time. A wrong key
/// answers 401, which the gateway's throttle counts against the address like any other.
pub async fn sign_in(State(app): State<Arc<App>>, form: Fields) -> Response {
    // The key is taken as typed: it is a secret, not a name to trim.
    let typed = form
        .0
        .iter()
        .find(|(k, _)| k == "key")
        .map(|(_, v)| v.as_str());
    let refuse = |status, message: &str| {
        let page = SignInPage {
            errors: FormErrors::on_field("key", message),
        };
        html(status, &page)
    };
    let Some(expected) = app.cfg.admin_key.as_deref() else {
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "This gateway has no operator key (admin_key in its configuration).",
        );
    };
    match typed {
        None | Some("") => refuse(StatusCode::BAD_REQUEST, "Enter the operator key."),
        Some(t) if !constant_time_eq(t.as_bytes(), expected.as_bytes()) => {
            refuse(StatusCode::UNAUTHORIZED, "That is not the operator key.")
        }
        Some(_) => {
            let idle = app.cfg.accounts.session_idle_ms;
            let (token, _) = app.operator_sessions.start(app.clock.now(), idle);
            let mut r = see_other("/operator");
            let max_age = idle.min(MAX_SESSION_MS) / 1000;
            r.headers_mut()
                .insert(SET_COOKIE, operator_cookie(&app, &token, max_age));
            r
        }
    }
}

/// `POST /operator/sign-out`: ends the session here and clears the cookie.
pub async fn sign_out(
    State(app): State<Arc<App>>,
    _console: Console,
    headers: HeaderMap,
) -> Response {
    if let Some(token) = cookie(&headers, OPERATOR_COOKIE) {
        app.operator_sessions.end(token);
    }
    let mut r = see_other("/operator/sign-in");
    r.headers_mut()
        .insert(SET_COOKIE, operator_cookie(&app, "", 0));
    r
}
