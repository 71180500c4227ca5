//! Who may call: API keys (stored only as hashes) and per-organization gateway settings.

use creditgate_core::accounts::{Actor, KeyLimits};
use creditgate_core::clock::Timestamp;
use creditgate_core::ids::{ApiKeyId, OrganizationId};
use creditgate_core::keys::{ApiKeyRecord, ApiKeySecret, KeyHint, KeyStatus};
use creditgate_core::ledger::{LedgerError, LedgerResult, LedgerStore};
use creditgate_core::usage::DisconnectPolicy;

use crate::statement::{Columns, Param};
use crate::Database;

fn corrupt(what: &str) -> LedgerError {
    LedgerError::Corrupt(format!("stored api key has an invalid {what}"))
}

/// The columns [`key_row`] reads.
macro_rules! key_select {
    ($rest:literal) => {
        concat!(
            "SELECT id, org_id, name, prefix, last4, status, created_at, expires_at, limits, \
             created_by_type, created_by_id FROM api_keys ",
            $rest
        )
    };
}

/// Maps a row of [`key_select`].
fn key_row(row: &dyn Columns) -> LedgerResult<ApiKeyRecord> {
    Ok(ApiKeyRecord {
        id: ApiKeyId::parse(&row.text(0)?).map_err(|_| corrupt("id"))?,
        org: OrganizationId::parse(&row.text(1)?).map_err(|_| corrupt("organization"))?,
        name: row.text(2)?,
        hint: KeyHint {
            prefix: row.text(3)?,
            last4: row.text(4)?,
        },
        status: KeyStatus::parse(&row.text(5)?).ok_or_else(|| corrupt("status"))?,
        created_at: Timestamp::from_millis(row.int(6)?),
        expires_at: row.opt_int(7)?.map(Timestamp::from_millis),
        limits: match row.opt_text(8)? {
            Some(json) => serde_json::from_str(&json).map_err(|_| corrupt("limits"))?,
            None => KeyLimits::default(),
        },
        created_by: match row.opt_text(9)? {
            Some(kind) => Actor {
                kind,
                id: row.opt_text(10)?,
            },
            None => Actor::operator(),
        },
    })
}

impl Database {
    /// Creates a key for an existing organization; returns its record and the secret, which is
    /// not stored (only its hash is) and must be shown to the caller once.
    pub async fn create_api_key(
        &self,
        org: &OrganizationId,
        name: &str,
        expires_at: Option<Timestamp>,
    ) -> LedgerResult<(ApiKeyRecord, ApiKeySecret)> {
        self.create_api_key_with(
            org,
            name,
            expires_at,
            KeyLimits::default(),
            Actor::operator(),
        )
        .await
    }

    /// Creates a key with limits, attributed to its creator; returns the record and the secret
    /// (shown once).
    pub async fn create_api_key_with(
        &self,
        org: &OrganizationId,
        name: &str,
        expires_at: Option<Timestamp>,
        limits: KeyLimits,
        created_by: Actor,
    ) -> LedgerResult<(ApiKeyRecord, ApiKeySecret)> {
        self.organization(org).await?;
        let secret = ApiKeySecret::from_random(rand::random());
        let id = ApiKeyId::parse(&format!("key_{}", hex::encode(rand::random::<[u8; 8]>())))
            .map_err(|e| LedgerError::InvalidRequest(e.to_string()))?;
        let record = ApiKeyRecord {
            id,
            org: org.clone(),
            name: name.to_owned(),
            hint: secret.hint(),
            status: KeyStatus::Active,
            created_at: self.now(),
            expires_at,
            limits,
            created_by,
        };
        self.insert_api_key(&record, &secret.hash()).await?;
        Ok((record, secret))
    }

    /// Stores a key record with the hash of its secret.
    pub async fn insert_api_key(&self, rec: &ApiKeyRecord, hash: &str) -> LedgerResult<()> {
        self.execute(
            "INSERT INTO api_keys (id, org_id, name, key_hash, prefix, last4, status, created_at, \
             expires_at, limits, created_by_type, created_by_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            vec![
                Param::Text(rec.id.to_string()),
                Param::Text(rec.org.to_string()),
                Param::Text(rec.name.clone()),
                Param::Text(hash.to_owned()),
                Param::Text(rec.hint.prefix.clone()),
                Param::Text(rec.hint.last4.clone()),
                Param::Text(rec.status.as_str().to_owned()),
                Param::Int(rec.created_at.millis()),
                Param::OptInt(rec.expires_at.map(|t| t.millis())),
                Param::OptText(if rec.limits == KeyLimits::default() {
                    None
                } else {
                    Some(
                        serde_json::to_string(&rec.limits)
                            .map_err(|e| LedgerError::InvalidRequest(e.to_string()))?,
                    )
                }),
                Param::Text(rec.created_by.kind.clone()),
                Param::OptText(rec.created_by.id.clone()),
            ],
        )
        .await?;
        Ok(())
    }

    /// The key whose secret hashes to `hash`, if any.
    pub async fn api_key_by_hash(&self, hash: &str) -> LedgerResult<Option<ApiKeyRecord>> {
        self.query_opt(
            key_select!("WHERE key_hash = $1"),
            vec![Param::Text(hash.to_owned())],
            key_row,
        )
        .await
    }

    /// Keys of one organization, or of all, oldest first.
    pub async fn api_keys(&self, org: Option<&OrganizationId>) -> LedgerResult<Vec<ApiKeyRecord>> {
        self.query(
            key_select!("WHERE ($1 = '' OR org_id = $1) ORDER BY created_at, id"),
            vec![Param::Text(org.map(|o| o.to_string()).unwrap_or_default())],
            key_row,
        )
        .await
    }

    /// Changes a key's status; `None` if there is no such key or it is revoked (final).
    pub async fn set_api_key_status(
        &self,
        id: &ApiKeyId,
        status: KeyStatus,
    ) -> LedgerResult<Option<ApiKeyRecord>> {
        let changed = self
            .execute(
                "UPDATE api_keys SET status = $1 WHERE id = $2 AND status <> 'revoked'",
                vec![
                    Param::Text(status.as_str().to_owned()),
                    Param::Text(id.to_string()),
                ],
            )
            .await?;
        if changed == 0 {
            return Ok(None);
        }
        self.query_opt(
            key_select!("WHERE id = $1"),
            vec![Param::Text(id.to_string())],
            key_row,
        )
        .await
    }

    /// One key of the organization (`None` for another organization's key).
    pub async fn api_key(
        &self,
        org: &OrganizationId,
        id: &ApiKeyId,
    ) -> LedgerResult<Option<ApiKeyRecord>> {
        self.query_opt(
            key_select!("WHERE org_id = $1 AND id = $2"),
            vec![Param::Text(org.to_string()), Param::Text(id.to_string())],
            key_row,
        )
        .await
    }

    /// The organization's stored disconnect policy (`drain` or `cancel`), if it set one.
    pub async fn disconnect_policy(
        &self,
        org: &OrganizationId,
    ) -> LedgerResult<Option<DisconnectPolicy>> {
        let row = self
            .query_opt(
                "SELECT disconnect_policy FROM org_settings WHERE org_id = $1",
                vec![Param::Text(org.to_string())],
                |row| row.opt_text(0),
            )
            .await?;
        row.flatten()
            .map(|text| {
                DisconnectPolicy::parse(&text).ok_or_else(|| {
                    LedgerError::Corrupt(format!("stored disconnect policy {text:?} is unknown"))
                })
            })
            .transpose()
    }

    /// Sets (or with `None`, clears) an organization's disconnect policy.
    pub async fn set_disconnect_policy(
        &self,
        org: &OrganizationId,
        policy: Option<DisconnectPolicy>,
    ) -> LedgerResult<()> {
        self.organization(org).await?;
        self.execute(
            "INSERT INTO org_settings (org_id, disconnect_policy) VALUES ($1, $2) \
             ON CONFLICT (org_id) DO UPDATE SET disconnect_policy = excluded.disconnect_policy",
            vec![
                Param::Text(org.to_string()),
                Param::OptText(policy.map(|p| p.as_str().to_owned())),
            ],
        )
        .await?;
        Ok(())
    }
}
