//! `logagg tail` following a real PM2 app: its lines, then the crash marker drawn as a
//! separator, then the lines of the restarted process.

use serde_json::json;

use crate::bus::{start_crashing_app, start_logagg};
use crate::daemon_harness::{metric, Follow, Project};
use crate::harness::Pm2;

#[test]
fn a_follow_shows_an_apps_lines_and_its_crash_marker() {
    let pm2 = Pm2::start();
    let p = Project::new("");
    let d = start_logagg(&p, &pm2);
    start_crashing_app(
        &pm2,
        "crasher",
        "console.log('crasher up'); setTimeout(() => process.exit(3), 1000);",
        json!({"time": true}),
    );
    // Whether the first lines come from the backlog or live, the output is the same.
    let f = Follow::start(&p, &d.addr, &["-n", "100", "--service", "crasher"]);
    // Live records are shown in the order they arrive: PM2's `time: true` stamps whole
    // seconds, so the bus's "started" marker and the first line race; leave it aside.
    let mut lines = Vec::new();
    while lines.len() < 3 {
        let l = f.take(1).remove(0);
        if !l.ends_with(" crasher started ────") {
            lines.push(l);
        }
    }
    // `time: true` stamps the line; logagg shows that time, not when it read it.
    assert!(
        lines[0].ends_with(".000 crasher out crasher up"),
        "{lines:#?}"
    );
    assert_eq!(
        lines[0].len(),
        "2026-11-22 10:00:00.000 crasher out crasher up".len()
    );
    let marker = &lines[1];
    assert!(
        marker.starts_with("──── ")
            && marker.ends_with(" crasher crashed (exit code 3); restarted, restart #1 ────"),
        "{lines:#?}"
    );
    assert!(
        lines[2].ends_with(".000 crasher out crasher up"),
        "{lines:#?}"
    );
    pm2.pm2_ok(&["delete", "crasher"]);
}

/// PM2 sends a line on its bus before it writes it to the file: a follower is shown it
/// from the bus, once, under the same time and place the index later gives the copy read
/// from the file (so a reconnecting follower resumes exactly).
#[test]
fn lines_from_the_bus_are_shown_once_under_the_key_the_index_gives_them() {
    const N: usize = 300;
    let pm2 = Pm2::start();
    let p = Project::new("");
    let d = start_logagg(&p, &pm2);
    let f = Follow::start(&p, &d.addr, &["-n", "0", "--json", "--service", "early"]);
    assert!(
        crate::harness::wait_until(std::time::Duration::from_secs(15), || metric(
            &d,
            "logagg_followers"
        ) == 1),
        "the follower never connected"
    );
    // No timestamp in the lines: their time is when logagg first saw them.
    start_crashing_app(
        &pm2,
        "early",
        &format!(
            "let i = 0; const t = setInterval(() => {{ console.log('early line ' + i); \
             if (++i === {N}) clearInterval(t); }}, 5); setInterval(() => {{}}, 1000);"
        ),
        json!({}),
    );
    // The bus's "started" marker comes too; only the lines are compared.
    let mut shown: Vec<serde_json::Value> = Vec::new();
    while shown.len() < N {
        let hit: serde_json::Value = serde_json::from_str(&f.take(1)[0]).unwrap();
        if hit["kind"] == "line" {
            shown.push(hit);
        }
    }
    let messages: Vec<&str> = shown
        .iter()
        .map(|h| h["message"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = (0..N).map(|i| format!("early line {i}")).collect();
    assert_eq!(messages, expected);
    // Nothing more: no line shown twice.
    assert!(
        f.lines
            .recv_timeout(std::time::Duration::from_millis(1500))
            .is_err(),
        "a line came twice"
    );
    let query = [
        ("service", "early"),
        ("kind", "line"),
        ("order", "asc"),
        ("limit", "1000"),
    ];
    let body = d.wait_total(&query, N as u64, 30);
    let indexed = body["hits"].as_array().unwrap();
    for (seen, stored) in shown.iter().zip(indexed) {
        for field in ["ts", "ts_source", "file", "offset", "message"] {
            assert_eq!(seen[field], stored[field], "{field}: {seen} vs {stored}");
        }
    }
    // How many came from the bus depends on the machine's moment (the file watcher may
    // read a line before its bus message is handled: then the file's copy is shown);
    // tests/daemon/tail.rs shows the order deterministically with a bus of its own.
    let early = metric(&d, "logagg_early_lines_total");
    assert!(
        early >= 1 && early < N as u64,
        "{early} of {N} lines shown from the bus"
    );
    assert_eq!(metric(&d, "logagg_early_lines_reshown_total"), 0);
    pm2.pm2_ok(&["delete", "early"]);
}
