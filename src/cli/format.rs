//! How records look on a terminal: `TIMESTAMP SERVICE[:INSTANCE] STREAM MESSAGE`, markers
//! as separator lines, or one JSON object per line. Writes fail with BrokenPipe when the
//! reader goes away (`| head`), which `main` treats as success.

use std::io::Write;

use chrono::{DateTime, Local};

use crate::index::Hit;

/// The default line. Timestamps are shown in local time with milliseconds, as
/// `journalctl` does; `--json` keeps the API's UTC microseconds.
pub fn line(hit: &Hit) -> String {
    Painter { color: false }.record(hit)
}

/// Draws records, in colour or not.
#[derive(Clone, Copy, Debug)]
pub struct Painter {
    pub color: bool,
}

/// Service colours: the six ANSI colours that read on dark and light backgrounds.
const PALETTE: [&str; 6] = ["36", "32", "35", "33", "34", "96"];
const RESET: &str = "\x1b[0m";

impl Painter {
    /// Colour on a terminal, unless `NO_COLOR` is set or `--no-color` was given.
    pub fn for_stdout(no_color_flag: bool) -> Painter {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Painter {
            color: !no_color_flag
                && !no_color
                && std::io::IsTerminal::is_terminal(&std::io::stdout()),
        }
    }

    pub fn record(&self, hit: &Hit) -> String {
        let ts = local_ts(&hit.ts);
        if hit.kind == "marker" {
            // Restarts and crashes must stand out in a fast-scrolling follow.
            let text = format!("──── {ts} {} ────", hit.message);
            return self.paint(&format!("1;{}", service_color(&hit.service)), &text);
        }
        let who = match hit.instance {
            Some(i) => format!("{}:{}", hit.service, i),
            None => hit.service.clone(),
        };
        let who = self.paint(service_color(&hit.service), &who);
        let stream = match hit.stream.as_str() {
            "err" => self.paint("1;31", "err"),
            s => s.to_string(),
        };
        format!("{ts} {who} {stream} {}", hit.message)
    }

    fn paint(&self, sgr: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{sgr}m{text}{RESET}")
        } else {
            text.to_string()
        }
    }
}

/// The same service always gets the same colour, in every run.
fn service_color(service: &str) -> &'static str {
    let h = xxhash_rust::xxh3::xxh3_64(service.as_bytes());
    PALETTE[(h % PALETTE.len() as u64) as usize]
}

fn local_ts(ts: &str) -> String {
    DateTime::parse_from_rfc3339(ts)
        .map(|t| {
            t.with_timezone(&Local)
                .format("%Y-%m-%d %H:%M:%S%.3f")
                .to_string()
        })
        .unwrap_or_else(|_| ts.to_string())
}

pub fn write_out(text: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}

/// Left-aligned columns two spaces apart, without trailing blanks.
pub fn table<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [0usize; N];
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in rows {
        let cells: Vec<String> = r
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}
