//! The crash loop: a real PM2 app writes numbered lines fast (100,000 a second by
//! default, `LOGAGG_TORTURE_LINES_PER_MS`; 0 for as fast as PM2 takes them), logagg
//! rotates the file every 256 KiB (by collapse; see `method` below), and the daemon is
//! killed with -9 at random moments, six rounds (`LOGAGG_TORTURE_ROUNDS`, 50 in
//! bench/torture.sh). After each restart the app is paused and, once everything has
//! settled, the archives in name order followed by the live file are exactly the lines
//! written, every archive is valid gzip, no temporary file is left, and the index holds
//! exactly as many records as lines written (never more, checked while it catches up);
//! at the end every line is checked to be in the index exactly once.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::daemon_harness::{
    archive_bytes, archives, assert_exact_sequence, assert_indexed_once, metric, Daemon, Project,
};
use crate::harness::{wait_until, AppSpec, Pm2};

/// Writes `seq=000000000`, `seq=000000001`, ... as fast as stdout takes them, in
/// blocks of `FLOOD_BLOCK` lines, every millisecond when `FLOOD_BLOCK` is set (so a
/// bounded test does not write millions of lines a second; without it, one block after
/// another with nothing in between). While the file `pause` exists it stops and writes
/// the number of lines written so far into `ack` (stdout to a pipe is synchronous on
/// Linux, so they have all been handed to PM2 by then).
const FLOOD_APP: &str = r#"
const fs = require('fs');
const path = require('path');
const pause = path.join(__dirname, 'pause');
const ack = path.join(__dirname, 'ack');
const block = Number(fs.readFileSync(path.join(__dirname, 'block'), 'utf8')) || 0;
let seq = 0;
let paused = false;
let acked = false;
setInterval(() => { paused = fs.existsSync(pause); }, 10);
function write() {
  if (paused) {
    if (!acked) {
      fs.writeFileSync(ack + '.tmp', String(seq));
      fs.renameSync(ack + '.tmp', ack);
      acked = true;
    }
    setTimeout(write, 10);
    return;
  }
  acked = false;
  let buf = '';
  for (let i = 0; i < (block || 200); i++, seq++) buf += `seq=${String(seq).padStart(9, '0')}\n`;
  const next = () => (block ? setTimeout(write, 1) : setImmediate(write));
  if (process.stdout.write(buf)) next();
  else process.stdout.once('drain', next);
}
write();
"#;

fn line(i: u64) -> String {
    format!("seq={i:09}")
}

/// A small random number generator (xorshift64*), seeded so that a failing run can be
/// repeated with `LOGAGG_TORTURE_SEED`.
struct Rng(u64);

impl Rng {
    fn new() -> Rng {
        let seed = std::env::var("LOGAGG_TORTURE_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            })
            | 1;
        println!("LOGAGG_TORTURE_SEED={seed}");
        Rng(seed)
    }

    /// A duration in `lo..hi` milliseconds.
    fn ms(&mut self, lo: u64, hi: u64) -> Duration {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let r = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d);
        Duration::from_millis(lo + r % (hi - lo))
    }
}

/// `bus`: whether logagg listens to PM2's bus (`reload` needs it to put back the writes
/// PM2 drops; lines are counted apart from the bus's markers).
fn start_daemon(p: &Project, pm2: &Pm2, bus: bool) -> Daemon {
    p.start_with_env(&[
        ("LOGAGG_PM2_HOME", pm2.home().to_str().unwrap()),
        ("LOGAGG_PM2_BUS", if bus { "true" } else { "false" }),
    ])
}

/// Pauses the app and returns how many lines it has written.
fn pause(pm2: &Pm2) -> u64 {
    let dir = pm2.apps_dir();
    std::fs::write(dir.join("pause"), "").unwrap();
    let ack = dir.join("ack");
    assert!(
        wait_until(Duration::from_secs(30), || ack.exists()),
        "the app did not pause"
    );
    std::fs::read_to_string(&ack)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn resume(pm2: &Pm2) {
    let dir = pm2.apps_dir();
    let _ = std::fs::remove_file(dir.join("ack"));
    std::fs::remove_file(dir.join("pause")).unwrap();
}

/// The archives (in name order) and the bytes of archives then live file, read so that
/// no rotation ran in between: a collapse writes its archive first and then cuts the
/// live file, so the listing is taken again after the live file was read, until both
/// listings agree.
/// An uncompressed archive may also be replaced by its `.gz` while it is read: then
/// everything is read again.
fn snapshot(archive_dir: &Path, live: &Path) -> (Vec<PathBuf>, Vec<u8>) {
    'again: loop {
        let before = archives(archive_dir, "flood-out");
        let live_bytes = std::fs::read(live).unwrap_or_default();
        if archives(archive_dir, "flood-out") != before {
            continue;
        }
        let mut all = Vec::new();
        for a in &before {
            let Ok(raw) = std::fs::read(a) else {
                continue 'again;
            };
            if a.extension().is_some_and(|e| e == "gz") {
                let mut out = Vec::new();
                flate2::read::MultiGzDecoder::new(&raw[..])
                    .read_to_end(&mut out)
                    .unwrap_or_else(|e| panic!("{} is not valid gzip: {e}", a.display()));
                all.extend(out);
            } else {
                all.extend(raw);
            }
        }
        all.extend(live_bytes);
        return (before, all);
    }
}

/// What is wrong with a snapshot, if anything: archives must all be compressed by now
/// (and valid gzip: `archive_bytes` fails the test otherwise), no temporary file may be
/// left, and the bytes must be as many as lines `0..n`.
fn files_problem(archive_dir: &Path, found: &[PathBuf], all: &[u8], n: u64) -> Option<String> {
    if let Some(a) = found.iter().find(|a| !a.to_string_lossy().ends_with(".gz")) {
        return Some(format!("{} is not compressed yet", a.display()));
    }
    let temps: Vec<PathBuf> = std::fs::read_dir(archive_dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    if let Some(t) = temps
        .iter()
        .find(|t| t.file_name().unwrap().to_string_lossy().starts_with('.'))
    {
        return Some(format!("temporary file {} is left", t.display()));
    }
    let want = n as usize * (line(0).len() + 1);
    if all.len() == want {
        return None;
    }
    Some(format!(
        "{} bytes in archives + live file, {want} written",
        all.len()
    ))
}

/// Waits until the files hold as many bytes as lines `0..n` and all archives are
/// compressed, then checks every line of that same snapshot. Returns the archive count.
fn settle_files(archive_dir: &Path, live: &Path, n: u64, d: &Daemon) -> usize {
    let deadline = Instant::now() + Duration::from_secs(60);
    let (found, all) = loop {
        let (found, all) = snapshot(archive_dir, live);
        match files_problem(archive_dir, &found, &all, n) {
            None => break (found, all),
            Some(problem) => {
                if Instant::now() >= deadline {
                    describe(&found, live);
                    panic!(
                        "after 60s: {problem}\ndaemon log:\n{}",
                        log_tail(&d.stderr())
                    );
                }
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    if let Err(e) = std::panic::catch_unwind(|| assert_exact_sequence(&all, n, line)) {
        describe(&found, live);
        eprintln!("daemon log:\n{}", d.stderr());
        std::panic::resume_unwind(e);
    }
    found.len()
}

#[test]
fn torture_kill_9_at_random_moments_while_pm2_floods_and_rotates() {
    let rounds: usize = std::env::var("LOGAGG_TORTURE_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(6);
    let mut rng = Rng::new();
    // Lines a millisecond (100: about 1.4 MB/s); 0 is as fast as PM2 takes them, which
    // is millions a second, more than an index on a shared CI machine can keep up with.
    let block: u64 = std::env::var("LOGAGG_TORTURE_LINES_PER_MS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100);
    // Collapse by default (what `auto` picks where the file system allows it). With
    // LOGAGG_TORTURE_METHOD=reload (`auto`'s choice for a fork-mode app elsewhere) the
    // bus is on: PM2's `reloadLogs` destroys the old write stream with whatever it still
    // queues, and logagg puts those writes back from the bus, unless the daemon is
    // killed between the drop and its check (the bus messages are kept in memory only).
    let method = std::env::var("LOGAGG_TORTURE_METHOD").unwrap_or_else(|_| "collapse".into());
    println!("{rounds} rounds, {block} lines/ms (0: unthrottled), method {method}");
    let p = Project::new(&format!(
        "[rotation]\nmax_size = \"256KiB\"\nmax_age = \"\"\nretain = 0\nmax_archive_age = \"\"\n\
         max_total_size = \"\"\nmethod = \"{method}\""
    ));
    let mut pm2 = Pm2::start();
    let bus = method == "reload";
    let mut d = start_daemon(&p, &pm2, bus);
    let live = p.log("flood-out.log");
    let archive_dir = p.path().join("logs/pm2/archive");
    let spec = AppSpec {
        out_file: Some(live.clone()),
        error_file: Some(p.log("flood-error.log")),
        ..AppSpec::fork("flood")
    };
    std::fs::write(pm2.apps_dir().join("pause"), "").unwrap();
    std::fs::write(pm2.apps_dir().join("block"), block.to_string()).unwrap();
    pm2.start_app(&spec, FLOOD_APP);
    let started = Instant::now();
    let mut written = 0;
    let mut rotations = 0;
    // Bytes PM2 dropped at `reloadLogs` and logagg put back, over every daemon.
    let mut put_back = 0;
    for round in 0..rounds {
        resume(&pm2);
        // Kill at a random moment of the flood, with rotations and compressions on the
        // way; lines keep coming while no daemon runs.
        std::thread::sleep(rng.ms(100, 1200));
        if bus {
            put_back += metric(&d, "logagg_reload_put_back_bytes_total");
        }
        d.kill9();
        std::thread::sleep(rng.ms(0, 300));
        d = start_daemon(&p, &pm2, bus);
        std::thread::sleep(rng.ms(0, 600));
        written = pause(&pm2);
        assert!(written > 0);
        rotations = settle_files(&archive_dir, &live, written, &d);
        // Never more records than lines, however long the index takes to catch up.
        d.wait_total(&[("limit", "1"), ("kind", "line")], written, 120);
        println!(
            "round {round}: {written} lines, {rotations} archives, {:.1}s",
            started.elapsed().as_secs_f64()
        );
    }
    assert!(
        rotations >= rounds,
        "only {rotations} rotations in {rounds} rounds; daemon log:\n{}",
        log_tail(&d.stderr())
    );
    // Nothing went wrong in the app: no error output at all.
    assert_eq!(
        std::fs::read_to_string(p.log("flood-error.log")).unwrap_or_default(),
        ""
    );
    assert_indexed_once(&d, written, line);
    if bus {
        put_back += metric(&d, "logagg_reload_put_back_bytes_total");
    }
    println!(
        "{rounds} kill -9 rounds: {written} lines, {rotations} archives, 0 lost, 0 doubled, \
         {put_back} bytes PM2 dropped put back, {:.1}s",
        started.elapsed().as_secs_f64()
    );
    pm2.kill();
}

/// Which file holds which lines, to see where the sequence breaks.
fn describe(found: &[PathBuf], live: &Path) {
    for a in found.iter().map(PathBuf::as_path).chain([live]) {
        let bytes = if a == live {
            std::fs::read(a).unwrap_or_default()
        } else {
            archive_bytes(a)
        };
        let text = String::from_utf8_lossy(&bytes);
        let lines: Vec<&str> = text.lines().collect();
        eprintln!(
            "{}: {} lines, {:?} .. {:?}",
            a.display(),
            lines.len(),
            lines.first(),
            lines.last()
        );
    }
}

/// The end of a daemon's log, for failure messages.
fn log_tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}
