//! A database connection's password policy (Auth0's `passwordPolicy`,
//! `password_complexity_options`, `password_dictionary`, `password_no_personal_info`; notes §5)
//! and the check of a new password against it, with the rules and the policy text Auth0
//! returns (password-sheriff's). It applies to passwords being set — signups, changes,
//! resets — never to the login of an existing or migrating user.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// `passwordPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Strength {
    #[default]
    None,
    Low,
    Fair,
    Good,
    Excellent,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
struct Complexity {
    min_length: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
struct Dictionary {
    enable: bool,
    #[serde(default)]
    dictionary: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
struct Toggle {
    enable: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
struct History {
    enable: bool,
    /// Auth0's default when the option is turned on without a size.
    #[serde(default = "five")]
    size: u32,
}

fn five() -> u32 {
    5
}

/// The most previous passwords a connection may keep (Auth0's range).
pub const MAX_HISTORY: u32 = 24;

/// The policy a connection's options set.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PasswordPolicy {
    pub strength: Strength,
    /// Overrides the strength's length, either way.
    pub min_length: Option<u32>,
    /// Refuse common passwords (a built-in list) and these entries, lower-cased.
    pub dictionary: Option<Vec<String>>,
    /// Refuse passwords that contain the user's names or the email's local part.
    pub no_personal_info: bool,
    /// How many of the user's previous passwords may not be set again (0: any may).
    pub history: usize,
}

/// Why a new password is refused.
#[derive(Debug, Clone, PartialEq)]
pub enum Rejection {
    /// Too weak for the strength policy: password-sheriff's rules, each `verified` or not,
    /// and the policy as text.
    TooWeak { rules: Value, policy: String },
    /// On the dictionary.
    TooCommon,
    /// Contains the user's own information.
    PersonalInfo,
    /// One of the user's last `password_history.size` passwords.
    Reused,
}

impl Rejection {
    /// Auth0's error name and message for it.
    pub fn name_and_message(&self) -> (&'static str, &'static str) {
        match self {
            Rejection::TooWeak { .. } => ("PasswordStrengthError", "Password is too weak"),
            Rejection::TooCommon => ("PasswordDictionaryError", "Password is too common"),
            Rejection::PersonalInfo => (
                "PasswordNoUserInfoError",
                "Password is based on user information",
            ),
            Rejection::Reused => ("PasswordHistoryError", "Password has previously been used"),
        }
    }

    /// The `/dbconnections/signup` body Auth0 answers with.
    pub fn signup_body(&self) -> Value {
        let (name, message) = self.name_and_message();
        match self {
            Rejection::TooWeak { rules, policy } => json!({
                "name": name, "message": message, "code": "invalid_password",
                "description": {"rules": rules, "verified": false},
                "policy": policy, "statusCode": 400,
            }),
            Rejection::TooCommon => json!({
                "name": name, "message": message, "code": "password_dictionary_error",
                "description": "Password is too common.", "statusCode": 400,
            }),
            Rejection::PersonalInfo => json!({
                "name": name, "message": message, "code": "password_no_user_info_error",
                "description": "Password is based on user information.", "statusCode": 400,
            }),
            Rejection::Reused => json!({
                "name": name, "message": message, "code": "PasswordHistoryError",
                "description": "Password has previously been used.", "statusCode": 400,
            }),
        }
    }
}

/// The user a password is checked for: what "personal information" means.
#[derive(Debug, Clone, Default)]
pub struct Person<'a> {
    pub email: Option<&'a str>,
    /// name, username, nickname, user_metadata.name/first/last.
    pub names: Vec<&'a str>,
}

impl<'a> Person<'a> {
    /// From a profile (or a signup body) and the user's metadata: email, names and the
    /// metadata's names.
    pub fn of(profile: &'a Map<String, Value>, metadata: Option<&'a Map<String, Value>>) -> Self {
        let text = |v: Option<&'a Value>| v.and_then(Value::as_str);
        let mut names: Vec<&str> = ["name", "username", "nickname"]
            .iter()
            .filter_map(|k| text(profile.get(*k)))
            .collect();
        if let Some(m) = metadata {
            names.extend(
                ["name", "first", "last"]
                    .iter()
                    .filter_map(|k| text(m.get(*k))),
            );
        }
        Person {
            email: text(profile.get("email")),
            names,
        }
    }
}

/// Character classes (password-sheriff's, with OWASP's special characters).
#[derive(Clone, Copy)]
enum Class {
    Lower,
    Upper,
    Number,
    Special,
}

impl Class {
    const ALL: [Class; 4] = [Class::Lower, Class::Upper, Class::Number, Class::Special];

    fn item(self, password: &str) -> Value {
        let (message, code) = match self {
            Class::Lower => ("lower case letters (a-z)", "lowerCase"),
            Class::Upper => ("upper case letters (A-Z)", "upperCase"),
            Class::Number => ("numbers (i.e. 0-9)", "numbers"),
            Class::Special => ("special characters (e.g. !@#$%^&*)", "specialCharacters"),
        };
        json!({"message": message, "code": code, "verified": self.found(password)})
    }

    fn found(self, password: &str) -> bool {
        password.chars().any(|c| match self {
            Class::Lower => c.is_ascii_lowercase(),
            Class::Upper => c.is_ascii_uppercase(),
            Class::Number => c.is_ascii_digit(),
            Class::Special => c == ' ' || "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~".contains(c),
        })
    }
}

/// The most common passwords (from public breach corpora): refused under `password_dictionary`
/// with the connection's own entries.
const COMMON: &[&str] = &[
    "123456",
    "password",
    "12345678",
    "qwerty",
    "123456789",
    "12345",
    "1234",
    "111111",
    "1234567",
    "dragon",
    "123123",
    "baseball",
    "abc123",
    "football",
    "monkey",
    "letmein",
    "696969",
    "shadow",
    "master",
    "666666",
    "qwertyuiop",
    "123321",
    "mustang",
    "1234567890",
    "michael",
    "654321",
    "superman",
    "1qaz2wsx",
    "7777777",
    "121212",
    "000000",
    "qazwsx",
    "123qwe",
    "killer",
    "trustno1",
    "jordan",
    "jennifer",
    "zxcvbnm",
    "asdfgh",
    "hunter",
    "buster",
    "soccer",
    "harley",
    "batman",
    "andrew",
    "tigger",
    "sunshine",
    "iloveyou",
    "2000",
    "charlie",
    "robert",
    "thomas",
    "hockey",
    "ranger",
    "daniel",
    "starwars",
    "klaster",
    "112233",
    "george",
    "computer",
    "michelle",
    "jessica",
    "pepper",
    "1111",
    "zxcvbn",
    "555555",
    "11111111",
    "131313",
    "freedom",
    "777777",
    "pass",
    "maggie",
    "159753",
    "aaaaaa",
    "ginger",
    "princess",
    "joshua",
    "cheese",
    "amanda",
    "summer",
    "love",
    "ashley",
    "nicole",
    "chelsea",
    "biteme",
    "matthew",
    "access",
    "yankees",
    "987654321",
    "dallas",
    "austin",
    "thunder",
    "taylor",
    "matrix",
    "password1",
    "password123",
    "welcome",
    "admin",
    "login",
    "passw0rd",
    "qwerty123",
    "1q2w3e4r",
    "p@ssw0rd",
    "welcome1",
    "changeme",
    "secret",
    "hello",
    "hunter2",
];

impl PasswordPolicy {
    /// The policy of a connection's options; a wrong type is an error naming the option.
    pub fn from_options(options: &Map<String, Value>) -> Result<Self, String> {
        fn read<T: serde::de::DeserializeOwned>(
            options: &Map<String, Value>,
            key: &str,
        ) -> Result<Option<T>, String> {
            match options.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => serde_json::from_value(v.clone())
                    .map(Some)
                    .map_err(|e| format!("options.{key}: {e}")),
            }
        }
        let complexity: Option<Complexity> = read(options, "password_complexity_options")?;
        let min_length = complexity.and_then(|c| c.min_length);
        if min_length.is_some_and(|n| !(1..=128).contains(&n)) {
            return Err("options.password_complexity_options.min_length must be 1 to 128".into());
        }
        let dictionary: Option<Dictionary> = read(options, "password_dictionary")?;
        let personal: Option<Toggle> = read(options, "password_no_personal_info")?;
        let history: Option<History> = read(options, "password_history")?;
        if history.as_ref().is_some_and(|h| h.size > MAX_HISTORY) {
            return Err(format!(
                "options.password_history.size must be 0 to {MAX_HISTORY}"
            ));
        }
        Ok(PasswordPolicy {
            strength: read(options, "passwordPolicy")?.unwrap_or_default(),
            min_length,
            dictionary: dictionary
                .filter(|d| d.enable)
                .map(|d| d.dictionary.iter().map(|w| w.to_lowercase()).collect()),
            no_personal_info: personal.is_some_and(|t| t.enable),
            history: history.filter(|h| h.enable).map_or(0, |h| h.size as usize),
        })
    }

    /// Checks a new password for `person`.
    pub fn check(&self, password: &str, person: &Person<'_>) -> Result<(), Rejection> {
        self.strength(password)?;
        if let Some(custom) = &self.dictionary {
            let lower = password.to_lowercase();
            if COMMON.contains(&lower.as_str()) || custom.contains(&lower) {
                return Err(Rejection::TooCommon);
            }
        }
        if self.no_personal_info && based_on(password, person) {
            return Err(Rejection::PersonalInfo);
        }
        Ok(())
    }

    fn strength(&self, password: &str) -> Result<(), Rejection> {
        let (default_length, classes, identical) = match self.strength {
            Strength::None => (1, None, false),
            Strength::Low => (6, None, false),
            Strength::Fair => (8, Some(ClassRule::All), false),
            Strength::Good => (8, Some(ClassRule::ThreeOfFour), false),
            Strength::Excellent => (10, Some(ClassRule::ThreeOfFour), true),
        };
        let length = self.min_length.unwrap_or(default_length);
        let mut rules = Vec::new();
        let mut policy = Vec::new();
        let long_enough = password.encode_utf16().count() >= length as usize;
        if length <= 1 {
            rules.push(json!({"message": "Non-empty password required", "code": "nonEmpty", "verified": long_enough}));
            policy.push("* Non-empty password required".to_string());
        } else {
            rules.push(
                json!({"message": "At least %d characters in length", "format": [length],
                              "code": "lengthAtLeast", "verified": long_enough}),
            );
            policy.push(format!("* At least {length} characters in length"));
        }
        let mut verified = long_enough;
        if let Some(rule) = classes {
            let (classes, header, code, format): (&[Class], String, &str, Value) = match rule {
                ClassRule::All => (
                    &Class::ALL[..3],
                    "Should contain:".into(),
                    "shouldContain",
                    Value::Null,
                ),
                ClassRule::ThreeOfFour => (
                    &Class::ALL,
                    "Contain at least 3 of the following 4 types of characters:".into(),
                    "containsAtLeast",
                    json!([3, 4]),
                ),
            };
            let found = classes.iter().filter(|c| c.found(password)).count();
            let ok = match rule {
                ClassRule::All => found == classes.len(),
                ClassRule::ThreeOfFour => found >= 3,
            };
            let mut entry = json!({
                "message": match rule {
                    ClassRule::All => "Should contain:",
                    ClassRule::ThreeOfFour => "Contain at least %d of the following %d types of characters:",
                },
                "code": code,
                "items": classes.iter().map(|c| c.item(password)).collect::<Vec<_>>(),
                "verified": ok,
            });
            if !format.is_null() {
                entry["format"] = format;
            }
            rules.push(entry);
            policy.push(format!("* {header}"));
            for class in classes {
                policy.push(format!(
                    " * {}",
                    class.item("")["message"].as_str().unwrap_or_default()
                ));
            }
            verified &= ok;
        }
        if identical {
            let ok = !has_run(password, 3);
            rules.push(json!({"message": "No more than %d identical characters in a row (e.g., \"%s\" not allowed)",
                              "format": [2, "aaa"], "code": "identicalChars", "verified": ok}));
            policy.push(
                "* No more than 2 identical characters in a row (e.g., \"aaa\" not allowed)".into(),
            );
            verified &= ok;
        }
        if verified {
            return Ok(());
        }
        Err(Rejection::TooWeak {
            rules: Value::Array(rules),
            policy: policy.join("\n"),
        })
    }
}

#[derive(Clone, Copy)]
enum ClassRule {
    All,
    ThreeOfFour,
}

/// Whether some character repeats `n` times in a row.
fn has_run(password: &str, n: usize) -> bool {
    let chars: Vec<char> = password.chars().collect();
    chars.windows(n).any(|w| w.iter().all(|c| *c == w[0]))
}

/// Whether the password contains the person's names or the email's local part (without case;
/// parts shorter than three characters are too common to refuse).
fn based_on(password: &str, person: &Person<'_>) -> bool {
    let password = password.to_lowercase();
    let local = person.email.map(|e| e.split('@').next().unwrap_or(e));
    person
        .names
        .iter()
        .copied()
        .chain(local)
        .map(str::to_lowercase)
        .filter(|part| part.chars().count() >= 3)
        .any(|part| password.contains(&part))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(options: Value) -> PasswordPolicy {
        PasswordPolicy::from_options(options.as_object().unwrap()).unwrap()
    }

    fn weak(p: &PasswordPolicy, password: &str) -> Option<(Value, String)> {
        match p.check(password, &Person::default()) {
            Ok(()) => None,
            Err(Rejection::TooWeak { rules, policy }) => Some((rules, policy)),
            Err(other) => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_level_as_password_sheriff_has_it() {
        let table = [
            ("none", "", false),
            ("none", "a", true),
            ("low", "abcde", false),
            ("low", "abcdef", true),
            ("fair", "abcdefg1A", true),
            ("fair", "abcdefgh1", false),
            ("good", "abcdefG!", true),
            ("good", "abcdefgh1", false),
            ("excellent", "abcdefG!12", true),
            ("excellent", "abcdeG!111", false),
            ("excellent", "abcdeG!11", false),
        ];
        for (level, password, ok) in table {
            let p = policy(json!({"passwordPolicy": level}));
            assert_eq!(weak(&p, password).is_none(), ok, "{level} {password:?}");
        }
        let p = policy(
            json!({"passwordPolicy": "fair", "password_complexity_options": {"min_length": 4}}),
        );
        assert!(
            weak(&p, "aB3d").is_none(),
            "min_length overrides the level's"
        );
        assert!(
            weak(&policy(json!({"passwordPolicy": "low"})), "ééééé").is_some(),
            "5 code units"
        );
    }

    #[test]
    fn the_good_body_matches_auth0s() {
        let (rules, text) = weak(&policy(json!({"passwordPolicy": "good"})), "abcdefgh!").unwrap();
        assert_eq!(
            rules,
            json!([
                {"message": "At least %d characters in length", "format": [8], "code": "lengthAtLeast", "verified": true},
                {"message": "Contain at least %d of the following %d types of characters:", "code": "containsAtLeast",
                 "items": [{"message": "lower case letters (a-z)", "code": "lowerCase", "verified": true},
                           {"message": "upper case letters (A-Z)", "code": "upperCase", "verified": false},
                           {"message": "numbers (i.e. 0-9)", "code": "numbers", "verified": false},
                           {"message": "special characters (e.g. !@#$%^&*)", "code": "specialCharacters", "verified": true}],
                 "verified": false, "format": [3, 4]}
            ])
        );
        assert_eq!(
            text,
            "* At least 8 characters in length\n* Contain at least 3 of the following 4 types of characters:\n * lower case letters (a-z)\n * upper case letters (A-Z)\n * numbers (i.e. 0-9)\n * special characters (e.g. !@#$%^&*)"
        );
    }

    #[test]
    fn dictionary_and_personal_information() {
        let p = policy(
            json!({"password_dictionary": {"enable": true, "dictionary": ["Acme2026"]},
                              "password_no_personal_info": {"enable": true}}),
        );
        let nobody = Person::default();
        assert_eq!(p.check("Purple-Otter-1", &nobody), Ok(()));
        assert_eq!(p.check("Password1", &nobody), Err(Rejection::TooCommon));
        assert_eq!(p.check("PASSWORD", &nobody), Err(Rejection::TooCommon));
        assert_eq!(p.check("acme2026", &nobody), Err(Rejection::TooCommon));
        let profile = json!({"email": "jdoe@example.com"});
        let metadata = json!({"first": "Johanna"});
        let person = Person::of(profile.as_object().unwrap(), metadata.as_object());
        assert_eq!(
            p.check("my-JDoe-pass", &person),
            Err(Rejection::PersonalInfo)
        );
        assert_eq!(p.check("xjohannax", &person), Err(Rejection::PersonalInfo));
        assert_eq!(p.check("unrelated words", &person), Ok(()));
        let off = policy(json!({"password_dictionary": {"enable": false}}));
        assert_eq!(off.check("password", &nobody), Ok(()));
        assert_eq!(
            policy(json!({"password_history": {"enable": true}})).history,
            5
        );
        assert_eq!(
            policy(json!({"password_history": {"enable": false, "size": 3}})).history,
            0
        );
        assert!(
            PasswordPolicy::from_options(
                json!({"password_history": {"enable": true, "size": 25}})
                    .as_object()
                    .unwrap()
            )
            .is_err()
        );
        let error =
            PasswordPolicy::from_options(json!({"passwordPolicy": "strong"}).as_object().unwrap());
        assert!(
            error
                .unwrap_err()
                .starts_with("options.passwordPolicy: unknown variant")
        );
    }
}
