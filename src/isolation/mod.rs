//! Worker processes: the only place untrusted code runs. `pool` is the supervisor half (spawn,
//! watchdog, death mapping, tenant affinity), `worker` the process half, `protocol` the framing
//! between them.

pub mod pool;
pub mod protocol;
pub mod worker;

pub use pool::{Pool, PoolConfig, PoolError};
