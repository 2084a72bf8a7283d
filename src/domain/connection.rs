//! The top-level attributes of Auth0's connection object besides `name`, `strategy` and
//! `options`, as the SDKs declare them: `display_name`, `metadata`, `enabled_clients`,
//! `realms`, `is_domain_connection`, `show_as_button`. One parser for the Management API's
//! bodies and one shape for the store, the answers and the Deploy CLI folders. Pure data.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionAttributes {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Auth0: at most 10 keys, string values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled_clients: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub realms: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_domain_connection: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub show_as_button: Option<bool>,
}

impl ConnectionAttributes {
    /// The attribute names, in the order answers show them.
    pub const KEYS: [&'static str; 6] = [
        "display_name",
        "metadata",
        "enabled_clients",
        "realms",
        "is_domain_connection",
        "show_as_button",
    ];

    /// These attributes with the ones `body` names applied over them (a `null` unsets one),
    /// each checked; the error names the attribute and what it must be.
    pub fn patched(&self, body: &Map<String, Value>) -> Result<Self, String> {
        let mut current = match serde_json::to_value(self) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        };
        for key in Self::KEYS {
            match body.get(key) {
                None => {}
                Some(Value::Null) => {
                    current.remove(key);
                }
                Some(value) => {
                    current.insert(key.to_string(), value.clone());
                }
            }
        }
        let attributes: ConnectionAttributes =
            serde_json::from_value(Value::Object(current)).map_err(|e| {
                let what = e.to_string();
                format!("{what} (display_name is a string, metadata an object of strings, enabled_clients and realms lists of strings, is_domain_connection and show_as_button booleans)")
            })?;
        if let Some(metadata) = &attributes.metadata
            && (metadata.len() > 10 || metadata.iter().any(|(k, v)| k.len() > 255 || v.len() > 255))
        {
            return Err(
                "metadata has at most 10 keys, each key and value at most 255 characters".into(),
            );
        }
        Ok(attributes)
    }
}

/// A connection as a document: `id` (when it has one), `name`, `strategy` (`auth0`, the only
/// kind customdb serves), the attributes, then `options` as the caller encoded them (scripts
/// as sources or file names, configuration as values, keywords or `[encrypted]`). The one
/// encoder of the Management API's connection object, `database.json` and the Deploy CLI's
/// bodies.
pub fn document(
    id: Option<&str>,
    name: &str,
    attributes: &ConnectionAttributes,
    options: Map<String, Value>,
) -> Value {
    let mut object = Map::new();
    if let Some(id) = id {
        object.insert("id".into(), Value::from(id));
    }
    object.insert("name".into(), Value::from(name));
    object.insert("strategy".into(), Value::from("auth0"));
    if let Ok(Value::Object(map)) = serde_json::to_value(attributes) {
        object.extend(map);
    }
    object.insert("options".into(), Value::Object(options));
    Value::Object(object)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn attributes_patch_and_check() {
        let base = ConnectionAttributes::default()
            .patched(
                json!({"display_name": "Users", "realms": ["a"]})
                    .as_object()
                    .unwrap(),
            )
            .unwrap();
        let next = base
            .patched(
                json!({"realms": null, "show_as_button": true})
                    .as_object()
                    .unwrap(),
            )
            .unwrap();
        assert_eq!(next.display_name.as_deref(), Some("Users"));
        assert_eq!(next.realms, None);
        assert_eq!(next.show_as_button, Some(true));
        assert!(
            base.patched(json!({"display_name": 3}).as_object().unwrap())
                .is_err()
        );
        assert!(
            base.patched(json!({"metadata": {"a": 1}}).as_object().unwrap())
                .is_err()
        );
    }
}
