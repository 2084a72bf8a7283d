//! `customdb serve` end to end on a real listener (127.0.0.1:0): the demo tenant, Auth0's
//! password-realm login with tokens verified against the JWKS, error bodies, userinfo,
//! signup, Management API tokens, scopes, PATCH rules over HTTP, logs, graceful shutdown.

use crate::util::{block_on, customdb_exe};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

pub(crate) struct Server {
    child: Child,
    pub(crate) base: String,
    /// The demo's management client (client_credentials).
    pub(crate) client_id: String,
    pub(crate) client_secret: String,
    /// The demo's public application (password logins).
    pub(crate) app_id: String,
    _data: tempfile::TempDir,
}

impl Drop for Server {
    /// A test that fails (or ends) never leaves its server running.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// The server's data folder.
    /// A request to this server: `path` starts at the root (`/api/v2/users`).
    pub(crate) async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        call(method, &format!("{}{path}", self.base), token, body).await
    }

    pub(crate) fn data_folder(&self) -> std::path::PathBuf {
        self._data.path().join("data")
    }

    /// The server's worker processes (its children).
    pub(crate) fn workers(&self) -> Vec<i32> {
        let me = self.child.id().to_string();
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .filter(|pid| {
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                // pid (comm) state ppid ...: the comm may hold spaces, so read after its ')'.
                stat.rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().nth(1).map(|p| p == me))
                    .unwrap_or(false)
            })
            .collect()
    }

    /// Kills the server with SIGKILL, as a crash would, and hands back its data folder for
    /// the next start.
    pub(crate) fn kill(mut self) -> tempfile::TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::mem::replace(&mut self._data, tempfile::tempdir().unwrap())
    }

    /// Logs the demo's alice in through the demo app (which caches her profile).
    pub(crate) async fn log_alice_in(&self) {
        let (status, tokens) = call(
            "POST",
            &format!("{}/oauth/token", self.base),
            None,
            Some(json!({
            "grant_type": "password", "client_id": self.app_id,
            "username": "alice@example.com", "password": "correct horse battery staple"})),
        )
        .await;
        assert_eq!(status, 200, "{tokens}");
    }

    /// A Management API token of the demo's client.
    pub(crate) async fn management_token(&self) -> String {
        let (status, tokens) = call("POST", &format!("{}/oauth/token", self.base), None, Some(json!({
            "grant_type": "client_credentials", "client_id": self.client_id, "client_secret": self.client_secret}))).await;
        assert_eq!(status, 200, "{tokens}");
        tokens["access_token"].as_str().unwrap().to_string()
    }
}

pub(crate) fn start() -> Server {
    start_in(tempfile::tempdir().unwrap())
}

pub(crate) fn start_in(data: tempfile::TempDir) -> Server {
    start_with(data, &[])
}

pub(crate) fn start_with(data: tempfile::TempDir, extra: &[&str]) -> Server {
    let mut child = Command::new(customdb_exe())
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(data.path().join("data"))
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let base = first
        .strip_prefix("customdb listening on ")
        .expect(&first)
        .to_string();
    let creds: Value = serde_json::from_str(
        &std::fs::read_to_string(data.path().join("data/demo-client.json")).unwrap(),
    )
    .unwrap();
    let app: Value = serde_json::from_str(
        &std::fs::read_to_string(data.path().join("data/demo-app.json")).unwrap(),
    )
    .unwrap();
    let printed: Vec<String> = lines.take(4).map(Result::unwrap).collect();
    assert!(
        printed[1].contains(app["client_id"].as_str().unwrap()),
        "{printed:?}"
    );
    assert!(
        printed[2].contains(creds["client_id"].as_str().unwrap()),
        "{printed:?}"
    );
    assert!(printed[3].starts_with("try: curl"), "{printed:?}");
    Server {
        child,
        base,
        client_id: creds["client_id"].as_str().unwrap().into(),
        client_secret: creds["client_secret"].as_str().unwrap().into(),
        app_id: app["client_id"].as_str().unwrap().into(),
        _data: data,
    }
}

pub(crate) async fn call(
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    call_as(None, method, url, token, body).await
}

/// A request with an explicit Host header (the tenant is chosen by it).
pub(crate) async fn call_as(
    host: Option<&str>,
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let client = reqwest::Client::new();
    let mut req = client.request(method.parse().unwrap(), url);
    if let Some(h) = host {
        req = req.header("host", h);
    }
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[test]
fn the_demo_server_speaks_auth0() {
    let mut server = start();
    let (tokens, carol) = block_on(the_authentication_api_answers(&server));
    block_on(the_management_api_answers(&server, &tokens, &carol));
    // Graceful shutdown on SIGINT.
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(server.child.id() as i32).unwrap(),
        rustix::process::Signal::INT,
    )
    .unwrap();
    assert!(server.child.wait().unwrap().success());
}

/// A password-realm login as the demo app sends it.
fn realm_login(s: &Server, user: &str, pw: &str) -> Value {
    json!({"grant_type": "http://auth0.com/oauth/grant-type/password-realm", "realm": "Username-Password-Authentication",
           "client_id": s.app_id, "username": user, "password": pw})
}

/// Tokens, the JWKS, userinfo, a wrong password and signups; returns alice's tokens and the
/// path id of the user signed up.
async fn the_authentication_api_answers(s: &Server) -> (Value, String) {
    let login = |user: &str, pw: &str| realm_login(s, user, pw);
    let (status, tokens) = s
        .call(
            "POST",
            "/oauth/token",
            None,
            Some(login("alice@example.com", "correct horse battery staple")),
        )
        .await;
    assert_eq!(status, 200, "{tokens}");
    // The id_token verifies against the published JWKS.
    let (_, jwks) = s.call("GET", "/.well-known/jwks.json", None, None).await;
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwks["keys"][0].clone()).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&[s.app_id.as_str()]);
    let id = jsonwebtoken::decode::<Value>(
        tokens["id_token"].as_str().unwrap(),
        &jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap(),
        &validation,
    )
    .unwrap();
    assert_eq!(
        (id.claims["sub"].as_str(), id.claims["email"].as_str()),
        (Some("auth0|1"), Some("alice@example.com"))
    );
    assert_eq!(
        id.header.kid,
        jwks["keys"][0]["kid"].as_str().map(str::to_string)
    );

    let (status, info) = s
        .call("GET", "/userinfo", tokens["access_token"].as_str(), None)
        .await;
    assert_eq!(
        (status, info["email"].as_str()),
        (200, Some("alice@example.com"))
    );

    let (status, body) = s
        .call(
            "POST",
            "/oauth/token",
            None,
            Some(login("alice@example.com", "nope")),
        )
        .await;
    assert_eq!(
        (status, body),
        (
            403,
            json!({"error": "invalid_grant", "error_description": "Wrong email or password."})
        )
    );

    let (status, body) = s.call("POST", "/dbconnections/signup", None,
        Some(json!({"client_id": s.app_id, "connection": "Username-Password-Authentication", "email": "carol@example.com", "password": "carol's password"}))).await;
    assert_eq!(
        (status, body["email"].as_str()),
        (200, Some("carol@example.com")),
        "{body}"
    );
    let carol = format!("auth0%7C{}", body["_id"].as_str().unwrap());
    let (status, body) = s.call("POST", "/dbconnections/signup", None,
        Some(json!({"client_id": s.app_id, "connection": "Username-Password-Authentication", "email": "alice@example.com", "password": "x"}))).await;
    assert_eq!(
        (status, body["code"].as_str(), body["statusCode"].as_u64()),
        (400, Some("user_exists"), Some(400)),
        "{body}"
    );

    (tokens, carol)
}

/// Users, metadata, connections and deletes over the Management API.
async fn the_management_api_answers(s: &Server, tokens: &Value, carol: &str) {
    let token = management_tokens_are_checked(s, tokens).await;
    let token = Some(token.as_str());
    users_over_the_management_api(s, token).await;
    connections_over_the_management_api(s, token).await;
    let (status, _) = s
        .call("DELETE", &format!("/api/v2/users/{carol}"), token, None)
        .await;
    assert_eq!(status, 204);
    let (status, body) = s
        .call("GET", &format!("/api/v2/users/{carol}"), token, None)
        .await;
    assert_eq!(
        (status, body["errorCode"].as_str()),
        (404, Some("inexistent_user"))
    );
}

/// Only the management client's credentials give a management token; returns it.
async fn management_tokens_are_checked(s: &Server, tokens: &Value) -> String {
    let (status, body) = s.call("GET", "/api/v2/users/auth0%7C1", None, None).await;
    assert_eq!(
        (status, body["errorCode"].as_str()),
        (401, Some("invalid_token"))
    );
    let (status, body) = s
        .call(
            "GET",
            "/api/v2/users/auth0%7C1",
            tokens["access_token"].as_str(),
            None,
        )
        .await;
    assert_eq!(
        (status, body["errorCode"].as_str()),
        (401, Some("invalid_token")),
        "a user's token is not a management token"
    );
    let (status, mgmt) = s.call("POST", "/oauth/token", None, Some(json!({
        "grant_type": "client_credentials", "client_id": s.client_id, "client_secret": s.client_secret,
        "audience": format!("https://{}/api/v2/", s.base.trim_start_matches("http://"))}))).await;
    assert_eq!(status, 200, "{mgmt}");
    let token = mgmt["access_token"].as_str();
    let (status, wrong) = s
        .call(
            "POST",
            "/oauth/token",
            None,
            Some(json!({
        "grant_type": "client_credentials", "client_id": s.client_id, "client_secret": "not it"})),
        )
        .await;
    assert_eq!(
        (status, wrong["error"].as_str()),
        (401, Some("access_denied"))
    );

    token.unwrap().to_string()
}

/// A user read, PATCHed by the rules, paged, created and refused over the Management API.
async fn users_over_the_management_api(s: &Server, token: Option<&str>) {
    let login = |user: &str, pw: &str| realm_login(s, user, pw);
    let user_url = format!("{}/api/v2/users/auth0%7C1", s.base);
    let (status, user) = call("GET", &user_url, token, None).await;
    assert_eq!(
        (status, user["logins_count"].as_i64()),
        (200, Some(1)),
        "{user}"
    );
    let (status, body) = call(
        "PATCH",
        &user_url,
        token,
        Some(json!({"name": "Alice", "user_metadata": {"theme": "dark"}})),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("name cannot be changed"),
        "{body}"
    );
    let (status, body) = call(
        "PATCH",
        &user_url,
        token,
        Some(json!({"user_metadata": {"theme": "dark"}})),
    )
    .await;
    assert_eq!(
        (status, &body["user_metadata"]),
        (200, &json!({"theme": "dark"})),
        "{body}"
    );
    let (status, body) = call(
        "PATCH",
        &user_url,
        token,
        Some(Value::String("{not json".into())),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    // Metadata written here survives the next login.
    s.call(
        "POST",
        "/oauth/token",
        None,
        Some(login("alice@example.com", "correct horse battery staple")),
    )
    .await;
    let (_, user) = call("GET", &user_url, token, None).await;
    assert_eq!(
        (user["logins_count"].as_i64(), &user["user_metadata"]),
        (Some(2), &json!({"theme": "dark"}))
    );

    let (status, page) = call(
        "GET",
        &format!(
            "{}/api/v2/users?include_totals=true&q=email:%22carol@example.com%22",
            s.base
        ),
        token,
        None,
    )
    .await;
    assert_eq!((status, page["total"].as_u64()), (200, Some(1)), "{page}");
    let (_, by_email) = s
        .call(
            "GET",
            "/api/v2/users-by-email?email=ALICE@example.com",
            token,
            None,
        )
        .await;
    assert_eq!(by_email.as_array().map(Vec::len), Some(1));
    let (_, logs) = s.call("GET", "/api/v2/logs", token, None).await;
    let kinds: Vec<&str> = logs
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["type"].as_str())
        .collect();
    for k in ["s", "fp", "ss", "fs"] {
        assert!(kinds.contains(&k), "{k} in {kinds:?}");
    }
    let (_, connections) = s.call("GET", "/api/v2/connections", token, None).await;
    assert_eq!(
        connections[0]["options"]["configuration"]["DB_FILE"],
        "[encrypted]"
    );
    let (status, created) = s.call("POST", "/api/v2/users", token,
        Some(json!({"connection": "Username-Password-Authentication", "email": "dave@example.com", "password": "dave's password"}))).await;
    assert_eq!(
        (status, created["email"].as_str()),
        (201, Some("dave@example.com")),
        "{created}"
    );
    let (status, body) = s
        .call(
            "POST",
            "/api/v2/users",
            token,
            Some(json!({"email": "x@example.com"})),
        )
        .await;
    assert_eq!(
        (status, body["message"].as_str()),
        (
            400,
            Some("Payload validation error: Missing required property: connection")
        )
    );
}

/// Connections read, refused on a taken name, created with a secret and patched.
async fn connections_over_the_management_api(s: &Server, token: Option<&str>) {
    let (_, connections) = s.call("GET", "/api/v2/connections", token, None).await;
    let con = connections[0]["id"].as_str().unwrap().to_string();
    let (status, one) = s
        .call("GET", &format!("/api/v2/connections/{con}"), token, None)
        .await;
    assert_eq!(status, 200);
    assert!(
        one["options"]["customScripts"]["login"]
            .as_str()
            .unwrap()
            .contains("function login")
    );
    let (status, dup) = s
        .call(
            "POST",
            "/api/v2/connections",
            token,
            Some(json!({"name": "Username-Password-Authentication"})),
        )
        .await;
    assert_eq!(
        (status, dup["errorCode"].as_str()),
        (409, Some("connection_conflict"))
    );
    let (status, made) = s.call("POST", "/api/v2/connections", token, Some(json!({"name": "extra", "options": {
        "customScripts": {"login": "function login(e, p, cb) { cb(null, { user_id: 'x1', email: e }); }"},
        "configuration": {"API_KEY": "very-secret-value"}}}))).await;
    assert_eq!(status, 201, "{made}");
    assert_eq!(made["options"]["configuration"]["API_KEY"], "[encrypted]");
    let made_id = made["id"].as_str().unwrap();
    let (status, patched) = s
        .call(
            "PATCH",
            &format!("/api/v2/connections/{made_id}"),
            token,
            Some(json!({"options": {"import_mode": true}})),
        )
        .await;
    assert_eq!(
        (status, patched["options"]["import_mode"].as_bool()),
        (200, Some(true))
    );
    assert!(
        patched["options"]["customScripts"]
            .as_object()
            .unwrap()
            .is_empty(),
        "options are replaced whole"
    );
    let (status, _) = s
        .call(
            "DELETE",
            &format!("/api/v2/connections/{made_id}"),
            token,
            None,
        )
        .await;
    assert_eq!(status, 202);
    let (status, _) = s
        .call(
            "GET",
            &format!("/api/v2/connections/{made_id}"),
            token,
            None,
        )
        .await;
    assert_eq!(status, 404);
}

pub(crate) fn admin(data: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new(customdb_exe())
        .arg("tenant")
        .arg("--data")
        .arg(data)
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{args:?}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[test]
fn a_token_of_one_tenant_never_reaches_another() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    admin(&data, &["create", "acme", "--domain", "acme.test"]);
    let printed = admin(&data, &["client", "acme"]);
    let field = |name: &str| {
        printed
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap()
            .trim()
            .to_string()
    };
    let (acme_id, acme_secret) = (field("client_id "), field("client_secret "));
    let folder = dir.path().join("acme-users");
    assert!(
        Command::new(customdb_exe())
            .args(["init", folder.to_str().unwrap()])
            .status()
            .unwrap()
            .success()
    );
    assert!(
        admin(&data, &["connection", "acme", folder.to_str().unwrap()])
            .contains("imported into acme")
    );

    let s = start_in(dir);
    block_on(async {
        let token_for = |host: &'static str, id: String, secret: String| {
            let url = format!("{}/oauth/token", s.base);
            async move {
                let (status, body) = call_as(
                    Some(host),
                    "POST",
                    &url,
                    None,
                    Some(json!({
                    "grant_type": "client_credentials", "client_id": id, "client_secret": secret,
                    "audience": format!("https://{host}/api/v2/")})),
                )
                .await;
                (status, body["access_token"].as_str().map(str::to_string))
            }
        };
        let (status, acme) = token_for("acme.test", acme_id.clone(), acme_secret.clone()).await;
        assert_eq!(status, 200);
        let (status, demo) =
            token_for("localhost", s.client_id.clone(), s.client_secret.clone()).await;
        assert_eq!(status, 200);
        // A client of acme cannot get a token at the demo tenant's host, and the other way round.
        assert_eq!(token_for("localhost", acme_id, acme_secret).await.0, 401);
        assert_eq!(
            token_for("acme.test", s.client_id.clone(), s.client_secret.clone())
                .await
                .0,
            401
        );

        let connections = format!("{}/api/v2/connections", s.base);
        let (status, list) = call_as(
            Some("acme.test"),
            "GET",
            &connections,
            acme.as_deref(),
            None,
        )
        .await;
        assert_eq!(
            (status, list[0]["name"].as_str()),
            (200, Some("acme-users")),
            "{list}"
        );
        let (status, list) = call_as(
            Some("localhost"),
            "GET",
            &connections,
            demo.as_deref(),
            None,
        )
        .await;
        assert_eq!(
            (status, list[0]["name"].as_str()),
            (200, Some("Username-Password-Authentication"))
        );
        let (status, _) = call_as(
            Some("localhost"),
            "GET",
            &connections,
            acme.as_deref(),
            None,
        )
        .await;
        assert_eq!(status, 401, "acme's token at the demo tenant");
        let (status, _) = call_as(
            Some("acme.test"),
            "GET",
            &format!("{}/api/v2/users/auth0%7C1", s.base),
            demo.as_deref(),
            None,
        )
        .await;
        assert_eq!(status, 401, "the demo's token at acme");
    });
}

#[test]
fn a_tenant_over_its_limit_gets_429_and_others_carry_on() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    admin(&data, &["create", "slow", "--domain", "slow.test"]);
    let printed = admin(&data, &["client", "slow", "--public"]);
    let slow_client = printed
        .lines()
        .find_map(|l| l.strip_prefix("client_id "))
        .unwrap()
        .trim()
        .to_string();
    let folder = dir.path().join("hanging");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(
        folder.join("database.json"),
        r#"{"name": "hanging", "options": {}}"#,
    )
    .unwrap();
    std::fs::write(
        folder.join("login.js"),
        "function login(email, password, callback) { setTimeout(() => callback(null, { user_id: 1, email: email }), 5000); }",
    )
    .unwrap();
    admin(&data, &["connection", "slow", folder.to_str().unwrap()]);
    let s = start_with(dir, &["--max-runs-per-tenant", "1"]);
    block_on(async {
        let login = |host: &'static str,
                     client: String,
                     realm: &'static str,
                     user: &'static str,
                     pw: &'static str| {
            let url = format!("{}/oauth/token", s.base);
            async move {
                let client_http = reqwest::Client::new();
                let resp = client_http
                    .post(url)
                    .header("host", host)
                    .header("content-type", "application/json")
                    .body(json!({"grant_type": "http://auth0.com/oauth/grant-type/password-realm", "realm": realm,
                                  "client_id": client, "username": user, "password": pw}).to_string())
                    .send()
                    .await
                    .unwrap();
                let retry = resp
                    .headers()
                    .get("retry-after")
                    .map(|v| v.to_str().unwrap().to_string());
                (resp.status().as_u16(), retry)
            }
        };
        let hanging = tokio::spawn(login(
            "slow.test",
            slow_client.clone(),
            "hanging",
            "a@example.com",
            "pw",
        ));
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let (status, retry) = login(
            "slow.test",
            slow_client.clone(),
            "hanging",
            "b@example.com",
            "pw",
        )
        .await;
        assert_eq!((status, retry.as_deref()), (429, Some("1")));
        // The demo tenant is served while the other tenant's script still hangs.
        let (status, _) = login(
            "localhost",
            s.app_id.clone(),
            "Username-Password-Authentication",
            "alice@example.com",
            "correct horse battery staple",
        )
        .await;
        assert_eq!(status, 200);
        assert!(
            !hanging.is_finished(),
            "the demo login was answered before the hanging one"
        );
        assert_eq!(hanging.await.unwrap().0, 200);
    });
}

#[test]
fn try_a_script_and_drop_a_cached_user_over_the_management_api() {
    let s = start();
    block_on(async {
        let mgmt = s.management_token().await;
        let token = Some(mgmt.as_str());
        let (_, connections) = s.call("GET", "/api/v2/connections", token, None).await;
        let try_url = format!(
            "{}/api/v2/connections/{}/try",
            s.base,
            connections[0]["id"].as_str().unwrap()
        );

        let (status, run) = call("POST", &try_url, token, Some(json!({"action": "login", "args": ["alice@example.com", "correct horse battery staple"]}))).await;
        assert_eq!(
            (
                status,
                run["outcome"].as_str(),
                run["profile"]["user_id"].as_str()
            ),
            (200, Some("success"), Some("auth0|1")),
            "{run}"
        );
        assert!(run["timings"]["total_ms"].as_f64().is_some());

        let supplied = "function login(email, password, callback) { console.log('checking', email, password); callback(null, { user_id: 7, email: 'not an email' }); }";
        let (status, run) = call("POST", &try_url, token, Some(json!({"action": "login", "args": ["a@example.com", "s3cret-pw"], "script": supplied}))).await;
        assert_eq!(status, 200, "{run}");
        assert_eq!(
            run["profile_errors"],
            json!([{"field": "email", "rule": "must be an email address"}])
        );
        assert_eq!(
            run["console"][0]["message"], "checking a@example.com [REDACTED]",
            "the password never leaves the worker"
        );

        let (status, body) = call(
            "POST",
            &try_url,
            token,
            Some(json!({"action": "login", "args": ["only one"]})),
        )
        .await;
        assert_eq!(
            (status, body["message"].as_str()),
            (
                400,
                Some(
                    "Payload validation error: args login takes 2 argument(s): identifier, password"
                )
            )
        );
        let (status, body) = call(
            "POST",
            &try_url,
            token,
            Some(json!({"action": "signin", "args": []})),
        )
        .await;
        assert_eq!(status, 400, "{body}");

        // The user cached by the try above is not there (try caches nothing); a login caches it,
        // and DELETE /connections/{id}/users?email= removes it from the store without a script.
        let user_url = format!("{}/api/v2/users/auth0%7C1", s.base);
        assert_eq!(call("GET", &user_url, token, None).await.0, 404);
        s.call(
            "POST",
            "/oauth/token",
            None,
            Some(json!({"grant_type": "password", "client_id": s.app_id,
            "username": "alice@example.com", "password": "correct horse battery staple"})),
        )
        .await;
        assert_eq!(call("GET", &user_url, token, None).await.0, 200);
        let drop_url = format!(
            "{}/api/v2/connections/{}/users?email=ALICE@example.com",
            s.base,
            connections[0]["id"].as_str().unwrap()
        );
        assert_eq!(call("DELETE", &drop_url, token, None).await.0, 204);
        assert_eq!(call("GET", &user_url, token, None).await.0, 404);
        assert_eq!(call("DELETE", &drop_url, token, None).await.0, 404);
    });
}

#[test]
fn a_forgotten_password_is_changed_through_a_ticket() {
    let s = start();
    block_on(async {
        let login = |pw: &str| {
            json!({"grant_type": "password", "client_id": s.app_id,
                   "username": "alice@example.com", "password": pw})
        };
        let token_url = format!("{}/oauth/token", s.base);
        let (status, body) = s.call("POST", "/dbconnections/change_password", None,
            Some(json!({"client_id": s.app_id, "email": "alice@example.com", "connection": "Username-Password-Authentication"}))).await;
        // Auth0's answer is the sentence as text, not JSON.
        assert_eq!(
            (status, body),
            (
                200,
                Value::String("We've just sent you an email to reset your password.".into())
            )
        );

        let mgmt = s.management_token().await;
        let token = Some(mgmt.as_str());
        let tickets = format!("{}/api/v2/tickets/password-change", s.base);
        let (status, body) = call("POST", &tickets, token, Some(json!({"ttl_sec": "soon"}))).await;
        assert_eq!(
            (status, body["message"].as_str()),
            (
                400,
                Some(
                    "Payload validation error: ttl_sec: invalid type: string \"soon\", expected i64"
                )
            ),
            "a wrong type names its field"
        );
        let (status, body) = call(
            "POST",
            &tickets,
            token,
            Some(
                json!({"email": "alice@example.com", "connection_id": "con_demo",
            "result_url": "https://app.example/done", "mark_email_as_verified": true}),
            ),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        let url = body["ticket"].as_str().unwrap().to_string();
        let prefix = format!("{}/lo/reset?ticket=", s.base);
        assert!(url.starts_with(&prefix), "{url}");
        let ticket = url[prefix.len()..].trim_end_matches('#').to_string();

        let (status, page) = call("GET", &url, None, None).await;
        assert_eq!(status, 200);
        assert!(
            page.as_str().unwrap().contains("name=newPassword"),
            "{page}"
        );

        // The browser posts the form; the answer sends it on to the ticket's result_url.
        let no_redirects = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let form =
            format!("ticket={ticket}&newPassword=Brand-new-pw1&confirmNewPassword=Brand-new-pw1");
        let reset = || {
            no_redirects
                .post(format!("{}/lo/reset", s.base))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form.clone())
                .send()
        };
        let resp = reset().await.unwrap();
        assert_eq!(resp.status().as_u16(), 303);
        assert_eq!(
            resp.headers()["location"].to_str().unwrap(),
            "https://app.example/done?success=true&message=You+have+successfully+changed+your+password."
        );
        assert_eq!(
            reset().await.unwrap().status().as_u16(),
            404,
            "a ticket is used once"
        );

        // The change_password script changed the legacy database: only the new password works.
        let old = "correct horse battery staple";
        assert_eq!(
            call("POST", &token_url, None, Some(login(old))).await.0,
            403
        );
        let (status, tokens) = call("POST", &token_url, None, Some(login("Brand-new-pw1"))).await;
        assert_eq!(status, 200, "{tokens}");

        // A ticket by user id, for a user the cache knows; an unknown one is a 404.
        let (status, body) = call(
            "POST",
            &tickets,
            token,
            Some(json!({"user_id": "auth0|1", "ttl_sec": 60})),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        let (status, body) = call(
            "POST",
            &tickets,
            token,
            Some(json!({"user_id": "auth0|nobody"})),
        )
        .await;
        assert_eq!(
            (status, body["errorCode"].as_str()),
            (404, Some("inexistent_user"))
        );
        let (status, body) = call(
            "POST",
            &tickets,
            token,
            Some(json!({"user_id": "auth0|1", "new_password": "x"})),
        )
        .await;
        assert_eq!(status, 400);
        assert!(
            body["message"].as_str().unwrap().contains("new_password"),
            "{body}"
        );

        let (_, logs) = s.call("GET", "/api/v2/logs", token, None).await;
        let kinds: Vec<&str> = logs
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["type"].as_str())
            .collect();
        assert!(
            kinds.contains(&"scpr") && kinds.contains(&"scp"),
            "{kinds:?}"
        );
    });
}

#[test]
fn runs_and_log_events_stream_live_and_redacted() {
    let s = start();
    block_on(async {
        let mgmt = s.management_token().await;
        let token = mgmt.as_str();
        let stream_url = format!("{}/api/v2/logs/stream", s.base);
        assert_eq!(call("GET", &stream_url, None, None).await.0, 401);

        let mut stream = reqwest::Client::new()
            .get(&stream_url)
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(
            stream.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        let mut seen = String::new();
        // Reads until `needle` has arrived (or fails after 10 s).
        async fn read_until(stream: &mut reqwest::Response, seen: &mut String, needle: &str) {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while !seen.contains(needle) {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                let chunk = tokio::time::timeout(left, stream.chunk())
                    .await
                    .unwrap_or_else(|_| panic!("no '{needle}' within 10 s; got:\n{seen}"))
                    .unwrap()
                    .expect("the stream stays open");
                seen.push_str(&String::from_utf8_lossy(&chunk));
            }
        }
        read_until(&mut stream, &mut seen, "event: ready").await;

        let connections = s
            .call("GET", "/api/v2/connections", Some(token), None)
            .await
            .1;
        let script = "function login(email, password, callback) { console.log('checking', email, password); callback(null, { user_id: 7, email: email }); }";
        let (status, _) = call(
            "POST",
            &format!(
                "{}/api/v2/connections/{}/try",
                s.base,
                connections[0]["id"].as_str().unwrap()
            ),
            Some(token),
            Some(json!({"action": "login", "args": ["a@example.com", "s3cret-pw"], "script": script})),
        )
        .await;
        assert_eq!(status, 200);
        read_until(&mut stream, &mut seen, "event: run").await;
        read_until(&mut stream, &mut seen, "checking a@example.com [REDACTED]").await;

        let (status, _) = s
            .call(
                "POST",
                "/oauth/token",
                None,
                Some(json!({"grant_type": "password", "client_id": s.app_id,
                        "username": "alice@example.com", "password": "wrong-pw-123"})),
            )
            .await;
        assert_eq!(status, 403);
        read_until(&mut stream, &mut seen, "event: log").await;
        read_until(&mut stream, &mut seen, "Wrong email or password.").await;
        assert!(
            !seen.contains("s3cret-pw") && !seen.contains("wrong-pw-123"),
            "{seen}"
        );
    });
}

#[test]
fn connections_round_trip_through_export_and_deploy() {
    let s = start();
    let out = tempfile::tempdir().unwrap();
    let cli = |args: &[&str], env: &[(&str, &str)]| {
        let output = Command::new(customdb_exe())
            .args(args)
            .env("CUSTOMDB_SERVER", &s.base)
            .env("CUSTOMDB_CLIENT_ID", &s.client_id)
            .env("CUSTOMDB_CLIENT_SECRET", &s.client_secret)
            .envs(env.iter().copied())
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let dir = out.path().to_str().unwrap();
    let (code, stdout, stderr) = cli(&["export", dir], &[]);
    assert_eq!(code, Some(0), "{stderr}");
    let exported = out
        .path()
        .join("database-connections/Username-Password-Authentication");
    assert!(stdout.contains("wrote "), "{stdout}");
    let doc: Value =
        serde_json::from_str(&std::fs::read_to_string(exported.join("database.json")).unwrap())
            .unwrap();
    assert_eq!(
        doc["options"]["configuration"],
        json!({"DB_FILE": "##DB_FILE##"}),
        "secrets leave as keywords"
    );
    assert_eq!(doc["options"]["customScripts"]["login"], "./login.js");
    assert!(
        std::fs::read_to_string(exported.join("login.js"))
            .unwrap()
            .contains("function login")
    );

    // A second connection from the same folder under another name.
    let copy = out.path().join("database-connections/Copy");
    std::fs::create_dir_all(&copy).unwrap();
    for entry in std::fs::read_dir(&exported).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), copy.join(entry.file_name())).unwrap();
    }
    let mut copy_doc = doc.clone();
    copy_doc["name"] = json!("Copy");
    std::fs::write(copy.join("database.json"), copy_doc.to_string()).unwrap();

    // A keyword without a mapping stops the deploy before anything is sent; a variable of
    // the keyword's own name is not a mapping (the environment is not read whole).
    let (code, _, stderr) = cli(&["deploy", dir], &[("DB_FILE", "users.db")]);
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("keyword ##DB_FILE## has no value (map it in --keywords FILE, or set CUSTOMDB_KW_DB_FILE)"),
        "{stderr}"
    );
    let (code, stdout, stderr) = cli(
        &["deploy", dir, "--json"],
        &[("CUSTOMDB_KW_DB_FILE", "users.db")],
    );
    assert_eq!(code, Some(0), "{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    let actions: Vec<(&str, &str)> = report["connections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["action"].as_str().unwrap()))
        .collect();
    assert_eq!(
        actions,
        vec![
            ("Copy", "created"),
            ("Username-Password-Authentication", "updated")
        ]
    );

    // The demo still answers logins (its configuration was deployed with the same value),
    // and the copy carries the same scripts.
    block_on(async {
        let login = json!({
            "grant_type": "http://auth0.com/oauth/grant-type/password-realm", "realm": "Username-Password-Authentication", "client_id": s.app_id,
            "username": "alice@example.com", "password": "correct horse battery staple"});
        let (status, body) = s
            .call("POST", "/oauth/token", None, Some(login.clone()))
            .await;
        assert_eq!(status, 200, "{body}");
        let mgmt = s.management_token().await;
        let (_, listed) = s
            .call("GET", "/api/v2/connections", Some(mgmt.as_str()), None)
            .await;
        let scripts: Vec<&Value> = listed
            .as_array()
            .unwrap()
            .iter()
            .map(|c| &c["options"]["customScripts"])
            .collect();
        assert_eq!(scripts.len(), 2);
        assert_eq!(scripts[0], scripts[1]);

        // What GET shows (`[encrypted]` configuration), sent back unchanged, keeps the secret.
        let demo = &listed[1];
        assert_eq!(demo["options"]["configuration"]["DB_FILE"], "[encrypted]");
        let (status, _) = call(
            "PATCH",
            &format!(
                "{}/api/v2/connections/{}",
                s.base,
                demo["id"].as_str().unwrap()
            ),
            Some(mgmt.as_str()),
            Some(json!({"options": demo["options"]})),
        )
        .await;
        assert_eq!(status, 200);
        let (status, body) = s.call("POST", "/oauth/token", None, Some(login)).await;
        assert_eq!(status, 200, "{body}");
    });

    let (code, _, stderr) = cli(&["export", dir, "--connection", "Nope"], &[]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("no connection named Nope"), "{stderr}");
    let (code, _, stderr) = cli(&["export", dir, "--client-secret", "wrong"], &[]);
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("cannot get a Management API token"),
        "{stderr}"
    );
}

#[test]
fn the_server_keeps_serving_when_its_output_is_closed() {
    let data = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(customdb_exe())
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--data"])
        .arg(data.path().join("data"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Nobody reads what it prints (`customdb serve | true`): the pipe is closed at once.
    drop(child.stdout.take());
    let base = format!("http://127.0.0.1:{port}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let status = loop {
        let answer = block_on(async {
            reqwest::get(format!("{base}/.well-known/jwks.json"))
                .await
                .map(|r| r.status().as_u16())
        });
        match answer {
            Ok(status) => break status,
            Err(_) if std::time::Instant::now() < deadline => {
                assert!(
                    child.try_wait().unwrap().is_none(),
                    "the server exited because its output was closed"
                );
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            Err(e) => panic!("the server never answered: {e}"),
        }
    };
    assert_eq!(status, 200);
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn a_config_file_sets_what_flags_do_not() {
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("customdb.json");
    std::fs::write(
        &config,
        json!({"listen": "127.0.0.1:1", "max_runs_per_tenant": 5, "workers": 2, "log_format": "json"}).to_string(),
    )
    .unwrap();
    // --listen 127.0.0.1:0 (given by start_with) wins over the file's port 1.
    let s = start_with(data, &["--config", config.to_str().unwrap()]);
    let (status, _) = block_on(s.call("GET", "/.well-known/jwks.json", None, None));
    assert_eq!(status, 200);

    let bad = tempfile::tempdir().unwrap();
    let path = bad.path().join("bad.json");
    std::fs::write(
        &path,
        r#"{"listen": "127.0.0.1:0", "max_run_per_tenant": 5}"#,
    )
    .unwrap();
    let out = Command::new(customdb_exe())
        .args(["serve", "--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("unknown field `max_run_per_tenant`"),
        "{stderr}"
    );
}

#[test]
fn logs_page_and_resume_from_a_checkpoint() {
    let s = start();
    block_on(async {
        let token_url = format!("{}/oauth/token", s.base);
        for _ in 0..3 {
            let (status, _) = call(
                "POST",
                &token_url,
                None,
                Some(json!({"grant_type": "password", "client_id": s.app_id,
                "username": "alice@example.com", "password": "not her password"})),
            )
            .await;
            assert_eq!(status, 403);
        }
        let mgmt = s.management_token().await;
        let token = Some(mgmt.as_str());
        let logs = |query: String| {
            let url = format!("{}/api/v2/logs?{query}", s.base);
            async move { call("GET", &url, token, None).await }
        };

        let (status, page) = logs("per_page=2&include_totals=true".into()).await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(
            (page["length"].as_u64(), page["limit"].as_u64()),
            (Some(2), Some(2))
        );
        assert!(page["total"].as_u64().unwrap() >= 3, "{page}");
        let id = |e: &Value| -> i64 {
            e["log_id"]
                .as_str()
                .unwrap_or_else(|| panic!("log_id is a string: {e}"))
                .parse()
                .unwrap()
        };
        let newest = id(&page["logs"][0]);
        assert!(newest > id(&page["logs"][1]), "newest first");
        // One event by its log_id.
        let (status, one) = s
            .call("GET", &format!("/api/v2/logs/{newest}"), token, None)
            .await;
        assert_eq!((status, id(&one)), (200, newest), "{one}");
        let (status, _) = s.call("GET", "/api/v2/logs/999999999", token, None).await;
        assert_eq!(status, 404);

        // A log exporter's checkpoint: a bare array of everything after a log_id, oldest first,
        // and the next page in a Link header.
        let (_, all) = logs("per_page=100".into()).await;
        let oldest = id(all.as_array().unwrap().last().unwrap());
        let response = reqwest::Client::new()
            .get(format!("{}/api/v2/logs?from={oldest}&take=2", s.base))
            .bearer_auth(mgmt.as_str())
            .send()
            .await
            .unwrap();
        let link = response.headers()["link"].to_str().unwrap().to_string();
        let after: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
        let ids: Vec<i64> = after.as_array().unwrap().iter().map(id).collect();
        assert_eq!(ids.len(), 2);
        assert!(oldest < ids[0] && ids[0] < ids[1], "{ids:?}");
        assert!(
            link.contains(&format!("from={}&take=2>; rel=\"next\"", ids[1])),
            "{link}"
        );

        let (status, body) = logs("per_page=500".into()).await;
        assert_eq!(
            (status, body["message"].as_str()),
            (
                400,
                Some("Query validation error: per_page must be between 1 and 100")
            )
        );
    });
}

/// A login's log event names the application, the address, the user agent, the identifier
/// typed and the connection's id, and `q` finds events by those fields.
#[test]
fn log_events_say_who_caused_them_and_can_be_searched() {
    let s = start();
    block_on(async {
        let client = reqwest::Client::new();
        for _ in 0..2 {
            let response = client
                .post(format!("{}/oauth/token", s.base))
                .header("user-agent", "compat-check/1.0")
                .header("content-type", "application/json")
                .body(
                    json!({"grant_type": "password", "client_id": s.app_id,
                    "username": "alice@example.com", "password": "not her password"})
                    .to_string(),
                )
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 403);
        }
        s.log_alice_in().await;
        let mgmt = s.management_token().await;
        let token = Some(mgmt.as_str());
        let server = &s;
        let search = |query: &str| {
            let path = format!("/api/v2/logs?{query}");
            async move { server.call("GET", &path, token, None).await }
        };

        let (status, page) =
            search("include_totals=true&q=type:fp%20AND%20user_name:%22alice@example.com%22").await;
        assert_eq!((status, page["total"].as_u64()), (200, Some(2)), "{page}");
        let event = &page["logs"][0];
        assert_eq!(event["type"], "fp");
        assert_eq!(event["client_id"], s.app_id.as_str(), "{event}");
        assert!(event["client_name"].is_string(), "{event}");
        assert_eq!(event["ip"], "127.0.0.1", "{event}");
        assert_eq!(event["user_agent"], "compat-check/1.0", "{event}");
        assert_eq!(event["user_name"], "alice@example.com", "{event}");
        assert_eq!(event["connection"], "Username-Password-Authentication");
        assert_eq!(
            (event["strategy"].as_str(), event["strategy_type"].as_str()),
            (Some("auth0"), Some("database"))
        );
        let (_, connections) = s.call("GET", "/api/v2/connections", token, None).await;
        assert_eq!(event["connection_id"], connections[0]["id"], "{event}");

        // `search` is the generated SDKs' name for `q`; the fields asked for are all there is.
        let client_id = s.app_id.as_str();
        let (status, found) = search(&format!(
            "search=client_id:{client_id}%20type:s&fields=type,user_name&include_fields=true"
        ))
        .await;
        assert_eq!(status, 200, "{found}");
        assert_eq!(
            found,
            json!([{"type": "s", "user_name": "alice@example.com"}])
        );
        let (_, oldest) =
            search("q=user_name:%22alice@example.com%22&sort=date:1&fields=type").await;
        assert_eq!(
            oldest,
            json!([{"type": "fp"}, {"type": "fp"}, {"type": "s"}])
        );
        let (_, nobody) = search("q=user_name:bob@example.com").await;
        assert_eq!(nobody, json!([]));

        for (query, says) in [
            ("q=alice", "free text is not supported"),
            ("q=password:x", "`password` cannot be searched"),
            ("q=type:f*", "not supported"),
            ("sort=name:1", "sort `name:1` is not supported"),
            ("page=20&per_page=50", "first 1000 records"),
        ] {
            let (status, body) = search(query).await;
            let message = body["message"].as_str().unwrap_or_default();
            assert_eq!(status, 400, "{query}: {body}");
            assert!(message.contains(says), "{query}: {message}");
        }
    });
}

/// OpenID clients require the issuer to be the URL they discovered; Auth0 SDKs expect
/// `https://<domain>/` behind TLS. The issuer follows the request, or `--public-url`.
#[test]
fn the_issuer_is_where_the_server_is_reached() {
    for (extra, scheme) in [
        (&[][..], "http"),
        (&["--public-url", "https://auth.example.test"][..], "https"),
    ] {
        let s = start_with(tempfile::tempdir().unwrap(), extra);
        block_on(async {
            let (_, discovery) = s
                .call("GET", "/.well-known/openid-configuration", None, None)
                .await;
            let host = s.base.trim_start_matches("http://");
            let issuer = format!("{scheme}://{host}/");
            assert_eq!(discovery["issuer"], issuer.as_str(), "{discovery}");
            assert_eq!(
                discovery["jwks_uri"],
                format!("{scheme}://{host}/.well-known/jwks.json")
            );
            let (_, tokens) = s
                .call(
                    "POST",
                    "/oauth/token",
                    None,
                    Some(json!({
                "grant_type": "password", "client_id": s.app_id,
                "username": "alice@example.com", "password": "correct horse battery staple"})),
                )
                .await;
            use base64::Engine as _;
            for token in ["id_token", "access_token"] {
                let payload = tokens[token].as_str().unwrap().split('.').nth(1).unwrap();
                let claims: Value = serde_json::from_slice(
                    &base64::engine::general_purpose::URL_SAFE_NO_PAD
                        .decode(payload)
                        .unwrap(),
                )
                .unwrap();
                assert_eq!(claims["iss"], issuer.as_str(), "{token}");
            }
        });
    }
    let out = Command::new(customdb_exe())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--public-url",
            "ftp://x/",
        ])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("must be an http or https URL"),
        "{out:?}"
    );
}

#[test]
fn a_worker_killed_while_idle_is_replaced_and_not_blamed_on_the_next_run() {
    let s = start();
    block_on(async {
        s.log_alice_in().await;
        let workers = s.workers();
        assert!(!workers.is_empty(), "a warm worker waits for the next run");
        for pid in &workers {
            std::process::Command::new("kill")
                .args(["-9", &pid.to_string()])
                .status()
                .unwrap();
        }
        // Reaped by the server only when it looks: the next login must still be served.
        std::thread::sleep(std::time::Duration::from_millis(100));
        s.log_alice_in().await;
        let mgmt = s.management_token().await;
        let (_, logs) = s
            .call("GET", "/api/v2/logs?q=type:f", Some(&mgmt), None)
            .await;
        assert_eq!(logs, json!([]), "no failed login was logged");
    });
}
