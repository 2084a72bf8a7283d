//! Management operations the HTTP API calls (SPEC §5): reading, listing and searching cached
//! users, PATCH with the seed's field rules, create and delete through the flows, connection
//! import from and export to Deploy CLI folders, and the cache policies (max age, invalidate
//! before, evict one user).

use serde_json::{Map, Value, json};
use std::path::Path;

use crate::domain::time::{self, Timestamp};
use crate::flows::{Answer, Core, FlowError, hash_password};
use crate::layout::{self, ConnectionFolder};
use crate::profile::{self, Violation};
use crate::script::Action;
use crate::store::{ConnectionRecord, User, UserChange};

/// Fields any user's PATCH may carry (metadata, blocked; email and password run their scripts).
const ALWAYS: &[&str] = &[
    "app_metadata",
    "user_metadata",
    "blocked",
    "email",
    "email_verified",
    "password",
    "connection",
    "verify_email",
    "verify_password",
    "client_id",
];
/// Fields only a migrated (import mode) user's PATCH may carry: the store owns those users.
const MIGRATED: &[&str] = &[
    "name",
    "nickname",
    "given_name",
    "family_name",
    "picture",
    "username",
    "phone_number",
    "phone_verified",
];

/// A connection's cache policy (customdb's addition, after Keycloak's user cache): options
/// `cache_max_age` (seconds), `cache_expired` (`serve_stale` or `evict`) and
/// `cache_invalidate_before` (an RFC 3339 time, any offset).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CachePolicy {
    pub max_age_secs: Option<u64>,
    pub evict: bool,
    pub invalidate_before: Option<Timestamp>,
}

impl CachePolicy {
    pub fn of(o: &Map<String, Value>) -> Self {
        CachePolicy {
            max_age_secs: o.get("cache_max_age").and_then(Value::as_u64),
            evict: o.get("cache_expired").and_then(Value::as_str) == Some("evict"),
            invalidate_before: o
                .get("cache_invalidate_before")
                .and_then(Value::as_str)
                .and_then(|t| time::parse(t).ok()),
        }
    }

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

impl Core {
    /// GET /users/{id}: the cached profile, marked `"stale": true` or evicted when the
    /// connection's cache policy says so. Migrated users live here and never expire.
    pub async fn read_user(&self, tenant: &str, user_id: &str) -> Result<Answer<Value>, FlowError> {
        // From memory when the store has it; else one trip to the blocking pool for the profile
        // and its connection's cache policy.
        let found = match self.store.remembered_profile(tenant, user_id) {
            Some(hit) => Some(hit),
            None => {
                let (t, u) = (tenant.to_string(), user_id.to_string());
                self.blocking(move |s| s.profile(&t, &u)).await?
            }
        };
        let Some((user, options)) = found else {
            return Ok(Answer::NotFound);
        };
        let policy = CachePolicy::of(&options);
        if !user.migrated && policy.expired(&user.cached_at, self.store.clock().now()) {
            if policy.evict {
                self.evict(tenant, user_id).await?;
                return Ok(Answer::NotFound);
            }
            let mut value = user.to_json();
            value["stale"] = json!(true);
            return Ok(Answer::Done(value));
        }
        Ok(Answer::Done(user.to_json()))
    }

    /// Drops one cached profile without running any script (the next login caches it again).
    pub async fn evict(&self, tenant: &str, user_id: &str) -> Result<bool, FlowError> {
        let (t, u) = (tenant.to_string(), user_id.to_string());
        self.blocking(move |s| s.delete_user(&t, &u)).await
    }

    async fn user(&self, tenant: &str, user_id: &str) -> Result<Option<User>, FlowError> {
        let (t, u) = (tenant.to_string(), user_id.to_string());
        self.blocking(move |s| s.get_user(&t, &u)).await
    }

    async fn record(&self, tenant: &str, name: &str) -> Result<ConnectionRecord, FlowError> {
        let (t, n) = (tenant.to_string(), name.to_string());
        self.blocking(move |s| s.get_connection(&t, &n))
            .await?
            .ok_or_else(|| FlowError::UnknownConnection(name.to_string()))
    }

    /// PATCH /users/{id} with the seed's rules. Without import (the tenant's database owns the
    /// user) only `app_metadata`, `user_metadata`, `blocked`, and `email`/`password` through
    /// their scripts; once migrated also the root attributes. Each refused field is named.
    /// Metadata merges at the top level: `null` deletes a key, `{}` clears.
    pub async fn patch_user(
        &self,
        tenant: &str,
        user_id: &str,
        body: &Value,
    ) -> Result<Answer<Value>, FlowError> {
        let Some(patch) = body.as_object() else {
            return Ok(Answer::BadRequest(vec![violation(
                "body",
                "must be a JSON object",
            )]));
        };
        let Some(user) = self.user(tenant, user_id).await? else {
            return Ok(Answer::NotFound);
        };
        let import = user.migrated;
        let mut problems = Vec::new();
        for key in patch.keys() {
            let allowed =
                ALWAYS.contains(&key.as_str()) || (import && MIGRATED.contains(&key.as_str()));
            if !allowed {
                let rule = if MIGRATED.contains(&key.as_str()) {
                    "cannot be changed for a user of a custom database without import mode; the script's profile owns it (allowed: app_metadata, user_metadata, blocked, email, password)"
                } else {
                    "cannot be changed"
                };
                problems.push(violation(key, rule));
            }
        }
        if let Some(c) = patch.get("connection").and_then(Value::as_str)
            && c != user.connection
        {
            problems.push(violation(
                "connection",
                &format!("must be the user's connection, {}", user.connection),
            ));
        }
        if patch.contains_key("email_verified") && !import && !patch.contains_key("email") {
            problems.push(violation("email_verified", "can only be changed together with email for a user of a custom database without import mode"));
        }
        let mut change = UserChange::default();
        for (key, value) in patch {
            match key.as_str() {
                // The merge itself happens in the store's write transaction, against the row
                // read there: two PATCHes of different keys both survive.
                "app_metadata" | "user_metadata" => match profile::check_metadata(key, value) {
                    Ok(()) => {
                        let patch = value.as_object().cloned().unwrap_or_default();
                        if key == "app_metadata" {
                            change.app_metadata = Some(patch);
                        } else {
                            change.user_metadata = Some(patch);
                        }
                    }
                    Err(v) => problems.push(v),
                },
                "blocked" => match value.as_bool() {
                    Some(b) => change.blocked = Some(b),
                    None => problems.push(violation("blocked", "must be true or false")),
                },
                "password" => {
                    let ok = value
                        .as_str()
                        .is_some_and(|p| !p.is_empty() && p.len() <= 72);
                    if !ok {
                        problems.push(violation("password", "must be a string of 1 to 72 bytes"));
                    }
                }
                "email" => {
                    if let Err(rule) = value
                        .as_str()
                        .ok_or("must be a string".to_string())
                        .and_then(profile::check_email)
                    {
                        problems.push(violation("email", &rule));
                    }
                }
                field if MIGRATED.contains(&field) && import => {
                    match profile::check_root(field, value, true) {
                        Some(Ok(v)) => {
                            change.fields.insert(field.to_string(), v);
                        }
                        Some(Err(rule)) => problems.push(violation(field, &rule)),
                        None => {
                            change.fields.insert(field.to_string(), value.clone());
                        }
                    }
                }
                "email_verified" if import && !patch.contains_key("email") => match value.as_bool()
                {
                    Some(b) => {
                        change.fields.insert("email_verified".into(), json!(b));
                    }
                    None => problems.push(violation("email_verified", "must be true or false")),
                },
                _ => {}
            }
        }
        if !problems.is_empty() {
            return Ok(Answer::BadRequest(problems));
        }
        // The email may not belong to another user of the connection (checked again in the
        // write; checked here so that no script runs for a change that cannot be kept).
        if let Some(email) = patch.get("email").and_then(Value::as_str) {
            let (t, c, e) = (
                tenant.to_string(),
                user.connection.clone(),
                email.to_string(),
            );
            if let Some(owner) = self.blocking(move |s| s.find_user(&t, &c, &e)).await?
                && owner.user_id != user.user_id
            {
                return Ok(email_exists(email, &owner.user_id));
            }
        }
        // The changes the tenant's database makes, through its scripts, come first; then
        // everything the store keeps is one write. A script that fails leaves the store as it
        // was (what an earlier script changed in the tenant's database reaches the cache with
        // the next login or get_user, which read it from there).
        let new_email = patch.get("email").and_then(Value::as_str);
        if let Some(email) = new_email {
            let verified = patch
                .get("email_verified")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            match self
                .email_in_database(&user, email, verified)
                .await?
                .into_done()
            {
                Ok(email) => change.set_email(email, verified),
                Err(failed) => return Ok(failed),
            }
        }
        if let Some(password) = patch.get("password").and_then(Value::as_str) {
            if import {
                change.password_hash = Some(hash_password(password.to_string()).await?);
            } else {
                // The script finds the user by the email its database now has.
                let email = new_email.or(user.email()).unwrap_or_default();
                if let Err(failed) = self
                    .change_password(tenant, &user.connection, email, password)
                    .await?
                    .into_done()
                {
                    return Ok(failed);
                }
            }
        }
        let (t, u) = (tenant.to_string(), user_id.to_string());
        let updated = self
            .blocking(move |s| match s.update_user(&t, &u, &change) {
                Err(crate::store::StoreError::EmailTaken { email, owner }) => {
                    Ok(Err((email, owner)))
                }
                other => other.map(Ok),
            })
            .await?;
        Ok(match updated {
            Ok(Some(u)) => {
                if new_email.is_some() {
                    self.email_changed(&u).await?;
                }
                Answer::Done(u.to_json())
            }
            Ok(None) => Answer::NotFound,
            Err((email, owner)) => email_exists(&email, &owner),
        })
    }

    /// GET /users: the tenant's users (of one connection, matching `search`), Auth0's paging.
    pub async fn list_users(
        &self,
        tenant: &str,
        connection: Option<&str>,
        search: Option<&str>,
        page: usize,
        per_page: usize,
    ) -> Result<Value, FlowError> {
        let (t, c, q) = (
            tenant.to_string(),
            connection.map(str::to_string),
            search.map(str::to_string),
        );
        let per_page = per_page.clamp(1, 100);
        let (users, total) = self
            .blocking(move |s| s.list_users(&t, c.as_deref(), q.as_deref(), page, per_page))
            .await?;
        Ok(json!({
            "start": page * per_page,
            "limit": per_page,
            "length": users.len(),
            "total": total,
            "users": users.iter().map(User::to_json).collect::<Vec<_>>(),
        }))
    }

    /// Imports a Deploy CLI connection folder: options replaced whole, scripts and
    /// configuration (keywords filled from `keywords`) stored, configuration sealed.
    pub async fn import_connection(
        &self,
        tenant: &str,
        dir: &Path,
        keywords: &layout::Keywords,
    ) -> Result<Result<ConnectionRecord, String>, FlowError> {
        let folder = match layout::read(dir) {
            Ok(f) => f,
            Err(e) => return Ok(Err(e.to_string())),
        };
        if let Err(e) = crate::domain::names::connection_name(&folder.name) {
            return Ok(Err(format!("{}: {e}", dir.display())));
        }
        let mut configuration = std::collections::BTreeMap::new();
        for (k, v) in &folder.configuration {
            match keywords.fill(v) {
                Ok(v) => configuration.insert(k.clone(), v),
                Err(e) => return Ok(Err(format!("configuration {k}: {e}"))),
            };
        }
        let existing = self.record(tenant, &folder.name).await.ok();
        let record = ConnectionRecord {
            id: existing
                .map(|r| r.id)
                .unwrap_or_else(|| format!("con_{}", uuid::Uuid::new_v4().simple())),
            tenant: tenant.to_string(),
            name: folder.name.clone(),
            attributes: folder.attributes.clone(),
            options: stored_options(&folder),
            scripts: folder.scripts.clone(),
            configuration,
        };
        let r = record.clone();
        self.blocking(move |s| s.put_connection(&r)).await?;
        Ok(Ok(record))
    }
}

/// What `GET /connections` shows in place of each configuration value; sent back in a PATCH,
/// it keeps the stored value (Auth0 overwrote the secret with it: deploy-cli #197, #821).
pub const ENCRYPTED: &str = "[encrypted]";

/// A new connection from a `POST /connections` body: `name` (Auth0's rule), `strategy`
/// (`auth0`, the only kind customdb serves), `options` with `customScripts` and
/// `configuration`, and the top-level attributes. Anything else is refused by name.
pub fn connection_from_api(
    tenant: &str,
    id: String,
    body: &Value,
) -> Result<ConnectionRecord, String> {
    let body = body.as_object().ok_or("the body must be a JSON object")?;
    unknown_fields(body, &["name", "strategy", "options"])?;
    let name = match body.get("name") {
        Some(Value::String(n)) => crate::domain::names::connection_name(n)
            .map_err(|e| e.to_string())?
            .to_string(),
        None => return Err("Missing required property: name".into()),
        Some(_) => return Err("name must be a string".into()),
    };
    match body.get("strategy") {
        None => {}
        Some(Value::String(s)) if s == "auth0" => {}
        Some(other) => {
            return Err(format!(
                "strategy {other} is not served here: customdb's connections are database connections (\"auth0\")"
            ));
        }
    }
    let (options, scripts, configuration) = options_from_api(body.get("options"))?;
    ConnectionRecord {
        id,
        tenant: tenant.to_string(),
        name,
        attributes: Default::default(),
        options,
        scripts,
        configuration,
    }
    .with_attributes(body)
}

/// `existing` after a `PATCH /connections/{id}` body. `options`, when sent, replaces the
/// options whole, as Auth0's does (a configuration value sent back as `[encrypted]` keeps the
/// stored one); without it, options, scripts and configuration stay as they are. The
/// attributes the body names are set (`null` unsets). `id`, `name` and `strategy` may be sent
/// back unchanged, never changed.
pub fn patch_connection(
    existing: &ConnectionRecord,
    body: &Value,
) -> Result<ConnectionRecord, String> {
    let body = body.as_object().ok_or("the body must be a JSON object")?;
    unknown_fields(body, &["options", "id", "name", "strategy"])?;
    for (key, stored) in [
        ("id", existing.id.as_str()),
        ("name", existing.name.as_str()),
        ("strategy", "auth0"),
    ] {
        if let Some(sent) = body.get(key)
            && sent.as_str() != Some(stored)
        {
            return Err(format!("{key} cannot be changed (it is {stored:?})"));
        }
    }
    let mut record = existing.clone().with_attributes(body)?;
    if let Some(options) = body.get("options") {
        let (options, scripts, mut configuration) = options_from_api(Some(options))?;
        for (key, value) in configuration.iter_mut() {
            if value == ENCRYPTED
                && let Some(stored) = existing.configuration.get(key)
            {
                value.clone_from(stored);
            }
        }
        record.options = options;
        record.scripts = scripts;
        record.configuration = configuration;
    }
    Ok(record)
}

impl ConnectionRecord {
    /// The record with the top-level attributes `body` names applied.
    fn with_attributes(mut self, body: &Map<String, Value>) -> Result<Self, String> {
        self.attributes = self.attributes.patched(body)?;
        Ok(self)
    }
}

/// Refuses top-level fields that are neither `allowed` nor an attribute, naming them as
/// Auth0's payload validation does.
fn unknown_fields(body: &Map<String, Value>, allowed: &[&str]) -> Result<(), String> {
    use crate::domain::connection::ConnectionAttributes;
    let unknown: Vec<&str> = body
        .keys()
        .map(String::as_str)
        .filter(|k| !allowed.contains(k) && !ConnectionAttributes::KEYS.contains(k))
        .collect();
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "Additional properties not allowed: {}",
            unknown.join(",")
        ))
    }
}

type ParsedOptions = (
    Map<String, Value>,
    std::collections::BTreeMap<Action, String>,
    std::collections::BTreeMap<String, String>,
);

/// `options` split into the rest, the scripts and the configuration, each checked.
fn options_from_api(options: Option<&Value>) -> Result<ParsedOptions, String> {
    let mut options = match options {
        None => Map::new(),
        Some(Value::Object(o)) => o.clone(),
        Some(_) => return Err("options must be an object".into()),
    };
    let mut scripts = std::collections::BTreeMap::new();
    match options.remove("customScripts") {
        None => {}
        Some(Value::Object(named)) => {
            for (key, source) in named {
                let action: Action = key
                    .parse()
                    .map_err(|e: String| format!("options.customScripts: {e}"))?;
                let source = source.as_str().filter(|s| !s.is_empty()).ok_or_else(|| {
                    format!("options.customScripts.{key} must be a non-empty string")
                })?;
                scripts.insert(action, source.to_string());
            }
        }
        Some(_) => return Err("options.customScripts must be an object".into()),
    }
    let configuration = layout::configuration_values(options.remove("configuration").as_ref())
        .map_err(|e| format!("options.configuration {e}"))?;
    Ok((options, scripts, configuration))
}

/// Writes a connection as a Deploy CLI folder. Configuration values are never written: each
/// becomes a `##KEY##` keyword for the deploying environment to fill in.
pub fn export_connection(record: &ConnectionRecord, dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut options = record.options.clone();
    let mut scripts = Map::new();
    for (action, source) in &record.scripts {
        let file = format!("{action}.js");
        std::fs::write(dir.join(&file), source)?;
        scripts.insert(action.key().to_string(), json!(format!("./{file}")));
    }
    options.insert("customScripts".into(), Value::Object(scripts));
    let configuration: Map<String, Value> = record
        .configuration
        .keys()
        .map(|k| (k.clone(), json!(format!("##{k}##"))))
        .collect();
    options.insert("configuration".into(), Value::Object(configuration));
    let mut doc = json!({"name": record.name, "strategy": "auth0"});
    if let Some(object) = doc.as_object_mut() {
        record.attributes.write_into(object);
        object.insert("options".into(), Value::Object(options));
    }
    std::fs::write(
        dir.join(layout::DATABASE_JSON),
        serde_json::to_string_pretty(&doc)? + "\n",
    )
}

/// Options as stored: everything but the scripts and the configuration, which live apart.
fn stored_options(folder: &ConnectionFolder) -> Map<String, Value> {
    let mut options = folder.options.clone();
    options.remove("customScripts");
    options.remove("configuration");
    options
}

/// Auth0's answer when the email belongs to another user.
fn email_exists<T>(email: &str, owner: &str) -> Answer<T> {
    Answer::Conflict {
        code: "email_exists".into(),
        message: format!("{email} is already used by {owner}"),
    }
}

fn violation(field: &str, rule: &str) -> Violation {
    Violation {
        field: field.to_string(),
        rule: rule.to_string(),
    }
}

/// Auth0's metadata PATCH: a top-level merge where `null` deletes a key, and `{}` clears all.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_merge_rules() {
        let current = json!({"a": 1, "b": {"x": 1}}).as_object().unwrap().clone();
        let table = [
            (json!({"b": {"y": 2}}), Ok(json!({"a": 1, "b": {"y": 2}}))),
            (json!({"a": null}), Ok(json!({"b": {"x": 1}}))),
            (json!({}), Ok(json!({}))),
            (
                json!({"c.d": 1}),
                Err("app_metadata.c.d is not a valid key (no '.' or '$')"),
            ),
            (
                json!({"blocked": true}),
                Err("app_metadata.blocked is a name Auth0 reserves"),
            ),
            (json!([1]), Err("app_metadata must be an object")),
        ];
        for (patch, expected) in table {
            let got = profile::check_metadata("app_metadata", &patch)
                .map(|()| {
                    Value::Object(profile::merge_metadata(
                        &current,
                        patch.as_object().unwrap(),
                    ))
                })
                .map_err(|v| v.to_string());
            assert_eq!(got, expected.map_err(str::to_string), "{patch}");
        }
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
        let options = json!({"cache_invalidate_before": "2026-01-01T01:30:00+02:00"});
        let p = CachePolicy::of(options.as_object().unwrap());
        let now = time::parse("2026-01-02T00:00:00Z").unwrap();
        assert!(!p.expired("2025-12-31T23:45:00.000Z", now));
        assert!(p.expired("2025-12-31T23:15:00.000Z", now));
        // Without milliseconds: "…00:00:00Z" sorts after "…00:00:00.500Z" as text.
        let options = json!({"cache_invalidate_before": "2026-01-01T00:00:00Z"});
        let p = CachePolicy::of(options.as_object().unwrap());
        assert!(!p.expired("2026-01-01T00:00:00.500Z", now));
        assert!(p.expired("2025-12-31T23:59:59.999Z", now));
    }
}
