//! Password reset on the dashboard: the request page (`/reset`, an email) and the page the
//! emailed link opens (`/reset/{token}`, a new password), each calling the
//! `/auth/password-reset` handlers of `sign_in` (`docs/dashboard.md`, `docs/accounts.md`).

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use serde_json::json;

use super::auth::{body, SignInPage};
use super::form::Fields;
use super::format::text;
use super::pages::{html, FormErrors};
use crate::sign_in::{self, ClientIp};
use crate::App;

#[derive(Template)]
#[template(path = "reset.html")]
pub struct ResetPage {
    /// Empty on the request page; the link's token on the new-password page.
    pub token: String,
    /// The account the link is for (empty when the link no longer works).
    pub email: String,
    pub notice: String,
    pub errors: FormErrors,
}

/// `GET /reset`: asks for the account's email.
pub async fn request_page() -> Response {
    let page = ResetPage {
        token: String::new(),
        email: String::new(),
        notice: String::new(),
        errors: FormErrors::default(),
    };
    html(StatusCode::OK, &page)
}

/// `POST /reset` (`POST /auth/password-reset`): the same answer whether or not the account
/// exists.
pub async fn request(State(app): State<Arc<App>>, form: Fields) -> Response {
    let email = form.get("email").to_owned();
    let mut page = ResetPage {
        token: String::new(),
        email: email.clone(),
        notice: String::new(),
        errors: FormErrors::default(),
    };
    if email.is_empty() {
        page.errors = FormErrors::on_field("email", "Enter your email.");
        return html(StatusCode::BAD_REQUEST, &page);
    }
    let answer = match body(json!({"email": email})) {
        Ok(b) => sign_in::request_reset(State(app), Json(b)).await,
        Err(e) => Err(e),
    };
    match answer {
        Ok(Json(a)) => page.notice = text(&a["message"]),
        Err(e) => {
            page.errors = FormErrors::from_error(&e, &["email"]);
            return html(e.status, &page);
        }
    }
    html(StatusCode::OK, &page)
}

/// The new-password page of `token`, or why the link no longer works.
async fn link_page(app: &Arc<App>, token: &str) -> (StatusCode, ResetPage) {
    let mut page = ResetPage {
        token: token.to_owned(),
        email: String::new(),
        notice: String::new(),
        errors: FormErrors::default(),
    };
    match sign_in::reset_status(State(app.clone()), Path(token.to_owned())).await {
        Ok(Json(s)) => {
            page.email = text(&s["email"]);
            (StatusCode::OK, page)
        }
        Err(e) => {
            page.errors = FormErrors::from_error(&e, &[]);
            (e.status, page)
        }
    }
}

/// `GET /reset/{token}`: the page the reset email links to.
pub async fn link(State(app): State<Arc<App>>, Path(token): Path<String>) -> Response {
    let (status, page) = link_page(&app, &token).await;
    html(status, &page)
}

/// `POST /reset/{token}` (`POST /auth/password-reset/{token}`): then the sign-in page.
pub async fn set_password(
    State(app): State<Arc<App>>,
    ip: ClientIp,
    Path(token): Path<String>,
    form: Fields,
) -> Response {
    let (status, mut page) = link_page(&app, &token).await;
    if !status.is_success() {
        return html(status, &page);
    }
    let password = form.0.iter().find(|(k, _)| k == "password");
    let password = password.map(|(_, v)| v.clone()).unwrap_or_default();
    if password.is_empty() {
        page.errors = FormErrors::on_field("password", "Enter a new password.");
        return html(StatusCode::BAD_REQUEST, &page);
    }
    let answer = match body(json!({"password": password})) {
        Ok(b) => sign_in::reset_password(State(app.clone()), ip, Path(token), Json(b)).await,
        Err(e) => Err(e),
    };
    match answer {
        Ok(_) => {
            let signed_out = SignInPage {
                email: page.email,
                errors: FormErrors::default(),
                signup_open: app.cfg.accounts.signup_open,
                notice: "Your password is changed. Sign in with the new one.".to_owned(),
            };
            html(StatusCode::OK, &signed_out)
        }
        Err(e) => {
            page.errors = FormErrors::from_error(&e, &["password"]);
            html(e.status, &page)
        }
    }
}
