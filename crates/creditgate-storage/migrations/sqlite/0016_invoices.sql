-- Monthly invoices of invoiced organizations (docs/credit-lines.md). One invoice per
-- organization and month (the unique key makes a second drafting pass, or a second replica,
-- find the first); numbers come from one counter taken in the drafting transaction, so they
-- are gapless. `buyer` is the billing profile (JSON) as it was when the invoice was drafted.
CREATE TABLE invoices (
    id              TEXT PRIMARY KEY,
    org             TEXT NOT NULL REFERENCES organizations(id),
    number          TEXT NOT NULL UNIQUE,
    period_start    INTEGER NOT NULL,
    period_end      INTEGER NOT NULL,
    credits         INTEGER NOT NULL CHECK (credits >= 0),
    usd_per_credit  TEXT NOT NULL,
    subtotal_cents  INTEGER NOT NULL CHECK (subtotal_cents >= 0),
    tax_rate        TEXT NOT NULL,
    tax_cents       INTEGER NOT NULL CHECK (tax_cents >= 0),
    amount_cents    INTEGER NOT NULL CHECK (amount_cents = subtotal_cents + tax_cents),
    currency        TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('open', 'paid', 'void')),
    due_at          INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    paid_at         INTEGER,
    paid_by         TEXT,
    lot_id          TEXT,
    buyer           TEXT NOT NULL,
    UNIQUE (org, period_start)
);
CREATE INDEX invoices_status_due ON invoices (status, due_at);

CREATE TABLE invoice_counter (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    last  INTEGER NOT NULL
);
INSERT INTO invoice_counter (id, last) VALUES (1, 0);

-- Set while an overdue invoice suspends the organization's credit line (admission then reads
-- a limit of 0); cleared when no overdue invoice is left.
ALTER TABLE org_state ADD COLUMN credit_suspended_at INTEGER;
