-- Monthly invoices of invoiced organizations (docs/credit-lines.md). One invoice per
-- organization and month (the unique key makes a second drafting pass, or a second replica,
-- find the first); numbers come from one counter taken in the drafting transaction, so they
-- are gapless. `buyer` is the billing profile (JSON) as it was when the invoice was drafted.
CREATE TABLE invoices (
    id              TEXT PRIMARY KEY,
    org             TEXT NOT NULL REFERENCES organizations(id),
    number          TEXT NOT NULL UNIQUE,
    period_start    BIGINT NOT NULL,
    period_end      BIGINT NOT NULL,
    credits         BIGINT NOT NULL CHECK (credits >= 0),
    usd_per_credit  TEXT NOT NULL,
    subtotal_cents  BIGINT NOT NULL CHECK (subtotal_cents >= 0),
    tax_rate        TEXT NOT NULL,
    tax_cents       BIGINT NOT NULL CHECK (tax_cents >= 0),
    amount_cents    BIGINT NOT NULL CHECK (amount_cents = subtotal_cents + tax_cents),
    currency        TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('open', 'paid', 'void')),
    due_at          BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    paid_at         BIGINT,
    paid_by         TEXT,
    lot_id          TEXT,
    buyer           TEXT NOT NULL,
    UNIQUE (org, period_start)
);
CREATE INDEX invoices_status_due ON invoices (status, due_at);

CREATE TABLE invoice_counter (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    last  BIGINT NOT NULL
);
INSERT INTO invoice_counter (id, last) VALUES (1, 0);

-- Set while an overdue invoice suspends the organization's credit line (admission then reads
-- a limit of 0); cleared when no overdue invoice is left.
ALTER TABLE org_state ADD COLUMN credit_suspended_at BIGINT;
