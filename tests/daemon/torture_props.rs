//! The fuzz targets' invariants (fuzz/fuzz_targets), as bounded property tests that run
//! on stable Rust in the normal suite: the amp codec, the line splitter, the timestamp
//! parser and the query-string parsers get arbitrary bytes for about two seconds each
//! (`LOGAGG_TORTURE_PROP_SECONDS`), must not panic, and must keep their invariants.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use logagg::api::check_query_string;
use logagg::parse::{parse_line, parse_timestamp, strip_timestamp};
use logagg::pm2::amp::{encode, Decoder};
use logagg::tail::splitter::LineSplitter;

/// Runs `test` on values of `strategy` in rounds of 256 cases, each round with a new
/// random seed, until the time budget is spent; a failure is shrunk and reported as
/// usual. Returns how many cases ran.
fn for_a_while<S: Strategy>(
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) -> u64 {
    let secs = std::env::var("LOGAGG_TORTURE_PROP_SECONDS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(2.0);
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let mut cases = 0;
    while Instant::now() < deadline {
        let mut runner = TestRunner::new(Config {
            cases: 256,
            failure_persistence: None,
            ..Config::default()
        });
        if let Err(e) = runner.run(&strategy, &test) {
            panic!("{e}");
        }
        cases += 256;
    }
    println!("{cases} cases in {secs} s");
    cases
}

/// Bytes in which newlines, CRs and the bytes of multi-byte characters are common, so
/// that lines, CRLFs and cut characters happen often, but any byte may come.
fn log_bytes(max_len: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(
        prop_oneof![
            3 => any::<u8>(),
            2 => Just(b'\n'),
            1 => Just(b'\r'),
            1 => Just(0xC3u8),
            1 => Just(0xA9u8),
            2 => Just(b'a'),
        ],
        0..max_len,
    )
}

#[test]
fn torture_props_amp_decoder_never_panics_and_what_it_accepts_round_trips() {
    let cases = for_a_while(
        (any::<Vec<u8>>(), 1usize..64, any::<bool>()),
        |(bytes, chunk, framed)| {
            // Half the time, a valid frame header in front so that decoding goes deep.
            let mut input = Vec::new();
            if framed {
                input.extend(encode(&[logagg::pm2::amp::Arg::Str("x".into())]));
            }
            input.extend(&bytes);
            let mut decoder = Decoder::with_max_frame_len(1 << 16);
            for part in input.chunks(chunk) {
                decoder.push(part);
                loop {
                    match decoder.next_frame() {
                        Ok(Some(args)) => {
                            let mut again = Decoder::new();
                            again.push(&encode(&args));
                            let frame = again.next_frame().map_err(|e| {
                                TestCaseError::fail(format!("re-encoded frame fails: {e}"))
                            })?;
                            // Not equal in general: a blob that begins with `s:` comes
                            // back as a string (axon's own ambiguity, see `Arg`).
                            prop_assert_eq!(frame.map(|f| f.len()), Some(args.len()));
                            prop_assert_eq!(again.buffered(), 0);
                        }
                        Ok(None) => break,
                        Err(e) if e.is_fatal() => return Ok(()),
                        Err(_) => {}
                    }
                }
            }
            Ok(())
        },
    );
    assert!(cases >= 256);
}

#[test]
fn torture_props_line_splitter_gives_back_its_input_up_to_newlines_and_crs() {
    let cases = for_a_while(
        (log_bytes(2000), 1usize..300, 4usize..64),
        |(data, chunk, max)| {
            let mut s = LineSplitter::new(max, 0);
            let mut pieces: Vec<(u64, Vec<u8>, bool)> = Vec::new();
            for part in data.chunks(chunk) {
                s.push(part, |p| pieces.push((p.offset, p.bytes.to_vec(), p.split)));
            }
            // Nothing after the last newline is emitted before its newline, unless it
            // is a piece of an over-long line.
            let last_nl = data.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            for (offset, bytes, split) in &pieces {
                prop_assert!(*split || *offset as usize + bytes.len() < last_nl.max(1));
            }
            s.flush(|p| pieces.push((p.offset, p.bytes.to_vec(), p.split)));
            prop_assert_eq!(s.resume_offset(), data.len() as u64);
            // Put back at their offsets, the pieces are the input; between them only
            // the newline and one CR before it are missing.
            let mut pos = 0usize;
            for (offset, bytes, _) in &pieces {
                let offset = *offset as usize;
                prop_assert!(bytes.len() <= max);
                prop_assert!(!bytes.contains(&b'\n'));
                let gap = &data[pos..offset];
                prop_assert!(
                    matches!(gap, b"" | b"\n" | b"\r\n"),
                    "lost {:?} before offset {}",
                    gap,
                    offset
                );
                prop_assert_eq!(&data[offset..offset + bytes.len()], &bytes[..]);
                pos = offset + bytes.len();
            }
            prop_assert!(matches!(&data[pos..], b"" | b"\n" | b"\r\n" | b"\r"));
            Ok(())
        },
    );
    assert!(cases >= 256);
}

#[test]
fn torture_props_timestamps_parse_or_leave_the_line_unchanged() {
    // Arbitrary bytes, and text that looks like a timestamp more often than chance.
    let near = "[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}([.,][0-9]{0,10})?(Z|[+-][0-9]{2}:?[0-9]{2}| [+-][0-9]{4})?(: | |:|\\])?.{0,20}";
    let lines = prop_oneof![
        any::<Vec<u8>>().prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        near,
        ("\\[", near).prop_map(|(a, b)| format!("{a}{b}")),
    ];
    let cases = for_a_while(lines, |line| {
        match strip_timestamp(&line) {
            Some((_, rest)) => {
                prop_assert!(rest.len() < line.len());
                prop_assert!(line.ends_with(rest));
                prop_assert_eq!(parse_line(&line).message, rest);
            }
            None => {
                let parsed = parse_line(&line);
                prop_assert_eq!(parsed.message, line.as_str());
                prop_assert_eq!(parsed.ts, None);
            }
        }
        let _ = parse_timestamp(&line);
        Ok(())
    });
    assert!(cases >= 256);
    // Any instant written as PM2 and RFC 3339 write it comes back exactly.
    let cases = for_a_while(
        (0i64..4_102_444_800, 0u32..1_000_000, "[a-z ]{0,12}"),
        |(secs, micros, msg)| {
            let ts = chrono::DateTime::from_timestamp(secs, micros * 1000).unwrap();
            let line = format!("{}: {msg}", ts.format("%Y-%m-%dT%H:%M:%S%.6fZ"));
            let (got, rest) = strip_timestamp(&line)
                .ok_or_else(|| TestCaseError::fail(format!("{line:?} not parsed")))?;
            prop_assert_eq!(got, ts);
            prop_assert_eq!(rest, msg.as_str());
            Ok(())
        },
    );
    assert!(cases >= 256);
}

#[test]
fn torture_props_query_strings_are_accepted_or_refused_naming_the_parameter() {
    const ROUTES: [&str; 8] = [
        "/api/search",
        "/api/events",
        "/api/tail",
        "/api/histogram",
        "/api/rotate",
        "/api/status",
        "/api/services",
        "/metrics",
    ];
    let keys = prop_oneof![
        Just("q"),
        Just("service"),
        Just("stream"),
        Just("level"),
        Just("kind"),
        Just("since"),
        Just("until"),
        Just("limit"),
        Just("order"),
        Just("cursor"),
        Just("interval"),
        Just("n"),
        Just("%71"),
        Just("x"),
    ];
    let values = prop_oneof![
        any::<Vec<u8>>().prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        "[0-9]{0,25}",
        "-?[0-9]{1,4}(s|m|h|d| min ago)?",
        "20[0-9]{2}-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-5][0-9]Z",
        "(asc|desc|out|err|line|marker|warn|%ZZ|%e2%82|\\+)",
    ];
    let structured = proptest::collection::vec((keys, values), 0..6).prop_map(|pairs| {
        pairs
            .iter()
            .map(|(k, v)| {
                let v: String = form_urlencoded::byte_serialize(v.as_bytes()).collect();
                format!("{k}={v}")
            })
            .collect::<Vec<_>>()
            .join("&")
    });
    let raw = prop_oneof![
        any::<Vec<u8>>().prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        structured,
    ];
    let cases = for_a_while((0usize..ROUTES.len(), raw), |(route, raw)| {
        let route = ROUTES[route];
        if let Err(e) = check_query_string(&raw, route) {
            prop_assert!(e.contains("parameter"), "{}?{}: {}", route, raw, e);
        }
        Ok(())
    });
    assert!(cases >= 256);
    // And the parser does refuse, with the sentences the API sends.
    assert_eq!(
        check_query_string("limit=5&order=asc", "/api/search"),
        Ok(())
    );
    assert_eq!(
        check_query_string("limit=0", "/api/events"),
        Err("parameter \"limit\": must be at least 1".to_string())
    );
    assert_eq!(
        check_query_string("x=1", "/metrics"),
        Err("unknown parameter \"x\" (this route takes none)".to_string())
    );
    assert_eq!(
        check_query_string("", "/nowhere"),
        Err("no such route: /nowhere".to_string())
    );
}
