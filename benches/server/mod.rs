//! What the benchmarks against a running server share: `customdb tenant` commands to prepare
//! a data folder, and `customdb serve` started on it.

use crate::common::exe;

/// Runs `customdb tenant --data DATA ARGS…` and returns what it printed.
pub fn admin(data: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new(exe())
        .args(["tenant", "--data"])
        .arg(data)
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// A running `customdb serve`, stopped when dropped (a bench that panics leaves no server).
pub struct Served {
    pub child: std::process::Child,
    /// Its base URL.
    pub base: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `customdb serve` on DATA at a free port, with the flags `extra`. The bench is one
/// client at one address, sending far more than any one client may: no per-address limit.
pub fn serve(data: &std::path::Path, extra: &[&str]) -> Served {
    use std::io::BufRead;
    use std::process::Stdio;
    let mut child = std::process::Command::new(exe())
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(data)
        .args(["--rate-limit-per-ip", "0"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let first = std::io::BufReader::new(child.stdout.take().unwrap())
        .lines()
        .next()
        .unwrap()
        .unwrap();
    let base = first
        .trim_start_matches("customdb listening on ")
        .to_string();
    Served { child, base }
}
