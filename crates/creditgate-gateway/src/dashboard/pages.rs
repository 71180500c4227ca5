//! Rendering a page: a template into an HTML response with its status, the error page, and
//! the errors of a form placed next to the field they are about (`docs/dashboard.md`).

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use crate::error::ApiError;

/// Renders `page` with `status`; a template that cannot render is a 500 in Anthropic's envelope.
pub fn html(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(body) => (status, Html(body)).into_response(),
        Err(e) => ApiError::internal("The page could not be rendered.")
            .with_detail(e.to_string())
            .into_response(),
    }
}

/// A page that only says what went wrong, with the status of the error.
#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub status: u16,
    pub kind: &'static str,
    pub message: String,
}

impl ErrorPage {
    pub fn response(e: ApiError) -> Response {
        if e.status.is_server_error() {
            tracing::error!(detail = ?e.detail, message = %e.message, "dashboard page failed");
        }
        let page = ErrorPage {
            status: e.status.as_u16(),
            kind: e.kind,
            message: e.message.clone(),
        };
        html(e.status, &page)
    }
}

/// A service's refusal on a page: answered with the error page (`?` turns an `ApiError` into it).
#[derive(Debug)]
pub struct PageError(pub ApiError);

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> Self {
        PageError(e)
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        ErrorPage::response(self.0)
    }
}

/// The outcome of a page handler: a page, or the error page.
pub type PageResult = Result<Response, PageError>;

/// What a submitted form got wrong: the message, and the field it is about when the service
/// named one of the form's fields (the services' messages name the field they refuse).
#[derive(Debug, Clone, Default)]
pub struct FormErrors {
    pub field: Option<&'static str>,
    pub message: String,
}

impl FormErrors {
    /// Places `e` next to the first of `fields` its message names, or above the form.
    pub fn from_error(e: &ApiError, fields: &[&'static str]) -> Self {
        let lower = e.message.to_lowercase();
        let field = fields
            .iter()
            .find(|f| lower.contains(&f.replace('_', " ")) || lower.contains(*f))
            .copied();
        FormErrors {
            field,
            message: e.message.clone(),
        }
    }

    /// A message about one field, found before asking any service (a field left empty).
    pub fn on_field(field: &'static str, message: &str) -> Self {
        FormErrors {
            field: Some(field),
            message: message.to_owned(),
        }
    }

    /// The message for `field`, when it is about that field.
    pub fn on(&self, field: &str) -> Option<&str> {
        (self.field == Some(field) && !self.message.is_empty()).then_some(self.message.as_str())
    }

    /// The message when it is about no field of the form (shown above it).
    pub fn general(&self) -> Option<&str> {
        (self.field.is_none() && !self.message.is_empty()).then_some(self.message.as_str())
    }
}
