//! Signup (SPEC §4): get_user → create → login without import; with import, get_user checks
//! the legacy database and the user is created locally.

use serde_json::{Value, json};

use super::{Answer, Failure, Refusal, Service, Settings, hash_password, new_id, refuse};
use crate::domain::events::LogType;
use crate::domain::password_policy::Person;
use crate::domain::profile;
use crate::outcome::Outcome;
use crate::script::{Action, complete_create_user};
use crate::store::User;

impl Service {
    /// Signup: get_user → create → login without import; with import, get_user checks the
    /// legacy database and the user is created locally.
    pub async fn signup(&self, tenant: &str, connection: &str, user: Value) -> Answer<User> {
        let record = self.connection(tenant, connection).await?;
        let settings = Settings::of(&record);
        let email = user
            .get("email")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let password = user
            .get("password")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let metadata = user.get("user_metadata").and_then(Value::as_object);
        if let Some(fields) = user.as_object() {
            self.allow_password(
                &record,
                &password,
                Person::of(fields, metadata),
                LogType::FailedSignup,
            )
            .await?;
        }
        // The user exists when the store has it (import mode) or the legacy database does.
        let in_store = settings.import_mode
            && self
                .store
                .find_user(tenant, connection, &email)
                .await?
                .is_some();
        let exists = in_store
            || match self.get_user_with(&settings, &email, None).await {
                Err(Failure::Refused(Refusal::NotFound | Refusal::MissingScript(_))) => false,
                Ok(_) | Err(Failure::Refused(Refusal::Conflict { .. })) => true,
                Err(other) => return Err(other),
            };
        if exists {
            let message = "The user already exists.";
            self.log(
                tenant,
                LogType::FailedSignup,
                connection,
                None,
                Some(message),
            )
            .await?;
            return refuse(Refusal::Conflict {
                code: "user_exists".into(),
                message: message.into(),
            });
        }
        let created = if settings.import_mode {
            self.create_locally(&settings, &user, password.clone())
                .await?
        } else {
            self.create_in_database(&settings, &user, &email, &password)
                .await?
        };
        self.remember_password(&record, &email, &password).await?;
        self.log(
            tenant,
            LogType::SuccessSignup,
            connection,
            Some(&created.user_id),
            None,
        )
        .await?;
        Ok(created)
    }

    /// Import mode: the user is created in the store, with a new id and a hash of the password.
    async fn create_locally(
        &self,
        settings: &Settings<'_>,
        user: &Value,
        password: String,
    ) -> Answer<User> {
        let (tenant, connection) = (&settings.record.tenant, &settings.record.name);
        let mut fields = user.clone();
        if let Some(obj) = fields.as_object_mut() {
            obj.remove("password");
            obj.insert("user_id".into(), json!(new_id()));
        }
        let profile = match profile::normalize(&fields, &settings.profile) {
            Ok(p) => p,
            Err(v) => return refuse(Refusal::InvalidProfile(v)),
        };
        let hash = hash_password(password).await?;
        self.cache(
            tenant,
            connection,
            profile,
            settings.roots,
            false,
            Some(hash),
        )
        .await
    }

    /// Without import: the create script, then login, as Auth0 does to check the user exists.
    async fn create_in_database(
        &self,
        settings: &Settings<'_>,
        user: &Value,
        email: &str,
        password: &str,
    ) -> Answer<User> {
        let (tenant, connection) = (&settings.record.tenant, &settings.record.name);
        let mut arg = user.clone();
        complete_create_user(&mut arg, tenant, connection);
        let Some(created) = self.run(settings, Action::Create, vec![arg]).await? else {
            return refuse(Refusal::MissingScript(Action::Create));
        };
        if created.outcome != Outcome::Success {
            let error = created.error.clone();
            let message = error
                .as_ref()
                .and_then(|e| e.description.clone().or(e.message.clone()))
                .unwrap_or_default();
            self.log(
                tenant,
                LogType::FailedSignup,
                connection,
                None,
                Some(&message),
            )
            .await?;
            if let Some(e) = error
                .as_ref()
                .filter(|e| e.name.as_deref() == Some("ValidationError"))
            {
                return refuse(Refusal::Conflict {
                    code: e.code.clone().unwrap_or_else(|| "invalid_signup".into()),
                    message,
                });
            }
            return refuse(Refusal::ScriptFailed {
                outcome: created.outcome,
                error: error.map(Box::new),
            });
        }
        self.login(tenant, connection, email, password).await
    }
}
