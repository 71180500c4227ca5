//! Sign-up on the dashboard (`/sign-up`): when the operator allows open sign-up, a form calling
//! `POST /auth/sign-up`'s handler (a new user owning a new organization, signed in); otherwise
//! the page says sign-up is by invitation (`docs/dashboard.md`, `docs/accounts.md`).

use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use serde_json::json;

use super::auth::body;
use super::form::{see_other_with_cookie, Fields};
use super::pages::{html, FormErrors};
use crate::sign_in::{self, ClientIp};
use crate::App;

#[derive(Template)]
#[template(path = "sign_up.html")]
pub struct SignUpPage {
    pub open: bool,
    pub name: String,
    pub email: String,
    pub organization_name: String,
    pub errors: FormErrors,
}

/// A text field: `(name, label, value, type, autocomplete)`.
type Field<'a> = (
    &'static str,
    &'static str,
    &'a str,
    &'static str,
    &'static str,
);

impl SignUpPage {
    /// The form's text fields, in order.
    pub fn fields(&self) -> Vec<Field<'_>> {
        vec![
            ("name", "Your name", &self.name, "text", "name"),
            ("email", "Email", &self.email, "email", "username"),
            (
                "organization_name",
                "Organization name (optional)",
                &self.organization_name,
                "text",
                "organization",
            ),
        ]
    }
}

/// `GET /sign-up`.
pub async fn page(State(app): State<Arc<App>>) -> Response {
    let page = SignUpPage {
        open: app.cfg.accounts.signup_open,
        name: String::new(),
        email: String::new(),
        organization_name: String::new(),
        errors: FormErrors::default(),
    };
    let status = if page.open {
        StatusCode::OK
    } else {
        StatusCode::FORBIDDEN
    };
    html(status, &page)
}

/// `POST /sign-up` (`POST /auth/sign-up`), then the overview, signed in.
pub async fn sign_up(State(app): State<Arc<App>>, ip: ClientIp, form: Fields) -> Response {
    let mut page = SignUpPage {
        open: app.cfg.accounts.signup_open,
        name: form.get("name").to_owned(),
        email: form.get("email").to_owned(),
        organization_name: form.get("organization_name").to_owned(),
        errors: FormErrors::default(),
    };
    let password = form.0.iter().find(|(k, _)| k == "password");
    let password = password.map(|(_, v)| v.clone()).unwrap_or_default();
    let mut request = json!({"email": page.email, "name": page.name, "password": password});
    if !page.organization_name.is_empty() {
        request["organization_name"] = json!(page.organization_name);
    }
    let answer = match body(request) {
        Ok(b) => sign_in::sign_up(State(app.clone()), ip, Json(b)).await,
        Err(e) => Err(e),
    };
    match answer {
        Ok(answer) => see_other_with_cookie(&answer, "/"),
        Err(e) => {
            let fields = ["organization_name", "email", "name", "password"];
            page.errors = FormErrors::from_error(&e, &fields);
            html(e.status, &page)
        }
    }
}
