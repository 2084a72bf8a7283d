//! Pure domain values, no I/O: the client model, a connection's top-level attributes and its
//! typed options, log event types, time, the names that enter from outside, and the
//! normalized profile.

pub mod client;
pub mod connection;
pub mod events;
pub mod names;
pub mod options;
pub mod password_policy;
pub mod profile;
pub mod protection;
pub mod time;
