//! Parsing and formatting of the human units used in the config file and on the command
//! line: sizes (`64MiB`), durations (`1h30m`) and the time expressions of `since`/`until`
//! (`2026-11-22T10:00:00Z`, `10 min ago`, `yesterday`). Pure functions, no I/O.
//!
//! Errors are plain `String`s that already say what was expected: callers prefix them with
//! where the value came from (a config key, an environment variable, a flag).

use std::time::Duration;

use chrono::{DateTime, Local, NaiveDate, NaiveDateTime, TimeZone, Utc};

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
const TIB: u64 = 1 << 40;

/// Binary units first: `format_size` tries them in this order, largest first.
const BINARY_UNITS: [(&str, u64); 4] = [("TiB", TIB), ("GiB", GIB), ("MiB", MIB), ("KiB", KIB)];
const DECIMAL_UNITS: [(&str, u64); 4] = [
    ("TB", 1_000_000_000_000),
    ("GB", 1_000_000_000),
    ("MB", 1_000_000),
    ("KB", 1_000),
];

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// Parses a byte size: `512KiB`, `64MiB`, `1.5GiB` (binary), `10MB` (decimal), `10M`
/// (binary, as pm2-logrotate writes it), `100B` or a bare number of bytes. Units are
/// case-insensitive and may be separated from the number by spaces.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let err = || format!("invalid size {s:?} (expected e.g. 512KiB, 10MiB, 1GiB)");
    let (number, unit) = split_number(s.trim()).ok_or_else(err)?;
    let multiplier = size_unit(&unit.to_ascii_lowercase()).ok_or_else(err)?;
    let bytes = scale(number, multiplier as u128).ok_or_else(err)?;
    u64::try_from(bytes).map_err(|_| err())
}

fn size_unit(unit: &str) -> Option<u64> {
    Some(match unit {
        "" | "b" | "byte" | "bytes" => 1,
        "k" | "ki" | "kib" => KIB,
        "m" | "mi" | "mib" => MIB,
        "g" | "gi" | "gib" => GIB,
        "t" | "ti" | "tib" => TIB,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        _ => return None,
    })
}

/// Formats a size with the largest unit that keeps it exact (at most two decimals), so
/// the text parses back to the same number: 1048576 -> `1MiB`, 1536 -> `1.5KiB`,
/// 1000 -> `1KB`, 1001 -> `1001B`.
pub fn format_size(bytes: u64) -> String {
    for (name, unit) in BINARY_UNITS {
        if bytes >= unit {
            if let Some(text) = exact_decimal(bytes as u128, unit as u128, 2) {
                return format!("{text}{name}");
            }
        }
    }
    for (name, unit) in DECIMAL_UNITS {
        if bytes >= unit && bytes % unit == 0 {
            return format!("{}{name}", bytes / unit);
        }
    }
    format!("{bytes}B")
}

/// `value / unit` written with at most `max_decimals` decimals, if that is exact.
fn exact_decimal(value: u128, unit: u128, max_decimals: u32) -> Option<String> {
    let whole = value / unit;
    let rest = value % unit;
    if rest == 0 {
        return Some(whole.to_string());
    }
    for decimals in 1..=max_decimals {
        let scale = 10u128.pow(decimals);
        if (rest * scale) % unit == 0 {
            let fraction = rest * scale / unit;
            return Some(format!(
                "{whole}.{fraction:0width$}",
                width = decimals as usize
            ));
        }
    }
    None
}

/// Parses a duration: `500ms`, `90s`, `10m`, `2h`, `7d`, `1w`, compounds such as `1h30m`,
/// and long forms such as `10 min`, `2 hours`, `1 second`. Fractions (`1.5h`) are
/// allowed. A bare `0` is zero; any other bare number is refused, since it is unclear
/// whether it means seconds or milliseconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let err = || format!("invalid duration {s:?} (expected e.g. 500ms, 10s, 5m, 2h, 7d)");
    let mut rest = s.trim();
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(err());
    }
    let mut total_nanos: u128 = 0;
    while !rest.is_empty() {
        let (number, after_number) = take_number(rest).ok_or_else(err)?;
        let after_space = after_number.trim_start();
        let unit_len = after_space
            .find(|c: char| !c.is_alphabetic())
            .unwrap_or(after_space.len());
        let unit = after_space[..unit_len].to_lowercase();
        let nanos_per_unit = duration_unit(&unit).ok_or_else(err)?;
        total_nanos = total_nanos
            .checked_add(scale(number, nanos_per_unit).ok_or_else(err)?)
            .ok_or_else(err)?;
        rest = after_space[unit_len..].trim_start();
    }
    let secs = u64::try_from(total_nanos / NANOS_PER_SEC).map_err(|_| err())?;
    Ok(Duration::new(secs, (total_nanos % NANOS_PER_SEC) as u32))
}

fn duration_unit(unit: &str) -> Option<u128> {
    const SEC: u128 = NANOS_PER_SEC;
    Some(match unit {
        "ns" | "nanosecond" | "nanoseconds" => 1,
        "us" | "µs" | "μs" | "microsecond" | "microseconds" => 1_000,
        "ms" | "millisecond" | "milliseconds" => 1_000_000,
        "s" | "sec" | "secs" | "second" | "seconds" => SEC,
        "m" | "min" | "mins" | "minute" | "minutes" => 60 * SEC,
        "h" | "hr" | "hrs" | "hour" | "hours" => 3_600 * SEC,
        "d" | "day" | "days" => 86_400 * SEC,
        "w" | "week" | "weeks" => 7 * 86_400 * SEC,
        _ => return None,
    })
}

/// Formats a duration as the compound that parses back to it: `1s`, `30d`, `500ms`,
/// `1h30m`. Weeks are not used (`14d` reads better for a retention than `2w`).
pub fn format_duration(d: Duration) -> String {
    if d.is_zero() {
        return "0s".to_string();
    }
    let secs = d.as_secs();
    let nanos = d.subsec_nanos();
    let parts = [
        (secs / 86_400, "d"),
        (secs % 86_400 / 3_600, "h"),
        (secs % 3_600 / 60, "m"),
        (secs % 60, "s"),
        (u64::from(nanos / 1_000_000), "ms"),
        (u64::from(nanos / 1_000 % 1_000), "us"),
        (u64::from(nanos % 1_000), "ns"),
    ];
    parts
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| format!("{n}{unit}"))
        .collect()
}

/// Parses a `since`/`until` expression relative to `now`:
/// - RFC 3339 (`2026-11-22T10:00:00Z`, `2026-11-22T10:00:00.5+02:00`);
/// - `YYYY-MM-DD HH:MM[:SS[.fff]]` or with a `T`, without offset: local time;
/// - `YYYY-MM-DD`: local midnight;
/// - `now`, `today` (local midnight), `yesterday` (the local midnight before);
/// - a duration (`10m`) or `<duration> ago` (`10 min ago`): that long before `now`.
pub fn parse_time_expr(s: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let err = || {
        format!(
            "invalid time {s:?} (expected RFC 3339 such as 2026-11-22T10:00:00Z, \
             a duration such as 10m, or \"10 min ago\")"
        )
    };
    let text = s.trim();
    let lower = text.to_lowercase();
    match lower.as_str() {
        "now" => return Ok(now),
        "today" => return local_midnight(now.with_timezone(&Local).date_naive(), s),
        "yesterday" => {
            let today = now.with_timezone(&Local).date_naive();
            let yesterday = today.pred_opt().ok_or_else(err)?;
            return local_midnight(yesterday, s);
        }
        _ => {}
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(text, format) {
            return local_to_utc(naive, s);
        }
    }
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return local_midnight(date, s);
    }
    let ago = lower
        .strip_suffix("ago")
        .map(str::trim_end)
        .unwrap_or(&lower);
    let d = parse_duration(ago).map_err(|_| err())?;
    let d = chrono::Duration::from_std(d).map_err(|_| err())?;
    now.checked_sub_signed(d).ok_or_else(err)
}

fn local_midnight(date: NaiveDate, original: &str) -> Result<DateTime<Utc>, String> {
    local_to_utc(date.and_time(chrono::NaiveTime::MIN), original)
}

/// Local wall-clock time to UTC. A time repeated by a DST change means its first
/// occurrence; a time skipped by one does not exist, which is an error rather than a guess.
fn local_to_utc(naive: NaiveDateTime, original: &str) -> Result<DateTime<Utc>, String> {
    Local
        .from_local_datetime(&naive)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| format!("invalid time {original:?}: it does not exist in the local time zone (skipped by a daylight saving change)"))
}

/// A non-negative decimal number as digits before and after the point, e.g. `1.5` ->
/// (1, 5, 1 decimal). Kept exact (no floats) so `1.5MiB` is exactly 1572864 bytes.
#[derive(Clone, Copy, Debug)]
struct Decimal {
    whole: u128,
    fraction: u128,
    decimals: u32,
}

/// Splits `12.5 MiB` into the number and the unit text after it (spaces skipped).
fn split_number(s: &str) -> Option<(Decimal, &str)> {
    let (number, rest) = take_number(s)?;
    Some((number, rest.trim_start()))
}

/// Reads the number at the start of `s`; returns it and the text after it.
fn take_number(s: &str) -> Option<(Decimal, &str)> {
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (digits, rest) = s.split_at(end);
    let (whole, fraction) = match digits.split_once('.') {
        Some((w, f)) => (w, f),
        None => (digits, ""),
    };
    // `.5` and `5.` are refused: a typo is likelier than intent.
    if whole.is_empty() || (digits.contains('.') && fraction.is_empty()) {
        return None;
    }
    // 30 digits keep every intermediate product below u128::MAX.
    if whole.len() > 30 || fraction.len() > 30 {
        return None;
    }
    Some((
        Decimal {
            whole: whole.parse().ok()?,
            fraction: if fraction.is_empty() {
                0
            } else {
                fraction.parse().ok()?
            },
            decimals: fraction.len() as u32,
        },
        rest,
    ))
}

/// `number * unit`, rounded to the nearest integer; `None` on overflow.
fn scale(number: Decimal, unit: u128) -> Option<u128> {
    let whole = number.whole.checked_mul(unit)?;
    let denominator = 10u128.pow(number.decimals);
    let fraction = number.fraction.checked_mul(unit)?;
    let fraction = (fraction + denominator / 2) / denominator;
    whole.checked_add(fraction)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Timelike;

    #[test]
    fn sizes_binary_decimal_and_bare() {
        assert_eq!(parse_size("1MiB"), Ok(MIB));
        assert_eq!(parse_size("64MiB"), Ok(64 * MIB));
        assert_eq!(parse_size("512KiB"), Ok(512 * KIB));
        assert_eq!(parse_size("1GiB"), Ok(GIB));
        assert_eq!(parse_size("1TiB"), Ok(TIB));
        assert_eq!(parse_size("10KB"), Ok(10_000));
        assert_eq!(parse_size("10MB"), Ok(10_000_000));
        assert_eq!(parse_size("2GB"), Ok(2_000_000_000));
        assert_eq!(parse_size("1TB"), Ok(1_000_000_000_000));
        assert_eq!(parse_size("10M"), Ok(10 * MIB));
        assert_eq!(parse_size("10K"), Ok(10 * KIB));
        assert_eq!(parse_size("1G"), Ok(GIB));
        assert_eq!(parse_size("100B"), Ok(100));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("0"), Ok(0));
    }

    #[test]
    fn sizes_spaces_case_and_fractions() {
        assert_eq!(parse_size("64 MiB"), Ok(64 * MIB));
        assert_eq!(parse_size(" 64mib "), Ok(64 * MIB));
        assert_eq!(parse_size("10m"), Ok(10 * MIB));
        assert_eq!(parse_size("1.5MiB"), Ok(MIB + MIB / 2));
        assert_eq!(parse_size("0.5KB"), Ok(500));
        assert_eq!(parse_size("1.0001B"), Ok(1));
    }

    #[test]
    fn size_errors_explain() {
        assert_eq!(
            parse_size("12XB"),
            Err(r#"invalid size "12XB" (expected e.g. 512KiB, 10MiB, 1GiB)"#.to_string())
        );
        for bad in [
            "",
            "MiB",
            "-1MiB",
            "1..5MiB",
            ".5MiB",
            "5.MiB",
            "1 2MiB",
            "99999999TiB",
        ] {
            assert!(parse_size(bad).is_err(), "{bad:?} should be refused");
        }
        assert_eq!(parse_size("18446744073709551615"), Ok(u64::MAX));
        assert!(parse_size("18446744073709551616").is_err());
    }

    #[test]
    fn sizes_format_exactly_and_round_trip() {
        assert_eq!(format_size(MIB), "1MiB");
        assert_eq!(format_size(64 * MIB), "64MiB");
        assert_eq!(format_size(1536), "1.5KiB");
        assert_eq!(format_size(1000), "1KB");
        assert_eq!(format_size(1001), "1001B");
        assert_eq!(format_size(0), "0B");
        assert_eq!(format_size(3 * MIB + KIB), "3073KiB");
        for n in [
            0,
            1,
            1023,
            1024,
            1536,
            1000,
            15 * MIB,
            3 * MIB + 1,
            GIB + MIB,
            u64::MAX,
        ] {
            assert_eq!(
                parse_size(&format_size(n)),
                Ok(n),
                "{n} -> {}",
                format_size(n)
            );
        }
    }

    #[test]
    fn durations_short_long_and_compound() {
        let s = Duration::from_secs;
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1s"), Ok(s(1)));
        assert_eq!(parse_duration("90s"), Ok(s(90)));
        assert_eq!(parse_duration("10m"), Ok(s(600)));
        assert_eq!(parse_duration("2h"), Ok(s(7200)));
        assert_eq!(parse_duration("7d"), Ok(s(7 * 86_400)));
        assert_eq!(parse_duration("1w"), Ok(s(7 * 86_400)));
        assert_eq!(parse_duration("1h30m"), Ok(s(5400)));
        assert_eq!(parse_duration("1h 30m 15s"), Ok(s(5415)));
        assert_eq!(parse_duration("10 min"), Ok(s(600)));
        assert_eq!(parse_duration("2 hours"), Ok(s(7200)));
        assert_eq!(parse_duration("3 days"), Ok(s(3 * 86_400)));
        assert_eq!(parse_duration("1 second"), Ok(s(1)));
        assert_eq!(parse_duration("1.5h"), Ok(s(5400)));
        assert_eq!(parse_duration("10 Min"), Ok(s(600)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
    }

    #[test]
    fn duration_errors_explain() {
        assert_eq!(
            parse_duration("1x"),
            Err(r#"invalid duration "1x" (expected e.g. 500ms, 10s, 5m, 2h, 7d)"#.to_string())
        );
        for bad in [
            "",
            "10",
            "s",
            "1h30",
            "-1s",
            "1 h x",
            "99999999999999999999999d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn durations_format_and_round_trip() {
        assert_eq!(format_duration(Duration::from_secs(1)), "1s");
        assert_eq!(format_duration(Duration::from_secs(30 * 86_400)), "30d");
        assert_eq!(format_duration(Duration::from_millis(500)), "500ms");
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
        assert_eq!(format_duration(Duration::ZERO), "0s");
        for d in [
            Duration::ZERO,
            Duration::from_millis(1500),
            Duration::from_nanos(1_001_001),
            Duration::from_secs(86_400 + 3_661),
            Duration::MAX,
        ] {
            assert_eq!(parse_duration(&format_duration(d)), Ok(d), "{d:?}");
        }
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 22, 12, 30, 0).unwrap()
    }

    fn local(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Local
            .with_ymd_and_hms(y, mo, d, h, mi, s)
            .earliest()
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn time_rfc3339() {
        let t = parse_time_expr("2026-11-22T10:00:00Z", now()).unwrap();
        assert_eq!(t, Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap());
        let t = parse_time_expr("2026-11-22T10:00:00.250+02:00", now()).unwrap();
        assert_eq!(t.hour(), 8);
        assert_eq!(t.nanosecond(), 250_000_000);
    }

    #[test]
    fn time_without_offset_is_local() {
        assert_eq!(
            parse_time_expr("2026-11-22 10:00:00", now()),
            Ok(local(2026, 11, 22, 10, 0, 0))
        );
        assert_eq!(
            parse_time_expr("2026-11-22T10:00:00", now()),
            Ok(local(2026, 11, 22, 10, 0, 0))
        );
        let t = parse_time_expr("2026-11-22 10:00:00.5", now()).unwrap();
        assert_eq!(t.nanosecond(), 500_000_000);
        assert_eq!(
            parse_time_expr("2026-11-22", now()),
            Ok(local(2026, 11, 22, 0, 0, 0))
        );
    }

    #[test]
    fn time_words_and_durations() {
        assert_eq!(parse_time_expr("now", now()), Ok(now()));
        let today = now().with_timezone(&Local).date_naive();
        let midnight = |d: NaiveDate| {
            Local
                .from_local_datetime(&d.and_time(chrono::NaiveTime::MIN))
                .earliest()
                .unwrap()
                .with_timezone(&Utc)
        };
        assert_eq!(parse_time_expr("today", now()), Ok(midnight(today)));
        assert_eq!(
            parse_time_expr("Yesterday", now()),
            Ok(midnight(today.pred_opt().unwrap()))
        );
        let ten_min = now() - chrono::Duration::minutes(10);
        assert_eq!(parse_time_expr("10m", now()), Ok(ten_min));
        assert_eq!(parse_time_expr("10 min ago", now()), Ok(ten_min));
        assert_eq!(
            parse_time_expr("2h ago", now()),
            Ok(now() - chrono::Duration::hours(2))
        );
        assert_eq!(
            parse_time_expr("90s", now()),
            Ok(now() - chrono::Duration::seconds(90))
        );
        assert_eq!(
            parse_time_expr("7d", now()),
            Ok(now() - chrono::Duration::days(7))
        );
    }

    #[test]
    fn time_errors_explain() {
        assert_eq!(
            parse_time_expr("xyz", now()),
            Err(
                "invalid time \"xyz\" (expected RFC 3339 such as 2026-11-22T10:00:00Z, \
                 a duration such as 10m, or \"10 min ago\")"
                    .to_string()
            )
        );
        for bad in [
            "",
            "ago",
            "2026-13-01",
            "2026-11-22T25:00:00Z",
            "10 min from now",
        ] {
            assert!(
                parse_time_expr(bad, now()).is_err(),
                "{bad:?} should be refused"
            );
        }
    }
}
