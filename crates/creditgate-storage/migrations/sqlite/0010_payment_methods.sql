-- Saved cards: a payment method is saved through its provider's setup flow (the sandbox's
-- setup page, or a Stripe Checkout Session in setup mode creating a SetupIntent); the row is
-- created `pending` with its setup reference and becomes `active` once, when the provider
-- reports the setup succeeded. Only brand, last four digits and expiry are kept, never a card
-- number. `provider_ref` is the provider's payment method (Stripe `pm_…`, the sandbox's test
-- card token); `customer_ref` the Stripe Customer the card is attached to.

CREATE TABLE payment_methods (
    id            TEXT PRIMARY KEY,
    org           TEXT NOT NULL REFERENCES organizations(id),
    provider      TEXT NOT NULL CHECK (provider IN ('sandbox', 'stripe')),
    status        TEXT NOT NULL CHECK (status IN ('pending', 'active', 'failed', 'removed')),
    setup_ref     TEXT UNIQUE,
    provider_ref  TEXT,
    customer_ref  TEXT,
    brand         TEXT,
    last4         TEXT,
    exp_month     INTEGER,
    exp_year      INTEGER,
    failure       TEXT,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
CREATE INDEX payment_methods_org ON payment_methods (org, created_at);

-- The Stripe Customer of each organization (created once, on its first saved card).
CREATE TABLE stripe_customers (
    org          TEXT PRIMARY KEY REFERENCES organizations(id),
    customer     TEXT NOT NULL UNIQUE,
    created_at   INTEGER NOT NULL
);
