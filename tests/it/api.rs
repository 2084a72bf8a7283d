//! The router without a socket (`tower::ServiceExt::oneshot`): every bad request answered with
//! the status and body Auth0's APIs use, naming what is wrong.

use crate::util::block_on;
use axum::body::Body;
use axum::http::Request;
use customdb::api::{AppState, router, tokens::Keys};
use serde_json::{Value, json};
use std::sync::Arc;
use tower::ServiceExt;

/// The router over a demo tenant; the demo's public app (`client_id`) and management client
/// (`management_id`, `management_secret`).
fn app() -> (axum::Router, Value, tempfile::TempDir) {
    let crate::util::TempStore { dir, store, .. } = crate::util::temp_store();
    let demo = customdb::demo::ensure(&store, dir.path()).unwrap().unwrap();
    let mut creds: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("demo-app.json")).unwrap())
            .unwrap();
    creds["management_id"] = json!(demo.management.client_id);
    creds["management_secret"] = json!(demo.management.client_secret);
    let keys = Keys::load(&store).unwrap();
    let core = crate::util::service(store, dir.path().join("connections"));
    (router(Arc::new(AppState::new(core, keys, 8))), creds, dir)
}

/// One request of the table and what it must answer: the status and a subset of the body.
struct Case {
    name: &'static str,
    method: &'static str,
    path: String,
    content_type: Option<&'static str>,
    body: String,
    bearer: Bearer,
    status: u16,
    expect: Value,
}

/// The `Authorization` a case sends.
#[derive(Clone, Copy, PartialEq)]
enum Bearer {
    None,
    /// A token of the demo's management client.
    Management,
    /// A token signed by nobody the server knows.
    Forged,
}

impl Case {
    fn new(method: &'static str, name: &'static str, path: impl Into<String>) -> Case {
        Case {
            name,
            method,
            path: path.into(),
            content_type: None,
            body: String::new(),
            bearer: Bearer::None,
            status: 0,
            expect: Value::Null,
        }
    }
    fn get(name: &'static str, path: impl Into<String>) -> Case {
        Case::new("GET", name, path)
    }
    fn json(
        method: &'static str,
        name: &'static str,
        path: impl Into<String>,
        body: impl Into<String>,
    ) -> Case {
        Case {
            content_type: Some("application/json"),
            body: body.into(),
            ..Case::new(method, name, path)
        }
    }
    fn form(name: &'static str, path: impl Into<String>, body: impl Into<String>) -> Case {
        Case {
            content_type: Some("application/x-www-form-urlencoded"),
            body: body.into(),
            ..Case::new("POST", name, path)
        }
    }
    fn bearer(self, bearer: Bearer) -> Case {
        Case { bearer, ..self }
    }
    fn answers(self, status: u16, expect: Value) -> Case {
        Case {
            status,
            expect,
            ..self
        }
    }
}

fn cases(client_id: &str) -> Vec<Case> {
    vec![
        Case::get("discovery names the host", "/.well-known/openid-configuration").answers(200, json!({"issuer": "http://auth.example.test/", "token_endpoint": "http://auth.example.test/oauth/token"})),
        Case::json("POST", "missing grant_type", "/oauth/token", "{}").answers(400, json!({"error": "invalid_request", "error_description": "Missing required parameter: grant_type"})),
        Case::json("POST", "unsupported grant", "/oauth/token", json!({"grant_type": "implicit"}).to_string()).answers(403, json!({"error": "unsupported_grant_type"})),
        Case::json("POST", "malformed JSON", "/oauth/token", "{\"grant_type\": ").answers(400, json!({"message": "~the request body is not valid JSON"})),
        Case::json("POST", "body too large", "/oauth/token", format!("{{\"x\": \"{}\"}}", "a".repeat(70_000))).answers(400, json!({"message": "the request body must be at most 65536 bytes"})),
        Case::json("POST", "unknown client", "/oauth/token", json!({"grant_type": "password", "client_id": "nobody", "username": "a", "password": "b"}).to_string()).answers(401, json!({"error": "access_denied"})),
        Case::form("missing password", "/oauth/token", format!("grant_type=password&client_id={client_id}&username=alice%40example.com")).answers(400, json!({"error_description": "Missing required parameter: password"})),
        Case::json("POST", "realm required for password-realm", "/oauth/token", json!({"grant_type": "http://auth0.com/oauth/grant-type/password-realm", "client_id": client_id, "username": "a", "password": "b"}).to_string()).answers(400, json!({"error_description": "Missing required parameter: realm"})),
        Case::get("no bearer token", "/api/v2/users/auth0%7C1").answers(401, json!({"statusCode": 401, "error": "Unauthorized", "errorCode": "invalid_token"})),
        Case::get("a forged bearer token", "/api/v2/logs").bearer(Bearer::Forged).answers(401, json!({"errorCode": "invalid_token"})),
        Case::json("POST", "a username that is not a string", "/oauth/token", json!({"grant_type": "password", "client_id": client_id, "username": 5, "password": "b"}).to_string()).answers(400, json!({"error": "invalid_request", "error_description": "Invalid parameter: username must be a string"})),
        Case::json("POST", "a token request that is not an object", "/oauth/token", "[1]").answers(400, json!({"error": "invalid_request", "error_description": "the body must be a JSON object or a form"})),
        Case::json("POST", "a password change email that is a list", "/dbconnections/change_password", json!({"client_id": client_id, "email": [1], "connection": "Username-Password-Authentication"}).to_string()).answers(400, json!({"error": "invalid_request", "error_description": "Invalid parameter: email must be a string"})),
        Case::json("POST", "a signup password that is a number", "/dbconnections/signup", json!({"client_id": client_id, "email": "a@example.com", "password": 5, "connection": "Username-Password-Authentication"}).to_string()).answers(400, json!({"code": "invalid_body", "description": "Payload validation error: 'Expected type string but found type number' on property password"})),
        Case::json("POST", "password change without email", "/dbconnections/change_password", json!({"client_id": client_id, "connection": "Username-Password-Authentication"}).to_string()).answers(400, json!({"error": "invalid_request", "error_description": "Missing required parameter: email"})),
        Case::json("POST", "password change on an unknown connection", "/dbconnections/change_password", json!({"client_id": client_id, "email": "a@example.com", "connection": "nope"}).to_string()).answers(400, json!({"error_description": "no connection named 'nope'"})),
        Case::json("POST", "ticket without a token", "/api/v2/tickets/password-change", json!({"user_id": "auth0|1"}).to_string()).answers(401, json!({"errorCode": "invalid_token"})),
        Case::form("reset with an unknown ticket", "/lo/reset", format!("ticket={}&newPassword=n3w-Secret", "ab".repeat(24))).answers(404, json!({"error": "invalid_ticket"})),
        Case::json("POST", "reset with passwords that differ", "/lo/reset", json!({"ticket": "ab".repeat(24), "newPassword": "one-Secret", "confirmNewPassword": "two-Secret"}).to_string()).answers(400, json!({"error_description": "The passwords do not match."})),
        Case::get("reset page for a malformed ticket", "/lo/reset?ticket=%3Cscript%3E").answers(400, json!(null)),
        Case::get("a page that is not a number", "/api/v2/users?page=abc").bearer(Bearer::Management).answers(400, json!({"statusCode": 400, "errorCode": "invalid_query_string", "message": "Query validation error: page: invalid digit found in string"})),
        Case::get("a bad query without a token", "/api/v2/users?page=abc").answers(401, json!({"errorCode": "invalid_token"})),
        Case::get("users by email without the email", "/api/v2/users-by-email").bearer(Bearer::Management).answers(400, json!({"errorCode": "invalid_query_string", "message": "Query validation error: missing field `email`"})),
        Case::get("an unknown endpoint", "/api/v2/nothing-here").answers(404, json!({"statusCode": 404, "errorCode": "not_found", "message": "no endpoint at /api/v2/nothing-here"})),
        Case::json("PUT", "a method the endpoint lacks", "/oauth/token", "{}").answers(405, json!({"statusCode": 405, "errorCode": "method_not_allowed", "message": "PUT is not allowed on /oauth/token"})),
        Case::json("POST", "signup without connection", "/dbconnections/signup", json!({"client_id": client_id, "email": "a@example.com", "password": "x"}).to_string()).answers(400, json!({"message": "Missing required parameter: connection"})),
    ]
}

/// A Management API token of the demo's management client, from the router itself.
fn management_token(app: &axum::Router, creds: &Value) -> String {
    let body = json!({
        "grant_type": "client_credentials",
        "client_id": creds["management_id"],
        "client_secret": creds["management_secret"],
        "audience": "https://auth.example.test/api/v2/",
    });
    let req = Request::builder()
        .method("POST")
        .uri("/oauth/token")
        .header("host", "auth.example.test")
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let response = block_on(app.clone().oneshot(req)).unwrap();
    let bytes = block_on(axum::body::to_bytes(response.into_body(), 1 << 20)).unwrap();
    let answer: Value = serde_json::from_slice(&bytes).unwrap();
    answer["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("{answer}"))
        .to_string()
}

#[test]
fn bad_requests_get_auth0_shaped_answers() {
    let (app, creds, _dir) = app();
    let client_id = creds["client_id"].as_str().unwrap().to_string();
    let token = management_token(&app, &creds);
    for case in cases(&client_id) {
        let mut req = Request::builder()
            .method(case.method)
            .uri(&case.path)
            .header("host", "auth.example.test");
        if let Some(content_type) = case.content_type {
            req = req.header("content-type", content_type);
        }
        match case.bearer {
            Bearer::None => {}
            Bearer::Management => req = req.header("authorization", format!("Bearer {token}")),
            Bearer::Forged => {
                req = req.header("authorization", "Bearer eyJhbGciOiJSUzI1NiJ9.e30.c2ln")
            }
        }
        let name = case.name;
        let response = block_on(
            app.clone()
                .oneshot(req.body(Body::from(case.body)).unwrap()),
        )
        .unwrap();
        assert_eq!(response.status().as_u16(), case.status, "{name}");
        let bytes = block_on(axum::body::to_bytes(response.into_body(), 1 << 20)).unwrap();
        let actual: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        crate::util::matches(&actual, &case.expect)
            .unwrap_or_else(|m| panic!("{name}: {m}\n{actual}"));
    }
}

#[test]
fn every_answer_carries_a_request_id() {
    let (app, _creds, _dir) = app();
    let get = |id: Option<&str>| {
        let mut req = Request::builder()
            .uri("/.well-known/jwks.json")
            .header("host", "auth.example.test");
        if let Some(id) = id {
            req = req.header("x-request-id", id);
        }
        let response = block_on(app.clone().oneshot(req.body(Body::empty()).unwrap())).unwrap();
        response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(get(Some("edge-42")), "edge-42", "a proxy's id is kept");
    let fresh = get(None);
    assert_eq!(fresh.len(), 32, "{fresh}");
    assert_ne!(
        get(Some("has spaces in it")),
        "has spaces in it",
        "an unusable id is replaced"
    );
}

#[test]
fn an_older_demo_client_gets_the_scopes_added_since() {
    let crate::util::TempStore { dir, store, .. } = crate::util::temp_store();
    let demo = customdb::demo::ensure(&store, dir.path()).unwrap().unwrap();
    let mut client = store
        .get_client(&demo.management.client_id)
        .unwrap()
        .unwrap();
    client.scopes.retain(|s| s != "create:user_tickets");
    store.put_client(&client).unwrap();
    customdb::demo::ensure(&store, dir.path()).unwrap();
    let scopes = store
        .get_client(&demo.management.client_id)
        .unwrap()
        .unwrap()
        .scopes;
    assert!(
        scopes.iter().any(|s| s == "create:user_tickets"),
        "{scopes:?}"
    );
}
