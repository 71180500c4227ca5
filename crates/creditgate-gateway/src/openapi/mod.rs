//! `/openapi.json`: an OpenAPI 3.1 document of every route that is not Anthropic's own,
//! generated from the route table (so it cannot miss a served route), with the request and
//! answer schemas of [`schemas`].

pub mod schemas;

use serde_json::{json, Map, Value};

use crate::caller::Access;
use schemas::{Gives, Takes};

/// Routes that are Anthropic's API, documented by Anthropic rather than here.
pub const ANTHROPIC_ROUTES: &[&str] = &[
    "/v1/messages",
    "/v1/messages/count_tokens",
    "/v1/models",
    "/v1/models/{id}",
];

/// One route as the document describes it (the route table lists them).
pub struct Operation {
    pub method: &'static str,
    pub path: &'static str,
    pub access: Access,
    pub summary: &'static str,
}

fn security(access: Access) -> Value {
    match access {
        Access::Public => json!([]),
        Access::ApiKey => json!([{"api_key": []}, {"bearer_api_key": []}]),
        Access::Organization(_) => json!([{"admin_key": []}, {"session": [], "csrf": []}]),
        Access::Session => json!([{"session": [], "csrf": []}]),
        Access::Operator => json!([{"operator": []}]),
        Access::Page => json!([{"session": [], "csrf": []}]),
        Access::PublicPage => json!([]),
        Access::OperatorPage => json!([{"operator_session": []}]),
    }
}

fn role_note(access: Access) -> &'static str {
    use creditgate_core::accounts::Action::*;
    match access {
        Access::Organization(Read) => "Any role.",
        Access::Organization(ManageKeys) => "Roles owner, admin, developer.",
        Access::Organization(ManageBilling) => "Roles owner, admin, billing.",
        Access::Organization(ManageMembers) => "Roles owner, admin (an admin key acts as admin).",
        Access::Organization(Own) => "The owner only.",
        Access::ApiKey => "An inference key sk-cg-….",
        Access::Session => "A member session.",
        Access::Operator => "The operator key.",
        Access::Public => "No credential.",
        Access::Page => "A dashboard page (member session).",
        Access::PublicPage => "A dashboard page (no credential).",
        Access::OperatorPage => "An operator console page (the console's session).",
    }
}

fn content(schema: Value, form: bool) -> Value {
    let mut c = json!({"application/json": {"schema": schema.clone()}});
    if form {
        c["application/x-www-form-urlencoded"] = json!({"schema": schema});
    }
    c
}

fn success(gives: Gives) -> Value {
    let (description, content) = match gives {
        Gives::Json(schema) => ("Success", content(schema, false)),
        Gives::JsonOrCsv(schema) => (
            "Success: JSON, or CSV (one row per bucket and result) with Accept: text/csv or ?format=csv",
            json!({"application/json": {"schema": schema}, "text/csv": {"schema": {"type": "string"}}}),
        ),
        Gives::Html => ("A page", json!({"text/html": {"schema": {"type": "string"}}})),
        Gives::Text => ("Text", json!({"text/plain": {"schema": {"type": "string"}}})),
    };
    json!({"description": description, "content": content})
}

fn operation(method: &str, path: &str, access: Access, summary: &str) -> Value {
    let params: Vec<Value> = path
        .split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
        .collect();
    let error = json!({"description": "Anthropic's error envelope",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
    let mut op = json!({
        "summary": summary,
        "description": role_note(access),
        "operationId": format!("{}{}", method.to_lowercase(), path.replace(['/', '{', '}', '-'], "_")),
        "security": security(access),
        "parameters": params,
        "responses": {"400": error, "401": error, "403": error, "404": error},
    });
    // A route without a description here is caught by the test against the router.
    let Some((takes, gives)) = schemas::of(method, path) else {
        return op;
    };
    op["responses"]["200"] = success(gives);
    match takes {
        Takes::Nothing => {}
        Takes::Json(schema) => {
            op["requestBody"] = json!({"required": method != "POST" || path != "/auth/sign-out",
                "content": content(schema, false)});
        }
        Takes::JsonOrForm(schema) => {
            op["requestBody"] = json!({"required": true, "content": content(schema, true)});
        }
    }
    op
}

/// The document of `routes` for a gateway reachable at `server`.
pub fn document(routes: &[Operation], server: &str) -> Value {
    let mut paths = Map::new();
    for route in routes {
        // Anthropic's routes are Anthropic's to document; dashboard pages are HTML, not API.
        if ANTHROPIC_ROUTES.contains(&route.path) || route.access.is_page() {
            continue;
        }
        let entry = paths.entry(route.path).or_insert_with(|| json!({}));
        entry[route.method.to_lowercase()] =
            operation(route.method, route.path, route.access, route.summary);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "creditgate",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Management, sign-in and operator routes of creditgate. The inference \
                routes (/v1/messages, /v1/models) are Anthropic's API.",
        },
        "servers": [{"url": server}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "api_key": {"type": "apiKey", "in": "header", "name": "x-api-key"},
                "bearer_api_key": {"type": "http", "scheme": "bearer"},
                "admin_key": {"type": "apiKey", "in": "header", "name": "x-api-key",
                    "description": "An organization admin key sk-cg-admin-…"},
                "session": {"type": "apiKey", "in": "cookie", "name": "cg_session"},
                "csrf": {"type": "apiKey", "in": "header", "name": "x-csrf-token",
                    "description": "Required with a session on every non-GET request."},
                "operator": {"type": "http", "scheme": "bearer",
                    "description": "The operator's admin_key from the config."},
            },
            "schemas": schemas::components(),
        },
    })
}
