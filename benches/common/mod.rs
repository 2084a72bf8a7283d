//! Helpers every benchmark binary shares: where the built `customdb` is, and percentiles.

/// The `customdb` binary cargo built beside this benchmark (`target/release/customdb`).
pub fn exe() -> std::path::PathBuf {
    let mut p = std::env::current_exe().expect("bench path");
    p.pop();
    if p.ends_with("deps") {
        p.pop();
    }
    p.join("customdb")
}

/// The `p` quantile (0..=1) of samples sorted ascending.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}
