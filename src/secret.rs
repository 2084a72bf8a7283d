//! Secrets the server makes and checks: random tokens (client secrets, ticket ids, keys),
//! their SHA-256 digests (what the store keeps of a secret it must recognize later), and
//! constant-time comparison. Nothing here logs or stores a secret in clear.

use rand::RngCore as _;
use sha2::Digest as _;
use subtle::ConstantTimeEq as _;

/// `bytes` random bytes from the OS generator, as lowercase hex.
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

/// A fresh client secret (256 bits).
pub fn client_secret() -> String {
    random_hex(32)
}

/// The SHA-256 digest of a secret, as lowercase hex. Client secrets and ticket ids are random
/// 192–256-bit values, not passwords, so one unsalted hash is enough to keep them unreadable.
pub fn digest(secret: &str) -> String {
    hex::encode(sha2::Sha256::digest(secret.as_bytes()))
}

/// Whether `a` and `b` are equal, in time that depends only on their lengths.
pub fn equal(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// Whether `secret` is the one whose digest is `stored`, compared in constant time.
pub fn matches_digest(secret: &str, stored: &str) -> bool {
    equal(digest(secret).as_bytes(), stored.as_bytes())
}

#[cfg(test)]
mod tests {
    #[test]
    fn digests_match_only_their_secret() {
        let secret = super::client_secret();
        assert_eq!(secret.len(), 64);
        let stored = super::digest(&secret);
        assert!(super::matches_digest(&secret, &stored));
        assert!(!super::matches_digest("wrong", &stored));
        assert!(!super::equal(b"ab", b"abc"));
    }
}

/// What a run must never show, in every form a script may write it: plain, JSON-escaped (a
/// secret inside a serialized object) and URL-encoded (a secret inside a URL or a form).
#[derive(Debug, Default, Clone)]
pub struct Redactor {
    /// Every secret's forms, longest first, so a secret that contains another goes whole.
    secrets: Vec<String>,
    /// The password's forms alone (results are profiles: only the password is taken out).
    password: Vec<String>,
}

/// What a redacted secret becomes.
pub const REDACTED: &str = "[REDACTED]";

/// Words that name what a configuration value is without making it a secret: a file, a host,
/// a port, a database or user name. A key made only of these words (`DB_FILE`, `API_HOST`,
/// `DB_USER`) holds a value a person needs to see in an error; any other key's value is a
/// secret. A password inside a URL or a connection string is a secret whatever its key.
const PLAIN_WORDS: &[&str] = &[
    "file",
    "filename",
    "path",
    "dir",
    "folder",
    "host",
    "hostname",
    "port",
    "name",
    "db",
    "database",
    "schema",
    "table",
    "collection",
    "user",
    "username",
    "login",
    "region",
    "env",
    "environment",
    "mode",
    "timeout",
    "url",
    "uri",
    "endpoint",
    "domain",
    "base",
    "api",
    "server",
    "tenant",
    "connection",
    "version",
    "debug",
    "level",
    "limit",
    "size",
    "email",
    "from",
    "to",
];

/// The secrets among a connection's configuration: the values of keys that are not plainly
/// names (see `PLAIN_WORDS`), and the passwords inside URLs (`scheme://user:password@host`)
/// and connection strings (`Password=…;`, `pwd=…`) of any key.
pub fn configuration_secrets<'a>(
    configuration: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Vec<String> {
    let mut secrets = Vec::new();
    for (key, value) in configuration {
        let plain = key
            .split(['_', '-', '.'])
            .filter(|w| !w.is_empty())
            .all(|w| PLAIN_WORDS.contains(&w.to_ascii_lowercase().as_str()));
        if !plain {
            secrets.push(value.to_string());
        }
        if let Ok(url) = url::Url::parse(value)
            && let Some(password) = url.password()
        {
            secrets.push(password.to_string());
            if let Ok(decoded) = percent_decoded(password) {
                secrets.push(decoded);
            }
        }
        for part in value.split(';') {
            if let Some((k, v)) = part.split_once('=')
                && matches!(k.trim().to_ascii_lowercase().as_str(), "password" | "pwd")
            {
                secrets.push(v.trim().to_string());
            }
        }
    }
    secrets
}

fn percent_decoded(text: &str) -> Result<String, std::str::Utf8Error> {
    let bytes: Vec<u8> =
        url::form_urlencoded::parse(format!("x={}", text.replace('+', "%2B")).as_bytes())
            .next()
            .map(|(_, v)| v.into_owned().into_bytes())
            .unwrap_or_default();
    std::str::from_utf8(&bytes).map(str::to_string)
}

impl Redactor {
    /// A redactor for `password` and the configuration `values`. Passwords shorter than 3
    /// characters and values shorter than 6 are not redacted: replacing every "a" or "5432"
    /// in a transcript would destroy it and protect nothing.
    pub fn new<'a>(password: Option<&str>, values: impl IntoIterator<Item = &'a str>) -> Self {
        let password: Vec<String> = password
            .filter(|p| p.len() >= 3)
            .map(forms)
            .unwrap_or_default();
        let mut secrets: Vec<String> = values
            .into_iter()
            .filter(|v| v.len() >= 6)
            .flat_map(forms)
            .chain(password.iter().cloned())
            .collect();
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Redactor { secrets, password }
    }

    /// `text` with every secret replaced.
    pub fn text(&self, text: &mut String) {
        replace_all(text, &self.secrets);
    }

    /// `text` with the password replaced.
    pub fn password(&self, text: &mut String) {
        replace_all(text, &self.password);
    }
}

fn replace_all(text: &mut String, secrets: &[String]) {
    for secret in secrets {
        if text.contains(secret.as_str()) {
            *text = text.replace(secret.as_str(), REDACTED);
        }
    }
}

/// A secret as written plainly, JSON-escaped and URL-encoded (each kept once).
fn forms(secret: &str) -> Vec<String> {
    let json = serde_json::to_string(secret).unwrap_or_default();
    let json = json[1..json.len() - 1].to_string();
    let url: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
    let percent = url.replace('+', "%20");
    let mut all = vec![secret.to_string(), json, url, percent];
    all.sort();
    all.dedup();
    all
}

#[cfg(test)]
mod redaction {
    use super::{Redactor, configuration_secrets};

    #[test]
    fn only_secrets_of_the_configuration_are_secret() {
        let configuration = [
            ("DB_FILE", "users.db"),
            ("DB_HOST", "db.internal.example"),
            ("DB_URL", "postgres://app:p%40ss-word@db.example.com/users"),
            ("DB_PASSWORD", "hunter2-hunter2"),
            ("API_KEY", "k-123456789"),
            (
                "CONNECTION_STRING",
                "Server=x;Database=y;Password=s3cr3t-pw;",
            ),
            ("SIGNING", "abcdefgh"),
        ];
        let secrets = configuration_secrets(configuration);
        for shown in ["users.db", "db.internal.example"] {
            assert!(!secrets.iter().any(|s| s == shown), "{shown}: {secrets:?}");
        }
        for hidden in [
            "p%40ss-word",
            "p@ss-word",
            "hunter2-hunter2",
            "k-123456789",
            "s3cr3t-pw",
            "abcdefgh",
        ] {
            assert!(secrets.iter().any(|s| s == hidden), "{hidden}: {secrets:?}");
        }
    }

    #[test]
    fn every_form_of_a_secret_goes() {
        let r = Redactor::new(Some("p@ss \"w0rd\""), ["db-password-1"]);
        for (mut text, expected) in [
            ("p@ss \"w0rd\"".to_string(), "[REDACTED]"),
            (
                r#"{"pw":"p@ss \"w0rd\""}"#.to_string(),
                r#"{"pw":"[REDACTED]"}"#,
            ),
            (
                "https://x/?pw=p%40ss+%22w0rd%22".to_string(),
                "https://x/?pw=[REDACTED]",
            ),
            ("u=db-password-1".to_string(), "u=[REDACTED]"),
        ] {
            r.text(&mut text);
            assert_eq!(text, expected);
        }
        let mut profile = "db-password-1".to_string();
        r.password(&mut profile);
        assert_eq!(profile, "db-password-1", "results lose only the password");
    }
}
