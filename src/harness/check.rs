//! What a case checks: its `expect` (outcome, result, error as subsets; console lines) and its
//! golden transcript (written with `--update`, compared otherwise), as a list of failures a
//! person can read.

use serde_json::{Value, json};

use super::{Case, GOLDEN_DIR, RunOptions, Suite};
use crate::outcome::Execution;

/// The failures of `execution` against the case's expectations (empty when it passed).
pub(super) fn check(
    suite: &Suite,
    case: &Case,
    execution: &Execution,
    options: &RunOptions,
    updated: &mut bool,
) -> Vec<String> {
    let mut failures = Vec::new();
    let actual = serde_json::to_value(execution).unwrap_or_default();
    if let Some(expect) = &case.expect {
        let mut expected = serde_json::Map::new();
        if let Some(o) = expect.outcome {
            expected.insert("outcome".into(), json!(o));
        }
        if let Some(r) = &expect.result {
            expected.insert("result".into(), r.clone());
        }
        if let Some(e) = &expect.error {
            expected.insert("error".into(), e.clone());
        }
        if let Err(m) = matches(&actual, &Value::Object(expected)) {
            failures.push(m);
        }
        for line in &expect.console {
            if !execution
                .console
                .iter()
                .any(|c| c.message.contains(line.as_str()))
            {
                failures.push(format!("no console line contains {line:?}"));
            }
        }
    }
    if case.golden {
        let path = suite
            .cases_dir()
            .join(GOLDEN_DIR)
            .join(format!("{}.json", slug(&case.name)));
        let transcript = transcript(execution);
        if options.update {
            let text = serde_json::to_string_pretty(&transcript).unwrap_or_default() + "\n";
            let written = path
                .parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .and_then(|()| std::fs::write(&path, text));
            match written {
                Ok(()) => *updated = true,
                Err(e) => failures.push(format!("cannot write {}: {e}", path.display())),
            }
        } else {
            match std::fs::read_to_string(&path) {
                Err(_) => failures.push(format!(
                    "no golden transcript at {}; run `customdb test --update` to record it",
                    path.display()
                )),
                Ok(text) => match serde_json::from_str::<Value>(&text) {
                    Err(e) => failures.push(format!("{} is not JSON: {e}", path.display())),
                    Ok(golden) if golden != transcript => {
                        failures.extend(differences(&golden, &transcript));
                    }
                    Ok(_) => {}
                },
            }
        }
    }
    // A run that went wrong in an unexpected way says why, beside the failed checks.
    if !failures.is_empty()
        && let Some(error) = &execution.error
    {
        failures.push(format!("the script's error was {error}"));
    }
    failures
}

/// What a golden file holds: everything a person checks, nothing that varies between runs
/// (no timings, no stack).
pub fn transcript(execution: &Execution) -> Value {
    let error = execution.error.as_ref().map(|e| {
        let mut err = json!({"name": e.name, "message": e.message});
        if let Some(code) = &e.code {
            err["code"] = json!(code);
        }
        err
    });
    json!({
        "outcome": execution.outcome,
        "result": execution.result,
        "error": error,
        "console": execution
            .console
            .iter()
            .map(|c| format!("[{}] {}", c.level, c.message))
            .collect::<Vec<_>>(),
    })
}

fn differences(golden: &Value, actual: &Value) -> Vec<String> {
    let keys = ["outcome", "result", "error", "console"];
    keys.iter()
        .filter(|k| golden.get(**k) != actual.get(**k))
        .map(|k| {
            format!(
                "golden {k} differs:\n  recorded: {}\n  now:      {}",
                golden.get(*k).unwrap_or(&Value::Null),
                actual.get(*k).unwrap_or(&Value::Null)
            )
        })
        .collect()
}

/// A case name as a file name.
pub fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_string()
}

/// Every key of `expected` must be in `actual` with a matching value; objects match as
/// subsets, strings starting with `~` match when the actual string contains the rest.
pub fn matches(actual: &Value, expected: &Value) -> Result<(), String> {
    match (actual, expected) {
        (Value::Object(a), Value::Object(e)) => {
            for (k, ev) in e {
                let av = a.get(k).unwrap_or(&Value::Null);
                matches(av, ev).map_err(|m| format!("{k}: {m}"))?;
            }
            Ok(())
        }
        (Value::Array(a), Value::Array(e)) if a.len() == e.len() => a
            .iter()
            .zip(e)
            .enumerate()
            .try_for_each(|(i, (a, e))| matches(a, e).map_err(|m| format!("[{i}]: {m}"))),
        (Value::String(a), Value::String(e)) if e.starts_with('~') => {
            if a.contains(&e[1..]) {
                Ok(())
            } else {
                Err(format!("{a:?} does not contain {:?}", &e[1..]))
            }
        }
        (a, e) if a == e => Ok(()),
        (a, e) => Err(format!("expected {e}, got {a}")),
    }
}
