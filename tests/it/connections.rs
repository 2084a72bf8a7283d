//! The connection object over the Management API as the SDKs use it: PATCH semantics (no
//! `options`, no change to them), the top-level attributes round-tripping through create,
//! update, get, list and export, payload validation, and concurrent creates.

use crate::serve::{call, start};
use crate::util::{block_on, customdb_exe};
use serde_json::{Value, json};

#[test]
fn a_patch_without_options_keeps_them_and_attributes_round_trip() {
    let s = start();
    block_on(async {
        let token = s.management_token().await;
        let url = format!("{}/api/v2/connections", s.base);
        let login = "function login(e, p, cb) { cb(null, { user_id: 1, email: e }); }";
        let (status, created) = call("POST", &url, Some(&token), Some(json!({
            "name": "shop-users", "strategy": "auth0", "display_name": "Shop",
            "metadata": {"team": "web"}, "enabled_clients": [s.app_id], "realms": ["shop-users"],
            "is_domain_connection": false, "show_as_button": true,
            "options": {"customScripts": {"login": login}, "configuration": {"DB": "secret-db-url"}, "import_mode": true}}))).await;
        assert_eq!(status, 201, "{created}");
        let id = created["id"].as_str().unwrap().to_string();
        let one = format!("{url}/{id}");
        // A PATCH of an attribute alone leaves options, scripts and configuration as they were.
        let (status, patched) = call(
            "PATCH",
            &one,
            Some(&token),
            Some(json!({"display_name": "Shop users", "realms": null})),
        )
        .await;
        assert_eq!(status, 200, "{patched}");
        let (_, got) = call("GET", &one, Some(&token), None).await;
        assert_eq!(got["display_name"], "Shop users");
        assert!(got.get("realms").is_none(), "{got}");
        assert_eq!(got["metadata"], json!({"team": "web"}));
        assert_eq!(got["enabled_clients"], json!([s.app_id]));
        assert_eq!(got["show_as_button"], true);
        assert_eq!(got["options"]["customScripts"]["login"], login, "{got}");
        assert_eq!(
            got["options"]["configuration"],
            json!({"DB": "[encrypted]"})
        );
        assert_eq!(got["options"]["import_mode"], true);
        let (_, list) = call("GET", &url, Some(&token), None).await;
        let listed = list
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id.as_str())
            .unwrap();
        assert_eq!(listed["display_name"], "Shop users");
        // The script still runs with its configuration.
        let (status, run) = call(
            "POST",
            &format!("{one}/try"),
            Some(&token),
            Some(json!({"action": "login", "args": ["a@example.com", "pw"]})),
        )
        .await;
        assert_eq!(
            (status, run["outcome"].as_str()),
            (200, Some("success")),
            "{run}"
        );
        // Bodies are checked before anything changes.
        for (body, says) in [
            (
                json!({"displayName": "x"}),
                "Additional properties not allowed: displayName",
            ),
            (json!({"name": "renamed"}), "name cannot be changed"),
            (json!({"show_as_button": "yes"}), "show_as_button"),
            (json!({"options": []}), "options must be an object"),
            (
                json!({"options": {"customScripts": {"login": ""}}}),
                "options.customScripts.login must be a non-empty string",
            ),
            (
                json!({"options": {"import_mode": "yes"}}),
                "options.import_mode: invalid type: string \"yes\", expected a boolean",
            ),
            (
                json!({"options": {"cache_invalidate_before": "last week"}}),
                "options.cache_invalidate_before: \"last week\" is not an RFC 3339 time",
            ),
            (
                json!({"options": {"allowed_hosts": "api.example.com"}}),
                "options.allowed_hosts: invalid type: string",
            ),
        ] {
            let (status, answer) = call("PATCH", &one, Some(&token), Some(body.clone())).await;
            assert_eq!(status, 400, "{body}: {answer}");
            assert!(
                answer["message"].as_str().unwrap().contains(says),
                "{body}: {answer}"
            );
        }
        let (status, answer) = call(
            "POST",
            &url,
            Some(&token),
            Some(json!({"name": "x", "strategy": "google-oauth2"})),
        )
        .await;
        assert_eq!(status, 400, "{answer}");
    });
    // Export writes the attributes into database.json.
    let out = tempfile::tempdir().unwrap();
    let status = std::process::Command::new(customdb_exe())
        .args(["export"])
        .arg(out.path())
        .env("CUSTOMDB_SERVER", &s.base)
        .env("CUSTOMDB_CLIENT_ID", &s.client_id)
        .env("CUSTOMDB_CLIENT_SECRET", &s.client_secret)
        .output()
        .unwrap();
    assert!(status.status.success(), "{status:?}");
    let doc: Value = serde_json::from_str(
        &std::fs::read_to_string(
            out.path()
                .join("database-connections/shop-users/database.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(doc["display_name"], "Shop users", "{doc}");
    assert_eq!(doc["metadata"], json!({"team": "web"}), "{doc}");
}

#[test]
fn concurrent_creates_of_one_name_give_one_connection_and_conflicts() {
    let s = start();
    block_on(async {
        let token = s.management_token().await;
        let url = format!("{}/api/v2/connections", s.base);
        let tasks: Vec<_> = (0..12)
            .map(|_| {
                let (url, token) = (url.clone(), token.clone());
                tokio::spawn(async move {
                    call(
                        "POST",
                        &url,
                        Some(&token),
                        Some(json!({"name": "twins", "strategy": "auth0"})),
                    )
                    .await
                })
            })
            .collect();
        let mut statuses = Vec::new();
        for t in tasks {
            let (status, body) = t.await.unwrap();
            if status == 409 {
                assert_eq!(body["errorCode"], "connection_conflict", "{body}");
            }
            statuses.push(status);
        }
        statuses.sort();
        assert_eq!(
            statuses.iter().filter(|s| **s == 201).count(),
            1,
            "{statuses:?}"
        );
        assert!(
            statuses.iter().all(|s| *s == 201 || *s == 409),
            "{statuses:?}"
        );
    });
}

#[test]
fn bodies_of_the_wrong_type_never_reach_a_script() {
    let s = start();
    block_on(async {
        let token = s.management_token().await;
        let users = format!("{}/api/v2/users", s.base);
        for (field, value, found) in [
            ("email", json!(null), "null"),
            ("email", json!([[]]), "array"),
            ("password", json!(0), "number"),
            ("user_metadata", json!("x"), "string"),
        ] {
            let mut body = json!({"connection": "Username-Password-Authentication", "email": "e@example.com", "password": "a password 1"});
            body[field] = value;
            let (status, answer) = call("POST", &users, Some(&token), Some(body)).await;
            assert_eq!(status, 400, "{field}: {answer}");
            assert_eq!(
                answer["message"],
                format!(
                    "Payload validation error: 'Expected type {} but found type {found}' on property {field}",
                    if field == "user_metadata" {
                        "object"
                    } else {
                        "string"
                    }
                ),
                "{answer}"
            );
        }
        let (status, answer) = s
            .call(
                "POST",
                "/dbconnections/signup",
                None,
                Some(json!({
            "client_id": s.app_id, "connection": "Username-Password-Authentication",
            "email": "e@example.com", "password": "a password 1", "user_metadata": ["no"]})),
            )
            .await;
        assert_eq!(status, 400, "{answer}");
        assert_eq!(
            answer["description"],
            "Payload validation error: 'Expected type object but found type array' on property user_metadata"
        );
        // Nothing ran: no script run was logged for these.
        let (_, logs) = s.call("GET", "/api/v2/logs", Some(&token), None).await;
        assert!(!logs.to_string().contains("e@example.com"), "{logs}");
    });
}

#[test]
fn connections_page_in_the_three_shapes_the_sdks_read() {
    let s = start();
    block_on(async {
        let token = s.management_token().await;
        let url = format!("{}/api/v2/connections", s.base);
        for i in 0..4 {
            let (status, _) = call(
                "POST",
                &url,
                Some(&token),
                Some(json!({"name": format!("extra-{i}"), "strategy": "auth0"})),
            )
            .await;
            assert_eq!(status, 201);
        }
        let get = |query: String| {
            let (url, token) = (url.clone(), token.clone());
            async move { call("GET", &format!("{url}?{query}"), Some(&token), None).await }
        };
        // A bare array when nothing is asked.
        let (_, all) = get(String::new()).await;
        assert_eq!(all.as_array().map(Vec::len), Some(5), "{all}");
        // Offset paging with totals: {start, limit, total, connections}, no length.
        let (_, wrapped) = get("page=1&per_page=2&include_totals=true".into()).await;
        assert_eq!(
            (
                wrapped["start"].as_u64(),
                wrapped["limit"].as_u64(),
                wrapped["total"].as_u64()
            ),
            (Some(2), Some(2), Some(5)),
            "{wrapped}"
        );
        assert_eq!(wrapped["connections"].as_array().map(Vec::len), Some(2));
        assert!(wrapped.get("length").is_none(), "{wrapped}");
        // Checkpoints win over include_totals, as auth0-python sends them; next is absent at the end.
        let mut seen = Vec::new();
        let mut query = "include_totals=true&take=2".to_string();
        loop {
            let (status, page) = get(query.clone()).await;
            assert_eq!(status, 200, "{page}");
            assert!(page.get("total").is_none(), "{page}");
            for c in page["connections"].as_array().unwrap() {
                seen.push(c["name"].as_str().unwrap().to_string());
            }
            match page["next"].as_str() {
                Some(next) => query = format!("include_totals=true&take=2&from={next}"),
                None => break,
            }
        }
        let names: Vec<String> = all
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            seen, names,
            "checkpoints visit every connection once, in order"
        );
        // Filters.
        let (_, one) = get("name=extra-2&strategy=ad&strategy=auth0&fields=id,name".into()).await;
        assert_eq!(one.as_array().map(Vec::len), Some(1), "{one}");
        assert_eq!(
            one[0].as_object().unwrap().keys().collect::<Vec<_>>(),
            vec!["id", "name"],
            "{one}"
        );
        let (_, none) = get("strategy=google-oauth2".into()).await;
        assert_eq!(none, json!([]));
        let (status, bad) = get("per_page=1000".into()).await;
        assert_eq!(
            (status, bad["errorCode"].as_str()),
            (400, Some("invalid_query_string")),
            "{bad}"
        );
        let (status, _) = get("page=20&per_page=50".into()).await;
        assert_eq!(status, 400, "the first 1000 only");
    });
}

#[test]
fn users_page_as_auth0_does() {
    let s = start();
    block_on(async {
        let token = s.management_token().await;
        s.log_alice_in().await;
        let get = |query: &str| {
            let (url, token) = (format!("{}/api/v2/users?{query}", s.base), token.clone());
            async move { call("GET", &url, Some(&token), None).await }
        };
        let (_, bare) = get("").await;
        assert_eq!(bare.as_array().map(Vec::len), Some(1), "{bare}");
        let (_, wrapped) = get("page=0&per_page=50&include_totals=true").await;
        let keys: Vec<&String> = wrapped.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            ["start", "limit", "length", "total", "users"],
            "{wrapped}"
        );
        let (_, past) = get("page=1&per_page=50&include_totals=true").await;
        assert_eq!(
            past["users"],
            json!([]),
            "auth0-python stops at an empty page: {past}"
        );
        let (status, answer) = get("page=20&per_page=50").await;
        assert_eq!(status, 400);
        assert!(
            answer["message"]
                .as_str()
                .unwrap()
                .starts_with("You can only page through the first 1000 records"),
            "{answer}"
        );
        assert_eq!(get("per_page=101").await.0, 400);
    });
}
