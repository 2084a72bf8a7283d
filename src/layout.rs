//! The Auth0 Deploy CLI folder format for one database connection: `database.json` (name,
//! `options.customScripts`, `options.configuration`, `import_mode`, …) beside the scripts.
//! Reads a folder into plain data, with `##KEY##` keyword replacement as the Deploy CLI does;
//! it never runs a script.

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::domain::options::ConnectionOptions;
use crate::script::Action;

/// The file that makes a folder a connection folder.
pub const DATABASE_JSON: &str = "database.json";

#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not valid JSON: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path}: {what}")]
    Invalid { path: PathBuf, what: String },
}

/// One connection as its folder describes it.
#[derive(Debug, Clone)]
pub struct ConnectionFolder {
    pub dir: PathBuf,
    pub name: String,
    /// `display_name`, `metadata`, `enabled_clients`, ... as `database.json` gives them.
    pub attributes: crate::domain::connection::ConnectionAttributes,
    /// `options` as written, without the scripts and the configuration.
    pub options: ConnectionOptions,
    pub scripts: BTreeMap<Action, String>,
    /// `options.configuration`, string values, keywords not yet replaced.
    pub configuration: BTreeMap<String, String>,
}

/// Reads the connection folder `dir`. Scripts are the files `options.customScripts` names
/// (relative to the folder), or `<action>.js` files when it names none.
pub fn read(dir: &Path) -> Result<ConnectionFolder, LayoutError> {
    let path = dir.join(DATABASE_JSON);
    let text = std::fs::read_to_string(&path).map_err(|source| LayoutError::Read {
        path: path.clone(),
        source,
    })?;
    let doc: Value = serde_json::from_str(&text).map_err(|source| LayoutError::Json {
        path: path.clone(),
        source,
    })?;
    let invalid = |what: String| LayoutError::Invalid {
        path: path.clone(),
        what,
    };
    let name = match doc.get("name") {
        Some(Value::String(n)) if !n.is_empty() => n.clone(),
        None => dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        Some(_) => return Err(invalid("\"name\" must be a non-empty string".into())),
    };
    let parts = ConnectionOptions::split(doc.get("options")).map_err(invalid)?;
    let configuration = configuration_values(parts.configuration.as_ref())
        .map_err(|what| invalid(format!("options.configuration: {what}")))?;
    let mut scripts = BTreeMap::new();
    match parts.script_entries().map_err(invalid)? {
        Some(files) => {
            for (action, file) in files {
                scripts.insert(action, read_script(&dir.join(file))?);
            }
        }
        None => {
            for action in Action::ALL {
                let file = dir.join(format!("{action}.js"));
                if file.is_file() {
                    scripts.insert(action, read_script(&file)?);
                }
            }
        }
    }
    let attributes = match doc.as_object() {
        Some(object) => crate::domain::connection::ConnectionAttributes::default()
            .patched(object)
            .map_err(invalid)?,
        None => Default::default(),
    };
    Ok(ConnectionFolder {
        dir: dir.to_path_buf(),
        name,
        attributes,
        options: parts.options,
        scripts,
        configuration,
    })
}

fn read_script(path: &Path) -> Result<String, LayoutError> {
    std::fs::read_to_string(path).map_err(|source| LayoutError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// A configuration object as string values (numbers and booleans as their JSON text).
pub fn configuration_values(value: Option<&Value>) -> Result<BTreeMap<String, String>, String> {
    let Some(value) = value else {
        return Ok(BTreeMap::new());
    };
    let map = value
        .as_object()
        .ok_or("must be a JSON object of settings")?;
    map.iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k.clone(), s.clone())),
            Value::Number(_) | Value::Bool(_) => Ok((k.clone(), v.to_string())),
            _ => Err(format!("'{k}' must be a string, number or boolean")),
        })
        .collect()
}

/// Environment variables that map keywords: `CUSTOMDB_KW_DB_PASSWORD` fills `##DB_PASSWORD##`.
pub const KEYWORD_ENV_PREFIX: &str = "CUSTOMDB_KW_";

/// Values for `##KEY##` keywords, from explicit mappings only: a `--keywords FILE` (a JSON
/// object, as the Deploy CLI's `AUTH0_KEYWORD_REPLACE_MAPPINGS`) and `CUSTOMDB_KW_<KEY>`
/// variables, which win. Never the whole environment: a connection folder from an untrusted
/// pull request must not be able to name `##GITHUB_TOKEN##` and carry the CI's secret away.
#[derive(Debug, Clone, Default)]
pub struct Keywords(BTreeMap<String, String>);

impl Keywords {
    /// The mappings of `file` (when given) and of the environment.
    pub fn load(file: Option<&Path>) -> Result<Keywords, LayoutError> {
        let mut map = BTreeMap::new();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| LayoutError::Read {
                path: path.to_path_buf(),
                source,
            })?;
            let doc: Value = serde_json::from_str(&text).map_err(|source| LayoutError::Json {
                path: path.to_path_buf(),
                source,
            })?;
            map = configuration_values(Some(&doc)).map_err(|what| LayoutError::Invalid {
                path: path.to_path_buf(),
                what: format!("a keywords file {what}"),
            })?;
        }
        for (name, value) in std::env::vars() {
            if let Some(key) = name.strip_prefix(KEYWORD_ENV_PREFIX) {
                map.insert(key.to_string(), value);
            }
        }
        Ok(Keywords(map))
    }

    pub fn from_map(map: BTreeMap<String, String>) -> Keywords {
        Keywords(map)
    }

    /// `text` with its keywords filled; a keyword without a mapping is an error naming it.
    pub fn fill(&self, text: &str) -> Result<String, String> {
        replace_keywords(text, |key| self.0.get(key).cloned())
    }
}

/// Replaces `##KEY##` and `@@KEY@@` with `lookup(KEY)`, as the Deploy CLI's keyword
/// replacement does. A keyword `lookup` does not know is an error naming it.
pub fn replace_keywords(
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    loop {
        let next = ["##", "@@"]
            .iter()
            .filter_map(|m| rest.find(m).map(|i| (i, *m)))
            .min_by_key(|(i, _)| *i);
        let Some((start, marker)) = next else {
            out.push_str(rest);
            return Ok(out);
        };
        let after = &rest[start + 2..];
        let Some(len) = after.find(marker) else {
            out.push_str(rest);
            return Ok(out);
        };
        let key = &after[..len];
        let valid = !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        out.push_str(&rest[..start]);
        if valid {
            let value = lookup(key).ok_or_else(|| {
                format!("keyword {marker}{key}{marker} has no value (map it in --keywords FILE, or set {KEYWORD_ENV_PREFIX}{key})")
            })?;
            out.push_str(&value);
        } else {
            out.push_str(&rest[start..start + 2 + len + 2]);
        }
        rest = &after[len + 2..];
    }
}

/// The connection folders under `roots`: each root that holds a `database.json`, or every
/// folder below it that does, in path order.
pub fn find(roots: &[PathBuf]) -> Result<Vec<PathBuf>, LayoutError> {
    let mut found = Vec::new();
    for root in roots {
        if !root.exists() {
            return Err(LayoutError::Read {
                path: root.clone(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or folder"),
            });
        }
        walk(root, &mut found)?;
    }
    found.sort();
    found.dedup();
    Ok(found)
}

fn walk(dir: &Path, found: &mut Vec<PathBuf>) -> Result<(), LayoutError> {
    if dir.join(DATABASE_JSON).is_file() {
        found.push(dir.to_path_buf());
        return Ok(());
    }
    let entries = std::fs::read_dir(dir).map_err(|source| LayoutError::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    for entry in entries.flatten() {
        let path = entry.path();
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        if path.is_dir() && !hidden && entry.file_name() != "node_modules" {
            walk(&path, found)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyword_replacement() {
        let env = |k: &str| (k == "PG").then(|| "postgres://x".to_string());
        let table = [
            ("##PG##", Ok("postgres://x".to_string())),
            ("a @@PG@@ b", Ok("a postgres://x b".to_string())),
            ("no keywords", Ok("no keywords".to_string())),
            ("# ## not a key ##", Ok("# ## not a key ##".to_string())),
            (
                "##NOPE##",
                Err(
                    "keyword ##NOPE## has no value (map it in --keywords FILE, or set CUSTOMDB_KW_NOPE)".to_string(),
                ),
            ),
        ];
        for (text, expected) in table {
            assert_eq!(replace_keywords(text, env), expected, "{text}");
        }
    }
}
