-- Auto-reload (PRODUCT.md §8): one settings row per organization, which is also the lease that
-- keeps at most one reload in flight across replicas (`lease_until`, claimed by a conditional
-- UPDATE), and one row per reload attempt (the order it created), from which the monthly limit
-- and the daily count are read. Amounts are nano-credits; times are Unix milliseconds.
--
-- `pending_key` is the idempotency key of the attempt not yet finished: it is written before the
-- provider is called and cleared only once the outcome is recorded, so an attempt cut by a crash
-- is retried with the same key and never charges twice.

CREATE TABLE auto_reload_settings (
    org                TEXT PRIMARY KEY REFERENCES organizations(id),
    status             TEXT NOT NULL CHECK (status IN ('active', 'paused', 'off')),
    threshold          INTEGER NOT NULL CHECK (threshold > 0),
    amount             INTEGER CHECK (amount > 0),
    plan_id            TEXT,
    payment_method_id  TEXT,
    monthly_limit      INTEGER NOT NULL CHECK (monthly_limit > 0),
    paused_reason      TEXT,
    failures           INTEGER NOT NULL DEFAULT 0,
    retry_at           INTEGER,
    lease_until        INTEGER,
    lease_owner        TEXT,
    attempts           INTEGER NOT NULL DEFAULT 0,
    pending_key        TEXT,
    last_at            INTEGER,
    last_outcome       TEXT,
    last_order         TEXT,
    updated_at         INTEGER NOT NULL,
    CHECK ((amount IS NULL) <> (plan_id IS NULL))
);

CREATE TABLE auto_reload_attempts (
    order_id     TEXT PRIMARY KEY,
    org          TEXT NOT NULL REFERENCES organizations(id),
    credits      INTEGER NOT NULL,
    outcome      TEXT NOT NULL CHECK (outcome IN ('pending', 'succeeded', 'failed')),
    started_at   INTEGER NOT NULL
);
CREATE INDEX auto_reload_attempts_org ON auto_reload_attempts (org, started_at);
