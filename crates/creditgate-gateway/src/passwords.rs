//! Secrets a person holds: random tokens (session cookies, CSRF tokens, emailed links) and
//! argon2id password hashes, checked off the async runtime.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

use crate::error::ApiError;

/// A random 256-bit token, hex: session cookies, CSRF tokens, emailed links.
pub fn random_token() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// Hashes a password with argon2id (OWASP's parameters, the crate's defaults), off the
/// async runtime.
pub async fn hash_password(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>())
            .map_err(|e| ApiError::internal(e.to_string()))?;
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| ApiError::internal(e.to_string()))
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?
}

/// Whether `password` matches the stored hash. Without a hash (an unknown account) a dummy
/// hash is still checked, so the answer takes as long either way.
pub async fn verify_password(password: String, stored: Option<String>) -> bool {
    let dummy = DUMMY_HASH.to_owned();
    let known = stored.is_some();
    let ok = tokio::task::spawn_blocking(move || {
        let hash = stored.unwrap_or(dummy);
        PasswordHash::new(&hash)
            .map(|h| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &h)
                    .is_ok()
            })
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false);
    ok && known
}

/// An argon2id hash of a random password nobody knows, with the default parameters.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$rGvN2lBvJ7r0rKQ0Wg6cQHk3nXWm4cJ3qk8dFyc8mUQ";
