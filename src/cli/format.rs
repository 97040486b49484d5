//! How records look on a terminal: `TIMESTAMP SERVICE[:INSTANCE] STREAM MESSAGE`, or one
//! JSON object per line. Writes fail with BrokenPipe when the reader goes away (`| head`),
//! which `main` treats as success.

use std::io::Write;

use chrono::{DateTime, Local};

use crate::index::Hit;

/// The default line. Timestamps are shown in local time with milliseconds, as
/// `journalctl` does; `--json` keeps the API's UTC microseconds.
pub fn line(hit: &Hit) -> String {
    let ts = DateTime::parse_from_rfc3339(&hit.ts)
        .map(|t| {
            t.with_timezone(&Local)
                .format("%Y-%m-%d %H:%M:%S%.3f")
                .to_string()
        })
        .unwrap_or_else(|_| hit.ts.clone());
    let who = match hit.instance {
        Some(i) => format!("{}:{}", hit.service, i),
        None => hit.service.clone(),
    };
    format!("{ts} {who} {} {}", hit.stream, hit.message)
}

pub fn write_out(text: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}
