//! A submitted form's fields, read from an `application/x-www-form-urlencoded` body, and the
//! answers a form post gets: see-other redirects that carry the service's session cookie.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header::{LOCATION, SET_COOKIE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::error::{ApiError, MAX_MANAGEMENT_BODY_BYTES};

/// The fields of a submitted form, in order (a field may repeat, as checkboxes do).
#[derive(Debug, Default)]
pub struct Fields(pub Vec<(String, String)>);

impl Fields {
    /// The first value of `name`, trimmed; empty when absent.
    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .unwrap_or("")
    }

    /// Every value of `name`, empty ones left out.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, v)| k == name && !v.trim().is_empty())
            .map(|(_, v)| v.trim().to_owned())
            .collect()
    }

    /// The value of `name`, or null when empty (an optional field left blank).
    pub fn opt(&self, name: &str) -> serde_json::Value {
        match self.get(name) {
            "" => serde_json::Value::Null,
            v => serde_json::Value::String(v.to_owned()),
        }
    }
}

impl<S: Send + Sync> FromRequest<S> for Fields {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Response> {
        let bytes = Bytes::from_request(req, state).await.map_err(|_| {
            ApiError::too_large("This form is larger than the dashboard takes.").into_response()
        })?;
        if bytes.len() > MAX_MANAGEMENT_BODY_BYTES {
            return Err(ApiError::too_large("This form is too large.").into_response());
        }
        Ok(Fields(
            form_urlencoded::parse(&bytes)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        ))
    }
}

/// `303 See Other` to `to` (after a post, the browser fetches the next page with a GET).
pub fn see_other(to: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(LOCATION, v);
    }
    r
}

/// `303` to `to`, keeping the session cookie the service's answer set (sign-in, sign-out,
/// switching organization).
pub fn see_other_with_cookie(service: &Response, to: &str) -> Response {
    let mut r = see_other(to);
    if let Some(cookie) = service.headers().get(SET_COOKIE) {
        r.headers_mut().insert(SET_COOKIE, cookie.clone());
    }
    r
}
