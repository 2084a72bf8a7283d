//! Attack protection as Auth0 has it: the tenant's brute-force protection settings
//! (`/api/v2/attack-protection/brute-force-protection`) and what they decide for one login
//! attempt — whether it counts, under which key, and when a count is a block.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

use super::profile::Violation;

/// How long a block lasts after the last failed attempt (Auth0: 30 days).
pub const BLOCK_SECS: i64 = 30 * 86_400;

/// What a blocked login answers (Auth0's `too_many_attempts` description).
pub const BLOCKED_DESCRIPTION: &str = "Your account has been blocked after multiple consecutive login attempts. We've sent you a notification via your preferred contact method with instructions on how to unblock it.";

/// What a reached threshold does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Shield {
    /// Refuse logins of the identifier (from the address, or from everywhere).
    Block,
    /// Tell the user (customdb sends no mail: accepted and kept, it writes the log event).
    UserNotification,
}

/// What failed logins are counted per.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Per identifier and source address (Auth0's default).
    #[default]
    CountPerIdentifierAndIp,
    /// Per identifier from any address ("Account Lockout").
    CountPerIdentifier,
}

/// A tenant's brute-force protection, in Auth0's wire shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BruteForce {
    pub enabled: bool,
    pub shields: Vec<Shield>,
    /// Addresses and CIDR blocks whose attempts are never counted.
    pub allowlist: Vec<Allowed>,
    pub mode: Mode,
    /// Failed logins that make a block, 1 to 100.
    pub max_attempts: u32,
}

impl Default for BruteForce {
    fn default() -> Self {
        BruteForce {
            enabled: true,
            shields: vec![Shield::Block, Shield::UserNotification],
            allowlist: Vec::new(),
            mode: Mode::default(),
            max_attempts: 10,
        }
    }
}

/// An allow-list entry: an address or a CIDR block, written back as it was given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Allowed {
    text: String,
    net: IpNet,
}

impl TryFrom<String> for Allowed {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        let net = match text.parse::<IpNet>() {
            Ok(net) => net,
            Err(_) => text
                .parse::<IpAddr>()
                .map(IpNet::from)
                .map_err(|_| format!("'{text}' is not an IPv4 or IPv6 address or CIDR block"))?,
        };
        Ok(Allowed { text, net })
    }
}

impl From<Allowed> for String {
    fn from(a: Allowed) -> String {
        a.text
    }
}

impl Allowed {
    /// The block the entry names (an address is a block of one).
    pub fn net(&self) -> IpNet {
        self.net
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.net.contains(&canonical(ip))
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// One login attempt as the protection sees it: the keys it is counted under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The identifier typed, lower-cased (emails and usernames match without case).
    pub identifier: String,
    /// The source address, or `""` when counting per identifier only.
    pub ip: String,
}

impl BruteForce {
    /// Checks what a PATCH cannot store, naming the field.
    pub fn validate(&self) -> Result<(), Violation> {
        if !(1..=100).contains(&self.max_attempts) {
            return Err(Violation::new(
                "max_attempts",
                &format!("must be between 1 and 100, not {}", self.max_attempts),
            ));
        }
        if self.allowlist.len() > 100 {
            return Err(Violation::new("allowlist", "may hold at most 100 entries"));
        }
        Ok(())
    }

    /// These settings with the fields of a PATCH body replaced; the error names the field.
    pub fn patched(
        self,
        patch: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Self, Violation> {
        let next: BruteForce = patched(&self, patch)?;
        next.validate()?;
        Ok(next)
    }

    /// The keys a login of `identifier` from `ip` is counted under, or `None` when it is not
    /// counted: protection off (for the tenant or the connection), an address on the
    /// allow-list, or no address at all (the CLI and the harness run no requests).
    pub fn attempt(
        &self,
        connection_on: bool,
        identifier: &str,
        ip: Option<&str>,
    ) -> Option<Attempt> {
        let ip = ip?.parse::<IpAddr>().ok().map(canonical)?;
        if !self.enabled || !connection_on || self.allowlist.iter().any(|a| a.contains(ip)) {
            return None;
        }
        Some(Attempt {
            identifier: identifier_key(identifier),
            ip: match self.mode {
                Mode::CountPerIdentifierAndIp => ip.to_string(),
                Mode::CountPerIdentifier => String::new(),
            },
        })
    }

    /// Whether `failures` counted failed logins refuse the next one.
    pub fn blocks(&self, failures: u32) -> bool {
        failures >= self.max_attempts && self.shields.contains(&Shield::Block)
    }
}

/// `current` with a PATCH body merged into it (objects field by field, anything else
/// replaced), read back as settings; the error names the field.
fn patched<T: Serialize + serde::de::DeserializeOwned>(
    current: &T,
    patch: &serde_json::Map<String, serde_json::Value>,
) -> Result<T, Violation> {
    fn merge(into: &mut serde_json::Value, patch: &serde_json::Value) {
        match (into, patch) {
            (serde_json::Value::Object(into), serde_json::Value::Object(patch)) => {
                for (key, value) in patch {
                    merge(
                        into.entry(key.clone()).or_insert(serde_json::Value::Null),
                        value,
                    );
                }
            }
            (into, patch) => *into = patch.clone(),
        }
    }
    let mut doc = serde_json::to_value(current).unwrap_or_default();
    merge(&mut doc, &serde_json::Value::Object(patch.clone()));
    serde_path_to_error::deserialize(doc)
        .map_err(|e| Violation::new(&e.path().to_string(), &e.inner().to_string()))
}

/// What suspicious IP throttling shields do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IpShield {
    /// Refuse the address's logins (or signups) while its budget is spent.
    Block,
    /// Tell the administrators (customdb sends no mail: accepted and kept, it logs).
    AdminNotification,
}

/// One stage's budget: `max_attempts` at most, one given back every `rate` milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    pub max_attempts: u32,
    pub rate: u64,
}

impl Budget {
    /// What is left of a budget that had `tokens` at `at_ms`, at `now_ms`.
    pub fn refilled(&self, tokens: f64, at_ms: i64, now_ms: i64) -> f64 {
        let elapsed = (now_ms - at_ms).max(0) as f64;
        (tokens + elapsed / self.rate.max(1) as f64).min(f64::from(self.max_attempts))
    }

    /// When a budget with `tokens` left at `now_ms` is whole again.
    pub fn full_at(&self, tokens: f64, now_ms: i64) -> i64 {
        let missing = (f64::from(self.max_attempts) - tokens).max(0.0);
        now_ms.saturating_add((missing * self.rate as f64).ceil() as i64)
    }
}

/// The two budgets: failed logins and signups, per address.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stages {
    #[serde(rename = "pre-login")]
    pub pre_login: Budget,
    #[serde(rename = "pre-user-registration")]
    pub pre_user_registration: Budget,
    /// Custom token exchange has no counterpart here: kept as given (newer SDKs send it).
    #[serde(
        rename = "pre-custom-token-exchange",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub pre_custom_token_exchange: Option<Budget>,
}

/// Which budget an attempt draws on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Failed logins.
    Login,
    /// Signups, successful or not.
    Signup,
}

impl Stage {
    /// Its name in Auth0's settings and in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Login => "pre-login",
            Stage::Signup => "pre-user-registration",
        }
    }
}

/// A tenant's suspicious IP throttling (`/api/v2/attack-protection/suspicious-ip-throttling`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuspiciousIp {
    pub enabled: bool,
    pub shields: Vec<IpShield>,
    pub allowlist: Vec<Allowed>,
    pub stage: Stages,
}

/// What a throttled address is told (Auth0's words).
pub const THROTTLED_DESCRIPTION: &str = "We have detected suspicious login behavior and further attempts will be blocked. Please contact the administrator.";

impl Default for SuspiciousIp {
    fn default() -> Self {
        SuspiciousIp {
            enabled: true,
            shields: vec![IpShield::AdminNotification, IpShield::Block],
            allowlist: Vec::new(),
            stage: Stages {
                pre_login: Budget {
                    max_attempts: 100,
                    rate: 864_000,
                },
                pre_user_registration: Budget {
                    max_attempts: 50,
                    rate: 1_728_000,
                },
                pre_custom_token_exchange: None,
            },
        }
    }
}

impl SuspiciousIp {
    /// These settings with a PATCH body merged in; the error names the field.
    pub fn patched(
        self,
        patch: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Self, Violation> {
        let next: SuspiciousIp = patched(&self, patch)?;
        let check = |name: &str, b: Budget, max: u32, rates: (u64, u64)| {
            if !(1..=max).contains(&b.max_attempts) {
                return Err(Violation::new(
                    &format!("stage.{name}.max_attempts"),
                    &format!("must be between 1 and {max}, not {}", b.max_attempts),
                ));
            }
            if !(rates.0..=rates.1).contains(&b.rate) {
                return Err(Violation::new(
                    &format!("stage.{name}.rate"),
                    &format!(
                        "must be between {} and {} milliseconds, not {}",
                        rates.0, rates.1, b.rate
                    ),
                ));
            }
            Ok(())
        };
        check(
            "pre-login",
            next.stage.pre_login,
            2500,
            (34_560, 86_400_000),
        )?;
        check(
            "pre-user-registration",
            next.stage.pre_user_registration,
            72_000,
            (1_200, 86_400_000),
        )?;
        if next.allowlist.len() > 100 {
            return Err(Violation::new("allowlist", "may hold at most 100 entries"));
        }
        Ok(next)
    }

    /// The address an attempt is counted under, or `None` when it is not counted (off,
    /// allow-listed, or no address).
    pub fn counted(&self, ip: Option<&str>) -> Option<String> {
        let ip = canonical(ip?.parse::<IpAddr>().ok()?);
        (self.enabled && !self.allowlist.iter().any(|a| a.contains(ip))).then(|| ip.to_string())
    }

    pub fn budget(&self, stage: Stage) -> Budget {
        match stage {
            Stage::Login => self.stage.pre_login,
            Stage::Signup => self.stage.pre_user_registration,
        }
    }

    /// Whether an address with `tokens` left in `stage` is refused.
    pub fn blocks(&self, tokens: f64) -> bool {
        tokens < 1.0 && self.shields.contains(&IpShield::Block)
    }
}

/// The key an identifier is counted under.
pub fn identifier_key(identifier: &str) -> String {
    identifier.trim().to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn settings_read_and_write_auth0s_shape() {
        let sent = json!({"enabled": true, "shields": ["block"], "allowlist": ["10.0.0.0/8", "2001:db8::1"],
                          "mode": "count_per_identifier", "max_attempts": 3});
        let parsed: BruteForce = serde_json::from_value(sent.clone()).unwrap();
        assert_eq!(serde_json::to_value(&parsed).unwrap(), sent);
        let bad: Result<BruteForce, _> = serde_json::from_value(
            json!({"enabled": true, "shields": [], "allowlist": ["10.0.0.0/33"], "mode": "count_per_identifier", "max_attempts": 3}),
        );
        assert!(
            bad.unwrap_err()
                .to_string()
                .contains("'10.0.0.0/33' is not")
        );
        let mut too_many = parsed.clone();
        too_many.max_attempts = 101;
        assert_eq!(
            too_many.validate().unwrap_err().to_string(),
            "max_attempts must be between 1 and 100, not 101"
        );
        let patched =
            BruteForce::default().patched(json!({"mode": "sometimes"}).as_object().unwrap());
        assert!(
            patched
                .unwrap_err()
                .to_string()
                .starts_with("mode unknown variant `sometimes`")
        );
    }

    #[test]
    fn what_counts_and_under_which_key() {
        let mut p = BruteForce {
            allowlist: vec![Allowed::try_from("192.168.0.0/16".to_string()).unwrap()],
            ..BruteForce::default()
        };
        let a = p
            .attempt(true, " Alice@Example.com", Some("::ffff:10.1.2.3"))
            .unwrap();
        assert_eq!(
            a,
            Attempt {
                identifier: "alice@example.com".into(),
                ip: "10.1.2.3".into()
            }
        );
        assert_eq!(
            p.attempt(true, "a", Some("192.168.4.4")),
            None,
            "allow-listed"
        );
        assert_eq!(
            p.attempt(false, "a", Some("10.0.0.1")),
            None,
            "connection off"
        );
        assert_eq!(p.attempt(true, "a", None), None, "no request");
        p.mode = Mode::CountPerIdentifier;
        assert_eq!(p.attempt(true, "a", Some("10.0.0.1")).unwrap().ip, "");
        assert!(!p.blocks(9) && p.blocks(10));
        p.shields = vec![Shield::UserNotification];
        assert!(!p.blocks(10), "monitoring only");
    }

    #[test]
    fn an_address_budget_refills_at_its_rate_up_to_its_size() {
        let b = Budget {
            max_attempts: 100,
            rate: 864_000,
        };
        assert_eq!(b.refilled(0.0, 0, 864_000), 1.0);
        assert_eq!(
            b.refilled(0.0, 0, 864_000 * 250),
            100.0,
            "never past its size"
        );
        assert_eq!(
            b.refilled(5.0, 1_000, 0),
            5.0,
            "a clock going back gives nothing"
        );
        assert_eq!(b.full_at(99.0, 10), 10 + 864_000);
        assert_eq!(b.full_at(100.0, 10), 10);
        let s = SuspiciousIp {
            allowlist: vec![Allowed::try_from("10.0.0.0/8".to_string()).unwrap()],
            ..SuspiciousIp::default()
        };
        assert_eq!(
            s.counted(Some("::ffff:192.0.2.1")).as_deref(),
            Some("192.0.2.1")
        );
        assert_eq!(s.counted(Some("10.2.3.4")), None, "allow-listed");
        assert_eq!(s.counted(Some("not an address")), None);
        assert!(s.blocks(0.5) && !s.blocks(1.0));
        let patched = SuspiciousIp::default()
            .patched(
                json!({"stage": {"pre-login": {"rate": 40_000}}})
                    .as_object()
                    .unwrap(),
            )
            .unwrap();
        assert_eq!(
            patched.stage.pre_login,
            Budget {
                max_attempts: 100,
                rate: 40_000
            }
        );
    }
}
