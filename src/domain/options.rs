//! A connection's `options`, typed: the only parser and encoder of them, used by the
//! Management API, the Deploy CLI folders, `customdb try`, `customdb test` and the store.
//!
//! What customdb reads is a typed field, checked where the options enter (a wrong type is an
//! error that names the option); everything else is kept as it was sent, in order. The
//! scripts (`customScripts`) and `configuration` are not options here: they live apart (the
//! configuration is sealed), and `split` / `document` take them off and put them back.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::password_policy::PasswordPolicy;
use super::time::{self, Timestamp};

/// `set_user_root_attributes`: whether a login refreshes the root attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RootAttributes {
    #[default]
    OnEachLogin,
    OnFirstLogin,
    NeverOnLogin,
}

/// `cache_expired`: what reading a profile past its cache policy does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheExpired {
    /// Served, marked `"stale": true`.
    #[default]
    ServeStale,
    /// Dropped: the next login caches it again.
    Evict,
}

/// A connection's options. `None` is "not given": it reads as Auth0's default and is not
/// written back. Serialized as its `options` object (`to_json` / `from_json`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Map<String, Value>", into = "Map<String, Value>")]
pub struct ConnectionOptions {
    /// `import_mode`: users migrate into the store on their first login.
    pub import_mode: Option<bool>,
    pub set_user_root_attributes: Option<RootAttributes>,
    /// `non_persistent_attrs`: profile attributes never stored.
    pub non_persistent_attrs: Option<Vec<String>>,
    /// `allowed_hosts` (customdb's addition): the hosts, `HOST:PORT`s and addresses the
    /// scripts may reach.
    pub allowed_hosts: Option<Vec<String>>,
    /// `enable_script_context`: scripts get `context` before the callback.
    pub enable_script_context: Option<bool>,
    /// `cache_max_age` (seconds), `cache_expired`, `cache_invalidate_before`: the cache
    /// policy (customdb's addition, after Keycloak's user cache).
    pub cache_max_age: Option<u64>,
    pub cache_expired: Option<CacheExpired>,
    pub cache_invalidate_before: Option<Timestamp>,
    /// `brute_force_protection`: failed logins are counted and blocked (Auth0: on unless
    /// turned off).
    pub brute_force_protection: Option<bool>,
    /// The password policy, read from its options (`passwordPolicy`,
    /// `password_complexity_options`, ...), which stay in `rest` as they were sent.
    pub password_policy: PasswordPolicy,
    /// Every other option, as sent.
    pub rest: Map<String, Value>,
}

/// What a connection document's `options` object holds besides the options.
#[derive(Debug, Default)]
pub struct Parts {
    pub options: ConnectionOptions,
    /// `customScripts`, unchecked: sources in an API body, file names in `database.json`.
    pub scripts: Option<Value>,
    /// `configuration`, unchecked.
    pub configuration: Option<Value>,
}

impl Parts {
    /// `customScripts` as each action and its non-empty string (a source in an API body, a
    /// file name in `database.json`); `None` when the document has none. The error names the
    /// key that is wrong.
    pub fn script_entries(
        &self,
    ) -> Result<Option<std::collections::BTreeMap<crate::script::Action, String>>, String> {
        let named = match &self.scripts {
            None => return Ok(None),
            Some(Value::Object(named)) => named,
            Some(_) => return Err("options.customScripts must be an object".into()),
        };
        let mut entries = std::collections::BTreeMap::new();
        for (key, value) in named {
            let action: crate::script::Action = key
                .parse()
                .map_err(|e: String| format!("options.customScripts: {e}"))?;
            let value = value
                .as_str()
                .filter(|s| !s.is_empty())
                .ok_or_else(|| format!("options.customScripts.{key} must be a non-empty string"))?;
            entries.insert(action, value.to_string());
        }
        Ok(Some(entries))
    }
}

impl ConnectionOptions {
    /// Parses an `options` object (without `customScripts` and `configuration`, which stay in
    /// `rest` if present). The error names the option and what it must be.
    pub fn from_json(mut rest: Map<String, Value>) -> Result<Self, String> {
        let invalidate: Option<String> = take(&mut rest, "cache_invalidate_before")?;
        Ok(ConnectionOptions {
            import_mode: take(&mut rest, "import_mode")?,
            set_user_root_attributes: take(&mut rest, "set_user_root_attributes")?,
            non_persistent_attrs: take(&mut rest, "non_persistent_attrs")?,
            allowed_hosts: take(&mut rest, "allowed_hosts")?,
            enable_script_context: take(&mut rest, "enable_script_context")?,
            cache_max_age: take(&mut rest, "cache_max_age")?,
            cache_expired: take(&mut rest, "cache_expired")?,
            cache_invalidate_before: invalidate
                .map(|t| {
                    time::parse(&t).map_err(|e| format!("options.cache_invalidate_before: {e}"))
                })
                .transpose()?,
            brute_force_protection: take(&mut rest, "brute_force_protection")?,
            password_policy: PasswordPolicy::from_options(&rest)?,
            rest,
        })
    }

    /// The options as an `options` object: the typed ones first, then the rest.
    pub fn to_json(&self) -> Map<String, Value> {
        let mut out = Map::new();
        put(&mut out, "import_mode", &self.import_mode);
        put(
            &mut out,
            "set_user_root_attributes",
            &self.set_user_root_attributes,
        );
        put(&mut out, "non_persistent_attrs", &self.non_persistent_attrs);
        put(&mut out, "allowed_hosts", &self.allowed_hosts);
        put(
            &mut out,
            "enable_script_context",
            &self.enable_script_context,
        );
        put(&mut out, "cache_max_age", &self.cache_max_age);
        put(&mut out, "cache_expired", &self.cache_expired);
        put(
            &mut out,
            "cache_invalidate_before",
            &self.cache_invalidate_before.map(time::format),
        );
        put(
            &mut out,
            "brute_force_protection",
            &self.brute_force_protection,
        );
        for (key, value) in &self.rest {
            out.entry(key.clone()).or_insert_with(|| value.clone());
        }
        out
    }

    /// Splits a connection document's `options` (absent: empty) into the options, the scripts
    /// and the configuration.
    pub fn split(options: Option<&Value>) -> Result<Parts, String> {
        let mut map = match options {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(o)) => o.clone(),
            Some(_) => return Err("options must be an object".into()),
        };
        let scripts = map.remove("customScripts");
        let configuration = map.remove("configuration");
        Ok(Parts {
            options: ConnectionOptions::from_json(map)?,
            scripts,
            configuration,
        })
    }

    /// A connection document's `options` object: these options with `customScripts` and
    /// `configuration` as the caller shows them (sources or file names; values, keywords or
    /// `[encrypted]`).
    pub fn document(
        &self,
        scripts: Map<String, Value>,
        configuration: Map<String, Value>,
    ) -> Map<String, Value> {
        let mut out = self.to_json();
        out.insert("customScripts".into(), Value::Object(scripts));
        out.insert("configuration".into(), Value::Object(configuration));
        out
    }

    pub fn import_mode(&self) -> bool {
        self.import_mode.unwrap_or(false)
    }

    pub fn script_context(&self) -> bool {
        self.enable_script_context.unwrap_or(false)
    }

    pub fn brute_force_protection(&self) -> bool {
        self.brute_force_protection.unwrap_or(true)
    }

    pub fn cache_policy(&self) -> CachePolicy {
        CachePolicy {
            max_age_secs: self.cache_max_age,
            evict: self.cache_expired == Some(CacheExpired::Evict),
            invalidate_before: self.cache_invalidate_before,
        }
    }
}

impl TryFrom<Map<String, Value>> for ConnectionOptions {
    type Error = String;

    fn try_from(options: Map<String, Value>) -> Result<Self, String> {
        ConnectionOptions::from_json(options)
    }
}

impl From<ConnectionOptions> for Map<String, Value> {
    fn from(options: ConnectionOptions) -> Self {
        options.to_json()
    }
}

/// Takes one option out of `rest`, typed; `null` is "not given".
fn take<T: DeserializeOwned>(
    rest: &mut Map<String, Value>,
    key: &str,
) -> Result<Option<T>, String> {
    match rest.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => serde_json::from_value(value)
            .map(Some)
            .map_err(|e| format!("options.{key}: {e}")),
    }
}

fn put<T: Serialize>(out: &mut Map<String, Value>, key: &str, value: &Option<T>) {
    if let Some(v) = value
        && let Ok(v) = serde_json::to_value(v)
    {
        out.insert(key.to_string(), v);
    }
}

/// A connection's cache policy, read from its options.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CachePolicy {
    pub max_age_secs: Option<u64>,
    pub evict: bool,
    pub invalidate_before: Option<Timestamp>,
}

impl CachePolicy {
    /// Whether a profile cached at `cached_at` (as the store wrote it) is past its policy at
    /// `now`. A date that does not parse counts as expired: the next login refreshes it.
    pub fn expired(&self, cached_at: &str, now: Timestamp) -> bool {
        let Ok(cached_at) = time::parse(cached_at) else {
            return true;
        };
        let too_old = self.max_age_secs.is_some_and(|max| {
            let max = jiff::SignedDuration::from_secs(i64::try_from(max).unwrap_or(i64::MAX));
            now.duration_since(cached_at) > max
        });
        let invalidated = self.invalidate_before.is_some_and(|t| cached_at < t);
        too_old || invalidated
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn options(value: Value) -> Result<ConnectionOptions, String> {
        ConnectionOptions::from_json(value.as_object().cloned().unwrap())
    }

    #[test]
    fn typed_options_round_trip_and_the_rest_is_kept() {
        let sent = json!({
            "import_mode": true,
            "set_user_root_attributes": "on_first_login",
            "allowed_hosts": ["api.example.com"],
            "cache_expired": "evict",
            "passwordPolicy": "good",
            "bareConfiguration": {"x": 1},
        });
        let parsed = options(sent.clone()).unwrap();
        assert!(parsed.import_mode());
        assert_eq!(
            parsed.set_user_root_attributes,
            Some(RootAttributes::OnFirstLogin)
        );
        assert!(parsed.cache_policy().evict);
        assert_eq!(Value::Object(parsed.to_json()), sent);
    }

    #[test]
    fn a_wrong_type_names_the_option() {
        let table = [
            (json!({"import_mode": "yes"}), "options.import_mode"),
            (
                json!({"allowed_hosts": "a.example.com"}),
                "options.allowed_hosts",
            ),
            (json!({"cache_max_age": -1}), "options.cache_max_age"),
            (json!({"cache_expired": "later"}), "options.cache_expired"),
            (
                json!({"set_user_root_attributes": "always"}),
                "options.set_user_root_attributes",
            ),
            (
                json!({"cache_invalidate_before": "yesterday"}),
                "options.cache_invalidate_before",
            ),
            (
                json!({"passwordPolicy": "strong"}),
                "options.passwordPolicy",
            ),
            (
                json!({"password_complexity_options": {"min_length": "8"}}),
                "options.password_complexity_options",
            ),
            (
                json!({"brute_force_protection": "on"}),
                "options.brute_force_protection",
            ),
        ];
        for (sent, named) in table {
            let error = options(sent.clone()).unwrap_err();
            assert!(error.starts_with(named), "{sent}: {error}");
        }
        assert_eq!(
            ConnectionOptions::split(Some(&json!([]))).unwrap_err(),
            "options must be an object"
        );
    }

    #[test]
    fn split_and_document_are_inverse() {
        let doc = json!({"import_mode": false, "customScripts": {"login": "x"}, "configuration": {"K": "v"}});
        let parts = ConnectionOptions::split(Some(&doc)).unwrap();
        assert_eq!(parts.scripts, Some(json!({"login": "x"})));
        assert!(!parts.options.rest.contains_key("configuration"));
        let back = parts.options.document(
            json!({"login": "x"}).as_object().cloned().unwrap(),
            json!({"K": "v"}).as_object().cloned().unwrap(),
        );
        assert_eq!(Value::Object(back), doc);
    }

    #[test]
    fn cache_ages() {
        let at = |t: &str| time::parse(t).unwrap();
        let p = CachePolicy {
            max_age_secs: Some(60),
            evict: false,
            invalidate_before: Some(at("2026-01-01T00:00:00.000Z")),
        };
        assert!(!p.expired("2026-03-01T10:00:00.000Z", at("2026-03-01T10:00:59.000Z")));
        assert!(p.expired("2026-03-01T10:00:00.000Z", at("2026-03-01T10:01:01.000Z")));
        assert!(
            p.expired("2026-02-28T23:59:30.000Z", at("2026-03-01T00:00:31.000Z")),
            "across a month"
        );
        assert!(
            p.expired("2025-12-31T23:00:00.000Z", at("2025-12-31T23:00:01.000Z")),
            "invalidated"
        );
        assert!(p.expired("garbage", at("2026-03-01T10:00:00Z")));
    }

    #[test]
    fn invalidate_before_is_a_time_not_a_text() {
        // 01:30+02:00 is 23:30 the day before: a profile cached at 23:45Z is after it. As
        // text, "2026-01-01T01:30:00+02:00" sorts after "2025-12-31T23:45:00.000Z".
        let p = options(json!({"cache_invalidate_before": "2026-01-01T01:30:00+02:00"}))
            .unwrap()
            .cache_policy();
        let now = time::parse("2026-01-02T00:00:00Z").unwrap();
        assert!(!p.expired("2025-12-31T23:45:00.000Z", now));
        assert!(p.expired("2025-12-31T23:15:00.000Z", now));
        // Without milliseconds: "…00:00:00Z" sorts after "…00:00:00.500Z" as text.
        let p = options(json!({"cache_invalidate_before": "2026-01-01T00:00:00Z"}))
            .unwrap()
            .cache_policy();
        assert!(!p.expired("2026-01-01T00:00:00.500Z", now));
        assert!(p.expired("2025-12-31T23:59:59.999Z", now));
    }
}
