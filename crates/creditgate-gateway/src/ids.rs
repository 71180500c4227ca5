//! New ids, made in one place: `prefix_` and 32 hex characters of fresh randomness (128 bits),
//! so that every id the gateway or the CLI hands out has the same shape and is unguessable (an
//! order id also guards the sandbox's checkout page). Ids derived from something else (a
//! grant's reference, a request's transfers) are built by their owners from their source.

use creditgate_core::ids::IdError;

use crate::error::ApiError;

/// A fresh id text: `prefix_` and 32 hex characters.
pub fn fresh(prefix: &str) -> String {
    format!("{prefix}_{}", hex::encode(rand::random::<[u8; 16]>()))
}

/// A fresh id of a typed kind, e.g. `new_id("user", UserId::parse)`.
pub fn new_id<T>(prefix: &str, parse: fn(&str) -> Result<T, IdError>) -> Result<T, ApiError> {
    parse(&fresh(prefix)).map_err(|e| ApiError::internal(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use creditgate_core::ids::OrganizationId;

    #[test]
    fn fresh_ids_are_valid_distinct_and_prefixed() {
        let a: OrganizationId = new_id("org", OrganizationId::parse).unwrap();
        let b: OrganizationId = new_id("org", OrganizationId::parse).unwrap();
        assert_ne!(a, b);
        assert!(a.as_str().starts_with("org_"));
        assert_eq!(a.as_str().len(), "org_".len() + 32);
    }
}
