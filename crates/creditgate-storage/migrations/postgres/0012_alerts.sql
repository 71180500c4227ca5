-- Alerts (docs/alerts.md): each organization's alert settings, the marks that
-- make an alert fire once (per crossing, per lot and window, per key and period), and the job
-- leases that let one replica at a time run a periodic job (the expiry-warning scan).
-- Amounts are nano-credits; times are Unix milliseconds.

-- `thresholds`: nano-credits, comma-separated, highest first; `emails`: newline-separated.
CREATE TABLE alert_settings (
    org         TEXT PRIMARY KEY REFERENCES organizations(id),
    thresholds  TEXT NOT NULL,
    emails      TEXT NOT NULL,
    updated_at  BIGINT NOT NULL
);

-- One row per alert that fired. `lots_seen` is the organization's number of lots when it
-- fired: lots are append-only, so a larger count later means a top-up happened since, which
-- re-arms the low-balance and depleted alerts (a conditional upsert, once across replicas).
CREATE TABLE alert_marks (
    org        TEXT NOT NULL REFERENCES organizations(id),
    kind       TEXT NOT NULL,
    mark       TEXT NOT NULL,
    lots_seen  BIGINT NOT NULL,
    fired_at   BIGINT NOT NULL,
    PRIMARY KEY (org, kind, mark)
);

-- A periodic job's lease, claimed by a conditional upsert: of replicas asking at once one wins.
CREATE TABLE job_leases (
    name         TEXT PRIMARY KEY,
    owner        TEXT NOT NULL,
    lease_until  BIGINT NOT NULL
);
