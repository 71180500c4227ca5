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
    at                       BIGINT NOT NULL,
    key_id                   TEXT,
    model                    TEXT NOT NULL,
    reported                 BOOLEAN NOT NULL,
    input_tokens             BIGINT NOT NULL CHECK (input_tokens >= 0),
    cache_write_5m_tokens    BIGINT NOT NULL CHECK (cache_write_5m_tokens >= 0),
    cache_write_1h_tokens    BIGINT NOT NULL CHECK (cache_write_1h_tokens >= 0),
    cache_read_tokens        BIGINT NOT NULL CHECK (cache_read_tokens >= 0),
    output_tokens            BIGINT NOT NULL CHECK (output_tokens >= 0),
    thinking_tokens          BIGINT CHECK (thinking_tokens >= 0),
    web_search_requests      BIGINT NOT NULL CHECK (web_search_requests >= 0),
    web_fetch_requests       BIGINT NOT NULL CHECK (web_fetch_requests >= 0),
    service_tier             TEXT,
    inference_geo            TEXT,
    speed                    TEXT,
    long_context             BOOLEAN NOT NULL,
    credits                  BIGINT NOT NULL,
    credits_input            BIGINT NOT NULL CHECK (credits_input >= 0),
    credits_cache_write_5m   BIGINT NOT NULL CHECK (credits_cache_write_5m >= 0),
    credits_cache_write_1h   BIGINT NOT NULL CHECK (credits_cache_write_1h >= 0),
    credits_cache_read       BIGINT NOT NULL CHECK (credits_cache_read >= 0),
    credits_output           BIGINT NOT NULL CHECK (credits_output >= 0),
    credits_web_search       BIGINT NOT NULL CHECK (credits_web_search >= 0),
    credits_web_fetch        BIGINT NOT NULL CHECK (credits_web_fetch >= 0),
    list_pico_usd            BIGINT NOT NULL,
    list_input               BIGINT NOT NULL CHECK (list_input >= 0),
    list_cache_write_5m      BIGINT NOT NULL CHECK (list_cache_write_5m >= 0),
    list_cache_write_1h      BIGINT NOT NULL CHECK (list_cache_write_1h >= 0),
    list_cache_read          BIGINT NOT NULL CHECK (list_cache_read >= 0),
    list_output              BIGINT NOT NULL CHECK (list_output >= 0),
    list_web_search          BIGINT NOT NULL CHECK (list_web_search >= 0),
    list_web_fetch           BIGINT NOT NULL CHECK (list_web_fetch >= 0),
    cache_savings            BIGINT NOT NULL CHECK (cache_savings >= 0),
    price_version            TEXT,
    latency_ms               BIGINT NOT NULL CHECK (latency_ms >= 0),
    status                   TEXT NOT NULL
                             CHECK (status IN ('settled', 'partial', 'estimated', 'free')),
    stream                   BOOLEAN NOT NULL,
    disconnect_policy        TEXT NOT NULL CHECK (disconnect_policy IN ('drain', 'cancel')),
    upstream_request_id      TEXT,
    flags                    TEXT,
    note                     TEXT,
    CHECK (credits = credits_input + credits_cache_write_5m + credits_cache_write_1h
                     + credits_cache_read + credits_output + credits_web_search
                     + credits_web_fetch),
    CHECK (list_pico_usd = list_input + list_cache_write_5m + list_cache_write_1h
                           + list_cache_read + list_output + list_web_search + list_web_fetch)
);
CREATE INDEX usage_records_org_at ON usage_records (org, at);

CREATE TRIGGER usage_records_append_only BEFORE UPDATE OR DELETE ON usage_records
    FOR EACH ROW EXECUTE FUNCTION creditgate_append_only();
CREATE TRIGGER usage_records_no_truncate BEFORE TRUNCATE ON usage_records
    FOR EACH STATEMENT EXECUTE FUNCTION creditgate_append_only();
