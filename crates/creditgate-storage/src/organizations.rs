//! What an organization is beyond its money: its status, its credit line, search by name, its
//! admin keys, its API keys' limits and request-rate windows, and the append-only audit log.

use creditgate_core::accounts::{Actor, AdminKeyRecord, AuditEvent, KeyLimits};
use creditgate_core::clock::Timestamp;
use creditgate_core::ids::{AdminKeyId, ApiKeyId, OrganizationId};
use creditgate_core::keys::{ApiKeyRecord, KeyHint, KeyStatus};
use creditgate_core::ledger::{LedgerError, LedgerResult, Organization};
use creditgate_core::payments::credit_line::{BillingMode, CreditLine};

use crate::accounts::corrupt;
use crate::run::Step;
use crate::statement::{Columns, Param};
use crate::Database;

fn text(s: impl ToString) -> Param {
    Param::Text(s.to_string())
}

fn org_col(row: &dyn Columns, i: usize) -> LedgerResult<OrganizationId> {
    OrganizationId::parse(&row.text(i)?).map_err(|_| corrupt("organization"))
}

fn admin_key_row(row: &dyn Columns) -> LedgerResult<AdminKeyRecord> {
    Ok(AdminKeyRecord {
        id: AdminKeyId::parse(&row.text(0)?).map_err(|_| corrupt("admin key id"))?,
        org: org_col(row, 1)?,
        name: row.text(2)?,
        hint: KeyHint {
            prefix: row.text(3)?,
            last4: row.text(4)?,
        },
        active: row.text(5)? == "active",
        created_at: Timestamp::from_millis(row.int(6)?),
        created_by: Actor {
            kind: row.text(7)?,
            id: row.opt_text(8)?,
        },
    })
}

fn audit_row(row: &dyn Columns) -> LedgerResult<AuditEvent> {
    Ok(AuditEvent {
        id: format!("audit_{}", row.int(0)?),
        org: row.opt_text(1)?,
        at: Timestamp::from_millis(row.int(2)?),
        actor: Actor {
            kind: row.text(3)?,
            id: row.opt_text(4)?,
        },
        action: row.text(5)?,
        target_type: row.text(6)?,
        target_id: row.text(7)?,
        ip: row.opt_text(8)?,
        details: serde_json::from_str(&row.text(9)?).map_err(|_| corrupt("audit details"))?,
    })
}

/// `LIKE` pattern matching `q` anywhere, with `%`, `_` and `\` taken literally.
fn contains_pattern(q: &str) -> String {
    let mut p = String::from("%");
    for c in q.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

impl Database {
    /// `active` or `suspended`.
    pub async fn organization_suspended(&self, org: &OrganizationId) -> LedgerResult<bool> {
        let status = self
            .query_opt(
                "SELECT status FROM org_settings WHERE org_id = $1",
                vec![text(org)],
                |row| row.text(0),
            )
            .await?;
        Ok(status.as_deref() == Some("suspended"))
    }

    /// Suspends (keys get 403) or reactivates an organization.
    pub async fn set_organization_suspended(
        &self,
        org: &OrganizationId,
        suspended: bool,
    ) -> LedgerResult<()> {
        let status = if suspended { "suspended" } else { "active" };
        self.execute(
            "INSERT INTO org_settings (org_id, status) VALUES ($1, $2) \
             ON CONFLICT (org_id) DO UPDATE SET status = excluded.status",
            vec![text(org), text(status)],
        )
        .await?;
        Ok(())
    }

    /// The organization's billing mode and credit limit; `None` if there is no organization.
    pub async fn credit_line(&self, org: &OrganizationId) -> LedgerResult<Option<CreditLine>> {
        self.query_opt(
            "SELECT billing_mode, credit_limit FROM org_state WHERE org = $1",
            vec![text(org)],
            |row| {
                let mode = row.text(0)?;
                Ok(CreditLine {
                    mode: BillingMode::parse(&mode).ok_or_else(|| corrupt("billing mode"))?,
                    limit: row.nanos(1)?,
                })
            },
        )
        .await
    }

    /// Sets the billing mode and credit limit admission reads on the organization's state row
    /// (the ledger's money operations never write these columns); `false` if there is no
    /// organization.
    pub async fn set_credit_line(
        &self,
        org: &OrganizationId,
        line: &CreditLine,
    ) -> LedgerResult<bool> {
        let n = self
            .execute(
                "UPDATE org_state SET billing_mode = $2, credit_limit = $3 WHERE org = $1",
                vec![
                    text(org),
                    text(line.mode.as_str()),
                    Param::Int(line.limit.nanos()),
                ],
            )
            .await?;
        Ok(n == 1)
    }

    /// Renames an organization; `false` if there is none.
    pub async fn rename_organization(
        &self,
        org: &OrganizationId,
        name: &str,
    ) -> LedgerResult<bool> {
        let n = self
            .execute(
                "UPDATE organizations SET name = $2 WHERE id = $1",
                vec![text(org), text(name)],
            )
            .await?;
        Ok(n == 1)
    }

    /// Organizations whose id or name contains `q` (case-insensitive), oldest first.
    pub async fn search_organizations(
        &self,
        q: &str,
        limit: i64,
    ) -> LedgerResult<Vec<Organization>> {
        self.query(
            "SELECT id, name, created_at FROM organizations \
             WHERE lower(name) LIKE $1 ESCAPE '\\' OR lower(id) LIKE $1 ESCAPE '\\' \
             ORDER BY created_at, id LIMIT $2",
            vec![text(contains_pattern(q)), Param::Int(limit)],
            |row| {
                Ok(Organization {
                    id: org_col(row, 0)?,
                    name: row.text(1)?,
                    created_at: Timestamp::from_millis(row.int(2)?),
                })
            },
        )
        .await
    }

    /// Stores an admin key with the hash of its secret.
    pub async fn insert_admin_key(&self, rec: &AdminKeyRecord, hash: &str) -> LedgerResult<()> {
        self.execute(
            "INSERT INTO admin_keys (id, org_id, name, key_hash, prefix, last4, status, \
             created_at, created_by_type, created_by_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            vec![
                text(&rec.id),
                text(&rec.org),
                text(&rec.name),
                text(hash),
                text(&rec.hint.prefix),
                text(&rec.hint.last4),
                text(if rec.active { "active" } else { "inactive" }),
                Param::Int(rec.created_at.millis()),
                text(&rec.created_by.kind),
                Param::OptText(rec.created_by.id.clone()),
            ],
        )
        .await?;
        Ok(())
    }

    /// The admin key whose secret hashes to `hash`.
    pub async fn admin_key_by_hash(&self, hash: &str) -> LedgerResult<Option<AdminKeyRecord>> {
        self.query_opt(
            "SELECT id, org_id, name, prefix, last4, status, created_at, created_by_type, \
             created_by_id FROM admin_keys WHERE key_hash = $1",
            vec![text(hash)],
            admin_key_row,
        )
        .await
    }

    /// The organization's admin keys, oldest first.
    pub async fn admin_keys(&self, org: &OrganizationId) -> LedgerResult<Vec<AdminKeyRecord>> {
        self.query(
            "SELECT id, org_id, name, prefix, last4, status, created_at, created_by_type, \
             created_by_id FROM admin_keys WHERE org_id = $1 ORDER BY created_at, id",
            vec![text(org)],
            admin_key_row,
        )
        .await
    }

    /// Deactivates an admin key of the organization (final); `false` if there is no such key.
    pub async fn deactivate_admin_key(
        &self,
        org: &OrganizationId,
        id: &AdminKeyId,
    ) -> LedgerResult<bool> {
        let n = self
            .execute(
                "UPDATE admin_keys SET status = 'inactive' WHERE org_id = $1 AND id = $2",
                vec![text(org), text(id)],
            )
            .await?;
        Ok(n == 1)
    }

    /// Changes an API key of the organization: any of name, status, limits, expiry. `None` if
    /// there is no such key in the organization or it is revoked (final).
    pub async fn update_api_key(
        &self,
        org: &OrganizationId,
        id: &ApiKeyId,
        name: Option<&str>,
        status: Option<KeyStatus>,
        limits: Option<&KeyLimits>,
        expires_at: Option<Option<Timestamp>>,
    ) -> LedgerResult<Option<ApiKeyRecord>> {
        let limits_json = limits
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| LedgerError::InvalidRequest(e.to_string()))?;
        let n = self
            .execute(
                "UPDATE api_keys SET name = COALESCE($3, name), status = COALESCE($4, status), \
                 limits = COALESCE($5, limits), \
                 expires_at = CASE WHEN CAST($6 AS BIGINT) = 1 THEN CAST($7 AS BIGINT) ELSE expires_at END \
                 WHERE org_id = $1 AND id = $2 AND status <> 'revoked'",
                vec![
                    text(org),
                    text(id),
                    Param::OptText(name.map(str::to_owned)),
                    Param::OptText(status.map(|s| s.as_str().to_owned())),
                    Param::OptText(limits_json),
                    Param::Int(i64::from(expires_at.is_some())),
                    Param::OptInt(expires_at.flatten().map(Timestamp::millis)),
                ],
            )
            .await?;
        if n == 0 {
            return Ok(None);
        }
        self.api_key(org, id).await
    }

    /// Counts a request and its tokens in the key's current one-minute window, only if both
    /// stay within the limits (`None`: unlimited). One conditional write, so concurrent
    /// requests on any replica cannot pass the limit. The window's `(requests, tokens)` after
    /// the request when taken, `Err` with them when refused.
    pub async fn take_rate(
        &self,
        key: &ApiKeyId,
        window_start: Timestamp,
        tokens: i64,
        max_requests: Option<i64>,
        max_tokens: Option<i64>,
    ) -> LedgerResult<Result<(i64, i64), (i64, i64)>> {
        let max_r = max_requests.unwrap_or(i64::MAX);
        let max_t = max_tokens.unwrap_or(i64::MAX);
        let steps = vec![
            Step::new(
                "DELETE FROM rate_windows WHERE key_id = $1 AND window_start < $2",
                vec![text(key), Param::Int(window_start.millis())],
            ),
            Step::new(
                "INSERT INTO rate_windows (key_id, window_start, requests, tokens) \
                 SELECT $1, CAST($2 AS BIGINT), 1, CAST($3 AS BIGINT) \
                 WHERE CAST($3 AS BIGINT) <= CAST($5 AS BIGINT) \
                 ON CONFLICT (key_id, window_start) DO UPDATE \
                 SET requests = rate_windows.requests + 1, \
                 tokens = rate_windows.tokens + CAST($3 AS BIGINT) \
                 WHERE rate_windows.requests + 1 <= CAST($4 AS BIGINT) \
                 AND rate_windows.tokens + CAST($3 AS BIGINT) <= CAST($5 AS BIGINT)",
                vec![
                    text(key),
                    Param::Int(window_start.millis()),
                    Param::Int(tokens),
                    Param::Int(max_r),
                    Param::Int(max_t),
                ],
            )
            .expect(1),
        ];
        let taken = self.transaction(steps).await?.is_ok();
        // Read after the write: other requests may have counted since; the headers that show
        // these counts are advisory, the limit itself was enforced by the write.
        let counts = self
            .query_opt(
                "SELECT requests, tokens FROM rate_windows WHERE key_id = $1 AND window_start = $2",
                vec![text(key), Param::Int(window_start.millis())],
                |row| Ok((row.int(0)?, row.int(1)?)),
            )
            .await?
            .unwrap_or((0, 0));
        Ok(if taken { Ok(counts) } else { Err(counts) })
    }

    /// Corrects the tokens a request counted in its window at admission by `delta` (the tokens
    /// it actually used minus its estimate), never below zero. A window already over is gone
    /// and left alone. Returns whether the window was still there.
    pub async fn adjust_rate_tokens(
        &self,
        key: &ApiKeyId,
        window_start: Timestamp,
        delta: i64,
    ) -> LedgerResult<bool> {
        let n = self
            .execute(
                "UPDATE rate_windows SET tokens = CASE WHEN tokens + $3 < 0 THEN 0 \
                 ELSE tokens + $3 END WHERE key_id = $1 AND window_start = $2",
                vec![
                    text(key),
                    Param::Int(window_start.millis()),
                    Param::Int(delta),
                ],
            )
            .await?;
        Ok(n > 0)
    }

    /// Appends one event to the audit log (never updated or deleted: the schema refuses).
    pub async fn append_audit(&self, e: &AuditEvent) -> LedgerResult<()> {
        self.execute(
            "INSERT INTO audit_log (org_id, at, actor_type, actor_id, action, target_type, \
             target_id, ip, details) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            vec![
                Param::OptText(e.org.clone()),
                Param::Int(e.at.millis()),
                text(&e.actor.kind),
                Param::OptText(e.actor.id.clone()),
                text(&e.action),
                text(&e.target_type),
                text(&e.target_id),
                Param::OptText(e.ip.clone()),
                text(e.details.to_string()),
            ],
        )
        .await?;
        Ok(())
    }

    /// Audit events newest first: of one organization (or all, for the operator), older than
    /// the event `before_seq` when given, at most `limit`.
    pub async fn audit_log(
        &self,
        org: Option<&OrganizationId>,
        before_seq: Option<i64>,
        limit: i64,
    ) -> LedgerResult<Vec<AuditEvent>> {
        self.query(
            "SELECT seq, org_id, at, actor_type, actor_id, action, target_type, target_id, ip, \
             details FROM audit_log WHERE ($1 = '' OR org_id = $1) AND seq < $2 \
             ORDER BY seq DESC LIMIT $3",
            vec![
                text(org.map(|o| o.as_str()).unwrap_or("")),
                Param::Int(before_seq.unwrap_or(i64::MAX)),
                Param::Int(limit),
            ],
            audit_row,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn search_patterns_escape_wildcards() {
        assert_eq!(super::contains_pattern("A_b%"), "%a\\_b\\%%");
    }
}
