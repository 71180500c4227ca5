//! Members on the dashboard: the organization's members with their roles, changing a role,
//! removing a member (or leaving), and invitations (send, revoke) — each through the
//! `/v1/organizations/users` and `/invites` handlers, so the owner rules (the last owner cannot
//! leave or be demoted) are the service's, shown beside the form they refuse
//! (`docs/dashboard.md`, `docs/accounts.md`).

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::form::{see_other, Fields};
use super::format::{text, when};
use super::pages::{html, FormErrors, PageResult};
use super::viewer::{Chrome, Viewer};
use crate::error::{ApiError, JsonBody};
use crate::lists::ListQuery;
use crate::organization_api as org;
use crate::App;

/// The roles an invitation or a role change may give (owner only by transferring ownership).
pub const ROLES: [&str; 4] = ["admin", "developer", "billing", "user"];

/// One member as shown.
pub struct MemberRow {
    pub id: String,
    pub name: String,
    pub email: String,
    pub role: String,
    pub added: String,
    pub me: bool,
}

/// One invitation as shown.
pub struct InviteRow {
    pub id: String,
    pub email: String,
    pub role: String,
    pub expires: String,
    pub status: String,
}

#[derive(Template)]
#[template(path = "members.html")]
pub struct MembersPage {
    pub c: Chrome,
    pub members: Vec<MemberRow>,
    pub invites: Vec<InviteRow>,
    pub roles: [&'static str; 4],
    /// Which form the errors are about: `invite`, or a member's id.
    pub error_for: String,
    pub errors: FormErrors,
    pub email: String,
    pub role: String,
    pub done: &'static str,
}

#[derive(Deserialize)]
pub struct Done {
    pub done: Option<String>,
}

fn done_of(q: Option<&str>) -> &'static str {
    match q {
        Some("invited") => "invited",
        Some("revoked") => "revoked",
        Some("role") => "role",
        Some("removed") => "removed",
        _ => "",
    }
}

fn rows(list: &Value) -> impl Iterator<Item = &Value> {
    list["data"].as_array().into_iter().flatten()
}

/// Renders the page with the members and invitations read through the API's handlers.
async fn render(
    app: &Arc<App>,
    viewer: Viewer,
    mut page: MembersPage,
    status: StatusCode,
) -> PageResult {
    let all = || ListQuery {
        limit: Some("1000".into()),
        ..Default::default()
    };
    let me = viewer.caller.user.as_ref().map(|u| u.id.to_string());
    let Json(users) =
        org::list_users(State(app.clone()), viewer.caller.clone(), Query(all())).await?;
    page.members = rows(&users)
        .map(|u| MemberRow {
            id: text(&u["id"]),
            name: text(&u["name"]),
            email: text(&u["email"]),
            role: text(&u["role"]),
            added: when(&u["added_at"]),
            me: me.as_deref() == u["id"].as_str(),
        })
        .collect();
    let Json(invites) = org::list_invites(State(app.clone()), viewer.caller, Query(all())).await?;
    page.invites = rows(&invites)
        .map(|i| InviteRow {
            id: text(&i["id"]),
            email: text(&i["email"]),
            role: text(&i["role"]),
            expires: when(&i["expires_at"]),
            status: text(&i["status"]),
        })
        .filter(|i| i.status == "pending")
        .collect();
    Ok(html(status, &page))
}

fn blank(mut chrome: Chrome) -> MembersPage {
    chrome.here = "members";
    MembersPage {
        c: chrome,
        members: Vec::new(),
        invites: Vec::new(),
        roles: ROLES,
        error_for: String::new(),
        errors: FormErrors::default(),
        email: String::new(),
        role: "user".to_owned(),
        done: "",
    }
}

/// `GET /members[?done=invited|revoked|role|removed]`.
pub async fn page(
    State(app): State<Arc<App>>,
    viewer: Viewer,
    Query(q): Query<Done>,
) -> PageResult {
    let mut page = blank(viewer.chrome.clone());
    page.done = done_of(q.done.as_deref());
    render(&app, viewer, page, StatusCode::OK).await
}

/// The page again with `e` beside the form `error_for`.
async fn refused(
    app: &Arc<App>,
    viewer: Viewer,
    error_for: &str,
    e: &ApiError,
    fields: &[&'static str],
) -> PageResult {
    let mut page = blank(viewer.chrome.clone());
    page.error_for = error_for.to_owned();
    page.errors = FormErrors::from_error(e, fields);
    render(app, viewer, page, e.status).await
}

/// `POST /members/invite` (`POST /v1/organizations/invites`): emails the invitation link.
pub async fn invite(State(app): State<Arc<App>>, viewer: Viewer, form: Fields) -> PageResult {
    let (email, role) = (form.get("email").to_owned(), form.get("role").to_owned());
    let body = json!({"email": email, "role": role});
    match org::create_invite(State(app.clone()), viewer.caller.clone(), JsonBody(body)).await {
        Ok(_) => Ok(see_other("/members?done=invited")),
        Err(e) => {
            let mut page = blank(viewer.chrome.clone());
            page.error_for = "invite".to_owned();
            page.errors = FormErrors::from_error(&e, &["email", "role"]);
            if page.errors.field.is_none() && e.message.contains('@') {
                page.errors.field = Some("email");
            }
            page.email = email;
            page.role = role;
            render(&app, viewer, page, e.status).await
        }
    }
}

/// `POST /members/{id}/role` (`POST /v1/organizations/users/{id}`).
pub async fn change_role(
    State(app): State<Arc<App>>,
    viewer: Viewer,
    Path(id): Path<String>,
    form: Fields,
) -> PageResult {
    let body = json!({"role": form.get("role")});
    let result = org::update_user(
        State(app.clone()),
        viewer.caller.clone(),
        Path(id.clone()),
        JsonBody(body),
    )
    .await;
    match result {
        Ok(_) => Ok(see_other("/members?done=role")),
        Err(e) => refused(&app, viewer, &id, &e, &[]).await,
    }
}

/// `POST /members/{id}/remove` (`DELETE /v1/organizations/users/{id}`); removing oneself is
/// leaving, which ends at the sign-in page.
pub async fn remove(
    State(app): State<Arc<App>>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> PageResult {
    let me = viewer.caller.user.as_ref().map(|u| u.id.to_string());
    match org::delete_user(State(app.clone()), viewer.caller.clone(), Path(id.clone())).await {
        Ok(_) if me.as_deref() == Some(id.as_str()) => Ok(see_other("/sign-in")),
        Ok(_) => Ok(see_other("/members?done=removed")),
        Err(e) => refused(&app, viewer, &id, &e, &[]).await,
    }
}

/// `POST /members/invites/{id}/revoke` (`DELETE /v1/organizations/invites/{id}`).
pub async fn revoke(
    State(app): State<Arc<App>>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> PageResult {
    match org::delete_invite(State(app.clone()), viewer.caller.clone(), Path(id.clone())).await {
        Ok(_) => Ok(see_other("/members?done=revoked")),
        Err(e) => refused(&app, viewer, &id, &e, &[]).await,
    }
}
