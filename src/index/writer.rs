//! The one writer of the timeline. It takes batches from the tailer, adds their records,
//! and commits every `commit_interval` (sooner under load) with the checkpoints of every
//! file in the commit payload; the reader is reloaded right after, so searches see it.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use chrono::Utc;
use tantivy::indexer::IndexWriterOptions;
use tantivy::query::RangeQuery;
use tantivy::{IndexWriter, Term};
use tracing::{debug, error, warn};

use super::document::RecordDoc;
use super::merges::BoundedMerges;
use super::{Fields, IndexError, Timeline};
use crate::metrics::{Ingested, Metrics};
use crate::record::{Kind, Record};
use crate::tail::checkpoint::{Checkpoint, CheckpointSet};
use crate::tail::identity::FileKey;
use crate::tail::Batch;

/// Commit before the interval is up once this many records wait: bounds how much a crash
/// makes the tailer read again, and how stale searches get under a flood.
const COMMIT_RECORDS: usize = 500_000;
/// Commit at once when this many message bytes wait, whatever their count. tantivy
/// queues up to 10,000 documents between `add_document` and its indexing threads, and
/// only a commit waits for that queue to drain: with the 1 MiB pieces of a long line
/// that is up to 10 GiB between two commits. With this bound an 800 MiB line grows the
/// daemon by 306 MiB instead of 394 (the torture test; the live ring, the channel and
/// the writer's arena account for most of the rest, each bounded by configuration).
const COMMIT_BYTES: usize = 64 << 20;
/// The least memory tantivy accepts per indexing thread.
const MIN_THREAD_MEMORY: usize = 15_000_000;
/// How often records older than the retention are deleted.
const RETENTION_EVERY: Duration = Duration::from_secs(600);
/// Merges run in tantivy's threads after a commit and end with no commit of ours after
/// them: for this long after each commit, meta.json is looked at every
/// MERGE_CHECK_EVERY (one stat) and the reader is reloaded when a merge rewrote it. Without it, a daemon that had caught up with a backlog
/// searched the small segments the merges had replaced until the next line arrived (a
/// common word: 17 ms in that daemon, 5 ms after a restart on the same index). After
/// the window an idle daemon reads nothing.
const MERGE_WATCH: Duration = Duration::from_secs(600);
const MERGE_CHECK_EVERY: Duration = Duration::from_secs(1);

/// The checkpoints of the last successful commit: what is durably ingested. The rotator
/// reads it to know when a rotated file's lines are all safe in the index.
pub type Committed =
    std::sync::Arc<std::sync::Mutex<std::collections::HashMap<FileKey, Checkpoint>>>;

#[derive(Clone, Debug)]
pub struct IndexerOptions {
    pub commit_interval: Duration,
    pub retention: Duration,
    pub writer_memory: u64,
}

pub struct Indexer {
    timeline: Timeline,
    fields: Fields,
    writer: IndexWriter<RecordDoc>,
    checkpoints: BTreeMap<FileKey, Checkpoint>,
    opts: IndexerOptions,
    uncommitted: usize,
    /// Message bytes added since the last commit.
    uncommitted_bytes: usize,
    dirty: bool,
    last_retention: Option<Instant>,
    committed: Committed,
    /// Whether segments are merged (off while ingest is behind).
    merging: bool,
    /// A batch since the last commit said the tailer is behind a backlog.
    behind: bool,
    /// When the last commit succeeded, and when the segments were last compared (see
    /// MERGE_WATCH).
    committed_at: Option<Instant>,
    merge_checked: Instant,
    /// meta.json's modification time and length when the reader was last loaded.
    meta_loaded: Option<(std::time::SystemTime, u64)>,
    metrics: Metrics,
}

impl Indexer {
    pub fn new(timeline: &Timeline, opts: IndexerOptions) -> Result<Indexer, IndexError> {
        let checkpoints: BTreeMap<FileKey, Checkpoint> = timeline
            .checkpoints()?
            .files
            .into_iter()
            .map(|cp| (cp.key, cp))
            .collect();
        let committed = Committed::default();
        if let Ok(mut c) = committed.lock() {
            c.extend(checkpoints.iter().map(|(k, cp)| (*k, cp.clone())));
        }
        let writer = open_writer(timeline, opts.writer_memory as usize).map_err(|source| {
            IndexError::Open {
                path: "timeline".into(),
                source,
            }
        })?;
        Ok(Indexer {
            fields: timeline.fields,
            timeline: timeline.clone(),
            writer,
            checkpoints,
            opts,
            uncommitted: 0,
            uncommitted_bytes: 0,
            dirty: false,
            last_retention: None,
            committed,
            merging: true,
            behind: false,
            committed_at: None,
            merge_checked: Instant::now(),
            meta_loaded: None,
            metrics: Metrics::default(),
        })
    }

    /// The checkpoints the tailer resumes from.
    pub fn checkpoints(&self) -> Vec<Checkpoint> {
        self.checkpoints.values().cloned().collect()
    }

    /// Replaces the checkpoints read from the index by ones settled at start (a collapse
    /// the last run did not get to commit), so the next commit cannot write back the
    /// stale ones.
    pub fn replace_checkpoints(&mut self, checkpoints: &[Checkpoint]) {
        self.checkpoints = checkpoints.iter().map(|cp| (cp.key, cp.clone())).collect();
        if let Ok(mut c) = self.committed.lock() {
            c.clear();
            c.extend(self.checkpoints.iter().map(|(k, cp)| (*k, cp.clone())));
        }
    }

    /// Turns segment merging on (caught up) or off (behind a backlog); says whether it
    /// was just turned on.
    fn set_merging(&mut self, on: bool) -> bool {
        if on == self.merging {
            return false;
        }
        self.merging = on;
        debug!(merging = on, "index merge policy changed");
        if on {
            self.writer
                .set_merge_policy(Box::new(merge_policy(&self.timeline)));
        } else {
            self.writer
                .set_merge_policy(Box::new(tantivy::merge_policy::NoMergePolicy));
        }
        on
    }

    /// Where lines indexed and commit times are counted for `/metrics`.
    pub fn set_metrics(&mut self, metrics: Metrics) {
        self.metrics = metrics;
    }

    /// The shared view of the last commit's checkpoints.
    pub fn committed(&self) -> Committed {
        self.committed.clone()
    }

    /// Runs until the tailer hangs up, then commits what it has and returns.
    pub fn run(mut self, rx: Receiver<Batch>) {
        let mut last_commit = Instant::now();
        self.apply_retention();
        loop {
            let wait = self
                .opts
                .commit_interval
                .saturating_sub(last_commit.elapsed());
            match rx.recv_timeout(wait) {
                Ok(batch) => self.apply(batch),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if self.uncommitted >= COMMIT_RECORDS
                || self.uncommitted_bytes >= COMMIT_BYTES
                || ((self.dirty || !self.merging)
                    && last_commit.elapsed() >= self.opts.commit_interval)
            {
                // The interval runs from the start of a commit, so commits keep their
                // rhythm however long each one takes.
                last_commit = Instant::now();
                // Behind a backlog, merging segments costs as much CPU as indexing
                // them, so merges wait until ingest has caught up: no batch since the
                // last commit came full with more to read, and none waits now. (The
                // waiting batch alone is not enough: the tailer, starved of CPU for a
                // moment, left the channel empty at some commits, and the merges that
                // started then ran through the rest of the backlog.)
                let waiting = rx.try_recv().ok();
                if self.set_merging(!self.behind && waiting.is_none()) {
                    // tantivy only looks for merges when segments change: without this
                    // (empty) commit, the segments of a backlog that ends in silence
                    // would stay unmerged until the next line.
                    self.dirty = true;
                }
                self.behind = false;
                self.commit();
                if let Some(batch) = waiting {
                    self.apply(batch);
                }
            } else if !self.dirty && last_commit.elapsed() >= self.opts.commit_interval {
                last_commit = Instant::now();
            }
            if self
                .last_retention
                .is_none_or(|t| t.elapsed() >= RETENTION_EVERY)
            {
                self.apply_retention();
            }
            self.pick_up_merges();
        }
        self.commit();
        // Merges still running are not waited for: shutdown must finish within two
        // seconds, and a merge that is cut short leaves the committed segments intact.
    }

    fn apply(&mut self, batch: Batch) {
        self.behind |= batch.behind;
        // A backlog may hold lines already past retention: storing them only for the
        // next retention pass to delete would be wasted work.
        let cutoff = self.retention_cutoff();
        let expired_at = |rec: &Record| cutoff.is_some_and(|c| rec.ts.timestamp_micros() < c);
        let mut expired = 0usize;
        // Summed here so the metrics' lock is taken once per batch.
        let mut ingested: HashMap<&str, Ingested> = HashMap::new();
        for rec in &batch.records {
            if expired_at(rec) {
                expired += 1;
            } else if rec.kind == Kind::Line {
                let i = ingested.entry(&rec.service).or_default();
                i.lines += 1;
                i.bytes += rec.message.len() as u64;
            }
        }
        if expired > 0 {
            debug!(expired, "skipped records older than the retention");
        }
        self.metrics.add_ingested(ingested);
        self.uncommitted += batch.records.len();
        self.uncommitted_bytes += batch.records.iter().map(|r| r.message.len()).sum::<usize>();
        for rec in batch.records {
            if expired_at(&rec) {
                continue;
            }
            if let Err(e) = self.writer.add_document(RecordDoc::new(self.fields, rec)) {
                // Only a dead indexing thread makes this fail; nothing can be stored.
                error!(error = %e, "cannot add to the index");
            }
        }
        for cp in batch.checkpoints {
            self.checkpoints.insert(cp.key, cp);
        }
        for key in batch.dropped {
            self.checkpoints.remove(&key);
        }
        self.dirty = true;
    }

    /// Microseconds since the epoch before which records are past retention; None when
    /// the retention is too long to express.
    fn retention_cutoff(&self) -> Option<i64> {
        let retention = chrono::Duration::from_std(self.opts.retention).ok()?;
        Utc::now()
            .checked_sub_signed(retention)
            .map(|t| t.timestamp_micros())
    }

    fn apply_retention(&mut self) {
        self.last_retention = Some(Instant::now());
        let Some(cutoff) = self.retention_cutoff() else {
            return;
        };
        let query = RangeQuery::new(
            Bound::Unbounded,
            Bound::Excluded(Term::from_field_i64(self.fields.ts, cutoff)),
        );
        match self.writer.delete_query(Box::new(query)) {
            Ok(_) => self.dirty = true,
            Err(e) => warn!(error = %e, "retention delete failed"),
        }
    }

    /// Reloads the reader when merges changed the segments since it was last loaded
    /// (see MERGE_WATCH).
    fn pick_up_merges(&mut self) {
        if self.dirty
            || self.merge_checked.elapsed() < MERGE_CHECK_EVERY
            || self.committed_at.is_none_or(|t| t.elapsed() >= MERGE_WATCH)
        {
            return;
        }
        self.merge_checked = Instant::now();
        let now = self.meta_state();
        if now.is_some() && now != self.meta_loaded {
            debug!("a merge changed the segments; reloading the reader");
            self.meta_loaded = now;
            if let Err(e) = self.timeline.reader.reload() {
                warn!(error = %e, "cannot reload the index reader");
            }
        }
    }

    /// meta.json's modification time and length, when they can be read.
    fn meta_state(&self) -> Option<(std::time::SystemTime, u64)> {
        let meta = std::fs::metadata(&self.timeline.meta).ok()?;
        Some((meta.modified().ok()?, meta.len()))
    }

    /// Commits the added records together with the checkpoints they bring the files to.
    fn commit(&mut self) {
        if !self.dirty {
            return;
        }
        let payload = CheckpointSet {
            version: 1,
            files: self.checkpoints.values().cloned().collect(),
        };
        let payload = match serde_json::to_string(&payload) {
            Ok(p) => p,
            Err(e) => {
                error!(error = %e, "cannot encode checkpoints");
                return;
            }
        };
        let started = Instant::now();
        let result = self.writer.prepare_commit().and_then(|mut prepared| {
            prepared.set_payload(&payload);
            prepared.commit()
        });
        match result {
            Ok(_) => {
                self.metrics.observe_commit(started.elapsed());
                debug!(
                    records = self.uncommitted,
                    took_ms = started.elapsed().as_millis() as u64,
                    "committed"
                );
                self.uncommitted = 0;
                self.uncommitted_bytes = 0;
                self.dirty = false;
                if let Ok(mut c) = self.committed.lock() {
                    c.clear();
                    c.extend(self.checkpoints.iter().map(|(k, cp)| (*k, cp.clone())));
                }
                self.meta_loaded = self.meta_state();
                if let Err(e) = self.timeline.reader.reload() {
                    warn!(error = %e, "cannot reload the index reader");
                }
                self.committed_at = Some(Instant::now());
                // The segments just written freed their indexing buffers: hand them
                // back now rather than after the allocator's purge delay, by when the
                // next segments' buffers are in use too.
                crate::memory::release_freed();
            }
            Err(e) => {
                // The records stay in the writer and are committed next time; the
                // checkpoints on disk still describe the last good commit.
                error!(error = %e, "index commit failed; will retry");
            }
        }
    }
}

/// The merge policy for a caught-up writer, weighing segments in the index's directory.
fn merge_policy(timeline: &Timeline) -> BoundedMerges {
    let dir = timeline.meta.parent().map(std::path::Path::to_path_buf);
    BoundedMerges::new(dir.unwrap_or_default())
}

/// tantivy's writer with `memory` split among one indexing thread per core (as
/// `Index::writer` does), one merge thread, and [`BoundedMerges`].
fn open_writer(timeline: &Timeline, memory: usize) -> tantivy::Result<IndexWriter<RecordDoc>> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // tantivy refuses less than 15 MB per thread: fewer threads then.
    let threads = cores.min(8).min(memory / MIN_THREAD_MEMORY).max(1);
    let options = IndexWriterOptions::builder()
        .memory_budget_per_thread(memory / threads)
        .num_worker_threads(threads)
        // Merges one at a time, so only one merge's input is mapped in memory.
        .num_merge_threads(1)
        .build();
    let writer = timeline.index.writer_with_options(options)?;
    writer.set_merge_policy(Box::new(merge_policy(timeline)));
    Ok(writer)
}

/// For tests: indexes `records` into `timeline` through a real indexer and commits,
/// retention off.
#[cfg(test)]
pub fn index_for_tests(timeline: &Timeline, records: Vec<Record>) {
    let indexer = Indexer::new(
        timeline,
        IndexerOptions {
            commit_interval: Duration::from_millis(50),
            retention: Duration::from_secs(1 << 40),
            writer_memory: 15 << 20,
        },
    )
    .unwrap();
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    tx.send(Batch {
        records,
        checkpoints: vec![],
        dropped: vec![],
        behind: false,
    })
    .unwrap();
    drop(tx);
    indexer.run(rx);
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc::sync_channel;

    use chrono::{DateTime, Utc};

    use super::*;
    use crate::index::search::{search, SearchRequest};
    use crate::tail::identity::Fingerprint;

    fn record(ts: DateTime<Utc>, message: &str, offset: u64) -> Record {
        Record::test_line("duck", ts, message, offset)
    }

    fn checkpoint(ino: u64, offset: u64) -> Checkpoint {
        Checkpoint {
            key: FileKey { dev: 1, ino },
            fingerprint: Fingerprint {
                head_len: 5,
                head_hash: 42,
            },
            path: format!("/logs/f{ino}.log"),
            offset,
            base: 0,
        }
    }

    fn options(retention: Duration) -> IndexerOptions {
        IndexerOptions {
            commit_interval: Duration::from_millis(50),
            retention,
            writer_memory: 15 << 20,
        }
    }

    /// Feeds the batches to an indexer and lets it finish (final commit included).
    fn index(timeline: &Timeline, retention: Duration, batches: Vec<Batch>) {
        let indexer = Indexer::new(timeline, options(retention)).unwrap();
        let (tx, rx) = sync_channel(batches.len().max(1));
        for b in batches {
            tx.send(b).unwrap();
        }
        drop(tx);
        indexer.run(rx);
    }

    fn messages(timeline: &Timeline) -> Vec<String> {
        crate::index::search::sorted_messages(timeline, "")
    }

    #[test]
    fn each_commit_carries_the_checkpoints_and_a_reopened_index_reads_them() {
        let dir = tempfile::tempdir().unwrap();
        let timeline = Timeline::open(dir.path()).unwrap();
        let now = Utc::now();
        index(
            &timeline,
            Duration::from_secs(3600),
            vec![
                Batch {
                    records: vec![record(now, "a", 0)],
                    checkpoints: vec![checkpoint(1, 2), checkpoint(2, 10)],
                    dropped: vec![],
                    behind: false,
                },
                Batch {
                    records: vec![record(now, "b", 2)],
                    checkpoints: vec![checkpoint(1, 4)],
                    dropped: vec![FileKey { dev: 1, ino: 2 }],
                    behind: false,
                },
            ],
        );
        drop(timeline);
        let reopened = Timeline::open(dir.path()).unwrap();
        assert_eq!(
            reopened.checkpoints().unwrap().files,
            vec![checkpoint(1, 4)]
        );
        assert_eq!(messages(&reopened), ["a", "b"]);
    }

    #[test]
    fn searches_see_segments_merged_after_the_last_commit() {
        eight_commits_then_silence(false);
    }

    #[test]
    fn a_backlog_is_merged_once_caught_up_with_no_line_after_it() {
        eight_commits_then_silence(true);
    }

    /// Eight batches, each committed on its own before the next is sent: eight
    /// one-document segments, then nothing more. Searches must end up reading merged
    /// segments with no commit of new lines after the merge. With `behind` (batches
    /// sent full, a backlog) nothing is merged until the batches stop.
    fn eight_commits_then_silence(behind: bool) {
        let dir = tempfile::tempdir().unwrap();
        let timeline = Timeline::open(dir.path()).unwrap();
        let indexer = Indexer::new(
            &timeline,
            IndexerOptions {
                // Behind a backlog the next batch must come before the next commit
                // is due: the test sends it as soon as it sees the last one searchable,
                // which took over 200 ms once under CI's load (merges began: 2 segments
                // where 5 were due), so a whole second.
                commit_interval: Duration::from_millis(if behind { 1000 } else { 20 }),
                retention: Duration::from_secs(1 << 40),
                writer_memory: 15 << 20,
            },
        )
        .unwrap();
        let (tx, rx) = sync_channel(1);
        let running = std::thread::spawn(move || indexer.run(rx));
        let t0 = Utc::now();
        let deadline = Instant::now() + Duration::from_secs(20);
        let total = || search(&timeline, &SearchRequest::default()).unwrap().total;
        for i in 0..8u64 {
            let batch = Batch {
                records: vec![record(t0, &format!("line {i}"), i)],
                checkpoints: vec![],
                dropped: vec![],
                behind,
            };
            tx.send(batch).unwrap();
            while total() < i + 1 {
                assert!(
                    Instant::now() < deadline,
                    "batch {i} never became searchable"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
            if behind {
                let segments = timeline.reader.searcher().segment_readers().len();
                assert_eq!(segments, i as usize + 1, "merged behind a backlog");
            }
        }
        while timeline.reader.searcher().segment_readers().len() >= 8 {
            assert!(
                Instant::now() < deadline,
                "searches still read {} segments",
                timeline.reader.searcher().segment_readers().len()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(total(), 8);
        drop(tx);
        running.join().unwrap();
    }

    #[test]
    fn records_past_retention_are_deleted_and_not_even_added() {
        let dir = tempfile::tempdir().unwrap();
        let timeline = Timeline::open(dir.path()).unwrap();
        let now = Utc::now();
        let hours = |h| now - chrono::Duration::hours(h);
        // Indexed under a long retention...
        index(
            &timeline,
            Duration::from_secs(30 * 24 * 3600),
            vec![Batch {
                records: vec![record(hours(3), "three hours", 0), record(now, "now", 1)],
                checkpoints: vec![checkpoint(1, 2)],
                dropped: vec![],
                behind: false,
            }],
        );
        assert_eq!(messages(&timeline), ["now", "three hours"]);
        // ...then a daemon with a two-hour retention deletes the old one at start and
        // skips an old one that arrives.
        index(
            &timeline,
            Duration::from_secs(2 * 3600),
            vec![Batch {
                records: vec![
                    record(hours(5), "five hours", 2),
                    record(hours(1), "one hour", 3),
                ],
                checkpoints: vec![checkpoint(1, 4)],
                dropped: vec![],
                behind: false,
            }],
        );
        assert_eq!(messages(&timeline), ["now", "one hour"]);
        // A lone word's count, taken from its document frequency, leaves the deleted out.
        let total = |q: &str| {
            let req = crate::index::SearchRequest {
                q: q.to_string(),
                ..Default::default()
            };
            crate::index::search::search(&timeline, &req).unwrap().total
        };
        assert_eq!(
            [total("three"), total("hours"), total("now"), total("")],
            [0, 0, 1, 2]
        );
        // The checkpoint moved past the skipped record all the same.
        assert_eq!(
            timeline.checkpoints().unwrap().files,
            vec![checkpoint(1, 4)]
        );
    }
}
