//! The normalized profile (SPEC §3): what `login`/`get_user` return, validated and mapped onto
//! Auth0's user profile — `auth0|` ids and `identities[0]`, root attributes with their types
//! and lengths (`rules`), metadata rules (`metadata`), tokens moved into the identity, defaults
//! for nickname and picture. Pure functions over JSON; every rule is a row of a table.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::domain::names;

mod metadata;
mod rules;

pub use metadata::{RESERVED_APP_METADATA, check_metadata, merge_metadata};
use rules::{ROOT, check};
pub use rules::{check_email, check_root, gravatar};

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

impl Violation {
    pub fn new(field: &str, rule: &str) -> Self {
        Violation {
            field: field.to_string(),
            rule: rule.to_string(),
        }
    }
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
    let Some(input) = raw.as_object() else {
        return Err(vec![Violation::new("profile", "must be an object")]);
    };
    let mut draft = Draft::default();
    let id = draft.user_id(input);
    draft.root_attributes(input, options.import_mode);
    draft.defaults(&id);
    draft.metadata(input);
    draft.identity(input, &options.connection, &id);
    draft.the_rest(input, &options.non_persistent_attrs);
    draft.size(options.max_bytes);
    draft.finish(id)
}

/// A profile being normalized: what is kept so far, the broken rules, the warnings.
#[derive(Default)]
struct Draft {
    out: Map<String, Value>,
    errors: Vec<Violation>,
    warnings: Vec<String>,
}

impl Draft {
    fn bad(&mut self, field: &str, rule: &str) {
        self.errors.push(Violation::new(field, rule));
    }

    /// `user_id` (or its alias `id`): a non-empty string or an integer.
    fn user_id(&mut self, input: &Map<String, Value>) -> String {
        let id = match input.get("user_id").or_else(|| input.get("id")) {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(Value::Number(n)) if n.is_i64() || n.is_u64() => n.to_string(),
            Some(Value::String(_)) => {
                self.bad("user_id", "must not be empty");
                String::new()
            }
            Some(_) => {
                self.bad("user_id", "must be a string or an integer");
                String::new()
            }
            None => {
                self.bad("user_id", "is required (or its alias id)");
                String::new()
            }
        };
        self.out
            .insert("user_id".into(), json!(names::user_id(&id)));
        id
    }

    /// Every root attribute the script returned, checked by its row of the table.
    fn root_attributes(&mut self, input: &Map<String, Value>, import_mode: bool) {
        for &(field, kind) in ROOT {
            let Some(value) = input.get(field).filter(|v| !v.is_null()) else {
                continue;
            };
            match check(kind, value, import_mode) {
                Ok(v) => {
                    self.out.insert(field.into(), v);
                }
                Err(rule) => self.bad(field, &rule),
            }
        }
    }

    /// Defaults: nickname from the email's local part (else the username, else the id),
    /// picture from Gravatar.
    fn defaults(&mut self, id: &str) {
        let email = self.text("email");
        if !self.out.contains_key("nickname") {
            let nick = email
                .as_deref()
                .and_then(|e| e.split('@').next())
                .map(str::to_string)
                .or_else(|| self.text("username"))
                .unwrap_or_else(|| id.to_string());
            if !nick.is_empty() {
                self.out.insert("nickname".into(), json!(nick));
            }
        }
        if !self.out.contains_key("picture")
            && let Some(e) = &email
        {
            self.out.insert("picture".into(), json!(gravatar(e)));
        }
    }

    fn metadata(&mut self, input: &Map<String, Value>) {
        let app = metadata::app_metadata(input, &mut self.warnings);
        for (field, value) in [
            ("app_metadata", app),
            ("user_metadata", input.get("user_metadata").cloned()),
        ] {
            let Some(value) = value.filter(|v| !v.is_null()) else {
                continue;
            };
            match check_metadata(field, &value) {
                Ok(()) => {
                    self.out.insert(field.into(), value);
                }
                Err(v) => self.errors.push(v),
            }
        }
    }

    /// The identity, with the provider tokens moved into it.
    fn identity(&mut self, input: &Map<String, Value>, connection: &str, id: &str) {
        let mut identity = json!({
            "connection": connection,
            "provider": "auth0",
            "user_id": id,
            "isSocial": false,
        });
        for token in ["access_token", "refresh_token"] {
            if let Some(t) = input.get(token) {
                identity[token] = t.clone();
            }
        }
        self.out.insert("identities".into(), json!([identity]));
    }

    /// Everything else is kept, except what the store manages and what must not persist.
    fn the_rest(&mut self, input: &Map<String, Value>, non_persistent: &[String]) {
        for (key, value) in input {
            let taken = ROOT.iter().any(|(f, _)| f == key)
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
                self.out.insert(key.clone(), value.clone());
            }
        }
        for attr in non_persistent {
            if attr != "user_id" {
                self.out.remove(attr);
            }
        }
    }

    fn size(&mut self, max_bytes: usize) {
        let size = Value::Object(self.out.clone()).to_string().len();
        if size > max_bytes {
            self.bad(
                "profile",
                &format!("is {size} bytes, above the maximum of {max_bytes}"),
            );
        } else if size > WARN_BYTES {
            self.warnings.push(format!(
                "the profile is {size} bytes, above Auth0's 10 KB guidance"
            ));
        }
    }

    fn text(&self, field: &str) -> Option<String> {
        self.out
            .get(field)
            .and_then(Value::as_str)
            .map(str::to_string)
    }

    fn finish(self, id: String) -> Result<Profile, Vec<Violation>> {
        if !self.errors.is_empty() {
            return Err(self.errors);
        }
        Ok(Profile {
            user_id: names::user_id(&id),
            id,
            email: self.text("email"),
            username: self.text("username"),
            phone_number: self.text("phone_number"),
            value: self.out,
            warnings: self.warnings,
        })
    }
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
