//! The rotation loop, on its own thread so that nothing it waits for (PM2's RPC, gzip,
//! the disk) can slow ingest. It decides when a live file is rotated (it grew past
//! `max_size`, its oldest line passed `max_age`, or someone asked), picks how (`reload`
//! when PM2 writes the file and answers, else `collapse`, else `copytruncate`), and
//! finishes what a rotation leaves: compressing an archive once its last line is safely
//! in the index, then retention.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use serde::Serialize;
use tracing::{debug, info, warn};

use super::archive::{self, Retention};
use super::journal::{self, Journal};
use super::status::{self, RotationBoard};
use crate::config::{Config, RotationMethod, RotationPolicy};
use crate::index::Committed;
use crate::metrics::Metrics;
use crate::pm2::naming::origin_of;
use crate::pm2::rpc::RpcClient;
use crate::tail::identity::FileKey;
use crate::tail::{Checkpoint, FileState, Followed, TailCommand, TailMsg};

/// How long PM2 gets to answer an RPC call.
const RPC_TIMEOUT: Duration = Duration::from_secs(2);
/// While archives wait for their file to be drained, they are checked this often.
const PENDING_POLL: Duration = Duration::from_millis(200);
/// With nothing to do the loop still wakes this often, for age limits and the stop flag.
const IDLE_WAKE: Duration = Duration::from_secs(1);
/// Retention by age is applied to every archive directory this often, rotation or not.
const SWEEP_EVERY: Duration = Duration::from_secs(600);
/// A rotation that failed is not tried again for the same file sooner than this.
const RETRY_AFTER: Duration = Duration::from_secs(10);

pub enum RotateMsg {
    /// The tailer saw the file grow past its size limit.
    Grew(FileKey),
    /// Rotate now (`logagg rotate`, `POST /api/rotate`): every live file of the service,
    /// or every live file.
    Now {
        service: Option<String>,
        reply: tokio::sync::oneshot::Sender<Vec<Rotated>>,
    },
}

/// The outcome of one rotation, as the API reports it.
#[derive(Clone, Debug, Serialize)]
pub struct Rotated {
    pub path: String,
    pub service: String,
    pub method: Option<&'static str>,
    pub archive: Option<String>,
    pub error: Option<String>,
}

/// An archive written uncompressed that still has to be compressed: a reloaded file once
/// the tailer has read it to its end and the index has committed that, or a copytruncate
/// copy, or one found at start.
struct Pending {
    /// The file's identity while the tailer may still read it.
    key: Option<FileKey>,
    path: PathBuf,
    stem: String,
    policy: RotationPolicy,
}

/// State recovered before the tailer starts.
pub struct Startup {
    journal: Journal,
    pending: Vec<Pending>,
}

/// Settles what a previous run left half done: interrupted collapses (adjusting the
/// checkpoints the tailer resumes from), temporary archive files, and uncompressed
/// archives, which are queued for compression. If such archives exist PM2 is asked to
/// reopen its files, in case the previous run died between its rename and `reloadLogs`.
pub fn prepare(config: &Config, resume: &mut [Checkpoint]) -> io::Result<Startup> {
    let mut journal = Journal::open(&config.data_dir)?;
    journal::reconcile(&mut journal, resume)?;
    let mut pending = Vec::new();
    for dir in archive_dirs(config) {
        let found = archive::recover(&dir)?;
        for tmp in &found.removed_temps {
            info!(path = %tmp.display(), "removed a half-written archive from an interrupted run");
        }
        // Compressed, but the crash came before the uncompressed copy was removed: the
        // .gz only gets its name once complete, so the copy is redundant.
        for done in &found.superseded {
            info!(path = %done.display(), "removing an archive that was already compressed");
            fs::remove_file(done)?;
        }
        for path in found.uncompressed {
            let Some(name) = path
                .file_name()
                .and_then(|n| archive::parse_archive_name(&n.to_string_lossy()))
            else {
                continue;
            };
            let policy = policy_of_stem(config, &name.stem).clone();
            if !policy.compress {
                continue;
            }
            let key = fs::metadata(&path).ok().map(|m| FileKey::of(&m));
            info!(path = %path.display(), "an archive left uncompressed; compressing it once read");
            pending.push(Pending {
                key,
                path,
                stem: name.stem,
                policy,
            });
        }
    }
    if !pending.is_empty() {
        if let Ok(mut rpc) = RpcClient::connect(&config.pm2.home, RPC_TIMEOUT) {
            let _ = rpc.reload_logs();
        }
    }
    Ok(Startup { journal, pending })
}

pub struct Rotator {
    config: Config,
    inbox: Receiver<RotateMsg>,
    tail: Sender<TailMsg>,
    followed: Followed,
    committed: Committed,
    board: RotationBoard,
    journal: Journal,
    pending: Vec<Pending>,
    stop: Arc<AtomicBool>,
    /// Files whose last rotation failed, and when: not retried before `RETRY_AFTER`.
    failed: std::collections::HashMap<FileKey, Instant>,
    last_sweep: Instant,
    /// Archives ready to compress go to their own thread, so a big gzip never delays
    /// the next rotation.
    compressor: Sender<Pending>,
    metrics: Metrics,
}

impl Rotator {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: Config,
        startup: Startup,
        inbox: Receiver<RotateMsg>,
        tail: Sender<TailMsg>,
        followed: Followed,
        committed: Committed,
        board: RotationBoard,
        stop: Arc<AtomicBool>,
    ) -> Rotator {
        let (compressor, jobs) = channel::<Pending>();
        let _ = std::thread::Builder::new()
            .name("compress".into())
            .spawn(move || compress_loop(jobs));
        Rotator {
            compressor,
            config,
            inbox,
            tail,
            followed,
            committed,
            board,
            journal: startup.journal,
            pending: startup.pending,
            stop,
            failed: Default::default(),
            metrics: Metrics::default(),
            // The first sweep runs at start.
            last_sweep: Instant::now() - SWEEP_EVERY,
        }
    }

    /// Where rotations are counted for `/metrics`.
    pub fn with_metrics(mut self, metrics: Metrics) -> Rotator {
        self.metrics = metrics;
        self
    }

    pub fn run(mut self) {
        while !self.stop.load(Ordering::Relaxed) {
            let wait = if self.pending.is_empty() && self.journal.is_empty() {
                IDLE_WAKE
            } else {
                PENDING_POLL
            };
            match self.inbox.recv_timeout(wait) {
                Ok(RotateMsg::Grew(key)) => self.on_growth(key),
                Ok(RotateMsg::Now { service, reply }) => {
                    let done = self.rotate_now(service.as_deref());
                    let _ = reply.send(done);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if self.stop.load(Ordering::Relaxed) {
                break;
            }
            self.check_ages();
            self.finish_pending();
            self.settle_journal();
            if self.last_sweep.elapsed() >= SWEEP_EVERY {
                self.sweep();
            }
        }
    }

    fn on_growth(&mut self, key: FileKey) {
        let Some(state) = self.state_of(key) else {
            return;
        };
        let policy = self.config.policy_for(&state.service).clone();
        let over = policy.max_size.is_some_and(|max| state.size >= max);
        if over && state.live && self.may_retry(key) {
            self.rotate(&state, &policy, "size");
        }
    }

    /// Files whose oldest unrotated line is older than their `max_age`.
    fn check_ages(&mut self) {
        let now = Utc::now();
        let due: Vec<FileState> = self
            .snapshot()
            .into_iter()
            // A file still being read (a backlog) is not judged by its age yet.
            .filter(|s| s.live && s.size > 0 && s.read_offset >= s.size)
            .filter(|s| {
                let policy = self.config.policy_for(&s.service);
                match (policy.max_age, s.oldest) {
                    (Some(max), Some(oldest)) => chrono::Duration::from_std(max)
                        .is_ok_and(|max| now.signed_duration_since(oldest) >= max),
                    _ => false,
                }
            })
            .collect();
        for state in due {
            if self.may_retry(state.key) {
                let policy = self.config.policy_for(&state.service).clone();
                self.rotate(&state, &policy, "age");
            }
        }
    }

    fn rotate_now(&mut self, service: Option<&str>) -> Vec<Rotated> {
        let targets: Vec<FileState> = self
            .snapshot()
            .into_iter()
            .filter(|s| s.live && s.size > 0)
            .filter(|s| service.is_none_or(|want| s.service == want))
            .collect();
        let mut done = Vec::new();
        for state in targets {
            if self.journal.entries().iter().any(|e| e.key == state.key) {
                done.push(Rotated {
                    path: state.path.to_string_lossy().into_owned(),
                    service: state.service.clone(),
                    method: None,
                    archive: None,
                    error: Some("its previous rotation is still being committed".into()),
                });
                continue;
            }
            let policy = self.config.policy_for(&state.service).clone();
            done.push(self.rotate(&state, &policy, "request"));
        }
        done
    }

    /// Not after a recent failure, and not while the file's previous collapse waits for
    /// its commit (its committed offsets still describe the file before that collapse).
    fn may_retry(&self, key: FileKey) -> bool {
        let collapsing = self.journal.entries().iter().any(|e| e.key == key);
        !collapsing
            && self
                .failed
                .get(&key)
                .is_none_or(|t| t.elapsed() >= RETRY_AFTER)
    }

    /// Rotates one live file, trying the methods in order of safety.
    fn rotate(&mut self, state: &FileState, policy: &RotationPolicy, why: &str) -> Rotated {
        let mut report = Rotated {
            path: state.path.to_string_lossy().into_owned(),
            service: state.service.clone(),
            method: None,
            archive: None,
            error: None,
        };
        let result = self.try_methods(state, policy);
        match result {
            Ok((method, archive)) => {
                info!(path = %state.path.display(), method, archive = %archive.display(), why, "rotated");
                self.failed.remove(&state.key);
                self.metrics.rotated();
                status::update(&self.board, &state.path, |r| {
                    r.rotations += 1;
                    r.last_rotation = Some(Utc::now());
                    r.last_method = Some(method);
                });
                report.method = Some(method);
                report.archive = Some(archive.to_string_lossy().into_owned());
            }
            Err(RotateError::NotYet(e)) => {
                debug!(path = %state.path.display(), reason = %e, "rotation postponed");
                report.error = Some(format!("not now: {e}"));
            }
            Err(RotateError::Failed(e)) => {
                warn!(path = %state.path.display(), error = %e, "rotation failed; will try again later");
                self.failed.insert(state.key, Instant::now());
                status::update(&self.board, &state.path, |r| {
                    r.last_error = Some(e.clone());
                    r.last_error_at = Some(Utc::now());
                });
                report.error = Some(e);
            }
        }
        report
    }

    fn try_methods(
        &mut self,
        state: &FileState,
        policy: &RotationPolicy,
    ) -> Result<(&'static str, PathBuf), RotateError> {
        // The tailer hears of a rename only later: a growth signal queued before the last
        // rotation of this file still carries its old state, whose path now leads to the
        // new file PM2 just opened. Renaming that would rotate a file nobody chose (seen
        // in the crash-loop test: two reloads 11 ms apart, the archive labelled with the
        // old file's identity), and each needless `reloadLogs` is one more chance for PM2
        // to drop what its write stream still buffers.
        match fs::metadata(&state.path) {
            Ok(meta) if FileKey::of(&meta) == state.key => {}
            _ => {
                return Err(RotateError::NotYet(
                    "already rotated: its path leads to another file now".into(),
                ))
            }
        }
        archive::ensure_dir(&policy.archive_dir).map_err(|e| {
            RotateError::Failed(format!(
                "cannot create archive_dir {}: {e}",
                policy.archive_dir.display()
            ))
        })?;
        // `auto`: collapse first. It needs nothing from the writer and loses nothing.
        // `reloadLogs` is the fallback where the file system refuses collapse: PM2 then
        // destroys the old write stream with whatever it still queues (a cluster worker
        // loses writes in flight; a fork app at ~100,000 lines/s lost one queued write
        // in 3 of 9 torture runs). A rename cannot cross file systems, so reload only
        // with the archives on the live file's device.
        if matches!(
            policy.method,
            RotationMethod::Auto | RotationMethod::Collapse
        ) {
            match self.collapse(state, policy) {
                Ok(a) => return Ok(("collapse", a)),
                Err(CollapseError::Refused(e)) => {
                    warn!(path = %state.path.display(), error = %e, "the file system refuses collapse; falling back");
                }
                Err(CollapseError::Failed(e)) => return Err(RotateError::Failed(e)),
                Err(CollapseError::NotYet(e)) => return Err(RotateError::NotYet(e)),
            }
        }
        let reload = match policy.method {
            RotationMethod::Reload => true,
            RotationMethod::Auto => {
                same_device(&state.path, &policy.archive_dir)
                    && self.pm2_writer(&state.path) == Some(Pm2Writer::Fork)
            }
            _ => false,
        };
        if reload {
            return self
                .reload(state, policy)
                .map(|a| ("reload", a))
                .map_err(RotateError::Failed);
        }
        self.copytruncate(state, policy)
            .map(|a| ("copytruncate", a))
            .map_err(RotateError::Failed)
    }

    /// Which kind of PM2 process writes `path`, when PM2 answers and lists it among its
    /// apps' log files.
    fn pm2_writer(&self, path: &Path) -> Option<Pm2Writer> {
        let mut rpc = RpcClient::connect(&self.config.pm2.home, RPC_TIMEOUT).ok()?;
        let files = rpc.log_files().ok()?;
        let want = canonical(path);
        let app = files.iter().find(|f| {
            [&f.out, &f.err, &f.combined]
                .into_iter()
                .flatten()
                .any(|p| canonical(p) == want)
        })?;
        Some(if app.cluster {
            Pm2Writer::Cluster
        } else {
            Pm2Writer::Fork
        })
    }

    /// `reload`: rename into the archive directory, ask PM2 to reopen its files, keep
    /// reading the renamed file until it is quiet, then compress it.
    fn reload(&mut self, state: &FileState, policy: &RotationPolicy) -> Result<PathBuf, String> {
        let stem = stem_of(&state.path);
        let dest = archive::archive_path(&policy.archive_dir, &stem, Utc::now(), false);
        fs::rename(&state.path, &dest).map_err(|e| {
            format!(
                "cannot move {} to {}: {e}",
                state.path.display(),
                dest.display()
            )
        })?;
        let _ = self.tail.send(TailMsg::Command(TailCommand::Moved {
            key: state.key,
            to: dest.clone(),
        }));
        let reopened = RpcClient::connect(&self.config.pm2.home, RPC_TIMEOUT)
            .and_then(|mut rpc| rpc.reload_logs());
        if let Err(e) = reopened {
            // PM2 still writes into the renamed file: put it back where it was, unless
            // something new already took its place.
            let back = !state.path.exists() && fs::rename(&dest, &state.path).is_ok();
            let _ = self.tail.send(TailMsg::Command(TailCommand::Released {
                key: state.key,
                back_to: back.then(|| state.path.clone()),
            }));
            return Err(format!("PM2 did not reopen its log files: {e}"));
        }
        let _ = self.tail.send(TailMsg::Command(TailCommand::Released {
            key: state.key,
            back_to: None,
        }));
        self.pending.push(Pending {
            key: Some(state.key),
            path: dest.clone(),
            stem,
            policy: policy.clone(),
        });
        Ok(dest)
    }

    /// `collapse`: archive the bytes already committed to the index, then cut exactly
    /// that block-aligned prefix from the live file while its writer keeps appending.
    fn collapse(
        &mut self,
        state: &FileState,
        policy: &RotationPolicy,
    ) -> Result<PathBuf, CollapseError> {
        let failed = |what: &str, e: io::Error| {
            CollapseError::Failed(format!("{what} {}: {e}", state.path.display()))
        };
        let Some(cp) = self.committed_checkpoint(state.key) else {
            return Err(CollapseError::NotYet(
                "nothing of it is committed to the index yet".into(),
            ));
        };
        let file = fs::File::open(&state.path).map_err(|e| failed("cannot open", e))?;
        let meta = file.metadata().map_err(|e| failed("cannot stat", e))?;
        if FileKey::of(&meta) != state.key {
            return Err(CollapseError::Failed("the file was replaced".into()));
        }
        let block = std::os::unix::fs::MetadataExt::blksize(&meta).max(512);
        let len = cp.offset / block * block;
        if len == 0 {
            if cp.offset >= meta.len() {
                // All of it is read and committed, and it is smaller than one block:
                // collapse cannot cut it, only copytruncate can.
                return Err(CollapseError::Refused(format!(
                    "the file is smaller than one {block}-byte block"
                )));
            }
            return Err(CollapseError::NotYet(format!(
                "less than one {block}-byte block of it is committed to the index yet"
            )));
        }
        let stem = stem_of(&state.path);
        let dest = archive::archive_path(&policy.archive_dir, &stem, Utc::now(), policy.compress);
        let entry = journal::entry_for(&file, state.key, &state.path, len, cp.base, &dest)
            .map_err(|e| failed("cannot read", e))?;
        self.journal
            .add(entry)
            .map_err(|e| failed("cannot write the collapse journal for", e))?;
        let level = policy.compress.then_some(policy.compress_level);
        if let Err(e) = archive::write_archive(&state.path, 0..len, &dest, level) {
            let _ = self.journal.retain(|j| j.archive != dest);
            return Err(CollapseError::Failed(format!(
                "cannot write archive {}: {e}",
                dest.display()
            )));
        }
        let (tx, rx) = channel();
        let _ = self.tail.send(TailMsg::Command(TailCommand::Collapse {
            key: state.key,
            len,
            reply: tx,
        }));
        // Waited for without a limit: the tailer may be held up by a busy index, and a
        // command given up on here could still be carried out there later.
        let outcome = rx
            .recv()
            .unwrap_or_else(|_| Err(io::Error::other("the tailer stopped")));
        match outcome {
            Ok(()) => Ok(dest),
            Err(e) => {
                // Not collapsed: those bytes are still in the live file, so the archive
                // would hold them twice.
                let _ = fs::remove_file(&dest);
                let _ = self.journal.retain(|j| j.archive != dest);
                match e.raw_os_error() {
                    Some(libc::EOPNOTSUPP) | Some(libc::EINVAL) | Some(libc::ENOSYS) => {
                        Err(CollapseError::Refused(e.to_string()))
                    }
                    _ => Err(failed("cannot collapse", e)),
                }
            }
        }
    }

    /// `copytruncate`: the last resort. Lines written between the copy and the
    /// truncation are lost; the tailer measures how many bytes that was.
    fn copytruncate(
        &mut self,
        state: &FileState,
        policy: &RotationPolicy,
    ) -> Result<PathBuf, String> {
        let stem = stem_of(&state.path);
        let dest = archive::archive_path(&policy.archive_dir, &stem, Utc::now(), false);
        let (tx, rx) = channel();
        let _ = self.tail.send(TailMsg::Command(TailCommand::CopyTruncate {
            key: state.key,
            dest: dest.clone(),
            reply: tx,
        }));
        let lost = rx
            .recv()
            .unwrap_or_else(|_| Err(io::Error::other("the tailer stopped")))
            .map_err(|e| format!("copytruncate of {} failed: {e}", state.path.display()))?;
        if lost > 0 {
            warn!(path = %state.path.display(), lost_bytes = lost, "copytruncate lost bytes written during the copy");
        }
        status::update(&self.board, &state.path, |r| {
            r.copytruncate_lost_bytes += lost
        });
        self.pending.push(Pending {
            key: None,
            path: dest.clone(),
            stem,
            policy: policy.clone(),
        });
        Ok(dest)
    }

    /// Compresses the archives whose file is read to its end and committed, then
    /// applies retention to their live file's archives.
    fn finish_pending(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let followed: HashSet<FileKey> = self.snapshot().iter().map(|s| s.key).collect();
        let committed: HashSet<FileKey> = self
            .committed
            .lock()
            .map(|c| c.keys().copied().collect())
            .unwrap_or_default();
        let mut still = Vec::new();
        for p in std::mem::take(&mut self.pending) {
            if p.key
                .is_some_and(|k| followed.contains(&k) || committed.contains(&k))
            {
                still.push(p);
                continue;
            }
            let _ = self.compressor.send(p);
        }
        self.pending = still;
    }

    /// Retention by age for every stem in every archive directory, rotations or not.
    fn sweep(&mut self) {
        self.last_sweep = Instant::now();
        for dir in archive_dirs(&self.config) {
            let Ok(entries) = fs::read_dir(&dir) else {
                continue;
            };
            let stems: HashSet<String> = entries
                .flatten()
                .filter_map(|e| archive::parse_archive_name(&e.file_name().to_string_lossy()))
                .map(|n| n.stem)
                .collect();
            for stem in stems {
                let policy = policy_of_stem(&self.config, &stem).clone();
                if policy.archive_dir == dir {
                    retain(&policy, &stem);
                }
            }
        }
    }

    /// Forgets journal entries whose collapse the index has committed.
    fn settle_journal(&mut self) {
        if self.journal.is_empty() {
            return;
        }
        let Ok(committed) = self.committed.lock().map(|c| c.clone()) else {
            return;
        };
        let _ = self.journal.retain(|e| {
            committed
                .get(&e.key)
                .is_some_and(|cp| cp.base < e.base_before + e.len)
        });
    }

    fn committed_checkpoint(&self, key: FileKey) -> Option<Checkpoint> {
        self.committed.lock().ok()?.get(&key).cloned()
    }

    fn state_of(&self, key: FileKey) -> Option<FileState> {
        self.followed.lock().ok()?.get(&key).cloned()
    }

    fn snapshot(&self) -> Vec<FileState> {
        self.followed
            .lock()
            .map(|f| f.values().cloned().collect())
            .unwrap_or_default()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pm2Writer {
    /// The PM2 daemon writes the file and reopens it cleanly on `reloadLogs`.
    Fork,
    /// A cluster worker writes it.
    Cluster,
}

enum RotateError {
    /// Not possible yet, without anything being wrong: tried again on the next signal.
    NotYet(String),
    Failed(String),
}

enum CollapseError {
    /// The file system does not allow it: copytruncate may.
    Refused(String),
    /// Too little of the file is in the index yet; a later try will do.
    NotYet(String),
    Failed(String),
}

/// Compresses archives as they come, then applies retention to their live file's
/// archives. A failure is retried a few times, then left to the next start's recovery.
fn compress_loop(jobs: Receiver<Pending>) {
    for p in jobs {
        let mut tries = 0;
        while let Err(e) = compress(&p) {
            tries += 1;
            warn!(path = %p.path.display(), error = %e, tries, "cannot compress the archive");
            if tries >= 3 {
                break;
            }
            std::thread::sleep(RETRY_AFTER);
        }
        retain(&p.policy, &p.stem);
    }
}

fn compress(p: &Pending) -> io::Result<()> {
    if !p.policy.compress {
        return Ok(());
    }
    let len = fs::metadata(&p.path)?.len();
    let mut gz = p.path.clone().into_os_string();
    gz.push(".gz");
    let gz = PathBuf::from(gz);
    let stats = archive::write_archive(&p.path, 0..len, &gz, Some(p.policy.compress_level))?;
    fs::remove_file(&p.path)?;
    debug!(archive = %gz.display(), bytes_in = stats.bytes_in, bytes_out = stats.bytes_out, "compressed");
    Ok(())
}

fn retain(policy: &RotationPolicy, stem: &str) {
    let r = Retention {
        retain: policy.retain,
        max_age: policy.max_archive_age,
        max_total_size: policy.max_total_size,
    };
    match archive::apply_retention(&policy.archive_dir, stem, &r, Utc::now()) {
        Ok(deleted) => {
            for d in deleted {
                info!(path = %d.display(), "retention removed an archive");
            }
        }
        Err(e) => warn!(dir = %policy.archive_dir.display(), error = %e, "retention failed"),
    }
}

/// Every archive directory the configuration can send archives to.
pub fn archive_dirs(config: &Config) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::iter::once(&config.rotation)
        .chain(config.services.values())
        .map(|p| p.archive_dir.clone())
        .collect();
    dirs.sort();
    dirs.dedup();
    dirs
}

/// The policy of the service an archive stem (`duck-out`, `api-error-3`) belongs to.
fn policy_of_stem<'a>(config: &'a Config, stem: &str) -> &'a RotationPolicy {
    config.policy_for(&origin_of(Path::new(&format!("{stem}.log"))).service)
}

/// A live file's name without `.log`: the first part of its archives' names.
pub fn stem_of(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    name.strip_suffix(".log").unwrap_or(&name).to_string()
}

/// Whether two paths are on the same file system (so a rename between them works).
fn same_device(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (fs::metadata(a), fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev(),
        _ => false,
    }
}

fn canonical(path: &Path) -> PathBuf {
    fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}
