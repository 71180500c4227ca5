//! Usage records: the typed row each settle writes with its charge, read back for receipts and
//! reports, and the backfill that carried the receipts kept in charge memos over to them.
//!
//! The statement text is written once (`$n` placeholders) and run by both backends inside the
//! settlement's transaction.

use creditgate_core::clock::Timestamp;
use creditgate_core::ids::{ApiKeyId, OrganizationId, TransferId};
use creditgate_core::ledger::{LedgerError, LedgerResult};
use creditgate_core::money::{Decimal, NanoCredits};
use creditgate_core::pricing::{LineCategory, Usage, UsageFlag};
use creditgate_core::usage::{
    spread, DisconnectPolicy, Lines, PicoUsd, ReceiptStatus, Service, StoredUsage, Tokens,
    UsageRecord,
};
use serde_json::Value;

use crate::statement::{Columns, Param};
use crate::Database;

/// Inserts one usage record (`request_id`, `org`, `at`, then the record's columns).
pub(crate) const INSERT_USAGE: &str = "INSERT INTO usage_records (
    request_id, org, at, key_id, model, reported,
    input_tokens, cache_write_5m_tokens, cache_write_1h_tokens, cache_read_tokens,
    output_tokens, thinking_tokens, web_search_requests, web_fetch_requests,
    service_tier, inference_geo, speed, long_context,
    credits, credits_input, credits_cache_write_5m, credits_cache_write_1h, credits_cache_read,
    credits_output, credits_web_search, credits_web_fetch,
    list_pico_usd, list_input, list_cache_write_5m, list_cache_write_1h, list_cache_read,
    list_output, list_web_search, list_web_fetch,
    cache_savings, price_version, latency_ms, status, stream, disconnect_policy,
    upstream_request_id, flags, note)
 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19,
         $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30, $31, $32, $33, $34, $35, $36,
         $37, $38, $39, $40, $41, $42, $43)";

/// The columns [`record_from_row`] reads, in its order (table alias `u`), as a literal for
/// `concat!`.
macro_rules! record_columns {
    () => {
        "u.model, u.key_id, u.reported, \
    u.input_tokens, u.cache_write_5m_tokens, u.cache_write_1h_tokens, u.cache_read_tokens, \
    u.output_tokens, u.thinking_tokens, u.web_search_requests, u.web_fetch_requests, \
    u.service_tier, u.inference_geo, u.speed, u.long_context, \
    u.credits_input, u.credits_cache_write_5m, u.credits_cache_write_1h, u.credits_cache_read, \
    u.credits_output, u.credits_web_search, u.credits_web_fetch, \
    u.list_input, u.list_cache_write_5m, u.list_cache_write_1h, u.list_cache_read, \
    u.list_output, u.list_web_search, u.list_web_fetch, \
    u.cache_savings, u.price_version, u.latency_ms, u.status, u.stream, u.disconnect_policy, \
    u.upstream_request_id, u.flags, u.note"
    };
}
pub(crate) use record_columns;

fn count(v: u64) -> LedgerResult<i64> {
    i64::try_from(v).map_err(|_| LedgerError::InvalidRequest(format!("count {v} out of range")))
}

/// The parameters of [`INSERT_USAGE`].
pub(crate) fn usage_params(
    request: &TransferId,
    org: &OrganizationId,
    at: Timestamp,
    rec: &UsageRecord,
) -> LedgerResult<Vec<Param>> {
    let t = rec.tokens.unwrap_or_default();
    let credits_total = rec.credits.total()?;
    let list_total = rec.list.total()?;
    let flags = if rec.flags.is_empty() {
        None
    } else {
        serde_json::to_string(&rec.flags).ok()
    };
    let mut p = vec![
        Param::Text(request.to_string()),
        Param::Text(org.to_string()),
        Param::Int(at.millis()),
        Param::OptText(rec.key_id.as_ref().map(ToString::to_string)),
        Param::Text(rec.model.clone()),
        Param::Bool(rec.tokens.is_some()),
    ];
    for v in [
        t.input,
        t.cache_write_5m,
        t.cache_write_1h,
        t.cache_read,
        t.output,
    ] {
        p.push(Param::Int(count(v)?));
    }
    p.push(Param::OptInt(t.thinking.map(count).transpose()?));
    p.push(Param::Int(count(t.web_search_requests)?));
    p.push(Param::Int(count(t.web_fetch_requests)?));
    p.push(Param::OptText(rec.service.tier.clone()));
    p.push(Param::OptText(rec.service.inference_geo.clone()));
    p.push(Param::OptText(rec.service.speed.clone()));
    p.push(Param::Bool(rec.service.long_context));
    p.push(Param::Int(credits_total.nanos()));
    p.extend(rec.credits.each().map(|(_, v)| Param::Int(v.nanos())));
    p.push(Param::Int(list_total.pico()));
    p.extend(rec.list.each().map(|(_, v)| Param::Int(v.pico())));
    p.push(Param::Int(rec.cache_savings.nanos()));
    p.push(Param::OptText(rec.price_version.clone()));
    p.push(Param::Int(count(rec.latency_ms)?));
    p.push(Param::Text(rec.status.as_str().to_owned()));
    p.push(Param::Bool(rec.stream));
    p.push(Param::Text(rec.disconnect_policy.as_str().to_owned()));
    p.push(Param::OptText(rec.upstream_request_id.clone()));
    p.push(Param::OptText(flags));
    p.push(Param::OptText(rec.note.clone()));
    Ok(p)
}

/// Adds usage records to their minute, hour and day rollup rows (`$1` the start of the minute
/// they were settled in, `$2..$8` the row's key, `$9..$30` the amounts, `$31` the number of
/// requests), creating them if needed. The amounts of several records with the same key may be
/// added up first ([`ROLLUP_KEY_PARAMS`]).
pub(crate) const ADD_TO_ROLLUPS: &str = "INSERT INTO usage_rollups (width, bucket, org, key_id, model, service_tier, context_window, inference_geo, speed, requests,
    input_tokens, cache_write_5m_tokens, cache_write_1h_tokens, cache_read_tokens, output_tokens, web_search_requests, web_fetch_requests, credits_input, credits_cache_write_5m, credits_cache_write_1h, credits_cache_read, credits_output, credits_web_search, credits_web_fetch, list_input, list_cache_write_5m, list_cache_write_1h, list_cache_read, list_output, list_web_search, list_web_fetch, cache_savings)
 SELECT w.width,
        CAST($1 AS BIGINT) - (CAST($1 AS BIGINT) % w.width),
        CAST($2 AS TEXT),
        CAST($3 AS TEXT),
        CAST($4 AS TEXT),
        CAST($5 AS TEXT),
        CAST($6 AS TEXT),
        CAST($7 AS TEXT),
        CAST($8 AS TEXT),
        CAST($31 AS BIGINT),
        CAST($9 AS BIGINT),
        CAST($10 AS BIGINT),
        CAST($11 AS BIGINT),
        CAST($12 AS BIGINT),
        CAST($13 AS BIGINT),
        CAST($14 AS BIGINT),
        CAST($15 AS BIGINT),
        CAST($16 AS BIGINT),
        CAST($17 AS BIGINT),
        CAST($18 AS BIGINT),
        CAST($19 AS BIGINT),
        CAST($20 AS BIGINT),
        CAST($21 AS BIGINT),
        CAST($22 AS BIGINT),
        CAST($23 AS BIGINT),
        CAST($24 AS BIGINT),
        CAST($25 AS BIGINT),
        CAST($26 AS BIGINT),
        CAST($27 AS BIGINT),
        CAST($28 AS BIGINT),
        CAST($29 AS BIGINT),
        CAST($30 AS BIGINT)
 FROM (SELECT CAST(60000 AS BIGINT) AS width UNION ALL SELECT 3600000 UNION ALL SELECT 86400000) w
 WHERE true
 ON CONFLICT (org, width, bucket, key_id, model, service_tier, context_window, inference_geo, speed)
 DO UPDATE SET requests = usage_rollups.requests + excluded.requests,
    input_tokens = usage_rollups.input_tokens + excluded.input_tokens,
    cache_write_5m_tokens = usage_rollups.cache_write_5m_tokens + excluded.cache_write_5m_tokens,
    cache_write_1h_tokens = usage_rollups.cache_write_1h_tokens + excluded.cache_write_1h_tokens,
    cache_read_tokens = usage_rollups.cache_read_tokens + excluded.cache_read_tokens,
    output_tokens = usage_rollups.output_tokens + excluded.output_tokens,
    web_search_requests = usage_rollups.web_search_requests + excluded.web_search_requests,
    web_fetch_requests = usage_rollups.web_fetch_requests + excluded.web_fetch_requests,
    credits_input = usage_rollups.credits_input + excluded.credits_input,
    credits_cache_write_5m = usage_rollups.credits_cache_write_5m + excluded.credits_cache_write_5m,
    credits_cache_write_1h = usage_rollups.credits_cache_write_1h + excluded.credits_cache_write_1h,
    credits_cache_read = usage_rollups.credits_cache_read + excluded.credits_cache_read,
    credits_output = usage_rollups.credits_output + excluded.credits_output,
    credits_web_search = usage_rollups.credits_web_search + excluded.credits_web_search,
    credits_web_fetch = usage_rollups.credits_web_fetch + excluded.credits_web_fetch,
    list_input = usage_rollups.list_input + excluded.list_input,
    list_cache_write_5m = usage_rollups.list_cache_write_5m + excluded.list_cache_write_5m,
    list_cache_write_1h = usage_rollups.list_cache_write_1h + excluded.list_cache_write_1h,
    list_cache_read = usage_rollups.list_cache_read + excluded.list_cache_read,
    list_output = usage_rollups.list_output + excluded.list_output,
    list_web_search = usage_rollups.list_web_search + excluded.list_web_search,
    list_web_fetch = usage_rollups.list_web_fetch + excluded.list_web_fetch,
    cache_savings = usage_rollups.cache_savings + excluded.cache_savings";

/// How many of [`ADD_TO_ROLLUPS`]'s parameters name the rows (the minute and the key); the
/// others are integers added to them.
pub(crate) const ROLLUP_KEY_PARAMS: usize = 8;

/// The parameters of [`ADD_TO_ROLLUPS`] for one record.
pub(crate) fn rollup_params(
    org: &OrganizationId,
    at: Timestamp,
    rec: &UsageRecord,
) -> LedgerResult<Vec<Param>> {
    let t = rec.tokens.unwrap_or_default();
    let text = |v: &Option<String>| Param::Text(v.clone().unwrap_or_default());
    let minute = at.millis() - at.millis().rem_euclid(60_000);
    let mut p = vec![
        Param::Int(minute),
        Param::Text(org.to_string()),
        Param::Text(
            rec.key_id
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
        ),
        Param::Text(rec.model.clone()),
        text(&rec.service.tier),
        Param::Text(rec.service.context_window().to_owned()),
        text(&rec.service.inference_geo),
        text(&rec.service.speed),
    ];
    for v in [
        t.input,
        t.cache_write_5m,
        t.cache_write_1h,
        t.cache_read,
        t.output,
        t.web_search_requests,
        t.web_fetch_requests,
    ] {
        p.push(Param::Int(count(v)?));
    }
    p.extend(rec.credits.each().map(|(_, v)| Param::Int(v.nanos())));
    p.extend(rec.list.each().map(|(_, v)| Param::Int(v.pico())));
    p.push(Param::Int(rec.cache_savings.nanos()));
    p.push(Param::Int(1));
    Ok(p)
}

fn corrupt(what: &str) -> LedgerError {
    LedgerError::Corrupt(format!("stored usage record has an invalid {what}"))
}

fn stored_count(v: i64) -> LedgerResult<u64> {
    u64::try_from(v).map_err(|_| corrupt("count"))
}

/// Reads seven line amounts starting at column `at`.
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

/// Maps `record_columns!()` starting at column `at`; `None` when the record is absent (a left
/// join found none).
pub(crate) fn record_from_row(row: &dyn Columns, at: usize) -> LedgerResult<Option<UsageRecord>> {
    let Some(model) = row.opt_text(at)? else {
        return Ok(None);
    };
    let c = |i: usize| at + i;
    let tokens = if row.flag(c(2))? {
        Some(Tokens {
            input: stored_count(row.int(c(3))?)?,
            cache_write_5m: stored_count(row.int(c(4))?)?,
            cache_write_1h: stored_count(row.int(c(5))?)?,
            cache_read: stored_count(row.int(c(6))?)?,
            output: stored_count(row.int(c(7))?)?,
            thinking: row.opt_int(c(8))?.map(stored_count).transpose()?,
            web_search_requests: stored_count(row.int(c(9))?)?,
            web_fetch_requests: stored_count(row.int(c(10))?)?,
        })
    } else {
        None
    };
    let flags = match row.opt_text(c(36))? {
        Some(text) => serde_json::from_str(&text).map_err(|_| corrupt("flag list"))?,
        None => Vec::new(),
    };
    Ok(Some(UsageRecord {
        key_id: row
            .opt_text(c(1))?
            .map(|k| ApiKeyId::parse(&k).map_err(|_| corrupt("key id")))
            .transpose()?,
        model,
        tokens,
        service: Service {
            tier: row.opt_text(c(11))?,
            inference_geo: row.opt_text(c(12))?,
            speed: row.opt_text(c(13))?,
            long_context: row.flag(c(14))?,
        },
        credits: lines(row, c(15), NanoCredits::from_nanos)?,
        list: lines(row, c(22), PicoUsd::from_pico)?,
        cache_savings: NanoCredits::from_nanos(row.int(c(29))?),
        price_version: row.opt_text(c(30))?,
        latency_ms: stored_count(row.int(c(31))?)?,
        status: ReceiptStatus::parse(&row.text(c(32))?).ok_or_else(|| corrupt("status"))?,
        stream: row.flag(c(33))?,
        disconnect_policy: DisconnectPolicy::parse(&row.text(c(34))?)
            .ok_or_else(|| corrupt("disconnect policy"))?,
        upstream_request_id: row.opt_text(c(35))?,
        flags,
        note: row.opt_text(c(37))?,
    }))
}

/// The charges the backfill carries over: every charge without a usage record, with its
/// receipt memo and its hold's admission memo.
pub(crate) const BACKFILL_SOURCE: &str = "SELECT c.hold, c.org, c.at, c.charged, c.memo, t.memo
     FROM charges c JOIN transfers t ON t.id = c.hold
     WHERE NOT EXISTS (SELECT 1 FROM usage_records u WHERE u.request_id = c.hold)
     ORDER BY c.hold";

/// The usage record of a charge settled before usage records existed, rebuilt from the
/// receipt the gateway kept in the charge's memo (`receipt`) and the admission memo of its hold.
/// What the old receipts did not keep is recorded as unknown: no long-context flag, no cache
/// savings, no upstream request id. Credits are the receipt's line credits spread so that they
/// add up to the charge exactly (a charge without lines is all on `input`).
pub(crate) fn backfill_record(
    charged: NanoCredits,
    receipt: Option<&str>,
    admission: Option<&str>,
) -> UsageRecord {
    let parse = |s: Option<&str>| {
        s.and_then(|s| serde_json::from_str::<Value>(s).ok())
            .unwrap_or(Value::Null)
    };
    let (r, a) = (parse(receipt), parse(admission));
    let text = |k: &str| r[k].as_str().or(a[k].as_str()).map(str::to_owned);
    let usage = r["usage"]
        .is_object()
        .then(|| Usage::from_json(&r["usage"]).0);
    let (credits, list) = old_lines(&r["lines"]);
    UsageRecord {
        key_id: text("key_id").and_then(|k| ApiKeyId::parse(&k).ok()),
        model: text("model").unwrap_or_else(|| "unknown".to_owned()),
        tokens: usage.as_ref().map(Tokens::billed),
        service: Service {
            tier: usage.as_ref().and_then(|u| u.service_tier.clone()),
            inference_geo: usage.as_ref().and_then(|u| u.inference_geo.clone()),
            speed: usage.as_ref().and_then(|u| u.speed.clone()),
            long_context: false,
        },
        credits: spread(charged, &credits).unwrap_or(Lines {
            input: charged,
            ..Lines::default()
        }),
        list,
        cache_savings: NanoCredits::ZERO,
        price_version: r["price_version"].as_str().map(str::to_owned),
        latency_ms: r["latency_ms"].as_u64().unwrap_or(0),
        status: r["status"]
            .as_str()
            .and_then(ReceiptStatus::parse)
            .filter(|s| *s != ReceiptStatus::Pending)
            .unwrap_or(ReceiptStatus::Settled),
        stream: r["stream"]
            .as_bool()
            .or(a["stream"].as_bool())
            .unwrap_or(false),
        disconnect_policy: r["disconnect_policy"]
            .as_str()
            .and_then(DisconnectPolicy::parse)
            .unwrap_or(DisconnectPolicy::Drain),
        upstream_request_id: None,
        flags: serde_json::from_value::<Vec<UsageFlag>>(r["flags"].clone()).unwrap_or_default(),
        note: r["note"].as_str().map(str::to_owned),
    }
}

/// The per-line credits and list prices of an old receipt's `lines`.
fn old_lines(lines: &Value) -> (Lines<NanoCredits>, Lines<PicoUsd>) {
    let mut credits = Lines::<NanoCredits>::default();
    let mut list = Lines::<PicoUsd>::default();
    for line in lines.as_array().map_or(&[][..], Vec::as_slice) {
        let Ok(category) = serde_json::from_value::<LineCategory>(line["category"].clone()) else {
            continue;
        };
        if let Some(c) = line["credits"].as_str().and_then(|s| s.parse().ok()) {
            let slot = credits.get_mut(category);
            *slot = slot.checked_add(c).unwrap_or(*slot);
        }
        let usd = line["list_usd"]
            .as_str()
            .and_then(|s| s.parse::<Decimal>().ok());
        if let Some(p) = usd.and_then(|d| PicoUsd::from_usd(d).ok()) {
            let slot = list.get_mut(category);
            *slot = slot.checked_add(p).unwrap_or(*slot);
        }
    }
    (credits, list)
}

/// The migration (`0007_usage_records`) whose transaction also runs the backfill.
pub(crate) const BACKFILL_MIGRATION: &str = "_usage_records";

/// One charge to carry over: hold (request) id, organization, time, charge, memos.
type OldCharge = (String, String, i64, i64, Option<String>, Option<String>);

fn backfill_params(old: &OldCharge) -> LedgerResult<Vec<Param>> {
    let (hold, org, at, charged, receipt, admission) = old;
    let request = TransferId::parse(hold).map_err(|_| corrupt("request id"))?;
    let org = OrganizationId::parse(org).map_err(|_| corrupt("organization"))?;
    let charged = NanoCredits::from_nanos(*charged);
    let record = backfill_record(charged, receipt.as_deref(), admission.as_deref());
    usage_params(&request, &org, Timestamp::from_millis(*at), &record)
}

/// Writes the usage record of every charge that has none (SQLite, inside the migration's
/// transaction).
pub(crate) fn backfill_sqlite(conn: &rusqlite::Connection) -> LedgerResult<u64> {
    use crate::statement::sqlite_error;
    let mut source = conn.prepare(BACKFILL_SOURCE).map_err(sqlite_error)?;
    let old = source
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })
        .map_err(sqlite_error)?
        .collect::<Result<Vec<OldCharge>, _>>()
        .map_err(sqlite_error)?;
    let mut insert = conn
        .prepare(crate::statement::sqlite_sql(INSERT_USAGE))
        .map_err(sqlite_error)?;
    for charge in &old {
        let params = backfill_params(charge)?;
        insert
            .execute(rusqlite::params_from_iter(params.iter()))
            .map_err(sqlite_error)?;
    }
    Ok(old.len() as u64)
}

/// Writes the usage record of every charge that has none (Postgres, inside the migration's
/// transaction).
pub(crate) async fn backfill_postgres(tx: &tokio_postgres::Transaction<'_>) -> LedgerResult<u64> {
    use crate::statement::pg_error;
    use tokio_postgres::types::ToSql;
    let rows = tx.query(BACKFILL_SOURCE, &[]).await.map_err(pg_error)?;
    let insert = tx.prepare(INSERT_USAGE).await.map_err(pg_error)?;
    for row in &rows {
        let old: OldCharge = (
            row.try_get(0).map_err(pg_error)?,
            row.try_get(1).map_err(pg_error)?,
            row.try_get(2).map_err(pg_error)?,
            row.try_get(3).map_err(pg_error)?,
            row.try_get(4).map_err(pg_error)?,
            row.try_get(5).map_err(pg_error)?,
        );
        let params = backfill_params(&old)?;
        let refs: Vec<&(dyn ToSql + Sync)> =
            params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
        tx.execute(&insert, &refs).await.map_err(pg_error)?;
    }
    Ok(rows.len() as u64)
}

/// Most records one [`Database::usage_records`] call returns.
pub const MAX_RECORDS_PER_READ: i64 = 10_000;

fn stored_usage(row: &dyn Columns) -> LedgerResult<StoredUsage> {
    Ok(StoredUsage {
        request_id: TransferId::parse(&row.text(0)?).map_err(|_| corrupt("request id"))?,
        org: OrganizationId::parse(&row.text(1)?).map_err(|_| corrupt("organization"))?,
        at: Timestamp::from_millis(row.int(2)?),
        record: record_from_row(row, 3)?.ok_or_else(|| corrupt("model"))?,
    })
}

impl Database {
    /// The usage records of `org` settled in `[from, to)`, oldest first, at most `limit`
    /// (capped at [`MAX_RECORDS_PER_READ`]).
    pub async fn usage_records(
        &self,
        org: &OrganizationId,
        from: Timestamp,
        to: Timestamp,
        limit: i64,
    ) -> LedgerResult<Vec<StoredUsage>> {
        const SQL: &str = concat!(
            "SELECT u.request_id, u.org, u.at, ",
            record_columns!(),
            " FROM usage_records u WHERE u.org = $1 AND u.at >= $2 AND u.at < $3 \
             ORDER BY u.at, u.request_id LIMIT $4"
        );
        self.query(
            SQL,
            vec![
                Param::Text(org.to_string()),
                Param::Int(from.millis()),
                Param::Int(to.millis()),
                Param::Int(limit.clamp(0, MAX_RECORDS_PER_READ)),
            ],
            stored_usage,
        )
        .await
    }
}
