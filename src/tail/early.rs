//! Early lines: PM2 sends what an app prints out on its bus *before* it writes it to
//! the app's log file, so followers are shown a PM2 app's lines from the bus, under the
//! key their copy in the file will have (the next free offset of that file), and the
//! tailer, when it reads that copy, checks it is the line announced at that place and
//! hands it to the index without showing it a second time.
//!
//! The bus and the file carry the same lines in the same order (in fork mode PM2 writes
//! the very string it emits), so for each file two queues are kept in step: lines the
//! bus announced that the file has not shown yet, and lines read from the file before
//! the bus announced them. Only one of the two is ever non-empty while the streams
//! agree. A line is shown early only while the file is *in step*: its last line was
//! matched with its bus message at the predicted offset. Lines written by anyone else,
//! bus messages lost across a reconnection, a truncation or a rename put it out of step
//! until a line matches again. The price of a wrong prediction is a line shown twice
//! (under the predicted key and again under its real one), never a line lost: the
//! index only ever gets what the file holds.

use std::collections::VecDeque;
use std::hash::{Hash, Hasher};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, OnceLock, Weak};

use chrono::{DateTime, Utc};

use crate::metrics::Metrics;
use crate::record::{Record, Stream, TsSource};

/// Lines kept in either queue of one file. A file whose bus lines never show up in it
/// (or the reverse) stops being followed early when a queue overflows, and memory stays
/// bounded.
const MAX_QUEUED: usize = 4096;
/// Bus messages (and their bytes) waiting for the tailer, which may be busy with a
/// backlog; past either bound the waiting ones are dropped and every file is put out of
/// step (nothing is lost: the lines are in the files).
const MAX_WAITING: usize = 16_384;
const MAX_WAITING_BYTES: usize = 8 << 20;

/// One `log:out` / `log:err` message from PM2's bus.
#[derive(Debug)]
pub struct BusChunk {
    /// The app's name as its log files spell it.
    pub service: String,
    pub pm_id: u32,
    pub stream: Stream,
    /// The bytes PM2 writes to the file, as it sent them (whole or partial lines).
    pub data: String,
    /// When the message arrived: the time of lines that carry none.
    pub arrived: DateTime<Utc>,
}

#[derive(Debug)]
pub enum BusNote {
    Chunk(BusChunk),
    /// Messages may have been lost (a new connection, or the tailer fell behind): no
    /// file is in step any more.
    Gap,
}

/// The bus task's way to the tailer. The tailer attaches its shared state when it
/// starts; until then (and whenever the tailer is busy) messages wait in a queue that
/// the tailer takes before anything else.
#[derive(Clone)]
pub struct EarlyLines {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    waiting: Mutex<Waiting>,
    /// Takes the waiting notes under the tailer's lock, if that lock is free now.
    take: OnceLock<Box<dyn Fn() -> bool + Send + Sync>>,
    /// Wakes the tailer's loop when the lock was busy.
    wake: OnceLock<Sender<super::TailMsg>>,
    metrics: Metrics,
}

#[derive(Default)]
struct Waiting {
    notes: VecDeque<BusNote>,
    bytes: usize,
}

impl EarlyLines {
    /// Counts what it shows in `metrics`.
    pub fn new(metrics: Metrics) -> EarlyLines {
        EarlyLines {
            shared: Arc::new(Shared {
                metrics,
                ..Shared::default()
            }),
        }
    }

    /// Hands a bus message to the tailer: at once when its lock is free, else at its
    /// next wake-up (which this asks for).
    pub fn offer(&self, note: BusNote) {
        if let Ok(mut w) = self.shared.waiting.lock() {
            let size = match &note {
                BusNote::Chunk(c) => c.data.len(),
                BusNote::Gap => 0,
            };
            if w.notes.len() >= MAX_WAITING || w.bytes + size > MAX_WAITING_BYTES {
                w.notes.clear();
                w.notes.push_back(BusNote::Gap);
                w.bytes = 0;
            }
            w.bytes += size;
            w.notes.push_back(note);
        }
        if self.shared.take.get().is_some_and(|take| take()) {
            return;
        }
        if let Some(wake) = self.shared.wake.get() {
            let _ = wake.send(super::TailMsg::Early);
        }
    }

    /// The bus messages waiting, oldest first.
    pub(super) fn drain(&self) -> Vec<BusNote> {
        match self.shared.waiting.lock() {
            Ok(mut w) => {
                w.bytes = 0;
                w.notes.drain(..).collect()
            }
            Err(_) => Vec::new(),
        }
    }

    /// Called once by the tailer with its shared state `target`, held weakly (the bus
    /// task must not keep the tailer alive): `take` runs under its lock, and `wake`
    /// reaches its loop.
    pub(super) fn attach<T: Send + 'static>(
        &self,
        target: Weak<Mutex<T>>,
        take: fn(&mut T),
        wake: Sender<super::TailMsg>,
    ) {
        let _ = self.shared.take.set(Box::new(move || {
            let Some(t) = target.upgrade() else {
                return false;
            };
            let Ok(mut t) = t.try_lock() else {
                return false;
            };
            take(&mut t);
            true
        }));
        let _ = self.shared.wake.set(wake);
    }

    pub(super) fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }
}

/// What identifies a line's records apart from its read time and place: equal for the
/// bus's preview and the file's copy of the same line.
pub fn fingerprint(records: &[Record]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for r in records {
        if r.ts_source == TsSource::Line {
            r.ts.timestamp_micros().hash(&mut h);
        }
        r.message.hash(&mut h);
        r.service.hash(&mut h);
        r.stream.hash(&mut h);
        r.instance.hash(&mut h);
        r.sub.hash(&mut h);
    }
    h.finish()
}

/// What identifies a line whose records could not be previewed (too long to show early).
pub fn line_hash(line: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    line.hash(&mut h);
    h.finish()
}

/// A line the bus announced that the file has not shown yet.
#[derive(Debug)]
struct Announced {
    hash: u64,
    /// Its length in the file, newline included.
    bytes: u64,
    /// Where it was predicted to start, and the file it was predicted in.
    offset: u64,
    file_ord: u64,
    /// The time it was shown with, when it was shown (lines without a timestamp of
    /// their own take it, so the index has the key followers saw).
    shown: Option<DateTime<Utc>>,
}

/// What the file side must do with a line it read.
#[derive(Debug, PartialEq, Eq)]
pub enum Read {
    /// Shown from the bus under this very key: index it with this time, do not show it.
    Shown(DateTime<Utc>),
    /// Show it now.
    Show,
    /// Show it now; it was shown early under another key (so it is seen twice).
    Reshow,
}

/// The two queues of one file.
#[derive(Debug, Default)]
pub struct Reconcile {
    in_step: bool,
    bus: VecDeque<Announced>,
    /// Bytes of the lines in `bus`: the next bus line starts this far past what the
    /// tailer has read.
    pending_bytes: u64,
    /// Fingerprints of lines read from the file that the bus has not announced.
    file: VecDeque<u64>,
    /// The start of a bus line whose newline has not come yet.
    pub partial: String,
    /// The process and stream whose lines the bus announced for this file.
    writer: Option<(u32, Stream)>,
    /// Lines of more than one process or stream were announced for it (fork-mode
    /// instances with `merge_logs`): PM2 writes each through its own stream, so their
    /// order in the file is not the bus's, and no line of it is shown early.
    shared: bool,
}

impl Reconcile {
    /// Notes who the next bus lines come from (see `shared`).
    pub fn written_by(&mut self, pm_id: u32, stream: Stream) {
        match self.writer {
            None => self.writer = Some((pm_id, stream)),
            Some(w) if w != (pm_id, stream) => self.shared = true,
            Some(_) => {}
        }
    }

    /// Where the next announced line will start, given the end of what the tailer read.
    pub fn next_offset(&self, read_end: u64) -> u64 {
        read_end + self.pending_bytes
    }

    pub fn in_step(&self) -> bool {
        self.in_step
    }

    /// Some line was shown early and its file copy has not been read yet.
    pub fn awaits_shown(&self) -> bool {
        self.bus.iter().any(|a| a.shown.is_some())
    }

    /// A whole line from the bus, predicted at `offset` of `file_ord`. `show` is the
    /// time to show it with when it can be shown (it has records): returns whether it
    /// may be shown now.
    pub fn on_bus(
        &mut self,
        hash: u64,
        bytes: u64,
        offset: u64,
        file_ord: u64,
        show: Option<DateTime<Utc>>,
    ) -> bool {
        if !self.file.is_empty() {
            // The file was read first: this line is among those read, or it is still
            // to come after lines the bus never announced.
            if let Some(i) = self.file.iter().position(|&h| h == hash) {
                self.file.drain(..=i);
                self.in_step = true;
                return false;
            }
            self.file.clear();
            self.in_step = false;
        }
        let shown = show.filter(|_| self.in_step && !self.shared);
        if self.bus.len() >= MAX_QUEUED {
            // Announced lines that never came: this file is not where they go.
            self.bus.clear();
            self.pending_bytes = 0;
            self.in_step = false;
            return false;
        }
        self.bus.push_back(Announced {
            hash,
            bytes,
            offset,
            file_ord,
            shown,
        });
        self.pending_bytes += bytes;
        shown.is_some()
    }

    /// A line read from the file at `offset` of `file_ord`, with `hash` its fingerprint.
    pub fn on_file(&mut self, hash: u64, offset: u64, file_ord: u64) -> Read {
        let Some(i) = self.bus.iter().position(|a| a.hash == hash) else {
            if self.bus.is_empty() {
                // Read before the bus told it (or never told: kept a while only).
                if self.file.len() >= MAX_QUEUED {
                    self.file.pop_front();
                }
                self.file.push_back(hash);
            } else {
                // A line the bus did not announce came before the announced ones: they
                // will be further on than predicted.
                self.in_step = false;
            }
            return Read::Show;
        };
        // Announced lines before it went somewhere else.
        let mut reshown = false;
        for a in self.bus.drain(..i) {
            self.pending_bytes -= a.bytes;
            reshown |= a.shown.is_some();
        }
        let Some(a) = self.bus.pop_front() else {
            return Read::Show;
        };
        self.pending_bytes -= a.bytes;
        let same_place = a.offset == offset && a.file_ord == file_ord;
        self.in_step = same_place && !reshown;
        match a.shown {
            Some(ts) if same_place => Read::Shown(ts),
            Some(_) => Read::Reshow,
            None => Read::Show,
        }
    }

    /// Something happened to the file or the bus that predictions cannot follow (a
    /// truncation, lost bus messages): out of step until a line matches again. Lines
    /// already announced stay queued, so their file copies are still recognised.
    pub fn gap(&mut self) {
        self.in_step = false;
        self.file.clear();
        self.partial.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: u64 = 7;

    fn t(s: i64) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp(s, 0)
    }

    /// Brings a fresh file in step: one line announced, then read where predicted.
    fn in_step() -> Reconcile {
        let mut r = Reconcile::default();
        assert!(
            !r.on_bus(1, 10, 0, F, t(1)),
            "not shown before a first match"
        );
        assert_eq!(r.on_file(1, 0, F), Read::Show);
        assert!(r.in_step());
        r
    }

    #[test]
    fn a_line_announced_first_is_shown_once_under_its_file_key() {
        let mut r = in_step();
        assert_eq!(r.next_offset(10), 10);
        assert!(r.on_bus(2, 5, 10, F, t(2)));
        assert!(r.on_bus(3, 5, 15, F, t(3)));
        assert_eq!(r.next_offset(10), 20);
        assert_eq!(r.on_file(2, 10, F), Read::Shown(t(2).unwrap()));
        assert_eq!(r.on_file(3, 15, F), Read::Shown(t(3).unwrap()));
        assert_eq!(r.next_offset(20), 20);
    }

    #[test]
    fn a_line_read_before_its_bus_message_is_shown_by_the_file_only() {
        let mut r = in_step();
        assert_eq!(r.on_file(2, 10, F), Read::Show);
        assert_eq!(r.on_file(3, 15, F), Read::Show);
        assert!(!r.on_bus(2, 5, 20, F, t(2)));
        assert!(!r.on_bus(3, 5, 20, F, t(3)));
        // Both queues empty and in step: the next line is shown early again.
        assert!(r.on_bus(4, 5, 20, F, t(4)));
        assert_eq!(r.on_file(4, 20, F), Read::Shown(t(4).unwrap()));
    }

    #[test]
    fn a_line_written_by_someone_else_shows_the_announced_ones_again() {
        let mut r = in_step();
        assert!(r.on_bus(2, 5, 10, F, t(2)));
        // A foreign line lands first: line 2 is really at 16.
        assert_eq!(r.on_file(99, 10, F), Read::Show);
        assert!(!r.in_step());
        assert_eq!(r.on_file(2, 16, F), Read::Reshow);
        // Out of step: the next one is not shown early, and matching it puts the file
        // back in step.
        assert!(!r.on_bus(3, 5, 21, F, t(3)));
        assert_eq!(r.on_file(3, 21, F), Read::Show);
        assert!(r.in_step());
    }

    #[test]
    fn announced_lines_that_never_come_are_dropped_with_the_next_match() {
        let mut r = in_step();
        assert!(r.on_bus(2, 5, 10, F, t(2)));
        assert!(r.on_bus(3, 5, 15, F, t(3)));
        // Line 2 went to another file: 3 shows up where 2 was predicted.
        assert_eq!(r.on_file(3, 10, F), Read::Reshow);
        assert!(!r.in_step());
        assert_eq!(r.next_offset(15), 15);
    }

    #[test]
    fn a_rename_between_announcement_and_read_shows_the_line_again() {
        let mut r = in_step();
        assert!(r.on_bus(2, 5, 10, F, t(2)));
        assert_eq!(r.on_file(2, 10, F + 1), Read::Reshow);
    }

    #[test]
    fn a_file_two_processes_write_gets_no_early_lines() {
        let mut r = Reconcile::default();
        r.written_by(0, Stream::Out);
        r.written_by(0, Stream::Out);
        assert!(!r.on_bus(1, 10, 0, F, t(1)));
        assert_eq!(r.on_file(1, 0, F), Read::Show);
        assert!(r.on_bus(2, 5, 10, F, t(2)), "one writer: shown early");
        assert_eq!(r.on_file(2, 10, F), Read::Shown(t(2).unwrap()));
        r.written_by(1, Stream::Out);
        assert!(!r.on_bus(3, 5, 15, F, t(3)));
        assert_eq!(r.on_file(3, 15, F), Read::Show);
        assert!(!r.on_bus(4, 5, 20, F, t(4)), "still shared");
    }

    #[test]
    fn a_gap_stops_early_showing_until_a_line_matches() {
        let mut r = in_step();
        r.gap();
        assert!(!r.on_bus(2, 5, 10, F, t(2)));
        assert_eq!(r.on_file(2, 10, F), Read::Show);
        assert!(r.on_bus(3, 5, 15, F, t(3)));
    }

    #[test]
    fn messages_waiting_for_a_busy_tailer_stay_bounded() {
        let early = EarlyLines::new(Metrics::default());
        let chunk = |data: &str| {
            BusNote::Chunk(BusChunk {
                service: "duck".into(),
                pm_id: 0,
                stream: Stream::Out,
                data: data.into(),
                arrived: Utc::now(),
            })
        };
        for _ in 0..MAX_WAITING + 10 {
            early.offer(chunk("x\n"));
        }
        let notes = early.drain();
        assert!(notes.len() <= MAX_WAITING, "{}", notes.len());
        assert!(matches!(notes[0], BusNote::Gap));
        let big = "y".repeat(MAX_WAITING_BYTES / 3);
        for _ in 0..4 {
            early.offer(chunk(&big));
        }
        let notes = early.drain();
        assert_eq!(
            notes.len(),
            2,
            "a gap, then the one chunk that fits after it"
        );
        assert!(matches!(notes[0], BusNote::Gap));
        assert!(early.drain().is_empty());
    }

    #[test]
    fn queues_stay_bounded() {
        let mut r = in_step();
        for i in 0..(MAX_QUEUED as u64 * 2) {
            r.on_bus(100 + i, 1, 10 + i, F, t(5));
        }
        assert!(r.bus.len() <= MAX_QUEUED);
        let mut r = Reconcile::default();
        for i in 0..(MAX_QUEUED as u64 * 2) {
            r.on_file(i, i, F);
        }
        assert!(r.file.len() <= MAX_QUEUED);
    }
}
