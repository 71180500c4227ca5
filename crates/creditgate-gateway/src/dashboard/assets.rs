//! The dashboard's static files — our stylesheet and script, and the vendored htmx and uPlot
//! with their licences — embedded in the binary and served under `/assets/` with long cache
//! lifetimes (`docs/dashboard.md`): nothing is built or fetched at install time.

use axum::extract::Path;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use rust_embed::RustEmbed;

use crate::error::ApiError;

#[derive(RustEmbed)]
#[folder = "assets/"]
struct Assets;

/// Versioned file names change with their content (the vendored files carry their version,
/// ours are named by `ASSET_VERSION`), so a year of caching is safe.
const CACHE_FOR: &str = "public, max-age=31536000, immutable";

/// Bumped when `app.css` or `app.js` change, so browsers fetch the new files.
pub const ASSET_VERSION: &str = "1";

/// `GET /assets/{*path}`.
pub async fn serve(Path(path): Path<String>) -> Response {
    // Our own files are linked as `app.v1.css`; the stored name has no version.
    let stored = path.replace(&format!(".v{ASSET_VERSION}."), ".");
    let Some(file) = Assets::get(&stored) else {
        return ApiError::not_found("No such asset.").into_response();
    };
    let mime = match stored.rsplit('.').next() {
        Some("css") => "text/css; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("svg") => "image/svg+xml",
        _ => "text/plain; charset=utf-8",
    };
    let mut response = file.data.into_owned().into_response();
    let h = response.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(mime));
    h.insert(CACHE_CONTROL, HeaderValue::from_static(CACHE_FOR));
    response
}
