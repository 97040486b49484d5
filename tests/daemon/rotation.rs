//! Rotation without PM2: a plain process appending with `O_APPEND`, rotated by collapse
//! (and through crashes), age limits, retention, neighbouring names, and an archive
//! directory that cannot be written.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{
    append, archive_bytes, archives, archives_then_live, assert_exact_sequence,
    assert_indexed_once, file_status, metric, Daemon, Project,
};

/// Retention runs after each archive is finished, on the compression thread: waits
/// (at most 10 s) for `stem` to have exactly `n` archives, and returns them.
fn wait_for_archives(dir: &Path, stem: &str, n: usize) -> Vec<PathBuf> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found = archives(dir, stem);
        if found.len() == n {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "{stem}: expected {n} archives, found {found:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn status(d: &Daemon) -> Value {
    let (code, body) = d.get("/api/status", &[]);
    assert_eq!(code, 200, "{body}");
    body
}

/// A writer appending numbered lines with O_APPEND from another thread, like any app.
struct Writer {
    /// Lines written so far.
    #[allow(dead_code)]
    written: Arc<AtomicU64>,
    done: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    /// `n` lines, `per_tick` of them every `tick`.
    fn start(
        path: PathBuf,
        n: u64,
        per_tick: u64,
        tick: Duration,
        line: fn(u64) -> String,
    ) -> Writer {
        let written = Arc::new(AtomicU64::new(0));
        let done = Arc::new(AtomicBool::new(false));
        let (w, dn) = (written.clone(), done.clone());
        let thread = std::thread::spawn(move || {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .unwrap();
            let mut seq = 0;
            while seq < n {
                let mut buf = String::new();
                for _ in 0..per_tick.min(n - seq) {
                    buf.push_str(&line(seq));
                    buf.push('\n');
                    seq += 1;
                }
                f.write_all(buf.as_bytes()).unwrap();
                w.store(seq, Ordering::SeqCst);
                std::thread::sleep(tick);
            }
            dn.store(true, Ordering::SeqCst);
        });
        Writer {
            written,
            done,
            thread: Some(thread),
        }
    }

    fn running(&self) -> bool {
        !self.done.load(Ordering::SeqCst)
    }

    fn join(mut self) {
        self.thread.take().unwrap().join().unwrap();
    }
}

fn seq_line(i: u64) -> String {
    format!("plain seq={i:07} {}", "p".repeat((i % 40) as usize))
}

#[test]
fn collapse_rotates_a_plain_appender_through_two_kill_9s_without_losing_a_line() {
    const N: u64 = 60_000;
    let p = Project::new("[rotation]\nmax_size = \"32KiB\"\nmax_age = \"\"\nretain = 0");
    let live = p.log("plain-out.log");
    let archive_dir = p.path().join("logs/pm2/archive");
    let mut d = p.start();
    // About 6,000 lines (240 KiB) a second for ten seconds.
    let writer = Writer::start(live.clone(), N, 60, Duration::from_millis(10), seq_line);
    for _ in 0..2 {
        std::thread::sleep(Duration::from_millis(3000));
        assert!(writer.running(), "the writer finished before the kill");
        d.kill9();
        d = p.start();
    }
    writer.join();
    assert_indexed_once(&d, N, seq_line);
    // Let the last rotations finish, then check the bytes on disk.
    std::thread::sleep(Duration::from_millis(1500));
    let rotated = archives(&archive_dir, "plain-out");
    assert!(
        rotated.len() >= 10,
        "only {} rotations: {rotated:?}",
        rotated.len()
    );
    assert_exact_sequence(
        &archives_then_live(&archive_dir, "plain-out", &live),
        N,
        seq_line,
    );
    let s = status(&d);
    let f = file_status(&s, &live);
    assert_eq!(f["last_method"], "collapse", "{s:#}");
    assert_eq!(f["copytruncate_lost_bytes"], 0);
    assert_eq!(f["archives"], rotated.len());
    // The live file stayed small, although 2.6 MB went through it.
    assert!(std::fs::metadata(&live).unwrap().len() < 1 << 20);
}

#[test]
fn age_limit_rotates_a_file_whose_oldest_line_is_too_old() {
    let p = Project::new(
        "[rotation]\nmax_size = \"\"\nmax_age = \"2s\"\nmethod = \"copytruncate\"\ncompress = false",
    );
    let live = p.log("aged-out.log");
    append(&live, "first\nsecond\n");
    let d = p.start();
    d.wait_total(&[], 2, 20);
    let archive_dir = p.path().join("logs/pm2/archive");
    let deadline = Instant::now() + Duration::from_secs(20);
    while archives(&archive_dir, "aged-out").is_empty() {
        assert!(Instant::now() < deadline, "no age rotation in 20s");
        std::thread::sleep(Duration::from_millis(100));
    }
    let a = archives(&archive_dir, "aged-out");
    assert_eq!(a.len(), 1);
    assert!(
        a[0].to_string_lossy().ends_with(".log"),
        "compress = false: {a:?}"
    );
    assert_eq!(std::fs::read_to_string(&a[0]).unwrap(), "first\nsecond\n");
    assert_eq!(std::fs::read_to_string(&live).unwrap(), "");
    // An empty file is not rotated again, however old.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(archives(&archive_dir, "aged-out").len(), 1);
    append(&live, "third\n");
    d.wait_total(&[], 3, 20);
    let s = status(&d);
    assert_eq!(file_status(&s, &live)["last_method"], "copytruncate");
}

#[test]
fn retention_keeps_the_newest_archives_of_exactly_each_file() {
    // `api` and `api-gw`, `duck` and `duckling`: names that are prefixes of others.
    let p = Project::new(
        "[rotation]\nmax_size = \"\"\nmax_age = \"\"\nretain = 2\nmethod = \"copytruncate\"\nmax_archive_age = \"7d\"",
    );
    let archive_dir = p.path().join("logs/pm2/archive");
    std::fs::create_dir_all(&archive_dir).unwrap();
    // Old archives and strangers already in the directory.
    for name in [
        "api-out.20200101T000000.000000Z.log.gz",
        "api-gw-out.20200101T000000.000000Z.log.gz",
        "notes.txt",
        "api-out.log.gz",
    ] {
        std::fs::write(archive_dir.join(name), b"x").unwrap();
    }
    let files = [
        "api-out.log",
        "api-gw-out.log",
        "duck-out.log",
        "duckling-out.log",
    ];
    let d = p.start();
    let mut written = 0;
    for round in 0..4 {
        for f in files {
            append(&p.log(f), format!("{f} round {round}\n"));
            written += 1;
        }
        d.wait_total(&[], written, 20);
        let (code, body) = d.post("/api/rotate");
        assert_eq!(code, 200, "{body}");
        let rotated = body["rotated"].as_array().unwrap();
        assert_eq!(rotated.len(), 4, "{body:#}");
        for r in rotated {
            assert_eq!(r["method"], "copytruncate", "{r}");
        }
        // Names are unique to the microsecond; keep rounds apart anyway for clarity.
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(1500));
    for f in files {
        let stem = f.trim_end_matches(".log");
        // Only this stem's archives (`api-out.` never counts `api-gw-out.`).
        let kept = wait_for_archives(&archive_dir, stem, 2);
        let text: Vec<String> = kept
            .iter()
            .map(|a| String::from_utf8(archive_bytes(a)).unwrap())
            .collect();
        assert_eq!(text, [format!("{f} round 2\n"), format!("{f} round 3\n")]);
    }
    // The strangers are untouched; the 2020 archives went by age and count.
    assert!(archive_dir.join("notes.txt").exists());
    assert!(archive_dir.join("api-out.log.gz").exists());
    assert!(!archive_dir
        .join("api-out.20200101T000000.000000Z.log.gz")
        .exists());
    assert!(!archive_dir
        .join("api-gw-out.20200101T000000.000000Z.log.gz")
        .exists());
    assert_eq!(d.search(&[])["total"], 16);
}

#[test]
fn retention_by_total_size_and_by_age() {
    let p = Project::new(
        "[rotation]\nmax_size = \"\"\nmax_age = \"\"\nretain = 0\nmethod = \"copytruncate\"\ncompress = false\nmax_total_size = \"250B\"\n\
         [services.old]\nmax_archive_age = \"1s\"\nmethod = \"copytruncate\"\ncompress = false",
    );
    let archive_dir = p.path().join("logs/pm2/archive");
    let d = p.start();
    let line = "x".repeat(99); // 100 bytes with its newline
    for round in 0..4 {
        append(&p.log("big-out.log"), format!("{line}\n"));
        append(&p.log("old-out.log"), format!("old {round}\n"));
        d.wait_total(&[], 2 * (round + 1), 20);
        let (code, body) = d.post("/api/rotate");
        assert_eq!(code, 200, "{body}");
        std::thread::sleep(Duration::from_millis(20));
    }
    // 4 archives of 100 bytes, at most 250 bytes kept: the 2 newest.
    wait_for_archives(&archive_dir, "big-out", 2);
    // `old` keeps archives one second; the next rotation's retention removes the rest.
    std::thread::sleep(Duration::from_millis(1500));
    append(&p.log("old-out.log"), "old 4\n");
    d.wait_total(&[], 9, 20);
    let (code, body) = d.post("/api/rotate?service=old");
    assert_eq!(code, 200, "{body}");
    let kept = wait_for_archives(&archive_dir, "old-out", 1);
    assert_eq!(std::fs::read_to_string(&kept[0]).unwrap(), "old 4\n");
}

#[test]
fn an_unwritable_archive_directory_fails_the_rotation_and_keeps_everything() {
    let p = Project::new("[rotation]\nmax_size = \"\"\nmax_age = \"\"\nmethod = \"collapse\"");
    let archive_dir = p.path().join("logs/pm2/archive");
    std::fs::create_dir_all(&archive_dir).unwrap();
    let live = p.log("ro-out.log");
    let mut text = String::new();
    for i in 0..500 {
        text.push_str(&format!(
            "read-only test line {i:04} with some padding to pass a block\n"
        ));
    }
    append(&live, &text);
    let d = p.start();
    d.wait_total(&[], 500, 20);
    std::thread::sleep(Duration::from_millis(500));
    let guard = ReadOnly::set(&archive_dir);
    let (code, body) = d.post("/api/rotate");
    assert_eq!(code, 200, "{body}");
    let r = &body["rotated"][0];
    let error = r["error"].as_str().unwrap_or_else(|| panic!("{body:#}"));
    assert!(error.contains("cannot write archive"), "{error}");
    assert!(error.contains(archive_dir.to_str().unwrap()), "{error}");
    // Nothing moved: the live file is whole, nothing half-written is left behind.
    assert_eq!(std::fs::read_to_string(&live).unwrap(), text);
    assert_eq!(std::fs::read_dir(&archive_dir).unwrap().count(), 0);
    let s = status(&d);
    assert!(file_status(&s, &live)["last_error"]
        .as_str()
        .unwrap()
        .contains("cannot write archive"));
    assert_eq!(d.search(&[])["total"], 500);
    // Writable again: the next try succeeds.
    drop(guard);
    let (code, body) = d.post("/api/rotate");
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["rotated"][0]["method"], "collapse", "{body:#}");
    std::thread::sleep(Duration::from_millis(500));
    let all = archives_then_live(&archive_dir, "ro-out", &live);
    assert_eq!(String::from_utf8(all).unwrap(), text);
    assert_eq!(d.search(&[])["total"], 500);
}

#[test]
fn rotate_and_status_commands() {
    let p = Project::new("[rotation]\nmax_size = \"\"\nmax_age = \"\"\nmethod = \"copytruncate\"");
    append(&p.log("cmd-out.log"), "one\n");
    let d = p.start();
    d.wait_total(&[], 1, 20);
    let run = |args: &[&str]| {
        let out = p
            .command()
            .arg("--addr")
            .arg(&d.addr)
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    let (code, out, err) = run(&["rotate", "--service", "nobody"]);
    assert_eq!(code, Some(2));
    assert_eq!(out, "");
    assert_eq!(
        err,
        "logagg: the daemon refused the request: parameter \"service\": no live file of a service named \"nobody\"\n"
    );
    let (code, out, err) = run(&["rotate", "--service", "cmd"]);
    assert_eq!(code, Some(0), "{err}");
    let live = p.log("cmd-out.log");
    assert!(
        out.starts_with(&format!(
            "{} -> {}/cmd-out.2",
            live.display(),
            p.path().join("logs/pm2/archive").display()
        )),
        "{out}"
    );
    assert!(out.ends_with(".log (copytruncate)\n"), "{out}");
    // An empty file has nothing to rotate.
    let (code, out, _) = run(&["rotate"]);
    assert_eq!(
        (code, out.as_str()),
        (Some(1), "nothing to rotate: no live file with data\n")
    );
    let (code, out, _) = run(&["status"]);
    assert_eq!(code, Some(0));
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("SERVICE  FILE"), "{out}");
    assert!(
        lines[1].starts_with(&format!("cmd      {}  0B", live.display())),
        "{out}"
    );
    assert!(lines[1].contains("copytruncate"), "{out}");
    assert_eq!(
        lines[2],
        "1 files, 1 rotations, 0B possibly lost by copytruncate"
    );
    // Wrong method on the rotate route.
    let (code, body) = d.get("/api/rotate", &[]);
    assert_eq!(code, 405);
    assert!(body["error"].as_str().unwrap().contains("GET"), "{body}");
}

/// Makes a directory unwritable, even for root (`chattr +i`), until dropped.
struct ReadOnly(PathBuf);

impl ReadOnly {
    fn set(dir: &Path) -> ReadOnly {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            let st = std::process::Command::new("chattr")
                .arg("+i")
                .arg(dir)
                .status()
                .expect("chattr is needed to make a directory read-only for root");
            assert!(st.success(), "chattr +i {} failed", dir.display());
        } else {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o555)).unwrap();
        }
        ReadOnly(dir.to_path_buf())
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            let _ = std::process::Command::new("chattr")
                .arg("-i")
                .arg(&self.0)
                .status();
        } else {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&self.0, std::fs::Permissions::from_mode(0o755));
        }
    }
}

#[test]
fn a_full_disk_fails_the_rotation_keeps_everything_and_a_later_try_succeeds() {
    let p = Project::new(
        "[rotation]\nmax_size = \"\"\nmax_age = \"\"\nmethod = \"collapse\"\ncompress = false",
    );
    let archive_dir = p.path().join("logs/pm2/archive");
    // A 64 KiB file system for the archives, smaller than the file to rotate.
    let _mount = SmallFs::mount(&archive_dir, "64k");
    let live = p.log("full-out.log");
    let mut text = String::new();
    for i in 0..4000 {
        text.push_str(&format!(
            "disk full test line {i:05} padded to about fifty bytes\n"
        ));
    }
    append(&live, &text);
    let d = p.start();
    d.wait_total(&[], 4000, 20);
    std::thread::sleep(Duration::from_millis(500));
    let (code, body) = d.post("/api/rotate");
    assert_eq!(code, 200, "{body}");
    let error = body["rotated"][0]["error"]
        .as_str()
        .unwrap_or_else(|| panic!("{body:#}"));
    assert!(error.contains("No space left on device"), "{error}");
    // Nothing lost, nothing half-written left in the archive directory.
    assert_eq!(std::fs::read_to_string(&live).unwrap(), text);
    assert_eq!(std::fs::read_dir(&archive_dir).unwrap().count(), 0);
    assert_eq!(d.search(&[])["total"], 4000);
    let s = status(&d);
    assert!(file_status(&s, &live)["last_error"]
        .as_str()
        .unwrap()
        .contains("No space left on device"));
    // Room again: the next try goes through.
    SmallFs::resize(&archive_dir, "4m");
    let (code, body) = d.post("/api/rotate");
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["rotated"][0]["method"], "collapse", "{body:#}");
    let all = archives_then_live(&archive_dir, "full-out", &live);
    assert_eq!(String::from_utf8(all).unwrap(), text);
    assert_eq!(d.search(&[])["total"], 4000);
}

/// A small tmpfs mounted for one test (needs root, as CI runs), unmounted on drop.
struct SmallFs(PathBuf);

impl SmallFs {
    fn mount(dir: &Path, size: &str) -> SmallFs {
        std::fs::create_dir_all(dir).unwrap();
        let st = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .expect("cannot run mount");
        assert!(
            st.success(),
            "mounting a {size} tmpfs on {} failed: this test fills a real file system and needs root",
            dir.display()
        );
        SmallFs(dir.to_path_buf())
    }

    fn resize(dir: &Path, size: &str) {
        let st = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(dir)
            .status()
            .unwrap();
        assert!(st.success(), "remount of {} failed", dir.display());
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// What a `kill -9` in the middle of compressing leaves behind, set up by hand: an
/// uncompressed archive, its half-written `.gz` under the temporary name, and another
/// archive compressed completely but whose uncompressed copy was not removed yet.
#[test]
fn a_start_after_a_crash_during_compression_finishes_the_job() {
    let p = Project::new("[rotation]\nmax_size = \"\"\nmax_age = \"\"");
    let dir = p.path().join("logs/pm2/archive");
    std::fs::create_dir_all(&dir).unwrap();
    let pending = dir.join("duck-out.20261201T000000.000000Z.log");
    std::fs::write(&pending, "first\nsecond\n").unwrap();
    std::fs::write(
        dir.join(".duck-out.20261201T000000.000000Z.log.gz.tmp"),
        b"\x1f\x8b half a gzip",
    )
    .unwrap();
    let done = dir.join("api-out.20261130T000000.000000Z.log");
    std::fs::write(&done, "already\ncompressed\n").unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(b"already\ncompressed\n").unwrap();
    std::fs::write(
        dir.join("api-out.20261130T000000.000000Z.log.gz"),
        gz.finish().unwrap(),
    )
    .unwrap();

    let _d = p.start();
    let deadline = Instant::now() + Duration::from_secs(10);
    let names = || {
        let mut n: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        n.sort();
        n
    };
    let want = [
        "api-out.20261130T000000.000000Z.log.gz",
        "duck-out.20261201T000000.000000Z.log.gz",
    ];
    while names() != want {
        assert!(Instant::now() < deadline, "archive dir is {:?}", names());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        archive_bytes(&dir.join(want[1])),
        b"first\nsecond\n".to_vec()
    );
    assert_eq!(
        archive_bytes(&dir.join(want[0])),
        b"already\ncompressed\n".to_vec()
    );
}

/// One amp frame of PM2's RPC (0x12, then two length-prefixed arguments), or None at
/// the end of the connection.
fn read_frame(conn: &mut impl std::io::Read) -> Option<Vec<String>> {
    let mut head = [0u8; 1];
    conn.read_exact(&mut head).ok()?;
    assert_eq!(head[0], 0x12, "not an amp frame of two arguments");
    let mut args = Vec::new();
    for _ in 0..2 {
        let mut len = [0u8; 4];
        conn.read_exact(&mut len).ok()?;
        let mut arg = vec![0u8; u32::from_be_bytes(len) as usize];
        conn.read_exact(&mut arg).ok()?;
        args.push(String::from_utf8(arg).unwrap());
    }
    Some(args)
}

/// A stand-in for PM2's `rpc.sock` in `home`: `reloadLogs` is answered with
/// `reload_answer` after running `on_reload` (what PM2 does meanwhile), any other call
/// with an empty list. The returned channel gets the result of each `on_reload`.
fn fake_rpc<T: Send + 'static>(
    home: &Path,
    reload_answer: &'static str,
    mut on_reload: impl FnMut() -> T + Send + 'static,
) -> std::sync::mpsc::Receiver<T> {
    let listener = std::os::unix::net::UnixListener::bind(home.join("rpc.sock")).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let mut conn = conn.unwrap();
            while let Some(args) = read_frame(&mut conn) {
                let answer = if args[0].contains("\"reloadLogs\"") {
                    let _ = tx.send(on_reload());
                    reload_answer
                } else {
                    "j:{\"args\":[[]]}"
                };
                let mut reply = vec![0x12];
                for arg in [answer, args[1].as_str()] {
                    reply.extend_from_slice(&(arg.len() as u32).to_be_bytes());
                    reply.extend_from_slice(arg.as_bytes());
                }
                if conn.write_all(&reply).is_err() {
                    break;
                }
            }
        }
    });
    rx
}

/// PM2's answer to a `reloadLogs` that worked.
const RELOADED: &str = "j:{\"args\":[{}]}";

/// Waits (at most 10 s) for `path` to exist.
fn wait_for_file(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !path.exists() {
        assert!(Instant::now() < deadline, "{} never came", path.display());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A project rotating `app-out.log` at 1 KiB by `reload`, and an empty PM2 home for a
/// fake PM2's sockets.
fn reload_project() -> (Project, PathBuf) {
    let p = Project::new(
        "[rotation]\nmax_size = \"1KiB\"\nmax_age = \"\"\nretain = 0\nmethod = \"reload\"",
    );
    let home = p.path().join("pm2-home");
    std::fs::create_dir_all(&home).unwrap();
    (p, home)
}

/// 60 lines, 1,200 bytes: one rotation at 1 KiB.
fn lines_over_max_size() -> String {
    (0..60)
        .map(|i| format!("before rotation {i:03}\n"))
        .collect()
}

/// The daemon on the fake PM2 `home`; `bus`: whether it listens to PM2's bus.
fn start_on(p: &Project, home: &Path, bus: bool) -> Daemon {
    p.start_with_env(&[
        ("LOGAGG_PM2_HOME", home.to_str().unwrap()),
        ("LOGAGG_PM2_BUS", if bus { "true" } else { "false" }),
    ])
}

/// The text of `renamed`'s compressed archive, once it is there.
fn compressed_archive(renamed: &Path) -> String {
    let mut gz = renamed.as_os_str().to_owned();
    gz.push(".gz");
    let gz = PathBuf::from(gz);
    wait_for_file(&gz);
    String::from_utf8(archive_bytes(&gz)).unwrap()
}

/// A PM2 starved of CPU answers `reloadLogs` late, and its queued write may still land
/// in the renamed file before it reopens: the file is followed until PM2's answer,
/// however quiet it is meanwhile (here three times `linger`). A fake `rpc.sock` plays
/// PM2: it appends the late line to the renamed file 1.5 s after the request, then
/// answers.
#[test]
fn a_line_pm2_writes_into_the_renamed_file_before_it_answers_reload_is_kept() {
    let (p, home) = reload_project();
    let archive_dir = p.path().join("logs/pm2/archive");
    let dir = archive_dir.clone();
    let reloads = fake_rpc(&home, RELOADED, move || {
        std::thread::sleep(Duration::from_millis(1500));
        let renamed = archives(&dir, "app-out");
        assert_eq!(renamed.len(), 1, "{renamed:?}");
        append(&renamed[0], "late line from the old stream\n");
        std::thread::sleep(Duration::from_millis(100));
        renamed[0].clone()
    });
    let d = start_on(&p, &home, false);
    let live = p.log("app-out.log");
    let lines = lines_over_max_size();
    append(&live, &lines);
    let renamed = reloads.recv_timeout(Duration::from_secs(20)).unwrap();
    d.wait_total(&[("limit", "1")], 61, 10);
    let body = d.search(&[("q", "\"late line\"")]);
    assert_eq!(body["total"], 1, "{body:#}");
    assert_eq!(body["hits"][0]["message"], "late line from the old stream");
    // The archive is compressed once the file is finished: with the late line in it.
    let text = compressed_archive(&renamed);
    assert_eq!(text, format!("{lines}late line from the old stream\n"));
}

/// PM2's `reloadLogs` destroys the old write stream with the write it still queues; PM2
/// sent those bytes on its bus first. A fake PM2 (its own `pub.sock` and `rpc.sock`)
/// announces every write on the bus, and at the reload writes one queued write to the
/// renamed file, drops the next, and writes the one after to the new file: the dropped
/// write is put back into the renamed file from the bus, indexed once, kept in the
/// archive, and counted in `/metrics`.
#[test]
fn a_write_pm2_drops_at_reload_is_put_back_from_its_bus() {
    put_back_from_the_bus(false);
}

/// The same when the daemon reads the app's bus message of the write that set off the
/// rotation only after the rename (the bus and the files are read on different
/// threads): the app's stream is first heard of after the rename.
#[test]
fn a_dropped_write_is_put_back_when_the_bus_is_read_after_the_rename() {
    put_back_from_the_bus(true);
}

/// A fake PM2 drops a write at a reload, as described above; with `bus_late` the bus
/// message of the lines that fill the file comes after the rename.
fn put_back_from_the_bus(bus_late: bool) {
    use std::sync::{Arc, Mutex};
    let (p, home) = reload_project();
    let bus_listener = std::os::unix::net::UnixListener::bind(home.join("pub.sock")).unwrap();
    let archive_dir = p.path().join("logs/pm2/archive");
    let live = p.log("app-out.log");
    let bus: Arc<Mutex<Option<std::os::unix::net::UnixStream>>> = Arc::default();
    // PM2's order: the bus message, then the write (or none, for the dropped one).
    let say = {
        let bus = bus.clone();
        move |data: &str| {
            let payload = serde_json::json!({
                "process": {"name": "app", "pm_id": 0, "namespace": "default"},
                "at": 1_795_314_995_219i64,
                "data": data,
            });
            let frame = crate::harness::bus_frame("log:out", &payload);
            bus.lock()
                .unwrap()
                .as_mut()
                .unwrap()
                .write_all(&frame)
                .unwrap();
        }
    };
    let queued = "queued write 1\nqueued write 2\n";
    let dropped = "dropped write 1\ndropped write 2\n";
    let after = "after the reload\n";
    let (dir, new_file, pm2_say) = (archive_dir.clone(), live.clone(), say.clone());
    let reloads = fake_rpc(&home, RELOADED, move || {
        let renamed = archives(&dir, "app-out");
        assert_eq!(renamed.len(), 1, "{renamed:?}");
        if bus_late {
            pm2_say(&lines_over_max_size());
        }
        pm2_say(queued);
        append(&renamed[0], queued);
        pm2_say(dropped);
        // Answered, then the new file's first write.
        let new_file = new_file.clone();
        let pm2_say = pm2_say.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            pm2_say(after);
            append(&new_file, after);
        });
        renamed[0].clone()
    });
    let d = start_on(&p, &home, true);
    *bus.lock().unwrap() = Some(bus_listener.accept().unwrap().0);
    let lines = lines_over_max_size();
    if !bus_late {
        say(&lines);
    }
    append(&live, &lines);
    let renamed = reloads.recv_timeout(Duration::from_secs(20)).unwrap();
    d.wait_total(&[("service", "app")], 65, 20);
    let body = d.search(&[("q", "dropped"), ("order", "asc")]);
    assert_eq!(body["total"], 2, "{body:#}");
    assert_eq!(body["hits"][0]["message"], "dropped write 1");
    assert_eq!(body["hits"][1]["message"], "dropped write 2");
    // Indexed from the renamed file, right after the queued write.
    let offset = (lines.len() + queued.len()) as u64;
    assert_eq!(body["hits"][0]["offset"], offset);
    assert_eq!(body["hits"][0]["file"], renamed.to_str().unwrap());
    let text = compressed_archive(&renamed);
    assert_eq!(text, format!("{lines}{queued}{dropped}"));
    assert_eq!(std::fs::read_to_string(&live).unwrap(), after);
    assert_eq!(
        metric(&d, "logagg_reload_put_back_bytes_total"),
        dropped.len() as u64
    );
    assert_eq!(d.search(&[("q", "after")])["total"], 1);
}

/// When PM2 refuses `reloadLogs`, the file is renamed back and followed there at once:
/// what was read is not read again, what comes next is read, and the failure shows in
/// `/api/status`.
#[test]
fn a_reload_pm2_refuses_puts_the_file_back_and_reads_nothing_twice() {
    let (p, home) = reload_project();
    let reloads = fake_rpc(&home, "j:{\"error\":{\"message\":\"busy\"}}", || ());
    let d = start_on(&p, &home, false);
    let live = p.log("app-out.log");
    let lines = lines_over_max_size();
    append(&live, &lines);
    reloads.recv_timeout(Duration::from_secs(20)).unwrap();
    d.wait_total(&[("limit", "1")], 60, 10);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !live.exists() {
        assert!(Instant::now() < deadline, "the file was not put back");
        std::thread::sleep(Duration::from_millis(50));
    }
    append(&live, "after the failed reload\n");
    d.wait_total(&[("limit", "1")], 61, 10);
    // Longer than linger and a rescan: nothing is read a second time.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(d.search(&[("limit", "1")])["total"], 61);
    assert_eq!(
        std::fs::read_to_string(&live).unwrap(),
        format!("{lines}after the failed reload\n")
    );
    let s = status(&d);
    let f = file_status(&s, &live);
    assert!(
        f["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("PM2 did not reopen its log files")),
        "{s:#}"
    );
}
