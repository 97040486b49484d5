//! Restart and crash markers from PM2's bus: a real PM2 crashing, restarting, stopping,
//! reloading and being killed under a running logagg, the app's secret never leaving
//! PM2, and a fake `pub.sock` that sends garbage.

use std::io::Write;
use std::os::unix::net::UnixListener;
use std::time::Duration;

use serde_json::{json, Value};

use crate::daemon_harness::{bus_frame, get_status, Daemon, Project};
use crate::harness::{wait_until, AppSpec, Pm2};

const SECRET: &str = "hunter2-xyz";

/// A logagg following PM2's own log directory and listening to its bus, debug logging
/// on (so a leak into the daemon's log would show), connected before it returns.
pub(crate) fn start_logagg(p: &Project, pm2: &Pm2) -> Daemon {
    let logs = format!("{}/logs/*.log", pm2.home().display());
    let d = p.start_with_env(&[
        ("LOGAGG_PM2_HOME", pm2.home().to_str().unwrap()),
        ("LOGAGG_SOURCES_PATHS", &logs),
        ("LOGAGG_LOG", "debug,tantivy=warn"),
    ]);
    wait_connected(&d, 1);
    d
}

/// Waits until the daemon has logged `n` connections to the bus.
fn wait_connected(d: &Daemon, n: usize) {
    let ok = wait_until(Duration::from_secs(15), || {
        d.stderr().matches("connected to PM2's bus").count() >= n
    });
    assert!(ok, "no connection #{n} to the bus:\n{}", d.stderr());
}

/// `/api/events` for `service`, oldest first.
fn events(d: &Daemon, service: &str) -> Vec<Value> {
    let (status, body) = d.get("/api/events", &[("service", service), ("limit", "1000")]);
    assert_eq!(status, 200, "{body}");
    let mut list = body["events"].as_array().unwrap().clone();
    list.reverse();
    list
}

/// Polls until `check` accepts the service's events; fails with them otherwise.
fn wait_events(
    d: &Daemon,
    service: &str,
    secs: u64,
    check: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let ok = wait_until(Duration::from_secs(secs), || check(&events(d, service)));
    let list = events(d, service);
    assert!(
        ok,
        "events of {service}: {list:#?}\ndaemon log:\n{}",
        d.stderr()
    );
    list
}

fn of_kind<'a>(list: &'a [Value], event: &str) -> Vec<&'a Value> {
    list.iter().filter(|e| e["event"] == event).collect()
}

/// Starts `name` running `source` with autorestart and the secret in its environment.
pub(crate) fn start_crashing_app(pm2: &Pm2, name: &str, source: &str, extra: Value) {
    let script = pm2.apps_dir().join(format!("{name}.js"));
    std::fs::write(&script, source).unwrap();
    let mut app = json!({
        "name": name,
        "script": script,
        "cwd": pm2.apps_dir(),
        "autorestart": true,
        "min_uptime": 100,
        "env": {"SECRET_TOKEN": SECRET},
    });
    for (k, v) in extra.as_object().unwrap() {
        app[k] = v.clone();
    }
    let eco = pm2.apps_dir().join(format!("{name}.ecosystem.json"));
    std::fs::write(&eco, json!({ "apps": [app] }).to_string()).unwrap();
    pm2.pm2_ok(&["start", eco.to_str().unwrap()]);
}

/// Every API answer and the daemon's log, as text.
fn everything_visible(d: &Daemon) -> String {
    let mut all = String::new();
    for (path, query) in [
        ("/api/search", vec![("limit", "10000")]),
        ("/api/search", vec![("kind", "marker"), ("limit", "10000")]),
        ("/api/search", vec![("q", SECRET), ("limit", "10000")]),
        ("/api/events", vec![("limit", "10000")]),
        ("/api/status", vec![]),
    ] {
        let (_, body) = d.get(path, &query);
        all.push_str(&body.to_string());
    }
    all.push_str(&d.stderr());
    all
}

#[test]
fn crash_loop_restart_and_stop_markers_without_the_secret() {
    let pm2 = Pm2::start();
    let p = Project::new("");
    let d = start_logagg(&p, &pm2);

    // Up for a second, then exit code 3; PM2 restarts it each time.
    start_crashing_app(
        &pm2,
        "crasher",
        "console.log('crasher up'); setTimeout(() => process.exit(3), 1000);",
        json!({}),
    );
    let list = wait_events(&d, "crasher", 30, |l| of_kind(l, "crash").len() >= 3);
    let crashes = of_kind(&list, "crash");
    let mut last = 0;
    for c in &crashes {
        assert_eq!(c["exit_code"], 3, "{c}");
        assert_eq!(c["manual"], false, "{c}");
        assert_eq!(c["instance"], 0, "{c}");
        let n = c["restart_count"].as_u64().unwrap();
        assert!(n > last, "restart counts must grow: {crashes:#?}");
        last = n;
        assert_eq!(
            c["message"],
            format!("crasher crashed (exit code 3); restarted, restart #{n}")
        );
    }
    // The markers sit among the app's lines in the timeline.
    let body = d.search(&[("service", "crasher"), ("limit", "1000"), ("order", "asc")]);
    let kinds: Vec<&str> = body["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"line") && kinds.contains(&"marker"),
        "{kinds:?}"
    );
    let marker = d.search(&[("service", "crasher"), ("kind", "marker"), ("limit", "1")]);
    let hit = &marker["hits"][0];
    assert_eq!(
        (hit["stream"].as_str(), hit["ts_source"].as_str()),
        (Some("event"), Some("event"))
    );
    pm2.pm2_ok(&["delete", "crasher"]);

    // A manual restart and a stop of an app that does not crash.
    pm2.start_say_app(&AppSpec::fork("duck"));
    wait_events(&d, "duck", 15, |l| !of_kind(l, "start").is_empty());
    pm2.pm2_ok(&["restart", "duck"]);
    let list = wait_events(&d, "duck", 15, |l| !of_kind(l, "restart").is_empty());
    let restart = of_kind(&list, "restart")[0];
    assert_eq!(restart["manual"], true, "{restart}");
    assert_eq!(restart["restart_count"], 1, "{restart}");
    assert_eq!(restart["message"], "duck restarted, restart #1");
    pm2.pm2_ok(&["stop", "duck"]);
    let list = wait_events(&d, "duck", 15, |l| !of_kind(l, "stop").is_empty());
    assert_eq!(of_kind(&list, "stop")[0]["message"], "duck stopped");
    let names: Vec<&str> = list.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(names, ["start", "restart", "stop"], "{list:#?}");

    let seen = everything_visible(&d);
    assert!(seen.contains("crasher up"), "the lines are indexed");
    assert!(!seen.contains(SECRET), "the secret leaked:\n{seen}");
    assert!(!seen.contains("SECRET_TOKEN"), "the env leaked:\n{seen}");
}

#[test]
fn restart_overlimit_says_pm2_gave_up() {
    let pm2 = Pm2::start();
    let p = Project::new("");
    let d = start_logagg(&p, &pm2);
    start_crashing_app(
        &pm2,
        "quitter",
        "process.exit(2);",
        json!({"min_uptime": 5000, "max_restarts": 3}),
    );
    let list = wait_events(&d, "quitter", 30, |l| !of_kind(l, "overlimit").is_empty());
    let over = of_kind(&list, "overlimit")[0];
    assert_eq!(over["exit_code"], 2, "{over}");
    assert!(
        over["message"]
            .as_str()
            .unwrap()
            .ends_with("PM2 gave up restarting it"),
        "{over}"
    );
    assert!(!everything_visible(&d).contains(SECRET));
}

#[test]
fn cluster_reload_gives_one_marker_per_worker() {
    let pm2 = Pm2::start();
    let p = Project::new("");
    let d = start_logagg(&p, &pm2);
    pm2.start_say_app(&AppSpec::cluster("api", 2));
    wait_events(&d, "api", 15, |l| of_kind(l, "start").len() == 2);
    pm2.pm2_ok(&["reload", "api"]);
    let list = wait_events(&d, "api", 30, |l| of_kind(l, "reload").len() == 2);
    let mut instances: Vec<u64> = of_kind(&list, "reload")
        .iter()
        .map(|e| {
            assert_eq!(e["manual"], true, "{e}");
            assert_eq!(e["restart_count"], 1, "{e}");
            e["instance"].as_u64().unwrap()
        })
        .collect();
    instances.sort();
    assert_eq!(instances, [0, 1]);
    assert!(of_kind(&list, "crash").is_empty(), "{list:#?}");
}

#[test]
fn pm2_killed_and_started_again_while_logagg_runs() {
    let pm2 = Pm2::start();
    let p = Project::new("");
    let d = start_logagg(&p, &pm2);
    // Not `Pm2::kill`: the harness must still kill the second daemon when it is dropped.
    pm2.pm2_ok(&["kill"]);
    wait_events(&d, "pm2", 15, |l| !of_kind(l, "pm2-kill").is_empty());
    let ok = wait_until(Duration::from_secs(10), || {
        d.stderr().contains("lost PM2's bus")
    });
    assert!(ok, "{}", d.stderr());

    pm2.pm2_ok(&["ping"]);
    wait_connected(&d, 2);
    pm2.start_say_app(&AppSpec::fork("late"));
    let list = wait_events(&d, "late", 15, |l| !of_kind(l, "start").is_empty());
    assert_eq!(list[0]["message"], "late started");
    // One line for the outage, not one per attempt.
    assert_eq!(
        d.stderr().matches("lost PM2's bus").count(),
        1,
        "{}",
        d.stderr()
    );
}

fn start_event(name: &str) -> Vec<u8> {
    bus_frame(
        "process:event",
        &json!({"event": "start", "manually": true, "at": 1_795_314_995_000u64,
                "process": {"name": name, "pm_id": 0, "restart_time": 0, "SECRET_TOKEN": SECRET}}),
    )
}

#[test]
fn a_fake_bus_sending_garbage_truncated_and_oversized_frames() {
    let home = tempfile::Builder::new()
        .prefix("fakepm2")
        .tempdir()
        .unwrap();
    let listener = UnixListener::bind(home.path().join("pub.sock")).unwrap();
    let p = Project::new("");
    let d = p.start_with_env(&[
        ("LOGAGG_PM2_HOME", home.path().to_str().unwrap()),
        ("LOGAGG_LOG", "debug,tantivy=warn"),
    ]);

    // 1: good, then frames that are well cut but wrong, good again, then half a frame.
    let (mut conn, _) = listener.accept().unwrap();
    let mut bytes = start_event("alpha");
    let mut bad_json = vec![0x12];
    for arg in [&b"s:process:event"[..], &b"j:{not json"[..]] {
        bad_json.extend_from_slice(&(arg.len() as u32).to_be_bytes());
        bad_json.extend_from_slice(arg);
    }
    bytes.extend(bad_json);
    bytes.extend(bus_frame("no:such:topic", &json!({})));
    bytes.extend(bus_frame("process:event", &json!({"event": "exit"})));
    bytes.extend(bus_frame("process:event", &json!("hunter2-xyz")));
    bytes.extend([0x11, 0, 0, 0, 2, b'h', b'i']); // one argument, not two
    bytes.extend(start_event("beta"));
    bytes.extend([0x12, 0, 0, 0, 100, b's', b':']); // cut off
    conn.write_all(&bytes).unwrap();
    drop(conn);

    // 2: a frame that says it is 4 GiB long; 3: not amp at all. logagg hangs up on both.
    for junk in [vec![0x12, 0xff, 0xff, 0xff, 0xf0, b's'], vec![0xff; 64]] {
        let (mut conn, _) = listener.accept().unwrap();
        conn.write_all(&junk).unwrap();
        // Held open: logagg must be the one to hang up.
        let mut buf = [0u8; 1];
        let _ = std::io::Read::read(&mut conn, &mut buf);
    }

    // 4: still listening, still recording.
    let (mut conn, _) = listener.accept().unwrap();
    conn.write_all(&start_event("gamma")).unwrap();
    for name in ["alpha", "beta", "gamma"] {
        let list = wait_events(&d, name, 15, |l| l.len() == 1);
        assert_eq!(list[0]["message"], format!("{name} started"));
    }
    assert_eq!(get_status(&d.addr, "/healthz"), Some(200));
    let gamma = &events(&d, "gamma")[0];
    let mut keys: Vec<&String> = gamma.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "event",
            "exit_code",
            "instance",
            "manual",
            "message",
            "restart_count",
            "service",
            "ts"
        ]
    );
    assert_eq!(
        (
            &gamma["event"],
            &gamma["manual"],
            &gamma["restart_count"],
            &gamma["exit_code"]
        ),
        (&json!("start"), &json!(true), &json!(0), &Value::Null)
    );
    for (query, error) in [
        (("limit", "0"), "parameter \"limit\": must be at least 1"),
        (("since", "soon"), "parameter \"since\""),
        (("kind", "line"), "unknown parameter \"kind\""),
    ] {
        let (status, body) = d.get("/api/events", &[query]);
        assert_eq!(status, 400, "{query:?}: {body}");
        assert!(body["error"].as_str().unwrap().starts_with(error), "{body}");
    }
    let log = d.stderr();
    assert!(log.contains("skipped a malformed PM2 bus message"), "{log}");
    assert!(log.contains("unusable data"), "{log}");
    // One warning for the outage; the garbage peer's reconnections are debug lines.
    let warned = log
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("lost PM2's bus"))
        .count();
    assert_eq!(warned, 1, "{log}");
    assert!(!log.contains("panicked"), "{log}");
    assert!(!everything_visible(&d).contains(SECRET));
    // The first connection ended by PM2's side: one marker; the two logagg cut: none.
    assert_eq!(of_kind(&events(&d, "pm2"), "pm2-lost").len(), 1);
    drop(conn);
}

#[test]
fn an_uncaught_exception_reaches_the_err_stream_with_its_stack() {
    let pm2 = Pm2::start();
    let p = Project::new("");
    let d = start_logagg(&p, &pm2);
    start_crashing_app(
        &pm2,
        "thrower",
        "setTimeout(() => { throw new Error('kaboom-7'); }, 300);",
        json!({"autorestart": false, "exec_mode": "cluster", "instances": 1}),
    );
    let from_bus = |body: &Value| -> Vec<Value> {
        body["hits"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|h| h["file"].as_str().unwrap().ends_with("pub.sock"))
            .cloned()
            .collect()
    };
    let ok = wait_until(Duration::from_secs(15), || {
        !from_bus(&d.search(&[("q", "kaboom"), ("stream", "err")])).is_empty()
    });
    let body = d.search(&[("q", "kaboom"), ("stream", "err")]);
    assert!(ok, "{body:#}\n{}", d.stderr());
    let hit = &from_bus(&body)[0];
    let message = hit["message"].as_str().unwrap();
    assert!(message.starts_with("Error: kaboom-7\n"), "{message}");
    assert!(message.contains("thrower.js"), "{message}");
    assert_eq!(
        (
            hit["service"].as_str(),
            hit["level"].as_str(),
            hit["kind"].as_str()
        ),
        (Some("thrower"), Some("error"), Some("line"))
    );
    assert!(!everything_visible(&d).contains(SECRET));
}
