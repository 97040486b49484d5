//! `logagg tail` against a real daemon, as a user sees it: exact lines, exit codes, a
//! closed pipe, a daemon that is down, and one that restarts under a follow.

use std::process::Command;
use std::time::{Duration, Instant};

use chrono::{SecondsFormat, Utc};

use crate::harness::{append, bus_frame, metric, Daemon, Follow, Project, BIN};

/// Lines to wait for in a follow; generous, since CI machines stall.
const WAIT: Duration = Duration::from_secs(20);

/// Two services, three files, fixed times a minute apart.
fn seeded() -> Project {
    let p = Project::new("");
    append(
        &p.log("duck-out.log"),
        "2026-11-22T10:00:00: duck starting\n\
         2026-11-22T10:02:00: quack 1\n\
         2026-11-22T10:04:00: quack 2\n\
         2026-11-22T10:06:00: quack 3\n",
    );
    append(
        &p.log("duck-error.log"),
        "2026-11-22T10:05:00: ERROR upstream timeout\n",
    );
    append(
        &p.log("api-out-0.log"),
        "2026-11-22T10:01:00: api listening\n\
         2026-11-22T10:03:00: GET /users 200\n\
         2026-11-22T10:07:00: GET /orders 504\n",
    );
    p
}

fn tail_cmd(p: &Project, addr: &str, args: &[&str]) -> Command {
    let mut cmd = p.command();
    cmd.env("TZ", "UTC")
        .env_remove("NO_COLOR")
        .args(["--addr", addr, "tail"])
        .args(args);
    cmd
}

fn run(p: &Project, addr: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let out = tail_cmd(p, addr, args).output().unwrap();
    (
        out.status.code(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn started(p: &Project) -> Daemon {
    let d = p.start();
    d.wait_total(&[], 8, 20);
    d
}

#[test]
fn the_last_five_records_of_two_services_in_time_order() {
    let p = seeded();
    let d = started(&p);
    let (code, out, err) = run(&p, &d.addr, &["-n", "5", "--no-follow"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        out,
        "2026-11-22 10:03:00.000 api:0 out GET /users 200\n\
         2026-11-22 10:04:00.000 duck out quack 2\n\
         2026-11-22 10:05:00.000 duck err ERROR upstream timeout\n\
         2026-11-22 10:06:00.000 duck out quack 3\n\
         2026-11-22 10:07:00.000 api:0 out GET /orders 504\n"
    );
    // Filters, --raw and smart-case --grep.
    let (_, out, _) = run(
        &p,
        &d.addr,
        &["-n", "2", "--no-follow", "--service", "duck", "--raw"],
    );
    assert_eq!(out, "ERROR upstream timeout\nquack 3\n");
    let (_, out, _) = run(&p, &d.addr, &["--no-follow", "--grep", "get /"]);
    assert_eq!(
        out,
        "2026-11-22 10:03:00.000 api:0 out GET /users 200\n\
         2026-11-22 10:07:00.000 api:0 out GET /orders 504\n"
    );
    let (_, out, _) = run(&p, &d.addr, &["--no-follow", "--grep", "get /", "--raw"]);
    assert_eq!(out, "GET /users 200\nGET /orders 504\n");
    let (_, out, _) = run(&p, &d.addr, &["--no-follow", "--grep", "Get /"]);
    assert_eq!(out, "", "a capital letter makes --grep case-sensitive");
    let (_, out, _) = run(&p, &d.addr, &["--no-follow", "--stream", "err", "--raw"]);
    assert_eq!(out, "ERROR upstream timeout\n");
    let (_, out, _) = run(
        &p,
        &d.addr,
        &[
            "--raw",
            "--since",
            "2026-11-22T10:05:00Z",
            "--until",
            "2026-11-22T10:07:00Z",
        ],
    );
    assert_eq!(
        out, "ERROR upstream timeout\nquack 3\n",
        "--until stops by itself"
    );
}

#[test]
fn json_lines_are_search_hits() {
    let p = seeded();
    let d = started(&p);
    let (code, out, err) = run(&p, &d.addr, &["-n", "3", "--no-follow", "--json"]);
    assert_eq!(code, Some(0), "{err}");
    let hits: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let search = d.search(&[
        ("limit", "3"),
        ("order", "asc"),
        ("since", "2026-11-22T10:05:00Z"),
    ]);
    assert_eq!(hits, search["hits"].as_array().unwrap().clone());
    assert_eq!(hits[0]["ts"], "2026-11-22T10:05:00.000000Z");
    assert_eq!(hits[0]["stream"], "err");
    assert_eq!(hits[0]["level"], "error");
}

#[test]
fn colours_on_a_terminal_only_never_in_a_pipe_or_with_no_color() {
    let p = seeded();
    let d = started(&p);
    // Piped: no escape codes even without --no-color.
    let (_, out, _) = run(&p, &d.addr, &["-n", "8", "--no-follow"]);
    assert!(!out.contains('\x1b'), "{out:?}");

    // On a terminal (util-linux `script` gives the command a pty): the service in its
    // colour, `err` in bold red; none with NO_COLOR or --no-color.
    let on_tty = |env: &str, flag: &str| {
        let cmd = format!(
            "{env} TZ=UTC '{BIN}' --config '{}' --addr {} tail -n 2 --no-follow {flag}",
            p.path().join("logagg.toml").display(),
            d.addr
        );
        let out = Command::new("script")
            .args(["-qec", &cmd, "/dev/null"])
            .env_remove("NO_COLOR")
            .output()
            .expect("util-linux `script` is needed for the terminal test");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap().replace("\r\n", "\n")
    };
    let coloured = on_tty("", "");
    let lines: Vec<&str> = coloured.lines().collect();
    assert_eq!(lines.len(), 2, "{coloured:?}");
    let duck = lines[0]
        .strip_prefix("2026-11-22 10:06:00.000 \x1b[")
        .and_then(|rest| rest.strip_suffix("mduck\x1b[0m out quack 3"))
        .unwrap_or_else(|| panic!("{coloured:?}"));
    assert!(
        ["36", "32", "35", "33", "34", "96"].contains(&duck),
        "{coloured:?}"
    );
    assert!(
        lines[1].starts_with("2026-11-22 10:07:00.000 \x1b[")
            && lines[1].ends_with("mapi:0\x1b[0m out GET /orders 504"),
        "{coloured:?}"
    );
    let err = on_tty("", "--stream err -n 1");
    assert_eq!(
        err,
        format!("2026-11-22 10:05:00.000 \x1b[{duck}mduck\x1b[0m \x1b[1;31merr\x1b[0m ERROR upstream timeout\n")
    );
    let plain = "2026-11-22 10:06:00.000 duck out quack 3\n2026-11-22 10:07:00.000 api:0 out GET /orders 504\n";
    assert_eq!(on_tty("NO_COLOR=1", ""), plain);
    assert_eq!(on_tty("", "--no-color"), plain);
}

#[test]
fn a_follow_prints_appended_lines_as_they_come() {
    let p = seeded();
    let d = started(&p);
    let f = Follow::start(&p, &d.addr, &["-n", "1"]);
    assert_eq!(
        f.take(1),
        ["2026-11-22 10:07:00.000 api:0 out GET /orders 504"]
    );
    let now = Utc::now();
    append(
        &p.log("duck-error.log"),
        format!("{}: ERROR live and late\n", now.format("%Y-%m-%dT%H:%M:%S")),
    );
    let want = format!(
        "{} duck err ERROR live and late",
        now.format("%Y-%m-%d %H:%M:%S.000")
    );
    assert_eq!(f.take(1), [want]);
}

#[test]
fn a_closed_pipe_ends_a_follow_with_exit_0() {
    let p = seeded();
    let d = started(&p);
    // `head -1` reads one line and exits while the follow waits for more.
    let script = format!(
        "set -o pipefail; '{BIN}' --config '{}' --addr {} tail | head -1",
        p.path().join("logagg.toml").display(),
        d.addr
    );
    let start = Instant::now();
    let out = Command::new("bash")
        .args(["-c", &script])
        .env("TZ", "UTC")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "2026-11-22 10:00:00.000 duck out duck starting\n"
    );
    assert_eq!(String::from_utf8(out.stderr).unwrap(), "");
    assert!(start.elapsed() < WAIT);
}

#[test]
fn ctrl_c_ends_a_follow_with_exit_0() {
    let p = seeded();
    let d = started(&p);
    let mut f = Follow::start(&p, &d.addr, &["-n", "1"]);
    f.take(1);
    // SAFETY: kill(2) on the pid of a child we spawned and have not reaped.
    unsafe { libc::kill(f.child.id() as libc::pid_t, libc::SIGINT) };
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(s) = f.child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "SIGINT did not end the follow");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(status.code(), Some(0));
}

#[test]
fn no_daemon_is_one_line_and_exit_2() {
    let p = Project::new("");
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let (code, out, err) = run(&p, &addr, &[]);
    assert_eq!(code, Some(2), "{err}");
    assert_eq!(out, "");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(&format!("logagg: no logagg daemon answers at {addr}")),
        "{err}"
    );
    assert!(err.contains("logagg daemon"), "{err}");
}

#[test]
fn a_bad_grep_is_the_daemons_400_and_exit_2() {
    let p = seeded();
    let d = started(&p);
    let (code, out, err) = run(&p, &d.addr, &["--grep", "(unclosed", "--no-follow"]);
    assert_eq!(code, Some(2));
    assert_eq!(out, "");
    assert!(err.starts_with("logagg: "), "{err}");
    assert!(
        err.contains("parameter \"grep\": not a regular expression"),
        "{err}"
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Lines of one writer are numbered; between them the daemon is killed (-9, so some
/// records were shown but never committed and are read again after the restart) and
/// stopped (SIGTERM), and lines are written while it is down. The follow must print
/// every number once, in order.
#[test]
fn a_daemon_restart_under_a_follow_neither_repeats_nor_skips() {
    let p = Project::new("");
    let addr = format!("127.0.0.1:{}", free_port());
    let env = [("LOGAGG_API_LISTEN", addr.as_str())];
    let mut d = p.start_with_env(&env);
    let write = |from: u32, to: u32| {
        for i in from..to {
            let ts = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
            append(&p.log("seq-out.log"), format!("{ts}: seq {i}\n"));
        }
    };
    let expect =
        |from: u32, to: u32| -> Vec<String> { (from..to).map(|i| format!("seq {i}")).collect() };

    write(0, 1);
    d.wait_total(&[], 1, 20);
    let f = Follow::start(&p, &addr, &["-n", "1", "--raw"]);
    // The backlog's line shows the follow is connected.
    assert_eq!(f.take(1), expect(0, 1));
    write(1, 100);
    assert_eq!(f.take(99), expect(1, 100));
    write(100, 150);
    d.kill9();
    write(150, 200);
    d = p.start_with_env(&env);
    write(200, 250);
    assert_eq!(f.take(150), expect(100, 250));
    let (status, _) = d.terminate();
    assert_eq!(status.code(), Some(0));
    write(250, 300);
    let _d = p.start_with_env(&env);
    write(300, 350);
    assert_eq!(f.take(100), expect(250, 350));
    // Nothing more: no late repeat.
    assert!(
        f.lines.recv_timeout(Duration::from_millis(1500)).is_err(),
        "a line came twice"
    );
}

/// PM2 sends an app's line on its bus before it writes it to the file. With a bus of the
/// test's own, in a fixed order: once the file and the bus agree, a line announced on the
/// bus is shown before the file has it, and its file copy is indexed under the same time
/// and place without being shown again; a line in the file that the bus never announced
/// is shown from the file, and the next bus line waits for its file copy. A line's own
/// timestamp prefix and CRLF ending come out as they do from the file.
#[test]
fn a_line_from_pm2s_bus_is_shown_before_its_file_has_it_and_only_once() {
    use std::io::Write;
    let p = Project::new("");
    let file = p.log("duck-out.log");
    append(&file, "a 0\n");
    let home = p.path().join("pm2");
    std::fs::create_dir_all(&home).unwrap();
    let listener = std::os::unix::net::UnixListener::bind(home.join("pub.sock")).unwrap();
    let d = p.start_with_env(&[("LOGAGG_PM2_HOME", home.to_str().unwrap()), ("TZ", "UTC")]);
    let (mut bus, _) = listener.accept().unwrap();
    d.wait_total(&[("service", "duck")], 1, 30);
    let f = Follow::start(&p, &d.addr, &["-n", "0", "--json", "--service", "duck"]);
    let connected = crate::harness::wait_until(WAIT, || metric(&d, "logagg_followers") == 1);
    assert!(connected, "the follower never connected");
    let mut say = |line: &str| {
        let payload = serde_json::json!({
            "process": {"name": "duck", "pm_id": 0, "namespace": "default"},
            "at": 1_795_314_995_219i64,
            "data": format!("{line}\n"),
        });
        bus.write_all(&bus_frame("log:out", &payload)).unwrap();
    };
    let next = |f: &Follow| -> serde_json::Value { serde_json::from_str(&f.take(1)[0]).unwrap() };
    let quiet = |f: &Follow| {
        f.lines
            .recv_timeout(Duration::from_millis(500))
            .err()
            .is_some()
    };

    // Not yet in step: the first announced line waits for its file copy.
    say("a 1");
    assert!(
        quiet(&f),
        "shown before the file and the bus were seen to agree"
    );
    append(&file, "a 1\n");
    assert_eq!(next(&f)["message"], "a 1");

    // In step: shown from the bus alone, then its file copy is not shown again.
    let mut shown = Vec::new();
    for line in ["a 2", "a 3"] {
        say(line);
        let hit = next(&f);
        assert_eq!(hit["message"], line);
        assert!(!std::fs::read_to_string(&file).unwrap().contains(line));
        append(&file, format!("{line}\n"));
        shown.push(hit);
    }
    assert!(quiet(&f), "a line shown twice");

    // A line the bus never announced: shown from the file; the next bus line waits.
    append(&file, "from elsewhere\n");
    assert_eq!(next(&f)["message"], "from elsewhere");
    say("a 4");
    assert!(quiet(&f), "shown early while out of step");
    append(&file, "a 4\n");
    assert_eq!(next(&f)["message"], "a 4");
    assert!(quiet(&f), "a line shown twice");

    // PM2's `time: true` prefix and a CRLF ending: shown early with the prefix's time,
    // without the prefix and the CR, as its file copy is read.
    say("2026-11-22T10:00:00: a 5\r");
    let hit = next(&f);
    assert_eq!(hit["message"], "a 5");
    assert_eq!(hit["ts"], "2026-11-22T10:00:00.000000Z");
    assert_eq!(hit["ts_source"], "line");
    append(&file, "2026-11-22T10:00:00: a 5\r\n");
    shown.push(hit);
    assert!(quiet(&f), "a line shown twice");

    let body = d.wait_total(&[("service", "duck"), ("order", "asc")], 7, 30);
    let messages: Vec<&str> = body["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["message"].as_str().unwrap())
        .collect();
    assert_eq!(
        messages,
        ["a 5", "a 0", "a 1", "a 2", "a 3", "from elsewhere", "a 4"]
    );
    for seen in &shown {
        let stored = body["hits"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["message"] == seen["message"])
            .unwrap();
        assert_eq!(seen, stored, "shown early vs indexed");
    }
    assert_eq!(metric(&d, "logagg_early_lines_total"), 3);
    assert_eq!(metric(&d, "logagg_early_lines_reshown_total"), 0);
}
