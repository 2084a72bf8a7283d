//! customdb runs Auth0-style custom database scripts in a sandbox they cannot break.
//!
//! Code map, in reading order:
//! - `domain`: pure values — the client model, names that enter from outside, connection
//!   options, log types, time, and the normalized profile (what scripts return, SPEC §3).
//! - `script`: the seven actions, invocations, limits, static checks of a source.
//! - `outcome`: what a run produced (`Execution`), outcomes as an enum.
//! - `sandbox`: the only module that knows the JavaScript engine (boa); runs one invocation.
//! - `isolation`: worker processes, the only place the sandbox runs, and their supervisor.
//! - `store`: the product's SQLite store — tenants, connections (sealed configuration), users,
//!   logs, script runs, clients, signing keys.
//! - `service`: the use cases — login, signup, password and tickets, users, connections, the
//!   live bus — shared by the API, the CLI and the harness (SPEC §4, §5).
//! - `api`: the HTTP front door (axum), the only module that knows HTTP.
//! - `layout`: the Deploy CLI connection folder (`database.json` and the scripts).
//! - `harness`: `customdb test` — cases, throwaway databases, HTTP stubs, golden transcripts.
//! - `secret`: random secrets, their digests, constant-time comparison.
//! - `templates`, `demo`: the shipped connection templates, and the demo `serve` starts on.
//! - `cli`: the front doors (`try`, `test`, `init`, `serve`, `tenant`, and the hidden `worker`).
//!
//! Invariants:
//! - Only `sandbox` depends on boa; no engine value leaves it.
//! - Untrusted code runs only in worker processes; the supervisor never evaluates JavaScript.
//! - Script failures and limits are `Outcome`s; Rust errors mean customdb itself failed.
//! - Passwords never reach a transcript: the sandbox redacts them from console output, results
//!   and errors before anything leaves the worker.
//! - A script reaches files only inside its data folders and hosts only on its allow-list
//!   (`script::Policy`); a host name never leads to a private or loopback address.
//! - Only `store` runs SQL against the product's store, one transaction per logical change;
//!   configuration secrets and passwords are never in it in clear.
//! - A token of one tenant never reads or changes another tenant's data.

pub mod api;
pub mod cli;
pub mod demo;
pub mod domain;
pub mod harness;
pub mod isolation;
pub mod layout;
pub mod outcome;
pub mod sandbox;
pub mod script;
pub mod secret;
pub mod service;
pub mod store;
pub mod templates;
