//! `logagg tail` following a real PM2 app: its lines, then the crash marker drawn as a
//! separator, then the lines of the restarted process.

use serde_json::json;

use crate::bus::{start_crashing_app, start_logagg};
use crate::daemon_harness::{Follow, Project};
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
