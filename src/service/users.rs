//! Users (SPEC §5): reading (with the connection's cache policy), listing and searching cached
//! users, PATCH with the seed's field rules as one write, email changes, verification and
//! deletion through the scripts.

use serde_json::{Map, Value, json};
use std::sync::Arc;

use super::{Answer, Failure, Refusal, Service, ServiceError, Settings, hash_password, refuse};
use crate::domain::events::LogType;
use crate::domain::password_policy::Person;
use crate::domain::profile::{self, Violation};
use crate::outcome::Outcome;
use crate::script::Action;
use crate::store::{StoreError, User, UserChange};

/// A cached user as `GET /users/{id}` reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct CachedUser {
    pub user: Arc<User>,
    /// Past its connection's cache policy and served anyway (`cache_expired: serve_stale`).
    pub stale: bool,
}

/// One page of a tenant's users, and how many there are in all.
#[derive(Debug, Clone, PartialEq)]
pub struct UserPage {
    pub users: Vec<User>,
    pub start: usize,
    pub limit: usize,
    pub total: usize,
}

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

impl Service {
    /// GET /users/{id}: the cached profile, marked `"stale": true` or evicted when the
    /// connection's cache policy says so. Migrated users live here and never expire.
    pub async fn read_user(&self, tenant: &str, user_id: &str) -> Answer<CachedUser> {
        // From memory when the store has it; else one trip to the blocking pool for the profile
        // and its connection's cache policy.
        let Some((user, options)) = self.store.profile(tenant, user_id).await? else {
            return refuse(Refusal::NotFound);
        };
        let policy = options.cache_policy();
        if !user.migrated && policy.expired(&user.cached_at, self.store.clock().now()) {
            if policy.evict {
                self.evict(tenant, user_id).await?;
                return refuse(Refusal::NotFound);
            }
            return Ok(CachedUser { user, stale: true });
        }
        Ok(CachedUser { user, stale: false })
    }

    /// The stored user `user_id` of the tenant, as it is (no cache policy applied).
    pub async fn user(&self, tenant: &str, user_id: &str) -> Result<Option<User>, ServiceError> {
        Ok(self.store.get_user(tenant, user_id).await?)
    }

    /// Removes the connection's user with this email from the store (Auth0's
    /// `DELETE /connections/{id}/users`: no script runs; a user of the tenant's database comes
    /// back at the next login).
    pub async fn forget_user(&self, tenant: &str, connection: &str, email: &str) -> Answer<()> {
        let Some(user) = self.store.find_user(tenant, connection, email).await? else {
            return refuse(Refusal::NotFound);
        };
        self.store.delete_user(tenant, &user.user_id).await?;
        Ok(())
    }

    /// Drops one cached profile without running any script (the next login caches it again).
    pub async fn evict(&self, tenant: &str, user_id: &str) -> Result<bool, ServiceError> {
        Ok(self.store.delete_user(tenant, user_id).await?)
    }

    /// PATCH /users/{id} with the seed's rules. Without import (the tenant's database owns the
    /// user) only `app_metadata`, `user_metadata`, `blocked`, and `email`/`password` through
    /// their scripts; once migrated also the root attributes. Each refused field is named.
    /// Metadata merges at the top level: `null` deletes a key, `{}` clears.
    pub async fn patch_user(&self, tenant: &str, user_id: &str, body: &Value) -> Answer<User> {
        let Some(patch) = body.as_object() else {
            return refuse(Refusal::BadRequest(vec![violation(
                "body",
                "must be a JSON object",
            )]));
        };
        let Some(user) = self.store.get_user(tenant, user_id).await? else {
            return refuse(Refusal::NotFound);
        };
        let import = user.migrated;
        let mut change = match patch_rules(patch, &user) {
            Ok(change) => change,
            Err(problems) => return refuse(Refusal::BadRequest(problems)),
        };
        // The email may not belong to another user of the connection (checked again in the
        // write; checked here so that no script runs for a change that cannot be kept).
        if let Some(email) = patch.get("email").and_then(Value::as_str)
            && let Some(owner) = self
                .store
                .find_user(tenant, &user.connection, email)
                .await?
            && owner.user_id != user.user_id
        {
            return email_exists(email, &owner.user_id);
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
            let email = self.email_in_database(&user, email, verified).await?;
            change.set_email(email, verified);
        }
        if let Some(password) = patch.get("password").and_then(Value::as_str) {
            if import {
                let record = self.connection(tenant, &user.connection).await?;
                self.allow_password(
                    &record,
                    password,
                    Person::of(&user.profile, Some(&user.user_metadata)),
                    LogType::FailedChangePassword,
                )
                .await?;
                change.password_hash = Some(hash_password(password.to_string()).await?);
            } else {
                // The script finds the user by the email its database now has.
                let email = new_email.or(user.email()).unwrap_or_default();
                self.change_password(tenant, &user.connection, email, password)
                    .await?;
            }
        }
        let updated = match self.store.update_user(tenant, user_id, change).await {
            Err(StoreError::EmailTaken { email, owner }) => {
                return email_exists(&email, &owner);
            }
            other => other?,
        };
        let Some(u) = updated else {
            return refuse(Refusal::NotFound);
        };
        if import && let Some(password) = patch.get("password").and_then(Value::as_str) {
            let email = u.email().unwrap_or_default();
            let record = self.connection(tenant, &u.connection).await?;
            self.remember_password(&record, email, password).await?;
            // A password set here ends brute-force blocks, as a change through the script does.
            self.password_changed(tenant, &u.connection, email).await?;
        }
        if new_email.is_some() {
            self.email_changed(&u).await?;
        }
        Ok(u)
    }

    /// GET /users: the tenant's users (of one connection, matching `search`), Auth0's paging.
    pub async fn list_users(
        &self,
        tenant: &str,
        connection: Option<&str>,
        search: Option<&str>,
        page: usize,
        per_page: usize,
    ) -> Result<UserPage, ServiceError> {
        let per_page = per_page.clamp(1, 100);
        let (users, total) = self
            .store
            .list_users(tenant, connection, search, page, per_page)
            .await?;
        Ok(UserPage {
            users,
            start: page * per_page,
            limit: per_page,
            total,
        })
    }

    /// Email change: the tenant's database first (see `email_in_database`), then the cached
    /// profile follows.
    pub async fn change_email(
        &self,
        tenant: &str,
        user_id: &str,
        new_email: &str,
        verified: bool,
    ) -> Answer<User> {
        let Some(user) = self.store.get_user(tenant, user_id).await? else {
            return refuse(Refusal::NotFound);
        };
        let email = self.email_in_database(&user, new_email, verified).await?;
        let mut change = UserChange::default();
        change.set_email(email, verified);
        let updated = match self.store.update_user(tenant, user_id, change).await {
            Err(StoreError::EmailTaken { .. }) => {
                return refuse(Refusal::Conflict {
                    code: "email_exists".into(),
                    message: "The email is already used by another user.".into(),
                });
            }
            other => other?,
        };
        let Some(u) = updated else {
            return refuse(Refusal::NotFound);
        };
        self.email_changed(&u).await?;
        Ok(u)
    }

    /// The part of an email change the tenant's database makes: for a user it holds, get_user
    /// (the user must still be there) then the change_email script; nothing for a migrated
    /// user. Answers the email as the store is to keep it (lowercased in import mode); the
    /// caller writes it, together with whatever else changes.
    pub(crate) async fn email_in_database(
        &self,
        user: &User,
        new_email: &str,
        verified: bool,
    ) -> Answer<String> {
        if let Err(rule) = profile::check_email(new_email) {
            return refuse(Refusal::InvalidProfile(vec![Violation {
                field: "email".into(),
                rule,
            }]));
        }
        let record = self.connection(&user.tenant, &user.connection).await?;
        let settings = Settings::of(&record);
        if !user.migrated {
            if !record.scripts.contains_key(&Action::ChangeEmail) {
                return refuse(Refusal::MissingScript(Action::ChangeEmail));
            }
            let old = user.email().unwrap_or_default().to_string();
            // The user must still be in the tenant's database (other refusals, such as a
            // failing get_user, do not stop the change: the change_email script decides).
            match self.get_user_with(&settings, &old, None).await {
                Err(Failure::Refused(Refusal::NotFound)) => return refuse(Refusal::NotFound),
                Err(Failure::Internal(e)) => return Err(e.into()),
                _ => {}
            }
            let answer = self
                .boolean_script(
                    &settings,
                    Action::ChangeEmail,
                    vec![json!(old), json!(new_email), json!(verified)],
                )
                .await;
            if let Err(failed) = answer {
                self.log(
                    &user.tenant,
                    LogType::FailedChangeEmail,
                    &user.connection,
                    Some(&user.user_id),
                    None,
                )
                .await?;
                return Err(failed);
            }
        }
        Ok(if settings.import_mode {
            new_email.to_lowercase()
        } else {
            new_email.to_string()
        })
    }

    /// Logs a committed email change.
    pub(crate) async fn email_changed(&self, user: &User) -> Result<(), ServiceError> {
        self.log(
            &user.tenant,
            LogType::SuccessChangeEmail,
            &user.connection,
            Some(&user.user_id),
            None,
        )
        .await
    }

    /// Verify (import off): the verify script.
    pub async fn verify(&self, tenant: &str, connection: &str, email: &str) -> Answer<()> {
        let record = self.connection(tenant, connection).await?;
        let settings = Settings::of(&record);
        let answer = self
            .boolean_script(&settings, Action::Verify, vec![json!(email)])
            .await;
        self.log_result(
            tenant,
            connection,
            &answer,
            LogType::SuccessVerificationEmail,
            LogType::FailedVerificationEmail,
        )
        .await?;
        answer
    }

    /// Delete: the delete script (with the identity's id) for users the tenant's database
    /// holds, then the cached profile; migrated users only locally.
    pub async fn delete(&self, tenant: &str, user_id: &str) -> Answer<()> {
        let Some(user) = self.store.get_user(tenant, user_id).await? else {
            return refuse(Refusal::NotFound);
        };
        let record = self.connection(tenant, &user.connection).await?;
        let settings = Settings::of(&record);
        if !settings.import_mode {
            let id = crate::domain::names::identity_id(&user.user_id).to_string();
            match self.run(&settings, Action::Delete, vec![json!(id)]).await? {
                None => return refuse(Refusal::MissingScript(Action::Delete)),
                Some(e) if e.outcome != Outcome::Success => {
                    self.log(
                        tenant,
                        LogType::FailedUserDeletion,
                        &user.connection,
                        Some(user_id),
                        None,
                    )
                    .await?;
                    return refuse(Refusal::ScriptFailed {
                        outcome: e.outcome,
                        error: e.error.map(Box::new),
                    });
                }
                Some(_) => {}
            }
        }
        self.store.delete_user(tenant, user_id).await?;
        self.log(
            tenant,
            LogType::SuccessUserDeletion,
            &user.connection,
            Some(user_id),
            None,
        )
        .await?;
        Ok(())
    }
}

/// The keys a PATCH of `user` may not send: the profile's own fields unless the connection
/// imports its users, another connection, `email_verified` alone.
fn forbidden_keys(patch: &Map<String, Value>, user: &User) -> Vec<Violation> {
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
    problems
}

/// What a PATCH body may change of `user` under the seed's rules, as the store write it
/// becomes (email and password are the caller's: they run scripts first); every refused or
/// invalid field at once otherwise.
fn patch_rules(patch: &Map<String, Value>, user: &User) -> Result<UserChange, Vec<Violation>> {
    let import = user.migrated;
    let mut problems = forbidden_keys(patch, user);
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
            "email_verified" if import && !patch.contains_key("email") => match value.as_bool() {
                Some(b) => {
                    change.fields.insert("email_verified".into(), json!(b));
                }
                None => problems.push(violation("email_verified", "must be true or false")),
            },
            _ => {}
        }
    }
    if problems.is_empty() {
        Ok(change)
    } else {
        Err(problems)
    }
}

/// Auth0's answer when the email belongs to another user.
fn email_exists<T>(email: &str, owner: &str) -> Answer<T> {
    refuse(Refusal::Conflict {
        code: "email_exists".into(),
        message: format!("{email} is already used by {owner}"),
    })
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
}
