//! `/api/services`, `/api/histogram`, `/metrics` and the `services` and `stats` commands
//! against a real daemon: real files, and a fake PM2 bus (a `pub.sock` the test writes
//! events to) for the markers and PM2's status. Exact output lines and exit codes.

use std::io::Write;
use std::os::unix::net::{UnixListener, UnixStream};
use std::process::Output;
use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::{bus_frame, Daemon, Project};
use crate::search::seeded_with;

/// The lines of `search.rs`'s seeded project: two services, seven lines a minute apart.
/// They are days old: no age limit, so the files are rotated only when a test asks.
fn seeded() -> Project {
    seeded_with("[rotation]\nmax_age = \"\"")
}

/// A PM2 event at `at` (RFC 3339).
fn event(name: &str, event: &str, at: &str, status: &str, restarts: u64) -> Vec<u8> {
    let ms = chrono::DateTime::parse_from_rfc3339(at)
        .unwrap()
        .timestamp_millis();
    bus_frame(
        "process:event",
        &json!({"event": event, "manually": event != "exit", "at": ms,
                "process": {"name": name, "pm_id": 0, "status": status,
                            "exit_code": 3, "restart_time": restarts}}),
    )
}

/// The seeded project with a daemon whose PM2 bus is a socket of the test: duck crashed
/// and was restarted by PM2 at 10:03:30, api was stopped at 10:05:30. The connection is
/// returned so PM2 does not look gone.
fn running() -> (Project, Daemon, UnixStream) {
    let (p, d, conn, _) = running_with_bus();
    (p, d, conn)
}

/// [`running`], with the fake bus's listener, to accept the daemon's next connection.
fn running_with_bus() -> (Project, Daemon, UnixStream, UnixListener) {
    let p = seeded();
    let home = p.path().join("pm2");
    std::fs::create_dir_all(&home).unwrap();
    let listener = UnixListener::bind(home.join("pub.sock")).unwrap();
    let d = p.start_with_env(&[("LOGAGG_PM2_HOME", home.to_str().unwrap()), ("TZ", "UTC")]);
    let (mut conn, _) = listener.accept().unwrap();
    let mut bytes = event("duck", "exit", "2026-11-22T10:03:30Z", "stopped", 3);
    bytes.extend(event("duck", "online", "2026-11-22T10:03:31Z", "online", 4));
    bytes.extend(event("api", "exit", "2026-11-22T10:05:29Z", "stopping", 0));
    bytes.extend(event("api", "stop", "2026-11-22T10:05:30Z", "stopped", 0));
    conn.write_all(&bytes).unwrap();
    d.wait_total(&[], 9, 30);
    (p, d, conn, listener)
}

/// `logagg ARGS` against `d`, in UTC.
fn logagg(p: &Project, d: &Daemon, args: &[&str]) -> Output {
    p.command()
        .env("TZ", "UTC")
        .arg("--addr")
        .arg(&d.addr)
        .args(args)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

/// The body of `GET path` as text, with its content type.
fn get_text(d: &Daemon, path: &str) -> (u16, String, String) {
    let mut resp = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .new_agent()
        .get(format!("http://{}{}", d.addr, path))
        .call()
        .unwrap();
    let ctype = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let status = resp.status().as_u16();
    (status, ctype, resp.body_mut().read_to_string().unwrap())
}

#[test]
fn services_lists_files_lines_restarts_and_pm2_status() {
    let (p, d, _pm2) = running();
    let (status, body) = d.get("/api/services", &[]);
    assert_eq!(status, 200, "{body}");
    let duck = &body["services"][1];
    assert_eq!(duck["name"], "duck");
    assert_eq!(
        duck["files"],
        json!([
            {"path": p.log("duck-error.log").to_str().unwrap(), "stream": "err", "size": 98},
            {"path": p.log("duck-out.log").to_str().unwrap(), "stream": "out", "size": 122},
        ])
    );
    assert_eq!(duck["instances"], json!([]));
    assert_eq!(duck["lines"], 5);
    // The message bytes of its five lines: timestamps and newlines are not counted.
    assert_eq!(duck["bytes"], 13 + 34 + 9 + 32 + 22);
    assert_eq!(duck["last_ts"], "2026-11-22T10:06:00.000000Z");
    assert_eq!(duck["restarts"], 1);
    assert_eq!(duck["pm2_status"], "online");

    let out = logagg(&p, &d, &["services"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "SERVICE  PM2      INSTANCES  FILES     LINES  BYTES  LAST RECORD          RESTARTS\n\
         api      stopped  0          1 (95B)   2      51B    2026-11-22 10:05:30  0\n\
         duck     online   -          2 (220B)  5      110B   2026-11-22 10:06:00  1\n\
         2 services, 7 lines in the index\n"
    );
    let out = logagg(&p, &d, &["services", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let json: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(json, body);

    // Nothing answers: the same sentence and exit code as every client command.
    let out = p
        .command()
        .args(["--addr", "127.0.0.1:1", "services"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).starts_with("logagg: no logagg daemon answers at 127.0.0.1:1"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn stats_draws_a_row_per_service_and_lists_the_markers() {
    let (p, d, _pm2) = running();
    let range = [
        "--since",
        "2026-11-22T10:00:00Z",
        "--until",
        "2026-11-22T10:07:00Z",
        "--interval",
        "1m",
    ];
    let out = logagg(&p, &d, &[&["stats"][..], &range].concat());
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "lines per 1m from 2026-11-22 10:00:00 to 2026-11-22 10:07:00\n\
         api    2  ··█··█·\n\
         duck   5  ██·██·█\n\
         total  7\n\
         2 markers:\n\
         ──── 2026-11-22 10:03:30.000 duck crashed (exit code 3); restarted, restart #4 ────\n\
         ──── 2026-11-22 10:05:30.000 api stopped ────\n"
    );

    // A query and a service narrow the lines; the service also the markers.
    let out = logagg(&p, &d, &[&["stats", "--q", "timeout"][..], &range].concat());
    assert_eq!(
        stdout(&out).lines().take(4).collect::<Vec<_>>(),
        [
            "lines per 1m from 2026-11-22 10:00:00 to 2026-11-22 10:07:00",
            "api    1  ··█····",
            "duck   2  ·█·█···",
            "total  3",
        ]
    );
    let out = logagg(&p, &d, &[&["stats", "-s", "api"][..], &range].concat());
    assert_eq!(
        stdout(&out),
        "lines per 1m from 2026-11-22 10:00:00 to 2026-11-22 10:07:00\n\
         api    2  ··█··█·\n\
         total  2\n\
         1 marker:\n\
         ──── 2026-11-22 10:05:30.000 api stopped ────\n"
    );

    // --json is the API's answer.
    let out = logagg(&p, &d, &[&["stats", "--json"][..], &range].concat());
    assert_eq!(out.status.code(), Some(0));
    let json: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(json["interval_s"], 60);
    assert_eq!(json["total"], 7);
    assert_eq!(json["services"], json!(["api", "duck"]));
    assert_eq!(
        json["buckets"][6],
        json!({"ts": "2026-11-22T10:06:00.000000Z", "counts": {"duck": 1}})
    );

    // Nothing in the range: exit 1.
    let out = logagg(
        &p,
        &d,
        &[
            "stats",
            "--since",
            "2026-11-23T00:00:00Z",
            "--until",
            "2026-11-23T00:05:00Z",
            "--interval",
            "1m",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stdout(&out),
        "lines per 1m from 2026-11-23 00:00:00 to 2026-11-23 00:05:00\ntotal  0\n"
    );

    // The daemon's 400 is the error, exit 2.
    let out = logagg(
        &p,
        &d,
        &[
            "stats",
            "--since",
            "2026-11-20T00:00:00Z",
            "--until",
            "2026-11-22T00:00:00Z",
            "--interval",
            "1s",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out),
        "logagg: the daemon refused the request: parameter \"interval\": 172800 buckets \
         between since and until; at most 2000 (ask for a longer interval or a shorter range)\n"
    );
    let out = logagg(&p, &d, &["stats", "--since", "whenever"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("parameter \"since\": invalid time"),
        "{}",
        stderr(&out)
    );

    let out = p
        .command()
        .args(["--addr", "127.0.0.1:1", "stats"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).starts_with("logagg: no logagg daemon answers at 127.0.0.1:1"));
}

#[test]
fn histogram_and_metrics_over_http() {
    let (_p, d, pm2, listener) = running_with_bus();
    let (status, body) = d.get(
        "/api/histogram",
        &[
            ("since", "2026-11-22T10:00:00Z"),
            ("until", "2026-11-22T10:10:00Z"),
            ("interval", "5m"),
            ("service", "duck"),
        ],
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["buckets"],
        json!([
            {"ts": "2026-11-22T10:00:00.000000Z", "counts": {"duck": 4}},
            {"ts": "2026-11-22T10:05:00.000000Z", "counts": {"duck": 1}},
        ])
    );
    assert_eq!(body["markers"][0]["event"], "crash");
    assert_eq!(body["markers"][0]["kind"], "marker");
    let (status, body) = d.get("/api/histogram", &[("file", "/etc/passwd")]);
    assert_eq!(status, 400);
    assert_eq!(
        body["error"],
        "unknown parameter \"file\" (known: service, q, since, until, interval)"
    );

    // Searches are timed.
    d.search(&[("q", "timeout")]);
    let (status, ctype, text) = get_text(&d, "/metrics");
    assert_eq!(status, 200);
    assert_eq!(ctype, "text/plain; version=0.0.4");
    let lines: Vec<&str> = text.lines().collect();
    for want in [
        "logagg_lines_ingested_total{service=\"api\"} 2",
        "logagg_lines_ingested_total{service=\"duck\"} 5",
        "logagg_bytes_ingested_total{service=\"api\"} 51",
        "logagg_bytes_ingested_total{service=\"duck\"} 110",
        "logagg_rotations_total 0",
        "logagg_bus_reconnects_total 0",
        "logagg_followers 0",
        "# TYPE logagg_index_commit_seconds histogram",
    ] {
        assert!(lines.contains(&want), "{want:?} not in\n{text}");
    }
    let count = |name: &str| -> u64 {
        let prefix = format!("{name} ");
        lines
            .iter()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no {name} in\n{text}"))
            .parse()
            .unwrap()
    };
    assert!(count("logagg_index_commit_seconds_count") >= 1);
    // wait_total's searches and the one above.
    assert!(count("logagg_search_seconds_count") >= 2);

    // A rotation and a reconnection to PM2's bus are counted.
    let (code, rotated) = d.post("/api/rotate?service=api");
    assert_eq!(code, 200, "{rotated}");
    assert_eq!(rotated["rotated"][0]["error"], Value::Null, "{rotated}");
    drop(pm2);
    let (_pm2, _) = listener.accept().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let text = loop {
        let (_, _, text) = get_text(&d, "/metrics");
        if text.contains("\nlogagg_bus_reconnects_total 1\n")
            || std::time::Instant::now() > deadline
        {
            break text;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(text.contains("\nlogagg_rotations_total 1\n"), "{text}");
    assert!(text.contains("\nlogagg_bus_reconnects_total 1\n"), "{text}");
}
