//! The flows of SPEC §4 with real scripts (templates/sqlite), a real store file, real bcrypt
//! and real worker processes: every cell of the matrix in both modes, the cache rules, a
//! concurrent first login, a writer killed with SIGKILL, and secrets never on disk in clear.

use crate::util::block_on;
use customdb::api::dto;
use customdb::domain::options::{CacheExpired, ConnectionOptions};
use customdb::domain::time::{self, ManualClock};
use customdb::script::Action;
use customdb::service::{Answer, Failure, Refusal, Service};
use customdb::store::seal::Sealer;
use customdb::store::{ConnectionRecord, Store, UserChange};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const TENANT: &str = "acme";
const ALICE_PW: &str = "correct horse battery staple";

fn template(file: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("templates/sqlite")
            .join(file),
    )
    .unwrap()
}

/// A store in a temporary folder, a connection on the sqlite template and its seeded legacy
/// database in the connection's data folder.
struct World {
    _dir: tempfile::TempDir,
    store_path: PathBuf,
    legacy: PathBuf,
    core: Service,
    /// The store's clock: it stands still until a test moves it.
    clock: Arc<ManualClock>,
}

fn world(import_mode: bool, options: Value) -> World {
    let crate::util::TempStore {
        dir,
        path: store_path,
        store,
        clock,
    } = crate::util::temp_store();
    let mut scripts = BTreeMap::new();
    for action in Action::ALL {
        scripts.insert(action, template(&format!("{action}.js")));
    }
    let mut opts: Map<String, Value> = options.as_object().cloned().unwrap_or_default();
    opts.insert("import_mode".into(), json!(import_mode));
    let record = ConnectionRecord {
        id: "con_1".into(),
        tenant: TENANT.into(),
        name: "users".into(),
        attributes: Default::default(),
        options: ConnectionOptions::from_json(opts).unwrap(),
        scripts,
        configuration: BTreeMap::from([("DB_FILE".to_string(), "users.db".to_string())]),
    };
    store.put_connection(&record).unwrap();
    let data_root = dir.path().join("data");
    let legacy_dir = customdb::service::connection_dir(&data_root, &record).unwrap();
    let legacy = legacy_dir.join("users.db");
    let db = rusqlite::Connection::open(&legacy).unwrap();
    db.execute_batch(&template("cases/schema.sql")).unwrap();
    db.execute_batch(&template("cases/seed.sql")).unwrap();
    let core = crate::util::service(store, data_root);
    World {
        _dir: dir,
        store_path,
        legacy,
        clock,
        core,
    }
}

impl World {
    fn legacy_sql(&self, sql: &str) {
        rusqlite::Connection::open(&self.legacy)
            .unwrap()
            .execute_batch(sql)
            .unwrap();
    }
    fn events(&self) -> Vec<String> {
        let mut e: Vec<String> = self
            .core
            .store
            .sync()
            .events(TENANT, 100)
            .unwrap()
            .into_iter()
            .map(|e| e.kind.to_string())
            .collect();
        e.reverse();
        e
    }
    /// `GET /users/{id}` as the Management API answers it.
    fn read(&self, user_id: &str) -> Got<Value> {
        got(block_on(self.core.read_user(TENANT, user_id)).map(|c| dto::cached_user(&c)))
    }
    /// `PATCH /users/{id}` as the Management API answers it.
    fn patch(&self, user_id: &str, body: &Value) -> Got<Value> {
        got(block_on(self.core.patch_user(TENANT, user_id, body)).map(|u| dto::user(&u)))
    }
    fn login(&self, who: &str, pw: &str) -> Got<customdb::store::User> {
        got(block_on(self.core.login(TENANT, "users", who, pw)))
    }
}

/// A flow's answer as these tests compare it: its result, or the refusal (customdb's own
/// failures fail the test at once).
#[derive(Debug, Clone, PartialEq)]
enum Got<T> {
    Done(T),
    Refused(Refusal),
}

fn got<T>(answer: Answer<T>) -> Got<T> {
    match answer {
        Ok(v) => Got::Done(v),
        Err(Failure::Refused(r)) => Got::Refused(r),
        Err(Failure::Internal(e)) => panic!("customdb failed: {e}"),
    }
}

fn done<T: std::fmt::Debug>(a: Got<T>) -> T {
    match a {
        Got::Done(v) => v,
        other => panic!("expected Done, got {other:?}"),
    }
}

#[test]
fn legacy_mode_login_get_user_signup() {
    let w = world(false, json!({}));
    let alice = done(w.login("alice@example.com", ALICE_PW));
    assert_eq!(alice.user_id, "auth0|1");
    assert_eq!(alice.logins_count, 1);
    assert!(
        !alice.migrated && alice.password_hash.is_none(),
        "no password is kept without import"
    );
    assert_eq!(alice.profile["identities"][0]["connection"], "users");
    assert_eq!(done(w.login("alice@example.com", ALICE_PW)).logins_count, 2);
    assert_eq!(
        w.login("alice@example.com", "wrong"),
        Got::Refused(Refusal::WrongCredentials)
    );
    assert_eq!(
        w.login("nobody@example.com", "x"),
        Got::Refused(Refusal::WrongCredentials)
    );

    let bob = done(got(block_on(w.core.get_user(
        TENANT,
        "users",
        "bob@example.com",
    ))));
    assert_eq!((bob.user_id.as_str(), bob.logins_count), ("auth0|2", 0));
    assert_eq!(
        got(block_on(w.core.get_user(
            TENANT,
            "users",
            "nobody@example.com"
        ))),
        Got::Refused(Refusal::NotFound)
    );

    let carol = done(got(block_on(w.core.signup(
        TENANT,
        "users",
        json!({"email": "carol@example.com", "password": "carol's password"}),
    ))));
    assert_eq!(carol.profile["nickname"], "carol");
    match got(block_on(w.core.signup(
        TENANT,
        "users",
        json!({"email": "alice@example.com", "password": "x"}),
    ))) {
        Got::Refused(Refusal::Conflict { code, .. }) => assert_eq!(code, "user_exists"),
        other => panic!("{other:?}"),
    }
    assert_eq!(w.events(), ["s", "s", "fp", "fp", "s", "ss", "fs"]);
}

#[test]
fn legacy_mode_password_verify_email_delete() {
    let w = world(false, json!({}));
    done(got(block_on(w.core.change_password(
        TENANT,
        "users",
        "alice@example.com",
        "a new one",
    ))));
    done(w.login("alice@example.com", "a new one"));
    assert_eq!(
        got(block_on(w.core.change_password(
            TENANT,
            "users",
            "nobody@example.com",
            "x"
        ))),
        Got::Refused(Refusal::Refused)
    );
    done(got(block_on(w.core.verify(
        TENANT,
        "users",
        "bob@example.com",
    ))));
    assert_eq!(
        got(block_on(w.core.verify(TENANT, "users", "bob@example.com"))),
        Got::Refused(Refusal::Refused)
    );

    let changed = done(got(block_on(w.core.change_email(
        TENANT,
        "auth0|1",
        "Alice@Example.org",
        true,
    ))));
    assert_eq!(
        changed.email(),
        Some("Alice@Example.org"),
        "case kept without import"
    );
    done(w.login("Alice@Example.org", "a new one"));

    done(got(block_on(w.core.delete(TENANT, "auth0|1"))));
    assert!(
        w.core
            .store
            .sync()
            .get_user(TENANT, "auth0|1")
            .unwrap()
            .is_none()
    );
    assert_eq!(
        w.login("Alice@Example.org", "a new one"),
        Got::Refused(Refusal::WrongCredentials),
        "the script deleted the row"
    );
    assert_eq!(
        got(block_on(w.core.delete(TENANT, "auth0|1"))),
        Got::Refused(Refusal::NotFound)
    );
    let kinds = w.events();
    for k in ["scp", "fcp", "sv", "fv", "sce", "sdu"] {
        assert!(kinds.contains(&k.to_string()), "{k} in {kinds:?}");
    }
}

#[test]
fn change_email_without_its_script_says_so() {
    let w = world(false, json!({}));
    done(w.login("alice@example.com", ALICE_PW));
    let mut record = w
        .core
        .store
        .sync()
        .get_connection(TENANT, "users")
        .unwrap()
        .unwrap();
    record.scripts.remove(&Action::ChangeEmail);
    w.core.store.sync().put_connection(&record).unwrap();
    assert_eq!(
        got(block_on(w.core.change_email(
            TENANT,
            "auth0|1",
            "a2@example.com",
            false
        ))),
        Got::Refused(Refusal::MissingScript(Action::ChangeEmail))
    );
}

#[test]
fn cache_rules() {
    // Blocked users cannot log in.
    let w = world(false, json!({"set_user_root_attributes": "on_first_login"}));
    done(w.login("alice@example.com", ALICE_PW));
    let block = UserChange {
        blocked: Some(true),
        ..UserChange::default()
    };
    w.core
        .store
        .sync()
        .update_user(TENANT, "auth0|1", &block)
        .unwrap();
    assert_eq!(
        w.login("alice@example.com", ALICE_PW),
        Got::Refused(Refusal::Blocked)
    );
    let unblock = UserChange {
        blocked: Some(false),
        ..UserChange::default()
    };
    w.core
        .store
        .sync()
        .update_user(TENANT, "auth0|1", &unblock)
        .unwrap();

    // on_first_login: the nickname stays what the first login returned.
    w.legacy_sql("UPDATE users SET nickname = 'ally' WHERE id = 1");
    assert_eq!(
        done(w.login("alice@example.com", ALICE_PW)).profile["nickname"],
        "alice"
    );

    // Metadata written through management survives logins.
    let meta = UserChange {
        app_metadata: Some(json!({"plan": "pro"}).as_object().unwrap().clone()),
        ..UserChange::default()
    };
    w.core
        .store
        .sync()
        .update_user(TENANT, "auth0|1", &meta)
        .unwrap();
    assert_eq!(
        done(w.login("alice@example.com", ALICE_PW)).app_metadata["plan"],
        "pro"
    );

    // A script that now returns another user_id for a cached email is refused, not merged.
    w.legacy_sql("UPDATE users SET id = 9 WHERE id = 1");
    match w.login("alice@example.com", ALICE_PW) {
        Got::Refused(Refusal::Conflict { code, message }) => {
            assert_eq!(code, "user_id_conflict");
            assert!(message.contains("auth0|1"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        w.core
            .store
            .sync()
            .list_users(TENANT, None, None, 0, 50)
            .unwrap()
            .1,
        1
    );

    // When the tenant's database is down, logins fail clearly and cached reads still answer.
    w.legacy_sql("DROP TABLE users");
    match w.login("alice@example.com", ALICE_PW) {
        Got::Refused(Refusal::ScriptFailed { error, .. }) => assert!(
            error.unwrap().message.unwrap().contains("no such table"),
            "database error"
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(w.events().last().unwrap(), "f");
    assert_eq!(
        w.core
            .store
            .sync()
            .get_user(TENANT, "auth0|1")
            .unwrap()
            .unwrap()
            .profile["nickname"],
        "alice"
    );
}

#[test]
fn import_mode_migrates_on_first_login() {
    let w = world(true, json!({}));
    w.legacy_sql("UPDATE users SET email = 'Alice@Example.com' WHERE id = 1");
    let alice = done(w.login("Alice@Example.com", ALICE_PW));
    assert!(alice.migrated);
    assert!(
        alice
            .password_hash
            .as_deref()
            .unwrap()
            .starts_with("$2b$10$")
    );
    assert_eq!(
        alice.email(),
        Some("alice@example.com"),
        "lowercased in import mode"
    );
    // The legacy database is gone: migrated users log in locally, no script runs.
    w.legacy_sql("DROP TABLE users");
    assert_eq!(done(w.login("alice@example.com", ALICE_PW)).logins_count, 2);
    assert_eq!(
        w.login("alice@example.com", "wrong"),
        Got::Refused(Refusal::WrongCredentials)
    );
    // Deleting a migrated user is local: no script runs (its table is gone anyway).
    done(got(block_on(w.core.delete(TENANT, "auth0|1"))));
    assert!(
        w.core
            .store
            .sync()
            .get_user(TENANT, "auth0|1")
            .unwrap()
            .is_none()
    );
    let again = w.login("alice@example.com", ALICE_PW);
    assert!(
        matches!(again, Got::Refused(Refusal::ScriptFailed { .. })),
        "back to the legacy script: {again:?}"
    );
    assert_eq!(w.events(), ["s", "s", "fp", "sdu", "f"]);
}

#[test]
fn import_mode_signup_and_password_change() {
    let w = world(true, json!({}));
    match got(block_on(w.core.signup(
        TENANT,
        "users",
        json!({"email": "bob@example.com", "password": "x"}),
    ))) {
        Got::Refused(Refusal::Conflict { code, .. }) => assert_eq!(
            code, "user_exists",
            "get_user found bob in the legacy database"
        ),
        other => panic!("{other:?}"),
    }
    let dave = done(got(block_on(w.core.signup(
        TENANT,
        "users",
        json!({"email": "dave@example.com", "password": "dave's password"}),
    ))));
    assert!(dave.migrated && dave.user_id.starts_with("auth0|") && dave.user_id.len() == 30);
    // Bob resets his password before ever logging in: get_user, then created locally.
    done(got(block_on(w.core.change_password(
        TENANT,
        "users",
        "bob@example.com",
        "bob's new password",
    ))));
    w.legacy_sql("DROP TABLE users");
    done(w.login("bob@example.com", "bob's new password"));
    done(w.login("dave@example.com", "dave's password"));
}

#[test]
fn two_first_logins_at_once_make_one_user() {
    let w = world(true, json!({}));
    let (a, b) = block_on(async {
        tokio::join!(
            w.core.login(TENANT, "users", "bob@example.com", "hunter22"),
            w.core.login(TENANT, "users", "bob@example.com", "hunter22")
        )
    });
    let (a, b) = (done(got(a)), done(got(b)));
    assert_eq!(a.user_id, b.user_id);
    let (users, total) = w
        .core
        .store
        .sync()
        .list_users(TENANT, Some("users"), None, 0, 10)
        .unwrap();
    assert_eq!(total, 1, "{users:?}");
    assert!(users[0].migrated);
}

#[test]
fn concurrent_first_uses_of_a_connection_share_one_data_folder() {
    // Many first runs of a new connection at once each make sure its folder exists; an older
    // customdb's folder (by tenant and name) is moved once, whichever run gets there first.
    for legacy in [false, true] {
        let root = tempfile::tempdir().unwrap();
        let record = ConnectionRecord {
            id: "con_2".into(),
            tenant: TENANT.into(),
            name: "users".into(),
            attributes: Default::default(),
            options: ConnectionOptions::from_json(Map::new()).unwrap(),
            scripts: BTreeMap::new(),
            configuration: BTreeMap::new(),
        };
        if legacy {
            let old = root.path().join(TENANT).join("users");
            std::fs::create_dir_all(&old).unwrap();
            std::fs::write(old.join("users.db"), "kept").unwrap();
        }
        let start = std::sync::Barrier::new(16);
        let dirs: Vec<_> = std::thread::scope(|s| {
            let runs: Vec<_> = (0..16)
                .map(|_| {
                    s.spawn(|| {
                        start.wait();
                        customdb::service::connection_dir(root.path(), &record)
                    })
                })
                .collect();
            runs.into_iter().map(|r| r.join().unwrap()).collect()
        });
        let expected = root.path().canonicalize().unwrap().join("con_2");
        for d in dirs {
            assert_eq!(d.expect("every first run gets the folder"), expected);
        }
        if legacy {
            assert_eq!(
                std::fs::read_to_string(expected.join("users.db")).unwrap(),
                "kept"
            );
        }
    }
}

#[test]
fn connection_secrets_are_never_on_disk_in_clear() {
    let w = world(false, json!({}));
    let secret = "s3cr3t-db-password-0xC0FFEE";
    let mut record = w
        .core
        .store
        .sync()
        .get_connection(TENANT, "users")
        .unwrap()
        .unwrap();
    record
        .configuration
        .insert("DB_PASSWORD".into(), secret.into());
    w.core.store.sync().put_connection(&record).unwrap();
    let back = w
        .core
        .store
        .sync()
        .get_connection(TENANT, "users")
        .unwrap()
        .unwrap();
    assert_eq!(back.configuration["DB_PASSWORD"], secret);
    done(w.login("alice@example.com", ALICE_PW));
    for suffix in ["", "-wal", "-shm"] {
        let path = PathBuf::from(format!("{}{suffix}", w.store_path.display()));
        if let Ok(bytes) = std::fs::read(&path) {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{} holds the secret",
                path.display()
            );
            assert!(
                !bytes
                    .windows(ALICE_PW.len())
                    .any(|w| w == ALICE_PW.as_bytes()),
                "{} holds a password",
                path.display()
            );
        }
    }
    // Another key cannot open it.
    drop(w.core);
    let other = Store::open(
        &w.store_path,
        Sealer::from_text(&Sealer::generate_key()).unwrap(),
    )
    .unwrap();
    assert!(other.get_connection(TENANT, "users").is_err());
}

/// The writer half of the SIGKILL test: when `CUSTOMDB_WRITER_STORE` names a store, this test
/// writes users forever, printing each id after its commit returned.
#[test]
fn a_killed_writer_loses_no_acknowledged_write() {
    use std::io::{BufRead, BufReader, Write};
    if let Ok(path) = std::env::var("CUSTOMDB_WRITER_STORE") {
        let key = std::env::var("CUSTOMDB_WRITER_KEY").unwrap();
        let store = Store::open(Path::new(&path), Sealer::from_text(&key).unwrap()).unwrap();
        let options = customdb::domain::profile::ProfileOptions {
            connection: "users".into(),
            ..Default::default()
        };
        let mut out = std::io::stdout().lock();
        for i in 0.. {
            let raw = json!({"user_id": i, "email": format!("u{i}@example.com"), "user_metadata": {"pad": "x".repeat(2000)}});
            let profile = customdb::domain::profile::normalize(&raw, &options).unwrap();
            store
                .cache_profile(
                    TENANT,
                    "users",
                    profile,
                    Default::default(),
                    customdb::store::Cached::Login(Default::default()),
                    None,
                )
                .wait()
                .unwrap();
            writeln!(out, "{i}").unwrap();
            out.flush().unwrap();
        }
        unreachable!();
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let key = Sealer::generate_key();
    Store::open(&path, Sealer::from_text(&key).unwrap())
        .unwrap()
        .ensure_tenant(TENANT)
        .unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "flows::a_killed_writer_loses_no_acknowledged_write",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("CUSTOMDB_WRITER_STORE", &path)
        .env("CUSTOMDB_WRITER_KEY", &key)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut acknowledged = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let Ok(n) = line.unwrap().trim().parse::<u64>() else {
            continue;
        };
        acknowledged.push(n);
        if acknowledged.len() == 300 {
            rustix::process::kill_process(
                rustix::process::Pid::from_raw(child.id() as i32).unwrap(),
                rustix::process::Signal::KILL,
            )
            .unwrap();
            break;
        }
    }
    let status = child.wait().unwrap();
    assert!(!status.success(), "the writer was killed");
    let check = rusqlite::Connection::open(&path).unwrap();
    let integrity: String = check
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
    let store = Store::open(&path, Sealer::from_text(&key).unwrap()).unwrap();
    for n in acknowledged {
        assert!(
            store
                .get_user(TENANT, &format!("auth0|{n}"))
                .unwrap()
                .is_some(),
            "acknowledged user {n} is missing"
        );
    }
}

type PatchRow = (&'static str, Value, Result<Value, Vec<String>>);

/// (case, PATCH body, expected: Ok(subset of the user) or Err(the 400's violations))
fn patch_rules(migrated: bool) -> Vec<PatchRow> {
    let err = |rules: &[&str]| Err(rules.iter().map(|r| r.to_string()).collect());
    let owned = "cannot be changed for a user of a custom database without import mode; the script's profile owns it (allowed: app_metadata, user_metadata, blocked, email, password)";
    let mut rows: Vec<PatchRow> = vec![
        (
            "metadata merges at the top level",
            json!({"user_metadata": {"theme": "dark", "lang": "fr"}}),
            Ok(json!({"user_metadata": {"theme": "dark", "lang": "fr"}})),
        ),
        (
            "null deletes one key",
            json!({"user_metadata": {"lang": null}}),
            Ok(json!({"user_metadata": {"theme": "dark"}})),
        ),
        (
            "{} clears",
            json!({"user_metadata": {}}),
            Ok(json!({"user_metadata": {}})),
        ),
        (
            "app_metadata reserved names",
            json!({"app_metadata": {"email": "x"}}),
            err(&["app_metadata.email is a name Auth0 reserves"]),
        ),
        (
            "metadata keys",
            json!({"app_metadata": {"a$b": 1}}),
            err(&["app_metadata.a$b is not a valid key (no '.' or '$')"]),
        ),
        (
            "blocked",
            json!({"blocked": true}),
            Ok(json!({"blocked": true})),
        ),
        (
            "unblocked",
            json!({"blocked": false}),
            Ok(json!({"blocked": false})),
        ),
        (
            "blocked must be boolean",
            json!({"blocked": "yes"}),
            err(&["blocked must be true or false"]),
        ),
        (
            "unknown fields",
            json!({"logins_count": 5, "identities": []}),
            err(&[
                "logins_count cannot be changed",
                "identities cannot be changed",
            ]),
        ),
        (
            "another connection",
            json!({"connection": "other", "blocked": false}),
            err(&["connection must be the user's connection, users"]),
        ),
        (
            "a bad email",
            json!({"email": "nope"}),
            err(&["email must be an email address"]),
        ),
        (
            "a too long password",
            json!({"password": "x".repeat(73)}),
            err(&["password must be a string of 1 to 72 bytes"]),
        ),
    ];
    if migrated {
        rows.extend([
            (
                "root attributes once migrated",
                json!({"name": "Alice L.", "nickname": "al", "phone_number": "+14155550100"}),
                Ok(json!({"name": "Alice L.", "nickname": "al", "phone_number": "+14155550100"})),
            ),
            (
                "root attribute rules",
                json!({"phone_number": "12", "picture": "ftp://x"}),
                err(&[
                    "phone_number must be an E.164 number such as +14155550100",
                    "picture must be an http(s) URL",
                ]),
            ),
            (
                "email_verified alone once migrated",
                json!({"email_verified": false}),
                Ok(json!({"email_verified": false})),
            ),
        ]);
    } else {
        rows.extend([
            ("root attributes without import", json!({"name": "Alice L.", "nickname": "al"}), Err(vec![format!("name {owned}"), format!("nickname {owned}")])),
            ("email_verified alone without import", json!({"email_verified": true}), err(&["email_verified can only be changed together with email for a user of a custom database without import mode"])),
        ]);
    }
    rows
}

fn check_patches(w: &World, migrated: bool) {
    for (name, body, expected) in patch_rules(migrated) {
        match (w.patch("auth0|1", &body), expected) {
            (Got::Done(user), Ok(subset)) => {
                crate::util::matches(&user, &subset)
                    .unwrap_or_else(|m| panic!("{name}: {m}\n{user}"));
            }
            (Got::Refused(Refusal::BadRequest(v)), Err(rules)) => {
                let got: Vec<String> = v.iter().map(ToString::to_string).collect();
                assert_eq!(got, rules, "{name}");
            }
            (other, want) => panic!("{name}: got {other:?}, want {want:?}"),
        }
    }
}

#[test]
fn patch_rules_without_import() {
    let w = world(false, json!({}));
    done(w.login("alice@example.com", ALICE_PW));
    check_patches(&w, false);
    // email and password go through their scripts, then the cache follows.
    let user = done(w.patch("auth0|1", &json!({"email": "alice@example.net", "email_verified": true, "password": "patched password"})));
    assert_eq!(
        (user["email"].as_str(), user["email_verified"].as_bool()),
        (Some("alice@example.net"), Some(true))
    );
    done(w.login("alice@example.net", "patched password"));

    // A PATCH is one write: when a script fails, nothing of it is kept, not even what an
    // earlier script of the same PATCH did (the email, here).
    let before = done(w.read("auth0|1"));
    let mut record = w
        .core
        .store
        .sync()
        .get_connection(TENANT, "users")
        .unwrap()
        .unwrap();
    record.scripts.insert(
        Action::ChangePassword,
        "function changePassword(email, password, callback) { callback(new Error('the database is down')); }".into(),
    );
    w.core.store.sync().put_connection(&record).unwrap();
    let body = json!({"email": "alice@example.org", "app_metadata": {"plan": "gold"}, "blocked": true, "password": "another one"});
    let answer = w.patch("auth0|1", &body);
    assert!(
        matches!(answer, Got::Refused(Refusal::ScriptFailed { .. })),
        "{answer:?}"
    );
    let after = done(w.read("auth0|1"));
    assert_eq!(after, before, "the store is as it was before the PATCH");
}

#[test]
fn patch_rules_once_migrated() {
    let w = world(true, json!({}));
    done(w.login("alice@example.com", ALICE_PW));
    check_patches(&w, true);
    let user = done(w.patch(
        "auth0|1",
        &json!({"email": "Alice@Example.net", "password": "patched password"}),
    ));
    assert_eq!(
        user["email"], "alice@example.net",
        "lowercased in import mode"
    );
    w.legacy_sql("DROP TABLE users");
    done(w.login("alice@example.net", "patched password"));
}

#[test]
fn cache_policies_and_listing() {
    let w = world(
        false,
        json!({"cache_invalidate_before": "2999-01-01T00:00:00.000Z"}),
    );
    done(w.login("alice@example.com", ALICE_PW));
    done(got(block_on(w.core.get_user(
        TENANT,
        "users",
        "bob@example.com",
    ))));
    let alice = done(w.read("auth0|1"));
    assert_eq!(
        alice["stale"], true,
        "cached before invalidate_before: served, marked stale"
    );

    let mut record = w
        .core
        .store
        .sync()
        .get_connection(TENANT, "users")
        .unwrap()
        .unwrap();
    record.options.cache_expired = Some(CacheExpired::Evict);
    w.core.store.sync().put_connection(&record).unwrap();
    assert_eq!(
        w.read("auth0|1"),
        Got::Refused(Refusal::NotFound),
        "evicted"
    );
    done(w.login("alice@example.com", ALICE_PW));
    assert!(block_on(w.core.evict(TENANT, "auth0|2")).unwrap());

    let page = dto::user_page(
        &block_on(
            w.core
                .list_users(TENANT, Some("users"), Some("ALICE"), 0, 50),
        )
        .unwrap(),
    );
    assert_eq!(
        (page["total"].as_u64(), page["users"][0]["user_id"].as_str()),
        (Some(1), Some("auth0|1"))
    );
    let all = dto::user_page(&block_on(w.core.list_users(TENANT, None, None, 0, 50)).unwrap());
    assert_eq!(all["total"], 1, "bob was evicted");
}

#[test]
fn cache_ages_follow_the_clock_and_times_compare_as_times() {
    let w = world(false, json!({"cache_max_age": 60}));
    done(w.login("alice@example.com", ALICE_PW));
    let fresh = done(w.read("auth0|1"));
    assert_eq!(fresh.get("stale"), None, "cached just now");
    w.clock.advance(61);
    let old = done(w.read("auth0|1"));
    assert_eq!(old["stale"], true, "61 s past a 60 s max age");

    // Invalidated as of an hour before the login, written with a +02:00 offset and no
    // milliseconds: as text it sorts after the cached date, as a time it is before it.
    let cached = time::parse(fresh["updated_at"].as_str().unwrap()).unwrap();
    let plus_two = jiff::tz::TimeZone::fixed(jiff::tz::offset(2));
    let an_hour_before = cached
        .checked_sub(jiff::SignedDuration::from_hours(1))
        .unwrap()
        .to_zoned(plus_two)
        .strftime("%Y-%m-%dT%H:%M:%S%:z")
        .to_string();
    let mut record = w
        .core
        .store
        .sync()
        .get_connection(TENANT, "users")
        .unwrap()
        .unwrap();
    record.options = ConnectionOptions {
        cache_invalidate_before: Some(time::parse(&an_hour_before).unwrap()),
        ..Default::default()
    };
    w.core.store.sync().put_connection(&record).unwrap();
    let user = done(w.read("auth0|1"));
    assert_eq!(user.get("stale"), None, "cached after {an_hour_before}");
}

#[test]
fn connections_import_and_export_as_deploy_cli_folders() {
    let w = world(false, json!({}));
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("pg-users");
    let out = std::process::Command::new(crate::util::customdb_exe())
        .args(["init", folder.to_str().unwrap(), "--template", "postgres"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let keywords = customdb::layout::Keywords::from_map(
        [(
            "PG_URL".to_string(),
            "postgres://u:p@db.example.com/users".to_string(),
        )]
        .into(),
    );
    let record = block_on(w.core.import_connection(TENANT, &folder, &keywords))
        .unwrap()
        .unwrap();
    assert_eq!(record.scripts.len(), 7);
    assert!(
        !record.options.rest.contains_key("configuration")
            && !record.options.rest.contains_key("customScripts")
    );
    let stored = w
        .core
        .store
        .sync()
        .get_connection(TENANT, "pg-users")
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.configuration["DB_URL"],
        "postgres://u:p@db.example.com/users"
    );
    let nothing = customdb::layout::Keywords::default();
    let missing = block_on(w.core.import_connection(TENANT, &folder, &nothing))
        .unwrap()
        .unwrap_err();
    assert!(missing.contains("##PG_URL##"), "{missing}");

    let exported = dir.path().join("exported");
    customdb::service::export_connection(&stored, &exported).unwrap();
    let text = std::fs::read_to_string(exported.join("database.json")).unwrap();
    assert!(text.contains("\"DB_URL\": \"##DB_URL##\""), "{text}");
    assert!(
        !text.contains("u:p@db.example.com"),
        "no secret is exported: {text}"
    );
    let names: Vec<String> = w
        .core
        .store
        .sync()
        .list_connections(TENANT)
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, ["pg-users", "users"]);
    assert!(
        w.core
            .store
            .sync()
            .delete_connection(TENANT, &stored.id)
            .unwrap()
    );
    assert!(
        w.core
            .store
            .sync()
            .get_connection(TENANT, "pg-users")
            .unwrap()
            .is_none()
    );
    let again = customdb::layout::read(&exported).unwrap();
    assert_eq!(again.scripts, stored.scripts);
}

#[test]
fn scripts_get_context_when_the_connection_enables_it() {
    let w = world(false, json!({"enable_script_context": true}));
    let login = "function login(email, password, context, callback) { callback(null, { user_id: 9, email: email, nickname: typeof context }); }";
    let mut record = w
        .core
        .store
        .sync()
        .get_connection(TENANT, "users")
        .unwrap()
        .unwrap();
    record.scripts.insert(Action::Login, login.into());
    w.core.store.sync().put_connection(&record).unwrap();
    let user = done(w.login("zed@example.com", "any password"));
    assert_eq!(user.profile["nickname"], "object");

    // Without the option the same script's third argument is the callback: Auth0 would call
    // `context(...)`, so the run fails instead of logging in.
    record.options.enable_script_context = None;
    w.core.store.sync().put_connection(&record).unwrap();
    assert!(matches!(
        w.login("zed@example.com", "any password"),
        Got::Refused(Refusal::ScriptFailed { .. })
    ));
}

#[test]
fn tickets_are_used_once_and_do_not_pile_up() {
    use customdb::service::{Redeemed, TicketRequest};
    let w = world(false, json!({}));
    let request = TicketRequest {
        connection: "users".into(),
        email: "alice@example.com".into(),
        result_url: None,
        ttl_secs: 60,
        mark_email_verified: false,
        issuer: customdb::store::Issuer::Anonymous,
    };
    let ids: Vec<String> = (0..customdb::store::TICKETS_PER_EMAIL + 2)
        .map(|_| block_on(w.core.issue_ticket(TENANT, request.clone())).unwrap())
        .collect();
    let redeem = |id: &str| block_on(w.core.redeem_ticket(TENANT, id, "a new password 1")).unwrap();
    assert_eq!(
        redeem(&ids[0]),
        Redeemed::InvalidTicket,
        "the oldest were dropped"
    );
    assert_eq!(redeem(&ids[1]), Redeemed::InvalidTicket);
    assert_eq!(redeem(&ids[2]), Redeemed::Changed { result_url: None });
    assert_eq!(redeem(&ids[2]), Redeemed::InvalidTicket, "used once");
    assert_eq!(
        block_on(
            w.core
                .redeem_ticket("another-tenant", &ids[3], "x-password-1")
        )
        .unwrap(),
        Redeemed::InvalidTicket,
        "a ticket belongs to its tenant"
    );
    done(w.login("alice@example.com", "a new password 1"));

    // Expired tickets are refused.
    let expired = block_on(w.core.issue_ticket(
        TENANT,
        TicketRequest {
            ttl_secs: 1,
            ..request
        },
    ))
    .unwrap();
    w.clock.advance(2);
    assert_eq!(redeem(&expired), Redeemed::InvalidTicket);
}

#[test]
fn reads_from_memory_see_every_write() {
    let w = world(false, json!({}));
    done(w.login("alice@example.com", ALICE_PW));
    let read = || w.read("auth0|1");
    // The first read fills the memory; the second is served from it.
    assert_eq!(done(read())["logins_count"], 1);
    assert_eq!(done(read())["logins_count"], 1);

    done(w.login("alice@example.com", ALICE_PW));
    assert_eq!(
        done(read())["logins_count"],
        2,
        "a login refreshes the copy"
    );

    done(w.patch(
        "auth0|1",
        &json!({"user_metadata": {"theme": "dark"}, "blocked": true}),
    ));
    let alice = done(read());
    assert_eq!(
        (&alice["user_metadata"]["theme"], &alice["blocked"]),
        (&json!("dark"), &json!(true)),
        "a PATCH refreshes the copy"
    );

    assert!(block_on(w.core.evict(TENANT, "auth0|1")).unwrap());
    assert_eq!(
        read(),
        Got::Refused(Refusal::NotFound),
        "a delete drops the copy"
    );
}
