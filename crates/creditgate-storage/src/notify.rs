//! Alerts and outbound webhooks (`alert_*`, `job_leases`, `webhook_*`, migrations 0012 and
//! 0013; `docs/alerts.md`): alert settings, the marks that make an alert fire once across
//! replicas, job leases, registered endpoints, events, deliveries and their attempt log.

use creditgate_core::clock::Timestamp;
use creditgate_core::ids::OrganizationId;
use creditgate_core::ledger::{LedgerError, LedgerResult};
use creditgate_core::money::NanoCredits;

use crate::run::Step;
use crate::statement::{Columns, Param};
use crate::Database;

/// An organization's alert settings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AlertSettings {
    /// Low-balance thresholds, highest first.
    pub thresholds: Vec<NanoCredits>,
    /// Addresses emailed besides the billing members.
    pub emails: Vec<String>,
}

/// Whether a registered endpoint is sent events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointStatus {
    Enabled,
    /// Failed for a whole day; a successful manual retry enables it again.
    Disabled,
    Deleted,
}

impl EndpointStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enabled => "enabled",
            Self::Disabled => "disabled",
            Self::Deleted => "deleted",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "enabled" => Self::Enabled,
            "disabled" => Self::Disabled,
            "deleted" => Self::Deleted,
            _ => return None,
        })
    }
}

/// A webhook endpoint an organization registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEndpoint {
    pub id: String,
    pub org: OrganizationId,
    pub url: String,
    pub events: Vec<String>,
    /// The signing secret (`whsec_…`), shown to the organization once.
    pub secret: String,
    pub status: EndpointStatus,
    /// The first failed attempt since the last success.
    pub failing_since: Option<Timestamp>,
    pub disabled_at: Option<Timestamp>,
    pub created_at: Timestamp,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    /// Retried for 24 hours without success (or its endpoint was disabled or deleted).
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => Self::Pending,
            "delivered" => Self::Delivered,
            "failed" => Self::Failed,
            _ => return None,
        })
    }
}

/// One event sent to one endpoint; its id is the same across retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub id: String,
    pub endpoint_id: String,
    pub event_id: String,
    pub event_type: String,
    pub status: DeliveryStatus,
    pub attempts: i64,
    pub next_at: Timestamp,
    pub created_at: Timestamp,
    pub delivered_at: Option<Timestamp>,
}

/// A claimed delivery with what sending it needs.
#[derive(Debug, Clone)]
pub struct DeliveryWork {
    pub delivery: Delivery,
    pub org: OrganizationId,
    pub url: String,
    pub secret: String,
    /// The event's body, byte for byte what is signed and sent.
    pub body: String,
}

/// One attempt of a delivery, as the delivery log shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub n: i64,
    pub at: Timestamp,
    /// The receiver's HTTP status; `None` when none came (refused, timed out).
    pub status_code: Option<i64>,
    pub error: Option<String>,
    pub duration_ms: i64,
    pub manual: bool,
}

/// How an attempt ended and what the delivery becomes.
#[derive(Debug, Clone)]
pub struct AttemptOutcome {
    pub attempt: Attempt,
    pub succeeded: bool,
    pub status: DeliveryStatus,
    pub next_at: Timestamp,
}

/// A lot with credits left that expires within a window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiringLot {
    pub lot: String,
    pub org: OrganizationId,
    pub remaining: NanoCredits,
    pub expires_at: Timestamp,
}

fn corrupt(what: &str) -> LedgerError {
    LedgerError::Corrupt(format!(
        "stored alert or webhook data has an invalid {what}"
    ))
}

fn text(s: &str) -> Param {
    Param::Text(s.to_owned())
}

fn org_of(r: &dyn Columns, i: usize) -> LedgerResult<OrganizationId> {
    OrganizationId::parse(&r.text(i)?).map_err(|_| corrupt("organization"))
}

/// The endpoint columns [`endpoint_row`] reads, then `$tail`.
macro_rules! endpoint_sql {
    ($tail:literal) => {
        concat!(
            "SELECT id, org, url, events, secret, status, failing_since, disabled_at, \
             created_at FROM webhook_endpoints",
            $tail
        )
    };
}

fn endpoint_row(r: &dyn Columns) -> LedgerResult<WebhookEndpoint> {
    Ok(WebhookEndpoint {
        id: r.text(0)?,
        org: org_of(r, 1)?,
        url: r.text(2)?,
        events: r
            .text(3)?
            .split(',')
            .filter(|e| !e.is_empty())
            .map(str::to_owned)
            .collect(),
        secret: r.text(4)?,
        status: EndpointStatus::parse(&r.text(5)?).ok_or_else(|| corrupt("endpoint status"))?,
        failing_since: r.opt_millis(6)?,
        disabled_at: r.opt_millis(7)?,
        created_at: r.millis(8)?,
    })
}

/// The delivery columns [`delivery_row`] reads, then `$tail`.
macro_rules! delivery_sql {
    ($tail:literal) => {
        concat!(
            "SELECT d.id, d.endpoint_id, d.event_id, e.type, d.status, d.attempts, \
             d.next_at, d.created_at, d.delivered_at",
            $tail
        )
    };
}

fn delivery_row(r: &dyn Columns) -> LedgerResult<Delivery> {
    Ok(Delivery {
        id: r.text(0)?,
        endpoint_id: r.text(1)?,
        event_id: r.text(2)?,
        event_type: r.text(3)?,
        status: DeliveryStatus::parse(&r.text(4)?).ok_or_else(|| corrupt("delivery status"))?,
        attempts: r.int(5)?,
        next_at: r.millis(6)?,
        created_at: r.millis(7)?,
        delivered_at: r.opt_millis(8)?,
    })
}

fn attempt_row(r: &dyn Columns) -> LedgerResult<(String, Attempt)> {
    Ok((
        r.text(0)?,
        Attempt {
            n: r.int(1)?,
            at: r.millis(2)?,
            status_code: r.opt_int(3)?,
            error: r.opt_text(4)?,
            duration_ms: r.int(5)?,
            manual: r.int(6)? != 0,
        },
    ))
}

/// Alert settings, alert marks and job leases.
impl Database {
    pub async fn alert_settings(&self, org: &OrganizationId) -> LedgerResult<AlertSettings> {
        let found = self
            .query_opt(
                "SELECT thresholds, emails FROM alert_settings WHERE org = $1",
                vec![text(org.as_str())],
                |r| {
                    let thresholds = r
                        .text(0)?
                        .split(',')
                        .filter(|t| !t.is_empty())
                        .map(|t| t.parse().map(NanoCredits::from_nanos))
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|_| corrupt("threshold"))?;
                    let emails = r.text(1)?.lines().map(str::to_owned).collect();
                    Ok(AlertSettings { thresholds, emails })
                },
            )
            .await?;
        Ok(found.unwrap_or_default())
    }

    /// Replaces the settings (thresholds stored highest first).
    pub async fn put_alert_settings(
        &self,
        org: &OrganizationId,
        s: &AlertSettings,
        now: Timestamp,
    ) -> LedgerResult<()> {
        let mut thresholds = s.thresholds.clone();
        thresholds.sort_by(|a, b| b.cmp(a));
        let thresholds: Vec<String> = thresholds.iter().map(|t| t.nanos().to_string()).collect();
        self.execute(
            "INSERT INTO alert_settings (org, thresholds, emails, updated_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (org) DO UPDATE SET thresholds = $2, \
             emails = $3, updated_at = $4",
            vec![
                text(org.as_str()),
                Param::Text(thresholds.join(",")),
                Param::Text(s.emails.join("\n")),
                Param::Int(now.millis()),
            ],
        )
        .await?;
        Ok(())
    }

    /// Marks the alert `(kind, mark)` of `org` as fired; `true` if it had not fired (or, with
    /// `rearm_by_top_up`, if a lot was added to the organization since it last fired). One
    /// conditional write: of any number of replicas asking at once, one gets `true`.
    pub async fn fire_alert(
        &self,
        org: &OrganizationId,
        kind: &str,
        mark: &str,
        rearm_by_top_up: bool,
        now: Timestamp,
    ) -> LedgerResult<bool> {
        let params = vec![
            text(org.as_str()),
            text(kind),
            text(mark),
            Param::Int(now.millis()),
        ];
        let sql = if rearm_by_top_up {
            "INSERT INTO alert_marks (org, kind, mark, lots_seen, fired_at) \
             SELECT CAST($1 AS TEXT), CAST($2 AS TEXT), CAST($3 AS TEXT), COUNT(*), CAST($4 AS BIGINT) \
             FROM lots WHERE org = $1 \
             ON CONFLICT (org, kind, mark) DO UPDATE SET lots_seen = excluded.lots_seen, \
             fired_at = excluded.fired_at WHERE alert_marks.lots_seen < excluded.lots_seen"
        } else {
            "INSERT INTO alert_marks (org, kind, mark, lots_seen, fired_at) \
             VALUES ($1, $2, $3, 0, $4) ON CONFLICT (org, kind, mark) DO NOTHING"
        };
        Ok(self.execute(sql, params).await? == 1)
    }

    /// Takes the periodic job `name` for `lease_ms` unless another holder's lease is live.
    pub async fn claim_job(
        &self,
        name: &str,
        owner: &str,
        now: Timestamp,
        lease_ms: i64,
    ) -> LedgerResult<bool> {
        let n = self
            .execute(
                "INSERT INTO job_leases (name, owner, lease_until) VALUES ($1, $2, $3) \
                 ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, \
                 lease_until = excluded.lease_until WHERE job_leases.lease_until <= $4",
                vec![
                    text(name),
                    text(owner),
                    Param::Int(now.millis() + lease_ms),
                    Param::Int(now.millis()),
                ],
            )
            .await?;
        Ok(n == 1)
    }

    /// Lots with credits left expiring after `from` and no later than `to` whose warning is
    /// not announced yet: the mark `<lot>:7` when they expire by `near`, else `<lot>:30`
    /// (`docs/alerts.md`), so a scan reads and writes nothing for lots already announced.
    pub async fn expiring_lots(
        &self,
        from: Timestamp,
        to: Timestamp,
        near: Timestamp,
    ) -> LedgerResult<Vec<ExpiringLot>> {
        self.query(
            "SELECT l.lot, l.org, l.remaining, l.expires_at FROM lot_state l \
             WHERE l.remaining > 0 AND l.expires_at > $1 AND l.expires_at <= $2 \
             AND NOT EXISTS (SELECT 1 FROM alert_marks m WHERE m.org = l.org \
             AND m.kind = 'credits.expiring' \
             AND m.mark = l.lot || CASE WHEN l.expires_at <= $3 THEN ':7' ELSE ':30' END) \
             ORDER BY l.expires_at, l.lot",
            vec![
                Param::Int(from.millis()),
                Param::Int(to.millis()),
                Param::Int(near.millis()),
            ],
            |r| {
                Ok(ExpiringLot {
                    lot: r.text(0)?,
                    org: org_of(r, 1)?,
                    remaining: r.nanos(2)?,
                    expires_at: r.millis(3)?,
                })
            },
        )
        .await
    }
}

/// Endpoints and events.
impl Database {
    pub async fn create_webhook_endpoint(&self, e: &WebhookEndpoint) -> LedgerResult<()> {
        self.execute(
            "INSERT INTO webhook_endpoints (id, org, url, events, secret, status, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            vec![
                text(&e.id),
                text(e.org.as_str()),
                text(&e.url),
                Param::Text(format!(",{},", e.events.join(","))),
                text(&e.secret),
                text(e.status.as_str()),
                Param::Int(e.created_at.millis()),
            ],
        )
        .await?;
        Ok(())
    }

    /// The organization's endpoints (not deleted), oldest first.
    pub async fn webhook_endpoints(
        &self,
        org: &OrganizationId,
    ) -> LedgerResult<Vec<WebhookEndpoint>> {
        const SQL: &str =
            endpoint_sql!(" WHERE org = $1 AND status <> 'deleted' ORDER BY created_at, id");
        self.query(SQL, vec![text(org.as_str())], endpoint_row)
            .await
    }

    /// One endpoint of the organization (not deleted).
    pub async fn webhook_endpoint(
        &self,
        org: &OrganizationId,
        id: &str,
    ) -> LedgerResult<Option<WebhookEndpoint>> {
        const SQL: &str = endpoint_sql!(" WHERE org = $1 AND id = $2 AND status <> 'deleted'");
        self.query_opt(SQL, vec![text(org.as_str()), text(id)], endpoint_row)
            .await
    }

    /// Deletes an endpoint (kept for its delivery log); its pending deliveries fail.
    pub async fn delete_webhook_endpoint(
        &self,
        org: &OrganizationId,
        id: &str,
    ) -> LedgerResult<bool> {
        let done = self
            .transaction(vec![
                Step::new(
                    "UPDATE webhook_endpoints SET status = 'deleted' WHERE org = $1 AND id = $2 \
                     AND status <> 'deleted'",
                    vec![text(org.as_str()), text(id)],
                )
                .expect(1),
                Step::new(
                    "UPDATE webhook_deliveries SET status = 'failed' WHERE endpoint_id = $1 \
                     AND status = 'pending'",
                    vec![text(id)],
                ),
            ])
            .await?;
        Ok(done.is_ok())
    }

    /// Records an event (its exact body) and a pending delivery of it to every enabled
    /// endpoint of the organization subscribed to its type, in one transaction. Recording the
    /// same event id again changes nothing.
    pub async fn record_event(
        &self,
        id: &str,
        org: &OrganizationId,
        kind: &str,
        body: &str,
        now: Timestamp,
    ) -> LedgerResult<()> {
        self.transaction(vec![
            Step::new(
                "INSERT INTO webhook_events (id, org, type, body, created_at) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING",
                vec![
                    text(id),
                    text(org.as_str()),
                    text(kind),
                    text(body),
                    Param::Int(now.millis()),
                ],
            ),
            // The delivery id is made of the event's and the endpoint's random halves, so it
            // is the same whichever replica records the event.
            Step::new(
                "INSERT INTO webhook_deliveries (id, endpoint_id, event_id, status, attempts, \
                 next_at, created_at) \
                 SELECT 'dlv_' || substr(CAST($1 AS TEXT), 5, 16) || substr(w.id, 5, 16), w.id, \
                 CAST($1 AS TEXT), 'pending', 0, CAST($4 AS BIGINT), CAST($4 AS BIGINT) \
                 FROM webhook_endpoints w WHERE w.org = $2 AND w.status = 'enabled' \
                 AND w.events LIKE '%,' || CAST($3 AS TEXT) || ',%' \
                 ON CONFLICT (endpoint_id, event_id) DO NOTHING",
                vec![
                    text(id),
                    text(org.as_str()),
                    text(kind),
                    Param::Int(now.millis()),
                ],
            ),
        ])
        .await?
        .map_err(|_| LedgerError::Corrupt("an event was not recorded".to_owned()))
    }
}

/// Deliveries and their attempts.
impl Database {
    /// Deliveries due at `now` to enabled endpoints whose lease is free, oldest first.
    pub async fn due_deliveries(&self, now: Timestamp, limit: i64) -> LedgerResult<Vec<String>> {
        self.query(
            "SELECT d.id FROM webhook_deliveries d \
             JOIN webhook_endpoints w ON w.id = d.endpoint_id \
             WHERE d.status = 'pending' AND d.next_at <= $1 AND w.status = 'enabled' \
             AND (d.lease_until IS NULL OR d.lease_until <= $1) \
             ORDER BY d.next_at, d.id LIMIT $2",
            vec![Param::Int(now.millis()), Param::Int(limit)],
            |r| r.text(0),
        )
        .await
    }

    /// Takes a delivery's lease for `lease_ms`: a conditional UPDATE, so of replicas asking at
    /// once exactly one sends it. A scheduled claim needs the delivery due and its endpoint
    /// enabled; a `manual` one (a retry asked through the API) only a free lease.
    pub async fn claim_delivery(
        &self,
        id: &str,
        owner: &str,
        now: Timestamp,
        lease_ms: i64,
        manual: bool,
    ) -> LedgerResult<Option<DeliveryWork>> {
        let sql = if manual {
            "UPDATE webhook_deliveries SET lease_owner = $2, lease_until = $3 WHERE id = $1 \
             AND (lease_until IS NULL OR lease_until <= $4)"
        } else {
            "UPDATE webhook_deliveries SET lease_owner = $2, lease_until = $3 WHERE id = $1 \
             AND status = 'pending' AND next_at <= $4 \
             AND (lease_until IS NULL OR lease_until <= $4) \
             AND endpoint_id IN (SELECT id FROM webhook_endpoints WHERE status = 'enabled')"
        };
        let params = vec![
            text(id),
            text(owner),
            Param::Int(now.millis() + lease_ms),
            Param::Int(now.millis()),
        ];
        if self.execute(sql, params).await? != 1 {
            return Ok(None);
        }
        const SQL: &str = delivery_sql!(
            ", w.org, w.url, w.secret, e.body FROM webhook_deliveries d \
             JOIN webhook_events e ON e.id = d.event_id \
             JOIN webhook_endpoints w ON w.id = d.endpoint_id \
             WHERE d.id = $1 AND d.lease_owner = $2"
        );
        self.query_opt(SQL, vec![text(id), text(owner)], |r| {
            Ok(DeliveryWork {
                delivery: delivery_row(r)?,
                org: org_of(r, 9)?,
                url: r.text(10)?,
                secret: r.text(11)?,
                body: r.text(12)?,
            })
        })
        .await
    }

    /// Records the lease holder's attempt, updates the delivery and the endpoint's failure
    /// streak (a success ends it and enables a disabled endpoint), and gives the lease back,
    /// in one transaction. `false` if `owner` no longer held the lease (nothing written).
    pub async fn finish_delivery(
        &self,
        id: &str,
        owner: &str,
        o: &AttemptOutcome,
    ) -> LedgerResult<bool> {
        let a = &o.attempt;
        let endpoint_sql = if o.succeeded {
            "UPDATE webhook_endpoints SET failing_since = NULL, disabled_at = NULL, \
             status = CASE WHEN status = 'disabled' THEN 'enabled' ELSE status END \
             WHERE id = (SELECT endpoint_id FROM webhook_deliveries WHERE id = $1)"
        } else {
            "UPDATE webhook_endpoints SET failing_since = COALESCE(failing_since, $2) \
             WHERE id = (SELECT endpoint_id FROM webhook_deliveries WHERE id = $1)"
        };
        let endpoint_params = if o.succeeded {
            vec![text(id)]
        } else {
            vec![text(id), Param::Int(a.at.millis())]
        };
        let steps = vec![
            Step::new(
                "UPDATE webhook_deliveries SET status = $3, next_at = $4, attempts = attempts + 1, \
                 delivered_at = CASE WHEN $3 = 'delivered' THEN CAST($5 AS BIGINT) \
                 ELSE delivered_at END, lease_owner = NULL, lease_until = NULL \
                 WHERE id = $1 AND lease_owner = $2",
                vec![
                    text(id),
                    text(owner),
                    text(o.status.as_str()),
                    Param::Int(o.next_at.millis()),
                    Param::Int(a.at.millis()),
                ],
            )
            .expect(1),
            Step::new(
                "INSERT INTO webhook_attempts (delivery_id, n, at, status_code, error, \
                 duration_ms, manual) SELECT id, attempts, CAST($2 AS BIGINT), \
                 CAST($3 AS BIGINT), CAST($4 AS TEXT), CAST($5 AS BIGINT), CAST($6 AS BIGINT) \
                 FROM webhook_deliveries WHERE id = $1",
                vec![
                    text(id),
                    Param::Int(a.at.millis()),
                    Param::OptInt(a.status_code),
                    Param::OptText(a.error.clone()),
                    Param::Int(a.duration_ms),
                    Param::Int(i64::from(a.manual)),
                ],
            )
            .expect(1),
            Step::new(endpoint_sql, endpoint_params),
        ];
        Ok(self.transaction(steps).await?.is_ok())
    }

    /// Disables the endpoint if it is enabled and has failed without a success since
    /// `failing_before` or earlier; its pending deliveries fail. `true` if this call did it.
    pub async fn disable_failing_endpoint(
        &self,
        endpoint_id: &str,
        failing_before: Timestamp,
        now: Timestamp,
    ) -> LedgerResult<bool> {
        let done = self
            .transaction(vec![
                Step::new(
                    "UPDATE webhook_endpoints SET status = 'disabled', disabled_at = $2 \
                     WHERE id = $1 AND status = 'enabled' AND failing_since IS NOT NULL \
                     AND failing_since <= $3",
                    vec![
                        text(endpoint_id),
                        Param::Int(now.millis()),
                        Param::Int(failing_before.millis()),
                    ],
                )
                .expect(1),
                Step::new(
                    "UPDATE webhook_deliveries SET status = 'failed' WHERE endpoint_id = $1 \
                     AND status = 'pending'",
                    vec![text(endpoint_id)],
                ),
            ])
            .await?;
        Ok(done.is_ok())
    }

    /// The endpoint's deliveries, newest first (at most `limit`), each with its attempts.
    pub async fn deliveries(
        &self,
        endpoint_id: &str,
        limit: i64,
    ) -> LedgerResult<Vec<(Delivery, Vec<Attempt>)>> {
        const SQL: &str = delivery_sql!(
            " FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id \
             WHERE d.endpoint_id = $1 ORDER BY d.created_at DESC, d.id DESC LIMIT $2"
        );
        let deliveries = self
            .query(
                SQL,
                vec![text(endpoint_id), Param::Int(limit)],
                delivery_row,
            )
            .await?;
        let Some(oldest) = deliveries.last().map(|d| d.created_at) else {
            return Ok(Vec::new());
        };
        // Only the attempts of the deliveries on the page.
        let attempts = self
            .query(
                "SELECT a.delivery_id, a.n, a.at, a.status_code, a.error, a.duration_ms, \
                 a.manual FROM webhook_attempts a \
                 JOIN webhook_deliveries d ON d.id = a.delivery_id \
                 WHERE d.endpoint_id = $1 AND d.created_at >= $2 ORDER BY a.delivery_id, a.n",
                vec![text(endpoint_id), Param::Int(oldest.millis())],
                attempt_row,
            )
            .await?;
        let mut by_delivery: std::collections::HashMap<String, Vec<Attempt>> =
            std::collections::HashMap::new();
        for (id, a) in attempts {
            by_delivery.entry(id).or_default().push(a);
        }
        Ok(deliveries
            .into_iter()
            .map(|d| {
                let mine = by_delivery.remove(&d.id).unwrap_or_default();
                (d, mine)
            })
            .collect())
    }

    /// One delivery of the endpoint with its attempts.
    pub async fn delivery_log(
        &self,
        endpoint_id: &str,
        id: &str,
    ) -> LedgerResult<Option<(Delivery, Vec<Attempt>)>> {
        const SQL: &str = delivery_sql!(
            " FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id \
             WHERE d.endpoint_id = $1 AND d.id = $2"
        );
        let params = vec![text(endpoint_id), text(id)];
        let Some(delivery) = self.query_opt(SQL, params, delivery_row).await? else {
            return Ok(None);
        };
        let attempts = self
            .query(
                "SELECT delivery_id, n, at, status_code, error, duration_ms, manual \
                 FROM webhook_attempts WHERE delivery_id = $1 ORDER BY n",
                vec![text(id)],
                attempt_row,
            )
            .await?;
        Ok(Some((
            delivery,
            attempts.into_iter().map(|(_, a)| a).collect(),
        )))
    }
}
