//! The rules of `app_metadata` and `user_metadata`: keys without `.` or `$`, Auth0's reserved
//! names, the legacy `metadata` alias, and Auth0's top-level merge for PATCH.

use serde_json::{Map, Value};

use super::Violation;

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

/// `app_metadata` as a script returned it: `metadata` is its legacy name; when both come,
/// `app_metadata` wins key by key (with a warning).
pub(super) fn app_metadata(
    input: &Map<String, Value>,
    warnings: &mut Vec<String>,
) -> Option<Value> {
    match (input.get("app_metadata"), input.get("metadata")) {
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
    }
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
