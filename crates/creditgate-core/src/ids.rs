//! Identifiers parsed at the edge: past a handler there are no raw id strings.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest identifier accepted anywhere (organization, lot, transfer, key ids).
pub const MAX_ID_LEN: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} id: must be 1-{MAX_ID_LEN} characters of A-Z a-z 0-9 _ - . :")]
pub struct IdError {
    pub kind: &'static str,
}

fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_ID_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'))
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// Parses an id: 1–128 characters of `A-Z a-z 0-9 _ - . :`.
            pub fn parse(s: &str) -> Result<Self, IdError> {
                if valid_id(s) {
                    Ok(Self(s.to_owned()))
                } else {
                    Err(IdError { kind: $kind })
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

id_type!(
    /// An organization (customer account), e.g. `org_7Hc2…`.
    OrganizationId,
    "organization"
);
id_type!(
    /// A lot (one grant of credits), e.g. `lot_…`.
    LotId,
    "lot"
);
id_type!(
    /// A transfer's caller-chosen unique id; it is also the idempotency key. A hold's id is the id
    /// of the transfer that placed it.
    TransferId,
    "transfer"
);
/// Prefix of the ids the gateway gives requests (and their holds).
pub const REQUEST_ID_PREFIX: &str = "req_cg_";

impl TransferId {
    /// A request's id, which is also its hold's transfer id: `req_cg_`, 12 hex characters of
    /// `unix_millis` (its low 48 bits, most significant first), then 20 hex characters of
    /// `random` (80 bits; the caller supplies the time and the randomness: the core does no I/O).
    ///
    /// Time first, as in UUIDv7, so ids made later sort later: every table keyed by a request's
    /// id (holds, charges, transfers, usage records) then grows at its right edge, and the
    /// operations committed together touch one leaf page of each instead of one page per
    /// request (`docs/benchmarks.md`). Uniqueness rests on the random part alone.
    pub fn for_request(unix_millis: u64, random: [u8; 10]) -> Self {
        let time = (unix_millis & 0xFFFF_FFFF_FFFF).to_be_bytes();
        Self(format!(
            "{REQUEST_ID_PREFIX}{}{}",
            hex::encode(&time[2..]),
            hex::encode(random)
        ))
    }

    /// The id of a later transfer of the same operation, e.g. `req_cg_…:grow:3` or
    /// `req_cg_…:settle`: `part` is appended after a colon, so replays stay idempotent.
    pub fn child(&self, part: &str) -> Result<Self, IdError> {
        Self::parse(&format!("{}:{part}", self.0))
    }
}

id_type!(
    /// An API key's public id (not the secret), e.g. `key_…`.
    ApiKeyId,
    "api key"
);
id_type!(
    /// A purchase order, e.g. `ord_…`; random, so it also guards the sandbox checkout page.
    OrderId,
    "order"
);
id_type!(
    /// A monthly invoice of an invoiced organization, e.g. `inv_…`; random, like an order's.
    InvoiceId,
    "invoice"
);
id_type!(
    /// A person's account, e.g. `user_…`.
    UserId,
    "user"
);
id_type!(
    /// An invitation to join an organization, e.g. `invite_…`.
    InviteId,
    "invite"
);
id_type!(
    /// An organization admin key's public id, e.g. `adminkey_…`.
    AdminKeyId,
    "admin key"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_reject_injection_and_oversize() {
        assert!(OrganizationId::parse("org_abc-1.2:3").is_ok());
        for bad in [
            "",
            "a b",
            "x'; DROP TABLE lots;--",
            "é",
            &"a".repeat(129),
            "a\0b",
        ] {
            assert!(OrganizationId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn request_ids_and_their_children_are_valid() {
        let id = TransferId::for_request(0x0102_0304_0506, [0xab; 10]);
        assert_eq!(id.as_str(), "req_cg_010203040506abababababababababab");
        // Only the time's low 48 bits are kept; a later time sorts later.
        let wrapped = TransferId::for_request(0xFFFF_0000_0000_0001, [0; 10]);
        assert_eq!(wrapped.as_str(), "req_cg_00000000000100000000000000000000");
        assert!(
            TransferId::for_request(1_800_000_000_000, [0xff; 10])
                < TransferId::for_request(1_800_000_000_001, [0; 10])
        );
        assert_eq!(TransferId::parse(id.as_str()), Ok(id.clone()));
        assert_eq!(
            id.child("grow:12").unwrap().as_str(),
            format!("{id}:grow:12")
        );
        assert!(id.child(&"x".repeat(MAX_ID_LEN)).is_err());
    }
}
