//! Who is looking at a dashboard page: a signed-in member ([`Viewer`]), resolved by the same
//! `caller::OrgCaller` as the API (so a page's form needs the session's CSRF token exactly as an
//! API call does), and the page's frame ([`Chrome`]): navigation by role, the organization
//! switcher and the CSRF token for its forms (`docs/dashboard.md`).

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use creditgate_core::accounts::{Action, Role};
use creditgate_core::ledger::LedgerStore;
use creditgate_core::payments::credit_line::BillingMode;

use crate::caller::{cookie, OrgCaller, SESSION_COOKIE};
use crate::error::ApiError;
use crate::App;

use super::pages::ErrorPage;

/// A signed-in member on a dashboard page.
pub struct Viewer {
    pub caller: OrgCaller,
    pub chrome: Chrome,
}

/// One organization of the switcher.
#[derive(Debug, Clone)]
pub struct OrgChoice {
    pub id: String,
    pub name: String,
    pub role: String,
    pub current: bool,
}

/// What the layout needs on every page.
#[derive(Debug, Clone, Default)]
pub struct Chrome {
    pub csrf: String,
    pub user_name: String,
    pub user_email: String,
    pub org_name: String,
    pub role: String,
    pub orgs: Vec<OrgChoice>,
    /// What the role may do (`docs/accounts.md`): the pages hide the rest.
    pub can_keys: bool,
    pub can_billing: bool,
    pub can_members: bool,
    /// The organization has invoices or is on a credit line: the nav links Invoices (for the
    /// roles that may read them).
    pub has_invoices: bool,
    /// The nav entry of the page shown.
    pub here: &'static str,
    pub unit: String,
}

impl Chrome {
    /// Whether `entry` is the page shown (the nav marks it with `aria-current`).
    pub fn is(&self, entry: &str) -> bool {
        self.here == entry
    }
}

fn to_sign_in() -> Response {
    Redirect::to("/sign-in").into_response()
}

impl FromRequestParts<Arc<App>> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, Response> {
        // Pages are for members' browsers: a key in a header is not a way in.
        let keyed =
            parts.headers.contains_key("x-api-key") || parts.headers.contains_key("authorization");
        if keyed || cookie(&parts.headers, SESSION_COOKIE).is_none() {
            return Err(to_sign_in());
        }
        let caller = match OrgCaller::from_request_parts(parts, app).await {
            Ok(c) => c,
            Err(e) if e.status == StatusCode::UNAUTHORIZED => return Err(to_sign_in()),
            Err(e) => return Err(ErrorPage::response(e)),
        };
        let chrome = chrome(app, &caller).await.map_err(ErrorPage::response)?;
        Ok(Viewer { caller, chrome })
    }
}

async fn chrome(app: &App, caller: &OrgCaller) -> Result<Chrome, ApiError> {
    let (Some(hash), Some(user)) = (&caller.session, &caller.user) else {
        return Err(ApiError::authentication("No session."));
    };
    let session = app.db.session(hash, app.clock.now()).await?;
    let session = session.ok_or_else(|| ApiError::authentication("No session."))?;
    let mut orgs = Vec::new();
    let mut org_name = String::new();
    for m in app.db.memberships_of(&user.id).await? {
        let org = app.db.organization(&m.org).await?;
        let current = m.org == caller.org;
        if current {
            org_name = org.name.clone();
        }
        orgs.push(OrgChoice {
            id: org.id.to_string(),
            name: org.name,
            role: m.role.as_str().to_owned(),
            current,
        });
    }
    let role: Role = caller.role;
    let can_billing = role.may(Action::ManageBilling);
    let has_invoices = can_billing && invoiced(app, caller).await?;
    Ok(Chrome {
        csrf: session.csrf_token,
        user_name: user.name.clone(),
        user_email: user.email.to_string(),
        org_name,
        role: role.as_str().to_owned(),
        orgs,
        can_keys: role.may(Action::ManageKeys),
        can_billing,
        can_members: role.may(Action::ManageMembers),
        has_invoices,
        here: "",
        unit: app.cfg.credit_unit.name.clone(),
    })
}

/// Whether the organization is on a credit line or has ever been invoiced.
async fn invoiced(app: &App, caller: &OrgCaller) -> Result<bool, ApiError> {
    let line = app.db.credit_line(&caller.org).await?;
    if line.is_some_and(|l| l.mode == BillingMode::Invoiced) {
        return Ok(true);
    }
    Ok(!app.db.invoices(&caller.org).await?.is_empty())
}
