//! Rotation beside a real PM2: apps writing numbered lines at 6,000 lines a second are
//! rotated by `reloadLogs` at least twenty times; the archives, read in name order and
//! followed by the live file, hold every line exactly once, and so does the index, also
//! when the daemon is killed with -9 while it rotates and compresses.

use std::time::Duration;

use crate::daemon_harness::{
    all_messages, archives, archives_then_live, assert_exact_sequence, assert_indexed_once,
    ensure_debian_package, file_status, metric, Daemon, Project,
};
use crate::harness::{wait_until, AppSpec, Pm2};

/// Lines per process.
const N: u64 = 60_000;
/// Lines per cluster instance: 20 s of writing. Collapse archives only what the index
/// has committed, so a file is rotated at most once per commit however fast it grows,
/// and the count depends on how long the app writes: with 10 s, 27 to 39 rotations in
/// most runs, but 12 in one CI run where the suite's other PM2 tests shared the cores.
const CLUSTER_N: u64 = 120_000;

/// Writes `seq=0000000` .. `seq=N-1` (prefixed by its pm_id in cluster mode), 60 lines
/// every 10 ms, then exits.
const SEQ_APP: &str = r#"
const n = Number(process.env.SEQ_LINES || 60000);
const tag = process.env.SEQ_TAG === 'id' ? `i${process.env.pm_id} ` : '';
let seq = 0;
const t = setInterval(() => {
  let buf = '';
  for (let i = 0; i < 60 && seq < n; i++, seq++) {
    buf += `${tag}seq=${String(seq).padStart(7, '0')}\n`;
  }
  process.stdout.write(buf);
  if (seq >= n) { clearInterval(t); setTimeout(() => process.exit(0), 500); }
}, 10);
"#;

fn fork_line(i: u64) -> String {
    format!("seq={i:07}")
}

/// Logagg configured to rotate PM2's files at 16 KiB (the 720 KB each app writes make
/// at least 40 rotations), keeping every archive.
fn project() -> Project {
    project_with("")
}

/// [`project`] with more `[rotation]` keys.
fn project_with(rotation: &str) -> Project {
    Project::new(&format!(
        "[rotation]\nmax_size = \"16KiB\"\nmax_age = \"\"\nretain = 0\nmax_archive_age = \"\"\n{rotation}"
    ))
}

/// `bus`: whether logagg listens to PM2's bus (which `reload` needs to put back the
/// writes PM2 drops when it reopens its files).
fn start_daemon(p: &Project, pm2: &Pm2, bus: bool) -> Daemon {
    p.start_with_env(&[
        ("LOGAGG_PM2_HOME", pm2.home().to_str().unwrap()),
        ("LOGAGG_PM2_BUS", if bus { "true" } else { "false" }),
    ])
}

fn wait_app_stopped(pm2: &Pm2, name: &str) {
    let done = wait_until(Duration::from_secs(60), || {
        let out = pm2.pm2_ok(&["jlist"]);
        let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        list.as_array().is_some_and(|apps| {
            apps.iter()
                .filter(|a| a["name"] == name)
                .all(|a| a["pm2_env"]["status"] == "stopped")
        })
    });
    assert!(done, "{name} did not finish writing in 60s");
}

/// `method`: the configured rotation method, and the one `/api/status` must report.
fn run_fork(kills: usize, method: &str) {
    run_fork_with(kills, method, false);
}

/// `slow_disk`: PM2's file writes are made to lag (see [`SlowWrites`]).
fn run_fork_with(kills: usize, method: &str, slow_disk: bool) {
    let p = project_with(&format!("method = \"{method}\""));
    let mut pm2 = Pm2::start();
    let bus = method == "reload";
    let mut d = start_daemon(&p, &pm2, bus);
    let live = p.log("seq-out.log");
    let spec = AppSpec {
        out_file: Some(live.clone()),
        error_file: Some(p.log("seq-error.log")),
        ..AppSpec::fork("seq")
    };
    let slow = slow_disk.then(|| SlowWrites::attach(&pm2));
    pm2.start_app(&spec, SEQ_APP);
    for _ in 0..kills {
        std::thread::sleep(Duration::from_millis(2500));
        d.kill9();
        d = start_daemon(&p, &pm2, bus);
    }
    wait_app_stopped(&pm2, "seq");
    drop(slow);
    let archive_dir = p.path().join("logs/pm2/archive");
    // The last archive is compressed once its file is quiet and committed.
    wait_until(Duration::from_secs(20), || {
        archives(&archive_dir, "seq-out")
            .iter()
            .all(|a| a.to_string_lossy().ends_with(".gz"))
    });
    let rotated = archives(&archive_dir, "seq-out");
    assert!(
        rotated.len() >= 20,
        "only {} rotations; daemon log:\n{}",
        rotated.len(),
        tail(&d.stderr())
    );
    for a in &rotated {
        assert!(
            a.to_string_lossy().ends_with(".log.gz"),
            "{a:?} not compressed"
        );
    }
    // The files first: a line missing there was lost by the rotation, not the index.
    // With `reload`, PM2 drops the write it still queues when it reopens (more often on
    // a loaded machine); logagg puts it back from the bus, and says so in /metrics.
    assert_exact_sequence(
        &archives_then_live(&archive_dir, "seq-out", &live),
        N,
        fork_line,
    );
    assert_indexed_once(&d, N, fork_line);
    if bus {
        let put_back = metric(&d, "logagg_reload_put_back_bytes_total");
        eprintln!("bytes PM2 dropped and logagg put back: {put_back}");
        // With its writes lagging, PM2 drops a queued write at nearly every reload: if
        // it never did, this test did not test the put-back.
        assert!(
            !slow_disk || put_back > 0,
            "PM2 dropped nothing although its writes lagged"
        );
    }
    let (_, status) = d.get("/api/status", &[]);
    let file = file_status(&status, &live);
    let expected = if method == "auto" { "collapse" } else { method };
    assert_eq!(file["last_method"], expected, "{status:#}");
    assert_eq!(file["copytruncate_lost_bytes"], 0);
    pm2.kill();
}

#[test]
fn a_fork_app_at_6000_lines_a_second_is_rotated_by_reload_without_losing_a_line() {
    run_fork(0, "reload");
}

/// PM2's `reloadLogs` destroys the old write stream with the write it still queues.
/// Here PM2's disk writes lag 30 ms (its libuv threads' `write`s are delayed by strace)
/// while the app writes every 10 ms, so a write is queued at every reload: logagg puts
/// each dropped write back from PM2's bus, and the files and the index hold every line
/// once. (Seen by hand: 22 of 40 rotations dropped a write, 1,920 lines in all.)
#[test]
fn writes_pm2_drops_at_reload_when_its_disk_lags_are_put_back() {
    run_fork_with(0, "reload", true);
}

/// Delays every `write` of the PM2 daemon's threads but its main one (the libuv
/// threads that write the log files; the main thread writes the bus and the RPC
/// replies) by 30 ms, through strace, until dropped.
struct SlowWrites {
    strace: std::process::Child,
}

impl SlowWrites {
    fn attach(pm2: &Pm2) -> SlowWrites {
        ensure_debian_package("/usr/bin/strace", "strace", "the slow-disk rotation test");
        let pid: u32 = std::fs::read_to_string(pm2.home().join("pm2.pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let threads: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
            .unwrap()
            .flatten()
            .map(|t| t.file_name().to_string_lossy().into_owned())
            .filter(|t| *t != pid.to_string())
            .collect();
        assert!(!threads.is_empty(), "PM2's daemon has no threads");
        let mut cmd = std::process::Command::new("/usr/bin/strace");
        cmd.args(["-qq", "-o", "/dev/null", "-e", "trace=write,pwrite64"])
            .args(["-e", "inject=write:delay_enter=30000"])
            .args(["-e", "inject=pwrite64:delay_enter=30000"]);
        for t in &threads {
            cmd.args(["-p", t]);
        }
        let strace = cmd
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("cannot start strace");
        // strace attaches before its first report; a moment is enough.
        std::thread::sleep(Duration::from_millis(500));
        SlowWrites { strace }
    }
}

impl Drop for SlowWrites {
    fn drop(&mut self) {
        // SIGTERM: strace detaches from every thread before it exits.
        unsafe { libc::kill(self.strace.id() as i32, libc::SIGTERM) };
        let _ = self.strace.wait();
    }
}

#[test]
fn kill_9_while_rotating_and_compressing_loses_and_doubles_nothing() {
    // `auto` collapses where the file system can (ext4, XFS).
    run_fork(3, "auto");
}

/// Cluster workers hold their own log files, and PM2 7.0.4's `reloadLogs` makes them
/// destroy the old stream with writes in flight (`ERR_STREAM_DESTROYED`, a chunk lost).
/// So `auto` rotates a cluster app's files by collapse, which needs nothing from PM2.
#[test]
fn every_instance_of_a_cluster_app_is_rotated() {
    let p = project();
    let mut pm2 = Pm2::start();
    let d = start_daemon(&p, &pm2, false);
    let spec = AppSpec {
        out_file: Some(p.log("cl-out.log")),
        error_file: Some(p.log("cl-error.log")),
        ..AppSpec::cluster("cl", 2)
    };
    // The tag tells the instances' lines apart in the index.
    pm2.start_app(
        &spec,
        &format!("process.env.SEQ_TAG = 'id';\nprocess.env.SEQ_LINES = '{CLUSTER_N}';\n{SEQ_APP}"),
    );
    wait_app_stopped(&pm2, "cl");
    let archive_dir = p.path().join("logs/pm2/archive");
    d.wait_total(&[("limit", "1")], 2 * CLUSTER_N, 120);
    std::thread::sleep(Duration::from_millis(1500));
    let (_, status) = d.get("/api/status", &[]);
    for id in 0..2u64 {
        // Nothing went wrong in the app: no error output at all.
        let err_stem = format!("cl-error-{id}");
        let errors =
            archives_then_live(&archive_dir, &err_stem, &p.log(&format!("{err_stem}.log")));
        assert_eq!(
            String::from_utf8_lossy(&errors),
            "",
            "instance {id} wrote errors"
        );
        let stem = format!("cl-out-{id}");
        let live = p.log(&format!("{stem}.log"));
        let rotated = archives(&archive_dir, &stem);
        assert!(
            rotated.len() >= 20,
            "{stem}: only {} rotations; daemon log:\n{}",
            rotated.len(),
            tail(&d.stderr())
        );
        assert_exact_sequence(
            &archives_then_live(&archive_dir, &stem, &live),
            CLUSTER_N,
            |i| format!("i{id} seq={i:07}"),
        );
        let file = file_status(&status, &live);
        assert_eq!(file["last_method"], "collapse", "{status:#}");
    }
    // The index: both instances' lines, each once.
    let mut got = all_messages(&d);
    got.sort();
    let mut want: Vec<String> = (0..2u64)
        .flat_map(|id| (0..CLUSTER_N).map(move |i| format!("i{id} seq={i:07}")))
        .collect();
    want.sort();
    assert!(
        got == want,
        "the index does not hold each line exactly once ({} lines)",
        got.len()
    );
    pm2.kill();
}

/// The end of a daemon's log, for failure messages.
fn tail(log: &str) -> String {
    if let Ok(keep) = std::env::var("LOGAGG_TEST_KEEP_LOG") {
        let _ = std::fs::write(keep, log);
    }
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}
