//! What happens in a tenant, as values: Auth0's log event types (the codes of its log
//! schema, with their descriptions), who caused an event, and the events live watchers are
//! shown.

use serde::{Deserialize, Serialize};
use serde_json::Value;

macro_rules! log_types {
    ($($variant:ident = $code:literal, $description:literal;)*) => {
        /// An Auth0 log event type: its code on the wire (`type`) and its description.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum LogType {
            $(#[serde(rename = $code)] $variant,)*
        }

        impl LogType {
            /// Every type, in the order of Auth0's table.
            pub const ALL: &[LogType] = &[$(LogType::$variant,)*];

            /// The code Auth0 writes in `type`.
            pub fn code(self) -> &'static str {
                match self { $(LogType::$variant => $code,)* }
            }

            /// Auth0's description of the type.
            pub fn description(self) -> &'static str {
                match self { $(LogType::$variant => $description,)* }
            }
        }
    };
}

// The types of Auth0's log schema that database connections, their users and the token
// endpoint produce (../notes: "Log event type codes relevant to database connections").
log_types! {
    SuccessLogin = "s", "Success Login";
    FailedLogin = "f", "Failed Login";
    WrongPassword = "fp", "Failed Login (incorrect password)";
    UnknownUser = "fu", "Failed Login (invalid email/username)";
    LoginWarning = "w", "Warning during login";
    SuccessSignup = "ss", "Success Signup";
    FailedSignup = "fs", "Failed Signup";
    SuccessChangePassword = "scp", "Success Change Password";
    FailedChangePassword = "fcp", "Failed Change Password";
    SuccessChangePasswordRequest = "scpr", "Success Change Password Request";
    FailedChangePasswordRequest = "fcpr", "Failed Change Password Request";
    SuccessChangeEmail = "sce", "Success Change Email";
    FailedChangeEmail = "fce", "Failed Change Email";
    SuccessVerificationEmail = "sv", "Success Verification Email";
    FailedVerificationEmail = "fv", "Failed Verification Email";
    SuccessVerificationEmailRequest = "svr", "Success Verification Email Request";
    FailedVerificationEmailRequest = "fvr", "Failed Verification Email Request";
    SuccessUserDeletion = "sdu", "Success User Deletion";
    FailedUserDeletion = "fdu", "Failed User Deletion";
    SuccessImport = "sui", "Success import";
    FailedImport = "fui", "Failed import";
    BlockedAccount = "limit_wc", "Blocked Account";
    BlockedIp = "limit_mu", "Blocked IP Address";
    SuccessApiOperation = "sapi", "Success API Operation";
    SuccessClientCredentialsExchange = "seccft", "Success Exchange";
    FailedClientCredentialsExchange = "feccft", "Failed Exchange";
    SuccessPasswordExchange = "sepft", "Success Exchange";
    FailedPasswordExchange = "fepft", "Failed Exchange";
    RateLimit = "api_limit", "Rate Limit On API";
}

impl std::fmt::Display for LogType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

impl std::str::FromStr for LogType {
    type Err = String;

    fn from_str(code: &str) -> Result<Self, String> {
        LogType::ALL
            .iter()
            .copied()
            .find(|t| t.code() == code)
            .ok_or_else(|| format!("{code:?} is not a log event type customdb writes"))
    }
}

/// What a live watcher of a tenant is shown (`GET /api/v2/logs/stream`).
#[derive(Debug, Clone)]
pub enum LiveEvent {
    /// A script ran: connection, action, outcome, error, console (redacted in the worker)
    /// and timings.
    Run { tenant: String, run: Value },
    /// A log event was written (as `GET /api/v2/logs` shows it).
    Log { tenant: String, event: Value },
}

impl LiveEvent {
    pub fn tenant(&self) -> &str {
        match self {
            LiveEvent::Run { tenant, .. } | LiveEvent::Log { tenant, .. } => tenant,
        }
    }

    /// The name of the server-sent event (`run` or `log`).
    pub fn name(&self) -> &'static str {
        match self {
            LiveEvent::Run { .. } => "run",
            LiveEvent::Log { .. } => "log",
        }
    }

    /// What the event carries.
    pub fn data(&self) -> &Value {
        match self {
            LiveEvent::Run { run, .. } => run,
            LiveEvent::Log { event, .. } => event,
        }
    }
}

/// Who a log event is about, as far as the request that caused it tells: the fields Auth0's
/// log events carry besides the type and the user. Empty outside a request (the CLI).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Caller {
    /// The application that sent the request (the body's `client_id`, or the Management API
    /// token's `azp`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_name: Option<String>,
    /// The peer address of the connection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// The domain the request was sent to (its Host).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// The identifier the user typed (a login's username, a signup's email).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
}

/// A field of a log event that a search (`q`) can name; its wire name is its column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogField {
    Type,
    UserId,
    UserName,
    Connection,
    ConnectionId,
    ClientId,
    ClientName,
    Ip,
    Hostname,
}

impl LogField {
    const ALL: &[LogField] = &[
        LogField::Type,
        LogField::UserId,
        LogField::UserName,
        LogField::Connection,
        LogField::ConnectionId,
        LogField::ClientId,
        LogField::ClientName,
        LogField::Ip,
        LogField::Hostname,
    ];

    /// The field's name in a log event (and in a search).
    pub fn name(self) -> &'static str {
        match self {
            LogField::Type => "type",
            LogField::UserId => "user_id",
            LogField::UserName => "user_name",
            LogField::Connection => "connection",
            LogField::ConnectionId => "connection_id",
            LogField::ClientId => "client_id",
            LogField::ClientName => "client_name",
            LogField::Ip => "ip",
            LogField::Hostname => "hostname",
        }
    }
}

/// A log search, the subset of Auth0's Lucene syntax customdb answers: `field:value` or
/// `field:"quoted value"` terms, separated by spaces or `AND`, all of which an event matches
/// exactly. Anything else (`OR`, `NOT`, wildcards, ranges, free text) is refused by name
/// rather than answered wrongly.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogFilter(pub Vec<(LogField, String)>);

impl std::str::FromStr for LogFilter {
    type Err = String;

    fn from_str(q: &str) -> Result<Self, String> {
        let mut terms = Vec::new();
        let mut rest = q.trim_start();
        while !rest.is_empty() {
            let word_end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            if &rest[..word_end] == "AND" {
                rest = rest[word_end..].trim_start();
                continue;
            }
            let word = &rest[..word_end];
            let Some(colon) = word.find(':') else {
                return Err(format!(
                    "`{word}` is not a field:value term (free text is not supported)"
                ));
            };
            let (name, after) = (&rest[..colon], &rest[colon + 1..]);
            let field = LogField::ALL
                .iter()
                .copied()
                .find(|f| f.name() == name)
                .ok_or_else(|| {
                    let names: Vec<&str> = LogField::ALL.iter().map(|f| f.name()).collect();
                    format!(
                        "`{name}` cannot be searched; the fields are {}",
                        names.join(", ")
                    )
                })?;
            let (value, after) = term_value(after)?;
            terms.push((field, value));
            rest = after.trim_start();
        }
        Ok(LogFilter(terms))
    }
}

/// The value at the start of `text` (quoted, or up to the next space, `\` escaping one
/// character) and what follows it.
fn term_value(text: &str) -> Result<(String, &str), String> {
    let quoted = text.starts_with('"');
    let mut value = String::new();
    let mut chars = text.char_indices().skip(usize::from(quoted));
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some((_, escaped)) => value.push(escaped),
                None => return Err("a search ends in a lone `\\`".into()),
            },
            '"' if quoted => return Ok((value, &text[i + 1..])),
            c if !quoted && c.is_whitespace() => return Ok((value, &text[i..])),
            '*' | '?' | '(' | ')' | '[' | ']' | '{' | '}' | '~' | '^' if !quoted => {
                return Err(format!(
                    "`{c}` is not supported in a search: only exact field:value terms joined by AND"
                ));
            }
            c => value.push(c),
        }
    }
    if quoted {
        return Err("a quoted search value is not closed".into());
    }
    if value.is_empty() {
        return Err("a search term has no value".into());
    }
    Ok((value, ""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_read_back() {
        let mut codes: Vec<&str> = LogType::ALL.iter().map(|t| t.code()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), LogType::ALL.len(), "one code per type");
        for t in LogType::ALL {
            assert_eq!(t.code().parse::<LogType>(), Ok(*t));
            assert_eq!(serde_json::to_value(t).unwrap(), t.code());
        }
        assert!("nope".parse::<LogType>().is_err());
    }

    #[test]
    fn searches_read_the_documented_subset() {
        let filter: LogFilter = r#"type:fp AND user_name:"alice@example.com"  client_id:abc\ d"#
            .parse()
            .unwrap();
        assert_eq!(
            filter.0,
            vec![
                (LogField::Type, "fp".to_string()),
                (LogField::UserName, "alice@example.com".to_string()),
                (LogField::ClientId, "abc d".to_string()),
            ]
        );
        assert_eq!("".parse::<LogFilter>().unwrap(), LogFilter::default());
        for (q, says) in [
            ("alice", "free text"),
            ("password:x", "cannot be searched"),
            ("type:f*", "not supported"),
            ("type:s OR type:f", "`OR` is not a field:value term"),
            (r#"user_name:"open"#, "not closed"),
            ("type:", "no value"),
        ] {
            let error = q.parse::<LogFilter>().unwrap_err();
            assert!(error.contains(says), "{q}: {error}");
        }
    }
}
