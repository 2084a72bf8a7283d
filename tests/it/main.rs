//! The integration suite, one binary: every test drives real worker processes of the built
//! `customdb` executable, as production does.

mod api;
mod attacks;
mod cli;
mod concurrency;
mod connections;
mod contract;
mod flows;
mod harness;
mod hostile;
mod http;
mod interleave;
mod modules;
mod mysql;
mod pg;
mod pool;
mod protection;
mod quickstart;
mod sdk;
mod serve;
mod sqlite;
mod tidy;
mod util;
