//! Severity of a log line, when the line states one: a leading level word (`ERROR`,
//! `[warn]`, `Info:` ...) or the `level` field of a JSON log object (pino, bunyan,
//! winston and friends). A line that does not say is `None`; guessing from words further
//! in the message would mislabel more lines than it helps.

use serde::Deserialize;
use serde_json::Value;

use crate::record::Level;

/// Detects the level a line states. A leading token must be a whole word (`Error
/// connecting` yes, `errors found` no), in any case, optionally in brackets, and followed
/// by `:`, whitespace or the end. A line whose first non-space character is `{` is read
/// as JSON instead, looking at `level`, then `severity`, then `lvl`, each either a level
/// word or a pino/bunyan number.
pub fn detect_level(message: &str) -> Option<Level> {
    let trimmed = message.trim_start_matches([' ', '\t']);
    let b = trimmed.as_bytes();
    match b.first()? {
        b'{' => json_level(trimmed),
        b'[' => {
            let end = word_end(b, 1);
            if b.get(end) != Some(&b']') {
                return None;
            }
            word_level(&b[1..end])
        }
        _ => {
            let end = word_end(b, 0);
            match b.get(end) {
                None | Some(b':' | b' ' | b'\t' | b'\r' | b'\n') => word_level(&b[..end]),
                _ => None,
            }
        }
    }
}

/// Index of the first non-letter at or after `start`.
fn word_end(b: &[u8], start: usize) -> usize {
    let mut i = start;
    while i < b.len() && b[i].is_ascii_alphabetic() {
        i += 1;
    }
    i
}

/// The level a word names, ignoring case.
fn word_level(word: &[u8]) -> Option<Level> {
    // The longest word known is 8 bytes; lowercasing into a stack buffer avoids an
    // allocation and lets one `match` compare against every spelling.
    let mut buf = [0u8; 8];
    let lower = buf.get_mut(..word.len())?;
    for (dst, &src) in lower.iter_mut().zip(word) {
        *dst = src.to_ascii_lowercase();
    }
    match &*lower {
        b"error" | b"err" | b"fatal" | b"critical" | b"crit" => Some(Level::Error),
        b"warn" | b"warning" => Some(Level::Warn),
        b"info" | b"notice" => Some(Level::Info),
        b"debug" => Some(Level::Debug),
        b"trace" => Some(Level::Trace),
        _ => None,
    }
}

/// The level fields structured loggers use; everything else in the object is skipped.
#[derive(Deserialize, Default)]
#[serde(default)]
struct LevelFields {
    level: Value,
    severity: Value,
    lvl: Value,
}

fn json_level(line: &str) -> Option<Level> {
    // A line that only looks like JSON (a truncated object, a `{` in plain text) simply
    // has no level.
    let fields: LevelFields = serde_json::from_str(line).ok()?;
    [fields.level, fields.severity, fields.lvl]
        .iter()
        .find_map(value_level)
}

fn value_level(v: &Value) -> Option<Level> {
    match v {
        Value::String(s) => word_level(s.trim().as_bytes())
            .or_else(|| s.trim().parse::<f64>().ok().and_then(number_level)),
        Value::Number(n) => n.as_f64().and_then(number_level),
        _ => None,
    }
}

/// pino/bunyan numbers: 10 trace, 20 debug, 30 info, 40 warn, 50 error, 60 fatal. Custom
/// levels in between fall to the standard level below them.
fn number_level(n: f64) -> Option<Level> {
    if !n.is_finite() || n <= 0.0 {
        return None;
    }
    Some(if n < 20.0 {
        Level::Trace
    } else if n < 30.0 {
        Level::Debug
    } else if n < 40.0 {
        Level::Info
    } else if n < 50.0 {
        Level::Warn
    } else {
        Level::Error
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_words_in_any_case() {
        let cases = [
            ("ERROR boom", Level::Error),
            ("error boom", Level::Error),
            ("Error connecting to db", Level::Error),
            ("WARN x", Level::Warn),
            ("Warning: x", Level::Warn),
            ("INFO", Level::Info),
            ("info: started", Level::Info),
            ("DEBUG x", Level::Debug),
            ("trace x", Level::Trace),
            ("ERR x", Level::Error),
            ("FATAL x", Level::Error),
            ("critical: x", Level::Error),
            ("CRIT x", Level::Error),
            ("NOTICE x", Level::Info),
            ("error:", Level::Error),
            ("error:boom", Level::Error),
            ("  WARN indented", Level::Warn),
            ("ERROR\tx", Level::Error),
        ];
        for (line, level) in cases {
            assert_eq!(detect_level(line), Some(level), "{line}");
        }
    }

    #[test]
    fn bracketed_words() {
        assert_eq!(detect_level("[ERROR] x"), Some(Level::Error));
        assert_eq!(detect_level("[error]"), Some(Level::Error));
        assert_eq!(detect_level("[Warn]: x"), Some(Level::Warn));
        assert_eq!(detect_level("[debug]x"), Some(Level::Debug));
        assert_eq!(detect_level("[ ERROR ] x"), None);
        assert_eq!(detect_level("[ERROR x"), None);
        assert_eq!(detect_level("[main] ERROR x"), None);
    }

    #[test]
    fn only_whole_tokens() {
        for line in [
            "INFORMATION x",
            "errors found",
            "Errored",
            "informative",
            "ERROR-42 x",
            "ERROR, x",
            "warn.x",
            "the ERROR",
            "",
            "   ",
            "debugger attached",
            "[]",
        ] {
            assert_eq!(detect_level(line), None, "{line}");
        }
    }

    #[test]
    fn json_string_levels() {
        assert_eq!(
            detect_level(r#"{"level":"error","msg":"x"}"#),
            Some(Level::Error)
        );
        assert_eq!(
            detect_level(r#"{"msg":"x","level":"WARNING"}"#),
            Some(Level::Warn)
        );
        assert_eq!(detect_level(r#"  {"level":"info"}"#), Some(Level::Info));
        assert_eq!(
            detect_level(r#"{"severity":"CRITICAL"}"#),
            Some(Level::Error)
        );
        assert_eq!(
            detect_level(r#"{"lvl":"dbug","level":"debug"}"#),
            Some(Level::Debug)
        );
        assert_eq!(detect_level(r#"{"lvl":"trace"}"#), Some(Level::Trace));
        assert_eq!(detect_level(r#"{"level":"notice"}"#), Some(Level::Info));
        assert_eq!(detect_level(r#"{"level":"verbose"}"#), None);
    }

    #[test]
    fn json_numeric_levels() {
        let cases = [
            (10, Level::Trace),
            (20, Level::Debug),
            (30, Level::Info),
            (35, Level::Info),
            (40, Level::Warn),
            (50, Level::Error),
            (60, Level::Error),
        ];
        for (n, level) in cases {
            let line = format!(r#"{{"level":{n},"time":1,"msg":"x"}}"#);
            assert_eq!(detect_level(&line), Some(level), "{line}");
        }
        assert_eq!(detect_level(r#"{"level":"30"}"#), Some(Level::Info));
        assert_eq!(detect_level(r#"{"level":0}"#), None);
        assert_eq!(detect_level(r#"{"level":-5}"#), None);
    }

    #[test]
    fn json_field_order_and_fallbacks() {
        // An unusable `level` does not hide a usable `severity`.
        assert_eq!(
            detect_level(r#"{"level":null,"severity":"warn"}"#),
            Some(Level::Warn)
        );
        assert_eq!(
            detect_level(r#"{"level":{"x":1},"lvl":50}"#),
            Some(Level::Error)
        );
        assert_eq!(
            detect_level(r#"{"level":"error","severity":"info"}"#),
            Some(Level::Error)
        );
    }

    #[test]
    fn json_without_level_or_broken() {
        assert_eq!(detect_level(r#"{"msg":"ERROR x"}"#), None);
        assert_eq!(detect_level(r#"{"level":"error""#), None);
        assert_eq!(detect_level("{ERROR} x"), None);
        assert_eq!(detect_level(r#"{"level":"error"} trailing"#), None);
        assert_eq!(detect_level("{"), None);
    }

    #[test]
    fn never_panics_on_odd_input() {
        for line in [
            "é",
            "[é]",
            "ERRÉUR",
            "{\"level\":\"é\"}",
            "[\u{0}]",
            "\u{feff}ERROR",
        ] {
            let _ = detect_level(line);
        }
    }
}
