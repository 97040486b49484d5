//! How the daemon reads PM2's files: names, timestamp shapes, JSON lines, partial lines,
//! renames, truncation, deletion, bad bytes, huge lines, late files and many files.

use std::fs;

use serde_json::Value;

use crate::harness::{append, messages, Project};

fn hit<'a>(body: &'a Value, message: &str) -> &'a Value {
    body["hits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["message"] == message)
        .unwrap_or_else(|| panic!("no hit with message {message:?} in {body:#}"))
}

#[test]
fn file_names_give_service_stream_and_instance() {
    let p = Project::new("");
    let files = [
        ("duck-out.log", "duck", "out", Value::Null),
        ("duck-error.log", "duck", "err", Value::Null),
        ("api-gw-out-3.log", "api-gw", "out", Value::from(3)),
        ("api-gw-error-3.log", "api-gw", "err", Value::from(3)),
        ("worker-err-12.log", "worker", "err", Value::from(12)),
        ("combined.log", "combined", "out", Value::Null),
    ];
    for (name, ..) in &files {
        append(&p.log(name), format!("line from {name}\n"));
    }
    // Not a .log file: the glob does not take it.
    append(&p.log("duck-out.log.1"), "old line\n");
    let d = p.start();
    let body = d.wait_total(&[("limit", "100")], files.len() as u64, 20);
    for (name, service, stream, instance) in &files {
        let h = hit(&body, &format!("line from {name}"));
        assert_eq!(h["service"], *service, "{name}");
        assert_eq!(h["stream"], *stream, "{name}");
        assert_eq!(h["instance"], *instance, "{name}");
        assert_eq!(h["file"], p.log(name).to_str().unwrap(), "{name}");
        assert_eq!(h["offset"], 0, "{name}");
        assert_eq!(h["kind"], "line");
    }
    let duck = d.search(&[("service", "duck")]);
    assert_eq!(duck["total"], 2);
    let both = d.search(&[("service", "duck"), ("service", "worker")]);
    assert_eq!(both["total"], 3);
    let err = d.search(&[("stream", "err")]);
    assert_eq!(err["total"], 3);
}

#[test]
fn every_timestamp_shape_is_parsed_and_stripped() {
    let p = Project::new("");
    let lines = [
        // PM2 `time: true`
        (
            "2026-11-22T10:00:00: time true",
            "2026-11-22T10:00:00.000000Z",
        ),
        // ISO-8601 with fraction and Z
        (
            "2026-11-22T10:00:01.250Z: iso fraction z",
            "2026-11-22T10:00:01.250000Z",
        ),
        // ISO-8601 with offset
        (
            "2026-11-22T12:00:02+02:00: iso offset",
            "2026-11-22T10:00:02.000000Z",
        ),
        // ISO-8601 with fraction and offset
        (
            "2026-11-22T12:00:03.5+02:00: iso fraction offset",
            "2026-11-22T10:00:03.500000Z",
        ),
        // log_date_format "YYYY-MM-DD HH:mm:ss"
        (
            "2026-11-22 10:00:04: space no fraction",
            "2026-11-22T10:00:04.000000Z",
        ),
        // "YYYY-MM-DD HH:mm:ss.SSS"
        (
            "2026-11-22 10:00:05.123: space fraction",
            "2026-11-22T10:00:05.123000Z",
        ),
        // "YYYY-MM-DD HH:mm:ss.SSS Z"
        (
            "2026-11-22 11:00:06.456 +01:00: space fraction zone",
            "2026-11-22T10:00:06.456000Z",
        ),
        // "YYYY-MM-DD HH:mm:ss Z"
        (
            "2026-11-22 05:00:07 -05:00: space zone",
            "2026-11-22T10:00:07.000000Z",
        ),
    ];
    let mut text = String::new();
    for (line, _) in &lines {
        text.push_str(line);
        text.push('\n');
    }
    text.push_str("no timestamp here\n");
    // Shapes without a zone are local time; the test pins the zone to UTC.
    append(&p.log("duck-out.log"), text);
    let d = p.start_with_env(&[("TZ", "UTC")]);
    let body = d.wait_total(&[("order", "asc")], lines.len() as u64 + 1, 20);
    for (line, ts) in &lines {
        let message = line.split_once(": ").unwrap().1;
        let h = hit(&body, message);
        assert_eq!(h["ts"], *ts, "{line}");
        assert_eq!(h["ts_source"], "line", "{line}");
    }
    let plain = hit(&body, "no timestamp here");
    assert_eq!(plain["ts_source"], "read");
    // Timeline order is timestamp order, oldest first with order=asc.
    let got = messages(&body);
    assert_eq!(got[0], "time true");
    assert_eq!(got[7], "space zone");
    assert_eq!(got[8], "no timestamp here");
}

#[test]
fn levels_come_from_a_leading_word_or_a_json_field() {
    let p = Project::new("");
    append(
        &p.log("duck-out.log"),
        "ERROR disk full\n[warn] slow\ninfo: started\nDebug x\nTRACE y\n\
         {\"level\":50,\"msg\":\"pino error\"}\n{\"level\":\"warn\",\"msg\":\"json warn\"}\n\
         errors found in nothing\n",
    );
    let d = p.start();
    let body = d.wait_total(&[], 8, 20);
    let level = |m: &str| hit(&body, m)["level"].clone();
    assert_eq!(level("ERROR disk full"), "error");
    assert_eq!(level("[warn] slow"), "warn");
    assert_eq!(level("info: started"), "info");
    assert_eq!(level("Debug x"), "debug");
    assert_eq!(level("TRACE y"), "trace");
    assert_eq!(level("{\"level\":50,\"msg\":\"pino error\"}"), "error");
    assert_eq!(level("{\"level\":\"warn\",\"msg\":\"json warn\"}"), "warn");
    assert_eq!(level("errors found in nothing"), Value::Null);
    // level=warn means warn and more severe.
    assert_eq!(d.search(&[("level", "warn")])["total"], 4);
    assert_eq!(d.search(&[("level", "error")])["total"], 2);
}

#[test]
fn pm2_json_lines_are_unpacked() {
    let p = Project::new("");
    let lines = [
        r#"{"message":"single line\n","timestamp":"2026-11-22T10:00:00.000Z","type":"out","process_id":2,"app_name":"duck"}"#,
        r#"{"message":"first\nsecond\nthird\n","timestamp":"2026-11-22 10:00:01 +00:00","type":"err","process_id":0,"app_name":"duck"}"#,
        r#"{"message":"ERROR from json\n","timestamp":"2026-11-22T10:00:02Z","type":"out","process_id":1,"app_name":"my api"}"#,
    ];
    append(&p.log("duck.log"), lines.join("\n") + "\n");
    let d = p.start();
    let body = d.wait_total(&[("order", "asc")], 5, 20);
    assert_eq!(
        messages(&body),
        ["single line", "first", "second", "third", "ERROR from json"]
    );
    let single = hit(&body, "single line");
    assert_eq!(single["ts"], "2026-11-22T10:00:00.000000Z");
    assert_eq!(single["instance"], 2);
    assert_eq!(single["stream"], "out");
    let second = hit(&body, "second");
    assert_eq!(second["stream"], "err");
    assert_eq!(second["ts"], "2026-11-22T10:00:01.000000Z");
    assert_eq!(second["instance"], 0);
    let named = hit(&body, "ERROR from json");
    assert_eq!(named["service"], "my api");
    assert_eq!(named["level"], "error");
}

#[test]
fn a_partial_line_is_held_until_its_newline_then_follows_the_file_across_a_rename() {
    let p = Project::new("");
    let live = p.log("duck-out.log");
    append(&live, "complete\npart");
    let d = p.start();
    d.wait_total(&[], 1, 20);
    // The writer keeps its descriptor, as PM2 does before reloadLogs.
    let mut writer = fs::OpenOptions::new().append(true).open(&live).unwrap();
    let archived = p.path().join("logs/pm2/duck-out.log.1");
    fs::rename(&live, &archived).unwrap();
    std::io::Write::write_all(&mut writer, b"ial done\nafter rename\n").unwrap();
    let body = d.wait_total(&[("order", "asc")], 3, 20);
    assert_eq!(
        messages(&body),
        ["complete", "partial done", "after rename"]
    );
    // Nothing is read twice when a new file takes the old name.
    append(&live, "new file\n");
    let body = d.wait_total(&[("order", "asc")], 4, 20);
    assert_eq!(messages(&body)[3], "new file");
    assert_eq!(hit(&body, "new file")["offset"], 0);
}

#[test]
fn a_partial_last_line_is_emitted_once_when_its_file_is_renamed_away() {
    let p = Project::new("");
    let live = p.log("duck-out.log");
    append(&live, "one\ntwo without newline");
    let d = p.start();
    d.wait_total(&[], 1, 20);
    fs::rename(&live, p.path().join("duck-out.old")).unwrap();
    // linger is 500ms: after it the held line must be emitted, once.
    let body = d.wait_total(&[("order", "asc")], 2, 20);
    assert_eq!(messages(&body), ["one", "two without newline"]);
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert_eq!(d.search(&[])["total"], 2);
}

#[test]
fn a_deleted_file_is_read_to_its_end_then_dropped() {
    let p = Project::new("");
    let live = p.log("duck-out.log");
    let mut writer = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&live)
        .unwrap();
    std::io::Write::write_all(&mut writer, b"before delete\n").unwrap();
    let d = p.start();
    d.wait_total(&[], 1, 20);
    fs::remove_file(&live).unwrap();
    std::io::Write::write_all(&mut writer, b"written after delete\nheld").unwrap();
    let body = d.wait_total(&[("order", "asc")], 3, 20);
    assert_eq!(
        messages(&body),
        ["before delete", "written after delete", "held"]
    );
    drop(writer);
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert_eq!(d.search(&[])["total"], 3);
}

#[test]
fn a_truncated_file_is_read_again_from_the_start() {
    let p = Project::new("");
    let live = p.log("duck-out.log");
    append(
        &live,
        "old 1\nold 2\nold 3 is longer than what comes next\n",
    );
    let d = p.start();
    d.wait_total(&[], 3, 20);
    fs::OpenOptions::new()
        .write(true)
        .open(&live)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&live, "new 1\nnew 2\n");
    let body = d.wait_total(&[("order", "asc")], 5, 20);
    assert_eq!(
        messages(&body),
        [
            "old 1",
            "old 2",
            "old 3 is longer than what comes next",
            "new 1",
            "new 2"
        ]
    );
    assert_eq!(hit(&body, "new 1")["offset"], 0);
}

#[test]
fn bad_bytes_are_replaced_and_crlf_trimmed_never_dropped() {
    let p = Project::new("");
    let mut bytes = Vec::new();
    bytes.extend_from_slice(b"bad \xff\xfe bytes\n");
    bytes.extend_from_slice(b"windows line\r\n");
    bytes.extend_from_slice(b"nul \x00 inside\n");
    bytes.extend_from_slice(b"\n");
    bytes.extend_from_slice(b"cut utf8 \xe2\x82\n");
    append(&p.log("duck-out.log"), bytes);
    let d = p.start();
    let body = d.wait_total(&[("order", "asc")], 5, 20);
    assert_eq!(
        messages(&body),
        [
            "bad \u{fffd}\u{fffd} bytes",
            "windows line",
            "nul \u{0} inside",
            "",
            "cut utf8 \u{fffd}"
        ]
    );
}

#[test]
fn a_5_mib_line_is_split_into_flagged_pieces_that_rebuild_it() {
    let p = Project::new("max_line_bytes = \"1MiB\"");
    let mut line = String::from("2026-11-22T10:00:00: ERROR ");
    let mut n = 0u64;
    while line.len() < 5 * 1024 * 1024 {
        line.push_str(&format!("{n:08} "));
        n += 1;
    }
    // Exactly 5 MiB, so exactly five 1 MiB pieces.
    line.truncate(5 * 1024 * 1024);
    append(
        &p.log("duck-out.log"),
        format!("2026-11-22T09:59:59: before\n{line}\n2026-11-22T10:00:01: after\n"),
    );
    let d = p.start();
    let body = d.wait_total(&[("order", "asc"), ("limit", "100")], 2 + 5, 30);
    let hits = body["hits"].as_array().unwrap();
    assert_eq!(hits[0]["message"], "before");
    assert_eq!(hits[6]["message"], "after");
    assert_eq!(hits.len(), 7);
    let pieces = &hits[1..6];
    let mut rebuilt = String::new();
    for (i, piece) in pieces.iter().enumerate() {
        assert_eq!(piece["split"], true, "piece {i}");
        // The line's own timestamp and level carry over to every piece.
        assert_eq!(piece["ts"], "2026-11-22T10:00:00.000000Z", "piece {i}");
        assert_eq!(piece["level"], "error", "piece {i}");
        rebuilt.push_str(piece["message"].as_str().unwrap());
    }
    // Compared without printing: a failure message of 5 MiB helps nobody.
    let want = line.split_once(": ").unwrap().1;
    assert_eq!(rebuilt.len(), want.len());
    assert!(rebuilt == want, "the pieces do not rebuild the line");
    assert_eq!(hits[0]["split"], false);
}

#[test]
fn files_that_appear_after_start_are_followed() {
    let p = Project::new("");
    // Even the directory does not exist yet.
    fs::remove_dir(p.path().join("logs/pm2")).unwrap();
    let d = p.start();
    fs::create_dir_all(p.path().join("logs/pm2")).unwrap();
    append(&p.log("late-out.log"), "late 1\n");
    d.wait_total(&[], 1, 20);
    append(&p.log("later-error-0.log"), "later 1\n");
    append(&p.log("late-out.log"), "late 2\n");
    let body = d.wait_total(&[("order", "asc")], 3, 20);
    assert_eq!(hit(&body, "later 1")["service"], "later");
    assert_eq!(hit(&body, "late 2")["service"], "late");
}

#[test]
fn two_hundred_files_at_once() {
    let p = Project::new("");
    for f in 0..200 {
        let mut text = String::new();
        for l in 0..50 {
            text.push_str(&format!("svc{f} line {l}\n"));
        }
        append(&p.log(&format!("svc{f}-out.log")), text);
    }
    let d = p.start();
    d.wait_total(&[], 200 * 50, 60);
    // Files created while it runs, 200 more, all at once.
    for f in 200..400 {
        append(
            &p.log(&format!("svc{f}-out.log")),
            format!("svc{f} only line\n"),
        );
    }
    d.wait_total(&[], 200 * 50 + 200, 60);
    assert_eq!(d.search(&[("service", "svc7")])["total"], 50);
    assert_eq!(d.search(&[("service", "svc399")])["total"], 1);
}
