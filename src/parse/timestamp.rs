//! Timestamps at the start of a log line: the prefix PM2 writes with `time: true` or a
//! `log_date_format`, ISO-8601 written by the app itself, and the bracketed form common in
//! app loggers. Parsed by hand on bytes because this runs for every line read; anything
//! that does not match exactly is "no timestamp", never an error and never a panic.

use chrono::{DateTime, FixedOffset, Local, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};

/// Splits a leading timestamp off `line`, returning it and the rest of the line after the
/// separator.
///
/// Accepted at the very start: `YYYY-MM-DD` then `T` or a space, `HH:mm:ss`, an optional
/// fraction of 1 to 9 digits (`.` or `,`), and an optional offset (`Z`, `+01:00`, `-0500`),
/// which may also follow after one space as dayjs's `Z`/`ZZ` tokens print it. Without an
/// offset the time is local, as PM2 formats it. The timestamp must be followed by `: `
/// (PM2's separator), one space, a lone `:`, or the end of the line. The same inside
/// brackets, `[2026-11-22 10:00:00.123] rest`, is followed by a space or the end.
pub fn strip_timestamp(line: &str) -> Option<(DateTime<Utc>, &str)> {
    let b = line.as_bytes();
    match b.first()? {
        b'0'..=b'9' => {
            let (ts, end) = scan(b)?;
            // `end` always sits just after an ASCII byte, so slicing there is safe.
            Some((ts, after_separator(&line[end..], true)?))
        }
        b'[' => {
            let (ts, end) = scan(&b[1..])?;
            let close = 1 + end;
            if b.get(close) != Some(&b']') {
                return None;
            }
            Some((ts, after_separator(&line[close + 1..], false)?))
        }
        _ => None,
    }
}

/// What follows a timestamp once its separator is removed: `: `, one space, the end, or
/// (only for a bare prefix) a lone `:`, which is PM2's `<date>: ` on an empty line after
/// something trimmed its trailing space. Anything else means the digits were not a prefix.
fn after_separator(rest: &str, lone_colon: bool) -> Option<&str> {
    if rest.is_empty() || (lone_colon && rest == ":") {
        return Some("");
    }
    rest.strip_prefix(": ").or_else(|| rest.strip_prefix(' '))
}

/// Parses a string that is a timestamp and nothing else (surrounding whitespace allowed),
/// in any of the shapes [`strip_timestamp`] accepts. Used for values such as the
/// `timestamp` field of PM2's JSON logs, which is RFC 3339 or the `log_date_format` output.
pub fn parse_timestamp(s: &str) -> Option<DateTime<Utc>> {
    let b = s.trim().as_bytes();
    match scan(b)? {
        (ts, end) if end == b.len() => Some(ts),
        _ => None,
    }
}

/// Reads a timestamp at the start of `b`; returns it and the index just past it.
fn scan(b: &[u8]) -> Option<(DateTime<Utc>, usize)> {
    if b.len() < 19 {
        return None;
    }
    let year = digits(b, 0, 4)?;
    let month = digits(b, 5, 2)?;
    let day = digits(b, 8, 2)?;
    let hour = digits(b, 11, 2)?;
    let minute = digits(b, 14, 2)?;
    let second = digits(b, 17, 2)?;
    if b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let mut i = 19;

    let mut nanos = 0;
    if matches!(b.get(i), Some(b'.' | b',')) {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let n = i - start;
        if n == 0 || n > 9 {
            return None;
        }
        nanos = digits(b, start, n)? * 10u32.pow((9 - n) as u32);
    }

    let offset = match b.get(i) {
        Some(b'Z' | b'+' | b'-') => {
            let (off, len) = offset_at(b, i)?;
            i += len;
            Some(off)
        }
        // dayjs prints ` +01:00` / ` -0500`; only take it when what follows could end a
        // timestamp, so that a message starting with `Z` or `-` after a space is left alone.
        Some(b' ') => match offset_at(b, i + 1) {
            Some((off, len)) if matches!(b.get(i + 1 + len), None | Some(b' ' | b':' | b']')) => {
                i += 1 + len;
                Some(off)
            }
            _ => None,
        },
        _ => None,
    };

    let date = NaiveDate::from_ymd_opt(year as i32, month, day)?;
    let time = NaiveTime::from_hms_nano_opt(hour, minute, second, nanos)?;
    let naive = NaiveDateTime::new(date, time);
    let ts = match offset {
        Some(off) => off
            .from_local_datetime(&naive)
            .single()?
            .with_timezone(&Utc),
        None => local_to_utc(&naive)?,
    };
    Some((ts, i))
}

/// A time without offset is the machine's local time (PM2 formats with the daemon's zone).
fn local_to_utc(naive: &NaiveDateTime) -> Option<DateTime<Utc>> {
    match Local.from_local_datetime(naive).earliest() {
        Some(t) => Some(t.with_timezone(&Utc)),
        // Inside a DST gap the wall time never existed; keep the line's time anyway by
        // applying the offset in force just before the gap rather than dropping it.
        None => {
            let off = Local.offset_from_utc_datetime(naive);
            let secs = chrono::TimeDelta::try_seconds(i64::from(off.local_minus_utc()))?;
            Some(Utc.from_utc_datetime(&naive.checked_sub_signed(secs)?))
        }
    }
}

/// `Z`, or a sign, two hour digits, an optional `:` and two minute digits. Returns the
/// offset and how many bytes it took.
fn offset_at(b: &[u8], i: usize) -> Option<(FixedOffset, usize)> {
    let sign = match *b.get(i)? {
        b'Z' => return Some((FixedOffset::east_opt(0)?, 1)),
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let hours = digits(b, i + 1, 2)?;
    let (minutes, len) = if b.get(i + 3) == Some(&b':') {
        (digits(b, i + 4, 2)?, 6)
    } else {
        (digits(b, i + 3, 2)?, 5)
    };
    if hours > 23 || minutes > 59 {
        return None;
    }
    let secs = sign * (hours * 3600 + minutes * 60) as i32;
    Some((FixedOffset::east_opt(secs)?, len))
}

/// The decimal value of `n` ASCII digits at `b[at..]`, or None if any is missing or not a
/// digit. `n` is at most 9, so the value fits a u32.
fn digits(b: &[u8], at: usize, n: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(n)?)?;
    let mut v = 0u32;
    for &c in s {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u32::from(c - b'0');
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32, nanos: u32) -> DateTime<Utc> {
        let naive = NaiveDate::from_ymd_opt(y, mo, d)
            .and_then(|d| d.and_hms_nano_opt(h, mi, s, nanos))
            .expect("valid test date");
        Utc.from_utc_datetime(&naive)
    }

    /// What a wall-clock time without offset means on this machine, whatever its zone.
    fn local(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32, nanos: u32) -> DateTime<Utc> {
        let naive = NaiveDate::from_ymd_opt(y, mo, d)
            .and_then(|d| d.and_hms_nano_opt(h, mi, s, nanos))
            .expect("valid test date");
        Local
            .from_local_datetime(&naive)
            .earliest()
            .expect("not in a DST gap")
            .with_timezone(&Utc)
    }

    #[test]
    fn pm2_time_true_prefix_is_local() {
        assert_eq!(
            strip_timestamp("2026-11-22T10:00:00: hello world"),
            Some((local(2026, 11, 22, 10, 0, 0, 0), "hello world"))
        );
    }

    #[test]
    fn iso_with_offsets_and_fractions() {
        let cases = [
            (
                "2026-11-22T10:00:00.123Z rest",
                utc(2026, 11, 22, 10, 0, 0, 123_000_000),
            ),
            ("2026-11-22T10:00:00Z rest", utc(2026, 11, 22, 10, 0, 0, 0)),
            (
                "2026-11-22T10:00:00+01:00 rest",
                utc(2026, 11, 22, 9, 0, 0, 0),
            ),
            (
                "2026-11-22T10:00:00.123456+0100 rest",
                utc(2026, 11, 22, 9, 0, 0, 123_456_000),
            ),
            (
                "2026-11-22T10:00:00.5-05:30 rest",
                utc(2026, 11, 22, 15, 30, 0, 500_000_000),
            ),
            (
                "2026-11-22T10:00:00.123456789Z rest",
                utc(2026, 11, 22, 10, 0, 0, 123_456_789),
            ),
            (
                "2026-11-22T23:30:00-0100 rest",
                utc(2026, 11, 23, 0, 30, 0, 0),
            ),
        ];
        for (line, ts) in cases {
            assert_eq!(strip_timestamp(line), Some((ts, "rest")), "{line}");
        }
    }

    #[test]
    fn space_separated_dayjs_formats() {
        assert_eq!(
            strip_timestamp("2026-11-22 10:00:00: a"),
            Some((local(2026, 11, 22, 10, 0, 0, 0), "a"))
        );
        assert_eq!(
            strip_timestamp("2026-11-22 10:00:00.123: a"),
            Some((local(2026, 11, 22, 10, 0, 0, 123_000_000), "a"))
        );
        assert_eq!(
            strip_timestamp("2026-11-22 10:00:00.123 +01:00: a"),
            Some((utc(2026, 11, 22, 9, 0, 0, 123_000_000), "a"))
        );
        assert_eq!(
            strip_timestamp("2026-11-22 10:00:00.123 -0500: a"),
            Some((utc(2026, 11, 22, 15, 0, 0, 123_000_000), "a"))
        );
        assert_eq!(
            strip_timestamp("2026-11-22 10:00:00.123 Z: a"),
            Some((utc(2026, 11, 22, 10, 0, 0, 123_000_000), "a"))
        );
        assert_eq!(
            strip_timestamp("2026-11-22 10:00:00,123 INFO x"),
            Some((local(2026, 11, 22, 10, 0, 0, 123_000_000), "INFO x"))
        );
    }

    #[test]
    fn spaced_offset_needs_a_boundary_after_it() {
        // ` Zebra` is the message, not a `Z` offset.
        assert_eq!(
            strip_timestamp("2026-11-22 10:00:00 Zebra"),
            Some((local(2026, 11, 22, 10, 0, 0, 0), "Zebra"))
        );
        assert_eq!(
            strip_timestamp("2026-11-22 10:00:00 -0500x"),
            Some((local(2026, 11, 22, 10, 0, 0, 0), "-0500x"))
        );
        assert_eq!(
            strip_timestamp("2026-11-22 10:00:00 - x"),
            Some((local(2026, 11, 22, 10, 0, 0, 0), "- x"))
        );
    }

    #[test]
    fn separators() {
        let t = local(2026, 11, 22, 10, 0, 0, 0);
        assert_eq!(strip_timestamp("2026-11-22T10:00:00"), Some((t, "")));
        assert_eq!(strip_timestamp("2026-11-22T10:00:00:"), Some((t, "")));
        assert_eq!(strip_timestamp("2026-11-22T10:00:00: "), Some((t, "")));
        assert_eq!(strip_timestamp("2026-11-22T10:00:00 "), Some((t, "")));
        assert_eq!(
            strip_timestamp("2026-11-22T10:00:00:  two"),
            Some((t, " two"))
        );
        assert_eq!(
            strip_timestamp("2026-11-22T10:00:00  two"),
            Some((t, " two"))
        );
        assert_eq!(strip_timestamp("2026-11-22T10:00:00abc"), None);
        assert_eq!(strip_timestamp("2026-11-22T10:00:00:abc"), None);
        assert_eq!(strip_timestamp("2026-11-22T10:00:00.abc"), None);
        assert_eq!(strip_timestamp("2026-11-22T10:00:00.1234567890Z x"), None);
        assert_eq!(strip_timestamp("2026-11-22T10:00:00\tx"), None);
    }

    #[test]
    fn bracketed() {
        assert_eq!(
            strip_timestamp("[2026-11-22 10:00:00.123] rest"),
            Some((local(2026, 11, 22, 10, 0, 0, 123_000_000), "rest"))
        );
        assert_eq!(
            strip_timestamp("[2026-11-22T10:00:00Z]"),
            Some((utc(2026, 11, 22, 10, 0, 0, 0), ""))
        );
        assert_eq!(
            strip_timestamp("[2026-11-22 10:00:00 +01:00] x"),
            Some((utc(2026, 11, 22, 9, 0, 0, 0), "x"))
        );
        assert_eq!(strip_timestamp("[2026-11-22 10:00:00.123]rest"), None);
        assert_eq!(strip_timestamp("[2026-11-22 10:00:00.123 rest"), None);
        assert_eq!(strip_timestamp("[INFO] 2026-11-22 10:00:00"), None);
    }

    #[test]
    fn invalid_dates_and_times() {
        for line in [
            "2026-13-22T10:00:00: x",
            "2026-02-30T10:00:00: x",
            "2026-00-10T10:00:00: x",
            "2026-11-00T10:00:00: x",
            "2026-11-22T24:00:00: x",
            "2026-11-22T10:60:00: x",
            "2026-11-22T10:00:60: x",
            "2026-11-22T10:00:00+24:00 x",
            "2026-11-22T10:00:00+01:60 x",
            "2026-11-22T10:00:00+1:00 x",
            "2026-11-22X10:00:00: x",
            "2026/11/22 10:00:00 x",
            "26-11-22 10:00:00 x",
            "2026-11-22 10:00 x",
            "+026-11-22 10:00:00 x",
        ] {
            assert_eq!(strip_timestamp(line), None, "{line}");
        }
    }

    #[test]
    fn lines_without_timestamp() {
        assert_eq!(strip_timestamp(""), None);
        assert_eq!(strip_timestamp("hello"), None);
        assert_eq!(strip_timestamp("2026 was a year"), None);
        assert_eq!(strip_timestamp(" 2026-11-22T10:00:00: x"), None);
        assert_eq!(strip_timestamp("["), None);
    }

    #[test]
    fn leap_day_is_valid() {
        assert_eq!(
            strip_timestamp("2028-02-29T00:00:00Z x"),
            Some((utc(2028, 2, 29, 0, 0, 0, 0), "x"))
        );
        assert_eq!(strip_timestamp("2026-02-29T00:00:00Z x"), None);
    }

    #[test]
    fn rest_keeps_non_ascii() {
        assert_eq!(
            strip_timestamp("2026-11-22T10:00:00Z héllo ✓"),
            Some((utc(2026, 11, 22, 10, 0, 0, 0), "héllo ✓"))
        );
    }

    #[test]
    fn full_string_variant() {
        assert_eq!(
            parse_timestamp("2026-11-22T02:36:35.209Z"),
            Some(utc(2026, 11, 22, 2, 36, 35, 209_000_000))
        );
        assert_eq!(
            parse_timestamp(" 2026-11-22 10:00:00.123 +01:00 "),
            Some(utc(2026, 11, 22, 9, 0, 0, 123_000_000))
        );
        assert_eq!(
            parse_timestamp("2026-11-22T10:00:00"),
            Some(local(2026, 11, 22, 10, 0, 0, 0))
        );
        assert_eq!(parse_timestamp("2026-11-22T10:00:00: x"), None);
        assert_eq!(
            parse_timestamp("2026-11-22T10:00:00 "),
            Some(local(2026, 11, 22, 10, 0, 0, 0))
        );
        assert_eq!(parse_timestamp("2026-11-22T10:00:00 x"), None);
        assert_eq!(parse_timestamp(""), None);
        assert_eq!(parse_timestamp("yesterday"), None);
    }

    /// A small deterministic generator so the fuzz-style test needs no extra crate.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    #[test]
    fn never_panics() {
        let valid = [
            "2026-11-22T10:00:00: x",
            "2026-11-22T10:00:00.123456789+01:00 x",
            "2026-11-22 10:00:00.123 -0500: x",
            "2026-11-22 10:00:00.123 Z",
            "[2026-11-22 10:00:00.123] x",
            "9999-12-31T23:59:59.999999999-23:59 x",
            "0000-01-01T00:00:00+23:59 x",
            "9999-12-31T23:59:59 x",
            "0000-01-01T00:00:00 x",
        ];
        // Every truncation (at a char boundary, as a &str must be) of valid prefixes.
        for v in valid {
            for end in 0..=v.len() {
                if let Some(s) = v.get(..end) {
                    let _ = strip_timestamp(s);
                    let _ = parse_timestamp(s);
                }
            }
        }
        // Random mutations of valid prefixes over the bytes the parser cares about, and
        // random bytes.
        let alphabet = b"0123456789-:T .,Z+[]x\xc3\xa9";
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        for round in 0..200_000 {
            let mut bytes: Vec<u8> = valid[round % valid.len()].as_bytes().to_vec();
            let edits = 1 + (rng.next() % 4) as usize;
            for _ in 0..edits {
                let pos = (rng.next() as usize) % (bytes.len() + 1);
                let c = alphabet[(rng.next() as usize) % alphabet.len()];
                match rng.next() % 3 {
                    0 if pos < bytes.len() => bytes[pos] = c,
                    1 if pos < bytes.len() => {
                        bytes.remove(pos);
                    }
                    _ => bytes.insert(pos, c),
                }
            }
            let s = String::from_utf8_lossy(&bytes);
            let _ = strip_timestamp(&s);
            let _ = parse_timestamp(&s);

            let len = (rng.next() % 40) as usize;
            let random: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            let s = String::from_utf8_lossy(&random);
            let _ = strip_timestamp(&s);
            let _ = parse_timestamp(&s);
        }
    }
}
