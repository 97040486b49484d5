//! The live side of the timeline: tantivy only shows committed records, so followers
//! (`/api/tail`, `logagg tail`) read new records from here, a bounded ring that the
//! sources publish into as they read. Publishing never waits for a follower; a follower
//! that falls behind the ring is told how many records it missed.

pub mod filter;
pub mod matcher;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{SendError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::watch;

use crate::index::search::SortKey;
use crate::index::Hit;
use crate::record::Record;
use crate::tail::Batch;

/// A record as followers see it: its place in the timeline, its API shape, and that
/// shape as JSON, made once however many followers send it.
#[derive(Debug)]
pub struct LiveRecord {
    pub key: SortKey,
    pub hit: Hit,
    json: OnceLock<String>,
}

impl LiveRecord {
    pub fn new(rec: &Record) -> LiveRecord {
        LiveRecord {
            key: SortKey::of(rec),
            hit: Hit::from(rec),
            json: OnceLock::new(),
        }
    }

    pub fn from_hit(key: SortKey, hit: Hit) -> LiveRecord {
        LiveRecord {
            key,
            hit,
            json: OnceLock::new(),
        }
    }

    pub fn json(&self) -> &str {
        self.json
            .get_or_init(|| serde_json::to_string(&self.hit).unwrap_or_default())
    }

    /// What the ring counts against its byte budget.
    fn weight(&self) -> usize {
        self.hit.message.len() + self.hit.file.len() + self.hit.service.len() + 160
    }
}

/// The ring's bounds: whichever is reached first evicts the oldest records.
#[derive(Clone, Copy, Debug)]
pub struct LiveLimits {
    pub records: usize,
    pub bytes: usize,
}

struct Ring {
    /// Records in publishing order; `records[i]` has sequence number `first_seq + i`.
    records: VecDeque<Arc<LiveRecord>>,
    first_seq: u64,
    bytes: usize,
}

impl Ring {
    /// Sequence number of the newest record (0 before the first; sequence starts at 1).
    fn head(&self) -> u64 {
        self.first_seq + self.records.len() as u64 - 1
    }
}

struct Shared {
    ring: Mutex<Ring>,
    limits: LiveLimits,
    /// The head sequence number, for waking followers; `closed` ends every follow.
    head: watch::Sender<(u64, bool)>,
    followers: AtomicUsize,
}

/// The publishing and subscribing handle; cheap to clone.
#[derive(Clone)]
pub struct Live {
    shared: Arc<Shared>,
}

impl Live {
    pub fn new(limits: LiveLimits) -> Live {
        let (head, _) = watch::channel((0, false));
        Live {
            shared: Arc::new(Shared {
                ring: Mutex::new(Ring {
                    records: VecDeque::new(),
                    first_seq: 1,
                    bytes: 0,
                }),
                limits,
                head,
                followers: AtomicUsize::new(0),
            }),
        }
    }

    /// Adds records for followers, evicting the oldest beyond the limits.
    pub fn publish(&self, records: Vec<Arc<LiveRecord>>) {
        if records.is_empty() {
            return;
        }
        let head = {
            let Ok(mut ring) = self.shared.ring.lock() else {
                return;
            };
            for rec in records {
                ring.bytes += rec.weight();
                ring.records.push_back(rec);
            }
            let limits = self.shared.limits;
            while ring.records.len() > limits.records.max(1)
                || (ring.bytes > limits.bytes && ring.records.len() > 1)
            {
                if let Some(old) = ring.records.pop_front() {
                    ring.bytes -= old.weight();
                    ring.first_seq += 1;
                }
            }
            ring.head()
        };
        self.shared.head.send_replace((head, false));
    }

    /// Ends every follow (the daemon is stopping), so the HTTP server can finish.
    pub fn close(&self) {
        self.shared.head.send_modify(|(_, closed)| *closed = true);
    }

    /// A new follower, positioned after the newest record, with a copy of what the
    /// ring holds now (records that may not be searchable yet).
    pub fn subscribe(&self) -> (Follower, Vec<Arc<LiveRecord>>) {
        let rx = self.shared.head.subscribe();
        let (held, head) = match self.shared.ring.lock() {
            Ok(ring) => (ring.records.iter().cloned().collect(), ring.head()),
            Err(_) => (Vec::new(), 0),
        };
        self.shared.followers.fetch_add(1, Ordering::Relaxed);
        (
            Follower {
                live: self.clone(),
                cursor: head,
                rx,
            },
            held,
        )
    }

    /// Followers connected now.
    pub fn followers(&self) -> usize {
        self.shared.followers.load(Ordering::Relaxed)
    }
}

/// What a follower gets at each step.
#[derive(Debug)]
pub enum Next {
    /// Records published since the last step, oldest first.
    Records(Vec<Arc<LiveRecord>>),
    /// The follower was so far behind that this many records left the ring unread.
    Dropped(u64),
    /// The daemon is stopping.
    Closed,
}

pub struct Follower {
    live: Live,
    /// Sequence number of the last record handed out (or skipped as dropped).
    cursor: u64,
    rx: watch::Receiver<(u64, bool)>,
}

impl Follower {
    /// Waits for records after the cursor; at most `max` at a time.
    pub async fn next(&mut self, max: usize) -> Next {
        loop {
            let (_, closed) = *self.rx.borrow_and_update();
            if closed {
                return Next::Closed;
            }
            if let Some(next) = self.take(max) {
                return next;
            }
            if self.rx.changed().await.is_err() {
                return Next::Closed;
            }
        }
    }

    fn take(&mut self, max: usize) -> Option<Next> {
        let ring = self.live.shared.ring.lock().ok()?;
        if ring.records.is_empty() || self.cursor >= ring.head() {
            return None;
        }
        if self.cursor + 1 < ring.first_seq {
            let missed = ring.first_seq - self.cursor - 1;
            self.cursor = ring.first_seq - 1;
            return Some(Next::Dropped(missed));
        }
        let from = (self.cursor + 1 - ring.first_seq) as usize;
        let records: Vec<_> = ring.records.iter().skip(from).take(max).cloned().collect();
        self.cursor += records.len() as u64;
        Some(Next::Records(records))
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.live.shared.followers.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The sending end every source uses: a batch's records go to the followers as soon as
/// they are read, and the batch to the index, which may make the sender wait.
#[derive(Clone)]
pub struct RecordSink {
    tx: SyncSender<Batch>,
    live: Option<Live>,
}

impl RecordSink {
    pub fn new(tx: SyncSender<Batch>, live: Live) -> RecordSink {
        RecordSink {
            tx,
            live: Some(live),
        }
    }

    /// Publishes, then queues for the index (blocking while the index is behind).
    pub fn send(&self, batch: Batch) -> Result<(), SendError<Batch>> {
        self.show(&batch.records);
        self.tx.send(batch)
    }

    /// Publishes records to the followers only; their batch goes to the index later
    /// with `send_shown`. The tailer shows each line as soon as it is read but hands
    /// lines to the index in batches, so that a trickle of lines does not wake the
    /// indexing threads once per line while the followers' path is busy.
    pub fn show<'a>(&self, records: impl IntoIterator<Item = &'a Record>) {
        if let Some(live) = &self.live {
            live.publish(prepare(records));
        }
    }

    /// Queues for the index a batch whose records were all shown already.
    pub fn send_shown(&self, batch: Batch) -> Result<(), SendError<Batch>> {
        self.tx.send(batch)
    }

    /// Queues for the index if there is room, and only then publishes, so a batch that
    /// is offered again later is not shown twice.
    pub fn try_send(&self, batch: Batch) -> Result<(), TrySendError<Batch>> {
        let prepared = self.live.as_ref().map(|_| prepare(&batch.records));
        self.tx.try_send(batch)?;
        if let (Some(live), Some(records)) = (&self.live, prepared) {
            live.publish(records);
        }
        Ok(())
    }
}

/// A sink with no followers: what unit tests of a source use.
impl From<SyncSender<Batch>> for RecordSink {
    fn from(tx: SyncSender<Batch>) -> RecordSink {
        RecordSink { tx, live: None }
    }
}

fn prepare<'a>(records: impl IntoIterator<Item = &'a Record>) -> Vec<Arc<LiveRecord>> {
    records
        .into_iter()
        .map(|r| Arc::new(LiveRecord::new(r)))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::Utc;

    use super::*;
    use crate::record::{Kind, Stream, TsSource};

    fn rec(offset: u64) -> Arc<LiveRecord> {
        Arc::new(LiveRecord::new(&Record {
            offset,
            message: format!("line {offset}"),
            ..rec_record()
        }))
    }

    fn offsets(next: Next) -> Vec<u64> {
        match next {
            Next::Records(r) => r.iter().map(|r| r.hit.offset).collect(),
            other => panic!("expected records, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_follower_gets_what_is_published_after_it_joined_in_order() {
        let live = Live::new(LiveLimits {
            records: 100,
            bytes: 1 << 20,
        });
        live.publish(vec![rec(0)]);
        let (mut f, held) = live.subscribe();
        assert_eq!(held.len(), 1);
        assert_eq!(live.followers(), 1);
        live.publish(vec![rec(1), rec(2)]);
        live.publish(vec![rec(3)]);
        assert_eq!(offsets(f.next(10).await), [1, 2, 3]);
        let waiting = tokio::spawn(async move { (offsets(f.next(2).await), f) });
        tokio::time::sleep(Duration::from_millis(20)).await;
        live.publish(vec![rec(4), rec(5), rec(6)]);
        let (got, mut f) = waiting.await.unwrap();
        assert_eq!(got, [4, 5]);
        assert_eq!(offsets(f.next(10).await), [6]);
        drop(f);
        assert_eq!(live.followers(), 0);
    }

    #[tokio::test]
    async fn a_follower_left_behind_is_told_exactly_how_many_it_missed() {
        let live = Live::new(LiveLimits {
            records: 4,
            bytes: 1 << 20,
        });
        let (mut f, _) = live.subscribe();
        live.publish((0..10).map(rec).collect());
        assert!(matches!(f.next(10).await, Next::Dropped(6)));
        assert_eq!(offsets(f.next(10).await), [6, 7, 8, 9]);
    }

    #[tokio::test]
    async fn the_byte_budget_bounds_the_ring_too() {
        let live = Live::new(LiveLimits {
            records: 1000,
            bytes: 1000,
        });
        live.publish((0..100).map(rec).collect());
        let (_, held) = live.subscribe();
        assert!(held.len() < 10, "{} records held", held.len());
        assert_eq!(held.last().unwrap().hit.offset, 99);
    }

    #[tokio::test]
    async fn closing_ends_every_follow() {
        let live = Live::new(LiveLimits {
            records: 10,
            bytes: 1 << 20,
        });
        let (mut f, _) = live.subscribe();
        let waiting = tokio::spawn(async move { f.next(10).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        live.close();
        assert!(matches!(waiting.await.unwrap(), Next::Closed));
    }

    #[test]
    fn try_send_publishes_only_what_the_index_took() {
        let live = Live::new(LiveLimits {
            records: 10,
            bytes: 1 << 20,
        });
        let (tx, _rx) = std::sync::mpsc::sync_channel(1);
        let sink = RecordSink::new(tx, live.clone());
        let batch = |o| Batch {
            records: vec![Record {
                offset: o,
                ..rec_record()
            }],
            checkpoints: vec![],
            dropped: vec![],
            behind: false,
        };
        assert!(sink.try_send(batch(0)).is_ok());
        assert!(sink.try_send(batch(1)).is_err());
        let (_, held) = live.subscribe();
        assert_eq!(held.iter().map(|r| r.hit.offset).collect::<Vec<_>>(), [0]);
    }

    fn rec_record() -> Record {
        Record {
            ts: Utc::now(),
            ts_source: TsSource::Line,
            service: "duck".into(),
            stream: Stream::Out,
            instance: None,
            level: None,
            kind: Kind::Line,
            message: "m".into(),
            file: "/l/duck-out.log".into(),
            offset: 0,
            sub: 0,
            split: false,
            marker: None,
        }
    }
}
