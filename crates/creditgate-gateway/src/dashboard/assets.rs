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

/// Bumped when `app.css` or `app.js` change, so browsers fetch the new files; `RELEASED`'s
/// test fails when their bytes change without it.
pub const ASSET_VERSION: &str = "3";

/// Every `ASSET_VERSION` with the hex SHA-256 of `app.css` followed by `app.js` as released under
/// it, oldest first. Changing either file changes the digest, and the test below then wants a new
/// last line with a new version (a version is never reused for other bytes).
#[cfg(test)]
const RELEASED: &[(&str, &str)] = &[
    (
        "1",
        "8b8e3ea6df96e721a2748d6850ec9fde6797dd53750339609882d30f8d8020dd",
    ),
    (
        "2",
        "bef38baf1647da3bce9c50ab5f6f0f4e318cb3bfe32f349b3f7c9bacdd40fe98",
    ),
    (
        "3",
        "50f3998d2447033c6466e3910e002b313213a3b4873ba87e812261843792f97e",
    ),
];

/// `GET /assets/{*path}`.
pub async fn serve(Path(path): Path<String>) -> Response {
    // Our own files are linked as `app.v{ASSET_VERSION}.css`; the stored name has no version.
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

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    use super::{Assets, ASSET_VERSION, RELEASED};

    fn digest_of_ours() -> String {
        let mut hash = Sha256::new();
        for name in ["app.css", "app.js"] {
            hash.update(Assets::get(name).expect(name).data);
        }
        hex::encode(hash.finalize())
    }

    #[test]
    fn the_version_changes_whenever_our_assets_bytes_do() {
        let digest = digest_of_ours();
        let (version, released) = RELEASED.last().expect("a released version");
        assert_eq!(
            *version, ASSET_VERSION,
            "RELEASED's last line is not ASSET_VERSION"
        );
        assert_eq!(
            *released, digest,
            "app.css or app.js changed: bump ASSET_VERSION (here and in templates/base.html) \
             and add (\"<new version>\", \"{digest}\") to RELEASED"
        );
        for (i, (v, d)) in RELEASED.iter().enumerate() {
            for (w, e) in &RELEASED[i + 1..] {
                assert_ne!(v, w, "version {v} released twice");
                assert_ne!(d, e, "versions {v} and {w} have the same bytes");
            }
        }
    }

    #[test]
    fn the_pages_link_the_current_version() {
        let base = include_str!("../../templates/base.html");
        for ext in ["css", "js"] {
            let linked = format!("/assets/app.v{ASSET_VERSION}.{ext}");
            assert!(base.contains(&linked), "base.html does not link {linked}");
        }
        assert_eq!(
            base.matches("/assets/app.v").count(),
            2,
            "base.html links another version of app.css or app.js"
        );
    }
}
