//! Attack protection against a real `customdb serve`: brute-force blocks per identifier and
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
