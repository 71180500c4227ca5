//! Every route of the router × every credential kind × every role, generated from the route
//! table the router is built from: the wrong kind of credential is 401, the right kind without
//! the role 403, anything else reaches the handler. Also checks `/openapi.json` against it.

use creditgate_core::accounts::Role;
use creditgate_gateway::dashboard::assets::ASSET_VERSION;
use creditgate_gateway::openapi::ANTHROPIC_ROUTES;
use creditgate_gateway::routes::{table, Access};
use reqwest::Method;
use serde_json::json;

use crate::accounts::{admin_key, call, member, request, Cred, SignedIn};
use crate::helpers::{JsonReply, TestApp};

/// A path with its parameters filled by ids that exist nowhere.
fn concrete(path: &str) -> String {
    path.replace("{id}", "x_nothing")
        .replace("{token}", &"0".repeat(64))
        .replace("{*path}", &format!("app.v{ASSET_VERSION}.css"))
}

#[derive(Debug, Clone)]
enum Who {
    Nobody,
    InferenceKey,
    AdminKey,
    Operator,
    Member(Role),
    /// A member session without the CSRF token.
    NoCsrf(Role),
}

fn expected(access: Access, who: &Who, write: bool) -> &'static str {
    use Who::*;
    match (access, who) {
        (Access::Public | Access::PublicPage, _) => "any",
        // A page without a session redirects to the sign-in page (followed here: 200); with
        // one, a form needs the CSRF token as an API call does (`docs/dashboard.md`).
        // The role is checked by the service the page calls (403 for a role without it).
        (Access::Page, Member(_)) => "service decides",
        (Access::Page, NoCsrf(_)) if write => "403",
        (Access::Page, NoCsrf(_)) => "allowed",
        (Access::Page, _) => "sign-in page",
        // The operator console takes its own session, never the Bearer key: without it a page
        // redirects to the console's sign-in page and a form is refused.
        (Access::OperatorPage, _) if write => "401",
        (Access::OperatorPage, _) => "sign-in page",
        (Access::ApiKey, InferenceKey) => "allowed",
        (Access::Operator, Operator) => "allowed",
        (Access::Session, Member(_)) => "allowed",
        (Access::Session, NoCsrf(_)) if !write => "allowed",
        (Access::Session, NoCsrf(_)) => "403",
        (Access::Organization(action), AdminKey) => {
            if Role::Admin.may(action) {
                "allowed"
            } else {
                "403"
            }
        }
        (Access::Organization(action), Member(role)) => {
            if role.may(action) {
                "allowed"
            } else {
                "403"
            }
        }
        (Access::Organization(_), NoCsrf(_)) if write => "403",
        (Access::Organization(action), NoCsrf(role)) => {
            if role.may(action) {
                "allowed"
            } else {
                "403"
            }
        }
        _ => "401",
    }
}

#[tokio::test]
async fn every_route_answers_every_credential_as_the_contract_says() {
    let t = TestApp::spawn().await;
    let admin = admin_key(&t, &t.org).await;
    let mut sessions: Vec<(Role, SignedIn)> = Vec::new();
    for role in Role::ALL {
        sessions.push((
            role,
            member(&t, &format!("{}@example.com", role.as_str()), role).await,
        ));
    }
    let mut whos = vec![Who::Nobody, Who::InferenceKey, Who::AdminKey, Who::Operator];
    for role in Role::ALL {
        whos.push(Who::Member(role));
        whos.push(Who::NoCsrf(role));
    }
    let mut checked = 0;
    for route in table() {
        let method = Method::from_bytes(route.method.as_bytes()).unwrap();
        let write = route.method != "GET";
        let path = concrete(route.path);
        let mut public_answers = Vec::new();
        for who in &whos {
            let session = |role: &Role| sessions.iter().find(|(r, _)| r == role).unwrap().1.clone();
            let cred = match who {
                Who::Nobody => Cred::None,
                Who::InferenceKey => Cred::Key(t.api_key.clone()),
                Who::AdminKey => Cred::Key(admin.clone()),
                Who::Operator => Cred::Operator,
                // Signing out ends a session: use a fresh one for that route.
                Who::Member(role) if route.path.ends_with("/sign-out") => {
                    crate::accounts::session_of(
                        &crate::accounts::sign_in(
                            &t,
                            &format!("{}@example.com", role.as_str()),
                            crate::accounts::PASSWORD,
                        )
                        .await,
                    )
                    .cred()
                }
                Who::Member(role) => session(role).cred(),
                Who::NoCsrf(role) => Cred::Session {
                    cookie: session(role).cookie,
                    csrf: None,
                },
            };
            let body = write.then(|| json!({}));
            let r = if route.path.starts_with("/live/") {
                // An event stream does not end: its status is the answer.
                let sent = request(&t, method.clone(), &path, &cred, body).send().await;
                let sent = sent.expect("request sent");
                JsonReply {
                    status: sent.status().as_u16(),
                    headers: sent.headers().clone(),
                    body: serde_json::Value::Null,
                }
            } else {
                call(&t, method.clone(), &path, &cred, body).await
            };
            let what = format!(
                "{} {} as {who:?}: {} {}",
                route.method, route.path, r.status, r.body
            );
            assert_ne!(
                r.body["error"]["message"], "Not found.",
                "not routed: {what}"
            );
            assert_ne!(r.status, 405, "{what}");
            match expected(route.access, who, write) {
                "401" => assert_eq!(r.status, 401, "{what}"),
                "403" => assert_eq!(r.status, 403, "{what}"),
                "allowed" => assert!(r.status != 401 && r.status != 403, "{what}"),
                "sign-in page" => assert_eq!(r.status, 200, "{what}"),
                "service decides" => assert!(r.status != 401 && r.status < 500, "{what}"),
                _ => public_answers.push(r.status),
            }
            checked += 1;
        }
        if !public_answers.is_empty() {
            assert!(
                public_answers
                    .iter()
                    .all(|s| *s == public_answers[0] && *s != 401),
                "a public route ignores credentials: {} {public_answers:?}",
                route.path
            );
        }
    }
    assert!(checked > 600, "{checked}");
}

#[tokio::test]
async fn openapi_documents_every_route_that_is_not_anthropics() {
    let t = TestApp::spawn().await;
    let doc = t.get("/openapi.json").await.body;
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    let mut expected = 0;
    for route in table() {
        let op = &paths
            .get(route.path)
            .map(|p| p[route.method.to_lowercase()].clone());
        if ANTHROPIC_ROUTES.contains(&route.path) || route.access.is_page() {
            assert!(op.is_none(), "{} is Anthropic's or a page", route.path);
            continue;
        }
        expected += 1;
        let op = op.clone().unwrap_or_default();
        assert!(
            op.is_object(),
            "{} {} missing from /openapi.json",
            route.method,
            route.path
        );
        assert_eq!(op["summary"], route.summary);
    }
    let documented: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
    assert_eq!(
        documented, expected,
        "nothing documented that is not served"
    );
}
