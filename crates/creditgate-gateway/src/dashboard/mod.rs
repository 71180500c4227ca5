//! The dashboard: server-rendered pages for members at `/`, each calling the same handlers and
//! services as the HTTP API, under a strict Content-Security-Policy with the session's CSRF
//! token in every form (`docs/dashboard.md`).

use std::sync::Arc;

use axum::routing::MethodRouter;

use crate::App;

pub mod alerts;
pub mod assets;
pub mod audit;
pub mod auth;
pub mod autoreload;
pub mod billing;
pub mod cache;
pub mod cards;
pub mod form;
pub mod format;
pub mod guard;
pub mod invoices;
pub mod join;
pub mod keys;
pub mod live;
pub mod members;
pub mod operator;
pub mod overview;
pub mod pages;
pub mod reset;
pub mod signup;
pub mod statement;
pub mod usage;
pub mod viewer;
pub mod webhooks;

/// A dashboard route: the handler behind [`guard::guard`] (security headers, the form's CSRF
/// token lifted into the header the API checks).
pub fn page(handler: MethodRouter<Arc<App>>) -> MethodRouter<Arc<App>> {
    handler.layer(axum::middleware::from_fn(guard::guard))
}
