//! The PM2 kit as a user runs it: the repository's own ecosystem.config.js through
//! `npm run start:all`, `start:prod`, `stop:all` and `logs`, and `make pm2-start` /
//! `pm2-stop`, with logagg and the duck demo under a real PM2. Each test has its own
//! `PM2_HOME`, its own root for `logs/` (`LOGAGG_KIT_ROOT`) and its own free port
//! (`LOGAGG_API_LISTEN`), so it never touches the repository's `logs/` or port 9171, and
//! its PM2 is killed when it ends, passed or not.

use std::collections::HashSet;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::daemon_harness::get_status;
use crate::harness::{read, run_bounded, wait_until, Pm2, REPO};

/// How long one `npm run` or `make` may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a test waits for PM2, logagg or duck to get somewhere.
const WAIT: Duration = Duration::from_secs(30);

/// A PM2 of our own plus what the ecosystem file reads from the caller's environment.
struct Kit {
    /// Killed (`pm2 kill`) on drop.
    pm2: Pm2,
    /// `LOGAGG_KIT_ROOT`: logs/pm2 and logs/logagg are created under it.
    root: PathBuf,
    /// `LOGAGG_API_LISTEN`.
    addr: String,
}

/// One app as `pm2 jlist` shows it.
#[derive(Debug)]
struct App {
    name: String,
    pid: i32,
    status: String,
    exit_code: Option<i64>,
    restarts: u64,
}

impl Kit {
    fn new() -> Kit {
        let pm2 = Pm2::start();
        let root = pm2.apps_dir();
        Kit {
            pm2,
            root,
            addr: format!("127.0.0.1:{}", free_port()),
        }
    }

    fn log(&self, file: &str) -> PathBuf {
        self.root.join("logs/pm2").join(file)
    }

    /// `program args` run in the repository root, as a user would, with a clean
    /// environment: what PM2 and npm need, the kit's overrides, and `extra`.
    fn command(&self, program: &str, args: &[&str], extra: &[(&str, &str)]) -> Command {
        let mut cmd = Command::new(program);
        cmd.args(args)
            .current_dir(REPO)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            // npm keeps its cache and logs under HOME: the test's directory, not the user's.
            .env("HOME", self.root.parent().unwrap())
            .env("PM2_HOME", self.pm2.home())
            .env("PM2_DISABLE_VERSION_CHECK", "true")
            .env("NO_COLOR", "1")
            .env("LOGAGG_BIN", env!("CARGO_BIN_EXE_logagg"))
            .env("LOGAGG_KIT_ROOT", &self.root)
            .env("LOGAGG_API_LISTEN", &self.addr)
            .envs(extra.iter().copied())
            .stdin(Stdio::null());
        cmd
    }

    /// Runs a command of [`Kit::command`] and fails the test unless it succeeds.
    fn run_ok(&self, program: &str, args: &[&str], extra: &[(&str, &str)]) -> Output {
        let what = format!("{program} {}", args.join(" "));
        let out = run(self.command(program, args, extra), &what);
        assert!(
            out.status.success(),
            "`{what}` failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn jlist(&self) -> Vec<App> {
        let out = self.pm2.pm2_ok(&["jlist"]);
        let list: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "pm2 jlist is not JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        });
        list.as_array()
            .unwrap()
            .iter()
            .map(|p| App {
                name: p["name"].as_str().unwrap().to_string(),
                pid: p["pid"].as_i64().unwrap_or(0) as i32,
                status: p["pm2_env"]["status"].as_str().unwrap().to_string(),
                exit_code: p["pm2_env"]["exit_code"].as_i64(),
                restarts: p["pm2_env"]["restart_time"].as_u64().unwrap_or(0),
            })
            .collect()
    }

    /// The environment PM2 gave an app (its `pm2_env`, where PM2 keeps the variables).
    fn pm2_env(&self, name: &str) -> Value {
        let out = self.pm2.pm2_ok(&["jlist"]);
        let list: Value = serde_json::from_slice(&out.stdout).unwrap();
        list.as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("no app {name} in pm2 jlist"))["pm2_env"]
            .clone()
    }

    /// Waits until PM2 lists exactly logagg and duck, both with `status`.
    fn wait_both(&self, status: &str) -> Vec<App> {
        let both = |apps: &[App]| {
            let mut names: Vec<&str> = apps.iter().map(|a| a.name.as_str()).collect();
            names.sort_unstable();
            names == ["duck", "logagg"] && apps.iter().all(|a| a.status == status)
        };
        let ok = wait_until(WAIT, || both(&self.jlist()));
        let apps = self.jlist();
        assert!(
            ok,
            "logagg and duck not both {status}: {apps:#?}\nlogagg's log:\n{}",
            read(&self.log("logagg-error.log"))
        );
        apps
    }

    /// Waits until logagg answers `/healthz` on the kit's address.
    fn wait_logagg_ready(&self) {
        let ok = wait_until(WAIT, || get_status(&self.addr, "/healthz") == Some(200));
        assert!(
            ok,
            "logagg does not answer on {}; its log:\n{}",
            self.addr,
            read(&self.log("logagg-error.log"))
        );
    }

    /// The first line duck wrote to its out file, without PM2's time prefix.
    fn wait_duck_first_line(&self) -> String {
        let path = self.log("duck-out.log");
        let ok = wait_until(WAIT, || !complete_lines(&read(&path)).is_empty());
        assert!(ok, "duck wrote no line to {}", path.display());
        let text = read(&path);
        let first = complete_lines(&text)[0];
        strip_time(first)
            .unwrap_or_else(|| panic!("no `time: true` prefix on duck's first line {first:?}"))
            .to_string()
    }

    fn get(&self, path: &str, query: &[(&str, &str)]) -> Value {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .new_agent();
        let mut req = agent.get(format!("http://{}{path}", self.addr));
        for (k, v) in query {
            req = req.query(*k, *v);
        }
        let mut resp = req.call().expect("logagg does not answer");
        let status = resp.status().as_u16();
        let body = resp.body_mut().read_to_string().unwrap();
        assert_eq!(status, 200, "GET {path} {query:?}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    /// Kills PM2 (`pm2 kill`) and checks that the daemon and every pid in `pids` are gone.
    fn kill_and_check_gone(&mut self, pids: &[i32]) {
        let daemon: i32 = read(&self.pm2.home().join("pm2.pid"))
            .trim()
            .parse()
            .expect("PM2 wrote no pm2.pid");
        self.pm2.kill();
        let mut all = pids.to_vec();
        all.push(daemon);
        let gone = wait_until(Duration::from_secs(10), || all.iter().all(|&p| !alive(p)));
        let left: Vec<i32> = all.into_iter().filter(|&p| alive(p)).collect();
        assert!(gone, "still running after `pm2 kill`: {left:?}");
    }
}

/// The pids of the online apps, all non-zero.
fn online_pids(apps: &[App]) -> Vec<i32> {
    let pids: Vec<i32> = apps.iter().map(|a| a.pid).collect();
    assert!(pids.iter().all(|&p| p > 0), "{apps:#?}");
    pids
}

fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only asks whether the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

/// A port nothing listens on right now, for logagg's API.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn run(cmd: Command, what: &str) -> Output {
    run_bounded(cmd, what, COMMAND_TIMEOUT)
}

/// The lines of `text` that end in a newline (a file read while PM2 writes it may end
/// in half a line).
fn complete_lines(text: &str) -> Vec<&str> {
    match text.rfind('\n') {
        Some(end) => text[..end].split('\n').collect(),
        None => Vec::new(),
    }
}

/// The line without PM2's `time: true` prefix (`2026-11-22T10:00:00: `), or None when
/// it has none.
fn strip_time(line: &str) -> Option<&str> {
    const SHAPE: &[u8] = b"dddd-dd-ddTdd:dd:dd: ";
    let b = line.as_bytes();
    if b.len() < SHAPE.len() {
        return None;
    }
    let fits = SHAPE.iter().zip(b).all(|(&s, &c)| match s {
        b'd' => c.is_ascii_digit(),
        _ => s == c,
    });
    fits.then(|| &line[SHAPE.len()..])
}

/// Every complete line of a log file, which must all carry the time prefix, without it.
fn messages_of(path: &Path) -> HashSet<String> {
    let text = read(path);
    complete_lines(&text)
        .into_iter()
        .map(|line| {
            strip_time(line)
                .unwrap_or_else(|| {
                    panic!("line without time prefix in {}: {line:?}", path.display())
                })
                .to_string()
        })
        .collect()
}

#[test]
fn kit_start_all_runs_logagg_and_duck_and_stop_all_stops_them() {
    let mut kit = Kit::new();
    // Values from the caller's shell reach duck through the ecosystem's env block.
    let fast = [("DUCK_INTERVAL_MS", "100"), ("DUCK_EXIT_AFTER_MS", "1500")];
    kit.run_ok("npm", &["run", "start:all"], &fast);
    kit.wait_both("online");
    kit.wait_logagg_ready();

    // duck's configuration line: the caller's two values, the development default level.
    assert_eq!(
        kit.wait_duck_first_line(),
        "duck starting: level=debug interval_ms=100 exit_after_ms=1500 env=development"
    );

    // The scheduled exit (code 3) is a crash to PM2, which restarts duck, and a crash
    // marker in logagg's timeline.
    let mut markers = Value::Null;
    let crashed = wait_until(WAIT, || {
        markers = kit.get(
            "/api/search",
            &[("service", "duck"), ("kind", "marker"), ("limit", "100")],
        );
        markers["hits"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["kind"] == "marker" && h["event"] == "crash" && h["exit_code"] == 3)
    });
    assert!(
        crashed,
        "no crash marker for duck: {markers:#}\nlogagg's log:\n{}",
        read(&kit.log("logagg-error.log"))
    );
    assert!(
        read(&kit.log("duck-error.log")).contains("ERROR duck: scheduled exit after 1500ms"),
        "{}",
        read(&kit.log("duck-error.log"))
    );
    let duck = kit.jlist().into_iter().find(|a| a.name == "duck").unwrap();
    assert!(duck.restarts >= 1, "PM2 did not restart duck: {duck:?}");

    // `npm run logs` is `logagg tail`: the last five records of duck, each one a line
    // of duck's files (time prefix stripped) or a marker.
    let mut records: Vec<Value> = Vec::new();
    let has_out = wait_until(WAIT, || {
        let out = kit.run_ok(
            "npm",
            &[
                "run",
                "--silent",
                "logs",
                "--",
                "--service",
                "duck",
                "--no-follow",
                "-n",
                "5",
                "--json",
            ],
            &[],
        );
        records = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}")))
            .collect();
        records.iter().any(|r| r["stream"] == "out")
    });
    assert!(
        has_out,
        "no line of duck's stdout in the tail: {records:#?}"
    );
    assert_eq!(records.len(), 5, "{records:#?}");
    // Read after the tail: the files only grow, so every line it showed is in them.
    let out_lines = messages_of(&kit.log("duck-out.log"));
    let err_lines = messages_of(&kit.log("duck-error.log"));
    for r in &records {
        assert_eq!(r["service"], "duck", "{r:#}");
        let message = r["message"].as_str().unwrap();
        match (r["kind"].as_str(), r["stream"].as_str()) {
            (Some("line"), Some("out")) => assert!(out_lines.contains(message), "{r:#}"),
            (Some("line"), Some("err")) => assert!(err_lines.contains(message), "{r:#}"),
            (Some("marker"), Some("event")) => {}
            _ => panic!("unexpected record {r:#}"),
        }
        if r["kind"] == "line" {
            assert_eq!(r["ts_source"], "line", "time prefix not parsed: {r:#}");
        }
    }

    // `npm run stop:all`: both stopped, logagg by its own clean exit (code 0) within
    // kill_timeout rather than by SIGKILL, and their processes gone.
    let pids = online_pids(&kit.wait_both("online"));
    kit.run_ok("npm", &["run", "stop:all"], &[]);
    let stopped = kit.wait_both("stopped");
    let logagg = stopped.iter().find(|a| a.name == "logagg").unwrap();
    assert_eq!(logagg.exit_code, Some(0), "{stopped:#?}");
    assert!(
        read(&kit.log("logagg-error.log")).contains("stopping: finishing reads and committing"),
        "{}",
        read(&kit.log("logagg-error.log"))
    );
    let gone = wait_until(Duration::from_secs(10), || pids.iter().all(|&p| !alive(p)));
    assert!(gone, "apps still running after stop:all: {pids:?}");

    kit.kill_and_check_gone(&pids);
}

#[test]
fn kit_start_prod_gives_duck_and_logagg_their_production_values() {
    let mut kit = Kit::new();
    kit.run_ok("npm", &["run", "start:prod"], &[]);
    let apps = kit.wait_both("online");
    kit.wait_logagg_ready();
    assert_eq!(
        kit.wait_duck_first_line(),
        "duck starting: level=info interval_ms=5000 exit_after_ms=3600000 env=production"
    );
    // logagg's env_production on top of its env block, and the caller's listen address.
    let env = kit.pm2_env("logagg");
    assert_eq!(env["NODE_ENV"], "production");
    assert_eq!(env["LOGAGG_INDEX_RETENTION"], "90d");
    assert_eq!(env["LOGAGG_ROTATION_MAX_SIZE"], "50MiB");
    assert_eq!(env["LOGAGG_API_LISTEN"], kit.addr.as_str());
    let data_dir = kit.root.join("logs/logagg");
    assert_eq!(env["LOGAGG_DATA_DIR"], data_dir.to_str().unwrap());
    assert!(
        data_dir.join("api.addr").exists(),
        "no index in {data_dir:?}"
    );
    kit.kill_and_check_gone(&online_pids(&apps));
}

#[test]
fn kit_make_pm2_start_and_pm2_stop() {
    let mut kit = Kit::new();
    let fast = [("DUCK_INTERVAL_MS", "200")];
    kit.run_ok("make", &["--no-print-directory", "pm2-start"], &fast);
    kit.wait_both("online");
    kit.wait_logagg_ready();
    assert_eq!(
        kit.wait_duck_first_line(),
        "duck starting: level=debug interval_ms=200 exit_after_ms=60000 env=development"
    );
    let status = kit.run_ok("make", &["--no-print-directory", "pm2-status"], &[]);
    let table = String::from_utf8_lossy(&status.stdout);
    assert!(
        table.contains("logagg") && table.contains("duck") && table.contains("online"),
        "{table}"
    );

    kit.run_ok("make", &["--no-print-directory", "pm2-stop"], &[]);
    let stopped = kit.wait_both("stopped");
    assert!(
        stopped.iter().all(|a| a.exit_code == Some(0)),
        "{stopped:#?}"
    );

    // Started again from stopped, then PM2 killed while both run: nothing is left.
    kit.run_ok("make", &["--no-print-directory", "pm2-start"], &fast);
    let apps = kit.wait_both("online");
    kit.wait_logagg_ready();
    kit.kill_and_check_gone(&online_pids(&apps));
}
