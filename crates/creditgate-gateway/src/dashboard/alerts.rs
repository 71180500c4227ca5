//! Alert settings on the dashboard: the low-balance thresholds (credits, with their USD value)
//! and the extra addresses alerts are emailed to, read by every role and saved by owner, admin
//! and billing — through `GET`/`PUT /v1/billing/alerts` (`notify::routes`), so every check is
//! the service's (`docs/dashboard.md`, `docs/alerts.md`).

use std::sync::Arc;

use askama::Template;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use super::form::{see_other, Fields};
use super::format::{text, Amount};
use super::pages::{html, FormErrors, PageResult};
use super::viewer::{Chrome, Viewer};
use crate::error::JsonBody;
use crate::notify::routes as api;
use crate::App;

/// The form's fields, named as the API names them.
const THRESHOLDS: &str = "low_balance_thresholds";
const EMAILS: &str = "emails";

#[derive(Template)]
#[template(path = "alerts.html")]
pub struct AlertsPage {
    pub c: Chrome,
    /// The saved thresholds, highest first.
    pub thresholds: Vec<Amount>,
    pub emails: Vec<String>,
    /// The form as typed (or as saved).
    pub form_thresholds: String,
    pub form_emails: String,
    pub errors: FormErrors,
    pub saved: bool,
    pub max_thresholds: usize,
    pub max_emails: usize,
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().into_iter().flatten().map(text).collect()
}

/// The items of a list typed into one field: separated by commas, spaces or lines.
fn items(typed: &str) -> Vec<String> {
    typed
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

async fn render(
    app: &Arc<App>,
    viewer: Viewer,
    typed: Option<(String, String, FormErrors)>,
    saved: bool,
    status: StatusCode,
) -> PageResult {
    let Viewer { caller, mut chrome } = viewer;
    chrome.here = "alerts";
    let Json(s) = api::get_settings(State(app.clone()), caller).await?;
    let thresholds = strings(&s[THRESHOLDS]);
    let emails = strings(&s[EMAILS]);
    let (form_thresholds, form_emails, errors) = typed.unwrap_or_else(|| {
        (
            thresholds.join(", "),
            emails.join(", "),
            FormErrors::default(),
        )
    });
    let unit = &app.cfg.credit_unit;
    let page = AlertsPage {
        c: chrome,
        thresholds: thresholds
            .iter()
            .map(|t| Amount::from_json(&json!(t), unit))
            .collect(),
        emails,
        form_thresholds,
        form_emails,
        errors,
        saved,
        max_thresholds: api::MAX_THRESHOLDS,
        max_emails: api::MAX_EMAILS,
    };
    Ok(html(status, &page))
}

/// `GET /alerts[?saved=1]`.
pub async fn page(
    State(app): State<Arc<App>>,
    viewer: Viewer,
    RawQuery(q): RawQuery,
) -> PageResult {
    let saved = q.as_deref() == Some("saved=1");
    render(&app, viewer, None, saved, StatusCode::OK).await
}

/// `POST /alerts`: `PUT /v1/billing/alerts` with both lists as typed; a refusal is shown beside
/// the field it names, with what was typed kept.
pub async fn save(State(app): State<Arc<App>>, viewer: Viewer, form: Fields) -> PageResult {
    let (thresholds, emails) = (form.get(THRESHOLDS), form.get(EMAILS));
    let body = json!({THRESHOLDS: items(thresholds), EMAILS: items(emails)});
    match api::put_settings(State(app.clone()), viewer.caller.clone(), JsonBody(body)).await {
        Ok(_) => Ok(see_other("/alerts?saved=1")),
        Err(e) if e.status == StatusCode::BAD_REQUEST => {
            let mut errors = FormErrors::from_error(&e, &[THRESHOLDS, EMAILS]);
            // The body is the page's own but for the typed items: a body the service could not
            // read has a threshold that is not an amount of credits (emails are any strings).
            if errors.field.is_none() && e.message.starts_with("Invalid request body") {
                errors.field = Some(THRESHOLDS);
            }
            let typed = (thresholds.to_owned(), emails.to_owned(), errors);
            render(&app, viewer, Some(typed), false, e.status).await
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::items;

    #[test]
    fn a_typed_list_splits_on_commas_spaces_and_lines() {
        assert_eq!(items(" 500, 100 \n 10.5,,"), ["500", "100", "10.5"]);
        assert_eq!(
            items("a@example.com\r\nb@example.com"),
            ["a@example.com", "b@example.com"]
        );
        assert!(items("  ").is_empty());
    }
}
