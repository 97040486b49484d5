//! One line of log text → its timestamp, level and message. The tailer calls this for
//! every line it reads, so everything below works on the borrowed line and allocates
//! nothing unless the line is JSON. PM2's `log_type: 'json'` envelope has its own reader
//! in [`pm2_json`], because one such line can carry several lines of the app's output.

pub mod level;
pub mod pm2_json;
pub mod timestamp;

pub use level::detect_level;
pub use pm2_json::{parse_pm2_json, Pm2JsonLine};
pub use timestamp::{parse_timestamp, strip_timestamp};

use chrono::{DateTime, Utc};

use crate::record::Level;

/// A line taken apart. `message` borrows from the line: it is the line itself, or what
/// follows a timestamp prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParsedLine<'a> {
    pub ts: Option<DateTime<Utc>>,
    pub level: Option<Level>,
    pub message: &'a str,
}

/// Strip a leading timestamp prefix (not part of the stored message) and detect the level.
pub fn parse_line(line: &str) -> ParsedLine<'_> {
    let (ts, message) = match strip_timestamp(line) {
        Some((ts, rest)) => (Some(ts), rest),
        None => (None, line),
    };
    ParsedLine {
        ts,
        level: detect_level(message),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Local, NaiveDate, TimeZone};

    fn local(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        let naive = NaiveDate::from_ymd_opt(y, mo, d)
            .and_then(|d| d.and_hms_opt(h, mi, s))
            .expect("valid test date");
        Local
            .from_local_datetime(&naive)
            .earliest()
            .expect("not in a DST gap")
            .with_timezone(&Utc)
    }

    #[test]
    fn prefix_then_level() {
        assert_eq!(
            parse_line("2026-11-22T10:00:00: ERROR db down"),
            ParsedLine {
                ts: Some(local(2026, 11, 22, 10, 0, 0)),
                level: Some(Level::Error),
                message: "ERROR db down",
            }
        );
    }

    #[test]
    fn no_prefix() {
        assert_eq!(
            parse_line("[warn] disk 91%"),
            ParsedLine {
                ts: None,
                level: Some(Level::Warn),
                message: "[warn] disk 91%",
            }
        );
        assert_eq!(
            parse_line("plain"),
            ParsedLine {
                ts: None,
                level: None,
                message: "plain",
            }
        );
        assert_eq!(
            parse_line(""),
            ParsedLine {
                ts: None,
                level: None,
                message: "",
            }
        );
    }

    #[test]
    fn prefix_then_json() {
        let parsed = parse_line(r#"2026-11-22T10:00:00: {"level":40,"msg":"slow"}"#);
        assert_eq!(parsed.ts, Some(local(2026, 11, 22, 10, 0, 0)));
        assert_eq!(parsed.level, Some(Level::Warn));
        assert_eq!(parsed.message, r#"{"level":40,"msg":"slow"}"#);
    }

    #[test]
    fn bracketed_prefix_then_bracketed_level() {
        let parsed = parse_line("[2026-11-22 10:00:00] [INFO] up");
        assert_eq!(parsed.ts, Some(local(2026, 11, 22, 10, 0, 0)));
        assert_eq!(parsed.level, Some(Level::Info));
        assert_eq!(parsed.message, "[INFO] up");
    }

    #[test]
    fn not_a_prefix_leaves_the_line_whole() {
        let parsed = parse_line("2026-11-22T10:00:00abc INFO x");
        assert_eq!(parsed.ts, None);
        assert_eq!(parsed.level, None);
        assert_eq!(parsed.message, "2026-11-22T10:00:00abc INFO x");
    }

    #[test]
    fn never_panics_on_random_input() {
        // A fixed-seed xorshift over bytes that steer the parsers into their deeper
        // branches, plus arbitrary bytes; no extra crate needed.
        let mut state: u64 = 0x2545_F491_4F6C_DD1D;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let alphabet = b"0123456789-:T .Z+[]{}\"ERROR,levelmsagtyp\\n\xc3\xa9";
        for _ in 0..100_000 {
            let len = (next() % 48) as usize;
            let biased = next() % 2 == 0;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    let r = next();
                    if biased {
                        alphabet[(r as usize) % alphabet.len()]
                    } else {
                        r as u8
                    }
                })
                .collect();
            let s = String::from_utf8_lossy(&bytes);
            let parsed = parse_line(&s);
            assert!(s.ends_with(parsed.message));
            let _ = parse_pm2_json(&s);
        }
    }
}
