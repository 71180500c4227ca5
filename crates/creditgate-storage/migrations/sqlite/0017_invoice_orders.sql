-- An order that pays an invoice through a provider (docs/credit-lines.md): crediting the order
-- pays the invoice (its own lot, `invoice-paid:<invoice>`) instead of granting a purchase.
CREATE TABLE invoice_orders (
    order_id    TEXT PRIMARY KEY REFERENCES orders(id),
    invoice_id  TEXT NOT NULL REFERENCES invoices(id)
);
CREATE INDEX invoice_orders_invoice ON invoice_orders (invoice_id);
