//! The web timeline at `/`, end to end: a real daemon with two services and a crash
//! marker (from a fake PM2 bus), and the page in a real headless Chromium driven by
//! `tests/web/drive.js` (playwright-core, pinned in package.json, installed by `npm ci`).
//!
//! Chromium and Node.js are required: without them this test fails, it does not skip.
//! Screenshots go to `target/web-artifacts/`.

use std::io::Read;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{SecondsFormat, Utc};
use serde_json::{json, Value};

use crate::harness::{append, bus_frame, ensure_debian_package, Daemon, Project};
use crate::node_harness::{ensure_node_deps, REPO};

const CHROMIUM: &str = "/usr/bin/chromium";
const TOKEN: &str = "web-test-token-3f9a";

/// The colour class the page must give `service`: the CLI's rule, `xxh3_64 % 6`.
fn colour(service: &str) -> String {
    format!("c{}", xxhash_rust::xxh3::xxh3_64(service.as_bytes()) % 6)
}

/// `worker` exiting with code 3 and PM2 restarting it: one crash marker at `at_ms`.
fn crash_and_restart(at_ms: i64) -> Vec<u8> {
    let proc = |status: &str, restarts: u64| {
        json!({"name": "worker", "pm_id": 1, "status": status, "exit_code": 3,
               "restart_time": restarts, "unstable_restarts": 0})
    };
    let mut out = bus_frame(
        "process:event",
        &json!({"event": "exit", "manually": false, "at": at_ms,
                                "process": proc("stopped", 3)}),
    );
    out.extend(bus_frame(
        "process:event",
        &json!({"event": "online", "manually": false, "at": at_ms + 40,
                             "process": proc("online", 4)}),
    ));
    out
}

/// GET with the token, for waiting on the daemon (the page finds the token itself).
fn search(d: &Daemon, query: &str) -> Value {
    let url = format!("http://{}/api/search?{query}", d.addr);
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    let mut resp = agent
        .get(&url)
        .header("Authorization", &format!("Bearer {TOKEN}"))
        .call()
        .expect("the daemon does not answer");
    let body = resp.body_mut().read_to_string().unwrap();
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{url}: not JSON ({e}): {body}"))
}

fn wait_total(d: &Daemon, query: &str, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let body = search(d, query);
        if body["total"].as_u64() == Some(n) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "expected {n} records for {query}, got {body}\n{}",
            d.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn artefact_dir() -> PathBuf {
    // CARGO_TARGET_TMPDIR is target/tmp: its parent is the target directory.
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("web-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn the_web_timeline_in_a_real_browser() {
    ensure_debian_package(CHROMIUM, "chromium", "the web test");
    ensure_node_deps();

    // A fake PM2 bus: it sends the crash and then stays connected, so no "bus lost"
    // marker of a third service appears.
    let pm2_home = tempfile::Builder::new().prefix("webpm2").tempdir().unwrap();
    let listener = UnixListener::bind(pm2_home.path().join("pub.sock")).unwrap();
    let now = Utc::now();
    let crash_at = now - chrono::Duration::minutes(4);
    let bus = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        std::io::Write::write_all(&mut conn, &crash_and_restart(crash_at.timestamp_millis()))
            .unwrap();
        // Until the daemon hangs up.
        let mut sink = Vec::new();
        let _ = conn.read_to_end(&mut sink);
    });

    // Two services over the last ten minutes: api every 20 s, worker every 30 s, and
    // worker's err lines around its crash.
    let p = Project::new("");
    let mut api = String::new();
    let mut worker = String::new();
    let mut worker_err = String::new();
    for i in 0..30 {
        let ts = now - chrono::Duration::seconds(600 - i * 20);
        let ts = ts.to_rfc3339_opts(SecondsFormat::Millis, true);
        api.push_str(&format!("{ts} GET /orders/{i} 200 in {}ms\n", 3 + i % 7));
        if i % 3 == 0 {
            worker.push_str(&format!("{ts} job {i} done in {}s\n", i % 4 + 1));
        }
    }
    for s in [250, 245] {
        let ts = (now - chrono::Duration::seconds(s)).to_rfc3339_opts(SecondsFormat::Millis, true);
        worker_err.push_str(&format!("{ts} Error: queue stalled at depth {s}\n"));
    }
    append(&p.log("api-out.log"), api);
    append(&p.log("worker-out.log"), worker);
    append(&p.log("worker-error.log"), worker_err);

    let mut d = p.start_with_env(&[
        ("LOGAGG_PM2_HOME", pm2_home.path().to_str().unwrap()),
        ("LOGAGG_API_TOKEN", TOKEN),
    ]);
    // 30 api + 10 worker + 2 err lines + 1 marker.
    wait_total(&d, "limit=1", 43);
    wait_total(&d, "limit=1&kind=marker", 1);

    let expect = json!({
        "token": TOKEN,
        "services": {"api": colour("api"), "worker": colour("worker")},
        "search": {
            "q": "queue stalled",
            "lines": ["Error: queue stalled at depth 250", "Error: queue stalled at depth 245"],
        },
        "crash": "worker crashed (exit code 3); restarted, restart #4",
        "live": {
            "file": p.log("api-out.log"),
            "lines": ["GET /live/first 201 in 1ms", "GET /live/second 201 in 2ms"],
        },
        "docs_screenshot": std::env::var("LOGAGG_WEB_DOCS_SCREENSHOT").ok(),
    });
    let artefacts = artefact_dir();
    let out = Command::new("node")
        .arg(Path::new(REPO).join("tests/web/drive.js"))
        .arg(format!("http://{}/", d.addr))
        .arg(&artefacts)
        .arg(expect.to_string())
        .env("CHROMIUM", CHROMIUM)
        .current_dir(REPO)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run node: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "tests/web/drive.js failed ({}); screenshots in {}\n--- stdout\n{stdout}\n--- stderr\n{stderr}\n--- daemon\n{}",
        out.status,
        artefacts.display(),
        d.stderr()
    );
    println!("{stdout}");

    d.terminate();
    // The bus thread ends when the daemon hangs up; it is not waited for.
    drop(bus);
}
