//! The normalized profile (SPEC §3): what `login`/`get_user` return, validated and mapped onto
//! Auth0's user profile — `auth0|` ids and `identities[0]`, root attributes with their types
//! and lengths, metadata rules, tokens moved into the identity, defaults for nickname and
//! picture. Pure functions over JSON; every rule is a row of a table.

use md5::Digest as _;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::domain::names;

/// Profiles above this size are stored with a warning (Auth0's documented 10 KB limit).
pub const WARN_BYTES: usize = 10 * 1024;

/// How a connection normalizes what its scripts return.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProfileOptions {
    /// The connection's name, written into `identities[0]`.
    pub connection: String,
    /// Import mode lowercases emails (they live in our store); without it they keep their case.
    pub import_mode: bool,
    /// Properties never stored (`options.non_persistent_attrs`).
    pub non_persistent_attrs: Vec<String>,
    /// Profiles larger than this (as JSON) are refused.
    pub max_bytes: usize,
}

impl Default for ProfileOptions {
    fn default() -> Self {
        ProfileOptions {
            connection: String::new(),
            import_mode: false,
            non_persistent_attrs: Vec::new(),
            max_bytes: 64 * 1024,
        }
    }
}

impl ProfileOptions {
    /// How the connection `name` with these options normalizes profiles.
    pub fn of(name: &str, options: &crate::domain::options::ConnectionOptions) -> Self {
        ProfileOptions {
            connection: name.to_string(),
            import_mode: options.import_mode(),
            non_persistent_attrs: options.non_persistent_attrs.clone().unwrap_or_default(),
            ..ProfileOptions::default()
        }
    }
}

/// One broken rule: the field and what it must be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    pub field: String,
    pub rule: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.field, self.rule)
    }
}

/// A profile that passed every rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// The root id, `auth0|<id>`.
    pub user_id: String,
    /// The id the script returned, as a string (the identity's `user_id`).
    pub id: String,
    pub email: Option<String>,
    pub username: Option<String>,
    pub phone_number: Option<String>,
    /// The whole normalized profile.
    pub value: Map<String, Value>,
    /// Rules that hold but deserve attention (size above 10 KB, `metadata` and `app_metadata`
    /// both given).
    pub warnings: Vec<String>,
}

/// The kinds of root attribute.
#[derive(Clone, Copy)]
enum Kind {
    Text { min: usize, max: usize },
    Bool,
    Email,
    Username,
    Url,
    Phone,
}

/// Root attributes and their rules (Auth0's user-profile-structure page).
const ROOT: &[(&str, Kind)] = &[
    ("email", Kind::Email),
    ("email_verified", Kind::Bool),
    ("username", Kind::Username),
    ("name", Kind::Text { min: 1, max: 150 }),
    ("given_name", Kind::Text { min: 1, max: 150 }),
    ("family_name", Kind::Text { min: 1, max: 150 }),
    ("nickname", Kind::Text { min: 1, max: 350 }),
    ("picture", Kind::Url),
    ("phone_number", Kind::Phone),
    ("phone_verified", Kind::Bool),
];

/// `app_metadata` keys Auth0 reserves for itself.
pub const RESERVED_APP_METADATA: &[&str] = &[
    "__tenant",
    "_id",
    "blocked",
    "clientID",
    "created_at",
    "email_verified",
    "email",
    "globalClientID",
    "global_client_id",
    "identities",
    "lastIP",
    "lastLogin",
    "loginsCount",
    "metadata",
    "multifactor_last_modified",
    "multifactor",
    "updated_at",
    "user_id",
];

/// Properties the store owns; a script cannot set them.
const MANAGED: &[&str] = &[
    "identities",
    "created_at",
    "updated_at",
    "last_login",
    "logins_count",
    "blocked",
];

/// Validates and maps what a script returned. All broken rules are reported at once.
pub fn normalize(raw: &Value, options: &ProfileOptions) -> Result<Profile, Vec<Violation>> {
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let bad = |errors: &mut Vec<Violation>, field: &str, rule: &str| {
        errors.push(Violation {
            field: field.to_string(),
            rule: rule.to_string(),
        });
    };
    let Some(input) = raw.as_object() else {
        return Err(vec![Violation {
            field: "profile".into(),
            rule: "must be an object".into(),
        }]);
    };
    let mut out = Map::new();

    let id = match input.get("user_id").or_else(|| input.get("id")) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Some(n.to_string()),
        Some(Value::String(_)) => {
            bad(&mut errors, "user_id", "must not be empty");
            None
        }
        Some(_) => {
            bad(&mut errors, "user_id", "must be a string or an integer");
            None
        }
        None => {
            bad(&mut errors, "user_id", "is required (or its alias id)");
            None
        }
    };
    let id = id.unwrap_or_default();
    out.insert("user_id".into(), json!(names::user_id(&id)));

    for &(field, kind) in ROOT {
        let Some(value) = input.get(field) else {
            continue;
        };
        if value.is_null() {
            continue;
        }
        match check(kind, value, options) {
            Ok(v) => {
                out.insert(field.into(), v);
            }
            Err(rule) => bad(&mut errors, field, &rule),
        }
    }

    // Defaults: nickname from the email's local part, picture from Gravatar.
    let email = out.get("email").and_then(Value::as_str).map(str::to_string);
    if !out.contains_key("nickname") {
        let nick = email
            .as_deref()
            .and_then(|e| e.split('@').next())
            .or(out.get("username").and_then(Value::as_str))
            .unwrap_or(&id)
            .to_string();
        if !nick.is_empty() {
            out.insert("nickname".into(), json!(nick));
        }
    }
    if !out.contains_key("picture")
        && let Some(e) = &email
    {
        out.insert("picture".into(), json!(gravatar(e)));
    }

    // Metadata: `metadata` is the legacy name of `app_metadata`.
    let app = match (input.get("app_metadata"), input.get("metadata")) {
        (Some(a), Some(m)) => {
            warnings.push(
                "both app_metadata and metadata were returned; app_metadata wins key by key"
                    .to_string(),
            );
            match (m.as_object(), a.as_object()) {
                (Some(m), Some(a)) => {
                    let mut merged = m.clone();
                    merged.extend(a.clone());
                    Some(Value::Object(merged))
                }
                _ => Some(a.clone()),
            }
        }
        (Some(a), None) => Some(a.clone()),
        (None, Some(m)) => Some(m.clone()),
        (None, None) => None,
    };
    for (field, value) in [
        ("app_metadata", app),
        ("user_metadata", input.get("user_metadata").cloned()),
    ] {
        let Some(value) = value.filter(|v| !v.is_null()) else {
            continue;
        };
        if let Err(v) = check_metadata(field, &value) {
            errors.push(v);
            continue;
        }
        out.insert(field.into(), value);
    }

    // The identity, with the provider tokens moved into it.
    let mut identity = json!({
        "connection": options.connection,
        "provider": "auth0",
        "user_id": id,
        "isSocial": false,
    });
    for token in ["access_token", "refresh_token"] {
        if let Some(t) = input.get(token) {
            identity[token] = t.clone();
        }
    }
    out.insert("identities".into(), json!([identity]));

    // Everything else is kept, except what the store manages and what must not persist.
    let known: Vec<&str> = ROOT.iter().map(|(f, _)| *f).collect();
    for (key, value) in input {
        let taken = known.contains(&key.as_str())
            || MANAGED.contains(&key.as_str())
            || matches!(
                key.as_str(),
                "user_id"
                    | "id"
                    | "app_metadata"
                    | "metadata"
                    | "user_metadata"
                    | "access_token"
                    | "refresh_token"
            );
        if !taken {
            out.insert(key.clone(), value.clone());
        }
    }
    for attr in &options.non_persistent_attrs {
        if attr != "user_id" {
            out.remove(attr);
        }
    }

    let size = Value::Object(out.clone()).to_string().len();
    if size > options.max_bytes {
        bad(
            &mut errors,
            "profile",
            &format!(
                "is {size} bytes, above the maximum of {}",
                options.max_bytes
            ),
        );
    } else if size > WARN_BYTES {
        warnings.push(format!(
            "the profile is {size} bytes, above Auth0's 10 KB guidance"
        ));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Profile {
        user_id: names::user_id(&id),
        id,
        email,
        username: out
            .get("username")
            .and_then(Value::as_str)
            .map(str::to_string),
        phone_number: out
            .get("phone_number")
            .and_then(Value::as_str)
            .map(str::to_string),
        value: out,
        warnings,
    })
}

/// Checks one root attribute as normalization does (`None` when `field` is not a root
/// attribute); returns the value as it would be stored.
pub fn check_root(field: &str, value: &Value, import_mode: bool) -> Option<Result<Value, String>> {
    let (_, kind) = ROOT.iter().find(|(f, _)| *f == field)?;
    let options = ProfileOptions {
        import_mode,
        ..ProfileOptions::default()
    };
    Some(check(*kind, value, &options))
}

/// Auth0's metadata merge: at the top level only, a `null` deletes its key, and an empty
/// patch clears the metadata.
pub fn merge_metadata(
    current: &Map<String, Value>,
    patch: &Map<String, Value>,
) -> Map<String, Value> {
    if patch.is_empty() {
        return Map::new();
    }
    let mut merged = current.clone();
    for (k, v) in patch {
        if v.is_null() {
            merged.remove(k);
        } else {
            merged.insert(k.clone(), v.clone());
        }
    }
    merged
}

/// Checks a metadata object as normalization does: an object whose keys (at any depth) hold
/// no `.` or `$`, and for `app_metadata` no reserved name.
pub fn check_metadata(field: &str, value: &Value) -> Result<(), Violation> {
    let bad = |f: String, rule: &str| Violation {
        field: f,
        rule: rule.to_string(),
    };
    let map = value
        .as_object()
        .ok_or_else(|| bad(field.to_string(), "must be an object"))?;
    if let Some(key) = bad_key(map) {
        return Err(bad(
            format!("{field}.{key}"),
            "is not a valid key (no '.' or '$')",
        ));
    }
    if field == "app_metadata"
        && let Some(key) = map
            .keys()
            .find(|k| RESERVED_APP_METADATA.contains(&k.as_str()))
    {
        return Err(bad(
            format!("app_metadata.{key}"),
            "is a name Auth0 reserves",
        ));
    }
    Ok(())
}

fn check(kind: Kind, value: &Value, options: &ProfileOptions) -> Result<Value, String> {
    match kind {
        Kind::Bool => value
            .as_bool()
            .map(Value::Bool)
            .ok_or("must be true or false".into()),
        Kind::Text { min, max } => {
            let s = value.as_str().ok_or("must be a string")?;
            let n = s.chars().count();
            if n < min || n > max {
                return Err(format!("must be {min} to {max} characters long"));
            }
            Ok(json!(s))
        }
        Kind::Email => {
            let s = value.as_str().ok_or("must be a string")?;
            check_email(s)?;
            Ok(json!(if options.import_mode {
                s.to_lowercase()
            } else {
                s.to_string()
            }))
        }
        Kind::Username => {
            let s = value.as_str().ok_or("must be a string")?;
            let n = s.chars().count();
            if n == 0 || n > 128 {
                return Err("must be 1 to 128 characters long".into());
            }
            if let Some(c) = s
                .chars()
                .find(|c| !(c.is_ascii_alphanumeric() || "@^$!-#.+'~_`".contains(*c)))
            {
                return Err(format!(
                    "may not contain {c:?} (letters, digits and @^$!-#.+'~_` only)"
                ));
            }
            if check_email(s).is_ok() {
                return Err("may not be an email address".into());
            }
            Ok(json!(s.to_lowercase()))
        }
        Kind::Url => {
            let s = value.as_str().ok_or("must be a string")?;
            match url::Url::parse(s) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(json!(s)),
                _ => Err("must be an http(s) URL".into()),
            }
        }
        Kind::Phone => {
            let s = value.as_str().ok_or("must be a string")?;
            let digits = s.strip_prefix('+').unwrap_or("");
            if digits.is_empty() || digits.len() > 15 || !digits.bytes().all(|b| b.is_ascii_digit())
            {
                return Err("must be an E.164 number such as +14155550100".into());
            }
            Ok(json!(s))
        }
    }
}

/// Email syntax as Auth0 applies it: one `@`, a local part of at most 64 characters, a dotted
/// domain, at most 254 characters, no spaces.
pub fn check_email(s: &str) -> Result<(), String> {
    if s.chars().count() > 254 {
        return Err("must be at most 254 characters long".into());
    }
    let (local, domain) = s.rsplit_once('@').ok_or("must be an email address")?;
    if local.is_empty() || local.contains('@') {
        return Err("must be an email address".into());
    }
    if local.chars().count() > 64 {
        return Err("must have a local part of at most 64 characters".into());
    }
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        });
    if !domain_ok || s.chars().any(char::is_whitespace) {
        return Err("must be an email address".into());
    }
    Ok(())
}

/// The first key (at any depth) with `.` or `$`.
fn bad_key(map: &Map<String, Value>) -> Option<String> {
    for (k, v) in map {
        if k.contains('.') || k.contains('$') || k.is_empty() {
            return Some(k.clone());
        }
        if let Some(inner) = v.as_object()
            && let Some(deep) = bad_key(inner)
        {
            return Some(format!("{k}.{deep}"));
        }
    }
    None
}

/// Auth0's default picture: the Gravatar of the email, falling back to initials.
pub fn gravatar(email: &str) -> String {
    let hash = hex::encode(md5::Md5::digest(email.trim().to_lowercase().as_bytes()));
    let initials: String = email
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(2)
        .collect::<String>()
        .to_lowercase();
    format!(
        "https://s.gravatar.com/avatar/{hash}?s=480&r=pg&d=https%3A%2F%2Fcdn.auth0.com%2Favatars%2F{initials}.png"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> ProfileOptions {
        ProfileOptions {
            connection: "users".into(),
            ..ProfileOptions::default()
        }
    }

    /// (case, returned profile, expected subset of the normalized profile or the violations)
    #[test]
    fn normalization_rules() {
        let ok = |raw: Value| normalize(&raw, &opts()).map(|p| Value::Object(p.value));
        type Row = (&'static str, Value, Result<Value, Vec<&'static str>>);
        let table: Vec<Row> = vec![
            (
                "numeric id becomes a prefixed string",
                json!({"user_id": 42}),
                Ok(
                    json!({"user_id": "auth0|42", "identities": [{"connection": "users", "provider": "auth0", "user_id": "42", "isSocial": false}]}),
                ),
            ),
            (
                "id is an alias",
                json!({"id": "abc"}),
                Ok(json!({"user_id": "auth0|abc"})),
            ),
            (
                "missing id",
                json!({"email": "a@example.com"}),
                Err(vec!["user_id is required (or its alias id)"]),
            ),
            (
                "object id",
                json!({"user_id": {"x": 1}}),
                Err(vec!["user_id must be a string or an integer"]),
            ),
            (
                "nickname and picture defaults",
                json!({"user_id": 1, "email": "Ada@Example.com"}),
                Ok(
                    json!({"email": "Ada@Example.com", "nickname": "Ada", "picture": gravatar("Ada@Example.com")}),
                ),
            ),
            (
                "bad email",
                json!({"user_id": 1, "email": "not an email"}),
                Err(vec!["email must be an email address"]),
            ),
            (
                "long local part",
                json!({"user_id": 1, "email": format!("{}@example.com", "a".repeat(65))}),
                Err(vec![
                    "email must have a local part of at most 64 characters",
                ]),
            ),
            (
                "phone",
                json!({"user_id": 1, "phone_number": "555-1234"}),
                Err(vec![
                    "phone_number must be an E.164 number such as +14155550100",
                ]),
            ),
            (
                "username lowercased",
                json!({"user_id": 1, "username": "Ada_L"}),
                Ok(json!({"username": "ada_l"})),
            ),
            (
                "username characters",
                json!({"user_id": 1, "username": "ada lovelace"}),
                Err(vec![
                    "username may not contain ' ' (letters, digits and @^$!-#.+'~_` only)",
                ]),
            ),
            (
                "name length",
                json!({"user_id": 1, "name": ""}),
                Err(vec!["name must be 1 to 150 characters long"]),
            ),
            (
                "metadata is app_metadata",
                json!({"user_id": 1, "metadata": {"plan": "pro"}}),
                Ok(json!({"app_metadata": {"plan": "pro"}})),
            ),
            (
                "reserved app_metadata",
                json!({"user_id": 1, "app_metadata": {"blocked": true}}),
                Err(vec!["app_metadata.blocked is a name Auth0 reserves"]),
            ),
            (
                "metadata keys",
                json!({"user_id": 1, "user_metadata": {"a": {"b.c": 1}}}),
                Err(vec![
                    "user_metadata.a.b.c is not a valid key (no '.' or '$')",
                ]),
            ),
            (
                "tokens move into the identity",
                json!({"user_id": 1, "access_token": "at"}),
                Ok(json!({"identities": [{"access_token": "at"}]})),
            ),
            (
                "other properties are kept",
                json!({"user_id": 1, "mfa_factors": [{"phone": {"value": "+15551234567"}}], "favourite": "tea"}),
                Ok(
                    json!({"favourite": "tea", "mfa_factors": [{"phone": {"value": "+15551234567"}}]}),
                ),
            ),
            (
                "several errors at once",
                json!({"user_id": 1, "email_verified": "yes", "picture": "ftp://x"}),
                Err(vec![
                    "email_verified must be true or false",
                    "picture must be an http(s) URL",
                ]),
            ),
            (
                "not an object",
                json!("ada"),
                Err(vec!["profile must be an object"]),
            ),
        ];
        for (name, raw, expected) in table {
            match (ok(raw), expected) {
                (Ok(actual), Ok(subset)) => {
                    crate::harness::matches(&actual, &subset)
                        .unwrap_or_else(|m| panic!("{name}: {m}\n{actual}"));
                }
                (Err(v), Err(rules)) => {
                    let got: Vec<String> = v.iter().map(|v| v.to_string()).collect();
                    assert_eq!(got, rules, "{name}");
                }
                (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn import_mode_lowercases_email_and_size_is_bounded() {
        let mut o = opts();
        o.import_mode = true;
        let p = normalize(&json!({"user_id": 1, "email": "Ada@Example.COM"}), &o).unwrap();
        assert_eq!(p.email.as_deref(), Some("ada@example.com"));
        o.non_persistent_attrs = vec!["secret".into()];
        o.max_bytes = 200;
        let p = normalize(&json!({"user_id": 1, "secret": "x"}), &o).unwrap();
        assert!(!p.value.contains_key("secret"));
        let err = normalize(&json!({"user_id": 1, "blob": "x".repeat(300)}), &o).unwrap_err();
        assert_eq!(err[0].field, "profile");
        assert!(
            err[0].rule.contains("above the maximum of 200"),
            "{}",
            err[0].rule
        );
        o.max_bytes = 1 << 20;
        let p = normalize(&json!({"user_id": 1, "blob": "x".repeat(11_000)}), &o).unwrap();
        assert!(p.warnings[0].contains("10 KB"), "{:?}", p.warnings);
    }
}
