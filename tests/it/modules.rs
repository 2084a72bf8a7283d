//! Every module function against known vectors (RFCs, the packages' own documented examples),
//! run through real workers.

use crate::util::{expect, run_script};
use customdb::script::Action;
use serde_json::{Value, json};

/// (name, expression evaluated inside a login script with `crypto`, `bcrypt`, `jwt`, `uuid`
/// required, expected JSON value)
fn vectors() -> Vec<(&'static str, &'static str, Value)> {
    vec![
        (
            "md5",
            "crypto.createHash('md5').update('abc').digest('hex')",
            json!("900150983cd24fb0d6963f7d28e17f72"),
        ),
        (
            "sha1",
            "crypto.createHash('sha1').update('abc').digest('hex')",
            json!("a9993e364706816aba3e25717850c26c9cd0d89d"),
        ),
        (
            "sha256 in two updates",
            "crypto.createHash('sha256').update('a').update('bc').digest('hex')",
            json!("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        ),
        (
            "sha512 base64",
            "crypto.createHash('sha512').update('abc').digest('base64').slice(0, 16)",
            json!("3a81oZNherrMQXNJ"),
        ),
        (
            "hmac sha256",
            "crypto.createHmac('sha256', 'key').update('The quick brown fox jumps over the lazy dog').digest('hex')",
            json!("f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"),
        ),
        (
            "digest as Buffer",
            "Buffer.isBuffer(crypto.createHash('md5').update('abc').digest())",
            json!(true),
        ),
        (
            "unknown digest",
            "(() => { try { crypto.createHash('whirlpool'); } catch (e) { return e.message; } })()",
            json!("Digest method not supported: whirlpool"),
        ),
        (
            "pbkdf2Sync RFC 6070 c=1",
            "crypto.pbkdf2Sync('password', 'salt', 1, 20, 'sha1').toString('hex')",
            json!("0c60c80f961f0e71f3a9b524af6012062fe037a6"),
        ),
        (
            "pbkdf2Sync RFC 6070 c=2",
            "crypto.pbkdf2Sync('password', 'salt', 2, 20, 'sha1').toString('hex')",
            json!("ea6c014dc72d6f8ccd1ed92ace1d41f0d8de8957"),
        ),
        (
            "randomBytes length",
            "crypto.randomBytes(16).length",
            json!(16),
        ),
        (
            "randomUUID shape",
            "/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(crypto.randomUUID())",
            json!(true),
        ),
        (
            "timingSafeEqual",
            "[crypto.timingSafeEqual(Buffer.from('abc'), Buffer.from('abc')), crypto.timingSafeEqual(Buffer.from('abc'), Buffer.from('abd'))]",
            json!([true, false]),
        ),
        (
            "timingSafeEqual length mismatch",
            "(() => { try { crypto.timingSafeEqual(Buffer.from('a'), Buffer.from('ab')); } catch (e) { return e.name; } })()",
            json!("RangeError"),
        ),
        ("uuid v4", "/^[0-9a-f-]{36}$/.test(uuid.v4())", json!(true)),
        (
            "bcrypt OpenBSD vector",
            "bcrypt.hashSync('U*U', '$2a$05$CCCCCCCCCCCCCCCCCCCCC.')",
            json!("$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW"),
        ),
        (
            "bcrypt compareSync",
            "[bcrypt.compareSync('U*U', '$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW'), bcrypt.compareSync('U*V', '$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW')]",
            json!([true, false]),
        ),
        (
            "bcrypt $2y$ and $2b$ hashes verify",
            "bcrypt.compareSync('pw', bcrypt.hashSync('pw', 4).replace('$2b$', '$2y$'))",
            json!(true),
        ),
        (
            "bcrypt malformed hash compares false",
            "bcrypt.compareSync('pw', 'not-a-hash')",
            json!(false),
        ),
        (
            "bcrypt getRounds and genSaltSync",
            "[bcrypt.getRounds(bcrypt.hashSync('pw', 5)), bcrypt.genSaltSync(6).slice(0, 7)]",
            json!([5, "$2b$06$"]),
        ),
        (
            "jwt HS256 jwt.io example",
            "jwt.sign({ sub: '1234567890', name: 'John Doe', iat: 1516239022 }, 'your-256-bit-secret')",
            json!(
                "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
            ),
        ),
        (
            "jwt verify and decode",
            "(() => { const t = jwt.sign({ sub: 'u1' }, 's3cret', { expiresIn: '1h', issuer: 'me' }); const p = jwt.verify(t, 's3cret', { issuer: 'me' }); return [p.sub, p.exp - p.iat, jwt.decode(t, { complete: true }).header.alg]; })()",
            json!(["u1", 3600, "HS256"]),
        ),
        (
            "jwt wrong secret",
            "(() => { try { jwt.verify(jwt.sign({ a: 1 }, 'x'), 'y'); } catch (e) { return e.name + ': ' + e.message; } })()",
            json!("JsonWebTokenError: invalid signature"),
        ),
        (
            "jwt expired",
            "(() => { try { jwt.verify(jwt.sign({ a: 1, exp: 1 }, 'x'), 'x'); } catch (e) { return e.name + ': ' + e.message; } })()",
            json!("TokenExpiredError: jwt expired"),
        ),
        (
            "jwt malformed",
            "(() => { try { jwt.verify('abc', 'x'); } catch (e) { return e.message; } })()",
            json!("jwt malformed"),
        ),
        (
            "jwt RS256 round trip",
            "(() => { const t = jwt.sign({ sub: 'r' }, configuration.PRIVATE, { algorithm: 'RS256', keyid: 'k1' }); const d = jwt.decode(t, { complete: true }); return [jwt.verify(t, configuration.PUBLIC).sub, d.header.kid, d.header.alg]; })()",
            json!(["r", "k1", "RS256"]),
        ),
        (
            "jwt RS256 tampered",
            "(() => { const t = jwt.sign({ sub: 'r' }, configuration.PRIVATE, { algorithm: 'RS256' }); const parts = t.split('.'); parts[1] = Buffer.from('{\"sub\":\"admin\"}').toString('base64url'); try { jwt.verify(parts.join('.'), configuration.PUBLIC); } catch (e) { return e.message; } })()",
            json!("invalid signature"),
        ),
        (
            "Buffer utf8/base64/hex",
            "[Buffer.from('hello').toString('base64'), Buffer.from('hello').toString('hex'), Buffer.from('aGVsbG8=', 'base64').toString(), Buffer.from('68656c6c6f', 'hex').toString('utf8')]",
            json!(["aGVsbG8=", "68656c6c6f", "hello", "hello"]),
        ),
        (
            "Buffer ucs2/utf16le/latin1",
            "[Array.from(Buffer.from('hi', 'utf16le')), Buffer.from([104, 0, 105, 0]).toString('ucs2'), Array.from(Buffer.from('é', 'latin1')), Buffer.from([233]).toString('latin1')]",
            json!([[104, 0, 105, 0], "hi", [233], "é"]),
        ),
        (
            "Buffer alloc/concat/slice/equals",
            "(() => { const b = Buffer.concat([Buffer.from('ab'), Buffer.alloc(2, 'c')]); return [b.toString(), b.slice(1, 3).toString(), b.equals(Buffer.from('abcc')), Buffer.alloc(3).length, b instanceof Uint8Array]; })()",
            json!(["abcc", "bc", true, 3, true]),
        ),
        (
            "Buffer JSON",
            "JSON.parse(JSON.stringify(Buffer.from('hi')))",
            json!({"type": "Buffer", "data": [104, 105]}),
        ),
        (
            "unknown encoding",
            "(() => { try { Buffer.from('x', 'klingon'); } catch (e) { return e.message; } })()",
            json!("Unknown encoding: klingon"),
        ),
        (
            "atob/btoa",
            "[btoa('hello'), atob('aGVsbG8=')]",
            json!(["aGVsbG8=", "hello"]),
        ),
        (
            "TextEncoder/TextDecoder",
            "[Array.from(new TextEncoder().encode('é')), new TextDecoder().decode(new Uint8Array([195, 169]))]",
            json!([[195, 169], "é"]),
        ),
        (
            "URL parts",
            "(() => { const u = new URL('/p/a?x=1&y=two#h', 'https://user:pw@example.com:8443'); return [u.href, u.host, u.pathname, u.searchParams.get('y'), u.origin, u.hash]; })()",
            json!([
                "https://user:pw@example.com:8443/p/a?x=1&y=two#h",
                "example.com:8443",
                "/p/a",
                "two",
                "https://example.com:8443",
                "#h"
            ]),
        ),
        (
            "URL searchParams write-through",
            "(() => { const u = new URL('https://e.com/?a=1'); u.searchParams.append('b', 'x y'); return u.href; })()",
            json!("https://e.com/?a=1&b=x+y"),
        ),
        (
            "invalid URL",
            "(() => { try { new URL('not a url'); } catch (e) { return e.name; } })()",
            json!("TypeError"),
        ),
        (
            "URLSearchParams",
            "new URLSearchParams({ q: 'a&b', n: '1' }).toString()",
            json!("q=a%26b&n=1"),
        ),
        (
            "require with a version",
            "require('bcryptjs@2.4.3') === require('bcryptjs')",
            json!(true),
        ),
        (
            "legacy string methods (annex B)",
            "'abcdef'.substr(2, 3) + escape(' ')",
            json!("cde%20"),
        ),
    ]
}

const PRELUDE: &str = "const crypto = require('crypto'); const bcrypt = require('bcrypt'); const jwt = require('jsonwebtoken'); const uuid = require('uuid');";

#[test]
fn module_vectors() {
    let private = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/rsa-private.pem"
    ))
    .unwrap();
    let public = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/rsa-public.pem"
    ))
    .unwrap();
    for (name, expr, expected) in vectors() {
        let script = format!(
            "function login(a, b, cb) {{ {PRELUDE} cb(null, {{ user_id: 1, v: {expr} }}); }}"
        );
        let mut inv = crate::util::invocation(Action::Login, &script, json!(["a", "b"]));
        inv.configuration.insert("PRIVATE".into(), private.clone());
        inv.configuration.insert("PUBLIC".into(), public.clone());
        let exec = crate::util::run(&inv);
        expect(
            name,
            &exec,
            &json!({"outcome": "success", "result": {"v": expected}}),
        );
    }
}

/// Asynchronous forms, callback and promise, as the packages offer them.
#[test]
fn asynchronous_module_forms() {
    let cases = [
        (
            "bcrypt callbacks",
            "bcrypt.hash('pw', 4, (e, h) => { if (e) return cb(e); bcrypt.compare('pw', h, (e2, ok) => cb(e2, { user_id: 1, v: ok })); });",
            json!(true),
        ),
        (
            "bcrypt promises",
            "bcrypt.genSalt(4).then((s) => bcrypt.hash('pw', s)).then((h) => bcrypt.compare('nope', h)).then((ok) => cb(null, { user_id: 1, v: ok }));",
            json!(false),
        ),
        (
            "bcrypt async/await",
            "(async () => { const h = await bcrypt.hash('pw', 4); cb(null, { user_id: 1, v: await bcrypt.compare('pw', h) }); })();",
            json!(true),
        ),
        (
            "bcrypt bad salt rejects",
            "bcrypt.hash('pw', 'salty', (e) => cb(null, { user_id: 1, v: e.message }));",
            json!("Invalid salt. Salt: salty"),
        ),
        (
            "pbkdf2 callback",
            "crypto.pbkdf2('password', 'salt', 2, 20, 'sha1', (e, k) => cb(e, { user_id: 1, v: k.toString('hex') }));",
            json!("ea6c014dc72d6f8ccd1ed92ace1d41f0d8de8957"),
        ),
        (
            "randomBytes callback",
            "crypto.randomBytes(8, (e, b) => cb(e, { user_id: 1, v: b.length }));",
            json!(8),
        ),
        (
            "jwt sign and verify callbacks",
            "jwt.sign({ a: 1 }, 'k', (e, t) => jwt.verify(t, 'k', (e2, p) => cb(e2, { user_id: 1, v: p.a })));",
            json!(1),
        ),
    ];
    for (name, body, expected) in cases {
        let script = format!("function login(a, b, cb) {{ {PRELUDE} {body} }}");
        expect(
            name,
            &run_script(Action::Login, &script, json!(["a", "b"])),
            &json!({"outcome": "success", "result": {"v": expected}}),
        );
    }
}

#[test]
fn an_exception_in_a_module_callback_is_an_error() {
    let script = format!(
        "function login(a, b, cb) {{ {PRELUDE} bcrypt.compare('a', 'b', () => {{ throw new Error('bug in callback'); }}); }}"
    );
    expect(
        "throw in callback",
        &run_script(Action::Login, &script, json!(["a", "b"])),
        &json!({"outcome": "error", "error": {"message": "bug in callback"}}),
    );
}

/// The CPU a run's native work spends is the run's: bcrypt on the blocking pool shows in its
/// timings, and a run without native work is charged nothing.
#[test]
fn native_work_is_charged_to_its_run() {
    let hashing = format!(
        "function login(a, b, cb) {{ {PRELUDE} bcrypt.hash('pw', 10, (e, h) => bcrypt.compare('pw', h, (e2, ok) => cb(e2, {{ user_id: 1, ok: ok }}))); }}"
    );
    let exec = run_script(Action::Login, &hashing, json!(["a", "b"]));
    assert_eq!(exec.result.as_ref().unwrap()["ok"], true, "{exec:?}");
    assert!(exec.timings.native_cpu_ms > 0.0, "{:?}", exec.timings);
    let plain = "function login(a, b, cb) { cb(null, { user_id: 1 }); }";
    let exec = run_script(Action::Login, plain, json!(["a", "b"]));
    assert_eq!(exec.timings.native_cpu_ms, 0.0, "{:?}", exec.timings);
}
