//! Pure domain values, no I/O: the client model and the names that enter from outside.

pub mod client;
pub mod names;
