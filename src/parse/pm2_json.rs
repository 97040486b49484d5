//! Lines written by PM2 with `log_type: 'json'`: one object per chunk the app wrote,
//! `{"message":"...","timestamp":"...","type":"out","process_id":1,"app_name":"..."}`.
//! The chunk in `message` may hold several lines or only part of one, so it is split here
//! and each piece becomes its own record downstream.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

use super::timestamp::parse_timestamp;
use crate::record::Stream;

/// What one PM2 JSON log object says. Fields PM2 did not write (or wrote in a shape we
/// do not know) are `None`; the caller falls back to what the file name says.
#[derive(Clone, Debug, PartialEq)]
pub struct Pm2JsonLine {
    pub ts: Option<DateTime<Utc>>,
    /// `"out"` → Out, `"err"`/`"error"` → Err.
    pub stream: Option<Stream>,
    pub service: Option<String>,
    /// `process_id` (PM2's pm_id), as a number or a numeric string.
    pub instance: Option<u32>,
    /// `message` split on `\n` (a `\r` before it dropped); never empty.
    pub lines: Vec<String>,
}

/// The fields PM2 writes. `Value` rather than concrete types so that one odd field (a
/// `process_id` of `"_old_6"`, a numeric `timestamp`) costs only that field, not the line.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Raw {
    message: Value,
    timestamp: Value,
    #[serde(rename = "type")]
    kind: Value,
    process_id: Value,
    app_name: Value,
}

/// Reads a PM2 JSON log line. `None` when the line is not one: not a JSON object, no
/// `message` string, or none of `timestamp`, `type`, `app_name` (an app's own JSON
/// output usually has a message field but not PM2's envelope).
pub fn parse_pm2_json(line: &str) -> Option<Pm2JsonLine> {
    // Cheap rejection first: most lines in a plain log are not objects at all.
    if !line.trim_start().starts_with('{') {
        return None;
    }
    let raw: Raw = serde_json::from_str(line).ok()?;
    let Value::String(message) = raw.message else {
        return None;
    };
    if raw.timestamp.is_null() && raw.kind.is_null() && raw.app_name.is_null() {
        return None;
    }

    let ts = match &raw.timestamp {
        Value::String(s) => parse_timestamp(s),
        // Epoch milliseconds, as `Date.now()` would give.
        Value::Number(n) => n.as_i64().and_then(DateTime::from_timestamp_millis),
        _ => None,
    };
    let stream = match raw.kind.as_str() {
        Some("out") => Some(Stream::Out),
        Some("err" | "error") => Some(Stream::Err),
        _ => None,
    };
    let service = match raw.app_name {
        Value::String(s) => Some(s),
        _ => None,
    };
    let instance = match &raw.process_id {
        Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        // A numeric string; PM2's `_old_<id>` for a worker being replaced is not an id.
        Value::String(s) => s.parse().ok(),
        _ => None,
    };

    Some(Pm2JsonLine {
        ts,
        stream,
        service,
        instance,
        lines: split_lines(&message),
    })
}

/// Splits a chunk into lines: a final `\n` ends the last line rather than starting an
/// empty one, so `"a\n"` is one line and `"\n"` is one empty line.
fn split_lines(message: &str) -> Vec<String> {
    let body = message.strip_suffix('\n').unwrap_or(message);
    body.split('\n')
        .map(|piece| piece.strip_suffix('\r').unwrap_or(piece).to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Local, NaiveDate, TimeZone};

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32, ms: u32) -> DateTime<Utc> {
        let naive = NaiveDate::from_ymd_opt(y, mo, d)
            .and_then(|d| d.and_hms_milli_opt(h, mi, s, ms))
            .expect("valid test date");
        Utc.from_utc_datetime(&naive)
    }

    fn lines(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn pm2_sample_line() {
        let line = r#"{"message":"out line 1\n","timestamp":"2026-11-22T02:36:35.209Z","type":"out","process_id":1,"app_name":"json_app"}"#;
        assert_eq!(
            parse_pm2_json(line),
            Some(Pm2JsonLine {
                ts: Some(utc(2026, 11, 22, 2, 36, 35, 209)),
                stream: Some(Stream::Out),
                service: Some("json_app".to_string()),
                instance: Some(1),
                lines: lines(&["out line 1"]),
            })
        );
    }

    #[test]
    fn error_streams() {
        for kind in ["err", "error"] {
            let line = format!(r#"{{"message":"boom\n","type":"{kind}"}}"#);
            let parsed = parse_pm2_json(&line).expect("pm2 json");
            assert_eq!(parsed.stream, Some(Stream::Err));
            assert_eq!(parsed.ts, None);
            assert_eq!(parsed.service, None);
            assert_eq!(parsed.instance, None);
            assert_eq!(parsed.lines, lines(&["boom"]));
        }
        let parsed = parse_pm2_json(r#"{"message":"x","type":"PM2"}"#).expect("pm2 json");
        assert_eq!(parsed.stream, None);
    }

    #[test]
    fn message_splitting() {
        let cases: [(&str, &[&str]); 8] = [
            (r#"a\nb\n"#, &["a", "b"]),
            (r#"a\nb"#, &["a", "b"]),
            (r#"partial"#, &["partial"]),
            (r#"\n"#, &[""]),
            (r#""#, &[""]),
            (r#"a\r\nb\r\n"#, &["a", "b"]),
            (r#"a\n\nb\n\n"#, &["a", "", "b", ""]),
            (r#"keep\r inner"#, &["keep\r inner"]),
        ];
        for (msg, want) in cases {
            let line = format!(r#"{{"message":"{msg}","app_name":"a"}}"#);
            let parsed = parse_pm2_json(&line).expect("pm2 json");
            assert_eq!(parsed.lines, lines(want), "{msg}");
        }
    }

    #[test]
    fn log_date_format_timestamps() {
        let parsed = parse_pm2_json(
            r#"{"message":"x","timestamp":"2026-11-22 10:00:00.123 +01:00","type":"out"}"#,
        )
        .expect("pm2 json");
        assert_eq!(parsed.ts, Some(utc(2026, 11, 22, 9, 0, 0, 123)));

        let parsed =
            parse_pm2_json(r#"{"message":"x","timestamp":"2026-11-22T10:00:00","type":"out"}"#)
                .expect("pm2 json");
        let local = Local
            .from_local_datetime(
                &NaiveDate::from_ymd_opt(2026, 11, 22)
                    .and_then(|d| d.and_hms_opt(10, 0, 0))
                    .expect("valid"),
            )
            .earliest()
            .expect("not in a gap")
            .with_timezone(&Utc);
        assert_eq!(parsed.ts, Some(local));

        let parsed =
            parse_pm2_json(r#"{"message":"x","timestamp":1795314995219}"#).expect("pm2 json");
        assert_eq!(
            parsed.ts,
            DateTime::from_timestamp_millis(1_795_314_995_219)
        );

        // An unreadable timestamp loses the time, not the line.
        let parsed =
            parse_pm2_json(r#"{"message":"x","timestamp":"Sun Nov 22"}"#).expect("pm2 json");
        assert_eq!(parsed.ts, None);
        assert_eq!(parsed.lines, lines(&["x"]));
    }

    #[test]
    fn process_id_shapes() {
        let id = |v: &str| {
            let line = format!(r#"{{"message":"x","type":"out","process_id":{v}}}"#);
            parse_pm2_json(&line).expect("pm2 json").instance
        };
        assert_eq!(id("3"), Some(3));
        assert_eq!(id(r#""7""#), Some(7));
        assert_eq!(id(r#""_old_6""#), None);
        assert_eq!(id("-1"), None);
        assert_eq!(id("1.5"), None);
        assert_eq!(id("4294967296"), None);
        assert_eq!(id("null"), None);
    }

    #[test]
    fn not_pm2_json() {
        for line in [
            "out line 1",
            "",
            r#"{"msg":"x","level":30}"#,
            r#"{"message":"x"}"#,
            r#"{"message":"x","level":"info"}"#,
            r#"{"message":5,"type":"out"}"#,
            r#"{"message":null,"type":"out"}"#,
            r#"{"message":"x","type":null}"#,
            r#"{"message":"x","type":"out""#,
            r#"["message","type"]"#,
            "{",
        ] {
            assert_eq!(parse_pm2_json(line), None, "{line}");
        }
    }

    #[test]
    fn unknown_fields_and_whitespace() {
        let parsed = parse_pm2_json(
            r#"  { "app_name" : "web", "message" : "hi", "extra": {"a": [1, 2]} } "#,
        )
        .expect("pm2 json");
        assert_eq!(parsed.service, Some("web".to_string()));
        assert_eq!(parsed.lines, lines(&["hi"]));
    }

    #[test]
    fn escaped_content_is_decoded() {
        let parsed = parse_pm2_json(r#"{"message":"tab\there \"q\" \u00e9\n","type":"out"}"#)
            .expect("pm2 json");
        assert_eq!(parsed.lines, lines(&["tab\there \"q\" é"]));
    }
}
