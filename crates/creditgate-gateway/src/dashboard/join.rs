//! Accepting an invitation on the dashboard: the page the emailed link opens (`/join/{token}`)
//! shows the organization and the role, asks a new person for a name and a password (or an
//! existing account for its password) and accepts through `POST /invite/{token}`'s handler,
//! which signs the member in (`docs/dashboard.md`, `docs/accounts.md`).

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use serde_json::json;

use super::auth::body;
use super::form::{see_other_with_cookie, Fields};
use super::format::{text, when};
use super::pages::{html, FormErrors};
use crate::sign_in::{self, ClientIp};
use crate::App;

#[derive(Template)]
#[template(path = "join.html")]
pub struct JoinPage {
    pub token: String,
    /// Empty when the link no longer works.
    pub org_name: String,
    pub email: String,
    pub role: String,
    pub expires: String,
    pub account_exists: bool,
    pub name: String,
    pub errors: FormErrors,
}

/// The page for `token`: the invitation, or why the link no longer works.
async fn join_page(app: &Arc<App>, token: &str) -> (StatusCode, JoinPage) {
    let mut page = JoinPage {
        token: token.to_owned(),
        org_name: String::new(),
        email: String::new(),
        role: String::new(),
        expires: String::new(),
        account_exists: false,
        name: String::new(),
        errors: FormErrors::default(),
    };
    match sign_in::invite_status(State(app.clone()), Path(token.to_owned())).await {
        Ok(Json(i)) => {
            page.org_name = text(&i["organization"]["name"]);
            page.email = text(&i["email"]);
            page.role = text(&i["role"]);
            page.expires = when(&i["expires_at"]);
            page.account_exists = i["account_exists"].as_bool().unwrap_or(false);
            (StatusCode::OK, page)
        }
        Err(e) => {
            page.errors = FormErrors::from_error(&e, &[]);
            (e.status, page)
        }
    }
}

/// `GET /join/{token}`: the page an invitation email links to.
pub async fn page(State(app): State<Arc<App>>, Path(token): Path<String>) -> Response {
    let (status, page) = join_page(&app, &token).await;
    html(status, &page)
}

/// `POST /join/{token}`: accepts (`POST /invite/{token}`), then the overview, signed in.
pub async fn accept(
    State(app): State<Arc<App>>,
    ip: ClientIp,
    Path(token): Path<String>,
    form: Fields,
) -> Response {
    let (status, mut page) = join_page(&app, &token).await;
    if !status.is_success() {
        return html(status, &page);
    }
    let name = form.get("name").to_owned();
    let password = form.0.iter().find(|(k, _)| k == "password");
    let password = password.map(|(_, v)| v.clone()).unwrap_or_default();
    let missing = if !page.account_exists && name.is_empty() {
        Some(("name", "Enter your name."))
    } else if password.is_empty() {
        Some(("password", "Enter a password."))
    } else {
        None
    };
    let error = match missing {
        Some((field, message)) => (
            StatusCode::BAD_REQUEST,
            FormErrors::on_field(field, message),
        ),
        None => {
            let name = (!page.account_exists).then_some(name.clone());
            let answer = match body(json!({"name": name, "password": password})) {
                Ok(b) => sign_in::accept_invite(State(app.clone()), ip, Path(token), Json(b)).await,
                Err(e) => Err(e),
            };
            match answer {
                Ok(answer) => return see_other_with_cookie(&answer, "/"),
                Err(e) => (e.status, FormErrors::from_error(&e, &["name", "password"])),
            }
        }
    };
    page.name = name;
    page.errors = error.1;
    html(error.0, &page)
}
