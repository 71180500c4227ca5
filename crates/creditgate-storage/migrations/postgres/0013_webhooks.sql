-- Signed outbound webhooks (docs/alerts.md): the endpoints an organization
-- registers, every event it was sent (the exact body that is signed), one delivery per event
-- and endpoint (its id stays the same across retries: receivers deduplicate on it), and every
-- attempt with its status, error and duration (the delivery log). A delivery is claimed by a
-- conditional UPDATE of its lease, so replicas sharing the database never send it twice at once.

-- `events`: the subscribed event types as ',a,b,' (matched with LIKE '%,type,%').
CREATE TABLE webhook_endpoints (
    id             TEXT PRIMARY KEY,
    org            TEXT NOT NULL REFERENCES organizations(id),
    url            TEXT NOT NULL,
    events         TEXT NOT NULL,
    secret         TEXT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('enabled', 'disabled', 'deleted')),
    failing_since  BIGINT,
    disabled_at    BIGINT,
    created_at     BIGINT NOT NULL
);
CREATE INDEX webhook_endpoints_org ON webhook_endpoints (org, status);

CREATE TABLE webhook_events (
    id          TEXT PRIMARY KEY,
    org         TEXT NOT NULL REFERENCES organizations(id),
    type        TEXT NOT NULL,
    body        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE webhook_deliveries (
    id            TEXT PRIMARY KEY,
    endpoint_id   TEXT NOT NULL REFERENCES webhook_endpoints(id),
    event_id      TEXT NOT NULL REFERENCES webhook_events(id),
    status        TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts      BIGINT NOT NULL DEFAULT 0,
    next_at       BIGINT NOT NULL,
    lease_owner   TEXT,
    lease_until   BIGINT,
    created_at    BIGINT NOT NULL,
    delivered_at  BIGINT,
    UNIQUE (endpoint_id, event_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, created_at);

-- `status_code`: the receiver's HTTP status (NULL when none came: refused, timed out);
-- `manual`: 1 for a retry asked through the API.
CREATE TABLE webhook_attempts (
    delivery_id  TEXT NOT NULL REFERENCES webhook_deliveries(id),
    n            BIGINT NOT NULL,
    at           BIGINT NOT NULL,
    status_code  BIGINT,
    error        TEXT,
    duration_ms  BIGINT NOT NULL,
    manual       BIGINT NOT NULL,
    PRIMARY KEY (delivery_id, n)
);
