//! Writes PM2 dropped at `reloadLogs`, put back from its bus. PM2 answers `reloadLogs`
//! by destroying each app's old write stream, and a write still queued in it (PM2's disk
//! writes lag the app under load) never reaches any file. But PM2 sent those bytes on
//! its bus first, in the same order as everything it writes to that file. So for a file
//! renamed away for a reload, the recent bus messages of its app are laid against the
//! renamed file's end and the start of the file PM2 opened next (of the app's other
//! files, the one whose first bytes come first after that end): messages that fall
//! between the two were dropped, and are appended to the renamed file (PM2 has closed
//! it), where the tailer reads and indexes them like any line and the archive keeps them.
//! The renamed files of one app are checked in the order they were renamed, and each
//! stays followed until the one before it is checked, so the next file is still there
//! to be looked at.
//!
//! Only an alignment that is found in exactly one way counts: an app that prints the
//! same bytes over and over (a heartbeat) cannot be told apart, and then nothing is put
//! back rather than a line twice.

use std::collections::{HashMap, VecDeque};
use std::ops::Range;
use std::time::{Duration, Instant};

use crate::pm2::naming::FileOrigin;
use crate::record::Stream;

use super::identity::FileKey;

/// Bus messages kept per app stream, and their bytes: far more than the writes PM2 can
/// have queued at a reload, which is a few milliseconds' worth.
const RECENT_CHUNKS: usize = 256;
const RECENT_BYTES: usize = 256 * 1024;
/// While a file of the app waits for its check, messages from before its rename must
/// stay: kept up to these bounds (past them the check gives up).
const PINNED_CHUNKS: usize = 16_384;
const PINNED_BYTES: usize = 16 << 20;
/// An app stream with no message for this long is forgotten (a `pm2 delete` and start
/// gives the app a new pm_id; two writers would put the check off for good).
const IDLE: Duration = Duration::from_secs(60);
/// The least time between PM2's answer and a put-back, whatever `linger` is: PM2's
/// write already handed to the system when it destroyed the stream lands first.
const SETTLE: Duration = Duration::from_secs(1);
/// Bytes of the renamed file's end and the next file's start compared with the bus.
pub const COMPARED_BYTES: u64 = 64 * 1024;
/// How long after PM2's answer a renamed file may wait for the next file to get its
/// first bytes (and their bus message to arrive): an app silent for longer has nothing
/// queued worth waiting for, and the file is finished without a look.
const WAIT_FOR_NEXT: Duration = Duration::from_secs(5);

/// What became of a renamed file's check.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Finish the file as it is: nothing was dropped, or it cannot be known.
    Finish,
    /// Append these bytes to the renamed file, then finish it.
    PutBack(String),
    /// The next file or the bus is not far enough yet: ask again later.
    Wait,
}

/// A file renamed away for a reload, waiting to be checked.
struct Renamed {
    origin: FileOrigin,
    /// Renames counted up: the order of the checks.
    order: u64,
    /// Bus gaps counted when it was renamed: one since, and the check gives up.
    gaps: u64,
    /// Per app stream of its origin heard of by then, the number of the next message at
    /// the rename: the message before it must still be kept when the check is made.
    marks: HashMap<u32, u64>,
}

#[derive(Default)]
struct Recent {
    chunks: VecDeque<String>,
    bytes: usize,
    /// The number of the first message kept (messages are counted from 0 per stream).
    first: u64,
    last_seen: Option<Instant>,
}

impl Recent {
    fn next(&self) -> u64 {
        self.first + self.chunks.len() as u64
    }
}

type StreamKey = (String, Stream, u32);

#[derive(Default)]
pub struct Rescues {
    /// The latest bus messages per (app, stream, pm_id).
    recent: HashMap<StreamKey, Recent>,
    renamed: HashMap<FileKey, Renamed>,
    renames: u64,
    gaps: u64,
}

/// Whether a bus message of `key` belongs to files of `origin`.
fn feeds(key: &StreamKey, origin: &FileOrigin) -> bool {
    key.0 == origin.service && key.1 == origin.stream && origin.instance.is_none_or(|i| i == key.2)
}

impl Rescues {
    /// A bus message of an app: kept while it is recent, or while a file of the app
    /// waits for its check.
    pub fn on_bus(&mut self, service: String, stream: Stream, pm_id: u32, data: String) {
        let key = (service, stream, pm_id);
        if !self.recent.contains_key(&key) {
            self.recent
                .retain(|_, r| r.last_seen.is_some_and(|t| t.elapsed() < IDLE));
        }
        let pinned = self.renamed.values().any(|r| feeds(&key, &r.origin));
        let (max_chunks, max_bytes) = if pinned {
            (PINNED_CHUNKS, PINNED_BYTES)
        } else {
            (RECENT_CHUNKS, RECENT_BYTES)
        };
        let recent = self.recent.entry(key).or_default();
        recent.last_seen = Some(Instant::now());
        recent.bytes += data.len();
        recent.chunks.push_back(data);
        while recent.chunks.len() > max_chunks
            || (recent.bytes > max_bytes && recent.chunks.len() > 1)
        {
            if let Some(old) = recent.chunks.pop_front() {
                recent.bytes -= old.len();
                recent.first += 1;
            }
        }
    }

    /// Bus messages may have been lost: what is kept no longer shows PM2's order.
    pub fn gap(&mut self) {
        self.recent.clear();
        self.gaps += 1;
    }

    /// `key` was renamed away and PM2 will be asked to reopen its files.
    pub fn renamed(&mut self, key: FileKey, origin: FileOrigin) {
        self.renames += 1;
        let marks = self
            .recent
            .iter()
            .filter(|(k, _)| feeds(k, &origin))
            .map(|(k, r)| (k.2, r.next()))
            .collect();
        self.renamed.insert(
            key,
            Renamed {
                origin,
                order: self.renames,
                gaps: self.gaps,
                marks,
            },
        );
    }

    pub fn forget(&mut self, key: FileKey) {
        self.renamed.remove(&key);
    }

    /// Whether `key` is a renamed file still to be checked.
    pub fn awaits(&self, key: FileKey) -> bool {
        self.renamed.contains_key(&key)
    }

    /// Whether `key` must stay followed: a file of its app renamed before it is still
    /// to be checked, and `key` may be the file that one needs to look at.
    pub fn holds(&self, key: FileKey, origin: &FileOrigin) -> bool {
        let order = self.renamed.get(&key).map_or(u64::MAX, |r| r.order);
        self.renamed
            .iter()
            .any(|(k, r)| *k != key && r.origin == *origin && r.order < order)
    }

    /// The origin of a renamed file still to be checked.
    pub fn origin_of(&self, key: FileKey) -> Option<&FileOrigin> {
        Some(&self.renamed.get(&key)?.origin)
    }

    /// Checks the renamed file `key`, given when PM2 answered `reloadLogs` for it
    /// (`answered`: None while it has not), its last bytes (`old_tail`) and the first
    /// bytes of each other file of its app that is followed (`heads`: the next file
    /// among them, perhaps still empty).
    pub fn check(
        &self,
        key: FileKey,
        answered: Option<Instant>,
        old_tail: &[u8],
        heads: &[Vec<u8>],
    ) -> Verdict {
        let Some(r) = self.renamed.get(&key) else {
            return Verdict::Finish;
        };
        let Some(released) = answered else {
            return Verdict::Wait;
        };
        if released.elapsed() < SETTLE {
            return Verdict::Wait;
        }
        if r.gaps != self.gaps {
            return Verdict::Finish;
        }
        let late = released.elapsed() >= WAIT_FOR_NEXT;
        // The app's messages: one writer only (a file of fork instances sharing it
        // through `merge_logs` interleaves several, in no order the bus shows).
        let mut writers = self.recent.iter().filter(|(k, _)| feeds(k, &r.origin));
        let (Some((writer, recent)), None) = (writers.next(), writers.next()) else {
            return Verdict::Finish;
        };
        // The last message from before the rename must still be kept. A stream first
        // heard of after the rename is whole while its first message is kept: the bus
        // and the files are read on different threads, so the message of the write that
        // set off the rename may be handled after it (and the alignment below still
        // needs the old file's end among the messages).
        let kept_from_before = match r.marks.get(&writer.2) {
            Some(&mark) => mark > recent.first,
            None => recent.first == 0,
        };
        if !kept_from_before {
            return Verdict::Finish;
        }
        let chunks: Vec<&str> = recent.chunks.iter().map(String::as_str).collect();
        match dropped(&chunks, old_tail, heads) {
            Align::Dropped(range) if range.is_empty() => Verdict::Finish,
            Align::Dropped(range) => Verdict::PutBack(chunks[range].concat()),
            Align::NotYet { .. } if !late => Verdict::Wait,
            // Still no file begins after the old one's end: the messages since went to
            // no file that is followed. When the next file is there and empty (the app
            // fell silent after its dropped write), they are the dropped write.
            Align::NotYet { after }
                if after < chunks.len() && heads.iter().any(|h| h.is_empty()) =>
            {
                Verdict::PutBack(chunks[after..].concat())
            }
            Align::NotYet { .. } | Align::Unclear => Verdict::Finish,
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Align {
    /// The messages (indexes into the list) in neither file.
    Dropped(Range<usize>),
    /// No file's first bytes are among the messages after the old file's end (yet);
    /// `after` is the first message after that end.
    NotYet { after: usize },
    /// No single way to lay the messages against the files.
    Unclear,
}

/// Lays the bus messages `chunks` (oldest first) against the renamed file's last bytes
/// and the first bytes of the app's other files: the old file must end with the
/// messages up to some `k` (as far back as `old_tail` reaches), and the next file is the
/// one that begins with those from the least `m > k` (as far as its head reaches); the
/// messages between were written to neither. Each end and start must be found in
/// exactly one place; a file whose start is not among the messages began before them,
/// or its first message has not come yet.
pub fn dropped(chunks: &[&str], old_tail: &[u8], heads: &[Vec<u8>]) -> Align {
    let ends: Vec<usize> = (0..chunks.len())
        .filter(|&k| ends_with(old_tail, &chunks[..=k]))
        .collect();
    let [k] = ends.as_slice() else {
        return Align::Unclear;
    };
    let mut next = None;
    for head in heads.iter().filter(|h| !h.is_empty()) {
        let starts: Vec<usize> = (0..chunks.len())
            .filter(|&m| starts_with(head, &chunks[m..]))
            .collect();
        match starts.as_slice() {
            [] => {}
            [m] if m > k => next = Some(next.map_or(*m, |n: usize| n.min(*m))),
            [m] if m < k => {}
            _ => return Align::Unclear,
        }
    }
    match next {
        Some(m) => Align::Dropped(k + 1..m),
        None => Align::NotYet { after: k + 1 },
    }
}

/// Whether `tail` ends with the concatenation of `chunks`, compared as far back as
/// `tail` reaches (at least the whole last chunk).
fn ends_with(tail: &[u8], chunks: &[&str]) -> bool {
    let mut end = tail.len();
    for (i, c) in chunks.iter().rev().enumerate() {
        let c = c.as_bytes();
        if c.len() <= end {
            if &tail[end - c.len()..end] != c {
                return false;
            }
            end -= c.len();
        } else {
            return i > 0 && c.ends_with(&tail[..end]);
        }
        if end == 0 {
            return true;
        }
    }
    true
}

/// Whether `head` starts with the concatenation of `chunks`, compared as far as `head`
/// reaches (at least up to the end of the first chunk, or of `head`).
fn starts_with(head: &[u8], chunks: &[&str]) -> bool {
    let mut at = 0;
    for c in chunks {
        let c = c.as_bytes();
        let left = &head[at..];
        if c.len() >= left.len() {
            return !left.is_empty() && c.starts_with(left);
        }
        if &left[..c.len()] != c {
            return false;
        }
        at += c.len();
    }
    // The file holds more than the messages kept: its first bytes matched them all.
    at > 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(from: usize, to: usize) -> Vec<String> {
        (from..to).map(|i| format!("seq={i:04}\n")).collect()
    }

    #[test]
    fn a_message_in_neither_file_is_found() {
        let chunks = lines(0, 6);
        let c: Vec<&str> = chunks.iter().map(String::as_str).collect();
        let old = format!("older\n{}", chunks[..3].concat());
        let new = chunks[4..].concat().into_bytes();
        assert_eq!(dropped(&c, old.as_bytes(), &[new]), Align::Dropped(3..4));
        // Nothing dropped: an empty range.
        let new = chunks[3..].concat().into_bytes();
        assert_eq!(dropped(&c, old.as_bytes(), &[new]), Align::Dropped(3..3));
        // The next file's first message has not come on the bus yet, or it is empty.
        let new = b"seq=0009\n".to_vec();
        assert_eq!(
            dropped(&c, old.as_bytes(), &[new, vec![]]),
            Align::NotYet { after: 3 }
        );
    }

    #[test]
    fn partial_views_of_both_files_are_compared_as_far_as_they_reach() {
        let chunks = lines(0, 8);
        let c: Vec<&str> = chunks.iter().map(String::as_str).collect();
        // The old file's end seen from the middle of message 1; the new file's start
        // seen up to the middle of message 6.
        let old = &chunks[..4].concat()[5..];
        let new = chunks[5..].concat().as_bytes()[..13].to_vec();
        assert_eq!(dropped(&c, old.as_bytes(), &[new]), Align::Dropped(4..5));
    }

    #[test]
    fn repeated_messages_are_unclear_and_nothing_is_put_back() {
        let c = vec!["ping\n"; 6];
        assert_eq!(
            dropped(&c, b"ping\nping\n", &[b"ping\n".to_vec()]),
            Align::Unclear
        );
        // A message in the old file that differs from the bus's: no place for it.
        let chunks = lines(0, 4);
        let c: Vec<&str> = chunks.iter().map(String::as_str).collect();
        assert_eq!(
            dropped(&c, b"other\n", &[b"seq=0003\n".to_vec()]),
            Align::Unclear
        );
    }

    #[test]
    fn the_next_file_is_the_one_that_begins_first_after_the_old_ones_end() {
        // Files A (0-1), B (3-4, after 2 was dropped), C (5-): checking A, B and C are
        // both followed; B is the next. A file from before A (its start not among the
        // messages, or before A's end) is passed over.
        let chunks = lines(0, 8);
        let c: Vec<&str> = chunks.iter().map(String::as_str).collect();
        let a = chunks[..2].concat();
        let heads = [
            chunks[5..].concat().into_bytes(),
            b"from long ago\n".to_vec(),
            chunks[3..5].concat().into_bytes(),
        ];
        assert_eq!(dropped(&c, a.as_bytes(), &heads), Align::Dropped(2..3));
        let older = chunks[..1].concat().into_bytes();
        let heads = [older, chunks[3..5].concat().into_bytes()];
        assert_eq!(dropped(&c, a.as_bytes(), &heads), Align::Dropped(2..3));
    }

    fn origin() -> FileOrigin {
        FileOrigin {
            service: "app".into(),
            stream: Stream::Out,
            instance: None,
        }
    }

    #[test]
    fn a_renamed_file_waits_for_pm2_and_for_its_next_file() {
        let key = FileKey { dev: 1, ino: 2 };
        let later = FileKey { dev: 1, ino: 3 };
        let mut r = Rescues::default();
        for l in lines(0, 4) {
            r.on_bus("app".into(), Stream::Out, 0, l);
        }
        r.renamed(key, origin());
        r.renamed(later, origin());
        // The later rename waits for the earlier one's check; the other files too.
        assert!(r.holds(later, &origin()));
        assert!(r.holds(FileKey { dev: 1, ino: 4 }, &origin()));
        assert!(!r.holds(key, &origin()));
        let old = lines(0, 2).concat();
        let new = vec![b"seq=0003\n".to_vec()];
        assert_eq!(r.check(key, None, old.as_bytes(), &new), Verdict::Wait);
        // PM2's last write to the old file may still be landing.
        assert_eq!(
            r.check(key, ago(Duration::ZERO), old.as_bytes(), &new),
            Verdict::Wait
        );
        // The next file is still empty.
        assert_eq!(
            r.check(key, ago(SETTLE), old.as_bytes(), &[vec![]]),
            Verdict::Wait
        );
        assert_eq!(
            r.check(key, ago(SETTLE), old.as_bytes(), &new),
            Verdict::PutBack("seq=0002\n".into())
        );
        // Long after, the next file still empty: the app fell silent after the write
        // PM2 dropped, and everything after the old file's end is put back.
        assert_eq!(
            r.check(key, ago(WAIT_FOR_NEXT), old.as_bytes(), &[vec![]]),
            Verdict::PutBack("seq=0002\nseq=0003\n".into())
        );
        // No empty next file and nothing after the end: nothing to do.
        assert_eq!(
            r.check(key, ago(WAIT_FOR_NEXT), old.as_bytes(), &[]),
            Verdict::Finish
        );
        r.forget(key);
        assert!(!r.holds(later, &origin()));
        assert_eq!(
            r.check(later, ago(SETTLE), old.as_bytes(), &new),
            Verdict::PutBack("seq=0002\n".into())
        );
        // Two processes writing one file: their order on the bus tells nothing.
        r.on_bus("app".into(), Stream::Out, 1, "seq=0003\n".into());
        assert_eq!(
            r.check(later, ago(SETTLE), old.as_bytes(), &new),
            Verdict::Finish
        );
        // A gap in the bus: nothing is known.
        r.gap();
        assert_eq!(
            r.check(later, ago(SETTLE), old.as_bytes(), &new),
            Verdict::Finish
        );
    }

    /// A time `d` before now: when PM2 answered.
    fn ago(d: Duration) -> Option<Instant> {
        Some(Instant::now() - d)
    }

    #[test]
    fn messages_from_before_a_rename_stay_until_its_check_or_it_gives_up() {
        let key = FileKey { dev: 1, ino: 2 };
        let mut r = Rescues::default();
        for l in lines(0, 3) {
            r.on_bus("app".into(), Stream::Out, 0, l);
        }
        r.renamed(key, origin());
        // Far more messages than are kept otherwise: the old file's end is still there.
        for l in lines(3, 3 + RECENT_CHUNKS * 2) {
            r.on_bus("app".into(), Stream::Out, 0, l);
        }
        let old = lines(0, 2).concat();
        let new = vec![lines(3, 5).concat().into_bytes()];
        assert_eq!(
            r.check(key, ago(SETTLE), old.as_bytes(), &new),
            Verdict::PutBack("seq=0002\n".into())
        );
        // Past the bounds, the messages from before the rename are gone: given up.
        r.on_bus("app".into(), Stream::Out, 0, "x".repeat(PINNED_BYTES));
        assert_eq!(
            r.check(key, ago(SETTLE), old.as_bytes(), &new),
            Verdict::Finish
        );
    }

    /// The file watcher may see the write that sets off a rename before the bus thread
    /// has handled its message: the app's stream is first heard of after the rename.
    #[test]
    fn a_stream_first_heard_of_after_the_rename_is_checked_from_its_first_message() {
        let key = FileKey { dev: 1, ino: 2 };
        // `key` renamed, then the app's messages `messages` heard.
        let heard_after = |messages: Vec<String>| {
            let mut r = Rescues::default();
            r.renamed(key, origin());
            for m in messages {
                r.on_bus("app".into(), Stream::Out, 0, m);
            }
            r
        };
        let old = lines(0, 2).concat();
        let new = vec![b"seq=0003\n".to_vec()];
        let check = |r: &Rescues| r.check(key, ago(SETTLE), old.as_bytes(), &new);
        assert_eq!(
            check(&heard_after(lines(0, 4))),
            Verdict::PutBack("seq=0002\n".into())
        );
        // Only the messages from after the rename, the old file's end not among them:
        // nothing to lay against it.
        assert_eq!(check(&heard_after(lines(2, 4))), Verdict::Finish);
        // Its first message no longer kept: given up.
        let mut r = heard_after(lines(0, 4));
        r.on_bus("app".into(), Stream::Out, 0, "x".repeat(PINNED_BYTES));
        assert_eq!(check(&r), Verdict::Finish);
    }

    #[test]
    fn recent_messages_are_bounded() {
        let mut r = Rescues::default();
        for l in lines(0, 1000) {
            r.on_bus("app".into(), Stream::Out, 0, l);
        }
        let recent = &r.recent[&("app".to_string(), Stream::Out, 0)];
        assert_eq!(recent.chunks.len(), RECENT_CHUNKS);
        assert_eq!(recent.chunks.back().unwrap(), "seq=0999\n");
        r.on_bus("app".into(), Stream::Out, 0, "x".repeat(RECENT_BYTES * 2));
        assert_eq!(
            r.recent[&("app".to_string(), Stream::Out, 0)].chunks.len(),
            1
        );
    }
}
