//! What every dashboard response carries and every dashboard form must prove: the security
//! headers (a strict Content-Security-Policy, no framing) and the session's CSRF token, lifted
//! from a form's hidden `csrf_token` field into the `x-csrf-token` header that
//! `caller::OrgCaller` checks (`docs/dashboard.md`).

use axum::body::{to_bytes, Body};
use axum::extract::Request;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderName, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::caller::CSRF_HEADER;
use crate::error::{ApiError, MAX_MANAGEMENT_BODY_BYTES};

/// No script or style but our own files, no framing, no plugins, no `<base>` tricks. Inline
/// `<script type="application/json">` data blocks are not scripts and need no exception.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; \
    base-uri 'none'; frame-ancestors 'none'";

/// The hidden form field that carries the session's CSRF token.
pub const CSRF_FIELD: &str = "csrf_token";

/// Adds the security headers to a dashboard response, and for a form post without the
/// `x-csrf-token` header, lifts the form's `csrf_token` field into it (the body is then handed
/// on unchanged, so the handler reads the same form).
pub async fn guard(request: Request, next: Next) -> Response {
    let request = match lift_csrf(request).await {
        Ok(r) => r,
        Err(e) => return secure(e.into_response()),
    };
    secure(next.run(request).await)
}

fn secure(mut response: Response) -> Response {
    let h = response.headers_mut();
    let set = |h: &mut axum::http::HeaderMap, name: &'static str, value: &'static str| {
        h.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    };
    set(h, "content-security-policy", CONTENT_SECURITY_POLICY);
    set(h, "x-frame-options", "DENY");
    set(h, "x-content-type-options", "nosniff");
    set(h, "referrer-policy", "same-origin");
    // Pages show balances and secrets: never kept by a shared cache or the back button's store.
    if !h.contains_key(CACHE_CONTROL) {
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

async fn lift_csrf(request: Request) -> Result<Request, ApiError> {
    let is_form = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if request.method() != Method::POST || !is_form || request.headers().contains_key(CSRF_HEADER) {
        return Ok(request);
    }
    let (mut parts, body) = request.into_parts();
    let bytes = to_bytes(body, MAX_MANAGEMENT_BODY_BYTES)
        .await
        .map_err(|_| ApiError::too_large("This form is larger than the dashboard takes."))?;
    let token = form_urlencoded::parse(&bytes)
        .find(|(k, _)| k == CSRF_FIELD)
        .map(|(_, v)| v.into_owned());
    if let Some(value) = token.and_then(|t| HeaderValue::from_str(&t).ok()) {
        parts
            .headers
            .insert(HeaderName::from_static(CSRF_HEADER), value);
    }
    Ok(Request::from_parts(parts, Body::from(bytes)))
}
