//! `/openapi.json` describes the bodies of every route that is not Anthropic's, and real answers
//! of the running gateway conform to what it says.

use reqwest::Method;
use serde_json::{json, Value};

use creditgate_gateway::openapi::ANTHROPIC_ROUTES;
use creditgate_gateway::routes::table;

use crate::accounts::{admin_key, call, Cred};
use crate::helpers::{body, TestApp};

/// Resolves `{"$ref": "#/components/schemas/X"}` against the document.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let name = r
                .strip_prefix("#/components/schemas/")
                .expect("a local ref");
            let found = &doc["components"]["schemas"][name];
            assert!(found.is_object(), "{r} is not defined");
            found
        }
        None => schema,
    }
}

fn type_matches(ty: &str, v: &Value) -> bool {
    match ty {
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        "null" => v.is_null(),
        _ => false,
    }
}

/// Checks `value` against `schema`: types, required properties, `const`, `enum`, array items,
/// `allOf` and `oneOf` (enough of JSON Schema for what the document uses). Errors name the path.
fn conforms(doc: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    let schema = resolve(doc, schema);
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        for s in all {
            conforms(doc, s, value, at)?;
        }
    }
    if let Some(one) = schema.get("oneOf").and_then(Value::as_array) {
        if !one.iter().any(|s| conforms(doc, s, value, at).is_ok()) {
            return Err(format!("{at}: matches none of oneOf: {value}"));
        }
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    if !types.is_empty() && !types.iter().any(|t| type_matches(t, value)) {
        return Err(format!("{at}: {value} is not {types:?}"));
    }
    if let Some(c) = schema.get("const") {
        if c != value {
            return Err(format!("{at}: {value} is not {c}"));
        }
    }
    if let Some(e) = schema.get("enum").and_then(Value::as_array) {
        if !e.contains(value) {
            return Err(format!("{at}: {value} not in {e:?}"));
        }
    }
    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        for name in required.iter().filter_map(Value::as_str) {
            if value.get(name).is_none() {
                return Err(format!("{at}: required {name} missing in {value}"));
            }
        }
    }
    if let (Some(props), Some(obj)) = (
        schema.get("properties").and_then(Value::as_object),
        value.as_object(),
    ) {
        for (name, s) in props {
            if let Some(v) = obj.get(name) {
                conforms(doc, s, v, &format!("{at}.{name}"))?;
            }
        }
    }
    if let (Some(items), Some(arr)) = (schema.get("items"), value.as_array()) {
        for (i, v) in arr.iter().enumerate() {
            conforms(doc, items, v, &format!("{at}[{i}]"))?;
        }
    }
    Ok(())
}

#[tokio::test]
async fn every_route_has_its_bodies_described_and_every_ref_resolves() {
    let t = TestApp::spawn().await;
    let doc = t.get("/openapi.json").await.body;
    for route in table() {
        // Dashboard pages are HTML, documented in docs/dashboard.md, not here.
        if ANTHROPIC_ROUTES.contains(&route.path) || route.access.is_page() {
            continue;
        }
        let op = &doc["paths"][route.path][route.method.to_lowercase()];
        let ok = &op["responses"]["200"]["content"];
        assert!(
            ok.is_object(),
            "{} {}: no answer described (add it to openapi::schemas::of)",
            route.method,
            route.path
        );
        for (_, media) in ok.as_object().unwrap() {
            resolve(&doc, &media["schema"]);
        }
        if let Some(req) = op["requestBody"]["content"].as_object() {
            for (_, media) in req {
                resolve(&doc, &media["schema"]);
            }
        } else {
            assert!(
                !["PUT"].contains(&route.method),
                "{} {} takes a body",
                route.method,
                route.path
            );
        }
    }
    for (name, schema) in doc["components"]["schemas"].as_object().unwrap() {
        // Every nested ref of every component resolves.
        let text = schema.to_string();
        for piece in text.split("#/components/schemas/").skip(1) {
            let target: String = piece.chars().take_while(|c| c.is_alphanumeric()).collect();
            assert!(
                doc["components"]["schemas"][&target].is_object(),
                "{name} refers to {target}"
            );
        }
    }
}

/// The schema of the 200 answer of `method path` (a template of the route table).
fn answer_schema<'a>(doc: &'a Value, method: &str, path: &str) -> &'a Value {
    &doc["paths"][path][method.to_lowercase()]["responses"]["200"]["content"]["application/json"]
        ["schema"]
}

#[tokio::test]
async fn real_answers_conform_to_the_document() {
    let t = TestApp::spawn().await;
    let doc = t.get("/openapi.json").await.body;
    let admin = admin_key(&t, &t.org).await;
    let key = Cred::Key(admin.clone());
    let sent = t.message(&body(16, "")).await;
    assert_eq!(sent.status, 200);
    let request_id = sent.request_id();
    let created = call(
        &t,
        Method::POST,
        "/v1/organizations/api_keys",
        &key,
        Some(json!({"name": "k", "limits": {"requests_per_minute": 5, "spend": {"daily": "3"}}})),
    )
    .await;
    let key_id = created.body["id"].as_str().unwrap().to_owned();
    let org = call(
        &t,
        Method::POST,
        "/admin/v1/organizations",
        &Cred::Operator,
        Some(json!({"name": "Other", "owner_email": "boss@other.example"})),
    )
    .await;
    let org_id = org.body["id"].as_str().unwrap().to_owned();
    let checks: Vec<(&str, &str, String, Cred, Option<Value>)> = vec![
        (
            "GET",
            "/v1/credits",
            "/v1/credits".into(),
            Cred::Key(t.api_key.clone()),
            None,
        ),
        (
            "GET",
            "/v1/key",
            "/v1/key".into(),
            Cred::Key(t.api_key.clone()),
            None,
        ),
        (
            "GET",
            "/v1/requests/{id}",
            format!("/v1/requests/{request_id}"),
            Cred::Key(t.api_key.clone()),
            None,
        ),
        (
            "GET",
            "/v1/organizations/me",
            "/v1/organizations/me".into(),
            key.clone(),
            None,
        ),
        (
            "GET",
            "/v1/organizations/api_keys",
            "/v1/organizations/api_keys".into(),
            key.clone(),
            None,
        ),
        (
            "GET",
            "/v1/organizations/api_keys/{id}",
            format!("/v1/organizations/api_keys/{key_id}"),
            key.clone(),
            None,
        ),
        (
            "POST",
            "/v1/organizations/api_keys/{id}",
            format!("/v1/organizations/api_keys/{key_id}"),
            key.clone(),
            Some(json!({"name": "renamed"})),
        ),
        (
            "GET",
            "/v1/organizations/admin_keys",
            "/v1/organizations/admin_keys".into(),
            key.clone(),
            None,
        ),
        (
            "POST",
            "/v1/organizations/invites",
            "/v1/organizations/invites".into(),
            key.clone(),
            Some(json!({"email": "dev@example.com", "role": "developer"})),
        ),
        (
            "GET",
            "/v1/organizations/invites",
            "/v1/organizations/invites".into(),
            key.clone(),
            None,
        ),
        (
            "GET",
            "/v1/organizations/users",
            "/v1/organizations/users".into(),
            key.clone(),
            None,
        ),
        (
            "GET",
            "/v1/organizations/credits",
            "/v1/organizations/credits".into(),
            key.clone(),
            None,
        ),
        (
            "GET",
            "/v1/organizations/audit_log",
            "/v1/organizations/audit_log".into(),
            key.clone(),
            None,
        ),
        (
            "GET",
            "/v1/billing/plans",
            "/v1/billing/plans".into(),
            key.clone(),
            None,
        ),
        (
            "GET",
            "/v1/billing/profile",
            "/v1/billing/profile".into(),
            key.clone(),
            None,
        ),
        (
            "GET",
            "/v1/billing/orders",
            "/v1/billing/orders".into(),
            key.clone(),
            None,
        ),
        (
            "GET",
            "/admin/v1/organizations",
            "/admin/v1/organizations".into(),
            Cred::Operator,
            None,
        ),
        (
            "GET",
            "/admin/v1/organizations/{id}",
            format!("/admin/v1/organizations/{org_id}"),
            Cred::Operator,
            None,
        ),
        (
            "POST",
            "/admin/v1/organizations/{id}/grants",
            format!("/admin/v1/organizations/{org_id}/grants"),
            Cred::Operator,
            Some(json!({"amount": "5", "category": "granted", "reference": "r1"})),
        ),
        (
            "GET",
            "/admin/v1/audit_log",
            "/admin/v1/audit_log".into(),
            Cred::Operator,
            None,
        ),
        (
            "GET",
            "/admin/v1/plans",
            "/admin/v1/plans".into(),
            Cred::Operator,
            None,
        ),
        (
            "GET",
            "/admin/v1/orders",
            "/admin/v1/orders".into(),
            Cred::Operator,
            None,
        ),
    ];
    let mut answers = vec![
        ("POST", "/v1/organizations/api_keys", created.body.clone()),
        ("POST", "/admin/v1/organizations", org.body.clone()),
    ];
    for (method, template, path, cred, body) in checks {
        let r = call(
            &t,
            Method::from_bytes(method.as_bytes()).unwrap(),
            &path,
            &cred,
            body,
        )
        .await;
        assert_eq!(r.status, 200, "{method} {path}: {}", r.body);
        answers.push((method, template, r.body));
    }
    // The check itself refuses what the document does not allow.
    let keys = answer_schema(&doc, "GET", "/v1/organizations/api_keys");
    assert!(conforms(
        &doc,
        keys,
        &json!({"data": [{"id": 1}], "has_more": false}),
        "$"
    )
    .is_err());
    assert!(conforms(&doc, keys, &json!({"data": []}), "$").is_err());
    for (method, template, answer) in answers {
        let schema = answer_schema(&doc, method, template);
        assert!(schema.is_object(), "{method} {template} has no JSON schema");
        if let Err(e) = conforms(&doc, schema, &answer, "$") {
            panic!("{method} {template}: {e}");
        }
    }
}
