//! The shapes of request bodies, checked before anything runs: each field's JSON type, the
//! required ones, and no unknown ones, answered with Auth0's payload-validation sentence that
//! names the property. A body that passes reaches the service layer; a body that fails never reaches a
//! script.

use serde_json::{Value, json};

use super::ApiError;
use crate::service::{CachedUser, UserPage};
use crate::store::User;

/// A user as Auth0's Management API shows it: the cached profile with the metadata, `blocked`
/// and the dates the store keeps.
pub fn user(user: &User) -> Value {
    let mut out = user.profile.clone();
    out.insert(
        "app_metadata".into(),
        Value::Object(user.app_metadata.clone()),
    );
    out.insert(
        "user_metadata".into(),
        Value::Object(user.user_metadata.clone()),
    );
    out.insert("blocked".into(), json!(user.blocked));
    out.insert("created_at".into(), json!(user.created_at));
    out.insert("updated_at".into(), json!(user.updated_at));
    if let Some(l) = &user.last_login {
        out.insert("last_login".into(), json!(l));
    }
    out.insert("logins_count".into(), json!(user.logins_count));
    Value::Object(out)
}

/// Auth0's `fields`/`include_fields` query parameters: which fields of each record an answer
/// keeps (`fields` a comma list; `include_fields=false` keeps all the others instead).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Projection {
    fields: Option<Vec<String>>,
    exclude: bool,
}

impl Projection {
    pub fn new(fields: Option<&str>, include_fields: bool) -> Self {
        let fields = fields.map(|f| {
            f.split(',')
                .map(str::trim)
                .filter(|f| !f.is_empty())
                .map(str::to_string)
                .collect()
        });
        Projection {
            fields,
            exclude: !include_fields,
        }
    }

    /// `record` with only the fields asked for (or without the fields excluded).
    pub fn apply(&self, record: Value) -> Value {
        match (&self.fields, record) {
            (Some(fields), Value::Object(map)) => Value::Object(
                map.into_iter()
                    .filter(|(k, _)| fields.contains(k) != self.exclude)
                    .collect(),
            ),
            (_, record) => record,
        }
    }
}

/// A cached user as `GET /users/{id}` shows it: marked `"stale": true` past its cache policy.
pub fn cached_user(cached: &CachedUser) -> Value {
    let mut out = user(&cached.user);
    if cached.stale {
        out["stale"] = json!(true);
    }
    out
}

/// A page of users with Auth0's totals (`include_totals=true`).
pub fn user_page(page: &UserPage) -> Value {
    json!({
        "start": page.start,
        "limit": page.limit,
        "length": page.users.len(),
        "total": page.total,
        "users": page.users.iter().map(user).collect::<Vec<_>>(),
    })
}

/// The JSON type a field must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    String,
    Bool,
    Object,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::String => "string",
            Kind::Bool => "boolean",
            Kind::Object => "object",
        }
    }

    fn holds(self, value: &Value) -> bool {
        match self {
            Kind::String => value.is_string(),
            Kind::Bool => value.is_boolean(),
            Kind::Object => value.is_object(),
        }
    }
}

fn type_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// One field of a body: its name, its type, and whether it must be there.
pub type Field = (&'static str, Kind, bool);

/// `POST /api/v2/users` (Auth0's `UserCreate`).
pub const USER_CREATE: &[Field] = &[
    ("connection", Kind::String, true),
    ("email", Kind::String, false),
    ("password", Kind::String, false),
    ("username", Kind::String, false),
    ("phone_number", Kind::String, false),
    ("user_id", Kind::String, false),
    ("given_name", Kind::String, false),
    ("family_name", Kind::String, false),
    ("name", Kind::String, false),
    ("nickname", Kind::String, false),
    ("picture", Kind::String, false),
    ("user_metadata", Kind::Object, false),
    ("app_metadata", Kind::Object, false),
    ("blocked", Kind::Bool, false),
    ("email_verified", Kind::Bool, false),
    ("phone_verified", Kind::Bool, false),
    ("verify_email", Kind::Bool, false),
];

/// `POST /dbconnections/signup`.
pub const SIGNUP: &[Field] = &[
    ("client_id", Kind::String, true),
    ("connection", Kind::String, true),
    ("email", Kind::String, true),
    ("password", Kind::String, true),
    ("username", Kind::String, false),
    ("given_name", Kind::String, false),
    ("family_name", Kind::String, false),
    ("name", Kind::String, false),
    ("nickname", Kind::String, false),
    ("picture", Kind::String, false),
    ("user_metadata", Kind::Object, false),
];

/// The first problem of `body` against `fields`, as the sentence Auth0's payload validation
/// answers (`'Expected type string but found type null' on property email`), or nothing.
pub fn problem(body: &Value, fields: &[Field]) -> Option<String> {
    let Some(object) = body.as_object() else {
        return Some(format!(
            "'Expected type object but found type {}'",
            type_of(body)
        ));
    };
    let unknown: Vec<&str> = object
        .keys()
        .map(String::as_str)
        .filter(|k| !fields.iter().any(|(name, ..)| name == k))
        .collect();
    if !unknown.is_empty() {
        return Some(format!(
            "Additional properties not allowed: {}",
            unknown.join(",")
        ));
    }
    for &(name, kind, required) in fields {
        match object.get(name) {
            None if required => return Some(format!("Missing required property: {name}")),
            None => {}
            Some(value) if !kind.holds(value) => {
                return Some(format!(
                    "'Expected type {} but found type {}' on property {name}",
                    kind.name(),
                    type_of(value)
                ));
            }
            Some(Value::String(s)) if s.is_empty() => {
                return Some(format!(
                    "'String is too short (0 chars), minimum 1' on property {name}"
                ));
            }
            Some(_) => {}
        }
    }
    None
}

/// The Management API's 400 for a body that breaks `fields`.
pub fn check_management(body: &Value, fields: &[Field]) -> Result<(), ApiError> {
    match problem(body, fields) {
        None => Ok(()),
        Some(p) => Err(ApiError::bad_request(format!(
            "Payload validation error: {p}"
        ))),
    }
}

/// `body` read as the typed body `T`, or the Management API's 400 naming the field at fault
/// (`ttl_sec: invalid type: string "x", expected i64`).
pub fn typed<T: serde::de::DeserializeOwned>(body: Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(body).map_err(|e| {
        let path = e.path().to_string();
        let at = if path == "." {
            String::new()
        } else {
            format!("{path}: ")
        };
        ApiError::bad_request(format!("Payload validation error: {at}{}", e.inner()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bodies_are_checked_field_by_field() {
        let table = [
            (
                json!({"connection": "db", "email": null}),
                Some("'Expected type string but found type null' on property email"),
            ),
            (
                json!({"connection": "db", "email": [[]]}),
                Some("'Expected type string but found type array' on property email"),
            ),
            (
                json!({"connection": "db", "password": 0}),
                Some("'Expected type string but found type number' on property password"),
            ),
            (
                json!({"email": "a@example.com"}),
                Some("Missing required property: connection"),
            ),
            (
                json!({"connection": "db", "emial": "x"}),
                Some("Additional properties not allowed: emial"),
            ),
            (
                json!({"connection": ""}),
                Some("'String is too short (0 chars), minimum 1' on property connection"),
            ),
            (
                json!([1]),
                Some("'Expected type object but found type array'"),
            ),
            (
                json!({"connection": "db", "email": "a@example.com", "blocked": false}),
                None,
            ),
        ];
        for (body, expected) in table {
            assert_eq!(problem(&body, USER_CREATE).as_deref(), expected, "{body}");
        }
    }
}
