//! One followed file: its open descriptor, identity, read position and line splitter, and
//! the turning of its lines into records (timestamp, level, PM2 JSON chunks).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::{DateTime, Utc};

use super::checkpoint::Checkpoint;
use super::identity::{read_at_most, FileKey, Fingerprint};
use super::splitter::{self, LineSplitter, Piece};
use crate::parse::{detect_level, parse_line, parse_pm2_json};
use crate::pm2::naming::{is_combined, origin_of, FileOrigin};
use crate::record::{Kind, Level, Record, TsSource};

/// Bytes read per system call; also the most one file reads before others get a turn.
const CHUNK: usize = 256 * 1024;
/// A read buffer bigger than this is released once its file has caught up.
const IDLE_BUF: usize = 16 * 1024;

pub struct FileReader {
    file: File,
    pub key: FileKey,
    fingerprint: Fingerprint,
    pub path: PathBuf,
    path_str: String,
    origin: FileOrigin,
    /// PM2's combined `<name>.log` (every stream of the app), told by the name it was
    /// opened under: a rotation renames it.
    combined: bool,
    /// Next byte to read from the file (the splitter may hold some bytes before it).
    read_pos: u64,
    splitter: LineSplitter,
    /// Timestamp and level of the line whose later pieces are still coming.
    line_ts: Option<(DateTime<Utc>, TsSource, Option<Level>)>,
    /// Bytes cut from the front by collapse or copytruncate rotations (see
    /// [`Checkpoint::base`]).
    base: u64,
    /// Whether `open` positioned the file at its checkpoint.
    pub resumed: bool,
    /// The file's length at the last read: what the tailer reports and checks against
    /// `max_size` without another `fstat`.
    pub seen_size: u64,
    /// Time of the oldest line still in the file since it was opened or last rotated;
    /// what `max_age` rotation measures.
    pub oldest: Option<DateTime<Utc>>,
    /// Set when the path no longer leads to this file (renamed away or deleted).
    pub gone_since: Option<Instant>,
    pub last_growth: Instant,
    buf: Vec<u8>,
}

/// What one call to [`FileReader::read`] found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ReadOutcome {
    pub bytes: u64,
    /// The file was shorter than what had been read, or its first bytes changed.
    pub truncated: bool,
    /// More is waiting (the per-call budget was used up).
    pub more: bool,
}

impl FileReader {
    /// Opens `path` and positions it at `resume` if that checkpoint is for this very file
    /// (same fingerprint, not longer than the file), else at the start.
    pub fn open(path: &Path, resume: Option<&Checkpoint>, max_line: u64) -> io::Result<FileReader> {
        let file = open_regular(path)?;
        let meta = file.metadata()?;
        let key = FileKey::of(&meta);
        let size = meta.len();
        let (fingerprint, start, base, resumed) = match resume {
            Some(cp)
                if cp.key == key && cp.offset <= size && cp.fingerprint.matches(&file, size)? =>
            {
                (cp.fingerprint, cp.offset, cp.base, true)
            }
            _ => (Fingerprint::of(&file, size)?, 0, 0, false),
        };
        // Lines before the resume point were read by an earlier run: their age is the
        // first line's own timestamp when it has one.
        let oldest = if start > 0 {
            Some(first_line_time(&file).unwrap_or_else(Utc::now))
        } else {
            None
        };
        let now = Instant::now();
        let origin = origin_of(path);
        let combined = is_combined(path, &origin);
        Ok(FileReader {
            file,
            key,
            fingerprint,
            path: path.to_path_buf(),
            path_str: path.to_string_lossy().into_owned(),
            origin,
            combined,
            read_pos: start,
            splitter: LineSplitter::new(max_line as usize, start),
            line_ts: None,
            base,
            resumed,
            seen_size: size,
            oldest,
            gone_since: None,
            last_growth: now,
            buf: Vec::new(),
        })
    }

    pub fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            key: self.key,
            fingerprint: self.fingerprint,
            path: self.path_str.clone(),
            offset: self.splitter.resume_offset(),
            base: self.base,
        }
    }

    /// What the file's name says about its writer.
    pub fn origin(&self) -> &FileOrigin {
        &self.origin
    }

    /// Whether this is PM2's combined `<name>.log` of an app.
    pub fn is_combined(&self) -> bool {
        self.combined
    }

    pub fn service(&self) -> &str {
        &self.origin.service
    }

    /// The file's current length.
    pub fn size(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    /// Collapse rotation: removes the first `len` bytes of the file in place with
    /// `fallocate(FALLOC_FL_COLLAPSE_RANGE)` while writers keep appending, and moves every
    /// offset back by `len`. `len` must be block-aligned and already emitted.
    pub fn collapse(&mut self, len: u64) -> io::Result<()> {
        if len > self.splitter.resume_offset() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cannot collapse bytes that were not read yet",
            ));
        }
        let writable = self.writable()?;
        collapse_range(&writable, len)?;
        self.read_pos -= len;
        self.splitter.shift_back(len);
        self.base += len;
        self.seen_size = self.size()?;
        self.fingerprint = Fingerprint::of(&self.file, self.seen_size)?;
        self.oldest = None;
        Ok(())
    }

    /// Copytruncate rotation, the last resort: copies the file as it is to `dest`, then
    /// truncates it. Lines written between the copy and the truncation are lost; their
    /// byte count is returned. The caller reads the file to its end first.
    pub fn copy_truncate(&mut self, dest: &Path, out: &mut Vec<Record>) -> io::Result<u64> {
        let writable = self.writable()?;
        let copied =
            crate::rotate::archive::write_archive(&self.path, 0..self.read_pos, dest, None)?
                .bytes_in;
        let size_at_truncate = writable.metadata()?.len();
        writable.set_len(0)?;
        let lost = size_at_truncate.saturating_sub(copied);
        // The held last line was copied; it cannot be finished in the emptied file.
        self.flush_partial(out);
        self.base += size_at_truncate;
        self.read_pos = 0;
        self.splitter.reset(0);
        self.seen_size = 0;
        self.fingerprint = Fingerprint::of(&self.file, 0)?;
        self.oldest = None;
        Ok(lost)
    }

    /// The same file opened for writing, checked to still be this file.
    fn writable(&self) -> io::Result<File> {
        let f = std::fs::OpenOptions::new().write(true).open(&self.path)?;
        if FileKey::of(&f.metadata()?) != self.key {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{} is no longer the followed file", self.path.display()),
            ));
        }
        Ok(f)
    }

    /// The file's first `n` bytes (fewer when it is shorter).
    pub fn head(&self, n: u64) -> io::Result<Vec<u8>> {
        read_at_most(&self.file, 0, n)
    }

    /// The file's last `n` bytes (fewer when it is shorter).
    pub fn tail(&self, n: u64) -> io::Result<Vec<u8>> {
        let len = self.size()?;
        read_at_most(&self.file, len.saturating_sub(n), n.min(len))
    }

    /// Appends `bytes` to the file, checked to still be this file.
    pub fn append(&self, bytes: &[u8]) -> io::Result<()> {
        use std::io::{Seek, Write};
        let mut f = self.writable()?;
        f.seek(io::SeekFrom::End(0))?;
        f.write_all(bytes)
    }

    /// The file was found under another path that the globs match.
    pub fn moved_to(&mut self, path: &Path) {
        self.path = path.to_path_buf();
        self.path_str = path.to_string_lossy().into_owned();
    }

    /// Reads what is new, appending records to `out`, until `budget` bytes are read or
    /// `out` holds `max_records` (checked between chunks, so it may end a chunk's worth
    /// of lines over).
    pub fn read(
        &mut self,
        out: &mut Vec<Record>,
        budget: u64,
        max_records: usize,
    ) -> io::Result<ReadOutcome> {
        let mut outcome = ReadOutcome::default();
        let size = self.file.metadata()?.len();
        self.seen_size = size;
        if size < self.read_pos || !self.fingerprint.refresh(&self.file, size)? {
            // Truncated (or emptied and rewritten). What was held was really written
            // before the truncation: emit it rather than lose it, then start over.
            self.flush_partial(out);
            self.read_pos = 0;
            self.splitter.reset(0);
            self.fingerprint = Fingerprint::of(&self.file, size)?;
            outcome.truncated = true;
        }
        let read_at = Utc::now();
        let first_new = out.len();
        while self.read_pos < size {
            if outcome.bytes >= budget || out.len() >= max_records {
                outcome.more = true;
                break;
            }
            let want = ((size - self.read_pos) as usize).min(CHUNK);
            // Sized to what is read, not to CHUNK up front: with 200 quiet files a full
            // chunk each would be 50 MiB of buffers holding a few lines.
            if self.buf.len() < want {
                self.buf.resize(want, 0);
            }
            let n = match self.file.read_at(&mut self.buf[..want], self.read_pos) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.read_pos += n as u64;
            outcome.bytes += n as u64;
            let buf = std::mem::take(&mut self.buf);
            let mut splitter = std::mem::replace(&mut self.splitter, LineSplitter::new(4, 0));
            splitter.push(&buf[..n], |piece| self.emit(piece, read_at, out));
            self.splitter = splitter;
            self.buf = buf;
        }
        if outcome.bytes > 0 {
            self.last_growth = Instant::now();
        }
        // Caught up after a backlog: give the big buffer back until the next one.
        if !outcome.more && self.buf.len() > IDLE_BUF && outcome.bytes < IDLE_BUF as u64 {
            self.buf = Vec::new();
        }
        if self.oldest.is_none() {
            self.oldest = out.get(first_new).map(|r| r.ts);
        }
        Ok(outcome)
    }

    /// Emits the held last line, if any: the file is going away and no newline will come.
    pub fn flush_partial(&mut self, out: &mut Vec<Record>) -> bool {
        let read_at = Utc::now();
        let mut splitter = std::mem::replace(&mut self.splitter, LineSplitter::new(4, 0));
        let flushed = splitter.flush(|piece| self.emit(piece, read_at, out));
        self.splitter = splitter;
        flushed
    }

    fn emit(&mut self, piece: Piece<'_>, read_at: DateTime<Utc>, out: &mut Vec<Record>) {
        let text = String::from_utf8_lossy(piece.bytes);
        if piece.continuation {
            // A later piece of an over-long line: it has no prefix of its own.
            let (ts, ts_source, level) = self.line_ts.unwrap_or((read_at, TsSource::Read, None));
            out.push(self.record(ts, ts_source, level, text.into_owned(), &piece, 0));
            return;
        }
        let (ts, ts_source, level) = self.whole_line(&text, &piece, read_at, out);
        if piece.split {
            self.line_ts = Some((ts, ts_source, level));
        }
    }

    /// The records of `line` if it were the next line of this file, starting at
    /// `offset` (a position as records give it) and read at `read_at`; None when it is
    /// too long to be one piece. What the early lines from PM2's bus are shown as.
    pub fn preview(&self, line: &str, offset: u64, read_at: DateTime<Utc>) -> Option<Vec<Record>> {
        let bytes = line.as_bytes();
        if bytes.len() > self.splitter.max_line() || memchr::memchr(b'\n', bytes).is_some() {
            return None;
        }
        let piece = Piece {
            bytes: splitter::trim_cr(bytes),
            offset: offset.checked_sub(self.base)?,
            split: false,
            continuation: false,
        };
        let text = String::from_utf8_lossy(piece.bytes);
        let mut out = Vec::new();
        self.whole_line(&text, &piece, read_at, &mut out);
        Some(out)
    }

    /// Where the next line of the file will start, as records give positions: the end
    /// of the last whole line read.
    pub fn read_end(&self) -> u64 {
        self.base + self.splitter.resume_offset()
    }

    /// The records of a line or a line's first piece; returns its time and level, which
    /// later pieces carry too.
    fn whole_line(
        &self,
        text: &str,
        piece: &Piece<'_>,
        read_at: DateTime<Utc>,
        out: &mut Vec<Record>,
    ) -> (DateTime<Utc>, TsSource, Option<Level>) {
        if text.starts_with('{') {
            if let Some(chunk) = parse_pm2_json(text) {
                let (ts, ts_source) = match chunk.ts {
                    Some(ts) => (ts, TsSource::Line),
                    None => (read_at, TsSource::Read),
                };
                for (sub, line) in chunk.lines.into_iter().enumerate() {
                    let mut rec =
                        self.record(ts, ts_source, detect_level(&line), line, piece, sub as u32);
                    if let Some(service) = &chunk.service {
                        rec.service.clone_from(service);
                    }
                    if let Some(stream) = chunk.stream {
                        rec.stream = stream;
                    }
                    if chunk.instance.is_some() {
                        rec.instance = chunk.instance;
                    }
                    out.push(rec);
                }
                return (ts, ts_source, None);
            }
        }
        let parsed = parse_line(text);
        let (ts, ts_source) = match parsed.ts {
            Some(ts) => (ts, TsSource::Line),
            None => (read_at, TsSource::Read),
        };
        let message = parsed.message.to_owned();
        out.push(self.record(ts, ts_source, parsed.level, message, piece, 0));
        (ts, ts_source, parsed.level)
    }

    fn record(
        &self,
        ts: DateTime<Utc>,
        ts_source: TsSource,
        level: Option<Level>,
        message: String,
        piece: &Piece<'_>,
        sub: u32,
    ) -> Record {
        Record {
            ts,
            ts_source,
            service: self.origin.service.clone(),
            stream: self.origin.stream,
            instance: self.origin.instance,
            level,
            kind: Kind::Line,
            message,
            file: self.path_str.clone(),
            offset: self.base + piece.offset,
            sub,
            split: piece.split,
            marker: None,
        }
    }
}

/// Opens `path` for reading only if it is a regular file. Opening a FIFO without a
/// writer blocks until one appears, and the tailer's one thread would hang with it (a
/// FIFO named like a log file, or a followed file replaced by one while the daemon was
/// down and opened again from its checkpoint): so the open is non-blocking, and anything
/// but a regular file (FIFO, directory, socket, device) is refused with an error that
/// says what it is.
fn open_regular(path: &Path) -> io::Result<File> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    let kind = file.metadata()?.file_type();
    let what = if kind.is_file() {
        None
    } else if kind.is_fifo() {
        Some("a FIFO")
    } else if kind.is_dir() {
        Some("a directory")
    } else if kind.is_socket() {
        Some("a socket")
    } else {
        Some("a device")
    };
    if let Some(what) = what {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("not a regular file but {what}"),
        ));
    }
    // Back to blocking reads, as every other descriptor of the daemon (O_NONBLOCK means
    // nothing for a regular file on Linux, but it would be surprising elsewhere).
    // SAFETY: fcntl on a descriptor we own; F_SETFL takes an int argument.
    unsafe {
        let flags = libc::fcntl(file.as_raw_fd(), libc::F_GETFL);
        if flags >= 0 {
            libc::fcntl(file.as_raw_fd(), libc::F_SETFL, flags & !libc::O_NONBLOCK);
        }
    }
    Ok(file)
}

/// `fallocate(FALLOC_FL_COLLAPSE_RANGE)` on the first `len` bytes.
fn collapse_range(file: &File, len: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let len = libc::off_t::try_from(len)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "collapse length too large"))?;
    // SAFETY: fallocate on a descriptor we own; no memory is passed.
    let rc = unsafe { libc::fallocate(file.as_raw_fd(), libc::FALLOC_FL_COLLAPSE_RANGE, 0, len) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The timestamp of the file's first line, when it has one.
fn first_line_time(file: &File) -> Option<DateTime<Utc>> {
    let mut head = vec![0u8; 4096];
    let n = file.read_at(&mut head, 0).ok()?;
    let line = &head[..n];
    let line = &line[..memchr::memchr(b'\n', line).unwrap_or(n)];
    parse_line(&String::from_utf8_lossy(line)).ts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_stops_once_the_batch_holds_its_records_and_the_next_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("duck-out.log");
        let text: String = (0..100_000).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&path, &text).unwrap();
        let mut reader = FileReader::open(&path, None, 1 << 20).unwrap();
        let mut messages = Vec::new();
        let mut reads = 0;
        loop {
            let mut out = Vec::new();
            let outcome = reader.read(&mut out, u64::MAX, 1000).unwrap();
            reads += 1;
            // Checked between 256 KiB chunks: at most one chunk of lines over.
            assert!(out.len() <= 1000 + CHUNK / 7, "{} records", out.len());
            messages.extend(out.into_iter().map(|r| r.message));
            if !outcome.more {
                break;
            }
        }
        assert!(reads > 1);
        let want: Vec<String> = (0..100_000).map(|i| format!("line {i}")).collect();
        assert_eq!(messages, want);
    }
}
