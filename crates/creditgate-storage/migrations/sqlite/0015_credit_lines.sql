-- Enterprise credit lines (docs/credit-lines.md): the billing mode and credit limit live on the
-- organization's state row, which every money operation reads (and on Postgres locks) first, so
-- admission reads the limit in the same atomic step as the hold it places. A prepaid
-- organization's limit is always 0 (the gateway keeps it so).
ALTER TABLE org_state ADD COLUMN billing_mode TEXT NOT NULL DEFAULT 'prepaid'
    CHECK (billing_mode IN ('prepaid', 'invoiced'));
ALTER TABLE org_state ADD COLUMN credit_limit INTEGER NOT NULL DEFAULT 0
    CHECK (credit_limit >= 0);
