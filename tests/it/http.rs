//! `fetch`, `axios` and `request` against a real HTTP server on a loopback port, and the
//! egress allow-list: unlisted hosts, redirects out of the list and oversized bodies fail
//! with clear errors before any byte reaches them.

use crate::util::{expect, invocation, run};
use customdb::script::{Action, Invocation};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::OnceLock;

/// A small HTTP/1.1 server on 127.0.0.1 whose routes the cases below use; one thread per
/// connection, `Connection: close` on every answer.
fn server() -> u16 {
    static PORT: OnceLock<u16> = OnceLock::new();
    *PORT.get_or_init(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                std::thread::spawn(move || serve(stream, port));
            }
        });
        port
    })
}

fn serve(stream: TcpStream, port: u16) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    let mut headers = serde_json::Map::new();
    let mut length = 0;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.trim().split_once(':') {
            let k = k.trim().to_ascii_lowercase();
            if k == "content-length" {
                length = v.trim().parse().unwrap_or(0);
            }
            headers.insert(k, json!(v.trim()));
        }
    }
    let mut body = vec![0; length];
    let _ = reader.read_exact(&mut body);
    let path = target.split('?').next().unwrap_or("").to_string();
    let (status, extra, content): (&str, String, Vec<u8>) = match path.as_str() {
        "/json" => ("200 OK", String::new(), br#"{"ok":true}"#.to_vec()),
        "/echo" => (
            "200 OK",
            String::new(),
            json!({"method": method, "target": target, "headers": headers, "body": String::from_utf8_lossy(&body)})
                .to_string()
                .into_bytes(),
        ),
        "/missing" => ("404 Not Found", String::new(), br#"{"error":"nope"}"#.to_vec()),
        "/redirect-in" => (
            "302 Found",
            format!("Location: http://127.0.0.1:{port}/json\r\n"),
            Vec::new(),
        ),
        "/redirect-out" => (
            "302 Found",
            format!("Location: http://127.0.0.2:{port}/json\r\n"),
            Vec::new(),
        ),
        "/big" => ("200 OK", String::new(), vec![b'x'; 6 << 20]),
        "/binary" => ("200 OK", String::new(), (0..=255u8).collect()),
        "/slow" => {
            std::thread::sleep(std::time::Duration::from_secs(3));
            ("200 OK", String::new(), b"late".to_vec())
        }
        _ => ("404 Not Found", String::new(), Vec::new()),
    };
    let mut out = stream;
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nContent-Type: application/json\r\nX-Test: a\r\nConnection: close\r\n{extra}\r\n",
        content.len()
    );
    let _ = out.write_all(head.as_bytes());
    let _ = out.write_all(&content);
}

fn login(body: &str, egress: &[String]) -> Invocation {
    let script = format!(
        "function login(email, password, cb) {{ const base = configuration.BASE; const done = (v) => cb(null, Object.assign({{ user_id: 1 }}, v)); {body} }}"
    );
    let mut inv = invocation(Action::Login, &script, json!(["a@example.com", "pw"]));
    inv.configuration
        .insert("BASE".into(), format!("http://127.0.0.1:{}", server()));
    // Run as `customdb try` runs it: the test servers listen on loopback.
    inv.policy.internal = customdb::script::Internal::Listed;
    inv.policy.egress = egress.to_vec();
    inv
}

/// (case, script body, expected result of `done(...)` or the whole subset when the case
/// ends otherwise)
fn cases() -> Vec<(&'static str, &'static str, Value)> {
    vec![
        (
            "fetch JSON",
            "fetch(base + '/json').then((r) => r.json().then((j) => done({ status: r.status, ok: r.ok, j, h: r.headers.get('X-Test') }))).catch(cb);",
            json!({"status": 200, "ok": true, "j": {"ok": true}, "h": "a"}),
        ),
        (
            "fetch POST with headers and a body",
            "fetch(base + '/echo', { method: 'POST', headers: { 'X-Key': 'k1' }, body: 'hello' }).then((r) => r.json()).then((e) => done({ m: e.method, key: e.headers['x-key'], body: e.body })).catch(cb);",
            json!({"m": "POST", "key": "k1", "body": "hello"}),
        ),
        (
            "fetch binary body",
            "fetch(base + '/binary').then((r) => r.arrayBuffer()).then((b) => done({ n: b.byteLength, last: new Uint8Array(b)[255] })).catch(cb);",
            json!({"n": 256, "last": 255}),
        ),
        (
            "axios get with params and auth",
            "require('axios').get(base + '/echo', { params: { q: 'a b', n: 1 }, auth: { username: 'u', password: 'p' } }).then((r) => done({ status: r.status, target: r.data.target, auth: r.data.headers.authorization, type: r.headers['content-type'] })).catch(cb);",
            json!({"status": 200, "target": "/echo?q=a+b&n=1", "auth": "Basic dTpw", "type": "application/json"}),
        ),
        (
            "axios post sends JSON",
            "require('axios').post(base + '/echo', { email: email }).then((r) => done({ type: r.data.headers['content-type'], body: JSON.parse(r.data.body) })).catch(cb);",
            json!({"type": "application/json", "body": {"email": "a@example.com"}}),
        ),
        (
            "axios rejects a 404 with the response",
            "require('axios').create({ baseURL: base }).get('/missing').catch((e) => done({ message: e.message, code: e.code, status: e.response.status, data: e.response.data }));",
            json!({"message": "Request failed with status code 404", "code": "ERR_BAD_REQUEST", "status": 404, "data": {"error": "nope"}}),
        ),
        (
            "axios timeout",
            "require('axios').get(base + '/slow', { timeout: 200 }).catch((e) => done({ message: e.message, code: e.code }));",
            json!({"message": "timeout of 200ms exceeded", "code": "ECONNABORTED"}),
        ),
        (
            "request with json",
            "require('request')({ url: base + '/echo', method: 'PUT', json: { a: 1 } }, (err, res, body) => err ? cb(err) : done({ status: res.statusCode, body: body.body, type: body.headers['content-type'] }));",
            json!({"status": 200, "body": "{\"a\":1}", "type": "application/json"}),
        ),
        (
            "request.post with a form",
            "require('request').post(base + '/echo', { form: { a: 'x y' } }, (err, res, body) => err ? cb(err) : done({ body: JSON.parse(body).body }));",
            json!({"body": "a=x+y"}),
        ),
        (
            "a redirect inside the allow-list is followed",
            "fetch(base + '/redirect-in').then((r) => done({ status: r.status, redirected: r.redirected })).catch(cb);",
            json!({"status": 200, "redirected": true}),
        ),
        (
            "a redirect out of the allow-list is refused",
            "fetch(base + '/redirect-out').catch((e) => done({ message: e.message, code: e.cause.code, cause: e.cause.message }));",
            json!({"message": "fetch failed", "code": "EGRESS_DENIED", "cause": "~egress to 127.0.0.2"}),
        ),
        (
            "bodies above the cap are refused",
            "require('axios').get(base + '/big').catch((e) => done({ code: e.code, message: e.message }));",
            json!({"code": "ERR_FR_MAX_BODY_LENGTH_EXCEEDED", "message": "response body exceeds the 5 MB limit"}),
        ),
    ]
}

#[test]
fn http_clients_against_a_real_server() {
    let allowed = vec![format!("127.0.0.1:{}", server())];
    for (name, body, expected) in cases() {
        let exec = run(&login(body, &allowed));
        expect(
            name,
            &exec,
            &json!({"outcome": "success", "result": expected}),
        );
    }
}

#[test]
fn egress_is_denied_unless_listed() {
    let port = server();
    let cases = [
        (
            "no allow-list",
            vec![],
            "fetch(base + '/json')",
            format!("~egress to 127.0.0.1:{port} is not allowed"),
        ),
        (
            "another port of the same host",
            vec![format!("127.0.0.1:{}", port.wrapping_add(1))],
            "fetch(base + '/json')",
            "~is not on the allow-list (pass --allow-host".to_string(),
        ),
        (
            "a name is not its address",
            vec!["localhost".into()],
            "fetch(base + '/json')",
            "~not allowed".to_string(),
        ),
        (
            "file URLs",
            vec!["localhost".into()],
            "fetch('file:///etc/passwd')",
            "~unsupported protocol 'file'".to_string(),
        ),
    ];
    for (name, egress, call, message) in cases {
        let body = format!(
            "{call}.then(() => done({{ reached: true }}), (e) => done({{ code: e.cause.code, message: e.cause.message }}));"
        );
        let code = if message.contains("protocol") {
            "ERR_INVALID_PROTOCOL"
        } else {
            "EGRESS_DENIED"
        };
        expect(
            name,
            &run(&login(&body, &egress)),
            &json!({"outcome": "success", "result": {"code": code, "message": message}}),
        );
    }
    // `localhost` listed by name reaches loopback through its name.
    expect(
        "localhost entry",
        &run(&login(
            &format!(
                "fetch('http://localhost:{port}/json').then((r) => done({{ status: r.status }}), cb);"
            ),
            &["localhost".into()],
        )),
        &json!({"outcome": "success", "result": {"status": 200}}),
    );
    // A listed address with nothing listening is Node's ECONNREFUSED.
    expect(
        "refused",
        &run(&login(
            "require('axios').get('http://127.0.0.1:1/').catch((e) => done({ code: e.code }));",
            &["127.0.0.1:1".into()],
        )),
        &json!({"outcome": "success", "result": {"code": "ECONNREFUSED"}}),
    );
}
