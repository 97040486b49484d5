//! A real PM2 for the tests: installed from the repository's package-lock.json on first
//! use, run as a daemon in its own `PM2_HOME` under a temp directory, and killed with
//! `pm2 kill` (that home only) when the test ends, whether it passed or not.
//!
//! Node.js and npm are required: without them these tests fail loudly rather than skip,
//! so a machine that cannot run them is noticed.

use std::fs::{self, File};
use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tempfile::TempDir;

/// The repository root, where package.json and node_modules live.
pub const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// How long one `pm2` command may take before the test fails.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// How long [`wait_for`] polls by default.
pub const WAIT: Duration = Duration::from_secs(15);

pub fn pm2_bin() -> PathBuf {
    Path::new(REPO).join("node_modules/.bin/pm2")
}

/// Installs PM2 with `npm ci` unless the pinned version is already in node_modules.
pub fn ensure_pm2() {
    ensure_node_deps();
    assert!(
        pm2_bin().exists(),
        "{} is missing after `npm ci`",
        pm2_bin().display()
    );
}

/// Installs package.json's devDependencies (PM2, playwright-core) with `npm ci` unless
/// node_modules already holds every pinned version. Once per test process; a lock file in
/// Cargo's target directory keeps test binaries that run at the same time from installing
/// over each other.
pub fn ensure_node_deps() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        for tool in ["node", "npm"] {
            match Command::new(tool).arg("--version").output() {
                Ok(out) if out.status.success() => {}
                Ok(out) => panic!(
                    "`{tool} --version` failed ({}): these tests need Node.js and npm\n{}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                ),
                Err(e) => panic!(
                    "cannot run `{tool}` ({e}): these tests need Node.js and npm on PATH \
                     (Debian: apt-get install nodejs npm)"
                ),
            }
        }
        let lock_path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("logagg-npm-ci.lock");
        let lock =
            File::create(&lock_path).unwrap_or_else(|e| panic!("{}: {e}", lock_path.display()));
        // SAFETY: flock on a descriptor we own; released when `lock` is closed, or by the
        // kernel if this process dies, so a crash leaves no stale lock behind.
        let rc = unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) };
        assert_eq!(
            rc,
            0,
            "flock {}: {}",
            lock_path.display(),
            std::io::Error::last_os_error()
        );

        if !missing_node_deps().is_empty() {
            let out = Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(REPO)
                .stdin(Stdio::null())
                .output()
                .unwrap_or_else(|e| panic!("cannot run `npm ci`: {e}"));
            assert!(
                out.status.success(),
                "`npm ci` in {REPO} failed ({}):\n{}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let missing = missing_node_deps();
        assert!(
            missing.is_empty(),
            "node_modules does not hold what package.json pins, even after `npm ci`: {missing:?}"
        );
        drop(lock);
    });
}

/// The devDependencies of package.json whose pinned version is not in node_modules.
fn missing_node_deps() -> Vec<String> {
    let text = fs::read_to_string(Path::new(REPO).join("package.json")).unwrap();
    let package: Value = serde_json::from_str(&text).unwrap();
    let pins = package["devDependencies"]
        .as_object()
        .expect("package.json has devDependencies");
    pins.iter()
        .filter(|(name, pin)| installed_version(name).as_deref() != pin.as_str())
        .map(|(name, pin)| format!("{name}@{}", pin.as_str().unwrap_or("?")))
        .collect()
}

/// The PM2 version package.json pins (an exact version, no range).
pub fn pinned_version() -> String {
    let text = fs::read_to_string(Path::new(REPO).join("package.json")).unwrap();
    let package: Value = serde_json::from_str(&text).unwrap();
    package["devDependencies"]["pm2"]
        .as_str()
        .expect("package.json pins pm2 in devDependencies")
        .to_string()
}

fn installed_version(package: &str) -> Option<String> {
    let path = Path::new(REPO)
        .join("node_modules")
        .join(package)
        .join("package.json");
    let text = fs::read_to_string(path).ok()?;
    let package: Value = serde_json::from_str(&text).ok()?;
    Some(package["version"].as_str()?.to_string())
}

/// How an app is run, turned into an ecosystem file.
#[derive(Clone, Debug, Default)]
pub struct AppSpec {
    pub name: String,
    /// Cluster mode with this many workers; fork mode (one process) when `None`.
    pub cluster: Option<u32>,
    pub out_file: Option<PathBuf>,
    pub error_file: Option<PathBuf>,
    pub log_file: Option<PathBuf>,
    pub time: bool,
    pub merge_logs: Option<bool>,
}

impl AppSpec {
    pub fn fork(name: &str) -> AppSpec {
        AppSpec {
            name: name.to_string(),
            ..AppSpec::default()
        }
    }

    pub fn cluster(name: &str, instances: u32) -> AppSpec {
        AppSpec {
            name: name.to_string(),
            cluster: Some(instances),
            ..AppSpec::default()
        }
    }
}

/// The app every test runs unless it brings its own: it prints on request. Each file
/// dropped into `say/<pm_id>/` is printed line by line (a line starting `err:` goes to
/// stderr without the prefix) and deleted, files in name order; it prints nothing else,
/// so a test knows the exact contents of each log file.
pub const SAY_APP: &str = r#"
const fs = require('fs');
const path = require('path');
const dir = path.join(__dirname, 'say', String(process.env.pm_id));
fs.mkdirSync(dir, { recursive: true });
setInterval(() => {
  for (const f of fs.readdirSync(dir).filter((f) => !f.startsWith('.')).sort()) {
    const p = path.join(dir, f);
    const text = fs.readFileSync(p, 'utf8');
    fs.unlinkSync(p);
    for (const line of text.split('\n').filter((l) => l.length > 0)) {
      if (line.startsWith('err:')) console.error(line.slice(4));
      else console.log(line);
    }
  }
}, 20);
"#;

/// A PM2 daemon of our own.
pub struct Pm2 {
    dir: TempDir,
    home: PathBuf,
    killed: bool,
    said: u32,
}

impl Pm2 {
    /// Starts a daemon in a fresh `PM2_HOME` and waits until it answers.
    pub fn start() -> Pm2 {
        ensure_pm2();
        // Short paths: a Unix socket path must fit in 108 bytes.
        let dir = tempfile::Builder::new().prefix("pm2t").tempdir().unwrap();
        let home = dir.path().join("home");
        fs::create_dir_all(&home).unwrap();
        fs::create_dir_all(dir.path().join("apps")).unwrap();
        let pm2 = Pm2 {
            dir,
            home,
            killed: false,
            said: 0,
        };
        // `ping` starts the daemon when none runs in this home.
        pm2.pm2_ok(&["ping"]);
        pm2
    }

    /// The daemon's `PM2_HOME`.
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// Where app scripts and their `say/` directories live.
    pub fn apps_dir(&self) -> PathBuf {
        self.dir.path().join("apps")
    }

    /// `$PM2_HOME/logs/<file>`: where PM2 puts log files by default.
    pub fn log(&self, file: &str) -> PathBuf {
        self.home.join("logs").join(file)
    }

    /// Runs the pinned `pm2` CLI against this daemon only. The environment is cleared
    /// down to what PM2 needs, so apps started from here do not carry the test runner's
    /// variables (PM2 copies them into every process description and bus event).
    pub fn pm2(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(pm2_bin());
        cmd.args(args)
            .current_dir(self.dir.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("PM2_HOME", &self.home)
            // The daemon would otherwise ask a PM2 server for updates once a day.
            .env("PM2_DISABLE_VERSION_CHECK", "true")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        run_bounded(cmd, &format!("pm2 {}", args.join(" ")), COMMAND_TIMEOUT)
    }

    /// [`Pm2::pm2`], failing the test unless the command succeeded.
    pub fn pm2_ok(&self, args: &[&str]) -> Output {
        let out = self.pm2(args);
        assert!(
            out.status.success(),
            "`pm2 {}` failed ({}):\n{}\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Starts an app running `source` (written to `apps/<name>.js`) through an ecosystem
    /// file built from `spec`, and returns once PM2 reports it started.
    pub fn start_app(&self, spec: &AppSpec, source: &str) {
        let script = self.apps_dir().join(format!("{}.js", spec.name));
        fs::write(&script, source).unwrap();
        let mut app = json!({
            "name": spec.name,
            "script": script,
            "cwd": self.apps_dir(),
            "autorestart": false,
        });
        if let Some(n) = spec.cluster {
            app["exec_mode"] = json!("cluster");
            app["instances"] = json!(n);
        }
        for (key, path) in [
            ("out_file", &spec.out_file),
            ("error_file", &spec.error_file),
            ("log_file", &spec.log_file),
        ] {
            if let Some(p) = path {
                app[key] = json!(p);
            }
        }
        if spec.time {
            app["time"] = json!(true);
        }
        if let Some(merge) = spec.merge_logs {
            app["merge_logs"] = json!(merge);
        }
        let eco = self
            .apps_dir()
            .join(format!("{}.ecosystem.json", spec.name));
        fs::write(&eco, json!({ "apps": [app] }).to_string()).unwrap();
        self.pm2_ok(&["start", eco.to_str().unwrap()]);
    }

    /// Starts [`SAY_APP`] under `spec`.
    pub fn start_say_app(&self, spec: &AppSpec) {
        self.start_app(spec, SAY_APP);
    }

    /// Makes the [`SAY_APP`] process with this `pm_id` print `lines`.
    pub fn say(&mut self, pm_id: u32, lines: &[&str]) {
        let dir = self.apps_dir().join("say").join(pm_id.to_string());
        fs::create_dir_all(&dir).unwrap();
        self.said += 1;
        let name = format!("{:08}", self.said);
        // Written aside and renamed in, so the app never reads half a file.
        let tmp = dir.join(format!(".{name}"));
        let mut text = lines.join("\n");
        text.push('\n');
        fs::write(&tmp, text).unwrap();
        fs::rename(&tmp, dir.join(name)).unwrap();
    }

    /// Stops the daemon now (`pm2 kill`); dropping it afterwards does nothing more.
    pub fn kill(&mut self) {
        if self.killed {
            return;
        }
        self.killed = true;
        let pid = fs::read_to_string(self.home.join("pm2.pid"))
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok());
        let out = self.pm2(&["kill"]);
        if !out.status.success() {
            eprintln!(
                "`pm2 kill` for {} failed ({}): {}",
                self.home.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        // `pm2 kill` returns once the daemon said it stops; wait until it is gone so
        // that no test leaves a process behind.
        if let Some(pid) = pid {
            let gone = wait_until(Duration::from_secs(10), || {
                // SAFETY: signal 0 only checks that the process exists.
                unsafe { libc::kill(pid, 0) != 0 }
            });
            if !gone {
                eprintln!(
                    "PM2 daemon {pid} of {} is still running",
                    self.home.display()
                );
            }
        }
    }
}

impl Drop for Pm2 {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls `check` every 20 ms until it holds or `timeout` passes; whether it held.
pub fn wait_until(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A file's contents ("" while it does not exist), lossily as text.
pub fn read(path: &Path) -> String {
    fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// Waits until `path` holds exactly `expected`, failing the test with what it holds
/// instead after [`WAIT`].
pub fn wait_for_content(path: &Path, expected: &str) {
    if !wait_until(WAIT, || read(path) == expected) {
        assert_eq!(read(path), expected, "contents of {}", path.display());
    }
}

/// Runs `cmd` to its end, at most `timeout` (then kills it: our own child,
/// never a daemon it started) and fails the test. Both pipes are read on threads so a
/// chatty command cannot block on a full pipe while we wait for it.
pub fn run_bounded(mut cmd: Command, what: &str, timeout: Duration) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run `{what}`: {e}"));
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf);
        buf
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`{what}` did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out_reader.join().unwrap(),
        stderr: err_reader.join().unwrap(),
    }
}
