//! The official clients against a real `customdb serve` behind a TLS proxy, as an operator
//! runs it (`--public-url https://…`): auth0-python, the `auth0` npm package (its Management
//! client and its bundled legacy AuthenticationClient) and openid-client, each verifying
//! tokens against the JWKS itself. `scripts/sdk.sh` (run by `scripts/test.sh`) installs the
//! pinned packages: auth0-python in `target/sdk/venv`, the npm packages in `sdk/node_modules`;
//! without them these tests fail and say so.

use crate::serve::{Server, start_with};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A server behind a TLS proxy with a self-signed certificate for `localhost`.
struct Behind {
    server: Server,
    proxy: Child,
    /// `localhost:<port>`, the domain the clients are given.
    domain: String,
    /// The proxy's certificate, for the clients to trust.
    cert: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Behind {
    fn drop(&mut self) {
        let _ = self.proxy.kill();
        let _ = self.proxy.wait();
    }
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// An installed file of the suite, or a failure that says how to install it.
fn installed(relative: &str) -> PathBuf {
    let path = repo().join(relative);
    assert!(
        path.exists(),
        "{} is missing: run scripts/sdk.sh (scripts/test.sh does) to install the official clients this test drives",
        path.display()
    );
    path
}

fn behind_tls() -> Behind {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args([
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .expect("openssl makes the proxy's certificate");
    assert!(made.success(), "openssl req failed");
    // The proxy's port is chosen first: the server's public URL names it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let domain = format!("localhost:{port}");
    let public_url = format!("https://{domain}");
    let server = start_with(tempfile::tempdir().unwrap(), &["--public-url", &public_url]);
    let mut proxy = Command::new("node")
        .arg(repo().join("sdk/tls-proxy.mjs"))
        .env("CERT", &cert)
        .env("KEY", &key)
        .env("UPSTREAM", &server.base)
        .env("PORT", port.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .expect("node runs the TLS proxy");
    let mut line = String::new();
    BufReader::new(proxy.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(
        line.trim(),
        format!("listening {port}"),
        "the proxy did not start"
    );
    Behind {
        server,
        proxy,
        domain,
        cert,
        _dir: dir,
    }
}

/// Runs one client's suite and fails with everything it printed unless it passed.
fn run_suite(behind: &Behind, mut command: Command) {
    let output = command
        .env("DOMAIN", &behind.domain)
        .env("APP_CLIENT_ID", &behind.server.app_id)
        .env("MGMT_CLIENT_ID", &behind.server.client_id)
        .env("MGMT_CLIENT_SECRET", &behind.server.client_secret)
        // Each client trusts the proxy's certificate the way its documentation says.
        .env("SSL_CERT_FILE", &behind.cert)
        .env("REQUESTS_CA_BUNDLE", &behind.cert)
        .env("NODE_EXTRA_CA_CERTS", &behind.cert)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "{command:?} failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    assert!(stdout.contains("all checks passed"), "{stdout}");
}

#[test]
fn auth0_python_works_unchanged() {
    let behind = behind_tls();
    let mut command = Command::new(installed("target/sdk/venv/bin/python"));
    command.arg(repo().join("sdk/python/suite.py"));
    run_suite(&behind, command);
}

#[test]
fn the_auth0_npm_package_and_openid_client_work_unchanged() {
    let behind = behind_tls();
    installed("sdk/node_modules/auth0/package.json");
    // The legacy AuthenticationClient sends a secret with every grant: a confidential
    // application with the password grants, as a regular web app has on Auth0.
    let printed = crate::serve::admin(
        &behind.server.data_folder(),
        &[
            "client",
            "demo",
            "--name",
            "web",
            "--grant-type",
            "password",
            "--grant-type",
            "password-realm",
        ],
    );
    let field = |key: &str| {
        printed
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key} in {printed}"))
            .trim()
            .to_string()
    };
    let mut command = Command::new("node");
    command
        .arg(repo().join("sdk/node/suite.mjs"))
        .env("WEB_CLIENT_ID", field("client_id "))
        .env("WEB_CLIENT_SECRET", field("client_secret "));
    run_suite(&behind, command);
}
