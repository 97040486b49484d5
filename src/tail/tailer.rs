//! The tailer loop: discovery (notify events plus a periodic rescan for whatever the
//! events missed), reading every followed file, lingering on files that were renamed away
//! or deleted, and sending records with their checkpoints to the index in bounded batches.

use std::collections::{HashMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use notify::{EventKind, RecursiveMode, Watcher};
use tracing::{debug, info, warn};

use super::checkpoint::Checkpoint;
use super::early::{self, BusChunk, BusNote, EarlyLines, Read, Reconcile};
use super::identity::FileKey;
use super::reader::FileReader;
use super::rescue::{self, Rescues, Verdict};
use crate::index::search::SortKey;
use crate::live::RecordSink;
use crate::record::{Record, TsSource};

/// Records and the checkpoints they bring each file to. The index applies a batch as a
/// whole: the checkpoints are only stored together with the records before them.
#[derive(Debug, Default)]
pub struct Batch {
    pub records: Vec<Record>,
    pub checkpoints: Vec<Checkpoint>,
    /// Files no longer followed: their checkpoints leave the index's state.
    pub dropped: Vec<FileKey>,
    /// Sent because it was full with more still to read: the tailer is behind a
    /// backlog, and the index keeps merges off until it has caught up.
    pub behind: bool,
}

/// A batch is sent when it holds this many records or bytes, so memory in flight stays
/// bounded whatever the line lengths.
const BATCH_RECORDS: usize = 2048;
const BATCH_BYTES: usize = 8 << 20;
/// Bytes one file may read before the others get a turn.
const READ_TURN: u64 = 4 << 20;
/// How long lines already shown to followers may wait before they go to the index. The
/// index only makes them searchable at its next commit (`commit_interval`, a second by
/// default), so this costs searches little; what it saves is waking the indexer and
/// tantivy's threads once per line of a trickle, on the cores the followers' path needs.
const INDEX_HANDOFF: Duration = Duration::from_millis(50);
/// The least time a file is followed after it left its path, whatever `linger` is: a
/// rescan may see a rotator's rename before the tailer gets the rotator's word of it.
const MIN_GONE: Duration = Duration::from_millis(250);
/// How often files that were renamed away or deleted are polled while they linger (they
/// no longer produce directory events).
const GONE_POLL: Duration = Duration::from_millis(200);

/// What the tailer's loop wakes up for: file events, and requests from the rotator that
/// must happen between two reads of the file they concern.
pub enum TailMsg {
    Fs(notify::Result<notify::Event>),
    Command(TailCommand),
    /// Wakes the loop so it sees the stop flag at once.
    Stop,
    /// The watcher's thread read lines that now wait for the index: wakes the loop so
    /// it hands them over within INDEX_HANDOFF.
    Held,
    /// Lines from PM2's bus wait (see [`EarlyLines`]).
    Early,
}

pub enum TailCommand {
    /// The rotator renamed a followed file to `to`: keep reading it there until it is
    /// quiet, and record the new path in its checkpoint so a restart finds it.
    /// It is not finished before [`TailCommand::Released`]: its writer may still append.
    Moved { key: FileKey, to: PathBuf },
    /// The writer of a file renamed by [`TailCommand::Moved`] has let go of it (PM2
    /// answered `reloadLogs`, or the rotation was given up): `linger` counts from now.
    /// `back_to`: the rotation was given up and the file renamed back to this path.
    Released {
        key: FileKey,
        back_to: Option<PathBuf>,
    },
    /// Cut the first `len` bytes of the file in place (see [`FileReader::collapse`]).
    Collapse {
        key: FileKey,
        len: u64,
        reply: Sender<io::Result<()>>,
    },
    /// Read the file to its end, copy it to `dest` and truncate it; the reply is the
    /// number of bytes possibly lost.
    CopyTruncate {
        key: FileKey,
        dest: PathBuf,
        reply: Sender<io::Result<u64>>,
    },
}

/// What the tailer knows about a followed file, shared with the rotator and the status
/// endpoint.
#[derive(Clone, Debug)]
pub struct FileState {
    pub key: FileKey,
    pub path: PathBuf,
    pub service: String,
    /// Still at a path the globs match (not renamed away or deleted).
    pub live: bool,
    pub size: u64,
    /// The first byte not yet emitted, as a position in the file now.
    pub read_offset: u64,
    /// Time of the oldest line read since the file was opened or last rotated.
    pub oldest: Option<DateTime<Utc>>,
}

pub type Followed = Arc<Mutex<HashMap<FileKey, FileState>>>;

/// The `max_size` of a service, if it has one.
pub type SizeLimit = Box<dyn Fn(&str) -> Option<u64> + Send>;

/// How the tailer tells the rotator that a file grew past its size limit.
pub struct GrowthHook {
    /// Queues a signal without blocking; false when the rotator's queue is full.
    pub notify: Box<dyn Fn(FileKey) -> bool + Send>,
    pub size_limit: SizeLimit,
}

/// The tailer's connections to the rest of the daemon.
pub struct TailerLinks {
    /// A sender into the tailer's own inbox, for the file watcher.
    pub inbox_tx: Sender<TailMsg>,
    pub inbox: Receiver<TailMsg>,
    pub followed: Followed,
    pub growth: Option<GrowthHook>,
    /// Lines from PM2's bus, shown before their files have them.
    pub early: Option<EarlyLines>,
}

/// A file over its size limit is signalled to the rotator at most this often.
const GROWTH_SIGNAL_EVERY: Duration = Duration::from_millis(200);

#[derive(Clone, Debug)]
pub struct TailerOptions {
    /// Absolute glob patterns.
    pub globs: Vec<String>,
    pub max_line_bytes: u64,
    pub rescan_interval: Duration,
    pub linger: Duration,
    /// Where rotated files go: a checkpoint whose path no longer leads to its file is
    /// looked for there (the daemon may have died between a rename and its commit).
    pub archive_dirs: Vec<PathBuf>,
}

pub struct Tailer {
    opts: TailerOptions,
    patterns: Vec<glob::Pattern>,
    files: HashMap<FileKey, FileReader>,
    by_path: HashMap<PathBuf, FileKey>,
    /// Checkpoints from the index, waiting for their file to be found at start.
    resume: HashMap<FileKey, Checkpoint>,
    sink: RecordSink,
    stop: Arc<AtomicBool>,
    batch: Batch,
    batch_bytes: usize,
    /// How many of the batch's records followers have seen already.
    shown: usize,
    /// Since when the batch holds something the index has not got (see INDEX_HANDOFF).
    held_since: Option<Instant>,
    /// The loop has ended: the watcher's callback must not read any more.
    closed: bool,
    touched: HashSet<FileKey>,
    watched_dirs: HashSet<PathBuf>,
    links: TailerLinks,
    /// When each file over its size limit was last signalled to the rotator.
    signalled: HashMap<FileKey, Instant>,
    /// Paths matched by the globs that cannot be followed (not a regular file, a
    /// symlink loop, unreadable), with the problem last logged: each is logged once, not
    /// at every rescan, and again only when the problem changes.
    refused: HashMap<PathBuf, String>,
    /// Files PM2's bus announced lines for, with the lines in flight.
    reconciles: HashMap<FileKey, Reconcile>,
    /// Records of the batch (indexes, ascending) shown early from the bus: `show`
    /// passes over them.
    shown_early: Vec<usize>,
    /// Files renamed away by the rotator for a reload, with when their writer let go
    /// (PM2 answered `reloadLogs`). Not finished before, however quiet they are: PM2
    /// starved of CPU writes nothing for a while, then its queued write still lands in
    /// the renamed file.
    reloading: HashMap<FileKey, Option<Instant>>,
    /// PM2's recent bus messages and the files renamed for a reload, to put back the
    /// writes PM2 drops when it reopens (see [`rescue`]). Fed only while the bus is on.
    rescues: Rescues,
}

impl Tailer {
    pub fn new(
        opts: TailerOptions,
        resume: Vec<Checkpoint>,
        sink: RecordSink,
        stop: Arc<AtomicBool>,
        links: TailerLinks,
    ) -> Tailer {
        let patterns = opts
            .globs
            .iter()
            .filter_map(|g| match glob::Pattern::new(g) {
                Ok(p) => Some(p),
                Err(e) => {
                    warn!(glob = %g, error = %e, "ignoring a bad glob");
                    None
                }
            })
            .collect();
        Tailer {
            opts,
            patterns,
            files: HashMap::new(),
            by_path: HashMap::new(),
            resume: resume.into_iter().map(|cp| (cp.key, cp)).collect(),
            sink,
            stop,
            batch: Batch::default(),
            batch_bytes: 0,
            shown: 0,
            held_since: None,
            closed: false,
            touched: HashSet::new(),
            watched_dirs: HashSet::new(),
            links,
            signalled: HashMap::new(),
            refused: HashMap::new(),
            reconciles: HashMap::new(),
            shown_early: Vec::new(),
            reloading: HashMap::new(),
            rescues: Rescues::default(),
        }
    }

    /// Runs until the stop flag is set; returns after sending what was read.
    ///
    /// A line appended to a followed file is read on the file watcher's own thread, in
    /// its event callback, and shown to followers from there: handing the event to this
    /// loop first would cost one more thread wake-up per line, a tenth of the delay from
    /// a write to `logagg tail` on a 2-core machine. Everything else (new, moved and
    /// gone files, the rotator's commands, the rescan, the hand-off to the index) is
    /// done by this loop. Both take the one lock around the tailer's state; the loop
    /// never holds it while it waits.
    pub fn run(mut self) {
        // The loop waits on the inbox without the lock: it leaves the shared state (a
        // closed receiver takes its place).
        let inbox = std::mem::replace(&mut self.links.inbox, std::sync::mpsc::channel().1);
        let tx = self.links.inbox_tx.clone();
        let early = self.links.early.clone();
        let shared = Arc::new(Mutex::new(self));
        if let Some(early) = &early {
            early.attach(Arc::downgrade(&shared), Tailer::take_early, tx.clone());
        }
        let on_watcher = shared.clone();
        let mut watcher = match notify::recommended_watcher(move |ev: notify::Result<_>| {
            if let Ok(event) = &ev {
                match lock(&on_watcher).read_on_event(event) {
                    OnEvent::Read => return,
                    OnEvent::ReadAndHeld => {
                        let _ = tx.send(TailMsg::Held);
                        return;
                    }
                    OnEvent::ForTheLoop => {}
                }
            }
            let _ = tx.send(TailMsg::Fs(ev));
        }) {
            Ok(w) => Some(w),
            Err(e) => {
                warn!(error = %e, "file events unavailable; relying on the periodic rescan");
                None
            }
        };
        {
            let mut t = lock(&shared);
            t.watch_dirs(watcher.as_mut());
            t.rescan();
            t.resume_moved();
            t.read_all();
            t.send();
        }

        let mut next_rescan = Instant::now() + lock(&shared).opts.rescan_interval;
        loop {
            let (wait, lingering) = {
                let t = lock(&shared);
                if t.stop.load(Ordering::Relaxed) {
                    break;
                }
                let lingering = t.files.values().any(|f| f.gone_since.is_some());
                let mut wait = next_rescan.saturating_duration_since(Instant::now());
                if lingering {
                    wait = wait.min(GONE_POLL);
                }
                if let Some(since) = t.held_since {
                    wait = wait.min(INDEX_HANDOFF.saturating_sub(since.elapsed()));
                }
                (wait, lingering)
            };
            // No periodic wake-up beyond the rescan: the daemon sends `Stop` to end it.
            let msgs = wait_for_messages(&inbox, wait);
            let mut t = lock(&shared);
            let (dirty, structural) = t.take_events(msgs);
            if t.stop.load(Ordering::Relaxed) {
                break;
            }
            let now = Instant::now();
            if structural || now >= next_rescan {
                t.watch_dirs(watcher.as_mut());
                t.rescan();
                t.read_all();
                next_rescan = now + t.opts.rescan_interval;
            } else {
                for key in dirty {
                    t.read_file(key);
                }
                if lingering {
                    let gone: Vec<FileKey> = t
                        .files
                        .values()
                        .filter(|f| f.gone_since.is_some())
                        .map(|f| f.key)
                        .collect();
                    for key in gone {
                        t.read_file(key);
                    }
                }
            }
            t.retire_gone();
            t.show();
            if t.held_since.is_some_and(|t| t.elapsed() >= INDEX_HANDOFF) {
                t.send();
            }
        }
        // The watcher's callback reads nothing more once this is set: what is read after
        // the last send would be shown but never indexed until the next start.
        {
            let mut t = lock(&shared);
            t.closed = true;
            t.read_announced();
            t.send();
        }
        drop(watcher);
    }

    /// On the watcher's thread: reads the followed files an event says grew and shows
    /// their new lines. Anything else (or after the loop ended) is left to the loop.
    fn read_on_event(&mut self, event: &notify::Event) -> OnEvent {
        if self.closed || !is_data(event) || event.need_rescan() || event.paths.is_empty() {
            return OnEvent::ForTheLoop;
        }
        let Some(keys) = event
            .paths
            .iter()
            .map(|p| self.by_path.get(p).copied())
            .collect::<Option<Vec<FileKey>>>()
        else {
            return OnEvent::ForTheLoop;
        };
        let was_held = self.held_since.is_some();
        for key in keys {
            self.read_file(key);
        }
        self.show();
        match (was_held, self.held_since.is_some()) {
            (false, true) => OnEvent::ReadAndHeld,
            _ => OnEvent::Read,
        }
    }

    /// Takes the messages the loop woke up for. Returns the followed files that changed
    /// and whether files may have appeared, moved or gone.
    fn take_events(&mut self, msgs: Vec<TailMsg>) -> (HashSet<FileKey>, bool) {
        let mut dirty = HashSet::new();
        let mut structural = false;
        let mut commands = Vec::new();
        let mut early = false;
        let mut handle = |msg: TailMsg| match msg {
            TailMsg::Command(c) => commands.push(c),
            TailMsg::Early => early = true,
            TailMsg::Stop | TailMsg::Held => {}
            TailMsg::Fs(ev) => match ev {
                Ok(ev) => {
                    let is_data = is_data(&ev);
                    for path in &ev.paths {
                        match self.by_path.get(path) {
                            Some(key) if is_data => {
                                dirty.insert(*key);
                            }
                            Some(_) => structural = true,
                            None => {
                                if self.matches(path) {
                                    structural = true;
                                }
                            }
                        }
                    }
                    if ev.need_rescan() {
                        structural = true;
                    }
                }
                Err(e) => {
                    debug!(error = %e, "file event error; rescanning");
                    structural = true;
                }
            },
        };
        for msg in msgs {
            handle(msg);
        }
        if early {
            self.take_early();
        }
        for c in commands {
            self.command(c);
        }
        (dirty, structural)
    }

    /// Carries out a rotator's request between two reads.
    fn command(&mut self, c: TailCommand) {
        match c {
            TailCommand::Moved { key, to } => {
                // What the bus brought before the rename is taken first: a gap in it
                // (every connection starts with one) taken after would give the file's
                // check up.
                self.take_early();
                if let Some(reader) = self.files.get_mut(&key) {
                    // The combined file holds every stream of the app: the bus's order of
                    // one stream says nothing about its end.
                    let combined = reader.is_combined();
                    info!(from = %reader.path.display(), to = %to.display(), "rotated away; reading it to its end");
                    // A rescan may already follow the file PM2 opened at that path.
                    if self.by_path.get(&reader.path) == Some(&key) {
                        self.by_path.remove(&reader.path);
                    }
                    reader.moved_to(&to);
                    reader.gone_since = Some(Instant::now());
                    reader.last_growth = Instant::now();
                    self.reloading.insert(key, None);
                    if self.links.early.is_some() && !combined {
                        self.rescues.renamed(key, reader.origin().clone());
                    }
                    self.touched.insert(key);
                    self.publish(key);
                }
            }
            TailCommand::Released { key, back_to } => {
                if let Some(answered) = self.reloading.get_mut(&key) {
                    *answered = Some(Instant::now());
                }
                if let Some(reader) = self.files.get_mut(&key) {
                    reader.last_growth = Instant::now();
                    if let Some(path) = back_to {
                        // The reload was given up and the file put back: followed there
                        // at once, not finished and found again from 0 by a rescan.
                        info!(path = %path.display(), "back at its path after a failed reload");
                        reader.moved_to(&path);
                        reader.gone_since = None;
                        self.reloading.remove(&key);
                        self.rescues.forget(key);
                        self.by_path.insert(path, key);
                        self.publish(key);
                    }
                }
            }
            TailCommand::Collapse { key, len, reply } => {
                let result = match self.files.get_mut(&key) {
                    Some(reader) => reader.collapse(len),
                    None => Err(not_followed()),
                };
                self.rotated(key, result.is_ok());
                let _ = reply.send(result);
            }
            TailCommand::CopyTruncate { key, dest, reply } => {
                self.read_file(key);
                let result = match self.files.get_mut(&key) {
                    Some(reader) => reader.copy_truncate(&dest, &mut self.batch.records),
                    None => Err(not_followed()),
                };
                self.rotated(key, result.is_ok());
                let _ = reply.send(result);
            }
        }
    }

    /// After an in-place rotation: the file's shifted checkpoint goes to the index at
    /// once, since until it is committed only the rotation journal describes the file.
    fn rotated(&mut self, key: FileKey, done: bool) {
        if done {
            self.touched.insert(key);
            self.signalled.remove(&key);
            self.publish(key);
            self.send();
        }
    }

    /// Checkpoints not matched by the globs may still name a file that was renamed away
    /// (by a rotation the daemon did not finish, say): if it is still there and still
    /// the same file, it is read to its end. The rest leave the index's state.
    fn resume_moved(&mut self) {
        let left: Vec<Checkpoint> = self.resume.drain().map(|(_, cp)| cp).collect();
        if left.is_empty() {
            return;
        }
        let archived = self.files_in_archive_dirs();
        for cp in left {
            let mut candidates = vec![PathBuf::from(&cp.path)];
            candidates.extend(archived.get(&cp.key).cloned());
            let found = candidates.iter().find_map(|path| {
                FileReader::open(path, Some(&cp), self.opts.max_line_bytes)
                    .ok()
                    .filter(|r| r.resumed && r.key == cp.key)
            });
            match found {
                Some(mut reader) => {
                    info!(path = %reader.path.display(), offset = cp.offset, "finishing a file moved out of the globs");
                    reader.gone_since = Some(Instant::now());
                    let key = reader.key;
                    self.files.insert(key, reader);
                    self.touched.insert(key);
                    self.publish(key);
                }
                None => self.batch.dropped.push(cp.key),
            }
        }
    }

    /// Uncompressed files in the archive directories, by identity.
    fn files_in_archive_dirs(&self) -> HashMap<FileKey, PathBuf> {
        let mut found = HashMap::new();
        for dir in &self.opts.archive_dirs {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            for e in entries.flatten() {
                let path = e.path();
                if path.extension().is_some_and(|x| x == "log") {
                    if let Ok(meta) = std::fs::metadata(&path) {
                        found.insert(FileKey::of(&meta), path);
                    }
                }
            }
        }
        found
    }

    /// Updates the shared view of one file (or removes it when no longer followed).
    fn publish(&self, key: FileKey) {
        let Ok(mut followed) = self.links.followed.lock() else {
            return;
        };
        match self.files.get(&key) {
            Some(r) => {
                let cp = r.checkpoint();
                followed.insert(
                    key,
                    FileState {
                        key,
                        path: r.path.clone(),
                        service: r.service().to_string(),
                        live: r.gone_since.is_none(),
                        size: r.seen_size,
                        read_offset: cp.offset,
                        oldest: r.oldest,
                    },
                );
            }
            None => {
                followed.remove(&key);
            }
        }
    }

    /// Tells the rotator when a live file is over its size limit.
    fn check_growth(&mut self, key: FileKey) {
        let Some(hook) = &self.links.growth else {
            return;
        };
        let Some(reader) = self.files.get(&key) else {
            return;
        };
        if reader.gone_since.is_some() {
            return;
        }
        let Some(limit) = (hook.size_limit)(reader.service()) else {
            return;
        };
        if reader.seen_size < limit {
            return;
        }
        if self
            .signalled
            .get(&key)
            .is_some_and(|t| t.elapsed() < GROWTH_SIGNAL_EVERY)
        {
            return;
        }
        // A full queue means the rotator is busy; the file will be signalled again.
        if (hook.notify)(key) {
            self.signalled.insert(key, Instant::now());
        }
    }

    fn matches(&self, path: &Path) -> bool {
        self.patterns.iter().any(|p| p.matches_path(path))
    }

    /// Watches the directory each glob lives in, once it exists.
    fn watch_dirs(&mut self, watcher: Option<&mut notify::RecommendedWatcher>) {
        let Some(watcher) = watcher else { return };
        for g in &self.opts.globs {
            let dir = glob_base(g);
            if self.watched_dirs.contains(&dir) || !dir.is_dir() {
                continue;
            }
            match watcher.watch(&dir, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    debug!(dir = %dir.display(), "watching");
                    self.watched_dirs.insert(dir);
                }
                Err(e) => warn!(dir = %dir.display(), error = %e, "cannot watch directory"),
            }
        }
    }

    /// Matches the globs against the disk: new files are opened, moved ones get their new
    /// path, and followed files whose path no longer leads to them start to linger.
    fn rescan(&mut self) {
        let mut seen: HashMap<PathBuf, FileKey> = HashMap::new();
        let mut refused = HashMap::new();
        for g in &self.opts.globs {
            let Ok(paths) = glob::glob(g) else { continue };
            for path in paths.flatten() {
                let meta = match std::fs::metadata(&path) {
                    Ok(meta) => meta,
                    // Gone between the listing and now: nothing to say.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => {
                        refused.insert(path, format!("cannot stat: {e}"));
                        continue;
                    }
                };
                if !meta.is_file() {
                    let what = if meta.is_dir() {
                        "a directory"
                    } else {
                        "a FIFO, socket or device"
                    };
                    refused.insert(path, format!("not a regular file but {what}"));
                    continue;
                }
                seen.insert(path, FileKey::of(&meta));
            }
        }
        let mut new_paths = Vec::new();
        for (path, key) in &seen {
            match self.files.get_mut(key) {
                Some(reader) => {
                    if &reader.path != path {
                        info!(from = %reader.path.display(), to = %path.display(), "file moved");
                        reader.moved_to(path);
                    }
                    if reader.gone_since.take().is_some() {
                        // Back where it was (a reload given up): nothing to check.
                        self.rescues.forget(*key);
                    }
                }
                None => new_paths.push((path.clone(), *key)),
            }
        }
        for (key, reader) in self.files.iter_mut() {
            let still_there = seen.get(&reader.path) == Some(key);
            if !still_there && reader.gone_since.is_none() {
                debug!(path = %reader.path.display(), "file renamed away or deleted; reading it to its end");
                reader.gone_since = Some(Instant::now());
                reader.last_growth = Instant::now();
            }
        }
        new_paths.sort();
        for (path, key) in new_paths {
            let resume = self.resume.remove(&key);
            match FileReader::open(&path, resume.as_ref(), self.opts.max_line_bytes) {
                Ok(reader) => {
                    info!(path = %path.display(), offset = reader.checkpoint().offset, "following");
                    // The file may have been opened under a new inode number if the path
                    // was replaced between the glob and the open.
                    let key = reader.key;
                    self.files.insert(key, reader);
                    self.touched.insert(key);
                    self.publish(key);
                }
                Err(e) => {
                    refused.insert(path, format!("cannot open: {e}"));
                }
            }
        }
        for (path, problem) in &refused {
            if self.refused.get(path) != Some(problem) {
                warn!(path = %path.display(), error = %problem, "cannot follow log file; skipping it");
            }
        }
        self.refused = refused;
        self.by_path = self
            .files
            .values()
            .filter(|f| f.gone_since.is_none())
            .map(|f| (f.path.clone(), f.key))
            .collect();
    }

    fn read_all(&mut self) {
        let keys: Vec<FileKey> = self.files.keys().copied().collect();
        for key in keys {
            self.read_file(key);
        }
    }

    /// Reads one file to its current end, in turns so batches stay bounded.
    fn read_file(&mut self, key: FileKey) {
        loop {
            let Some(reader) = self.files.get_mut(&key) else {
                return;
            };
            let before = self.batch.records.len();
            let outcome = match reader.read(&mut self.batch.records, READ_TURN, BATCH_RECORDS) {
                Ok(o) => o,
                Err(e) => {
                    warn!(path = %reader.path.display(), error = %e, "read failed");
                    return;
                }
            };
            if outcome.truncated {
                info!(path = %reader.path.display(), "file truncated; reading it again from the start");
                if let Some(r) = self.reconciles.get_mut(&key) {
                    r.gap();
                }
            }
            self.reconcile_read(key, before);
            if outcome.bytes > 0 || outcome.truncated {
                self.touched.insert(key);
            }
            self.batch_bytes += self.batch.records[before..]
                .iter()
                .map(|r| r.message.len() + 64)
                .sum::<usize>();
            if self.batch.records.len() >= BATCH_RECORDS || self.batch_bytes >= BATCH_BYTES {
                self.batch.behind = outcome.more;
                self.send();
            }
            if !outcome.more || self.stop.load(Ordering::Relaxed) {
                break;
            }
        }
        self.publish(key);
        self.check_growth(key);
    }

    /// Files gone from their path and quiet for `linger` are finished: their held last
    /// line is emitted and they are no longer followed.
    fn retire_gone(&mut self) {
        let linger = self.opts.linger;
        let done: Vec<FileKey> = self
            .files
            .values()
            .filter(|f| {
                f.gone_since.is_some_and(|t| t.elapsed() >= MIN_GONE)
                    && f.last_growth.elapsed() >= linger
                    && !matches!(self.reloading.get(&f.key), Some(None))
                    && !self.rescues.holds(f.key, f.origin())
            })
            .map(|f| f.key)
            .collect();
        for key in done {
            self.read_file(key);
            if self.rescues.awaits(key) {
                match self.put_back_dropped(key) {
                    Verdict::Wait => continue,
                    Verdict::PutBack(_) => self.read_file(key),
                    Verdict::Finish => {}
                }
                self.rescues.forget(key);
            }
            self.reloading.remove(&key);
            if let Some(mut reader) = self.files.remove(&key) {
                reader.flush_partial(&mut self.batch.records);
                info!(path = %reader.path.display(), "finished a renamed or deleted file");
                self.touched.remove(&key);
                self.signalled.remove(&key);
                self.reconciles.remove(&key);
                self.batch.dropped.push(key);
                self.publish(key);
            }
        }
    }

    /// For a file renamed for a reload: PM2's writes that reached neither it nor the
    /// file PM2 opened next are appended to it from the bus (see [`rescue`]).
    fn put_back_dropped(&mut self, key: FileKey) -> Verdict {
        let (Some(reader), Some(origin)) = (self.files.get(&key), self.rescues.origin_of(key))
        else {
            return Verdict::Finish;
        };
        // The app's other files (not the combined `<name>.log`): the next one among them.
        // An empty one counts only if nothing was ever read from it (not emptied by
        // `pm2 flush` after its lines were indexed).
        let heads: Vec<Vec<u8>> = self
            .files
            .values()
            .filter(|f| f.key != key && f.origin() == origin && !f.is_combined())
            .filter_map(|f| f.head(rescue::COMPARED_BYTES).ok().map(|h| (f, h)))
            .filter(|(f, h)| !h.is_empty() || f.read_end() == 0)
            .map(|(_, h)| h)
            .collect();
        let Ok(tail) = reader.tail(rescue::COMPARED_BYTES) else {
            return Verdict::Finish;
        };
        let answered = self.reloading.get(&key).copied().flatten();
        let verdict = self.rescues.check(key, answered, &tail, &heads);
        if let Verdict::PutBack(bytes) = &verdict {
            match reader.append(bytes.as_bytes()) {
                Ok(()) => {
                    warn!(path = %reader.path.display(), bytes = bytes.len(),
                        "PM2 dropped a write it still queued for this file when it reopened its files; written back from its bus");
                    if let Some(early) = &self.links.early {
                        early.metrics().reload_put_back(bytes.len() as u64);
                    }
                }
                Err(e) => {
                    warn!(path = %reader.path.display(), error = %e,
                        "PM2 dropped a write it still queued for this file when it reopened its files; cannot write it back");
                    return Verdict::Finish;
                }
            }
        }
        verdict
    }

    /// Shows followers the records read since the last call, at once; the index gets
    /// them with the next `send`.
    fn show(&mut self) {
        if self.shown < self.batch.records.len() {
            let new = &self.batch.records[self.shown..];
            if self.shown_early.last().is_some_and(|&i| i >= self.shown) {
                let skip = &self.shown_early;
                let shown = self.shown;
                self.sink.show(
                    new.iter()
                        .enumerate()
                        .filter(|(i, _)| skip.binary_search(&(shown + i)).is_err())
                        .map(|(_, r)| r),
                );
            } else {
                self.sink.show(new);
            }
            self.shown = self.batch.records.len();
        }
        let holds = !self.batch.records.is_empty()
            || !self.touched.is_empty()
            || !self.batch.checkpoints.is_empty()
            || !self.batch.dropped.is_empty();
        if holds && self.held_since.is_none() {
            self.held_since = Some(Instant::now());
        }
    }

    /// Sends what is batched with the checkpoints of the files it touched. Blocks when
    /// the index is behind: that is the backpressure that bounds memory.
    fn send(&mut self) {
        self.show();
        self.held_since = None;
        for key in self.touched.drain() {
            if let Some(reader) = self.files.get(&key) {
                self.batch.checkpoints.push(reader.checkpoint());
            }
        }
        if self.batch.records.is_empty()
            && self.batch.checkpoints.is_empty()
            && self.batch.dropped.is_empty()
        {
            return;
        }
        let batch = std::mem::take(&mut self.batch);
        self.batch_bytes = 0;
        self.shown = 0;
        self.shown_early.clear();
        if self.sink.send_shown(batch).is_err() {
            // The index is gone (shutting down); nothing more can be stored.
            self.stop.store(true, Ordering::Relaxed);
        }
    }
}

/// Early lines from PM2's bus (see [`super::early`]).
impl Tailer {
    /// Takes the bus messages waiting and shows the lines that can be shown early.
    fn take_early(&mut self) {
        let Some(early) = self.links.early.clone() else {
            return;
        };
        let mut show = Vec::new();
        for note in early.drain() {
            match note {
                BusNote::Gap => {
                    self.reconciles.values_mut().for_each(Reconcile::gap);
                    self.rescues.gap();
                }
                BusNote::Chunk(chunk) => {
                    self.announce(&chunk, &mut show);
                    // Kept as it is: no copy on the followers' path.
                    self.rescues
                        .on_bus(chunk.service, chunk.stream, chunk.pm_id, chunk.data);
                }
            }
        }
        if !show.is_empty() {
            early.metrics().early_shown(show.len() as u64);
            self.sink.show(show.iter().flatten());
        }
    }

    /// The lines of one bus message, each predicted at the next free place of its file;
    /// those that may be shown now go to `show`, a line's records together.
    fn announce(&mut self, chunk: &BusChunk, show: &mut Vec<Vec<Record>>) {
        let Some(key) = self.file_of(chunk) else {
            return;
        };
        let Some(reader) = self.files.get(&key) else {
            return;
        };
        let rec = self.reconciles.entry(key).or_default();
        rec.written_by(chunk.pm_id, chunk.stream);
        let mut text = std::mem::take(&mut rec.partial);
        text.push_str(&chunk.data);
        let mut rest = text.as_str();
        while let Some(nl) = rest.find('\n') {
            let line = &rest[..nl];
            rest = &rest[nl + 1..];
            let offset = rec.next_offset(reader.read_end());
            let records = reader.preview(line, offset, chunk.arrived);
            let (hash, file_ord) = match &records {
                Some(r) if !r.is_empty() => (early::fingerprint(r), SortKey::of(&r[0]).file_ord),
                _ => (early::line_hash(line), 0),
            };
            let bytes = line.len() as u64 + 1;
            let when = records
                .as_ref()
                .filter(|r| !r.is_empty())
                .map(|_| chunk.arrived);
            if rec.on_bus(hash, bytes, offset, file_ord, when) {
                show.extend(records);
            }
        }
        if rest.len() <= self.opts.max_line_bytes as usize {
            rec.partial = rest.to_string();
        } else {
            rec.gap();
        }
    }

    /// The followed file PM2 writes this message's stream of this app to: the one live
    /// file named for the app, the stream and (when it has one) the instance. The
    /// combined `<name>.log` gets every stream and is not it.
    fn file_of(&self, chunk: &BusChunk) -> Option<FileKey> {
        let mut found = None;
        for r in self.files.values() {
            let origin = r.origin();
            let fits = r.gone_since.is_none()
                && origin.service == chunk.service
                && origin.stream == chunk.stream
                && origin.instance.is_none_or(|i| i == chunk.pm_id)
                && !r.is_combined();
            if fits {
                if found.is_some() {
                    return None;
                }
                found = Some(r.key);
            }
        }
        found
    }

    /// Checks the records just read from `key` (from index `from` of the batch) against
    /// the lines its bus announced: those shown early already keep the time they were
    /// shown with and are not shown again.
    fn reconcile_read(&mut self, key: FileKey, from: usize) {
        let Some(rec) = self.reconciles.get_mut(&key) else {
            return;
        };
        let records = &mut self.batch.records[from..];
        let mut start = 0;
        while start < records.len() {
            let offset = records[start].offset;
            let len = records[start..]
                .iter()
                .take_while(|r| r.offset == offset)
                .count();
            let line = &mut records[start..start + len];
            let file_ord = SortKey::of(&line[0]).file_ord;
            match rec.on_file(early::fingerprint(line), offset, file_ord) {
                Read::Shown(ts) => {
                    for (i, r) in line.iter_mut().enumerate() {
                        if r.ts_source == TsSource::Read {
                            r.ts = ts;
                        }
                        self.shown_early.push(from + start + i);
                    }
                }
                Read::Show => {}
                Read::Reshow => {
                    if let Some(early) = &self.links.early {
                        early.metrics().early_reshown();
                    }
                }
            }
            start += len;
        }
    }

    /// On the way out: files with lines shown from the bus are read once more, so the
    /// index gets what followers saw if PM2 has written it by now.
    fn read_announced(&mut self) {
        let keys: Vec<FileKey> = self
            .reconciles
            .iter()
            .filter(|(_, r)| r.awaits_shown())
            .map(|(k, _)| *k)
            .collect();
        for key in keys {
            self.read_file(key);
        }
    }
}

/// What the watcher's callback did with an event.
enum OnEvent {
    /// Read and shown; nothing for the loop to do.
    Read,
    /// Read and shown, and the index has lines waiting now: the loop must wake.
    ReadAndHeld,
    /// Not a plain append to followed files: the loop takes it.
    ForTheLoop,
}

/// Whether an event says a file's content changed (as opposed to names or metadata).
fn is_data(ev: &notify::Event) -> bool {
    matches!(
        ev.kind,
        EventKind::Modify(notify::event::ModifyKind::Data(_))
            | EventKind::Modify(notify::event::ModifyKind::Any)
            | EventKind::Access(_)
    )
}

/// The tailer's state, whichever thread holds it. Its users never panic while holding
/// it in a way that leaves it half-changed for the other, so a poisoned lock is taken
/// as it is rather than stopping all reading.
fn lock(shared: &Mutex<Tailer>) -> std::sync::MutexGuard<'_, Tailer> {
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

/// Waits up to `wait` for a message, then takes every one already queued.
fn wait_for_messages(inbox: &Receiver<TailMsg>, wait: Duration) -> Vec<TailMsg> {
    let mut msgs = Vec::new();
    if let Ok(msg) = inbox.recv_timeout(wait) {
        msgs.push(msg);
        msgs.extend(inbox.try_iter());
    }
    msgs
}

fn not_followed() -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, "the file is no longer followed")
}

/// The directory part of a glob: the path up to the first component with a wildcard.
fn glob_base(glob: &str) -> PathBuf {
    let mut base = PathBuf::new();
    for comp in Path::new(glob).components() {
        let s = comp.as_os_str().to_string_lossy();
        if s.contains(['*', '?', '[', '{']) {
            break;
        }
        base.push(comp);
    }
    if base.as_os_str().is_empty() || base == Path::new(glob) {
        base.parent().map(Path::to_path_buf).unwrap_or(base)
    } else {
        base
    }
}

#[cfg(test)]
mod tests {
    use super::glob_base;
    use std::path::PathBuf;

    #[test]
    fn glob_base_is_the_directory_before_wildcards() {
        assert_eq!(glob_base("/a/b/*.log"), PathBuf::from("/a/b"));
        assert_eq!(glob_base("/a/*/x.log"), PathBuf::from("/a"));
        assert_eq!(glob_base("/a/b/x.log"), PathBuf::from("/a/b"));
    }
}
