//! A report's parameters, parsed once at the edge: Anthropic's `starting_at`, `ending_at`,
//! `bucket_width`, `limit`, `page`, `group_by[]`, `api_key_ids[]`, `models[]` (and the
//! operator's `organization_ids[]`), plus `format=csv`. Every bad value is a 400 naming it.

use creditgate_core::clock::Timestamp;
use creditgate_core::ids::{ApiKeyId, OrganizationId};
use creditgate_core::reports::{BucketWidth, Dimension, Filter};

use crate::error::ApiError;

/// Most values one list parameter (`group_by[]`, `api_key_ids[]`, `models[]`) may carry.
pub const MAX_LIST_VALUES: usize = 100;
/// Longest model name a `models[]` filter may hold.
pub const MAX_MODEL_LEN: usize = 256;

/// Which report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportKind {
    /// `usage_report/messages`: tokens per category, requests and credits.
    Usage,
    /// `cost_report`: USD cents, credits and list price, daily.
    Cost,
    /// `cache_report`: cache writes, reads, what reads saved and what unread writes cost.
    Cache,
}

impl ReportKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Usage => "usage",
            Self::Cost => "cost",
            Self::Cache => "cache",
        }
    }

    /// The `group_by[]` values this report takes.
    pub fn dimensions(self) -> &'static [Dimension] {
        use Dimension::*;
        match self {
            Self::Usage => &[
                ApiKey,
                Workspace,
                Model,
                ServiceTier,
                ContextWindow,
                InferenceGeo,
                Speed,
            ],
            Self::Cost => &[Workspace, Description, Model],
            Self::Cache => &[ApiKey, Model],
        }
    }
}

/// Who asks: one organization, or the operator across organizations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Organization(OrganizationId),
    Operator,
}

impl Scope {
    pub fn org(&self) -> Option<&OrganizationId> {
        match self {
            Scope::Organization(org) => Some(org),
            Scope::Operator => None,
        }
    }
}

/// A parsed report query. The window `[start, end)` is aligned on the bucket width.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportQuery {
    pub kind: ReportKind,
    pub width: BucketWidth,
    pub start: Timestamp,
    pub end: Timestamp,
    /// Buckets per page.
    pub limit: usize,
    pub page: Option<String>,
    pub group_by: Vec<Dimension>,
    pub filter: Filter,
    pub csv: bool,
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::invalid_request(message)
}

/// The raw values of a query string, list parameters gathered (`group_by[]=a&group_by[]=b`,
/// or `group_by=a`).
#[derive(Debug, Default)]
struct Raw {
    single: Vec<(String, String)>,
    lists: Vec<(String, String)>,
}

const SINGLE: [&str; 6] = [
    "starting_at",
    "ending_at",
    "bucket_width",
    "limit",
    "page",
    "format",
];
const LISTS: [&str; 4] = ["group_by", "api_key_ids", "models", "organization_ids"];

fn split(query: &str, operator: bool) -> Result<Raw, ApiError> {
    let mut raw = Raw::default();
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        let base = name.strip_suffix("[]").unwrap_or(&name);
        if LISTS.contains(&base) && (operator || base != "organization_ids") {
            if raw.lists.iter().filter(|(n, _)| n == base).count() >= MAX_LIST_VALUES {
                return Err(bad(format!("{base}[]: at most {MAX_LIST_VALUES} values")));
            }
            raw.lists.push((base.to_owned(), value.into_owned()));
        } else if SINGLE.contains(&base) && base == name {
            if raw.single.iter().any(|(n, _)| n == base) {
                return Err(bad(format!("{base}: given more than once")));
            }
            raw.single.push((base.to_owned(), value.into_owned()));
        } else {
            return Err(bad(format!("unknown parameter {:?}", truncate(&name))));
        }
    }
    Ok(raw)
}

fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

impl Raw {
    fn get(&self, name: &str) -> Option<&str> {
        self.single
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn list<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.lists
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

fn time(raw: &Raw, name: &str) -> Result<Option<Timestamp>, ApiError> {
    raw.get(name)
        .map(|v| {
            Timestamp::parse_rfc3339(v).ok_or_else(|| {
                bad(format!(
                    "{name}: {:?} is not an RFC 3339 UTC time such as 2026-11-01T00:00:00Z",
                    truncate(v)
                ))
            })
        })
        .transpose()
}

fn width(raw: &Raw, kind: ReportKind) -> Result<BucketWidth, ApiError> {
    let width = match raw.get("bucket_width") {
        None => BucketWidth::Day,
        Some(v) => BucketWidth::parse(v).ok_or_else(|| {
            bad(format!(
                "bucket_width: {:?} is not 1m, 1h or 1d",
                truncate(v)
            ))
        })?,
    };
    if kind == ReportKind::Cost && width != BucketWidth::Day {
        return Err(bad(
            "bucket_width: the cost report has daily buckets only (1d)",
        ));
    }
    Ok(width)
}

fn limit(raw: &Raw, width: BucketWidth) -> Result<usize, ApiError> {
    let max = width.max_buckets();
    match raw.get("limit") {
        None => Ok(width.default_buckets()),
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| {
                bad(format!(
                    "limit: must be 1 to {max} buckets for bucket_width {}",
                    width.as_str()
                ))
            }),
    }
}

fn group_by(raw: &Raw, kind: ReportKind, operator: bool) -> Result<Vec<Dimension>, ApiError> {
    let mut dims = Vec::new();
    for v in raw.list("group_by") {
        let dim = Dimension::parse(v)
            .filter(|d| {
                kind.dimensions().contains(d) || (operator && *d == Dimension::Organization)
            })
            .ok_or_else(|| {
                let known: Vec<&str> = kind.dimensions().iter().map(|d| d.as_str()).collect();
                bad(format!(
                    "group_by[]: {:?} is not one of {}",
                    truncate(v),
                    known.join(", ")
                ))
            })?;
        if !dims.contains(&dim) {
            dims.push(dim);
        }
    }
    if kind == ReportKind::Cache {
        // The cache report is always per key and model.
        for d in [Dimension::ApiKey, Dimension::Model] {
            if !dims.contains(&d) {
                dims.push(d);
            }
        }
    }
    Ok(dims)
}

fn filter(raw: &Raw) -> Result<Filter, ApiError> {
    let mut f = Filter::default();
    for v in raw.list("api_key_ids") {
        let id = ApiKeyId::parse(v)
            .ok()
            .filter(|id| id.as_str().starts_with("key_"))
            .ok_or_else(|| {
                bad(format!(
                    "api_key_ids[]: {:?} is not an API key id",
                    truncate(v)
                ))
            })?;
        f.api_key_ids.push(id);
    }
    for v in raw.list("models") {
        if v.is_empty() || v.len() > MAX_MODEL_LEN || v.chars().any(char::is_control) {
            return Err(bad(
                "models[]: a model name is 1 to 256 printable characters",
            ));
        }
        f.models.push(v.to_owned());
    }
    for v in raw.list("organization_ids") {
        let org = OrganizationId::parse(v).map_err(|_| {
            bad(format!(
                "organization_ids[]: {:?} is not an organization id",
                truncate(v)
            ))
        })?;
        f.orgs.push(org);
    }
    Ok(f)
}

/// `format=csv`, or `Accept: text/csv` (when no `format` is given).
fn wants_csv(raw: &Raw, accept: Option<&str>) -> Result<bool, ApiError> {
    match raw.get("format") {
        Some("csv") => Ok(true),
        Some("json") => Ok(false),
        Some(other) => Err(bad(format!(
            "format: {:?} is not json or csv",
            truncate(other)
        ))),
        None => Ok(accept.is_some_and(|a| a.to_ascii_lowercase().contains("text/csv"))),
    }
}

impl ReportQuery {
    /// Parses a report's query string. `now` ends the window when `ending_at` is not given
    /// (at most the largest window of the bucket width).
    pub fn parse(
        kind: ReportKind,
        query: &str,
        accept: Option<&str>,
        operator: bool,
        now: Timestamp,
    ) -> Result<Self, ApiError> {
        let raw = split(query, operator)?;
        let width = width(&raw, kind)?;
        let start = time(&raw, "starting_at")?.ok_or_else(|| bad("starting_at: required"))?;
        let start = width.floor(start);
        let largest = start.plus_millis(width.millis() * width.max_buckets() as i64);
        let end = match time(&raw, "ending_at")? {
            Some(end) if end <= start => {
                return Err(bad("ending_at: must be after starting_at"));
            }
            Some(end) => width.ceil(end),
            None => width
                .ceil(now)
                .clamp(start.plus_millis(width.millis()), largest),
        };
        if end > largest {
            return Err(bad(format!(
                "ending_at: the window holds more than {} buckets of {}; ask for a shorter one",
                width.max_buckets(),
                width.as_str()
            )));
        }
        Ok(Self {
            kind,
            width,
            start,
            end,
            limit: limit(&raw, width)?,
            page: raw.get("page").map(str::to_owned),
            group_by: group_by(&raw, kind, operator)?,
            filter: filter(&raw)?,
            csv: wants_csv(&raw, accept)?,
        })
    }

    /// Every bucket start of the window.
    pub fn bucket_starts(&self) -> Vec<Timestamp> {
        let mut out = Vec::new();
        let mut t = self.start;
        while t < self.end {
            out.push(t);
            t = t.plus_millis(self.width.millis());
        }
        out
    }

    /// What a page token is bound to besides the caller: the report and its window, width,
    /// grouping and filters.
    pub fn binding(&self, scope: &Scope) -> String {
        let who = scope.org().map_or("operator", |o| o.as_str());
        let dims: Vec<&str> = self.group_by.iter().map(|d| d.as_str()).collect();
        let keys: Vec<&str> = self.filter.api_key_ids.iter().map(|k| k.as_str()).collect();
        let orgs: Vec<&str> = self.filter.orgs.iter().map(|o| o.as_str()).collect();
        format!(
            "{who}|{}|{}|{}|{}|{}|{}|{}|{}",
            self.kind.as_str(),
            self.width.as_str(),
            self.start.millis(),
            self.end.millis(),
            dims.join(","),
            keys.join(","),
            self.filter.models.join("\u{1f}"),
            orgs.join(",")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(kind: ReportKind, q: &str) -> Result<ReportQuery, String> {
        let now = Timestamp::parse_rfc3339("2026-11-26T12:30:00Z").unwrap();
        ReportQuery::parse(kind, q, None, false, now).map_err(|e| e.message)
    }

    #[test]
    fn windows_snap_to_buckets_and_default_to_now() {
        let q = parse(ReportKind::Usage, "starting_at=2026-11-20T05:06:07Z").unwrap();
        assert_eq!(q.start.to_rfc3339(), "2026-11-20T00:00:00Z");
        assert_eq!(q.end.to_rfc3339(), "2026-11-27T00:00:00Z");
        assert_eq!(q.limit, 7);
        let q = parse(
            ReportKind::Usage,
            "starting_at=2026-11-26T10:00:00Z&bucket_width=1h&group_by[]=model&group_by=api_key_id",
        )
        .unwrap();
        assert_eq!(q.end.to_rfc3339(), "2026-11-26T13:00:00Z");
        assert_eq!(q.group_by, vec![Dimension::Model, Dimension::ApiKey]);
        assert_eq!(q.bucket_starts().len(), 3);
    }

    #[test]
    fn bad_parameters_are_named() {
        for (q, needle) in [
            ("", "starting_at: required"),
            ("starting_at=yesterday", "starting_at"),
            (
                "starting_at=2026-11-20&ending_at=2026-11-19",
                "must be after",
            ),
            (
                "starting_at=2026-11-20&ending_at=2026-11-20",
                "must be after",
            ),
            (
                "starting_at=2026-10-01&ending_at=2026-11-20",
                "more than 31 buckets",
            ),
            ("starting_at=2026-11-20&bucket_width=2d", "bucket_width"),
            ("starting_at=2026-11-20&limit=32", "limit"),
            ("starting_at=2026-11-20&limit=0", "limit"),
            ("starting_at=2026-11-20&group_by[]=colour", "group_by[]"),
            ("starting_at=2026-11-20&api_key_ids[]=nope", "api_key_ids[]"),
            (
                "starting_at=2026-11-20&organization_ids[]=org",
                "unknown parameter",
            ),
            (
                "starting_at=2026-11-20&workspace_ids[]=w",
                "unknown parameter",
            ),
            ("starting_at=2026-11-20&format=xml", "format"),
            (
                "starting_at=2026-11-20&starting_at=2026-11-21",
                "more than once",
            ),
        ] {
            let err = parse(ReportKind::Usage, q).unwrap_err();
            assert!(err.contains(needle), "{q}: {err}");
        }
        let err = parse(ReportKind::Cost, "starting_at=2026-11-20&bucket_width=1h").unwrap_err();
        assert!(err.contains("daily"), "{err}");
        let err = parse(
            ReportKind::Cost,
            "starting_at=2026-11-20&group_by[]=api_key_id",
        );
        assert!(err.unwrap_err().contains("group_by[]"));
    }
}
