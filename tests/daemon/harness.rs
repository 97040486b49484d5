//! A real logagg daemon in a temp directory, for the integration tests: writes its
//! configuration, starts the built binary on `127.0.0.1:0`, finds its address, queries
//! its API, and kills it when the test ends, whether the test passed or not.

use std::collections::HashSet;
use std::fs;
use std::io::BufRead;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

pub const BIN: &str = env!("CARGO_BIN_EXE_logagg");

/// A scratch project directory: `logs/pm2` for the "PM2" files, `logagg.toml` for the
/// daemon's configuration and `state/` as its data_dir.
pub struct Project {
    pub dir: TempDir,
}

impl Project {
    /// A project whose configuration is the defaults for testing plus `extra` TOML lines,
    /// which go at the end of `[sources]` and may open sections of their own (but not
    /// `[index]`, `[api]` or `[pm2]`). PM2 is looked for in a directory that does not
    /// exist, so no PM2 running on the machine is ever touched.
    pub fn new(extra_sources: &str) -> Project {
        let dir = tempfile::Builder::new()
            .prefix("logagg-test")
            .tempdir()
            .unwrap();
        fs::create_dir_all(dir.path().join("logs/pm2")).unwrap();
        let config = format!(
            "data_dir = \"state\"\n\
             [sources]\n\
             paths = [\"logs/pm2/*.log\"]\n\
             rescan_interval = \"1s\"\n\
             linger = \"500ms\"\n\
             {extra_sources}\n\
             [index]\n\
             commit_interval = \"200ms\"\n\
             [api]\n\
             listen = \"127.0.0.1:0\"\n\
             [pm2]\n\
             home = \"no-pm2-here\"\n"
        );
        fs::write(dir.path().join("logagg.toml"), config).unwrap();
        Project { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A file under `logs/pm2`.
    pub fn log(&self, name: &str) -> PathBuf {
        self.dir.path().join("logs/pm2").join(name)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// A `logagg` command run in the project directory with its configuration.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.current_dir(self.dir.path())
            .env_remove("LOGAGG_CONFIG")
            .env_remove("LOGAGG_ADDR")
            .env("LOGAGG_LOG", "info,tantivy=warn")
            .arg("--config")
            .arg(self.dir.path().join("logagg.toml"));
        cmd
    }

    /// Starts the daemon and waits until `/healthz` answers.
    pub fn start(&self) -> Daemon {
        self.start_with_env(&[])
    }

    /// [`Project::start`] with extra environment variables.
    pub fn start_with_env(&self, env: &[(&str, &str)]) -> Daemon {
        let addr_file = self.data_dir().join("api.addr");
        // A daemon killed with -9 leaves its address behind; it must not be mistaken
        // for the new one's.
        let _ = fs::remove_file(&addr_file);
        let log_path = self.dir.path().join(format!("daemon-{}.log", next_start()));
        let child = self
            .command()
            .arg("daemon")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log_path).unwrap())
            .spawn()
            .expect("cannot start the logagg binary");
        let mut daemon = Daemon {
            child,
            addr: String::new(),
            log_path,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = daemon.child.try_wait().unwrap() {
                panic!(
                    "the daemon exited at start with {status}:\n{}",
                    daemon.stderr()
                );
            }
            if let Ok(addr) = fs::read_to_string(&addr_file) {
                let addr = addr.trim().to_string();
                if !addr.is_empty() && get_status(&addr, "/healthz") == Some(200) {
                    daemon.addr = addr;
                    return daemon;
                }
            }
            assert!(
                Instant::now() < deadline,
                "the daemon did not become ready in 30s:\n{}",
                daemon.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Numbers the daemon starts, so each start keeps its own stderr file.
fn next_start() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// A running daemon; killed (SIGKILL) on drop if the test did not stop it.
pub struct Daemon {
    pub child: Child,
    pub addr: String,
    log_path: PathBuf,
}

impl Daemon {
    /// What the daemon wrote to stderr so far.
    pub fn stderr(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// `GET path?query` → (status, JSON body).
    pub fn get(&self, path: &str, query: &[(&str, &str)]) -> (u16, Value) {
        let agent = agent();
        let mut req = agent.get(format!("http://{}{}", self.addr, path));
        for (k, v) in query {
            req = req.query(*k, *v);
        }
        let mut resp = req.call().expect("the daemon does not answer");
        let status = resp.status().as_u16();
        let body = resp.body_mut().read_to_string().unwrap();
        let json = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {body:?} from {path}"));
        (status, json)
    }

    /// `POST path` → (status, JSON body).
    pub fn post(&self, path: &str) -> (u16, Value) {
        let mut resp = agent()
            .post(format!("http://{}{}", self.addr, path))
            .send_empty()
            .expect("the daemon does not answer");
        let code = resp.status().as_u16();
        let body = resp.body_mut().read_to_string().unwrap();
        (code, serde_json::from_str(&body).unwrap())
    }

    /// `/api/search`, which must succeed.
    pub fn search(&self, query: &[(&str, &str)]) -> Value {
        let (status, body) = self.get("/api/search", query);
        assert_eq!(status, 200, "search {query:?} failed: {body}");
        body
    }

    /// Polls `/api/search` until its total is `n`, then returns the last answer. Fails
    /// with the last answer when `n` is not reached in `secs`, or when the total passes it.
    pub fn wait_total(&self, query: &[(&str, &str)], n: u64, secs: u64) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let body = self.search(query);
            let total = body["total"].as_u64().unwrap();
            if total == n {
                return body;
            }
            assert!(
                total < n,
                "expected {n} records for {query:?}, got {total}: {}",
                brief(&body)
            );
            assert!(
                Instant::now() < deadline,
                "expected {n} records for {query:?} within {secs}s, still {total}: {}\ndaemon log:\n{}",
                brief(&body),
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends SIGTERM and waits (at most 10 s) for the exit.
    pub fn terminate(&mut self) -> (ExitStatus, Duration) {
        let start = Instant::now();
        signal(&self.child, libc::SIGTERM);
        let deadline = start + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status, start.elapsed());
            }
            assert!(
                Instant::now() < deadline,
                "the daemon ignored SIGTERM for 10s"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// `kill -9`: no shutdown, no final commit.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn signal(child: &Child, sig: libc::c_int) {
    // SAFETY: kill(2) on the pid of a child we spawned and have not reaped yet.
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, sig) };
    assert_eq!(rc, 0, "kill({}, {sig}) failed", child.id());
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .new_agent()
}

/// The status of `GET path`, or None when nothing answers.
pub fn get_status(addr: &str, path: &str) -> Option<u16> {
    agent()
        .get(format!("http://{addr}{path}"))
        .call()
        .ok()
        .map(|r| r.status().as_u16())
}

/// The messages of a search answer's hits, in answer order.
pub fn messages(body: &Value) -> Vec<String> {
    body["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["message"].as_str().unwrap().to_string())
        .collect()
}

/// Appends `text` to `path`, creating it, the way PM2 writes (O_APPEND).
pub fn append(path: &Path, text: impl AsRef<[u8]>) {
    use std::io::Write;
    let mut f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_ref()).unwrap();
}

/// A JSON answer cut to a size a failure message can carry.
pub fn brief(body: &Value) -> String {
    let text = format!("{body:#}");
    match text.char_indices().nth(4000) {
        Some((at, _)) => format!("{}... ({} bytes in all)", &text[..at], text.len()),
        None => text,
    }
}

/// The archives of `stem` in `dir`, in name order (which is time order).
pub fn archives(dir: &Path, stem: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    found.retain(|p| {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        name.starts_with(&format!("{stem}.2"))
            && (name.ends_with(".log.gz") || name.ends_with(".log"))
    });
    found.sort();
    found
}

/// The bytes of an archive, decompressed when it is gzip.
pub fn archive_bytes(path: &Path) -> Vec<u8> {
    let raw = std::fs::read(path).unwrap();
    if path.extension().is_some_and(|e| e == "gz") {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .unwrap_or_else(|e| panic!("{} is not valid gzip: {e}", path.display()));
        out
    } else {
        raw
    }
}

/// Archives in name order, then the live file: everything the writer wrote, once.
pub fn archives_then_live(archive_dir: &Path, stem: &str, live: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    for a in archives(archive_dir, stem) {
        all.extend(archive_bytes(&a));
    }
    all.extend(std::fs::read(live).unwrap_or_default());
    all
}

/// Asserts that `text` is exactly the lines `line(0..n)`, reporting the first gap.
pub fn assert_exact_sequence(text: &[u8], n: u64, line: impl Fn(u64) -> String) {
    let text = String::from_utf8_lossy(text);
    let mut expected = 0u64;
    for got in text.lines() {
        assert_eq!(
            got,
            line(expected),
            "line {expected} differs (gap, duplicate or damage)"
        );
        expected += 1;
    }
    assert_eq!(expected, n, "expected {n} lines in archives + live file");
}

/// Every line of the index (markers left out), oldest first, through the cursor.
pub fn all_messages(d: &Daemon) -> Vec<String> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut q = vec![("order", "asc"), ("limit", "10000"), ("kind", "line")];
        if let Some(c) = &cursor {
            q.push(("cursor", c));
        }
        let body = d.search(&q);
        let hits = body["hits"].as_array().unwrap();
        out.extend(
            hits.iter()
                .map(|h| h["message"].as_str().unwrap().to_string()),
        );
        match body["next"].as_str() {
            Some(n) if !hits.is_empty() => cursor = Some(n.to_string()),
            _ => return out,
        }
    }
}

/// Asserts that the index holds each of `line(0..n)` once and nothing else. When it
/// does not, the message names the missing lines (the first 20) and the daemon's log, so
/// a loss can be placed against the rotations around it.
pub fn assert_indexed_once(d: &Daemon, n: u64, line: impl Fn(u64) -> String) {
    let want: Vec<String> = (0..n).map(line).collect();
    assert_index_holds(d, &want);
}

/// Asserts that the index holds each of `want` once and no other line (in any order;
/// markers are not counted).
pub fn assert_index_holds(d: &Daemon, want: &[String]) {
    let n = want.len() as u64;
    let deadline = Instant::now() + Duration::from_secs(120);
    let lines = || {
        d.search(&[("limit", "1"), ("kind", "line")])["total"]
            .as_u64()
            .unwrap()
    };
    while lines() < n && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let got = all_messages(d);
    let set: HashSet<&String> = got.iter().collect();
    let missing: Vec<&String> = want.iter().filter(|l| !set.contains(l)).collect();
    assert!(
        missing.is_empty(),
        "{} of {n} lines are not in the index; the first: {:?}\ndaemon log:\n{}",
        missing.len(),
        &missing[..missing.len().min(20)],
        d.stderr()
    );
    assert_eq!(set.len(), got.len(), "some line is indexed twice");
    assert_eq!(
        got.len() as u64,
        n,
        "the index holds lines that were not written"
    );
}

/// The `/api/status` entry of one live file.
pub fn file_status<'a>(status: &'a Value, path: &Path) -> &'a Value {
    status["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == path.to_str().unwrap())
        .unwrap_or_else(|| panic!("{} not in status {status:#}", path.display()))
}

/// Lines to wait for in a follow; generous, since CI machines stall.
pub const FOLLOW_WAIT: Duration = Duration::from_secs(30);

/// A `logagg tail` running in the background, its output lines arriving on a channel.
pub struct Follow {
    pub child: Child,
    pub lines: Receiver<String>,
}

impl Follow {
    pub fn start(p: &Project, addr: &str, args: &[&str]) -> Follow {
        let mut child = p
            .command()
            .env("TZ", "UTC")
            .args(["--addr", addr, "tail"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for l in std::io::BufReader::new(stdout).lines() {
                if tx.send(l.unwrap()).is_err() {
                    return;
                }
            }
        });
        Follow { child, lines }
    }

    /// The next `n` lines, failing after [`FOLLOW_WAIT`] with what came.
    pub fn take(&self, n: usize) -> Vec<String> {
        let deadline = Instant::now() + FOLLOW_WAIT;
        let mut got = Vec::new();
        while got.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => got.push(l),
                Err(_) => panic!("wanted {n} lines within {FOLLOW_WAIT:?}, got {got:#?}"),
            }
        }
        got
    }
}

impl Drop for Follow {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `check` every 20 ms until it holds or `timeout` passes; whether it held.
pub fn wait_until(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One unlabelled counter or gauge from the daemon's `/metrics`.
pub fn metric(d: &Daemon, name: &str) -> u64 {
    let text = ureq::get(format!("http://{}/metrics", d.addr))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}"))
}

/// One message of PM2's bus as it travels on `pub.sock` (amp v1, two arguments: the
/// topic as a string, the payload as JSON), written out by hand rather than with
/// logagg's own encoder, so the daemon's decoder is checked against an independent copy.
pub fn bus_frame(topic: &str, payload: &Value) -> Vec<u8> {
    let mut out = vec![0x12];
    for arg in [format!("s:{topic}"), format!("j:{payload}")] {
        out.extend_from_slice(&(arg.len() as u32).to_be_bytes());
        out.extend_from_slice(arg.as_bytes());
    }
    out
}

/// Installs Debian's `package` when `bin` is missing (a fresh CI machine), as the node
/// tests install their npm pins: what the tests need, the project installs. Fails
/// loudly, naming `who` needs it, when that is not possible (no apt-get, not root, no
/// registry).
pub fn ensure_debian_package(bin: &str, package: &str, who: &str) {
    if Path::new(bin).exists() {
        return;
    }
    let lock = Path::new(env!("CARGO_TARGET_TMPDIR")).join("logagg-apt.lock");
    let script = format!(
        "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq {package}"
    );
    let out = Command::new("flock")
        .arg(&lock)
        .args(["sh", "-c", &format!("test -x {bin} || ({script})")])
        .output()
        .unwrap_or_else(|e| panic!("cannot run flock/apt-get to install {package}: {e}"));
    assert!(
        out.status.success() && Path::new(bin).exists(),
        "{bin} is missing and `{script}` failed ({}): {who} needs Debian's {package}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
