//! Reads of the usage rollups for reports (`creditgate_core::reports`): the rows of one
//! organization (or of all, for the operator) at one bucket width in a window, and one key's
//! sums since a time. Reports read these sums, never the raw usage records.

use creditgate_core::clock::Timestamp;
use creditgate_core::ids::{ApiKeyId, OrganizationId};
use creditgate_core::ledger::{LedgerError, LedgerResult};
use creditgate_core::money::NanoCredits;
use creditgate_core::reports::{BucketWidth, CacheMinute, RollupRow, Sums};
use creditgate_core::usage::{Lines, PicoUsd, Tokens};

use crate::statement::{Columns, Param};
use crate::Database;

/// The sums of a rollup row (or of several, summed), in [`sums_from`]'s order, each column
/// between `$pre` and `$post`.
macro_rules! sum_columns {
    ($pre:literal, $post:literal) => {
        concat!(
            $pre,
            "requests",
            $post,
            ", ",
            $pre,
            "input_tokens",
            $post,
            ", ",
            $pre,
            "cache_write_5m_tokens",
            $post,
            ", ",
            $pre,
            "cache_write_1h_tokens",
            $post,
            ", ",
            $pre,
            "cache_read_tokens",
            $post,
            ", ",
            $pre,
            "output_tokens",
            $post,
            ", ",
            $pre,
            "web_search_requests",
            $post,
            ", ",
            $pre,
            "web_fetch_requests",
            $post,
            ", ",
            $pre,
            "credits_input",
            $post,
            ", ",
            $pre,
            "credits_cache_write_5m",
            $post,
            ", ",
            $pre,
            "credits_cache_write_1h",
            $post,
            ", ",
            $pre,
            "credits_cache_read",
            $post,
            ", ",
            $pre,
            "credits_output",
            $post,
            ", ",
            $pre,
            "credits_web_search",
            $post,
            ", ",
            $pre,
            "credits_web_fetch",
            $post,
            ", ",
            $pre,
            "list_input",
            $post,
            ", ",
            $pre,
            "list_cache_write_5m",
            $post,
            ", ",
            $pre,
            "list_cache_write_1h",
            $post,
            ", ",
            $pre,
            "list_cache_read",
            $post,
            ", ",
            $pre,
            "list_output",
            $post,
            ", ",
            $pre,
            "list_web_search",
            $post,
            ", ",
            $pre,
            "list_web_fetch",
            $post,
            ", ",
            $pre,
            "cache_savings",
            $post
        )
    };
}

fn corrupt(what: &str) -> LedgerError {
    LedgerError::Corrupt(format!("stored usage rollup has an invalid {what}"))
}

fn count(row: &dyn Columns, i: usize) -> LedgerResult<u64> {
    u64::try_from(row.int(i)?).map_err(|_| corrupt("count"))
}

fn lines<T>(row: &dyn Columns, at: usize, f: fn(i64) -> T) -> LedgerResult<Lines<T>> {
    Ok(Lines {
        input: f(row.int(at)?),
        cache_write_5m: f(row.int(at + 1)?),
        cache_write_1h: f(row.int(at + 2)?),
        cache_read: f(row.int(at + 3)?),
        output: f(row.int(at + 4)?),
        web_search: f(row.int(at + 5)?),
        web_fetch: f(row.int(at + 6)?),
    })
}

/// Maps the 23 columns of `sum_columns!` starting at column `at`.
fn sums_from(row: &dyn Columns, at: usize) -> LedgerResult<Sums> {
    Ok(Sums {
        requests: count(row, at)?,
        tokens: Tokens {
            input: count(row, at + 1)?,
            cache_write_5m: count(row, at + 2)?,
            cache_write_1h: count(row, at + 3)?,
            cache_read: count(row, at + 4)?,
            output: count(row, at + 5)?,
            thinking: None,
            web_search_requests: count(row, at + 6)?,
            web_fetch_requests: count(row, at + 7)?,
        },
        credits: lines(row, at + 8, NanoCredits::from_nanos)?,
        list: lines(row, at + 15, PicoUsd::from_pico)?,
        cache_savings: NanoCredits::from_nanos(row.int(at + 22)?),
    })
}

fn rollup_row(row: &dyn Columns) -> LedgerResult<RollupRow> {
    Ok(RollupRow {
        org: OrganizationId::parse(&row.text(0)?).map_err(|_| corrupt("organization"))?,
        bucket: Timestamp::from_millis(row.int(1)?),
        key_id: row.text(2)?,
        model: row.text(3)?,
        service_tier: row.text(4)?,
        context_window: row.text(5)?,
        inference_geo: row.text(6)?,
        speed: row.text(7)?,
        sums: sums_from(row, 8)?,
    })
}

/// The columns of [`rollup_row`].
macro_rules! rollup_select {
    () => {
        concat!(
            "SELECT org, bucket, key_id, model, service_tier, context_window, inference_geo, \
             speed, ",
            sum_columns!("", ""),
            " FROM usage_rollups"
        )
    };
}

impl Database {
    /// The rollup rows of `org` (every organization's when `None`) at `width` whose buckets
    /// start in `[from, to)`, in bucket order. Served by the rollups' primary key
    /// (`org, width, bucket, …`), or by `usage_rollups_all (width, bucket)` for every
    /// organization.
    pub async fn usage_rollups(
        &self,
        org: Option<&OrganizationId>,
        width: BucketWidth,
        from: Timestamp,
        to: Timestamp,
    ) -> LedgerResult<Vec<RollupRow>> {
        const ONE: &str = concat!(
            rollup_select!(),
            " WHERE org = $1 AND width = $2 AND bucket >= $3 AND bucket < $4 ORDER BY bucket"
        );
        const ALL: &str = concat!(
            rollup_select!(),
            " WHERE width = $1 AND bucket >= $2 AND bucket < $3 ORDER BY bucket, org"
        );
        let window = [
            Param::Int(width.millis()),
            Param::Int(from.millis()),
            Param::Int(to.millis()),
        ];
        match org {
            Some(org) => {
                let mut params = vec![Param::Text(org.to_string())];
                params.extend(window);
                self.query(ONE, params, rollup_row).await
            }
            None => self.query(ALL, window.to_vec(), rollup_row).await,
        }
    }

    /// Each key and model's cache writes (credits per TTL) and reads (tokens) per minute in
    /// `[from, to)`, of `org` (every organization's when `None`): what the cache report's
    /// unread-write rule needs, without the other sums and without minutes that neither wrote
    /// nor read.
    pub async fn cache_minutes(
        &self,
        org: Option<&OrganizationId>,
        from: Timestamp,
        to: Timestamp,
    ) -> LedgerResult<Vec<CacheMinute>> {
        macro_rules! cache_select {
            ($filter:literal) => {
                concat!(
                    "SELECT org, bucket, key_id, model, \
                     CAST(SUM(credits_cache_write_5m) AS BIGINT), \
                     CAST(SUM(credits_cache_write_1h) AS BIGINT), \
                     CAST(SUM(cache_read_tokens) AS BIGINT) \
                     FROM usage_rollups WHERE ",
                    $filter,
                    " AND bucket >= $2 AND bucket < $3 \
                     AND (credits_cache_write_5m > 0 OR credits_cache_write_1h > 0 \
                          OR cache_read_tokens > 0) \
                     GROUP BY org, bucket, key_id, model"
                )
            };
        }
        const ONE: &str = cache_select!("org = $1 AND width = 60000");
        const ALL: &str = cache_select!("width = $1");
        let window = [Param::Int(from.millis()), Param::Int(to.millis())];
        let (sql, first) = match org {
            Some(org) => (ONE, Param::Text(org.to_string())),
            None => (ALL, Param::Int(BucketWidth::Minute.millis())),
        };
        let mut params = vec![first];
        params.extend(window);
        self.query(sql, params, |row| {
            Ok(CacheMinute {
                org: OrganizationId::parse(&row.text(0)?).map_err(|_| corrupt("organization"))?,
                minute: Timestamp::from_millis(row.int(1)?),
                key_id: row.text(2)?,
                model: row.text(3)?,
                write_5m: NanoCredits::from_nanos(row.int(4)?),
                write_1h: NanoCredits::from_nanos(row.int(5)?),
                read_tokens: count(row, 6)?,
            })
        })
        .await
    }

    /// What `key` of `org` used from `since` (a UTC day boundary) on, summed from the daily
    /// rollups: what `GET /v1/key` shows against the key's limits.
    pub async fn key_usage(
        &self,
        org: &OrganizationId,
        key: &ApiKeyId,
        since: Timestamp,
    ) -> LedgerResult<Sums> {
        const SQL: &str = concat!(
            "SELECT ",
            sum_columns!("CAST(COALESCE(SUM(", "), 0) AS BIGINT)"),
            " FROM usage_rollups WHERE org = $1 AND width = $2 AND key_id = $3 AND bucket >= $4"
        );
        let rows = self
            .query(
                SQL,
                vec![
                    Param::Text(org.to_string()),
                    Param::Int(BucketWidth::Day.millis()),
                    Param::Text(key.to_string()),
                    Param::Int(since.millis()),
                ],
                |row| sums_from(row, 0),
            )
            .await?;
        rows.into_iter().next().ok_or_else(|| corrupt("sum"))
    }
}
