//! JUnit XML for CI systems: one `<testsuite>` per connection, one `<testcase>` per case.

use super::CaseReport;
use std::collections::BTreeMap;

pub fn render(reports: &[CaseReport]) -> String {
    let mut by_connection: BTreeMap<&str, Vec<&CaseReport>> = BTreeMap::new();
    for r in reports {
        by_connection.entry(&r.connection).or_default().push(r);
    }
    let failed = reports.iter().filter(|r| !r.passed).count();
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"customdb test\" tests=\"{}\" failures=\"{failed}\">\n",
        reports.len()
    );
    for (connection, cases) in by_connection {
        let failures = cases.iter().filter(|r| !r.passed).count();
        let time: f64 = cases.iter().map(|r| r.duration_ms).sum::<f64>() / 1000.0;
        out.push_str(&format!(
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" time=\"{time:.3}\">\n",
            escape(connection),
            cases.len()
        ));
        for r in cases {
            out.push_str(&format!(
                "    <testcase classname=\"{}\" name=\"{}\" file=\"{}\" time=\"{:.3}\"",
                escape(connection),
                escape(&r.case),
                escape(&r.file),
                r.duration_ms / 1000.0
            ));
            if r.passed {
                out.push_str("/>\n");
            } else {
                let first = r.failures.first().map(String::as_str).unwrap_or("failed");
                out.push_str(&format!(
                    ">\n      <failure message=\"{}\">{}</failure>\n    </testcase>\n",
                    escape(first.lines().next().unwrap_or(first)),
                    escape(&r.failures.join("\n"))
                ));
            }
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
