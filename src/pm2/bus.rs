//! The subscriber on PM2's event bus, `$PM2_HOME/pub.sock`: it reads every message PM2
//! publishes, lets [`events::Translator`](super::events::Translator) turn the few that
//! matter into records, and sends them to the index as batches without checkpoints (a
//! bus cannot be replayed, so there is nothing to resume from).
//!
//! axon pub/sub has no handshake: connect and read. PM2 may be absent at start, killed,
//! or restarted at any time, so the subscriber connects again with a growing pause (up
//! to [`MAX_BACKOFF`]) and logs one line when PM2 goes away and one when it is back, not
//! one per attempt. A frame it cannot use is logged (never its contents: PM2's events
//! carry the apps' environments) and skipped; a byte stream it can no longer split into
//! frames is dropped and connected again. It never waits for the index (records the
//! index has no room for wait in a small queue), so it keeps reading the socket, PM2
//! never has to buffer for it, and the file tailer never waits for it.
//!
//! It is a task on the daemon's async runtime rather than a thread of its own: an app's
//! line it hands to the followers (see [`crate::tail::early`]) then wakes the follower's
//! response on the same worker thread, one thread wake-up less between PM2 and
//! `logagg tail`. Nothing in it blocks: the socket read is async, the index and the
//! tailer are only ever offered things (`try_send`, `try_lock`). With PM2 quiet it
//! sleeps until PM2 says something or [`Stop`] wakes it: a timer only runs while a crash
//! waits for its restart or records wait for room in the index (a wake-up every 200 ms
//! was half of the idle daemon's CPU time).

use std::collections::HashSet;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::TrySendError;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::Value;
use tokio::net::UnixStream;
use tokio::sync::Notify;
use tracing::{debug, info, warn};

use super::amp::{Arg, Decoder};
use super::events::{Proc, Translator};
use super::status::Pm2Status;
use crate::live::RecordSink;
use crate::metrics::Metrics;
use crate::record::{Record, Stream};
use crate::tail::{Batch, BusChunk, BusNote, EarlyLines};

/// The socket's file name under `$PM2_HOME`.
pub const PUB_SOCKET: &str = "pub.sock";

/// The first pause after a failed connection; doubled up to [`MAX_BACKOFF`].
pub const MIN_BACKOFF: Duration = Duration::from_millis(100);
pub const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// How often the loop looks at crashes waiting for their restart and offers the index
/// the records waiting for room, while there are any.
const POLL: Duration = Duration::from_millis(200);

/// Stops the bus task: the flag the daemon's threads share, and a wake-up for the task,
/// which otherwise sleeps until PM2 says something.
#[derive(Clone)]
pub struct Stop {
    flag: Arc<AtomicBool>,
    wake: Arc<Notify>,
}

impl Stop {
    pub fn new(flag: Arc<AtomicBool>) -> Stop {
        Stop {
            flag,
            wake: Arc::new(Notify::new()),
        }
    }

    /// Sets the flag and wakes the task (now, or at its next wait: the wake-up is kept).
    pub fn set(&self) {
        self.flag.store(true, Ordering::Relaxed);
        self.wake.notify_one();
    }

    fn is_set(&self) -> bool {
        self.flag.load(Ordering::Relaxed)
    }
}

/// Sleeps `d`, or for ever with None.
async fn sleep_for(d: Option<Duration>) {
    match d {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

/// PM2's events are a few KiB (the app's environment included); anything near this is
/// not an event, and waiting for the rest of it would only buffer garbage.
pub const MAX_FRAME_LEN: usize = 16 * 1024 * 1024;

/// A connection this old counts as healthy even without a usable message.
const HEALTHY_AFTER: Duration = Duration::from_secs(10);

/// Records kept while the index has no room for them.
const MAX_OUTBOX: usize = 10_000;

/// Malformed frames logged per connection before the rest are only counted.
const MAX_WARNINGS: u32 = 5;

/// Distinct unknown topics named in the log per connection.
const MAX_TOPICS: usize = 16;

/// What the bus task reports beside its records: reconnections, and the status PM2
/// gave each service.
#[derive(Clone, Default)]
pub struct BusWatch {
    pub metrics: Metrics,
    pub status: Pm2Status,
    /// Where apps' lines go to be shown before PM2 writes them to their files.
    pub early: Option<EarlyLines>,
}

/// Runs the subscriber on `pm2_home/pub.sock` until `stop` is set or the index hangs up.
pub async fn run(pm2_home: PathBuf, tx: RecordSink, stop: Stop, watch: BusWatch) {
    let mut s = Subscriber::new(pm2_home.join(PUB_SOCKET), tx, stop);
    s.watch = watch;
    s.subscribe().await;
    // What still waits goes to the index, waiting for room: off the async workers.
    let _ = tokio::task::spawn_blocking(move || s.flush()).await;
}

struct Subscriber {
    socket: PathBuf,
    tx: RecordSink,
    stop: Stop,
    translator: Translator,
    /// Records the index had no room for yet.
    outbox: Vec<Record>,
    watch: BusWatch,
}

/// How one connection ended.
enum Ended {
    /// PM2 closed it or it failed (`peer_gone`), or it sent bytes that cannot be split
    /// into frames: connect again. `healthy` when at least one message was usable.
    Lost {
        why: String,
        peer_gone: bool,
        healthy: bool,
    },
    /// Stop asked for, or the index is gone.
    Stop,
}

impl Subscriber {
    fn new(socket: PathBuf, tx: RecordSink, stop: Stop) -> Subscriber {
        let translator = Translator::new(socket.to_string_lossy().into_owned());
        Subscriber {
            socket,
            tx,
            stop,
            translator,
            outbox: Vec::new(),
            watch: BusWatch::default(),
        }
    }

    async fn subscribe(&mut self) {
        let mut backoff = MIN_BACKOFF;
        // One line per outage: said when it starts, not at every attempt.
        let mut outage_logged = false;
        // The last connection gave nothing usable (a peer that only sends garbage): its
        // reconnections are logged at debug level and keep backing off.
        let mut flapping = false;
        let mut connected_before = false;
        while !self.stop.is_set() {
            match UnixStream::connect(&self.socket).await {
                Ok(stream) => {
                    if connected_before {
                        self.watch.metrics.bus_reconnected();
                    }
                    connected_before = true;
                    if flapping {
                        debug!(socket = %self.socket.display(), "connected to PM2's bus again");
                    } else {
                        info!(socket = %self.socket.display(), "connected to PM2's bus");
                    }
                    self.translator.connected();
                    // Lines sent while we were not connected were never seen.
                    if let Some(early) = &self.watch.early {
                        early.offer(BusNote::Gap);
                    }
                    let (why, peer_gone) = match self.follow(stream).await {
                        Ended::Stop => return,
                        Ended::Lost {
                            why,
                            peer_gone,
                            healthy,
                        } => {
                            if healthy {
                                backoff = MIN_BACKOFF;
                                outage_logged = false;
                            }
                            flapping = !healthy;
                            (why, peer_gone)
                        }
                    };
                    if outage_logged {
                        debug!(socket = %self.socket.display(), "lost PM2's bus again ({why})");
                    } else {
                        warn!(
                            socket = %self.socket.display(),
                            "lost PM2's bus ({why}); reconnecting until it is back"
                        );
                        outage_logged = true;
                    }
                    let records = self.translator.disconnected(Utc::now(), peer_gone);
                    if !self.send(records) {
                        return;
                    }
                }
                Err(e) => {
                    if !outage_logged {
                        info!(
                            socket = %self.socket.display(),
                            "PM2's bus is not reachable ({e}); no restart markers until it is"
                        );
                        outage_logged = true;
                    }
                }
            }
            self.sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
            if !self.send(Vec::new()) {
                return;
            }
        }
    }

    /// Sleeps `d`, waking early when stop is asked for.
    async fn sleep(&self, d: Duration) {
        if self.stop.is_set() {
            return;
        }
        tokio::select! {
            () = tokio::time::sleep(d) => {}
            () = self.stop.wake.notified() => {}
        }
    }

    /// Reads one connection until it ends.
    async fn follow(&mut self, stream: UnixStream) -> Ended {
        let mut decoder = Decoder::with_max_frame_len(MAX_FRAME_LEN);
        let mut buf = vec![0u8; 64 * 1024];
        let mut warnings = 0u32;
        let mut skipped = 0u64;
        let mut topics: HashSet<String> = HashSet::new();
        let mut healthy = false;
        let opened = Instant::now();
        // A quiet PM2 is a healthy one too; only a peer that sends nothing usable and is
        // cut quickly is not.
        let healthy_by_age = |healthy: bool| healthy || opened.elapsed() >= HEALTHY_AFTER;
        loop {
            if self.stop.is_set() {
                return Ended::Stop;
            }
            let mut records = Vec::new();
            // A timer only while something waits for time to pass.
            let tick = (self.translator.waiting() || !self.outbox.is_empty()).then_some(POLL);
            let read = tokio::select! {
                ready = stream.readable() => match ready {
                    Err(e) => Err(e),
                    // May be WouldBlock after all (a spurious wake-up): read again.
                    Ok(()) => stream.try_read(&mut buf),
                },
                () = self.stop.wake.notified() => Err(io::ErrorKind::Interrupted.into()),
                () = sleep_for(tick) => Err(io::ErrorKind::TimedOut.into()),
            };
            match read {
                Ok(0) => {
                    return Ended::Lost {
                        why: "PM2 closed the connection".into(),
                        peer_gone: true,
                        healthy: healthy_by_age(healthy),
                    }
                }
                Ok(n) => decoder.push(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => {
                    return Ended::Lost {
                        why: e.to_string(),
                        peer_gone: true,
                        healthy: healthy_by_age(healthy),
                    }
                }
            }
            loop {
                let problem = match decoder.next_frame() {
                    Ok(None) => break,
                    Ok(Some(frame)) => match self.frame(frame, &mut records) {
                        Ok(()) => {
                            healthy = true;
                            None
                        }
                        Err(Problem::UnknownTopic(topic)) => {
                            if topics.len() < MAX_TOPICS && topics.insert(topic.clone()) {
                                info!(topic, "skipping PM2 bus messages of an unknown topic");
                            }
                            None
                        }
                        Err(Problem::Bad(what)) => Some(what),
                    },
                    Err(e) if e.is_fatal() => {
                        let _ = self.send(records);
                        return Ended::Lost {
                            why: format!("unusable data: {e}"),
                            peer_gone: false,
                            healthy: healthy_by_age(healthy),
                        };
                    }
                    Err(e) => Some(e.to_string()),
                };
                if let Some(what) = problem {
                    skipped += 1;
                    if warnings < MAX_WARNINGS {
                        warnings += 1;
                        warn!(skipped, "skipped a malformed PM2 bus message: {what}");
                    } else {
                        debug!(skipped, "skipped a malformed PM2 bus message: {what}");
                    }
                }
            }
            records.extend(self.translator.tick(Utc::now()));
            if !self.send(records) {
                return Ended::Stop;
            }
        }
    }

    /// One decoded frame: `[s:topic, j:payload]`.
    fn frame(&mut self, frame: Vec<Arg>, records: &mut Vec<Record>) -> Result<(), Problem> {
        let mut args = frame.into_iter();
        let (Some(Arg::Str(topic)), Some(Arg::Json(payload)), None) =
            (args.next(), args.next(), args.next())
        else {
            return Err(Problem::Bad("not a [topic, JSON payload] pair".to_string()));
        };
        self.watch.status.note(&topic, &payload);
        if let Some(early) = &self.watch.early {
            if let Some(chunk) = app_output(&topic, &payload) {
                early.offer(BusNote::Chunk(chunk));
                return Ok(());
            }
        }
        match self.translator.handle(&topic, &payload, Utc::now()) {
            Ok(out) => {
                records.extend(out);
                Ok(())
            }
            Err(super::events::EventError::UnknownTopic) => {
                Err(Problem::UnknownTopic(topic.chars().take(64).collect()))
            }
            Err(e) => Err(Problem::Bad(e.to_string())),
        }
    }

    /// Queues records for the index and hands over what it can without waiting; false
    /// once the index is gone. Never blocks: while the socket is not read, PM2 buffers
    /// every app's output for us, so a busy index must not stop the reading. Markers are
    /// few; past [`MAX_OUTBOX`] waiting records the oldest are dropped and counted.
    fn send(&mut self, records: Vec<Record>) -> bool {
        self.outbox.extend(records);
        if self.outbox.len() > MAX_OUTBOX {
            let over = self.outbox.len() - MAX_OUTBOX;
            self.outbox.drain(..over);
            warn!(
                dropped = over,
                "the index is behind; dropped the oldest PM2 bus records"
            );
        }
        if self.outbox.is_empty() {
            return true;
        }
        let batch = Batch {
            records: std::mem::take(&mut self.outbox),
            checkpoints: Vec::new(),
            dropped: Vec::new(),
            behind: false,
        };
        match self.tx.try_send(batch) {
            Ok(()) => true,
            Err(TrySendError::Full(batch)) => {
                self.outbox = batch.records;
                true
            }
            Err(TrySendError::Disconnected(_)) => false,
        }
    }

    /// On the way out: what still waits goes to the index, waiting for room (the index
    /// keeps taking batches until every sender is gone).
    fn flush(&mut self) {
        if self.outbox.is_empty() {
            return;
        }
        let _ = self.tx.send(Batch {
            records: std::mem::take(&mut self.outbox),
            checkpoints: Vec::new(),
            dropped: Vec::new(),
            behind: false,
        });
    }
}

enum Problem {
    UnknownTopic(String),
    Bad(String),
}

/// An app's output in a `log:out` / `log:err` message: which app, which stream, the
/// text PM2 writes to the file. None for anything else (a worker being replaced, a
/// message without text).
fn app_output(topic: &str, payload: &Value) -> Option<BusChunk> {
    let stream = match topic {
        "log:out" => Stream::Out,
        "log:err" => Stream::Err,
        _ => return None,
    };
    let proc = Proc::from_value(payload.get("process")?)?;
    if proc.old {
        return None;
    }
    Some(BusChunk {
        service: proc.service,
        pm_id: proc.pm_id,
        stream,
        data: payload.get("data")?.as_str()?.to_string(),
        arrived: Utc::now(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pm2::amp::{self, Arg};
    use crate::record::Kind;
    use serde_json::json;
    use std::io::Write;
    use std::os::unix::net::UnixListener;
    use std::sync::mpsc::{sync_channel, Receiver};

    fn event(event: &str, status: &str, exit_code: i64, restarts: u64) -> Vec<u8> {
        amp::encode(&[
            Arg::Str("process:event".into()),
            Arg::Json(json!({
                "event": event, "manually": false, "at": 1_795_314_995_000i64,
                "process": {"name": "duck", "pm_id": 0, "status": status,
                            "exit_code": exit_code, "restart_time": restarts},
            })),
        ])
    }

    /// The subscriber on a thread of its own with a runtime of its own, so the tests can
    /// block on sockets and channels meanwhile.
    fn spawn_run(
        home: PathBuf,
        tx: RecordSink,
        stop: Stop,
        watch: BusWatch,
    ) -> std::thread::JoinHandle<()> {
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(run(home, tx, stop, watch))
        })
    }

    fn next_batch(rx: &Receiver<Batch>) -> Batch {
        rx.recv_timeout(Duration::from_secs(10))
            .expect("no batch from the subscriber")
    }

    #[test]
    fn frames_split_anywhere_become_one_marker_batch_and_stop_ends_the_thread() {
        let home = tempfile::tempdir().unwrap();
        let listener = UnixListener::bind(home.path().join(PUB_SOCKET)).unwrap();
        let (tx, rx) = sync_channel(4);
        let stop = Stop::new(Arc::new(AtomicBool::new(false)));
        let watch = BusWatch::default();
        let thread = {
            let (home, stop, watch) = (home.path().to_path_buf(), stop.clone(), watch.clone());
            spawn_run(home, tx.into(), stop, watch)
        };
        let (mut conn, _) = listener.accept().unwrap();
        let mut bytes = event("exit", "stopped", 3, 3);
        bytes.extend(event("online", "online", 0, 4));
        for chunk in bytes.chunks(7) {
            conn.write_all(chunk).unwrap();
            conn.flush().unwrap();
        }
        let batch = next_batch(&rx);
        assert!(batch.checkpoints.is_empty() && batch.dropped.is_empty());
        assert_eq!(batch.records.len(), 1);
        let r = &batch.records[0];
        assert_eq!(r.kind, Kind::Marker);
        assert_eq!(
            r.message,
            "duck crashed (exit code 3); restarted, restart #4"
        );

        // PM2 goes away: one marker says so, and the subscriber waits for it again.
        drop(conn);
        let batch = next_batch(&rx);
        assert_eq!(batch.records[0].marker.as_ref().unwrap().event, "pm2-lost");
        let (mut conn, _) = listener.accept().unwrap();

        // An exit and then silence: the task, asleep until PM2 speaks, keeps a timer
        // while the crash waits for its restart, and tells it alone after the window.
        conn.write_all(&event("exit", "stopped", 1, 5)).unwrap();
        let batch = next_batch(&rx);
        assert_eq!(batch.records.len(), 1);
        assert_eq!(batch.records[0].message, "duck crashed (exit code 1)");

        let asked = Instant::now();
        stop.set();
        thread.join().unwrap();
        assert!(
            asked.elapsed() < Duration::from_secs(1),
            "{:?}",
            asked.elapsed()
        );
        // The status of the last event, and one connection made again.
        assert_eq!(watch.status.get("duck").as_deref(), Some("stopped"));
        assert!(watch
            .metrics
            .render(0)
            .contains("\nlogagg_bus_reconnects_total 1\n"));
    }

    #[test]
    fn without_pm2_it_keeps_trying_and_stops_when_asked() {
        let home = tempfile::tempdir().unwrap();
        let (tx, rx) = sync_channel(4);
        let stop = Stop::new(Arc::new(AtomicBool::new(false)));
        let thread = {
            let (home, stop) = (home.path().to_path_buf(), stop.clone());
            spawn_run(home, tx.into(), stop, BusWatch::default())
        };
        std::thread::sleep(Duration::from_millis(500));
        // PM2 appears late: the subscriber finds it.
        let listener = UnixListener::bind(home.path().join(PUB_SOCKET)).unwrap();
        let (mut conn, _) = listener.accept().unwrap();
        conn.write_all(&amp::encode(&[
            Arg::Str("process:event".into()),
            Arg::Json(json!({"event": "start", "manually": true, "at": 1,
                             "process": {"name": "late", "pm_id": 2}})),
        ]))
        .unwrap();
        assert_eq!(next_batch(&rx).records[0].message, "late started");
        stop.set();
        thread.join().unwrap();
    }

    #[test]
    fn a_full_index_channel_does_not_stop_the_reading() {
        let home = tempfile::tempdir().unwrap();
        let listener = UnixListener::bind(home.path().join(PUB_SOCKET)).unwrap();
        let (tx, rx) = sync_channel(1);
        // The index is "behind": its channel is full.
        tx.send(Batch {
            records: Vec::new(),
            checkpoints: Vec::new(),
            dropped: Vec::new(),
            behind: false,
        })
        .unwrap();
        let stop = Stop::new(Arc::new(AtomicBool::new(false)));
        let thread = {
            let (home, stop) = (home.path().to_path_buf(), stop.clone());
            spawn_run(home, tx.into(), stop, BusWatch::default())
        };
        let (mut conn, _) = listener.accept().unwrap();
        conn.set_write_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        conn.write_all(&event("exit", "stopped", 3, 0)).unwrap();
        conn.write_all(&event("online", "online", 0, 1)).unwrap();
        // 32 MiB of app output, far beyond what the socket buffers: it only gets through
        // if the subscriber keeps reading while the index has no room.
        let line = amp::encode(&[
            Arg::Str("log:out".into()),
            Arg::Json(json!({"at": 1, "data": "x".repeat(64 * 1024),
                             "process": {"name": "duck", "pm_id": 0}})),
        ]);
        for _ in 0..512 {
            conn.write_all(&line).unwrap();
        }
        assert!(
            next_batch(&rx).records.is_empty(),
            "the batch that was waiting"
        );
        let batch = next_batch(&rx);
        assert_eq!(batch.records.len(), 1);
        assert_eq!(batch.records[0].marker.as_ref().unwrap().event, "crash");
        stop.set();
        thread.join().unwrap();
    }
}
