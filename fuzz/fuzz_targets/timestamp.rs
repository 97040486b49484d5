//! Feeds arbitrary text to the timestamp parsers: they must never panic, a stripped
//! prefix must leave a suffix of the line, and a line without a timestamp is left
//! exactly as it was.
#![no_main]

use libfuzzer_sys::fuzz_target;
use logagg::parse::{parse_line, parse_timestamp, strip_timestamp};

fuzz_target!(|data: &[u8]| {
    let line = String::from_utf8_lossy(data);
    match strip_timestamp(&line) {
        Some((_, rest)) => {
            assert!(rest.len() < line.len());
            assert!(line.ends_with(rest));
        }
        None => assert_eq!(parse_line(&line).message, &*line),
    }
    let _ = parse_timestamp(&line);
});
