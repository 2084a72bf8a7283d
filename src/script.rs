//! Scripts as the platform stores them: the seven actions, their call shapes, and the static
//! checks (size, nesting depth) that run before any engine sees the source. Knows nothing of boa.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The largest script the platform accepts, as Auth0 documents (npm modules excluded).
pub const MAX_SCRIPT_BYTES: usize = 100 * 1024;

/// Deepest bracket nesting accepted before parsing. boa's parser recurses natively and aborts the
/// process on deep input (notes/boa-0.22.md §3); 200 is far above any real script.
pub const MAX_NESTING_DEPTH: usize = 200;

/// One of the seven custom-database actions, named as the `customScripts` keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Login,
    GetUser,
    Create,
    Verify,
    ChangePassword,
    Delete,
    ChangeEmail,
}

impl Action {
    pub const ALL: [Action; 7] = [
        Action::Login,
        Action::GetUser,
        Action::Create,
        Action::Verify,
        Action::ChangePassword,
        Action::Delete,
        Action::ChangeEmail,
    ];

    /// The key used in `options.customScripts` and file names (`login.js`).
    pub fn key(self) -> &'static str {
        match self {
            Action::Login => "login",
            Action::GetUser => "get_user",
            Action::Create => "create",
            Action::Verify => "verify",
            Action::ChangePassword => "change_password",
            Action::Delete => "delete",
            Action::ChangeEmail => "change_email",
        }
    }

    /// Names of the positional arguments before `[context,] callback`, as SPEC §1 lists them.
    pub fn params(self) -> &'static [&'static str] {
        match self {
            Action::Login => &["identifier", "password"],
            Action::GetUser => &["identifier"],
            Action::Create => &["user"],
            Action::Verify => &["email"],
            Action::ChangePassword => &["email", "new_password"],
            Action::Delete => &["id"],
            Action::ChangeEmail => &["email", "new_email", "verified"],
        }
    }

    /// Index of the argument that carries a password, which is redacted from every transcript.
    pub fn password_param(self) -> Option<usize> {
        match self {
            Action::Login | Action::ChangePassword => Some(1),
            _ => None,
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

impl std::str::FromStr for Action {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Action::ALL
            .into_iter()
            .find(|a| a.key() == s)
            .ok_or_else(|| {
                let keys: Vec<_> = Action::ALL.iter().map(|a| a.key()).collect();
                format!(
                    "unknown action '{s}' (expected one of: {})",
                    keys.join(", ")
                )
            })
    }
}

/// Why a source was refused before it reached the engine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    #[error("script is {size} bytes, above the {max} byte limit")]
    TooLarge { size: usize, max: usize },
    #[error("script is empty")]
    Empty,
    #[error("brackets nest deeper than {max} levels at line {line}, column {column}")]
    TooDeep {
        max: usize,
        line: usize,
        column: usize,
    },
}

/// Checks a script's size and bracket nesting without parsing it.
pub fn check_source(source: &str) -> Result<(), SourceError> {
    if source.len() > MAX_SCRIPT_BYTES {
        return Err(SourceError::TooLarge {
            size: source.len(),
            max: MAX_SCRIPT_BYTES,
        });
    }
    if source.trim().is_empty() {
        return Err(SourceError::Empty);
    }
    check_nesting(source, MAX_NESTING_DEPTH)
}

/// Counts `(`, `[` and `{` depth, skipping strings, template text and comments. It is
/// deliberately conservative: regex literals are not recognised, so a bracket inside one counts,
/// which can only make the check stricter, never let a deep source through.
fn check_nesting(source: &str, max: usize) -> Result<(), SourceError> {
    #[derive(PartialEq)]
    enum State {
        Code,
        Str(char),
        LineComment,
        BlockComment,
    }
    let mut state = State::Code;
    let (mut depth, mut line, mut column) = (0usize, 1usize, 0usize);
    let mut chars = source.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\n' {
            line += 1;
            column = 0;
        } else {
            column += 1;
        }
        match state {
            State::Code => match c {
                '"' | '\'' | '`' => state = State::Str(c),
                '/' if chars.peek() == Some(&'/') => state = State::LineComment,
                '/' if chars.peek() == Some(&'*') => {
                    chars.next();
                    column += 1;
                    state = State::BlockComment;
                }
                '(' | '[' | '{' => {
                    depth += 1;
                    if depth > max {
                        return Err(SourceError::TooDeep { max, line, column });
                    }
                }
                ')' | ']' | '}' => depth = depth.saturating_sub(1),
                _ => {}
            },
            State::Str(q) => match c {
                '\\' if chars.next() == Some('\n') => {
                    line += 1;
                    column = 0;
                }
                // Template substitutions are code; count the `${` as one level.
                '$' if q == '`' && chars.peek() == Some(&'{') => {
                    chars.next();
                    depth += 1;
                    if depth > max {
                        return Err(SourceError::TooDeep { max, line, column });
                    }
                    state = State::Code;
                }
                _ if c == q => state = State::Code,
                _ => {}
            },
            State::LineComment if c == '\n' => state = State::Code,
            State::LineComment => {}
            State::BlockComment if c == '*' && chars.peek() == Some(&'/') => {
                chars.next();
                state = State::Code;
            }
            State::BlockComment => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(src: &str, expect_ok: bool) {
        assert_eq!(check_source(src).is_ok(), expect_ok, "source: {src:.60}");
    }

    #[test]
    fn nesting_prescan() {
        check("function login(a, b, cb) { cb(null, {user_id: 1}); }", true);
        check(
            &format!(
                "function f() {{ return {}1{}; }}",
                "(".repeat(199),
                ")".repeat(199)
            ),
            true,
        );
        check(
            &format!(
                "function f() {{ return {}1{}; }}",
                "(".repeat(250),
                ")".repeat(250)
            ),
            false,
        );
        check(
            &format!("function f() {{ return '{}'; }}", "(".repeat(5000)),
            true,
        );
        check(
            &format!("function f() {{ /* {} */ }}", "[".repeat(5000)),
            true,
        );
        check(
            &format!("function f() {{ return `${{{}}}`; }}", "[".repeat(300)),
            false,
        );
        check("", false);
        check(&"x".repeat(MAX_SCRIPT_BYTES + 1), false);
    }

    #[test]
    fn actions_round_trip_their_keys() {
        for a in Action::ALL {
            assert_eq!(a.key().parse::<Action>(), Ok(a));
        }
        assert!("remove".parse::<Action>().unwrap_err().contains("get_user"));
    }
}

/// Per-run limits. Defaults follow Auth0 where it documents one (20 s wall clock) and are sized
/// for authentication scripts elsewhere; the operator may lower or raise them per connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Limits {
    /// Wall clock for the whole run, asynchronous work included.
    pub timeout_ms: u64,
    /// Engine instructions one run may execute (boa's instruction budget).
    pub instructions: u64,
    /// Address-space ceiling of the worker process that runs the script.
    pub memory_bytes: u64,
    /// Console lines and bytes captured before the run ends as `output_limit`.
    pub console_lines: usize,
    pub console_bytes: usize,
    /// Largest callback value (as JSON text) that crosses the boundary.
    pub result_bytes: usize,
    /// Highest bcrypt cost a script may hash or compare at (each step doubles the work).
    pub max_bcrypt_cost: u32,
    /// Most PBKDF2 iterations one call may ask for.
    pub max_pbkdf2_iterations: u32,
    /// Bytes a connection's data folder may hold: SQLite databases opened there stop growing
    /// at what is left of it (`SQLITE_FULL`).
    pub data_folder_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout_ms: 20_000,
            instructions: 2_000_000_000,
            memory_bytes: 512 << 20,
            console_lines: 1_000,
            console_bytes: 1 << 20,
            result_bytes: 1 << 20,
            max_bcrypt_cost: 14,
            max_pbkdf2_iterations: 2_000_000,
            data_folder_bytes: 100 << 20,
        }
    }
}

/// Everything a worker needs to run one action script. Plain data: it crosses process
/// boundaries as JSON and holds no engine value.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Invocation {
    /// Tenant and connection name: warm state (`global`, compiled scripts) is never shared
    /// between two different pairs.
    pub tenant: String,
    pub connection: String,
    pub action: Action,
    pub source: String,
    /// The positional arguments of `Action::params`, as JSON values.
    pub args: Vec<serde_json::Value>,
    /// Present only when the connection has `enable_script_context: true`.
    pub context: Option<serde_json::Value>,
    /// The connection's `configuration`, string values only.
    pub configuration: std::collections::BTreeMap<String, String>,
    pub limits: Limits,
    /// What the run may reach outside the sandbox.
    #[serde(default)]
    pub policy: Policy,
}

/// The operator's and the connection's policy for the modules that reach outside the sandbox
/// (SPEC §2). Empty means nothing: no file, no host.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Policy {
    /// Folders `sqlite3` may open database files in; a relative path names a file in the first.
    pub data_dirs: Vec<std::path::PathBuf>,
    /// Hosts HTTP requests may reach: `api.example.com`, `*.example.com` (subdomains),
    /// `host:port`, an IP address, or `localhost`. A name only ever reaches public addresses
    /// (a tenant's DNS must not lead into the operator's network); private and loopback
    /// addresses need an entry that is that IP address, or `localhost` for loopback, and
    /// `internal` must allow them.
    pub egress: Vec<String>,
    /// Who decides about internal addresses (loopback, private, link-local, CGNAT,
    /// multicast, unspecified).
    pub internal: Internal,
}

/// Which internal addresses a script may reach. The default is the server's: none but
/// those the operator allows, whatever a tenant lists.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Internal {
    /// `customdb serve`: the operator's `--egress-allow-internal` entries only (an address,
    /// a CIDR block, or `HOST:PORT`), and only for hosts the allow-list also names.
    Operator(Vec<String>),
    /// `customdb try` and `customdb test`, which the operator runs on their own machine: the
    /// allow-list may name loopback and private addresses itself.
    Listed,
}

impl Default for Internal {
    fn default() -> Self {
        Internal::Operator(Vec::new())
    }
}

/// Fills in what Auth0 adds to the `user` a `create` script receives, when the caller left it
/// out: `tenant`, `client_id` and `connection`.
pub fn complete_create_user(user: &mut serde_json::Value, tenant: &str, connection: &str) {
    if let Some(obj) = user.as_object_mut() {
        let defaults = [
            ("tenant", tenant),
            ("client_id", "customdb"),
            ("connection", connection),
        ];
        for (key, value) in defaults {
            obj.entry(key).or_insert_with(|| value.into());
        }
    }
}

impl Invocation {
    /// What this run must never show: its password and its configuration's secrets.
    pub fn redactor(&self) -> crate::secret::Redactor {
        let secrets = crate::secret::configuration_secrets(
            self.configuration
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        );
        crate::secret::Redactor::new(self.password(), secrets.iter().map(String::as_str))
    }

    /// The password this invocation carries, if any, so transcripts can redact it.
    pub fn password(&self) -> Option<&str> {
        let from_args = self
            .action
            .password_param()
            .and_then(|i| self.args.get(i))
            .and_then(|v| v.as_str());
        let from_user = match self.action {
            Action::Create => self.args.first().and_then(|u| u.get("password")?.as_str()),
            _ => None,
        };
        from_args.or(from_user).filter(|p| !p.is_empty())
    }
}
