-- Buying credits: plans (operator data, seeded with the reseller's packs), orders, the provider
-- events already processed (deduplicated by id in the transaction that credits), gapless receipt
-- numbers, billing profiles, and the refunds and disputes recorded against orders. The money
-- itself moves only in the ledger tables; an order points at the lot its credit created.

CREATE TABLE plans (
    id               TEXT PRIMARY KEY,
    name             TEXT NOT NULL,
    credits          INTEGER NOT NULL CHECK (credits > 0),
    amount_cents     INTEGER NOT NULL CHECK (amount_cents > 0),
    currency         TEXT NOT NULL,
    expires_in_days  INTEGER CHECK (expires_in_days IS NULL OR expires_in_days > 0),
    archived         INTEGER NOT NULL DEFAULT 0,
    position         INTEGER NOT NULL,
    created_at       INTEGER NOT NULL
);
INSERT INTO plans (id, name, credits, amount_cents, currency, expires_in_days, position, created_at)
VALUES ('credits-1000', '1,000 credits', 1000000000000, 500, 'usd', NULL, 1, 0),
       ('credits-10000', '10,000 credits', 10000000000000, 5000, 'usd', NULL, 2, 0),
       ('credits-105000', '105,000 credits', 105000000000000, 50000, 'usd', NULL, 3, 0),
       ('credits-275000', '275,000 credits', 275000000000000, 125000, 'usd', NULL, 4, 0);

CREATE TABLE orders (
    id               TEXT PRIMARY KEY,
    org              TEXT NOT NULL REFERENCES organizations(id),
    status           TEXT NOT NULL CHECK (status IN ('open', 'paid', 'credited', 'failed',
                         'expired', 'refunded', 'partially_refunded', 'disputed')),
    plan_id          TEXT,
    credits          INTEGER NOT NULL CHECK (credits > 0),
    amount_cents     INTEGER NOT NULL CHECK (amount_cents > 0),
    currency         TEXT NOT NULL,
    provider         TEXT NOT NULL CHECK (provider IN ('sandbox', 'stripe', 'manual')),
    provider_ref     TEXT,
    method           TEXT,
    expires_in_days  INTEGER,
    success_url      TEXT,
    cancel_url       TEXT,
    created_at       INTEGER NOT NULL,
    paid_at          INTEGER,
    lot_id           TEXT UNIQUE,
    receipt_seq      INTEGER UNIQUE,
    receipt_number   TEXT UNIQUE,
    failure_code     TEXT,
    failure_message  TEXT,
    refunded_cents   INTEGER NOT NULL DEFAULT 0 CHECK (refunded_cents >= 0)
);
CREATE INDEX orders_org ON orders (org, created_at);
CREATE INDEX orders_status ON orders (status, created_at);
CREATE UNIQUE INDEX orders_provider_ref ON orders (provider, provider_ref);

-- An order is credited once: its lot, paid time and receipt never change after.
CREATE TRIGGER orders_credit_is_final BEFORE UPDATE ON orders
WHEN OLD.lot_id IS NOT NULL AND (NEW.lot_id IS NOT OLD.lot_id
    OR NEW.receipt_number IS NOT OLD.receipt_number OR NEW.paid_at IS NOT OLD.paid_at)
BEGIN
    SELECT RAISE(ABORT, 'a credited order keeps its lot and receipt');
END;

CREATE TABLE provider_events (
    provider     TEXT NOT NULL,
    event_id     TEXT NOT NULL,
    kind         TEXT NOT NULL,
    order_id     TEXT,
    outcome      TEXT NOT NULL,
    received_at  INTEGER NOT NULL,
    PRIMARY KEY (provider, event_id)
);

CREATE TABLE receipt_counter (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    last  INTEGER NOT NULL
);
INSERT INTO receipt_counter (id, last) VALUES (1, 0);

CREATE TABLE billing_profiles (
    org         TEXT PRIMARY KEY REFERENCES organizations(id),
    profile     TEXT NOT NULL,
    updated_at  INTEGER NOT NULL
);

-- Refunds and disputes of an order; each is the ledger transfer named by transfer_id.
CREATE TABLE order_clawbacks (
    transfer_id   TEXT PRIMARY KEY,
    order_id      TEXT NOT NULL REFERENCES orders(id),
    kind          TEXT NOT NULL CHECK (kind IN ('refund', 'dispute', 'dispute_won')),
    amount_cents  INTEGER NOT NULL,
    credits       INTEGER NOT NULL,
    debt          INTEGER NOT NULL,
    at            INTEGER NOT NULL
);
CREATE INDEX order_clawbacks_order ON order_clawbacks (order_id);
