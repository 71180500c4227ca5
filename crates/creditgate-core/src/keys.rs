//! API keys: the `sk-cg-…` secret format, its checksum, and the hash that is all we store.
//!
//! A key is `sk-cg-` followed by 32 base62 characters of randomness (≈190 bits) and a 6-character
//! base62 checksum of those 32. The checksum lets us reject typos and garbage without a database
//! lookup; the secret itself is stored only as its SHA-256 (high-entropy secrets need no slow
//! hash), and lookups go by that hash, so the comparison never touches the secret.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Every gateway key starts with this.
pub const KEY_PREFIX: &str = "sk-cg-";
const BODY_LEN: usize = 32;
const CHECK_LEN: usize = 6;
/// Total length of a key in characters.
pub const KEY_LEN: usize = KEY_PREFIX.len() + BODY_LEN + CHECK_LEN;
const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Why a presented key was rejected before any lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyFormatError {
    #[error("not a creditgate key")]
    Malformed,
    #[error("key checksum does not match")]
    Checksum,
}

/// A full secret key. Its `Debug` never prints the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKeySecret(String);

/// Builds `prefix` + 32 base62 characters + checksum from caller-supplied random bytes (the
/// caller owns the RNG: the core does no I/O). Each byte picks one base62 character; 32 bytes of
/// a CSPRNG give ≥ 5.95 bits per character, ≈190 bits in all.
fn secret_from_random(prefix: &str, random: [u8; BODY_LEN]) -> String {
    let body: String = random
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % 62] as char)
        .collect();
    let check = checksum(&body);
    format!("{prefix}{body}{check}")
}

/// Checks the prefix, length, alphabet and checksum of a presented secret.
fn parse_secret(prefix: &str, s: &str) -> Result<(), KeyFormatError> {
    let rest = s.strip_prefix(prefix).ok_or(KeyFormatError::Malformed)?;
    if rest.len() != BODY_LEN + CHECK_LEN || !rest.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(KeyFormatError::Malformed);
    }
    let (body, check) = rest.split_at(BODY_LEN);
    if checksum(body) != check {
        return Err(KeyFormatError::Checksum);
    }
    Ok(())
}

impl ApiKeySecret {
    /// Builds a key from caller-supplied random bytes.
    pub fn from_random(random: [u8; BODY_LEN]) -> Self {
        Self(secret_from_random(KEY_PREFIX, random))
    }

    /// Checks the prefix, length, alphabet and checksum of a presented key.
    pub fn parse(s: &str) -> Result<Self, KeyFormatError> {
        parse_secret(KEY_PREFIX, s)?;
        Ok(Self(s.to_owned()))
    }

    /// The secret, for showing once at creation.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// What is stored and looked up: hex SHA-256 of the whole key.
    pub fn hash(&self) -> String {
        hex::encode(Sha256::digest(self.0.as_bytes()))
    }

    /// The parts that may be shown later: prefix with 4 characters, and the last 4 characters.
    pub fn hint(&self) -> KeyHint {
        let n = KEY_PREFIX.len() + 4;
        KeyHint {
            prefix: self.0[..n].to_owned(),
            last4: self.0[self.0.len() - 4..].to_owned(),
        }
    }
}

impl fmt::Debug for ApiKeySecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKeySecret({}…)", &self.0[..KEY_PREFIX.len() + 4])
    }
}

/// Every organization admin key starts with this (as Anthropic's start with `sk-ant-admin`).
pub const ADMIN_KEY_PREFIX: &str = "sk-cg-admin-";

/// An organization admin key (`sk-cg-admin-…`): manages its organization, never calls
/// inference. Same construction as [`ApiKeySecret`]; neither parses as the other.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminKeySecret(String);

impl AdminKeySecret {
    pub fn from_random(random: [u8; BODY_LEN]) -> Self {
        Self(secret_from_random(ADMIN_KEY_PREFIX, random))
    }

    pub fn parse(s: &str) -> Result<Self, KeyFormatError> {
        parse_secret(ADMIN_KEY_PREFIX, s)?;
        Ok(Self(s.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Hex SHA-256 of the whole key: what is stored and looked up.
    pub fn hash(&self) -> String {
        hex::encode(Sha256::digest(self.0.as_bytes()))
    }

    /// `sk-cg-admin-` with 4 characters, and the last 4 characters.
    pub fn hint(&self) -> KeyHint {
        let n = ADMIN_KEY_PREFIX.len() + 4;
        KeyHint {
            prefix: self.0[..n].to_owned(),
            last4: self.0[self.0.len() - 4..].to_owned(),
        }
    }
}

impl fmt::Debug for AdminKeySecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "AdminKeySecret({}…)",
            &self.0[..ADMIN_KEY_PREFIX.len() + 4]
        )
    }
}

/// The non-secret parts of a key, for listings: `sk-cg-AbCd…wxyz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyHint {
    pub prefix: String,
    pub last4: String,
}

impl fmt::Display for KeyHint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}…{}", self.prefix, self.last4)
    }
}

fn checksum(body: &str) -> String {
    let digest = Sha256::digest(body.as_bytes());
    digest[..CHECK_LEN]
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % 62] as char)
        .collect()
}

/// A key's lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyStatus {
    Active,
    Disabled,
    Revoked,
}

impl KeyStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Disabled => "disabled",
            Self::Revoked => "revoked",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(Self::Active),
            "disabled" => Some(Self::Disabled),
            "revoked" => Some(Self::Revoked),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_parse_and_hash() {
        let k = ApiKeySecret::from_random([7u8; 32]);
        assert_eq!(k.expose().len(), KEY_LEN);
        assert!(k.expose().starts_with("sk-cg-"));
        let again = ApiKeySecret::parse(k.expose()).unwrap();
        assert_eq!(again.hash(), k.hash());
        assert_eq!(k.hash().len(), 64);
        assert!(!format!("{k:?}").contains(&k.expose()[12..]));
        let a = AdminKeySecret::from_random([9u8; 32]);
        assert!(a.expose().starts_with("sk-cg-admin-"));
        assert_eq!(AdminKeySecret::parse(a.expose()).unwrap().hash(), a.hash());
        assert!(
            ApiKeySecret::parse(a.expose()).is_err(),
            "an admin key is no API key"
        );
        assert!(
            AdminKeySecret::parse(k.expose()).is_err(),
            "an API key is no admin key"
        );
    }

    #[test]
    fn tampered_and_hostile_keys_are_rejected() {
        let k = ApiKeySecret::from_random([42u8; 32]).expose().to_owned();
        let mut flipped = k.clone().into_bytes();
        flipped[10] = if flipped[10] == b'a' { b'b' } else { b'a' };
        let flipped = String::from_utf8(flipped).unwrap();
        assert_eq!(ApiKeySecret::parse(&flipped), Err(KeyFormatError::Checksum));
        for bad in [
            "",
            "sk-cg-",
            "sk-ant-api03-xxxx",
            "' OR 1=1 --",
            &format!("{k}x"),
            &k.replace("sk-cg-", "sk-cg_"),
            &"A".repeat(10_000),
        ] {
            assert!(ApiKeySecret::parse(bad).is_err(), "{bad:?}");
        }
    }
}

/// An API key as stored: never the secret, only its hash (kept by the storage) and a hint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    pub id: crate::ids::ApiKeyId,
    pub org: crate::ids::OrganizationId,
    pub name: String,
    pub hint: KeyHint,
    pub status: KeyStatus,
    pub created_at: crate::clock::Timestamp,
    pub expires_at: Option<crate::clock::Timestamp>,
    pub limits: crate::accounts::KeyLimits,
    /// Who created it (the CLI's keys are the operator's).
    pub created_by: crate::accounts::Actor,
}

impl ApiKeyRecord {
    /// Whether requests may use the key at `now`.
    pub fn usable(&self, now: crate::clock::Timestamp) -> bool {
        self.status == KeyStatus::Active && self.expires_at.is_none_or(|e| now < e)
    }

    /// The ledger scope its spending is attributed to.
    pub fn scope(&self) -> String {
        format!("key:{}", self.id)
    }
}
