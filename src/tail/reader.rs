//! One followed file: its open descriptor, identity, read position and line splitter, and
//! the turning of its lines into records (timestamp, level, PM2 JSON chunks).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::{DateTime, Utc};

use super::checkpoint::Checkpoint;
use super::identity::{FileKey, Fingerprint};
use super::splitter::{LineSplitter, Piece};
use crate::parse::{detect_level, parse_line, parse_pm2_json};
use crate::pm2::naming::{origin_of, FileOrigin};
use crate::record::{Kind, Level, Record, TsSource};

/// Bytes read per system call; also the most one file reads before others get a turn.
const CHUNK: usize = 256 * 1024;

pub struct FileReader {
    file: File,
    pub key: FileKey,
    fingerprint: Fingerprint,
    pub path: PathBuf,
    path_str: String,
    origin: FileOrigin,
    /// Next byte to read from the file (the splitter may hold some bytes before it).
    read_pos: u64,
    splitter: LineSplitter,
    /// Timestamp and level of the line whose later pieces are still coming.
    line_ts: Option<(DateTime<Utc>, TsSource, Option<Level>)>,
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
        let file = File::open(path)?;
        let meta = file.metadata()?;
        let key = FileKey::of(&meta);
        let size = meta.len();
        let (fingerprint, start) = match resume {
            Some(cp)
                if cp.key == key && cp.offset <= size && cp.fingerprint.matches(&file, size)? =>
            {
                (cp.fingerprint, cp.offset)
            }
            _ => (Fingerprint::of(&file, size)?, 0),
        };
        let now = Instant::now();
        Ok(FileReader {
            file,
            key,
            fingerprint,
            path: path.to_path_buf(),
            path_str: path.to_string_lossy().into_owned(),
            origin: origin_of(path),
            read_pos: start,
            splitter: LineSplitter::new(max_line as usize, start),
            line_ts: None,
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
        }
    }

    /// The file was found under another path that the globs match.
    pub fn moved_to(&mut self, path: &Path) {
        self.path = path.to_path_buf();
        self.path_str = path.to_string_lossy().into_owned();
    }

    /// Reads what is new, up to a budget, appending records to `out`.
    pub fn read(&mut self, out: &mut Vec<Record>, budget: u64) -> io::Result<ReadOutcome> {
        let mut outcome = ReadOutcome::default();
        let size = self.file.metadata()?.len();
        if size < self.read_pos || !self.fingerprint.refresh(&self.file, size)? {
            // Truncated (or emptied and rewritten). What was held was really written
            // before the truncation: emit it rather than lose it, then start over.
            self.flush_partial(out);
            self.read_pos = 0;
            self.splitter.reset(0);
            self.fingerprint = Fingerprint::of(&self.file, size)?;
            outcome.truncated = true;
        }
        if self.buf.len() < CHUNK {
            self.buf.resize(CHUNK, 0);
        }
        let read_at = Utc::now();
        while self.read_pos < size {
            if outcome.bytes >= budget {
                outcome.more = true;
                break;
            }
            let want = ((size - self.read_pos) as usize).min(CHUNK);
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
        if text.starts_with('{') {
            if let Some(chunk) = parse_pm2_json(&text) {
                let (ts, ts_source) = match chunk.ts {
                    Some(ts) => (ts, TsSource::Line),
                    None => (read_at, TsSource::Read),
                };
                for (sub, line) in chunk.lines.into_iter().enumerate() {
                    let mut rec =
                        self.record(ts, ts_source, detect_level(&line), line, &piece, sub as u32);
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
                return;
            }
        }
        let parsed = parse_line(&text);
        let (ts, ts_source) = match parsed.ts {
            Some(ts) => (ts, TsSource::Line),
            None => (read_at, TsSource::Read),
        };
        if piece.split {
            self.line_ts = Some((ts, ts_source, parsed.level));
        }
        let message = parsed.message.to_owned();
        out.push(self.record(ts, ts_source, parsed.level, message, &piece, 0));
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
            offset: piece.offset,
            sub,
            split: piece.split,
        }
    }
}
