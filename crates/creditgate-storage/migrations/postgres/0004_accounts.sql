-- People and their rights: users, memberships with roles, sessions, invitations, password
-- resets, organization admin keys, sign-in throttling, request-rate windows, and the
-- append-only audit log. Key limits and organization status extend the gateway tables.

ALTER TABLE api_keys ADD COLUMN limits TEXT;
ALTER TABLE api_keys ADD COLUMN created_by_type TEXT;
ALTER TABLE api_keys ADD COLUMN created_by_id TEXT;
ALTER TABLE org_settings ADD COLUMN status TEXT NOT NULL DEFAULT 'active'
    CHECK (status IN ('active', 'suspended'));

CREATE TABLE users (
    id             TEXT PRIMARY KEY,
    email          TEXT NOT NULL UNIQUE,
    name           TEXT NOT NULL,
    password_hash  TEXT,
    created_at     BIGINT NOT NULL
);

CREATE TABLE memberships (
    org_id    TEXT NOT NULL REFERENCES organizations(id),
    user_id   TEXT NOT NULL REFERENCES users(id),
    role      TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'billing', 'developer', 'user')),
    added_at  BIGINT NOT NULL,
    PRIMARY KEY (org_id, user_id)
);
CREATE INDEX memberships_user ON memberships (user_id);
-- At most one owner per organization; the service keeps it at exactly one.
CREATE UNIQUE INDEX memberships_one_owner ON memberships (org_id) WHERE role = 'owner';

CREATE TABLE sessions (
    token_hash    TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES users(id),
    org_id        TEXT NOT NULL REFERENCES organizations(id),
    csrf_token    TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    last_seen_at  BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE invites (
    id               TEXT PRIMARY KEY,
    org_id           TEXT NOT NULL REFERENCES organizations(id),
    email            TEXT NOT NULL,
    role             TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'billing', 'developer', 'user')),
    token_hash       TEXT NOT NULL UNIQUE,
    invited_at       BIGINT NOT NULL,
    expires_at       BIGINT NOT NULL,
    accepted_at      BIGINT
);
CREATE INDEX invites_org ON invites (org_id);

CREATE TABLE password_resets (
    token_hash  TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users(id),
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT
);

CREATE TABLE admin_keys (
    id               TEXT PRIMARY KEY,
    org_id           TEXT NOT NULL REFERENCES organizations(id),
    name             TEXT NOT NULL,
    key_hash         TEXT NOT NULL UNIQUE,
    prefix           TEXT NOT NULL,
    last4            TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('active', 'inactive')),
    created_at       BIGINT NOT NULL,
    created_by_type  TEXT NOT NULL,
    created_by_id    TEXT
);
CREATE INDEX admin_keys_org ON admin_keys (org_id);

-- Failed sign-ins by subject (`account:<email>` or `ip:<address>`), pruned as they age out.
CREATE TABLE sign_in_failures (
    subject  TEXT NOT NULL,
    at       BIGINT NOT NULL
);
CREATE INDEX sign_in_failures_subject ON sign_in_failures (subject, at);

-- Requests and tokens admitted per key per minute (fixed windows), for rate limits that hold
-- across replicas.
CREATE TABLE rate_windows (
    key_id        TEXT NOT NULL,
    window_start  BIGINT NOT NULL,
    requests      BIGINT NOT NULL,
    tokens        BIGINT NOT NULL,
    PRIMARY KEY (key_id, window_start)
);

CREATE TABLE audit_log (
    seq          BIGSERIAL PRIMARY KEY,
    org_id       TEXT,
    at           BIGINT NOT NULL,
    actor_type   TEXT NOT NULL,
    actor_id     TEXT,
    action       TEXT NOT NULL,
    target_type  TEXT NOT NULL,
    target_id    TEXT NOT NULL,
    ip           TEXT,
    details      TEXT NOT NULL
);
CREATE INDEX audit_log_org ON audit_log (org_id, seq);

CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only';
END $$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
