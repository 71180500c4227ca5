//! Request ids: one per request, given by middleware before any handler or extractor runs.
//!
//! The id is put in the request's extensions ([`RequestId`]); `POST /v1/messages` uses it as its
//! hold's transfer id. Any error answer that does not carry an id yet (an extractor's rejection,
//! the fallback, a handler's `?`) gets this one here, and server-side failures are logged here
//! with it, so neither the error table nor the handlers create ids or log.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use creditgate_core::ids::TransferId;

use crate::error::ApiError;

/// The id of the request being served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(TransferId);

impl RequestId {
    /// A fresh id: `req_cg_`, the time in milliseconds, 80 random bits
    /// ([`TransferId::for_request`]), so later requests sort later.
    pub fn new() -> Self {
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        Self(TransferId::for_request(millis, rand::random()))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The id as a ledger transfer id (the request's hold).
    pub fn transfer_id(&self) -> &TransferId {
        &self.0
    }
}

impl Default for RequestId {
    fn default() -> Self {
        Self::new()
    }
}

/// Middleware: assigns the request its id and completes error answers with it.
pub async fn assign(mut req: Request, next: Next) -> Response {
    let id = RequestId::new();
    req.extensions_mut().insert(id.clone());
    let mut resp = next.run(req).await;
    let Some(err) = resp.extensions_mut().remove::<ApiError>() else {
        return resp;
    };
    let request_id = err
        .request_id
        .clone()
        .unwrap_or_else(|| id.as_str().to_owned());
    if let Some(detail) = &err.detail {
        if err.status.is_server_error() {
            tracing::error!(%request_id, status = err.status.as_u16(), %detail, "request failed");
        } else {
            tracing::warn!(%request_id, status = err.status.as_u16(), %detail, "request refused");
        }
    }
    if err.request_id.is_some() {
        return resp;
    }
    err.with_request_id(&request_id).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_valid_transfer_ids() {
        let id = RequestId::new();
        assert!(id.as_str().starts_with("req_cg_"));
        assert!(TransferId::parse(id.as_str()).is_ok());
        assert!(id.transfer_id().child("grow:12").is_ok());
        assert_ne!(id, RequestId::new());
    }

    #[test]
    fn later_request_ids_sort_later() {
        let first = RequestId::new();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let second = RequestId::new();
        assert!(first.as_str() < second.as_str(), "{first:?} {second:?}");
        assert_eq!(first.as_str().len(), "req_cg_".len() + 32);
    }
}
