//! Abuse resistance against a real `customdb serve` and its store: brute-force blocks per identifier and
//! address (behind a trusted proxy and without one), every way a block ends, the settings and
//! user-blocks endpoints in Auth0's shapes, and counting under concurrent attempts.

use crate::serve::{Server, start_with};
use crate::util::block_on;
use serde_json::{Value, json};

const ALICE: &str = "alice@example.com";
const RIGHT: &str = "correct horse battery staple";

/// A password-realm login of `user` as the client at `ip` (through the trusted proxy's
/// `auth0-forwarded-for`, or as the peer itself with `None`).
async fn login_from(s: &Server, ip: Option<&str>, user: &str, password: &str) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .post(format!("{}/oauth/token", s.base))
        .header("content-type", "application/json")
        .body(
            json!({"grant_type": "http://auth0.com/oauth/grant-type/password-realm",
                   "realm": "Username-Password-Authentication", "client_id": s.app_id,
                   "username": user, "password": password})
            .to_string(),
        );
    if let Some(ip) = ip {
        request = request.header("auth0-forwarded-for", ip);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn fail(s: &Server, ip: &str, times: usize) {
    for _ in 0..times {
        let (status, body) = login_from(s, Some(ip), ALICE, "wrong").await;
        assert_eq!(status, 403, "{body}");
    }
}

fn is_blocked(answer: &(u16, Value)) -> bool {
    answer.0 == 429 && answer.1["error"] == "too_many_attempts"
}

#[test]
fn brute_force_blocks_an_identifier_from_an_address_until_it_is_lifted() {
    let s = start_with(
        tempfile::tempdir().unwrap(),
        &["--trusted-proxy", "127.0.0.0/8"],
    );
    block_on(async {
        let mgmt = s.management_token().await;
        let token = Some(mgmt.as_str());
        let settings = "/api/v2/attack-protection/brute-force-protection";
        let (status, body) = s.call("GET", settings, token, None).await;
        assert_eq!(
            (status, body),
            (
                200,
                json!({"enabled": true, "shields": ["block", "user_notification"], "allowlist": [],
                         "mode": "count_per_identifier_and_ip", "max_attempts": 10})
            )
        );
        let (status, body) = s
            .call("PATCH", settings, token, Some(json!({"max_attempts": 0})))
            .await;
        assert_eq!(
            (status, body["message"].as_str()),
            (
                400,
                Some("Payload validation error: max_attempts must be between 1 and 100, not 0")
            )
        );
        let (status, body) = s
            .call(
                "PATCH",
                settings,
                token,
                Some(json!({"allowlist": ["not an ip"]})),
            )
            .await;
        assert_eq!(status, 400, "{body}");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("'not an ip' is not an IPv4"),
            "{body}"
        );
        let (status, body) = s
            .call(
                "PATCH",
                settings,
                token,
                Some(json!({"max_attempts": 3, "allowlist": ["198.51.100.0/24"]})),
            )
            .await;
        assert_eq!(
            (status, body["max_attempts"].clone()),
            (200, json!(3)),
            "{body}"
        );

        // Three failures from one address block it there, even for the right password;
        // another address, and the allow-listed block, still log in.
        fail(&s, "203.0.113.5", 3).await;
        let refused = login_from(&s, Some("203.0.113.5"), ALICE, RIGHT).await;
        assert!(is_blocked(&refused), "{refused:?}");
        assert!(
            refused.1["error_description"]
                .as_str()
                .unwrap()
                .contains("blocked after multiple consecutive login attempts")
        );
        let refused = login_from(&s, Some("203.0.113.5"), "ALICE@example.com", RIGHT).await;
        assert!(
            is_blocked(&refused),
            "the identifier matches without case: {refused:?}"
        );
        assert_eq!(
            login_from(&s, Some("203.0.113.6"), ALICE, RIGHT).await.0,
            200
        );
        for _ in 0..4 {
            login_from(&s, Some("198.51.100.9"), ALICE, "wrong").await;
        }
        assert_eq!(
            login_from(&s, Some("198.51.100.9"), ALICE, RIGHT).await.0,
            200,
            "allow-listed"
        );

        // The block is logged once, with the address, and listed in Auth0's shape.
        let (_, logs) = s
            .call("GET", "/api/v2/logs?q=type:limit_wc", token, None)
            .await;
        let logs = logs.as_array().unwrap().clone();
        assert_eq!(logs.len(), 1, "{logs:?}");
        assert_eq!(logs[0]["ip"], "203.0.113.5");
        assert_eq!(logs[0]["user_name"], ALICE);
        let expected = json!({"blocked_for": [{"identifier": ALICE, "ip": "203.0.113.5", "connection": "Username-Password-Authentication"}]});
        let by_identifier = format!("/api/v2/user-blocks?identifier={ALICE}");
        assert_eq!(
            s.call("GET", &by_identifier, token, None).await,
            (200, expected.clone())
        );
        let (_, users) = s
            .call(
                "GET",
                &format!("/api/v2/users-by-email?email={ALICE}"),
                token,
                None,
            )
            .await;
        let alice = users[0]["user_id"].as_str().unwrap().to_string();
        let by_user = format!("/api/v2/user-blocks/{}", alice.replace('|', "%7C"));
        assert_eq!(
            s.call("GET", &by_user, token, None).await,
            (200, expected.clone())
        );
        assert_eq!(
            s.call(
                "GET",
                "/api/v2/user-blocks?identifier=nobody@example.com",
                token,
                None
            )
            .await,
            (200, json!({"blocked_for": []}))
        );
        let (status, body) = s
            .call("GET", "/api/v2/user-blocks/auth0%7Cnobody", token, None)
            .await;
        assert_eq!(
            (status, body["message"].as_str()),
            (404, Some("User not found."))
        );
        let (status, _) = s.call("GET", "/api/v2/user-blocks", token, None).await;
        assert_eq!(status, 400, "identifier is required");

        // Monitoring only (no block shield): listed, but not enforced.
        s.call("PATCH", settings, token, Some(json!({"shields": []})))
            .await;
        assert_eq!(
            login_from(&s, Some("203.0.113.5"), ALICE, RIGHT).await.0,
            200
        );
        assert_eq!(
            s.call(
                "GET",
                &format!("{by_identifier}&consider_brute_force_enablement=true"),
                token,
                None
            )
            .await,
            (200, json!({"blocked_for": []}))
        );
        s.call(
            "PATCH",
            settings,
            token,
            Some(json!({"shields": ["block"]})),
        )
        .await;

        // An administrator lifts it, by user id or by identifier.
        fail(&s, "203.0.113.5", 3).await;
        assert!(is_blocked(
            &login_from(&s, Some("203.0.113.5"), ALICE, RIGHT).await
        ));
        assert_eq!(s.call("DELETE", &by_user, token, None).await.0, 204);
        assert_eq!(
            login_from(&s, Some("203.0.113.5"), ALICE, RIGHT).await.0,
            200
        );
        fail(&s, "203.0.113.5", 3).await;
        assert!(is_blocked(
            &login_from(&s, Some("203.0.113.5"), ALICE, RIGHT).await
        ));
        assert_eq!(s.call("DELETE", &by_identifier, token, None).await.0, 204);
        assert_eq!(
            login_from(&s, Some("203.0.113.5"), ALICE, RIGHT).await.0,
            200
        );

        // A success from the address resets its count.
        fail(&s, "203.0.113.5", 2).await;
        assert_eq!(
            login_from(&s, Some("203.0.113.5"), ALICE, RIGHT).await.0,
            200
        );
        fail(&s, "203.0.113.5", 2).await;
        assert_eq!(
            login_from(&s, Some("203.0.113.5"), ALICE, RIGHT).await.0,
            200
        );

        // Raising the threshold ends a block; so does a password change.
        fail(&s, "203.0.113.5", 3).await;
        assert!(is_blocked(
            &login_from(&s, Some("203.0.113.5"), ALICE, RIGHT).await
        ));
        s.call("PATCH", settings, token, Some(json!({"max_attempts": 5})))
            .await;
        assert_eq!(
            login_from(&s, Some("203.0.113.5"), ALICE, RIGHT).await.0,
            200
        );
        s.call("PATCH", settings, token, Some(json!({"max_attempts": 3})))
            .await;
        fail(&s, "203.0.113.5", 3).await;
        assert!(is_blocked(
            &login_from(&s, Some("203.0.113.5"), ALICE, RIGHT).await
        ));
        let user = format!("/api/v2/users/{}", alice.replace('|', "%7C"));
        let (status, body) = s
            .call(
                "PATCH",
                &user,
                token,
                Some(json!({"password": "a brand new passphrase"})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            login_from(&s, Some("203.0.113.5"), ALICE, "a brand new passphrase")
                .await
                .0,
            200
        );

        // Account lockout: counted per identifier from every address.
        s.call(
            "PATCH",
            settings,
            token,
            Some(json!({"mode": "count_per_identifier"})),
        )
        .await;
        fail(&s, "203.0.113.1", 1).await;
        fail(&s, "203.0.113.2", 1).await;
        fail(&s, "203.0.113.3", 1).await;
        assert!(is_blocked(
            &login_from(&s, Some("192.0.2.44"), ALICE, "a brand new passphrase").await
        ));
        let (_, listed) = s.call("GET", &by_identifier, token, None).await;
        assert_eq!(
            listed,
            json!({"blocked_for": [{"identifier": ALICE, "connection": "Username-Password-Authentication"}]})
        );
    });
}

#[test]
fn concurrent_failures_all_count_and_forwarding_is_believed_only_from_trusted_proxies() {
    let s = start_with(
        tempfile::tempdir().unwrap(),
        &["--trusted-proxy", "127.0.0.1"],
    );
    block_on(async {
        let attempts =
            (0..16).map(|_| login_from(&s, Some("203.0.113.77"), "bob@example.com", "wrong"));
        for (status, body) in futures::future::join_all(attempts).await {
            assert!(status == 403 || status == 429, "{status} {body}");
        }
        // At least 10 of the 16 were counted, whatever their interleaving: bob is blocked there.
        let answer = login_from(&s, Some("203.0.113.77"), "bob@example.com", "hunter22").await;
        assert!(is_blocked(&answer), "{answer:?}");

        // X-Forwarded-For: the nearest address that is not a trusted proxy is the client.
        let response = reqwest::Client::new()
            .post(format!("{}/oauth/token", s.base))
            .header("content-type", "application/json")
            .header("x-forwarded-for", "10.9.9.9, 198.51.100.23, 127.0.0.1")
            .body(json!({"grant_type": "password", "client_id": s.app_id, "username": "carol@example.com", "password": "x"}).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403);
        let mgmt = s.management_token().await;
        let (_, logs) = s
            .call(
                "GET",
                "/api/v2/logs?q=user_name:carol@example.com",
                Some(&mgmt),
                None,
            )
            .await;
        assert_eq!(logs[0]["ip"], "198.51.100.23", "{logs}");
    });
    // Without --trusted-proxy, forwarding headers are whatever the client wrote: ignored.
    let s = start_with(tempfile::tempdir().unwrap(), &[]);
    block_on(async {
        for n in 0..10 {
            let ip = format!("203.0.113.{n}");
            login_from(&s, Some(&ip), ALICE, "wrong").await;
        }
        let answer = login_from(&s, Some("192.0.2.1"), ALICE, RIGHT).await;
        assert!(
            is_blocked(&answer),
            "all ten came from the peer: {answer:?}"
        );
        let mgmt = s.management_token().await;
        let (_, logs) = s
            .call("GET", "/api/v2/logs?q=type:limit_wc", Some(&mgmt), None)
            .await;
        assert_eq!(logs[0]["ip"], "127.0.0.1", "{logs}");
    });
}

/// Sets options of the demo connection; its scripts and configuration (`[encrypted]` keeps
/// the stored values) are sent back as read.
async fn set_options(s: &Server, token: &str, options: Value) {
    let (status, connection) = s
        .call("GET", "/api/v2/connections/con_demo", Some(token), None)
        .await;
    assert_eq!(status, 200, "{connection}");
    let mut merged = connection["options"].clone();
    for (key, value) in options.as_object().unwrap() {
        merged[key] = value.clone();
    }
    let (status, body) = s
        .call(
            "PATCH",
            "/api/v2/connections/con_demo",
            Some(token),
            Some(json!({"options": merged})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

async fn signup(s: &Server, email: &str, password: &str) -> (u16, Value) {
    s.call(
        "POST",
        "/dbconnections/signup",
        None,
        Some(json!({
        "client_id": s.app_id, "connection": "Username-Password-Authentication",
        "email": email, "password": password, "user_metadata": {"first": "Dorothea"}})),
    )
    .await
}

#[test]
fn the_password_policy_applies_to_new_passwords_and_never_to_a_migrating_login() {
    let s = start_with(tempfile::tempdir().unwrap(), &[]);
    block_on(async {
        let mgmt = s.management_token().await;
        set_options(
            &s,
            &mgmt,
            json!({"passwordPolicy": "good",
            "password_dictionary": {"enable": true, "dictionary": ["Winter2026!"]},
            "password_no_personal_info": {"enable": true}}),
        )
        .await;
        let (status, connection) = s
            .call("GET", "/api/v2/connections/con_demo", Some(&mgmt), None)
            .await;
        assert_eq!(status, 200);
        assert_eq!(
            connection["options"]["passwordPolicy"], "good",
            "kept as sent"
        );
        assert!(
            connection["options"]["customScripts"]["login"].is_string(),
            "scripts kept"
        );

        // Too weak: Auth0's body, rules checked one by one, and the policy as text.
        let (status, body) = signup(&s, "dora@example.com", "abcdefgh!").await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(
            (body["name"].as_str(), body["code"].as_str()),
            (Some("PasswordStrengthError"), Some("invalid_password"))
        );
        assert_eq!(body["message"], "Password is too weak");
        assert_eq!(body["description"]["verified"], false);
        assert_eq!(
            body["description"]["rules"][1]["items"][1],
            json!({"message": "upper case letters (A-Z)", "code": "upperCase", "verified": false})
        );
        assert!(
            body["policy"].as_str().unwrap().starts_with(
                "* At least 8 characters in length\n* Contain at least 3 of the following 4 types"
            ),
            "{body}"
        );
        // Common, custom and personal passwords.
        let (status, body) = signup(&s, "dora@example.com", "winter2026!").await;
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some("password_dictionary_error")),
            "{body}"
        );
        let (status, body) = signup(&s, "dora@example.com", "Hello-Dorothea-1").await;
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some("password_no_user_info_error")),
            "{body}"
        );
        let (status, body) = signup(&s, "dora@example.com", "Dora@Example-9").await;
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some("password_no_user_info_error")),
            "the email's local part: {body}"
        );
        let (_, logs) = s
            .call("GET", "/api/v2/logs?q=type:fs", Some(&mgmt), None)
            .await;
        assert_eq!(
            logs.as_array().unwrap().len(),
            4,
            "each refusal is a failed signup: {logs}"
        );
        // A strong one passes, and the user can log in with it.
        let (status, body) = signup(&s, "dora@example.com", "Tr0ub4dor&3x").await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            login_from(&s, None, "dora@example.com", "Tr0ub4dor&3x")
                .await
                .0,
            200
        );

        // A password change through the Management API follows the policy too.
        s.log_alice_in().await;
        let (_, users) = s
            .call(
                "GET",
                "/api/v2/users-by-email?email=alice@example.com",
                Some(&mgmt),
                None,
            )
            .await;
        let alice = format!(
            "/api/v2/users/{}",
            users[0]["user_id"].as_str().unwrap().replace('|', "%7C")
        );
        let (status, body) = s
            .call(
                "PATCH",
                &alice,
                Some(&mgmt),
                Some(json!({"password": "short"})),
            )
            .await;
        assert_eq!(
            (status, body["message"].as_str()),
            (400, Some("PasswordStrengthError: Password is too weak")),
            "{body}"
        );
        assert_eq!(
            login_from(&s, None, ALICE, RIGHT).await.0,
            200,
            "the old password still works"
        );

        // And so does a reset through a ticket.
        let (status, body) = s
            .call(
                "POST",
                "/api/v2/tickets/password-change",
                Some(&mgmt),
                Some(json!({"email": ALICE, "connection_id": "con_demo"})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        let url = body["ticket"].as_str().unwrap();
        let ticket = url.split("ticket=").nth(1).unwrap().trim_end_matches('#');
        let reset = |password: &str| {
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap()
                .post(format!("{}/lo/reset", s.base))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!(
                    "ticket={ticket}&newPassword={password}&confirmNewPassword={password}"
                ))
                .send()
        };
        let refused = reset("weakling").await.unwrap();
        assert_eq!(refused.status().as_u16(), 400);
        let text = refused.text().await.unwrap();
        assert!(
            text.contains("Password is too weak") && text.contains("At least 8 characters"),
            "{text}"
        );
        let done = reset("Str0ng-enough").await.unwrap();
        assert!(
            done.status().is_redirection() || done.status().is_success(),
            "{}",
            done.status()
        );
        assert_eq!(login_from(&s, None, ALICE, "Str0ng-enough").await.0, 200);

        // Import mode under the strictest policy: bob's legacy password is weak, yet his first
        // login migrates him and later logins check it locally.
        set_options(
            &s,
            &mgmt,
            json!({"import_mode": true, "passwordPolicy": "excellent"}),
        )
        .await;
        for _ in 0..2 {
            let (status, body) = login_from(&s, None, "bob@example.com", "hunter22").await;
            assert_eq!(status, 200, "{body}");
        }
        let (_, users) = s
            .call(
                "GET",
                "/api/v2/users-by-email?email=bob@example.com",
                Some(&mgmt),
                None,
            )
            .await;
        let bob = format!(
            "/api/v2/users/{}",
            users[0]["user_id"].as_str().unwrap().replace('|', "%7C")
        );
        let (status, body) = s
            .call(
                "PATCH",
                &bob,
                Some(&mgmt),
                Some(json!({"password": "hunter23"})),
            )
            .await;
        assert_eq!(
            (status, body["message"].as_str()),
            (400, Some("PasswordStrengthError: Password is too weak")),
            "{body}"
        );
    });
}

/// Reads until the server closes the connection; the bound only keeps a broken server from
/// hanging the suite.
async fn closed_by_server(stream: &mut tokio::net::TcpStream) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let mut seen = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(60), read)
        .await
        .expect("the server never closed the connection");
    seen
}

#[test]
fn idle_and_slow_connections_are_closed_and_the_rest_still_served() {
    let s = start_with(
        tempfile::tempdir().unwrap(),
        &["--header-timeout-secs", "1", "--max-connections", "40"],
    );
    block_on(async {
        use tokio::io::AsyncWriteExt;
        let address = s.base.trim_start_matches("http://").to_string();
        let mut idle = Vec::new();
        for _ in 0..200 {
            idle.push(tokio::net::TcpStream::connect(&address).await.unwrap());
        }
        let mut slow = Vec::new();
        for _ in 0..20 {
            let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
            slow.push(tokio::spawn(async move {
                // Headers a byte at a time, never finished.
                let _ = stream
                    .write_all(b"POST /oauth/token HTTP/1.1\r\nHost: localhost\r\n")
                    .await;
                for _ in 0..600 {
                    if stream.write_all(b"X").await.is_err() {
                        return true;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                false
            }));
        }
        // Far more connections than the cap are held open, yet a login gets through.
        let (status, body) = login_from(&s, None, ALICE, RIGHT).await;
        assert_eq!(status, 200, "{body}");
        for stream in &mut idle {
            assert!(
                closed_by_server(stream).await.is_empty(),
                "an idle connection is closed without an answer"
            );
        }
        for task in slow {
            assert!(
                task.await.unwrap(),
                "a slowloris connection was kept open for a minute"
            );
        }
        // A keep-alive connection that goes idle after its request is closed too.
        let mut kept = tokio::net::TcpStream::connect(&address).await.unwrap();
        kept.write_all(b"GET /.well-known/jwks.json HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .unwrap();
        let answer = String::from_utf8(closed_by_server(&mut kept).await).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    });
}

#[test]
fn each_client_of_the_open_endpoints_has_a_bucket() {
    let s = start_with(
        tempfile::tempdir().unwrap(),
        &[
            "--rate-limit-per-ip",
            "0.5",
            "--rate-limit-burst",
            "3",
            "--trusted-proxy",
            "127.0.0.1",
        ],
    );
    block_on(async {
        let post = |ip: &'static str, path: &'static str| {
            let body = json!({"client_id": s.app_id, "connection": "Username-Password-Authentication",
                              "email": "nobody@example.com", "grant_type": "password",
                              "username": "nobody@example.com", "password": "x"});
            reqwest::Client::new()
                .post(format!("{}{path}", s.base))
                .header("content-type", "application/json")
                .header("auth0-forwarded-for", ip)
                .body(body.to_string())
                .send()
        };
        // Three requests of any kind (failed logins, password-change requests) fill a bucket.
        assert_eq!(
            post("203.0.113.9", "/oauth/token").await.unwrap().status(),
            403
        );
        assert_eq!(
            post("203.0.113.9", "/dbconnections/change_password")
                .await
                .unwrap()
                .status(),
            200
        );
        assert_eq!(
            post("203.0.113.9", "/oauth/token").await.unwrap().status(),
            403
        );
        let refused = post("203.0.113.9", "/dbconnections/signup").await.unwrap();
        assert_eq!(refused.status(), 429);
        assert_eq!(refused.headers()["retry-after"], "2");
        assert!(refused.headers().contains_key("x-request-id"));
        let body: Value = serde_json::from_str(&refused.text().await.unwrap()).unwrap();
        assert_eq!(body["error"], "too_many_requests", "{body}");
        // Another client, and the endpoints that need a token, are not affected.
        assert_eq!(
            post("203.0.113.10", "/oauth/token").await.unwrap().status(),
            403
        );
        let mgmt = s.management_token().await;
        for _ in 0..5 {
            assert_eq!(
                s.call("GET", "/api/v2/logs", Some(&mgmt), None).await.0,
                200
            );
        }
    });
}

#[test]
fn anonymous_password_change_requests_store_nothing_for_unknown_or_invalid_emails() {
    let s = start_with(tempfile::tempdir().unwrap(), &[]);
    block_on(async {
        let request = |email: String| {
            s.call("POST", "/dbconnections/change_password", None, Some(json!({
                "client_id": s.app_id, "connection": "Username-Password-Authentication", "email": email})))
        };
        let sentence = Value::String("We've just sent you an email to reset your password.".into());
        for email in [
            "not an email".to_string(),
            format!("{}@example.com", "x".repeat(10_000)),
        ] {
            let (status, body) = request(email).await;
            assert_eq!(
                (status, body["error"].as_str()),
                (400, Some("invalid_request")),
                "{body}"
            );
            assert!(
                body["error_description"]
                    .as_str()
                    .unwrap()
                    .starts_with("email must"),
                "{body}"
            );
        }
        for n in 0..30 {
            assert_eq!(
                request(format!("stranger{n}@example.com")).await,
                (200, sentence.clone())
            );
        }
        assert_eq!(
            request(ALICE.to_string()).await,
            (200, sentence.clone()),
            "the same answer"
        );
        let mgmt = s.management_token().await;
        let (_, failed) = s
            .call(
                "GET",
                "/api/v2/logs?q=type:fcpr&per_page=100",
                Some(&mgmt),
                None,
            )
            .await;
        assert_eq!(failed.as_array().unwrap().len(), 30);
        let (_, done) = s
            .call("GET", "/api/v2/logs?q=type:scpr", Some(&mgmt), None)
            .await;
        assert_eq!(done.as_array().unwrap().len(), 1);
        let store = rusqlite::Connection::open(s.data_folder().join("store.db")).unwrap();
        let tickets: i64 = store
            .query_row("SELECT count(*) FROM tickets", [], |r| r.get(0))
            .unwrap();
        assert_eq!(tickets, 1, "only alice's request made a ticket");
    });
}

#[test]
fn retention_forgets_old_and_excess_log_events_and_runs_and_keeps_the_rest() {
    use customdb::domain::events::{Caller, LogType};
    use customdb::store::Retention;
    let t = crate::util::temp_store();
    for tenant in ["a", "b"] {
        t.store.ensure_tenant(tenant).unwrap();
    }
    let event = |tenant: &str| {
        t.store
            .log(
                tenant,
                LogType::SuccessLogin,
                Some("c"),
                None,
                None,
                Caller::default(),
            )
            .wait()
            .unwrap()
    };
    let run = |tenant: &str| {
        let exec = customdb::outcome::Execution::failed(
            customdb::outcome::Outcome::Error,
            customdb::outcome::ScriptError::system("Error", "x"),
        );
        t.store
            .record_run(tenant, "c", customdb::script::Action::Login, &exec)
            .wait()
            .unwrap();
    };
    // 40 days ago: 3 events and 3 runs of a; today: 8 of each for a, 2 for b.
    for _ in 0..3 {
        event("a");
        run("a");
    }
    t.clock.advance(40 * 86_400);
    let mut kept = Vec::new();
    for _ in 0..8 {
        kept.push(event("a").id);
        run("a");
    }
    for _ in 0..2 {
        event("b");
        run("b");
    }
    let retention = Retention {
        log_days: 30,
        log_events_per_tenant: 5,
        run_days: 7,
        runs_per_tenant: 6,
    };
    let pruned = t.store.prune(retention).unwrap();
    assert_eq!((pruned.log_events, pruned.runs), (3 + 3, 3 + 2));
    let count = |table: &str, tenant: &str| -> i64 {
        let db = rusqlite::Connection::open(&t.path).unwrap();
        db.query_row(
            &format!("SELECT count(*) FROM {table} WHERE tenant = ?1"),
            [tenant],
            |r| r.get(0),
        )
        .unwrap()
    };
    assert_eq!(
        (count("log_events", "a"), count("script_runs", "a")),
        (5, 6)
    );
    assert_eq!(
        (count("log_events", "b"), count("script_runs", "b")),
        (2, 2),
        "another tenant's are its own"
    );
    assert!(
        t.store.log_event("a", kept[7]).unwrap().is_some(),
        "the newest stay"
    );
    assert!(
        t.store.log_event("a", kept[2]).unwrap().is_none(),
        "the oldest beyond the count go"
    );
    assert_eq!(
        t.store.prune(retention).unwrap(),
        Default::default(),
        "nothing more to forget"
    );
}

#[test]
fn serve_prunes_in_the_background() {
    let s = start_with(
        tempfile::tempdir().unwrap(),
        &[
            "--log-events-kept-per-tenant",
            "3",
            "--prune-interval-secs",
            "1",
        ],
    );
    block_on(async {
        for _ in 0..10 {
            login_from(&s, None, ALICE, "wrong").await;
        }
        let mgmt = s.management_token().await;
        let mut total = usize::MAX;
        for _ in 0..100 {
            let (_, logs) = s
                .call("GET", "/api/v2/logs?per_page=100", Some(&mgmt), None)
                .await;
            total = logs.as_array().unwrap().len();
            if total <= 3 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert!(total <= 3, "{total} log events kept");
    });
}

/// A small tmpfs mounted for one test, unmounted when dropped.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(megabytes: u32) -> Tmpfs {
        assert!(
            rustix::process::geteuid().is_root(),
            "this test mounts a small tmpfs to fill a disk and must run as root (CI does)"
        );
        let dir =
            std::env::temp_dir().join(format!("customdb-full-{}", crate::util::unique("disk")));
        std::fs::create_dir_all(&dir).unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m"), "tmpfs"])
            .arg(&dir)
            .status()
            .expect("mount(8) runs");
        assert!(
            status.success(),
            "cannot mount a tmpfs at {}: {status}",
            dir.display()
        );
        Tmpfs(dir)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// Fills the file system `dir` is on; the file returned frees the space when removed.
fn fill(dir: &std::path::Path) -> std::path::PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).unwrap();
    let chunk = vec![0u8; 64 << 10];
    while file.write_all(&chunk).is_ok() {}
    let small = [0u8; 512];
    while file.write_all(&small).is_ok() {}
    let _ = file.sync_all();
    path
}

#[test]
fn a_full_disk_is_a_503_that_loses_nothing_and_writes_resume_when_space_returns() {
    let disk = Tmpfs::mount(32);
    let s = start_with(tempfile::tempdir_in(&disk.0).unwrap(), &[]);
    let user = block_on(async {
        s.log_alice_in().await;
        let mgmt = s.management_token().await;
        let (_, users) = s
            .call(
                "GET",
                "/api/v2/users-by-email?email=alice@example.com",
                Some(&mgmt),
                None,
            )
            .await;
        let path = format!(
            "/api/v2/users/{}",
            users[0]["user_id"].as_str().unwrap().replace('|', "%7C")
        );
        let (status, _) = s
            .call(
                "PATCH",
                &path,
                Some(&mgmt),
                Some(json!({"app_metadata": {"before": 1}})),
            )
            .await;
        assert_eq!(status, 200);

        let filler = fill(&disk.0);
        let (status, body) = s
            .call(
                "PATCH",
                &path,
                Some(&mgmt),
                Some(json!({"app_metadata": {"during": 1}})),
            )
            .await;
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["errorCode"], "temporarily_unavailable", "{body}");
        assert!(
            body["message"].as_str().unwrap().contains("request id"),
            "{body}"
        );
        let (status, body) = s
            .call(
                "POST",
                "/dbconnections/signup",
                None,
                Some(json!({
            "client_id": s.app_id, "connection": "Username-Password-Authentication",
            "email": "full@example.com", "password": "Disk-full-1"})),
            )
            .await;
        // A signup writes the tenant's legacy database (on the same disk) first: its script
        // fails (500, Auth0's words), or the store refuses (503). Neither acknowledges it.
        assert!(status == 503 || status == 500, "{status} {body}");
        // Reads still answer from what is stored.
        let (status, read) = s.call("GET", &path, Some(&mgmt), None).await;
        assert_eq!(
            (status, read["app_metadata"].clone()),
            (200, json!({"before": 1})),
            "{read}"
        );

        // Space returns: the same write succeeds, without a restart.
        std::fs::remove_file(filler).unwrap();
        let (status, body) = s
            .call(
                "PATCH",
                &path,
                Some(&mgmt),
                Some(json!({"app_metadata": {"after": 1}})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        path
    });
    // Killed with SIGKILL and started again on the same folder: every acknowledged write is there.
    let s = start_with(s.kill(), &[]);
    block_on(async {
        let mgmt = s.management_token().await;
        let (status, read) = s.call("GET", &user, Some(&mgmt), None).await;
        assert_eq!(
            (status, read["app_metadata"].clone()),
            (200, json!({"before": 1, "after": 1})),
            "{read}"
        );
    });
    let store = rusqlite::Connection::open(s.data_folder().join("store.db")).unwrap();
    let check: String = store
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
}

const THROTTLED: &str = "We have detected suspicious login behavior and further attempts will be blocked. Please contact the administrator.";

#[test]
fn suspicious_ip_throttling_refuses_an_address_that_spent_its_budget_until_it_is_lifted() {
    let s = start_with(
        tempfile::tempdir().unwrap(),
        &["--trusted-proxy", "127.0.0.0/8"],
    );
    block_on(async {
        let mgmt = s.management_token().await;
        let token = Some(mgmt.as_str());
        let settings = "/api/v2/attack-protection/suspicious-ip-throttling";
        let (status, body) = s.call("GET", settings, token, None).await;
        assert_eq!(
            (status, body),
            (
                200,
                json!({"enabled": true, "shields": ["admin_notification", "block"], "allowlist": [],
                       "stage": {"pre-login": {"max_attempts": 100, "rate": 864000},
                                 "pre-user-registration": {"max_attempts": 50, "rate": 1728000}}})
            )
        );
        for (patch, message) in [
            (
                json!({"stage": {"pre-login": {"max_attempts": 0}}}),
                "Payload validation error: stage.pre-login.max_attempts must be between 1 and 2500, not 0",
            ),
            (
                json!({"stage": {"pre-user-registration": {"rate": 5}}}),
                "Payload validation error: stage.pre-user-registration.rate must be between 1200 and 86400000 milliseconds, not 5",
            ),
            (
                json!({"shields": ["shout"]}),
                "Payload validation error: shields[0] unknown variant `shout`",
            ),
            (
                json!({"enabled": "yes"}),
                "Payload validation error: enabled",
            ),
            (
                json!({"bogus": 1}),
                "Payload validation error: bogus unknown field",
            ),
        ] {
            let (status, body) = s.call("PATCH", settings, token, Some(patch.clone())).await;
            assert_eq!(status, 400, "{patch} {body}");
            let text = body["message"].as_str().unwrap_or_default();
            assert!(text.starts_with(message), "{patch}: {text}");
        }
        // A partial PATCH of one stage keeps the rest of it and of the settings.
        let (status, body) = s
            .call(
                "PATCH",
                settings,
                token,
                Some(json!({"stage": {"pre-login": {"max_attempts": 3}}})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body["stage"],
            json!({"pre-login": {"max_attempts": 3, "rate": 864000},
                   "pre-user-registration": {"max_attempts": 50, "rate": 1728000}})
        );
        assert_eq!(body["enabled"], true);
        assert_eq!(s.call("GET", settings, token, None).await.1, body);

        // Three failed logins from one address, each of another user (brute force, per
        // identifier, never fires): the address's budget is spent.
        let attacker = "198.51.100.7";
        for n in 0..3 {
            let answer = login_from(&s, Some(attacker), &format!("u{n}@example.com"), "x").await;
            assert_eq!(answer.0, 403, "{answer:?}");
        }
        let answer = login_from(&s, Some(attacker), ALICE, RIGHT).await;
        assert_eq!(
            answer,
            (
                429,
                json!({"error": "too_many_attempts", "error_description": THROTTLED})
            )
        );
        // Another address is not touched.
        assert_eq!(
            login_from(&s, Some("198.51.100.8"), ALICE, RIGHT).await.0,
            200
        );
        let (_, logs) = s
            .call("GET", "/api/v2/logs?q=type:limit_mu", token, None)
            .await;
        let logs = logs.as_array().unwrap();
        assert_eq!(logs.len(), 1, "the address hit its limit once: {logs:?}");
        assert_eq!(logs[0]["ip"], attacker);

        let block = format!("/api/v2/anomaly/blocks/ips/{attacker}");
        assert_eq!(s.call("GET", &block, token, None).await.0, 200);
        let (status, body) = s
            .call(
                "GET",
                "/api/v2/anomaly/blocks/ips/198.51.100.8",
                token,
                None,
            )
            .await;
        assert_eq!(
            (status, body["errorCode"].as_str()),
            (404, Some("not_found"))
        );
        // An end user's token, or none, reads nothing.
        assert_eq!(s.call("GET", &block, None, None).await.0, 401);
        assert_eq!(s.call("DELETE", &block, token, None).await.0, 204);
        assert_eq!(s.call("GET", &block, token, None).await.0, 404);
        assert_eq!(login_from(&s, Some(attacker), ALICE, RIGHT).await.0, 200);

        // Allow-listed addresses and a disabled shield count nothing.
        let (status, body) = s
            .call(
                "PATCH",
                settings,
                token,
                Some(json!({"allowlist": ["198.51.100.0/24"]})),
            )
            .await;
        assert_eq!(
            (status, &body["allowlist"]),
            (200, &json!(["198.51.100.0/24"]))
        );
        for n in 0..4 {
            login_from(&s, Some(attacker), &format!("v{n}@example.com"), "x").await;
        }
        assert_eq!(login_from(&s, Some(attacker), ALICE, RIGHT).await.0, 200);
        let (status, _) = s
            .call(
                "PATCH",
                settings,
                token,
                Some(json!({"allowlist": [], "shields": ["admin_notification"]})),
            )
            .await;
        assert_eq!(status, 200);
        // Without the block shield an address past its budget is logged, not refused.
        let other = "203.0.113.50";
        for n in 0..4 {
            login_from(&s, Some(other), &format!("w{n}@example.com"), "x").await;
        }
        assert_eq!(login_from(&s, Some(other), ALICE, RIGHT).await.0, 200);
        let (_, logs) = s
            .call("GET", "/api/v2/logs?q=type:limit_mu", token, None)
            .await;
        assert_eq!(logs[0]["ip"], other, "{logs}");
    });
}

#[test]
fn suspicious_ip_throttling_counts_signups_per_address_and_trusts_only_named_proxies() {
    // No trusted proxy: every signup comes from the peer, whatever it forwards.
    let s = start_with(tempfile::tempdir().unwrap(), &[]);
    block_on(async {
        let mgmt = s.management_token().await;
        let (status, body) = s
            .call(
                "PATCH",
                "/api/v2/attack-protection/suspicious-ip-throttling",
                Some(&mgmt),
                Some(json!({"stage": {"pre-user-registration": {"max_attempts": 2}}})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let strong = "Tr0ub4dor&3-horse";
        assert_eq!(signup(&s, "one@example.com", strong).await.0, 200);
        // A failed signup (the user exists) spends the budget too.
        assert_eq!(signup(&s, "one@example.com", strong).await.0, 400);
        let (status, body) = signup(&s, "two@example.com", strong).await;
        assert_eq!(
            (
                status,
                body["error"].as_str(),
                body["error_description"].as_str()
            ),
            (429, Some("too_many_attempts"), Some(THROTTLED)),
            "{body}"
        );
        // What the client says it forwards is not believed: still the peer's budget.
        let response = reqwest::Client::new()
            .post(format!("{}/dbconnections/signup", s.base))
            .header("auth0-forwarded-for", "192.0.2.10")
            .header("content-type", "application/json")
            .body(
                json!({"client_id": s.app_id, "connection": "Username-Password-Authentication",
                       "email": "four@example.com", "password": strong})
                .to_string(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 429);
        // The Management API's user creation is not a signup: not throttled.
        let (status, body) = s
            .call(
                "POST",
                "/api/v2/users",
                Some(&mgmt),
                Some(json!({"connection": "Username-Password-Authentication",
                            "email": "three@example.com", "password": strong})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(
            s.call(
                "GET",
                "/api/v2/anomaly/blocks/ips/127.0.0.1",
                Some(&mgmt),
                None
            )
            .await
            .0,
            200
        );
        // Logins are a separate budget: the address still logs in.
        assert_eq!(login_from(&s, Some("192.0.2.9"), ALICE, RIGHT).await.0, 200);
    });
}

#[test]
fn password_history_refuses_the_last_passwords_and_only_those() {
    let s = start_with(tempfile::tempdir().unwrap(), &[]);
    block_on(async {
        let mgmt = s.management_token().await;
        let (status, body) = s
            .call(
                "PATCH",
                "/api/v2/connections/con_demo",
                Some(&mgmt),
                Some(json!({"options": {"password_history": {"enable": true, "size": 25}}})),
            )
            .await;
        assert_eq!(status, 400, "{body}");
        assert!(
            body["message"]
                .as_str()
                .unwrap_or_default()
                .contains("password_history.size must be 0 to 24"),
            "{body}"
        );
        for import in [false, true] {
            set_options(
                &s,
                &mgmt,
                json!({"import_mode": import, "password_history": {"enable": true, "size": 2}}),
            )
            .await;
            let email = format!("history-{import}@example.com");
            let (status, body) = signup(&s, &email, "first passphrase").await;
            assert_eq!(status, 200, "{body}");
            let (_, users) = s
                .call(
                    "GET",
                    &format!("/api/v2/users-by-email?email={email}"),
                    Some(&mgmt),
                    None,
                )
                .await;
            let user = format!(
                "/api/v2/users/{}",
                users[0]["user_id"].as_str().unwrap().replace('|', "%7C")
            );
            let set = |password: &'static str| {
                s.call(
                    "PATCH",
                    &user,
                    Some(&mgmt),
                    Some(json!({"password": password})),
                )
            };
            let reused = |answer: (u16, Value)| {
                assert_eq!(
                    (answer.0, answer.1["message"].as_str()),
                    (
                        400,
                        Some("PasswordHistoryError: Password has previously been used")
                    ),
                    "import {import}: {}",
                    answer.1
                );
            };
            reused(set("first passphrase").await);
            assert_eq!(set("second passphrase").await.0, 200);
            reused(set("first passphrase").await);
            assert_eq!(set("third passphrase").await.0, 200);
            // Two are kept: the first has dropped out of the history.
            assert_eq!(set("first passphrase").await.0, 200, "import {import}");
            reused(set("third passphrase").await);
            assert_eq!(
                login_from(&s, None, &email, "first passphrase").await.0,
                200,
                "import {import}: the refused changes changed nothing"
            );
            let (_, logs) = s
                .call("GET", "/api/v2/logs?q=type:fcp", Some(&mgmt), None)
                .await;
            assert_eq!(
                logs[0]["description"], "Password has previously been used",
                "{logs}"
            );
        }
        // The history holds bcrypt hashes only: no password is in the store's file in clear.
        let store = std::fs::read_dir(s.data_folder())
            .unwrap()
            .flatten()
            .map(|e| std::fs::read(e.path()).unwrap_or_default())
            .collect::<Vec<_>>()
            .concat();
        assert!(
            !store
                .windows(b"second passphrase".len())
                .any(|w| w == b"second passphrase")
        );
    });
}
