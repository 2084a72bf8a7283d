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

/// (case, method, path, content type, body, expected status, expected subset of the body)
fn cases(
    client_id: &str,
) -> Vec<(
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    String,
    u16,
    Value,
)> {
    let json_ct = "application/json";
    vec![
        ("discovery names the host", "GET", "/.well-known/openid-configuration", "", String::new(), 200, json!({"issuer": "http://auth.example.test/", "token_endpoint": "http://auth.example.test/oauth/token"})),
        ("missing grant_type", "POST", "/oauth/token", json_ct, "{}".into(), 400, json!({"error": "invalid_request", "error_description": "Missing required parameter: grant_type"})),
        ("unsupported grant", "POST", "/oauth/token", json_ct, json!({"grant_type": "implicit"}).to_string(), 403, json!({"error": "unsupported_grant_type"})),
        ("malformed JSON", "POST", "/oauth/token", json_ct, "{\"grant_type\": ".into(), 400, json!({"message": "~the request body is not valid JSON"})),
        ("body too large", "POST", "/oauth/token", json_ct, format!("{{\"x\": \"{}\"}}", "a".repeat(70_000)), 400, json!({"message": "the request body must be at most 65536 bytes"})),
        ("unknown client", "POST", "/oauth/token", json_ct, json!({"grant_type": "password", "client_id": "nobody", "username": "a", "password": "b"}).to_string(), 401, json!({"error": "access_denied"})),
        ("missing password", "POST", "/oauth/token", "application/x-www-form-urlencoded", format!("grant_type=password&client_id={client_id}&username=alice%40example.com"), 400, json!({"error_description": "Missing required parameter: password"})),
        ("realm required for password-realm", "POST", "/oauth/token", json_ct, json!({"grant_type": "http://auth0.com/oauth/grant-type/password-realm", "client_id": client_id, "username": "a", "password": "b"}).to_string(), 400, json!({"error_description": "Missing required parameter: realm"})),
        ("no bearer token", "GET", "/api/v2/users/auth0%7C1", "", String::new(), 401, json!({"statusCode": 401, "error": "Unauthorized", "errorCode": "invalid_token"})),
        ("a forged bearer token", "GET", "/api/v2/logs", "", String::new(), 401, json!({"errorCode": "invalid_token"})),
        ("password change without email", "POST", "/dbconnections/change_password", json_ct, json!({"client_id": client_id, "connection": "Username-Password-Authentication"}).to_string(), 400, json!({"error": "invalid_request", "error_description": "Missing required parameter: email"})),
        ("password change on an unknown connection", "POST", "/dbconnections/change_password", json_ct, json!({"client_id": client_id, "email": "a@example.com", "connection": "nope"}).to_string(), 400, json!({"error_description": "no connection named 'nope'"})),
        ("ticket without a token", "POST", "/api/v2/tickets/password-change", json_ct, json!({"user_id": "auth0|1"}).to_string(), 401, json!({"errorCode": "invalid_token"})),
        ("reset with an unknown ticket", "POST", "/lo/reset", "application/x-www-form-urlencoded", format!("ticket={}&newPassword=n3w-Secret", "ab".repeat(24)), 404, json!({"error": "invalid_ticket"})),
        ("reset with passwords that differ", "POST", "/lo/reset", json_ct, json!({"ticket": "ab".repeat(24), "newPassword": "one-Secret", "confirmNewPassword": "two-Secret"}).to_string(), 400, json!({"error_description": "The passwords do not match."})),
        ("reset page for a malformed ticket", "GET", "/lo/reset?ticket=%3Cscript%3E", "", String::new(), 400, json!(null)),
        ("a page that is not a number", "GET", "/api/v2/users?page=abc", "", String::new(), 400, json!({"statusCode": 400, "errorCode": "invalid_query_string", "message": "Query validation error: page: invalid digit found in string"})),
        ("a bad query without a token", "GET", "/api/v2/users?page=abc", "", String::new(), 401, json!({"errorCode": "invalid_token"})),
        ("users by email without the email", "GET", "/api/v2/users-by-email", "", String::new(), 400, json!({"errorCode": "invalid_query_string", "message": "Query validation error: missing field `email`"})),
        ("an unknown endpoint", "GET", "/api/v2/nothing-here", "", String::new(), 404, json!({"statusCode": 404, "errorCode": "not_found", "message": "no endpoint at /api/v2/nothing-here"})),
        ("a method the endpoint lacks", "PUT", "/oauth/token", json_ct, "{}".into(), 405, json!({"statusCode": 405, "errorCode": "method_not_allowed", "message": "PUT is not allowed on /oauth/token"})),
        ("signup without connection", "POST", "/dbconnections/signup", json_ct, json!({"client_id": client_id, "email": "a@example.com", "password": "x"}).to_string(), 400, json!({"message": "Missing required parameter: connection"})),
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
    // Query strings are checked once the token is: a stranger learns nothing from them.
    let authorized = [
        "a page that is not a number",
        "users by email without the email",
    ];
    for (name, method, path, content_type, body, status, expected) in cases(&client_id) {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "auth.example.test");
        if !content_type.is_empty() {
            req = req.header("content-type", content_type);
        }
        if name == "a forged bearer token" {
            req = req.header("authorization", "Bearer eyJhbGciOiJSUzI1NiJ9.e30.c2ln");
        }
        if authorized.contains(&name) {
            req = req.header("authorization", format!("Bearer {token}"));
        }
        let response = block_on(app.clone().oneshot(req.body(Body::from(body)).unwrap())).unwrap();
        assert_eq!(response.status().as_u16(), status, "{name}");
        let bytes = block_on(axum::body::to_bytes(response.into_body(), 1 << 20)).unwrap();
        let actual: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        crate::util::matches(&actual, &expected)
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
