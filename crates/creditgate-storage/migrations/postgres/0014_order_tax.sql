-- Tax by billing country (docs/tax.md): each order keeps how its total splits into subtotal and
-- tax, the exact rate applied (a decimal string, "0" for none), and the buyer's billing country
-- and tax id as they were when the order was made. amount_cents stays the total charged.
-- Orders made before tax existed: subtotal = amount, no tax.
ALTER TABLE orders ADD COLUMN subtotal_cents BIGINT NOT NULL DEFAULT 0 CHECK (subtotal_cents >= 0);
ALTER TABLE orders ADD COLUMN tax_cents BIGINT NOT NULL DEFAULT 0 CHECK (tax_cents >= 0);
ALTER TABLE orders ADD COLUMN tax_rate TEXT NOT NULL DEFAULT '0';
ALTER TABLE orders ADD COLUMN buyer_country TEXT;
ALTER TABLE orders ADD COLUMN buyer_tax_id TEXT;
UPDATE orders SET subtotal_cents = amount_cents;
