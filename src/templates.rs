//! The connection templates shipped in `templates/`, embedded at build time (see build.rs),
//! and writing one out as a new connection folder.

use std::collections::BTreeSet;
use std::path::Path;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/templates.rs"));
}

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("no template named '{name}'; the templates are: {}", available().join(", "))]
    Unknown { name: String },
    #[error("{0} already exists and is not empty; choose a new folder")]
    NotEmpty(String),
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

/// One file of a template, by its path inside it.
pub fn file(template: &str, path: &str) -> Option<&'static [u8]> {
    embedded::FILES
        .iter()
        .find(|(t, p, _)| *t == template && *p == path)
        .map(|(_, _, bytes)| *bytes)
}

/// The template names, sorted.
pub fn available() -> Vec<&'static str> {
    let names: BTreeSet<&str> = embedded::FILES.iter().map(|(t, _, _)| *t).collect();
    names.into_iter().collect()
}

/// Writes template `name` into `dir` (created; it must not hold anything yet) and names the
/// connection after the folder. Returns the number of files written.
pub fn write(name: &str, dir: &Path) -> Result<usize, TemplateError> {
    let files: Vec<_> = embedded::FILES
        .iter()
        .filter(|(t, _, _)| *t == name)
        .collect();
    if files.is_empty() {
        return Err(TemplateError::Unknown { name: name.into() });
    }
    if dir.read_dir().is_ok_and(|mut d| d.next().is_some()) {
        return Err(TemplateError::NotEmpty(dir.display().to_string()));
    }
    let connection = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| name.to_string());
    for (_, relative, bytes) in &files {
        let path = dir.join(relative);
        let written = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| {
                if *relative == crate::layout::DATABASE_JSON {
                    std::fs::write(&path, rename(bytes, &connection))
                } else {
                    std::fs::write(&path, bytes)
                }
            });
        written.map_err(|source| TemplateError::Write {
            path: path.display().to_string(),
            source,
        })?;
    }
    Ok(files.len())
}

/// database.json with its `name` set to the new connection's.
fn rename(bytes: &[u8], connection: &str) -> Vec<u8> {
    match serde_json::from_slice::<serde_json::Value>(bytes) {
        Ok(mut doc) => {
            doc["name"] = connection.into();
            let mut text = serde_json::to_string_pretty(&doc).unwrap_or_default();
            text.push('\n');
            text.into_bytes()
        }
        Err(_) => bytes.to_vec(),
    }
}
