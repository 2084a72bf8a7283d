//! Pure domain values, no I/O: the client model, a connection's top-level attributes, time, and
//! the names that enter from outside.

pub mod client;
pub mod connection;
pub mod events;
pub mod names;
pub mod options;
pub mod time;
