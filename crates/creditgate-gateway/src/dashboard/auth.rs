//! The sign-in side of the dashboard: sign in, sign out, switch organization. Each form calls
//! the `/auth/*` handler of `sign_in` itself, so throttling, sessions and cookies are the API's
//! (`docs/dashboard.md`, `docs/accounts.md`).

use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use serde_json::json;

use super::form::{see_other, see_other_with_cookie, Fields};
use super::pages::{html, FormErrors, PageResult};
use super::viewer::Viewer;
use crate::error::ApiError;
use crate::sign_in::{self, ClientIp};
use crate::App;

#[derive(Template)]
#[template(path = "sign_in.html")]
pub struct SignInPage {
    pub email: String,
    pub errors: FormErrors,
    pub signup_open: bool,
    pub notice: String,
}

/// `GET /sign-in`.
pub async fn sign_in_page(State(app): State<Arc<App>>) -> Response {
    let page = SignInPage {
        email: String::new(),
        errors: FormErrors::default(),
        signup_open: app.cfg.accounts.signup_open,
        notice: String::new(),
    };
    html(StatusCode::OK, &page)
}

/// Turns form fields into the JSON body an `/auth/*` handler reads, refusing what does not fit.
pub fn body<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    serde_json::from_value(value).map_err(|e| ApiError::invalid_request(e.to_string()))
}

/// `POST /sign-in`: `POST /auth/sign-in`, then the overview with the session cookie.
pub async fn sign_in(State(app): State<Arc<App>>, ip: ClientIp, form: Fields) -> Response {
    let email = form.get("email").to_owned();
    // Passwords are taken as typed (spaces included), as the API takes them.
    let password = form.0.iter().find(|(k, _)| k == "password");
    let password = password.map(|(_, v)| v.as_str()).unwrap_or("");
    let missing = if email.is_empty() {
        Some(("email", "Enter your email."))
    } else if password.is_empty() {
        Some(("password", "Enter your password."))
    } else {
        None
    };
    let (status, errors) = match missing {
        Some((field, message)) => (
            StatusCode::BAD_REQUEST,
            FormErrors::on_field(field, message),
        ),
        None => {
            let request = body(json!({"email": email, "password": password}));
            let result = match request {
                Ok(b) => sign_in::sign_in(State(app.clone()), ip, Json(b)).await,
                Err(e) => Err(e),
            };
            match result {
                Ok(answer) => return see_other_with_cookie(&answer, "/"),
                Err(e) => (e.status, FormErrors::from_error(&e, &[])),
            }
        }
    };
    let page = SignInPage {
        email,
        errors,
        signup_open: app.cfg.accounts.signup_open,
        notice: String::new(),
    };
    html(status, &page)
}

/// `POST /sign-out`: `POST /auth/sign-out`, then the sign-in page.
pub async fn sign_out(State(app): State<Arc<App>>, viewer: Viewer) -> PageResult {
    let answer = sign_in::sign_out(State(app), viewer.caller, None).await?;
    Ok(see_other_with_cookie(&answer, "/sign-in"))
}

/// `POST /switch`: acts in another organization of the member (a fresh session).
pub async fn switch(State(app): State<Arc<App>>, viewer: Viewer, form: Fields) -> PageResult {
    let to = form.get("organization_id");
    if to == viewer.caller.org.as_str() {
        return Ok(see_other("/"));
    }
    let answer = sign_in::switch_organization(&app, &viewer.caller, to).await?;
    Ok(see_other_with_cookie(&answer, "/"))
}
