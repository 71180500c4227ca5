-- Buying credits: plans (operator data, seeded with the reseller's packs), orders, the provider
-- events already processed (deduplicated by id in the transaction that credits), gapless receipt
-- numbers, billing profiles, and the refunds and disputes recorded against orders. The money
-- itself moves only in the ledger tables; an order points at the lot its credit created.

CREATE TABLE plans (
    id               TEXT PRIMARY KEY,
    name             TEXT NOT NULL,
    credits          BIGINT NOT NULL CHECK (credits > 0),
    amount_cents     BIGINT NOT NULL CHECK (amount_cents > 0),
    currency         TEXT NOT NULL,
    expires_in_days  BIGINT CHECK (expires_in_days IS NULL OR expires_in_days > 0),
    archived         BIGINT NOT NULL DEFAULT 0,
    position         BIGINT NOT NULL,
    created_at       BIGINT NOT NULL
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
    credits          BIGINT NOT NULL CHECK (credits > 0),
    amount_cents     BIGINT NOT NULL CHECK (amount_cents > 0),
    currency         TEXT NOT NULL,
    provider         TEXT NOT NULL CHECK (provider IN ('sandbox', 'stripe', 'manual')),
    provider_ref     TEXT,
    method           TEXT,
    expires_in_days  BIGINT,
    success_url      TEXT,
    cancel_url       TEXT,
    created_at       BIGINT NOT NULL,
    paid_at          BIGINT,
    lot_id           TEXT UNIQUE,
    receipt_seq      BIGINT UNIQUE,
    receipt_number   TEXT UNIQUE,
    failure_code     TEXT,
    failure_message  TEXT,
    refunded_cents   BIGINT NOT NULL DEFAULT 0 CHECK (refunded_cents >= 0)
);
CREATE INDEX orders_org ON orders (org, created_at);
CREATE INDEX orders_status ON orders (status, created_at);
CREATE UNIQUE INDEX orders_provider_ref ON orders (provider, provider_ref);

-- An order is credited once: its lot, paid time and receipt never change after.
CREATE FUNCTION orders_credit_is_final() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.lot_id IS NOT NULL AND (NEW.lot_id IS DISTINCT FROM OLD.lot_id
        OR NEW.receipt_number IS DISTINCT FROM OLD.receipt_number
        OR NEW.paid_at IS DISTINCT FROM OLD.paid_at) THEN
        RAISE EXCEPTION 'a credited order keeps its lot and receipt';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER orders_credit_is_final BEFORE UPDATE ON orders
FOR EACH ROW EXECUTE FUNCTION orders_credit_is_final();

CREATE TABLE provider_events (
    provider     TEXT NOT NULL,
    event_id     TEXT NOT NULL,
    kind         TEXT NOT NULL,
    order_id     TEXT,
    outcome      TEXT NOT NULL,
    received_at  BIGINT NOT NULL,
    PRIMARY KEY (provider, event_id)
);

CREATE TABLE receipt_counter (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    last  BIGINT NOT NULL
);
INSERT INTO receipt_counter (id, last) VALUES (1, 0);

CREATE TABLE billing_profiles (
    org         TEXT PRIMARY KEY REFERENCES organizations(id),
    profile     TEXT NOT NULL,
    updated_at  BIGINT NOT NULL
);

-- Refunds and disputes of an order; each is the ledger transfer named by transfer_id.
CREATE TABLE order_clawbacks (
    transfer_id   TEXT PRIMARY KEY,
    order_id      TEXT NOT NULL REFERENCES orders(id),
    kind          TEXT NOT NULL CHECK (kind IN ('refund', 'dispute', 'dispute_won')),
    amount_cents  BIGINT NOT NULL,
    credits       BIGINT NOT NULL,
    debt          BIGINT NOT NULL,
    at            BIGINT NOT NULL
);
CREATE INDEX order_clawbacks_order ON order_clawbacks (order_id);
