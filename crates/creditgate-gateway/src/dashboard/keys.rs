//! API keys on the dashboard: the list with limits and status, creating a key (its secret shown
//! this once, with a copy button), setting limits, disabling, enabling and revoking — each
//! through the `/v1/organizations/api_keys` handlers (`docs/dashboard.md`, `docs/accounts.md`).

use std::collections::BTreeMap;
use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Map, Value};

use super::form::{see_other, Fields};
use super::format::{text, when, Amount};
use super::pages::{html, FormErrors, PageResult};
use super::viewer::{Chrome, Viewer};
use crate::error::JsonBody;
use crate::lists::ListQuery;
use crate::organization_api as org;
use crate::App;

/// The spend periods a key may be capped over, as the API names them.
pub const PERIODS: [&str; 4] = ["daily", "weekly", "monthly", "total"];

/// One key as shown.
pub struct KeyRow {
    pub id: String,
    pub name: String,
    pub hint: String,
    pub status: String,
    pub created: String,
    pub expires: String,
    /// `(period, cap)` for each spend period; empty cap = no limit.
    pub spend: Vec<(&'static str, String)>,
    pub rpm: String,
    pub tpm: String,
    pub models: String,
}

fn key_row(k: &Value) -> KeyRow {
    let l = &k["limits"];
    KeyRow {
        id: text(&k["id"]),
        name: text(&k["name"]),
        hint: text(&k["partial_key_hint"]),
        status: text(&k["status"]),
        created: when(&k["created_at"]),
        expires: when(&k["expires_at"]),
        spend: PERIODS
            .iter()
            .map(|p| (*p, text(&l["spend"][*p])))
            .collect(),
        rpm: text(&l["requests_per_minute"]),
        tpm: text(&l["tokens_per_minute"]),
        models: l["allowed_models"]
            .as_array()
            .map(|m| m.iter().map(text).collect::<Vec<_>>().join(", "))
            .unwrap_or_default(),
    }
}

#[derive(Template)]
#[template(path = "keys.html")]
pub struct KeysPage {
    pub c: Chrome,
    pub keys: Vec<KeyRow>,
    pub secret: String,
    pub created_name: String,
    pub name: String,
    pub errors: FormErrors,
}

async fn keys_page(
    app: &Arc<App>,
    viewer: Viewer,
    mut page: KeysPage,
    status: StatusCode,
) -> PageResult {
    let q = ListQuery {
        limit: Some("1000".into()),
        ..Default::default()
    };
    let Json(list) = org::list_api_keys(State(app.clone()), viewer.caller, Query(q)).await?;
    page.keys = list["data"]
        .as_array()
        .into_iter()
        .flatten()
        .map(key_row)
        .collect();
    Ok(html(status, &page))
}

/// Every key's name by id (the usage pages label keys with them).
pub async fn names(
    app: &Arc<App>,
    caller: &crate::caller::OrgCaller,
) -> Result<BTreeMap<String, String>, crate::error::ApiError> {
    let q = ListQuery {
        limit: Some("1000".into()),
        ..Default::default()
    };
    let Json(list) = org::list_api_keys(State(app.clone()), caller.clone(), Query(q)).await?;
    let keys = list["data"].as_array().into_iter().flatten();
    Ok(keys.map(|k| (text(&k["id"]), text(&k["name"]))).collect())
}

fn blank(mut c: Chrome) -> KeysPage {
    c.here = "keys";
    KeysPage {
        c,
        keys: Vec::new(),
        secret: String::new(),
        created_name: String::new(),
        name: String::new(),
        errors: FormErrors::default(),
    }
}

/// `GET /keys`.
pub async fn page(State(app): State<Arc<App>>, viewer: Viewer) -> PageResult {
    let page = blank(viewer.chrome.clone());
    keys_page(&app, viewer, page, StatusCode::OK).await
}

/// The `limits` object of a limits form: blank fields are no limit.
fn limits(form: &Fields) -> Value {
    let mut spend = Map::new();
    for p in PERIODS {
        spend.insert(p.to_owned(), form.opt(&format!("spend_{p}")));
    }
    let int = |name: &str| match form.get(name) {
        "" => Value::Null,
        v => v
            .parse::<u64>()
            .map(Value::from)
            .unwrap_or_else(|_| json!(v)),
    };
    let models = form.all("allowed_models");
    json!({
        "spend": spend,
        "requests_per_minute": int("requests_per_minute"),
        "tokens_per_minute": int("tokens_per_minute"),
        "allowed_models": if models.is_empty() { Value::Null } else { json!(models) },
    })
}

/// `POST /keys` (`name`, optional limits): creates the key and shows its secret this once.
pub async fn create(State(app): State<Arc<App>>, viewer: Viewer, form: Fields) -> PageResult {
    let body = json!({"name": form.get("name"), "limits": limits(&form)});
    let mut page = blank(viewer.chrome.clone());
    let mut status = StatusCode::OK;
    match org::create_api_key(State(app.clone()), viewer.caller.clone(), JsonBody(body)).await {
        Ok(Json(key)) => {
            page.secret = text(&key["secret"]);
            page.created_name = text(&key["name"]);
        }
        Err(e) => {
            page.name = form.get("name").to_owned();
            page.errors = FormErrors::from_error(&e, &["name", "spend", "requests_per_minute"]);
            status = e.status;
        }
    }
    keys_page(&app, viewer, page, status).await
}

#[derive(Template)]
#[template(path = "key.html")]
pub struct KeyPage {
    pub c: Chrome,
    pub k: KeyRow,
    pub errors: FormErrors,
    pub saved: bool,
    pub usage: Vec<UsageRow>,
}

/// A key's spend over one limit period, against its cap.
pub struct UsageRow {
    pub period: &'static str,
    pub spent: Amount,
    pub requests: String,
    pub limit: String,
    pub remaining: String,
    pub resets: String,
    /// Spent and cap as plain decimals for a `<meter>`; empty without a cap.
    pub meter: Option<(String, String)>,
}

/// The key's usage per period, as `GET /v1/key` reports it (`account::key_json`: settled spend
/// from the daily rollups, spend with active holds, what is left under each cap).
async fn usage_rows(
    app: &App,
    caller: &crate::caller::OrgCaller,
    id: &str,
) -> Result<Vec<UsageRow>, crate::error::ApiError> {
    let Ok(key_id) = creditgate_core::ids::ApiKeyId::parse(id) else {
        return Ok(Vec::new());
    };
    let Some(record) = app.db.api_key(&caller.org, &key_id).await? else {
        return Ok(Vec::new());
    };
    let v = crate::account::key_json(app, &record).await?;
    let u = &v["usage"];
    let unit = &app.cfg.credit_unit;
    let row = |period: &'static str,
               spent: &Value,
               requests: String,
               cap: &Value,
               left: &Value,
               resets: &Value| {
        UsageRow {
            period,
            spent: Amount::from_json(spent, unit),
            requests,
            limit: text(cap),
            remaining: text(left),
            resets: when(resets),
            meter: cap.as_str().map(|c| (text(spent), c.to_owned())),
        }
    };
    let mut rows: Vec<UsageRow> = [("daily", "day"), ("weekly", "week"), ("monthly", "month")]
        .into_iter()
        .map(|(limit, name)| {
            let p = &u["periods"][name];
            row(
                limit,
                &u[name],
                text(&p["requests"]),
                &p["limit"],
                &u["spend_remaining"][limit],
                &p["resets_at"],
            )
        })
        .collect();
    let cap = &v["limits"]["spend"]["total"];
    rows.push(row(
        "total",
        &u["total"],
        String::new(),
        cap,
        &u["spend_remaining"]["total"],
        &Value::Null,
    ));
    Ok(rows)
}

/// `GET /keys/{id}`: one key with its limits form.
pub async fn key(
    State(app): State<Arc<App>>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> PageResult {
    let Viewer { caller, mut chrome } = viewer;
    chrome.here = "keys";
    let Json(k) = org::get_api_key(State(app.clone()), caller.clone(), Path(id.clone())).await?;
    let page = KeyPage {
        c: chrome,
        k: key_row(&k),
        errors: FormErrors::default(),
        saved: false,
        usage: usage_rows(&app, &caller, &id).await?,
    };
    Ok(html(StatusCode::OK, &page))
}

/// `POST /keys/{id}` (`action` = `limits`, `disable`, `enable` or `revoke`):
/// `POST /v1/organizations/api_keys/{id}`.
pub async fn update(
    State(app): State<Arc<App>>,
    viewer: Viewer,
    Path(id): Path<String>,
    form: Fields,
) -> PageResult {
    let body = match form.get("action") {
        "disable" => json!({"status": "inactive"}),
        "enable" => json!({"status": "active"}),
        "revoke" => json!({"status": "archived"}),
        _ => json!({"limits": limits(&form)}),
    };
    let Viewer { caller, mut chrome } = viewer;
    chrome.here = "keys";
    let answer = org::update_api_key(
        State(app.clone()),
        caller.clone(),
        Path(id.clone()),
        JsonBody(body),
    )
    .await;
    match answer {
        Ok(_) if form.get("action") != "limits" => Ok(see_other("/keys")),
        Ok(Json(k)) => Ok(html(
            StatusCode::OK,
            &KeyPage {
                c: chrome,
                k: key_row(&k),
                errors: FormErrors::default(),
                saved: true,
                usage: usage_rows(&app, &caller, &id).await?,
            },
        )),
        Err(e) => {
            let usage = usage_rows(&app, &caller, &id).await?;
            let Json(k) = org::get_api_key(State(app), caller, Path(id)).await?;
            let errors = FormErrors::from_error(
                &e,
                &[
                    "spend",
                    "requests_per_minute",
                    "tokens_per_minute",
                    "allowed_models",
                ],
            );
            Ok(html(
                e.status,
                &KeyPage {
                    c: chrome,
                    k: key_row(&k),
                    errors,
                    saved: false,
                    usage,
                },
            ))
        }
    }
}
