-- One usage record per settled request, with typed columns (PRODUCT.md §9), written by the
-- settle in the same transaction as the charge. Amounts: `credits*` in nano-credits (the charge
-- split by cost line; the lines add up to `credits`, which equals the charge), `list_*` at
-- Anthropic's list price in 10^-12 USD. `at` is the settlement time (unix ms); a request belongs
-- to the report bucket of its settlement. `flags` is the JSON list of usage irregularities (a
-- diagnostic, never aggregated). Append-only like the ledger.
--
-- Existing requests (whose receipts lived in the charge's memo) are carried over by the
-- migration's backfill step in the storage crate (`usage::backfill`), in this transaction.

CREATE TABLE usage_records (
    request_id               TEXT PRIMARY KEY,
    org                      TEXT NOT NULL,
    at                       INTEGER NOT NULL,
    key_id                   TEXT,
    model                    TEXT NOT NULL,
    reported                 INTEGER NOT NULL,
    input_tokens             INTEGER NOT NULL CHECK (input_tokens >= 0),
    cache_write_5m_tokens    INTEGER NOT NULL CHECK (cache_write_5m_tokens >= 0),
    cache_write_1h_tokens    INTEGER NOT NULL CHECK (cache_write_1h_tokens >= 0),
    cache_read_tokens        INTEGER NOT NULL CHECK (cache_read_tokens >= 0),
    output_tokens            INTEGER NOT NULL CHECK (output_tokens >= 0),
    thinking_tokens          INTEGER CHECK (thinking_tokens >= 0),
    web_search_requests      INTEGER NOT NULL CHECK (web_search_requests >= 0),
    web_fetch_requests       INTEGER NOT NULL CHECK (web_fetch_requests >= 0),
    service_tier             TEXT,
    inference_geo            TEXT,
    speed                    TEXT,
    long_context             INTEGER NOT NULL,
    credits                  INTEGER NOT NULL,
    credits_input            INTEGER NOT NULL CHECK (credits_input >= 0),
    credits_cache_write_5m   INTEGER NOT NULL CHECK (credits_cache_write_5m >= 0),
    credits_cache_write_1h   INTEGER NOT NULL CHECK (credits_cache_write_1h >= 0),
    credits_cache_read       INTEGER NOT NULL CHECK (credits_cache_read >= 0),
    credits_output           INTEGER NOT NULL CHECK (credits_output >= 0),
    credits_web_search       INTEGER NOT NULL CHECK (credits_web_search >= 0),
    credits_web_fetch        INTEGER NOT NULL CHECK (credits_web_fetch >= 0),
    list_pico_usd            INTEGER NOT NULL,
    list_input               INTEGER NOT NULL CHECK (list_input >= 0),
    list_cache_write_5m      INTEGER NOT NULL CHECK (list_cache_write_5m >= 0),
    list_cache_write_1h      INTEGER NOT NULL CHECK (list_cache_write_1h >= 0),
    list_cache_read          INTEGER NOT NULL CHECK (list_cache_read >= 0),
    list_output              INTEGER NOT NULL CHECK (list_output >= 0),
    list_web_search          INTEGER NOT NULL CHECK (list_web_search >= 0),
    list_web_fetch           INTEGER NOT NULL CHECK (list_web_fetch >= 0),
    cache_savings            INTEGER NOT NULL CHECK (cache_savings >= 0),
    price_version            TEXT,
    latency_ms               INTEGER NOT NULL CHECK (latency_ms >= 0),
    status                   TEXT NOT NULL
                             CHECK (status IN ('settled', 'partial', 'estimated', 'free')),
    stream                   INTEGER NOT NULL,
    disconnect_policy        TEXT NOT NULL CHECK (disconnect_policy IN ('drain', 'cancel')),
    upstream_request_id      TEXT,
    flags                    TEXT,
    note                     TEXT,
    CHECK (credits = credits_input + credits_cache_write_5m + credits_cache_write_1h
                     + credits_cache_read + credits_output + credits_web_search
                     + credits_web_fetch),
    CHECK (list_pico_usd = list_input + list_cache_write_5m + list_cache_write_1h
                           + list_cache_read + list_output + list_web_search + list_web_fetch)
) WITHOUT ROWID;
CREATE INDEX usage_records_org_at ON usage_records (org, at);

CREATE TRIGGER usage_records_append_only_update BEFORE UPDATE ON usage_records
BEGIN SELECT RAISE(ABORT, 'usage_records is append-only'); END;
CREATE TRIGGER usage_records_append_only_delete BEFORE DELETE ON usage_records
BEGIN SELECT RAISE(ABORT, 'usage_records is append-only'); END;
