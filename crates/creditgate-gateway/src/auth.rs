//! Who is calling: each kind of credential of the API (`docs/accounts.md`) is
//! an axum extractor that a handler names in its arguments, and that answers 401 itself.
//!
//! Today there is one: [`ApiKeyCaller`], the gateway key from `x-api-key` or
//! `Authorization: Bearer`, looked up by hash. The organization admin key (`sk-cg-admin-…` in
//! `x-api-key`), the member session (the `cg_session` cookie, with `x-csrf-token` on writes) and
//! the operator key (`Authorization: Bearer` with the configured admin key) belong beside it here,
//! each as its own extractor type implementing `FromRequestParts<Arc<App>>` with `ApiError` as
//! the rejection: a credential of the wrong kind is 401 `authentication_error`, the right kind
//! without the role 403 `permission_error`. A handler's signature then says who may call it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use creditgate_core::clock::Timestamp;
use creditgate_core::keys::{ApiKeyRecord, ApiKeySecret};
use creditgate_storage::Database;

use crate::error::ApiError;
use crate::App;

/// Most entries one cache of one replica holds; a full cache is cleared.
const CACHE_CAPACITY: usize = 10_000;

/// A small time-bounded cache. Only successes are put in it (key lookups that found a key,
/// settings that were read), so a flood of random keys cannot fill it; a change made through
/// the CLI or another replica is seen within the TTL.
pub struct TtlCache<K, V> {
    ttl: Duration,
    entries: Mutex<HashMap<K, (V, Instant)>>,
}

impl<K: std::hash::Hash + Eq, V: Clone> TtlCache<K, V> {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub fn get(&self, key: &K) -> Option<V> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(key)
            .filter(|(_, at)| at.elapsed() < self.ttl)
            .map(|(v, _)| v.clone())
    }

    /// The cached value; or, when there is none (or it expired), `None` for one caller, which
    /// is to refresh it: `pending` is cached meanwhile (for one TTL, until the caller puts the
    /// value it read), so the callers after it see `pending` instead of all refreshing at once.
    pub fn get_or_claim(&self, key: &K, pending: V) -> Option<V>
    where
        K: Clone,
    {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((v, at)) = entries.get(key) {
            if at.elapsed() < self.ttl {
                return Some(v.clone());
            }
        }
        insert_bounded(&mut entries, key.clone(), pending);
        None
    }

    pub fn put(&self, key: K, value: V) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        insert_bounded(&mut entries, key, value);
    }
}

/// Inserts a fresh entry, clearing the map first when it is full and `key` is new.
fn insert_bounded<K: std::hash::Hash + Eq, V>(
    entries: &mut HashMap<K, (V, Instant)>,
    key: K,
    value: V,
) {
    if entries.len() >= CACHE_CAPACITY && !entries.contains_key(&key) {
        entries.clear();
    }
    entries.insert(key, (value, Instant::now()));
}

/// Key lookups by the hash of the secret.
pub type KeyCache = TtlCache<String, ApiKeyRecord>;

/// The presented secret: `x-api-key` wins when both headers are sent (the SDK sends both when
/// configured with both).
fn presented_secret(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers.get("x-api-key") {
        return v.to_str().ok();
    }
    let auth = headers.get("authorization")?.to_str().ok()?;
    let (scheme, token) = auth.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// A caller presenting a usable API key (`sk-cg-…`): the inference routes and the key's own
/// account views.
#[derive(Debug, Clone)]
pub struct ApiKeyCaller(pub ApiKeyRecord);

impl FromRequestParts<Arc<App>> for ApiKeyCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, ApiError> {
        let key = authenticate(&parts.headers, &app.db, &app.keys, app.clock.now()).await?;
        if app.organization_suspended(&key.org).await? {
            return Err(ApiError::permission(
                "This organization is suspended; contact the operator.",
            ));
        }
        Ok(Self(key))
    }
}

/// Authenticates a request by API key. Every failure is the same 401 (no hint which part was wrong), and
/// nothing is written.
async fn authenticate(
    headers: &HeaderMap,
    db: &Database,
    cache: &KeyCache,
    now: Timestamp,
) -> Result<ApiKeyRecord, ApiError> {
    let denied = || ApiError::authentication("invalid x-api-key");
    let secret = presented_secret(headers).ok_or_else(denied)?;
    let secret = ApiKeySecret::parse(secret).map_err(|_| denied())?;
    let hash = secret.hash();
    let record = match cache.get(&hash) {
        Some(r) => r,
        None => {
            let r = db
                .api_key_by_hash(&hash)
                .await
                .map_err(ApiError::from)?
                .ok_or_else(denied)?;
            cache.put(hash, r.clone());
            r
        }
    };
    if !record.usable(now) {
        return Err(denied());
    }
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn one_caller_per_ttl_is_sent_to_refresh() {
        let cache = TtlCache::new(Duration::from_secs(60));
        assert_eq!(
            cache.get_or_claim(&"org", 0),
            None,
            "absent: this caller refreshes"
        );
        assert_eq!(
            cache.get_or_claim(&"org", 0),
            Some(0),
            "the others see the pending value"
        );
        cache.put("org", 7);
        assert_eq!(
            cache.get_or_claim(&"org", 0),
            Some(7),
            "the value read replaces it"
        );
        let expired = TtlCache::new(Duration::ZERO);
        expired.put("org", 7);
        assert_eq!(
            expired.get_or_claim(&"org", 0),
            None,
            "expired: refreshed again"
        );
    }

    #[test]
    fn header_precedence_and_bad_headers() {
        let mut h = HeaderMap::new();
        h.insert("authorization", HeaderValue::from_static("Bearer sk-cg-b"));
        assert_eq!(presented_secret(&h), Some("sk-cg-b"));
        h.insert("x-api-key", HeaderValue::from_static("sk-cg-a"));
        assert_eq!(presented_secret(&h), Some("sk-cg-a"));
        let mut h = HeaderMap::new();
        h.insert("authorization", HeaderValue::from_static("Basic abc"));
        assert_eq!(presented_secret(&h), None);
        let mut h = HeaderMap::new();
        h.insert("x-api-key", HeaderValue::from_bytes(b"sk-cg-\xff").unwrap());
        assert_eq!(
            presented_secret(&h),
            None,
            "non-UTF-8 is refused, not lossily read"
        );
    }
}
