-- Usage rollups: the sums of the usage records per UTC bucket of one minute, one hour and one
-- day (`width` in ms; `bucket` = the bucket's start, unix ms; half-open [bucket, bucket+width)),
-- per organization, key, model and service (tier, context window, region, speed; '' = not
-- reported). The settle that writes a usage record adds it to its three rollup rows in the same
-- transaction, so reports read sums (never the raw records) and still add up to the charges
-- exactly. `context_window` is '200k-1M' when priced at long-context rates, else '0-200k'.

CREATE TABLE usage_rollups (
    width                  INTEGER NOT NULL CHECK (width IN (60000, 3600000, 86400000)),
    bucket                 INTEGER NOT NULL,
    org                    TEXT NOT NULL,
    key_id                 TEXT NOT NULL,
    model                  TEXT NOT NULL,
    service_tier           TEXT NOT NULL,
    context_window         TEXT NOT NULL,
    inference_geo          TEXT NOT NULL,
    speed                  TEXT NOT NULL,
    requests               INTEGER NOT NULL,
    input_tokens           INTEGER NOT NULL,
    cache_write_5m_tokens  INTEGER NOT NULL,
    cache_write_1h_tokens  INTEGER NOT NULL,
    cache_read_tokens      INTEGER NOT NULL,
    output_tokens          INTEGER NOT NULL,
    web_search_requests    INTEGER NOT NULL,
    web_fetch_requests     INTEGER NOT NULL,
    credits_input          INTEGER NOT NULL,
    credits_cache_write_5m INTEGER NOT NULL,
    credits_cache_write_1h INTEGER NOT NULL,
    credits_cache_read     INTEGER NOT NULL,
    credits_output         INTEGER NOT NULL,
    credits_web_search     INTEGER NOT NULL,
    credits_web_fetch      INTEGER NOT NULL,
    list_input             INTEGER NOT NULL,
    list_cache_write_5m    INTEGER NOT NULL,
    list_cache_write_1h    INTEGER NOT NULL,
    list_cache_read        INTEGER NOT NULL,
    list_output            INTEGER NOT NULL,
    list_web_search        INTEGER NOT NULL,
    list_web_fetch         INTEGER NOT NULL,
    cache_savings          INTEGER NOT NULL,
    PRIMARY KEY (org, width, bucket, key_id, model, service_tier, context_window, inference_geo,
                 speed)
) WITHOUT ROWID;
CREATE INDEX usage_rollups_all ON usage_rollups (width, bucket);

-- Rows already recorded.
INSERT INTO usage_rollups
SELECT 60000, at - (at % 60000), org, COALESCE(key_id, ''), model, COALESCE(service_tier, ''),
       CASE WHEN long_context <> 0 THEN '200k-1M' ELSE '0-200k' END, COALESCE(inference_geo, ''),
       COALESCE(speed, ''), COUNT(*), SUM(input_tokens), SUM(cache_write_5m_tokens), SUM(cache_write_1h_tokens), SUM(cache_read_tokens), SUM(output_tokens), SUM(web_search_requests), SUM(web_fetch_requests),
       SUM(credits_input), SUM(credits_cache_write_5m), SUM(credits_cache_write_1h), SUM(credits_cache_read), SUM(credits_output), SUM(credits_web_search), SUM(credits_web_fetch), SUM(list_input), SUM(list_cache_write_5m), SUM(list_cache_write_1h), SUM(list_cache_read), SUM(list_output), SUM(list_web_search), SUM(list_web_fetch), SUM(cache_savings)
FROM usage_records
GROUP BY 2, 3, 4, 5, 6, 7, 8, 9;
INSERT INTO usage_rollups
SELECT 3600000, at - (at % 3600000), org, COALESCE(key_id, ''), model, COALESCE(service_tier, ''),
       CASE WHEN long_context <> 0 THEN '200k-1M' ELSE '0-200k' END, COALESCE(inference_geo, ''),
       COALESCE(speed, ''), COUNT(*), SUM(input_tokens), SUM(cache_write_5m_tokens), SUM(cache_write_1h_tokens), SUM(cache_read_tokens), SUM(output_tokens), SUM(web_search_requests), SUM(web_fetch_requests),
       SUM(credits_input), SUM(credits_cache_write_5m), SUM(credits_cache_write_1h), SUM(credits_cache_read), SUM(credits_output), SUM(credits_web_search), SUM(credits_web_fetch), SUM(list_input), SUM(list_cache_write_5m), SUM(list_cache_write_1h), SUM(list_cache_read), SUM(list_output), SUM(list_web_search), SUM(list_web_fetch), SUM(cache_savings)
FROM usage_records
GROUP BY 2, 3, 4, 5, 6, 7, 8, 9;
INSERT INTO usage_rollups
SELECT 86400000, at - (at % 86400000), org, COALESCE(key_id, ''), model, COALESCE(service_tier, ''),
       CASE WHEN long_context <> 0 THEN '200k-1M' ELSE '0-200k' END, COALESCE(inference_geo, ''),
       COALESCE(speed, ''), COUNT(*), SUM(input_tokens), SUM(cache_write_5m_tokens), SUM(cache_write_1h_tokens), SUM(cache_read_tokens), SUM(output_tokens), SUM(web_search_requests), SUM(web_fetch_requests),
       SUM(credits_input), SUM(credits_cache_write_5m), SUM(credits_cache_write_1h), SUM(credits_cache_read), SUM(credits_output), SUM(credits_web_search), SUM(credits_web_fetch), SUM(list_input), SUM(list_cache_write_5m), SUM(list_cache_write_1h), SUM(list_cache_read), SUM(list_output), SUM(list_web_search), SUM(list_web_fetch), SUM(cache_savings)
FROM usage_records
GROUP BY 2, 3, 4, 5, 6, 7, 8, 9;