//! Names that arrive from outside and end up in paths, URLs and logs: tenant ids, connection
//! names and connection ids. Each is checked once, where it enters, against one rule; a name
//! is never a path. And the one home of the `auth0|` prefix of user ids.

/// The provider part of a database connection's user ids: `auth0|<id>`.
const USER_ID_PREFIX: &str = "auth0|";

/// The user id of the identity `id` a connection's script returned (`auth0|<id>`).
pub fn user_id(id: &str) -> String {
    format!("{USER_ID_PREFIX}{id}")
}

/// The identity's own id within a user id (`auth0|42` → `42`), as the scripts know it.
pub fn identity_id(user_id: &str) -> &str {
    user_id.strip_prefix(USER_ID_PREFIX).unwrap_or(user_id)
}

/// Why a name was refused, in words that name the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} '{value}' is not valid: {rule}")]
pub struct BadName {
    pub what: &'static str,
    pub value: String,
    pub rule: &'static str,
}

/// Auth0's rule for connection names.
pub const CONNECTION_NAME_RULE: &str = "a connection name has 1 to 128 characters, letters, digits and single dashes, and starts and ends with a letter or digit";
/// The rule for tenant ids (the same shape, shorter).
pub const TENANT_RULE: &str = "a tenant name has 1 to 64 characters, lowercase letters, digits and single dashes, and starts and ends with a letter or digit";
const CONNECTION_ID_RULE: &str =
    "a connection id has 1 to 64 characters, letters, digits and underscores";

/// Letters or digits separated by single dashes, at most `max` characters.
fn dashed(value: &str, max: usize, lowercase_only: bool) -> bool {
    let ok_char = |c: char| {
        if lowercase_only {
            c.is_ascii_lowercase() || c.is_ascii_digit()
        } else {
            c.is_ascii_alphanumeric()
        }
    };
    !value.is_empty()
        && value.len() <= max
        && value
            .split('-')
            .all(|part| !part.is_empty() && part.chars().all(ok_char))
}

/// A connection name, checked against Auth0's rule.
pub fn connection_name(value: &str) -> Result<&str, BadName> {
    if dashed(value, 128, false) {
        Ok(value)
    } else {
        Err(BadName {
            what: "connection name",
            value: shown(value),
            rule: CONNECTION_NAME_RULE,
        })
    }
}

/// A tenant id.
pub fn tenant(value: &str) -> Result<&str, BadName> {
    if dashed(value, 64, true) {
        Ok(value)
    } else {
        Err(BadName {
            what: "tenant",
            value: shown(value),
            rule: TENANT_RULE,
        })
    }
}

/// A connection id (customdb makes them `con_<hex>`; stored ones are checked again before
/// they become a folder name).
pub fn connection_id(value: &str) -> Result<&str, BadName> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && value.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(value)
    } else {
        Err(BadName {
            what: "connection id",
            value: shown(value),
            rule: CONNECTION_ID_RULE,
        })
    }
}

/// The refused value as an error may show it: bounded, control characters escaped.
fn shown(value: &str) -> String {
    let mut out: String = value
        .chars()
        .take(64)
        .flat_map(char::escape_debug)
        .collect();
    if value.chars().count() > 64 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_not_paths() {
        for good in [
            "Username-Password-Authentication",
            "db",
            "a1-b2-c3",
            &"x".repeat(128),
        ] {
            assert!(connection_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "..",
            "../..",
            "/",
            "a/b",
            "-a",
            "a-",
            "a--b",
            "a b",
            "a.b",
            "é",
            &"x".repeat(129),
        ] {
            assert!(connection_name(bad).is_err(), "{bad}");
        }
        assert!(tenant("demo").is_ok());
        for bad in ["Demo", "..", "a/b", "", "a_b"] {
            assert!(tenant(bad).is_err(), "{bad}");
        }
        assert!(connection_id("con_0123abc").is_ok());
        for bad in ["..", "a/b", "", "con-1"] {
            assert!(connection_id(bad).is_err(), "{bad}");
        }
    }
}
