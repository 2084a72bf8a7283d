//! The rules of root attributes (Auth0's user-profile-structure page): one table of fields
//! and their kinds, the email syntax, and the default picture.

use md5::Digest as _;
use serde_json::{Value, json};

/// The kinds of root attribute.
#[derive(Clone, Copy)]
pub(super) enum Kind {
    Text { min: usize, max: usize },
    Bool,
    Email,
    Username,
    Url,
    Phone,
}

/// Root attributes and their rules (Auth0's user-profile-structure page).
pub(super) const ROOT: &[(&str, Kind)] = &[
    ("email", Kind::Email),
    ("email_verified", Kind::Bool),
    ("username", Kind::Username),
    ("name", Kind::Text { min: 1, max: 150 }),
    ("given_name", Kind::Text { min: 1, max: 150 }),
    ("family_name", Kind::Text { min: 1, max: 150 }),
    ("nickname", Kind::Text { min: 1, max: 350 }),
    ("picture", Kind::Url),
    ("phone_number", Kind::Phone),
    ("phone_verified", Kind::Bool),
];

/// Checks one root attribute as normalization does (`None` when `field` is not a root
/// attribute); returns the value as it would be stored.
pub fn check_root(field: &str, value: &Value, import_mode: bool) -> Option<Result<Value, String>> {
    let (_, kind) = ROOT.iter().find(|(f, _)| *f == field)?;
    Some(check(*kind, value, import_mode))
}

/// Checks one root attribute of `kind`; returns the value as it is stored.
pub(super) fn check(kind: Kind, value: &Value, import_mode: bool) -> Result<Value, String> {
    match kind {
        Kind::Bool => value
            .as_bool()
            .map(Value::Bool)
            .ok_or("must be true or false".into()),
        Kind::Text { min, max } => {
            let s = value.as_str().ok_or("must be a string")?;
            let n = s.chars().count();
            if n < min || n > max {
                return Err(format!("must be {min} to {max} characters long"));
            }
            Ok(json!(s))
        }
        Kind::Email => {
            let s = value.as_str().ok_or("must be a string")?;
            check_email(s)?;
            Ok(json!(if import_mode {
                s.to_lowercase()
            } else {
                s.to_string()
            }))
        }
        Kind::Username => {
            let s = value.as_str().ok_or("must be a string")?;
            let n = s.chars().count();
            if n == 0 || n > 128 {
                return Err("must be 1 to 128 characters long".into());
            }
            if let Some(c) = s
                .chars()
                .find(|c| !(c.is_ascii_alphanumeric() || "@^$!-#.+'~_`".contains(*c)))
            {
                return Err(format!(
                    "may not contain {c:?} (letters, digits and @^$!-#.+'~_` only)"
                ));
            }
            if check_email(s).is_ok() {
                return Err("may not be an email address".into());
            }
            Ok(json!(s.to_lowercase()))
        }
        Kind::Url => {
            let s = value.as_str().ok_or("must be a string")?;
            match url::Url::parse(s) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(json!(s)),
                _ => Err("must be an http(s) URL".into()),
            }
        }
        Kind::Phone => {
            let s = value.as_str().ok_or("must be a string")?;
            let digits = s.strip_prefix('+').unwrap_or("");
            if digits.is_empty() || digits.len() > 15 || !digits.bytes().all(|b| b.is_ascii_digit())
            {
                return Err("must be an E.164 number such as +14155550100".into());
            }
            Ok(json!(s))
        }
    }
}

/// Email syntax as Auth0 applies it: one `@`, a local part of at most 64 characters, a dotted
/// domain, at most 254 characters, no spaces.
pub fn check_email(s: &str) -> Result<(), String> {
    if s.chars().count() > 254 {
        return Err("must be at most 254 characters long".into());
    }
    let (local, domain) = s.rsplit_once('@').ok_or("must be an email address")?;
    if local.is_empty() || local.contains('@') {
        return Err("must be an email address".into());
    }
    if local.chars().count() > 64 {
        return Err("must have a local part of at most 64 characters".into());
    }
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        });
    if !domain_ok || s.chars().any(char::is_whitespace) {
        return Err("must be an email address".into());
    }
    Ok(())
}

/// Auth0's default picture: the Gravatar of the email, falling back to initials.
pub fn gravatar(email: &str) -> String {
    let hash = hex::encode(md5::Md5::digest(email.trim().to_lowercase().as_bytes()));
    let initials: String = email
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(2)
        .collect::<String>()
        .to_lowercase();
    format!(
        "https://s.gravatar.com/avatar/{hash}?s=480&r=pg&d=https%3A%2F%2Fcdn.auth0.com%2Favatars%2F{initials}.png"
    )
}
