//! What happens in a tenant, as values: Auth0's log event types (the codes of its log
//! schema, with their descriptions) and the events live watchers are shown.

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
}
