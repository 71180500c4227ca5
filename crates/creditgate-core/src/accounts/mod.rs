//! People and their rights: members' roles and the rules that govern them, validated emails,
//! names and passwords, organization admin keys, key limits, and the audit vocabulary.

mod limits;
mod password;
mod roles;

use serde::{Deserialize, Serialize};

pub use limits::{period_start, KeyLimits, LimitPeriod, SpendCaps, MAX_ALLOWED_MODELS};
pub use password::{check_password, MAX_PASSWORD_LEN, MIN_PASSWORD_LEN};
pub use roles::{check_removal, check_role_change, Action, Role};

use crate::clock::Timestamp;
use crate::ids::{AdminKeyId, InviteId, OrganizationId, UserId};
use crate::keys::KeyHint;

/// Longest email address (RFC 5321's path limit).
pub const MAX_EMAIL_LEN: usize = 254;
/// Longest display name of a user, key or organization.
pub const MAX_NAME_LEN: usize = 200;

/// What a caller asked for that the account rules refuse, in domain terms; the HTTP edge maps
/// each to a status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    /// Bad input (400): the message names the field and the rule.
    #[error("{0}")]
    Invalid(String),
    /// The caller's role does not allow it (403).
    #[error("{0}")]
    Forbidden(String),
    /// No such thing in the caller's organization (404).
    #[error("{0}")]
    NotFound(String),
    /// It conflicts with the current state (409), e.g. the email is already a member.
    #[error("{0}")]
    Conflict(String),
}

/// A validated, lower-cased email address.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    /// Accepts `local@domain.tld` with no spaces or control characters, at most 254 characters;
    /// stored lower-cased so that sign-in does not depend on case.
    pub fn parse(text: &str) -> Result<Self, AccountError> {
        let bad = || AccountError::Invalid(format!("email: {text:?} is not a valid email address"));
        let s = text.trim().to_lowercase();
        if s.is_empty() || s.len() > MAX_EMAIL_LEN {
            return Err(bad());
        }
        let (local, domain) = s.split_once('@').ok_or_else(bad)?;
        let label_ok = |l: &str| {
            !l.is_empty()
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        };
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && !local.contains(['@', '"', '<', '>', '(', ')', ',', ';', ':', '\\', '[', ']'])
            && local.chars().all(|c| !c.is_whitespace() && !c.is_control());
        let labels: Vec<&str> = domain.split('.').collect();
        if !local_ok || labels.len() < 2 || !labels.iter().all(|l| label_ok(l)) {
            return Err(bad());
        }
        Ok(Self(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Email {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A display name (of a user, key or organization): trimmed, 1–200 characters, no control
/// characters.
pub fn parse_name(field: &str, text: &str) -> Result<String, AccountError> {
    let s = text.trim();
    if s.is_empty() || s.chars().count() > MAX_NAME_LEN {
        return Err(AccountError::Invalid(format!(
            "{field}: must be 1 to {MAX_NAME_LEN} characters"
        )));
    }
    if s.chars().any(char::is_control) {
        return Err(AccountError::Invalid(format!(
            "{field}: must not contain control characters"
        )));
    }
    Ok(s.to_owned())
}

/// Who did something, for the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// `user`, `admin_key`, `operator` or `system`.
    #[serde(rename = "type")]
    pub kind: String,
    pub id: Option<String>,
}

impl Actor {
    pub fn user(id: &str) -> Self {
        Self::new("user", Some(id))
    }
    pub fn admin_key(id: &str) -> Self {
        Self::new("admin_key", Some(id))
    }
    pub fn operator() -> Self {
        Self::new("operator", None)
    }
    pub fn system() -> Self {
        Self::new("system", None)
    }
    fn new(kind: &str, id: Option<&str>) -> Self {
        Self {
            kind: kind.to_owned(),
            id: id.map(str::to_owned),
        }
    }
}

/// One line of the append-only audit log. `details` is JSON written by the service and never
/// holds a secret (no passwords, keys, tokens or their hashes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub id: String,
    pub org: Option<String>,
    pub at: Timestamp,
    pub actor: Actor,
    pub action: String,
    pub target_type: String,
    pub target_id: String,
    pub ip: Option<String>,
    pub details: serde_json::Value,
}

/// How long an invitation link works.
pub const INVITE_TTL_MS: i64 = 7 * 24 * 60 * 60 * 1000;
/// How long a password-reset link works.
pub const RESET_TTL_MS: i64 = 30 * 60 * 1000;

/// A person who can sign in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub id: UserId,
    pub email: Email,
    pub name: String,
    pub created_at: Timestamp,
}

/// A user's place in one organization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Member {
    pub user: User,
    pub org: OrganizationId,
    pub role: Role,
    pub added_at: Timestamp,
}

/// A signed-in member's session, as resolved from its cookie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub member: Member,
    /// Required as `x-csrf-token` on every state-changing request made with this session.
    pub csrf_token: String,
    pub expires_at: Timestamp,
}

/// An invitation to join an organization with a role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Invite {
    pub id: InviteId,
    pub org: OrganizationId,
    pub email: Email,
    pub role: Role,
    pub invited_at: Timestamp,
    pub expires_at: Timestamp,
    pub accepted_at: Option<Timestamp>,
}

impl Invite {
    /// `pending`, `accepted` or `expired` at `now`.
    pub fn status(&self, now: Timestamp) -> &'static str {
        if self.accepted_at.is_some() {
            "accepted"
        } else if now >= self.expires_at {
            "expired"
        } else {
            "pending"
        }
    }
}

/// An organization admin key as stored (never the secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminKeyRecord {
    pub id: AdminKeyId,
    pub org: OrganizationId,
    pub name: String,
    pub hint: KeyHint,
    /// `active` or `inactive` (final).
    pub active: bool,
    pub created_at: Timestamp,
    pub created_by: Actor,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            Email::parse("  Ada@Example.COM ").unwrap().as_str(),
            "ada@example.com"
        );
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "a da@example.com",
            "ada@exa mple.com",
            "ada@@example.com",
            "ada@-example.com",
            "ada@example..com",
            "<ada>@example.com",
            "ad\u{0}a@example.com",
            &format!("{}@example.com", "a".repeat(65)),
            &format!("ada@{}.com", "a".repeat(250)),
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn names_are_bounded() {
        assert_eq!(parse_name("name", "  Ada  ").unwrap(), "Ada");
        assert!(parse_name("name", " ").is_err());
        assert!(parse_name("name", "a\u{7}b").is_err());
        assert!(parse_name("name", &"x".repeat(201)).is_err());
        assert!(parse_name("name", &"é".repeat(200)).is_ok());
    }
}
