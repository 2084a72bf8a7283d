//! Auth0's client (application) model: what kind of application it is, how it proves who it
//! is at the token endpoint, and which grants it may use. A public client (SPA, native) has no
//! secret; a confidential one authenticates on every grant. Pure data, no I/O.

use serde::{Deserialize, Serialize};

/// Auth0's `app_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AppType {
    Native,
    Spa,
    RegularWeb,
    /// A machine-to-machine client (Management API access through `client_credentials`).
    NonInteractive,
}

/// Auth0's `token_endpoint_auth_method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// A public client: it has no secret and sends none.
    None,
    /// `client_secret` in the request body.
    ClientSecretPost,
    /// `Authorization: Basic base64(client_id:client_secret)`.
    ClientSecretBasic,
}

/// The grants customdb's token endpoint knows, by Auth0's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Grant {
    #[serde(rename = "client_credentials")]
    ClientCredentials,
    #[serde(rename = "password")]
    Password,
    #[serde(rename = "http://auth0.com/oauth/grant-type/password-realm")]
    PasswordRealm,
}

impl Grant {
    pub const ALL: [Grant; 3] = [
        Grant::ClientCredentials,
        Grant::Password,
        Grant::PasswordRealm,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Grant::ClientCredentials => "client_credentials",
            Grant::Password => "password",
            Grant::PasswordRealm => "http://auth0.com/oauth/grant-type/password-realm",
        }
    }

    pub fn parse(text: &str) -> Option<Grant> {
        Grant::ALL.into_iter().find(|g| g.as_str() == text)
    }

    /// A grant as an operator types it: Auth0's name, or `password-realm` for short.
    pub fn from_flag(text: &str) -> Result<Grant, String> {
        match text {
            "password-realm" => Ok(Grant::PasswordRealm),
            other => Grant::parse(other).ok_or_else(|| {
                format!("unknown grant '{other}' (client_credentials, password, password-realm)")
            }),
        }
    }
}

impl AppType {
    pub fn as_str(self) -> &'static str {
        match self {
            AppType::Native => "native",
            AppType::Spa => "spa",
            AppType::RegularWeb => "regular_web",
            AppType::NonInteractive => "non_interactive",
        }
    }

    pub fn parse(text: &str) -> Option<AppType> {
        [
            AppType::Native,
            AppType::Spa,
            AppType::RegularWeb,
            AppType::NonInteractive,
        ]
        .into_iter()
        .find(|t| t.as_str() == text)
    }
}

impl AuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::None => "none",
            AuthMethod::ClientSecretPost => "client_secret_post",
            AuthMethod::ClientSecretBasic => "client_secret_basic",
        }
    }

    pub fn parse(text: &str) -> Option<AuthMethod> {
        [
            AuthMethod::None,
            AuthMethod::ClientSecretPost,
            AuthMethod::ClientSecretBasic,
        ]
        .into_iter()
        .find(|m| m.as_str() == text)
    }
}

/// Every Management API scope customdb checks: the default grant of a management client.
pub const MANAGEMENT_SCOPES: &[&str] = &[
    "read:users",
    "create:users",
    "update:users",
    "delete:users",
    "read:logs",
    "read:connections",
    "create:connections",
    "update:connections",
    "delete:connections",
    "create:user_tickets",
    "read:attack_protection",
    "update:attack_protection",
    "get:anomaly_block",
    "delete:anomaly_block",
];

/// The scopes an end user's token may carry (OpenID Connect's); nothing else is ever granted
/// to a password grant, whatever it asks for.
pub const USER_SCOPES: &[&str] = &["openid", "profile", "email"];

/// What an end user's token gets of the `scope` it asked for: the OpenID scopes among them,
/// in the order asked, or all three when it asked for none.
pub fn user_scope(requested: Option<&str>) -> String {
    let Some(requested) = requested.filter(|r| !r.trim().is_empty()) else {
        return USER_SCOPES.join(" ");
    };
    let mut granted: Vec<&str> = Vec::new();
    for scope in requested.split_whitespace() {
        if USER_SCOPES.contains(&scope) && !granted.contains(&scope) {
            granted.push(scope);
        }
    }
    granted.join(" ")
}

/// A tenant's client as the store keeps it: only a digest of a confidential client's secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Client {
    pub client_id: String,
    pub tenant: String,
    pub name: String,
    pub app_type: AppType,
    pub auth_method: AuthMethod,
    pub grant_types: Vec<Grant>,
    /// SHA-256 of the secret; `None` for a public client.
    #[serde(skip_serializing)]
    pub secret_digest: Option<String>,
    /// Scopes of its Management API tokens (`client_credentials` only).
    pub scopes: Vec<String>,
}

impl Client {
    /// A confidential machine-to-machine client for the Management API.
    pub fn management(
        client_id: String,
        tenant: String,
        name: String,
        secret_digest: String,
        scopes: Vec<String>,
    ) -> Client {
        Client::confidential(
            client_id,
            tenant,
            name,
            secret_digest,
            scopes,
            vec![Grant::ClientCredentials],
        )
    }

    /// A confidential client with a secret and `grants`: machine-to-machine when its only
    /// grant is `client_credentials`, a regular web application otherwise.
    pub fn confidential(
        client_id: String,
        tenant: String,
        name: String,
        secret_digest: String,
        scopes: Vec<String>,
        grant_types: Vec<Grant>,
    ) -> Client {
        let machine = grant_types == [Grant::ClientCredentials];
        Client {
            client_id,
            tenant,
            name,
            app_type: if machine {
                AppType::NonInteractive
            } else {
                AppType::RegularWeb
            },
            auth_method: AuthMethod::ClientSecretPost,
            grant_types,
            secret_digest: Some(secret_digest),
            scopes,
        }
    }

    /// A public native application that logs users in with the password grants.
    pub fn public_app(client_id: String, tenant: String, name: String) -> Client {
        Client {
            client_id,
            tenant,
            name,
            app_type: AppType::Native,
            auth_method: AuthMethod::None,
            grant_types: vec![Grant::Password, Grant::PasswordRealm],
            secret_digest: None,
            scopes: Vec::new(),
        }
    }

    pub fn is_public(&self) -> bool {
        self.auth_method == AuthMethod::None
    }

    pub fn allows(&self, grant: Grant) -> bool {
        self.grant_types.contains(&grant)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn end_users_get_only_openid_scopes() {
        use super::user_scope;
        assert_eq!(user_scope(None), "openid profile email");
        assert_eq!(
            user_scope(Some("openid read:users update:connections email")),
            "openid email"
        );
        assert_eq!(user_scope(Some("read:users")), "");
    }
}
