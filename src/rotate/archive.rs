//! Archive files on disk: what they are called, how one is written so that a crash never
//! leaves half of it under its final name, how the debris of a crash is cleaned up, and
//! which ones retention removes. Nothing here decides *when* to rotate or compress, and
//! nothing starts a thread: every function blocks on the file system, so callers run
//! them on a blocking thread.
//!
//! An archive is `<dir>/<stem>.<yyyymmddTHHMMSS.ffffffZ>.log.gz` (`.log` when it is not
//! compressed), the time in UTC. The fixed-width timestamp makes the names of one stem
//! sort in time order, and it is read from the *end* of the name so that a stem that is
//! a prefix of another (`duck` and `duck-out`) or that contains dots (`my.app.v2-out`)
//! never claims its neighbour's files. Files being written are called
//! `.<final name>.tmp`: hidden, and ending in neither `.log` nor `.gz`, so no `*.log`
//! glob (PM2's, the tailer's) and no archive parser ever mistakes them for finished
//! files.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Datelike, NaiveDate, TimeDelta, Timelike, Utc};
use flate2::write::GzEncoder;
use flate2::Compression;

/// `yyyymmddTHHMMSS.ffffffZ`
const TIMESTAMP_LEN: usize = 23;

/// Read size of [`write_archive`] when it copies without compressing, or compresses a
/// range too small to share out: the whole of its memory use apart from the compressor's
/// own fixed state, whatever the size of the range.
const COPY_BUFFER: usize = 256 * 1024;

/// Input of one gzip member when a range is compressed on several threads. Each member
/// starts a fresh dictionary, which costs about 0.01% of the output at this size; every
/// gzip reader (`gzip -d`, `zcat`, `zgrep`, lnav, Python's `gzip`) reads the members as
/// one stream, as it does pigz's output.
const MEMBER_INPUT: usize = 4 << 20;

/// Compression threads at most: two cores already give three times `gzip -6`; more
/// would take a developer's whole machine for a background chore.
const MAX_COMPRESS_THREADS: usize = 4;

const COMPRESSED_SUFFIX: &str = ".log.gz";
const PLAIN_SUFFIX: &str = ".log";
const TEMP_SUFFIX: &str = ".tmp";

/// What an archive's file name says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArchiveName {
    /// The live file's name without `.log` (`duck-out`, `api-out-3`). Compare it with
    /// `==`: it is never a prefix match.
    pub stem: String,
    /// When the archive was cut, to the microsecond.
    pub at: DateTime<Utc>,
    /// `.log.gz` rather than `.log`.
    pub compressed: bool,
}

impl ArchiveName {
    /// The file name this describes (the inverse of [`parse_archive_name`]).
    pub fn file_name(&self) -> String {
        format_name(&self.stem, self.at, self.compressed)
    }
}

/// One archive found in a directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Archive {
    pub path: PathBuf,
    pub name: ArchiveName,
    /// Size on disk (compressed size for `.log.gz`).
    pub size: u64,
}

/// What [`write_archive`] moved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ArchiveStats {
    /// Bytes read from the source (the length of the range).
    pub bytes_in: u64,
    /// Bytes of the finished archive.
    pub bytes_out: u64,
}

/// What [`recover`] found after a restart.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Temporary files of interrupted writes, now deleted.
    pub removed_temps: Vec<PathBuf>,
    /// `.log` archives with no `.log.gz` twin: left uncompressed by a crash or by
    /// configuration; the caller decides whether to compress them.
    pub uncompressed: Vec<PathBuf>,
    /// `.log` archives whose `.log.gz` twin (same stem, same time) already exists: a
    /// crash came between finishing the compressed copy and deleting the plain one. The
    /// twin is complete (it only gets its final name after `fsync`), so these are
    /// redundant and the caller can delete them.
    pub superseded: Vec<PathBuf>,
}

/// Limits on one stem's archives. All limits apply together.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Retention {
    /// Keep at most this many of the newest archives; 0 = no limit.
    pub retain: u32,
    /// Delete archives whose name's time is older than this.
    pub max_age: Option<Duration>,
    /// Delete the oldest archives until the rest together take at most this many bytes.
    pub max_total_size: Option<u64>,
}

/// A free path for a new archive of `stem` cut at `at`: `at` truncated to the
/// microsecond, then moved forward 1 µs at a time while the name is taken. A name is
/// taken when either its `.log` or its `.log.gz` form exists, so that compressing an
/// uncompressed archive later into its `.log.gz` twin can never collide with another.
///
/// `stem` must be a plain file name part (non-empty, no `/`). Years past 9999 give names
/// that [`parse_archive_name`] does not accept.
pub fn archive_path(dir: &Path, stem: &str, at: DateTime<Utc>, compressed: bool) -> PathBuf {
    debug_assert!(
        !stem.is_empty() && !stem.contains('/'),
        "archive stem {stem:?} is not a file name part"
    );
    let mut at = truncate_to_micros(at);
    loop {
        let taken = [true, false]
            .iter()
            .any(|&gz| fs::symlink_metadata(dir.join(format_name(stem, at, gz))).is_ok());
        let next = at.checked_add_signed(TimeDelta::microseconds(1));
        match next {
            Some(next) if taken => at = next,
            // At the end of chrono's range there is no later name to try; the write will
            // report the clash.
            _ => return dir.join(format_name(stem, at, compressed)),
        }
    }
}

/// Reads an archive's file name; `None` for anything that is not exactly
/// `<stem>.<yyyymmddTHHMMSS.ffffffZ>.log[.gz]` with a non-empty stem and a valid time.
pub fn parse_archive_name(file_name: &str) -> Option<ArchiveName> {
    let (rest, compressed) = match file_name.strip_suffix(COMPRESSED_SUFFIX) {
        Some(rest) => (rest, true),
        None => (file_name.strip_suffix(PLAIN_SUFFIX)?, false),
    };
    let split = rest.len().checked_sub(TIMESTAMP_LEN)?;
    if !rest.is_char_boundary(split) {
        return None;
    }
    let (head, timestamp) = rest.split_at(split);
    let stem = head.strip_suffix('.').filter(|s| !s.is_empty())?;
    Some(ArchiveName {
        stem: stem.to_string(),
        at: parse_timestamp(timestamp)?,
        compressed,
    })
}

/// Creates the archive directory and its parents if missing (default mode).
pub fn ensure_dir(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir).map_err(|e| at_path(e, "create archive directory", dir))
}

/// Copies exactly `range` of `src` into a new archive at `dest`, gzip-compressed at
/// `level` (0-9), or as a plain copy when `level` is `None`.
///
/// The bytes go to `.<dest name>.tmp` beside `dest`, which is synced, renamed to `dest`,
/// and then the directory is synced. On any error nothing is left behind: the temporary
/// file is removed, and so is `dest` if only the final directory sync failed, so an
/// `Err` always means "not archived, the source still holds the bytes". `dest` must not
/// exist yet ([`archive_path`] picks a free one). A source shorter than `range.end` is
/// an `UnexpectedEof` error. Memory use is one fixed buffer whatever the range's size.
pub fn write_archive(
    src: &Path,
    range: Range<u64>,
    dest: &Path,
    level: Option<u32>,
) -> io::Result<ArchiveStats> {
    if range.start > range.end {
        return Err(invalid_input(format!(
            "archive range {}..{} of {} is reversed",
            range.start,
            range.end,
            src.display()
        )));
    }
    if let Some(level) = level.filter(|&l| l > 9) {
        return Err(invalid_input(format!("gzip level {level} is out of 0..=9")));
    }
    let temp = temp_path(dest)?;
    if fs::symlink_metadata(dest).is_ok() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("archive {} already exists", dest.display()),
        ));
    }

    let source = File::open(src).map_err(|e| at_path(e, "open", src))?;
    let out = create_temp(&temp)?;
    let stats = match fill(&source, src, range, out, &temp, level) {
        Ok(stats) => stats,
        Err(e) => {
            discard(&temp);
            return Err(e);
        }
    };
    if let Err(e) = fs::rename(&temp, dest) {
        discard(&temp);
        return Err(at_path(e, "rename into place", dest));
    }
    let dir = parent_dir(dest);
    if let Err(e) = sync_dir(dir) {
        // The archive is complete but its name may not survive a power loss; undo it so
        // the caller keeps treating the source as the only copy.
        discard(dest);
        return Err(at_path(e, "sync directory", dir));
    }
    Ok(stats)
}

/// Cleans up after a crash: deletes the temporary files of interrupted writes, and
/// reports the `.log` archives that are not compressed. A missing `dir` is empty.
pub fn recover(dir: &Path) -> io::Result<Recovered> {
    let mut found = Recovered::default();
    let entries = read_regular_files(dir)?;
    for name in &entries {
        let is_temp = name
            .strip_prefix('.')
            .and_then(|n| n.strip_suffix(TEMP_SUFFIX))
            .and_then(parse_archive_name)
            .is_some();
        if is_temp {
            let path = dir.join(name);
            match fs::remove_file(&path) {
                Ok(()) => found.removed_temps.push(path),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(at_path(e, "remove temporary file", &path)),
            }
        } else if parse_archive_name(name).is_some_and(|a| !a.compressed) {
            let twin = format!("{name}.gz");
            if entries.binary_search(&twin).is_ok() {
                found.superseded.push(dir.join(name));
            } else {
                found.uncompressed.push(dir.join(name));
            }
        }
    }
    Ok(found)
}

/// The archives of exactly `stem` in `dir` (both `.log.gz` and `.log`), oldest first by
/// the time in their names. A missing `dir` has none.
pub fn list_archives(dir: &Path, stem: &str) -> io::Result<Vec<Archive>> {
    let mut archives = Vec::new();
    for file_name in read_regular_files(dir)? {
        let Some(name) = parse_archive_name(&file_name).filter(|n| n.stem == stem) else {
            continue;
        };
        let path = dir.join(&file_name);
        let size = match fs::symlink_metadata(&path) {
            Ok(meta) => meta.len(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(at_path(e, "stat", &path)),
        };
        archives.push(Archive { path, name, size });
    }
    archives.sort_by(|a, b| {
        (a.name.at, a.name.compressed, &a.path).cmp(&(b.name.at, b.name.compressed, &b.path))
    });
    Ok(archives)
}

/// Deletes the archives of exactly `stem` that `r` does not allow: those beyond the
/// `retain` newest, those older than `max_age` at `now`, then the oldest of the rest
/// until they fit in `max_total_size`. Returns the paths it deleted, oldest first; a file
/// that vanished meanwhile is skipped. Stops at the first deletion that fails.
pub fn apply_retention(
    dir: &Path,
    stem: &str,
    r: &Retention,
    now: DateTime<Utc>,
) -> io::Result<Vec<PathBuf>> {
    let archives = list_archives(dir, stem)?;
    let doomed = doomed_by(&archives, r, now);
    let mut deleted = Vec::with_capacity(doomed);
    for archive in &archives[..doomed] {
        match fs::remove_file(&archive.path) {
            Ok(()) => deleted.push(archive.path.clone()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(at_path(e, "delete archive", &archive.path)),
        }
    }
    Ok(deleted)
}

/// How many of `archives` (oldest first) retention removes. Every rule removes from the
/// old end, so the answer is always a prefix.
fn doomed_by(archives: &[Archive], r: &Retention, now: DateTime<Utc>) -> usize {
    let mut doomed = 0;
    if r.retain > 0 {
        doomed = archives.len().saturating_sub(r.retain as usize);
    }
    // A max_age too large for chrono means nothing can be that old.
    let cutoff = r
        .max_age
        .and_then(|age| TimeDelta::from_std(age).ok())
        .and_then(|age| now.checked_sub_signed(age));
    if let Some(cutoff) = cutoff {
        let too_old = archives.iter().take_while(|a| a.name.at < cutoff).count();
        doomed = doomed.max(too_old);
    }
    if let Some(limit) = r.max_total_size {
        let mut total: u64 = archives[doomed..].iter().map(|a| a.size).sum();
        while total > limit && doomed < archives.len() {
            total -= archives[doomed].size;
            doomed += 1;
        }
    }
    doomed
}

fn format_name(stem: &str, at: DateTime<Utc>, compressed: bool) -> String {
    let suffix = if compressed {
        COMPRESSED_SUFFIX
    } else {
        PLAIN_SUFFIX
    };
    format!(
        "{stem}.{:04}{:02}{:02}T{:02}{:02}{:02}.{:06}Z{suffix}",
        at.year(),
        at.month(),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.timestamp_subsec_micros(),
    )
}

/// Drops sub-microsecond digits, which names cannot hold. A leap second (which chrono
/// stores as an oversized fraction) becomes the following second's instant, so every
/// name has seconds in 00-59.
fn truncate_to_micros(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(at.timestamp_micros()).unwrap_or(at)
}

/// Strictly `yyyymmddTHHMMSS.ffffffZ`: ASCII digits in every digit position (no signs,
/// no spaces, no shorter fields), and a real calendar date and time.
fn parse_timestamp(s: &str) -> Option<DateTime<Utc>> {
    let b = s.as_bytes();
    if b.len() != TIMESTAMP_LEN || b[8] != b'T' || b[15] != b'.' || b[22] != b'Z' {
        return None;
    }
    let number = |from: usize, to: usize| -> Option<u32> {
        b[from..to].iter().try_fold(0u32, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    let date = NaiveDate::from_ymd_opt(
        i32::try_from(number(0, 4)?).ok()?,
        number(4, 6)?,
        number(6, 8)?,
    )?;
    let second = number(13, 15)?;
    if second > 59 {
        return None;
    }
    let time = date.and_hms_micro_opt(number(9, 11)?, number(11, 13)?, second, number(16, 22)?)?;
    Some(time.and_utc())
}

/// The names of the regular files in `dir`, sorted; not-UTF-8 names (never ours) and
/// anything else (directories, symlinks) are left out. A missing `dir` is empty.
fn read_regular_files(dir: &Path) -> io::Result<Vec<String>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(at_path(e, "read directory", dir)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| at_path(e, "read directory", dir))?;
        let is_file = match entry.file_type() {
            Ok(kind) => kind.is_file(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => return Err(at_path(e, "stat", &entry.path())),
        };
        if let (true, Ok(name)) = (is_file, entry.file_name().into_string()) {
            names.push(name);
        }
    }
    names.sort_unstable();
    Ok(names)
}

/// Streams `range` of `source` into `out`, compressed or not, and syncs it.
fn fill(
    source: &File,
    src: &Path,
    range: Range<u64>,
    out: File,
    temp: &Path,
    level: Option<u32>,
) -> io::Result<ArchiveStats> {
    let bytes_in = range.end - range.start;
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(MAX_COMPRESS_THREADS);
    let out = match level {
        Some(level) if threads > 1 && bytes_in > 2 * MEMBER_INPUT as u64 => {
            let mut out = out;
            compress_in_members(source, src, range, &mut out, temp, level, threads)?;
            out
        }
        Some(level) => {
            let mut encoder = GzEncoder::new(out, Compression::new(level));
            copy_range(source, src, range, &mut encoder, temp)?;
            encoder.finish().map_err(|e| at_path(e, "write", temp))?
        }
        None => {
            let mut out = out;
            copy_range(source, src, range, &mut out, temp)?;
            out
        }
    };
    out.sync_all().map_err(|e| at_path(e, "sync", temp))?;
    let bytes_out = out.metadata().map_err(|e| at_path(e, "stat", temp))?.len();
    Ok(ArchiveStats {
        bytes_in,
        bytes_out,
    })
}

/// Compresses `range` as consecutive gzip members of [`MEMBER_INPUT`] bytes each, `threads`
/// members at a time, written in order: the pigz approach, so a large archive is done in
/// a fraction of the time one core needs. Memory: `threads` inputs and their outputs.
fn compress_in_members(
    source: &File,
    src: &Path,
    range: Range<u64>,
    sink: &mut impl Write,
    temp: &Path,
    level: u32,
    threads: usize,
) -> io::Result<()> {
    let mut inputs: Vec<Vec<u8>> = Vec::with_capacity(threads);
    let mut pos = range.start;
    while pos < range.end {
        inputs.clear();
        while inputs.len() < threads && pos < range.end {
            let len = (range.end - pos).min(MEMBER_INPUT as u64);
            let mut chunk = Vec::with_capacity(len as usize);
            copy_range(source, src, pos..pos + len, &mut chunk, temp)?;
            pos += len;
            inputs.push(chunk);
        }
        let members: Vec<io::Result<Vec<u8>>> = std::thread::scope(|scope| {
            let running: Vec<_> = inputs
                .iter()
                .map(|chunk| scope.spawn(move || gzip_member(chunk, level)))
                .collect();
            running
                .into_iter()
                .map(|t| {
                    t.join()
                        .unwrap_or_else(|_| Err(io::Error::other("compressor panicked")))
                })
                .collect()
        });
        for member in members {
            let member = member.map_err(|e| at_path(e, "compress", temp))?;
            sink.write_all(&member)
                .map_err(|e| at_path(e, "write", temp))?;
        }
    }
    Ok(())
}

/// One complete gzip member holding `input`.
fn gzip_member(input: &[u8], level: u32) -> io::Result<Vec<u8>> {
    let mut encoder = GzEncoder::new(Vec::with_capacity(input.len() / 3), Compression::new(level));
    encoder.write_all(input)?;
    encoder.finish()
}

/// Positioned reads (`pread`), so the source's file offset is never touched, through one
/// buffer of at most [`COPY_BUFFER`] bytes.
fn copy_range(
    source: &File,
    src: &Path,
    range: Range<u64>,
    sink: &mut impl Write,
    temp: &Path,
) -> io::Result<()> {
    let capacity =
        usize::try_from(range.end - range.start).map_or(COPY_BUFFER, |len| len.min(COPY_BUFFER));
    let mut buf = vec![0u8; capacity];
    let mut pos = range.start;
    while pos < range.end {
        let want = usize::try_from(range.end - pos).map_or(buf.len(), |left| left.min(buf.len()));
        let n = match source.read_at(&mut buf[..want], pos) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "{} ends at byte {pos}, before the end of the archived range {}..{}",
                        src.display(),
                        range.start,
                        range.end
                    ),
                ))
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(at_path(e, "read", src)),
        };
        sink.write_all(&buf[..n])
            .map_err(|e| at_path(e, "write", temp))?;
        pos += n as u64;
    }
    Ok(())
}

/// `.<dest name>.tmp` beside `dest`.
fn temp_path(dest: &Path) -> io::Result<PathBuf> {
    let name = dest.file_name().ok_or_else(|| {
        invalid_input(format!("archive path {} has no file name", dest.display()))
    })?;
    let mut temp = OsString::from(".");
    temp.push(name);
    temp.push(TEMP_SUFFIX);
    Ok(dest.with_file_name(temp))
}

/// Creates the temporary file afresh. A stale one from a crash is replaced rather than
/// opened, so whatever sits at that name (even a symlink) is never written through.
fn create_temp(temp: &Path) -> io::Result<File> {
    let create = || OpenOptions::new().write(true).create_new(true).open(temp);
    let file = match create() {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            fs::remove_file(temp).and_then(|()| create())
        }
        other => other,
    };
    file.map_err(|e| at_path(e, "create", temp))
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// Makes a rename in `dir` durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Best-effort removal on an error path: the original error is the one worth reporting.
fn discard(path: &Path) {
    if let Err(e) = fs::remove_file(path) {
        if e.kind() != io::ErrorKind::NotFound {
            tracing::warn!(path = %path.display(), error = %e, "could not remove a partial archive");
        }
    }
}

/// Keeps the error's kind (callers match on it) and says what was being done to which
/// path.
fn at_path(e: io::Error, action: &str, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{action} {}: {e}", path.display()))
}

fn invalid_input(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::io::Read;
    use std::os::unix::fs::PermissionsExt;
    use std::time::Instant;

    use chrono::TimeZone;
    use flate2::read::MultiGzDecoder;
    use proptest::prelude::*;
    use tempfile::TempDir;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32, micro: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap() + TimeDelta::microseconds(micro.into())
    }

    fn names_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    /// Log text with the texture of real PM2 output: timestamps, levels, request lines
    /// with ids and latencies, JSON lines, the odd stack trace. Deterministic.
    fn log_text(target: usize) -> Vec<u8> {
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let levels = ["INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR"];
        let paths = [
            "/v1/users",
            "/v1/orders",
            "/health",
            "/v1/search",
            "/static/app.js",
        ];
        let methods = ["GET", "GET", "GET", "POST", "PUT", "DELETE"];
        let mut out = Vec::with_capacity(target + 512);
        let mut ms: u64 = 1_772_000_000_000;
        while out.len() < target {
            let r = next();
            ms += r % 40;
            let ts = DateTime::from_timestamp_millis(ms as i64).unwrap();
            let stamp = ts.format("%Y-%m-%dT%H:%M:%S%.3fZ");
            let line = match r % 20 {
                0 => format!(
                    "{{\"message\":\"job {} finished in {}ms\",\"timestamp\":\"{stamp}\",\"type\":\"out\",\"process_id\":{},\"app_name\":\"worker\"}}\n",
                    next() % 100_000,
                    next() % 5000,
                    r % 4
                ),
                1 => format!(
                    "{stamp} ERROR unhandled rejection: TypeError: Cannot read properties of undefined (reading 'id')\n    at OrderService.load (/srv/app/src/orders.js:{}:17)\n    at async Router.handle (/srv/app/node_modules/express/lib/router/index.js:284:9)\n",
                    next() % 400
                ),
                _ => format!(
                    "{stamp} {:<5} [api] {} {}/{}?limit={} {} {}.{}ms req={:016x} ua=\"Mozilla/5.0 (X11; Linux x86_64)\"\n",
                    levels[(r >> 8) as usize % levels.len()],
                    methods[(r >> 12) as usize % methods.len()],
                    paths[(r >> 16) as usize % paths.len()],
                    next() % 100_000,
                    [10, 20, 50, 100][(r >> 20) as usize % 4],
                    [200, 200, 200, 201, 304, 404, 500][(r >> 24) as usize % 7],
                    next() % 300,
                    next() % 10,
                    next(),
                ),
            };
            out.extend_from_slice(line.as_bytes());
        }
        out
    }

    fn gunzip(path: &Path) -> Vec<u8> {
        let mut out = Vec::new();
        MultiGzDecoder::new(File::open(path).unwrap())
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn name_round_trips_and_sorts_by_time() {
        let times = [
            utc(2026, 3, 1, 0, 0, 0, 0),
            utc(2026, 3, 1, 0, 0, 0, 1),
            utc(2026, 3, 1, 0, 0, 0, 999_999),
            utc(2026, 3, 1, 0, 0, 1, 0),
            utc(2026, 12, 31, 23, 59, 59, 500_000),
            utc(2027, 1, 1, 0, 0, 0, 0),
        ];
        let mut names = Vec::new();
        for &at in &times {
            for compressed in [true, false] {
                let name = format_name("api-out-3", at, compressed);
                let parsed = parse_archive_name(&name).unwrap();
                assert_eq!(
                    parsed,
                    ArchiveName {
                        stem: "api-out-3".into(),
                        at,
                        compressed
                    }
                );
                assert_eq!(parsed.file_name(), name);
            }
            names.push(format_name("api-out-3", at, true));
        }
        assert_eq!(names[0], "api-out-3.20260301T000000.000000Z.log.gz");
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(sorted, names);

        // archive_path drops nanoseconds but is otherwise the same name.
        let dir = TempDir::new().unwrap();
        let at =
            Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap() + TimeDelta::nanoseconds(1_234_567);
        let path = archive_path(dir.path(), "duck-out", at, false);
        assert_eq!(
            path,
            dir.path().join("duck-out.20260301T120000.001234Z.log")
        );
    }

    #[test]
    fn names_are_unique_within_one_microsecond() {
        let dir = TempDir::new().unwrap();
        let at = utc(2026, 3, 1, 12, 0, 0, 999_999);
        let mut made = Vec::new();
        for i in 0..5 {
            // Alternate forms: a `.log` name also blocks its `.log.gz` twin and back.
            let path = archive_path(dir.path(), "duck-out", at, i % 2 == 0);
            assert!(!path.exists());
            fs::write(&path, b"x").unwrap();
            made.push(path.file_name().unwrap().to_str().unwrap().to_string());
        }
        let times: Vec<_> = made
            .iter()
            .map(|n| parse_archive_name(n).unwrap().at)
            .collect();
        let expected: Vec<_> = (0..5).map(|i| at + TimeDelta::microseconds(i)).collect();
        assert_eq!(times, expected, "{made:?}");
        // The bump crossed a second boundary and the names still sort in time order.
        let mut sorted = made.clone();
        sorted.sort();
        assert_eq!(sorted, made);
        // Another stem's names do not block this one.
        let other = archive_path(dir.path(), "duck", at, true);
        assert_eq!(
            parse_archive_name(other.file_name().unwrap().to_str().unwrap())
                .unwrap()
                .at,
            at
        );
    }

    #[test]
    fn parse_refuses_near_misses() {
        let good = "duck-out.20260301T120000.123456Z.log.gz";
        assert!(parse_archive_name(good).is_some());
        for bad in [
            "duck-out.log",
            "duck-out.20260301T120000.123456Z.gz",
            "duck-out.20260301T120000.123456Z.log.gz.tmp",
            ".duck-out.20260301T120000.123456Z.log.gz.tmp",
            "duck-out.20260301T120000.123456Z.log.bz2",
            "duck-out.20260301T120000.123456Z.log.",
            ".20260301T120000.123456Z.log.gz",
            "20260301T120000.123456Z.log.gz",
            "duck-out20260301T120000.123456Z.log.gz",
            "duck-out-20260301T120000.123456Z.log.gz",
            "duck-out.20260301T120000.12345Z.log.gz",
            "duck-out.20260301T120000.1234567Z.log.gz",
            "duck-out.20260301 120000.123456Z.log.gz",
            "duck-out.20260301T120000,123456Z.log.gz",
            "duck-out.20260301T120000.123456.log.gz",
            "duck-out.20260301T120000.+23456Z.log.gz",
            "duck-out.+0260301T120000.123456Z.log.gz",
            "duck-out.20261301T120000.123456Z.log.gz",
            "duck-out.20260230T120000.123456Z.log.gz",
            "duck-out.20260301T240000.123456Z.log.gz",
            "duck-out.20260301T126000.123456Z.log.gz",
            "duck-out.20260301T235960.123456Z.log.gz",
            "duck-out.2026-03-01T12:00:00.123456Z.log.gz",
            "duck-out.20260301T120000.123456Z.LOG.GZ",
            "duck-out.2026030é1T12000.123456Z.log.gz",
            "duck-out.log.gz",
            "",
        ] {
            assert_eq!(parse_archive_name(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn parse_takes_the_stem_exactly() {
        let ts = "20260301T120000.123456Z";
        for stem in [
            "duck",
            "duck-out",
            "duckling",
            "api",
            "api-gw",
            "api-2",
            "my.app.v2-out",
            "a",
        ] {
            for suffix in [".log", ".log.gz"] {
                let parsed = parse_archive_name(&format!("{stem}.{ts}{suffix}")).unwrap();
                assert_eq!(parsed.stem, stem);
            }
        }
        // A stem that itself ends in something timestamp-like is still only the part
        // before the last timestamp.
        let nested = format!("duck.{ts}.{ts}.log.gz");
        assert_eq!(
            parse_archive_name(&nested).unwrap().stem,
            format!("duck.{ts}")
        );
        // Prefix stems list nothing of their neighbours.
        let dir = TempDir::new().unwrap();
        for stem in [
            "duck",
            "duck-out",
            "duckling",
            "api",
            "api-gw",
            "my.app.v2-out",
            "my.app",
        ] {
            fs::write(dir.path().join(format!("{stem}.{ts}.log.gz")), b"x").unwrap();
        }
        for stem in [
            "duck",
            "duck-out",
            "duckling",
            "api",
            "api-gw",
            "my.app.v2-out",
            "my.app",
        ] {
            let listed = list_archives(dir.path(), stem).unwrap();
            assert_eq!(listed.len(), 1, "{stem}");
            assert_eq!(listed[0].name.stem, stem);
        }
    }

    #[test]
    fn write_archive_compresses_exactly_the_range() {
        let dir = TempDir::new().unwrap();
        let src = dir.path().join("duck-out.log");
        let text = log_text(3 * 1024 * 1024 / 2 + 777);
        fs::write(&src, &text).unwrap();
        let at = utc(2026, 3, 1, 12, 0, 0, 0);
        let len = text.len() as u64;
        let ranges = [
            0..0,
            5..5,
            0..1,
            17..4113,
            0..(COPY_BUFFER as u64),
            1..(COPY_BUFFER as u64 + 2),
            1000..(1000 + 1024 * 1024 + 3),
            0..len,
            len..len,
        ];
        for range in ranges {
            // Every level for a small range; the big ones at the default only (zlib-rs is
            // slow in a debug build).
            let levels: &[Option<u32>] = if range.end - range.start < 10_000 {
                &[Some(6), Some(0), Some(1), Some(9), None]
            } else {
                &[Some(6), None]
            };
            for &level in levels {
                let dest = archive_path(dir.path(), "duck-out", at, level.is_some());
                let stats = write_archive(&src, range.clone(), &dest, level).unwrap();
                let want = &text[range.start as usize..range.end as usize];
                let got = if level.is_some() {
                    gunzip(&dest)
                } else {
                    fs::read(&dest).unwrap()
                };
                assert!(got == want, "range {range:?} level {level:?}");
                assert_eq!(stats.bytes_in, range.end - range.start);
                assert_eq!(stats.bytes_out, fs::metadata(&dest).unwrap().len());
                if level == Some(6) && want.len() > 1 << 20 {
                    assert!(stats.bytes_out < stats.bytes_in / 4, "{stats:?}");
                }
            }
        }
        // The source is untouched and nothing temporary is left.
        assert!(fs::read(&src).unwrap() == text);
        assert!(names_in(dir.path()).iter().all(|n| !n.starts_with('.')));
    }

    /// A range compressed on several threads is several gzip members; `gzip -d` (what
    /// `zcat` and `zgrep` run) reads them back as the one original text.
    #[test]
    fn members_compressed_in_parallel_read_back_as_one_text() {
        let dir = TempDir::new().unwrap();
        let src = dir.path().join("duck-out.log");
        let text = log_text(3 * MEMBER_INPUT + 12_345);
        fs::write(&src, &text).unwrap();
        let source = File::open(&src).unwrap();
        for (threads, range) in [
            (2, 0..text.len() as u64),
            (3, 7..(2 * MEMBER_INPUT as u64 + 1)),
        ] {
            let dest = dir.path().join(format!("out-{threads}.gz"));
            let mut out = File::create(&dest).unwrap();
            compress_in_members(&source, &src, range.clone(), &mut out, &dest, 6, threads).unwrap();
            drop(out);
            let want = &text[range.start as usize..range.end as usize];
            assert!(gunzip(&dest) == want, "{threads} threads, {range:?}");
            let members = (range.end - range.start).div_ceil(MEMBER_INPUT as u64);
            let mut first = Vec::new();
            flate2::read::GzDecoder::new(File::open(&dest).unwrap())
                .read_to_end(&mut first)
                .unwrap();
            assert_eq!(first.len(), MEMBER_INPUT, "{members} members");
            let gzip = std::process::Command::new("gzip")
                .arg("-dc")
                .arg(&dest)
                .output()
                .expect("gzip is installed");
            assert!(gzip.status.success(), "{:?}", gzip.status);
            assert!(gzip.stdout == want, "gzip -dc differs");
        }
        // The source range ending early is the same clear error as on one thread.
        let dest = dir.path().join("short.gz");
        let mut out = File::create(&dest).unwrap();
        let err = compress_in_members(
            &source,
            &src,
            0..text.len() as u64 + 1,
            &mut out,
            &dest,
            6,
            2,
        )
        .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "{err}");
        assert!(err.to_string().contains("duck-out.log"), "{err}");
    }

    #[test]
    fn write_archive_refuses_what_it_cannot_do_cleanly() {
        let dir = TempDir::new().unwrap();
        let src = dir.path().join("duck-out.log");
        fs::write(&src, vec![b'a'; 100]).unwrap();
        let at = utc(2026, 3, 1, 12, 0, 0, 0);

        for (range, level) in [
            (0..200, Some(6)),
            (0..101, None),
            (150..160, Some(6)),
            (100..101, None),
        ] {
            let dest = archive_path(dir.path(), "duck-out", at, level.is_some());
            let err = write_archive(&src, range.clone(), &dest, level).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "{range:?}: {err}");
            assert!(err.to_string().contains("duck-out.log"), "{err}");
            assert!(!dest.exists());
            assert_eq!(names_in(dir.path()), ["duck-out.log"]);
        }

        let dest = archive_path(dir.path(), "duck-out", at, true);
        #[allow(clippy::reversed_empty_ranges)]
        let reversed = 10..5;
        let err = write_archive(&src, reversed, &dest, Some(6)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        let err = write_archive(&src, 0..10, &dest, Some(10)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        let err =
            write_archive(&dir.path().join("missing.log"), 0..10, &dest, Some(6)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(err.to_string().contains("missing.log"), "{err}");

        // An existing archive is never replaced.
        fs::write(&dest, b"older archive").unwrap();
        let err = write_archive(&src, 0..10, &dest, Some(6)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&dest).unwrap(), b"older archive");
        fs::remove_file(&dest).unwrap();

        // A stale temporary file from a crash is replaced, not appended to.
        fs::write(temp_path(&dest).unwrap(), b"garbage from a crash").unwrap();
        write_archive(&src, 0..100, &dest, Some(6)).unwrap();
        assert_eq!(gunzip(&dest), vec![b'a'; 100]);
        assert_eq!(names_in(dir.path()).len(), 2);
    }

    #[test]
    fn unwritable_destination_fails_and_keeps_the_source() {
        let dir = TempDir::new().unwrap();
        let src = dir.path().join("duck-out.log");
        let text = log_text(300_000);
        fs::write(&src, &text).unwrap();
        let at = utc(2026, 3, 1, 12, 0, 0, 0);

        // SAFETY: geteuid has no preconditions and cannot fail.
        let root = unsafe { libc::geteuid() } == 0;
        let archive_dir = dir.path().join("archive");
        if root {
            // Permission bits do not stop root; a directory path that runs through a
            // regular file (ENOTDIR) stops everyone.
            fs::write(&archive_dir, b"not a directory").unwrap();
        } else {
            fs::create_dir(&archive_dir).unwrap();
            fs::set_permissions(&archive_dir, fs::Permissions::from_mode(0o555)).unwrap();
        }
        let dest = archive_path(&archive_dir, "duck-out", at, true);
        let err = write_archive(&src, 0..text.len() as u64, &dest, Some(6)).unwrap_err();
        assert!(err.to_string().contains("archive"), "{err}");
        assert!(!dest.exists());
        assert!(fs::read(&src).unwrap() == text);
        if root {
            assert_eq!(fs::read(&archive_dir).unwrap(), b"not a directory");
            assert!(ensure_dir(&archive_dir).is_err());
        } else {
            assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
            assert!(names_in(&archive_dir).is_empty());
            fs::set_permissions(&archive_dir, fs::Permissions::from_mode(0o755)).unwrap();
        }
        assert_eq!(names_in(dir.path()), ["archive", "duck-out.log"]);
    }

    #[test]
    fn ensure_dir_creates_parents_and_accepts_existing() {
        let dir = TempDir::new().unwrap();
        let nested = dir.path().join("a/b/archive");
        ensure_dir(&nested).unwrap();
        ensure_dir(&nested).unwrap();
        assert!(nested.is_dir());
    }

    #[test]
    fn recover_removes_temps_and_lists_uncompressed() {
        let dir = TempDir::new().unwrap();
        let d = dir.path();
        let ts = "20260301T120000.000000Z";
        let files = [
            format!(".duck-out.{ts}.log.gz.tmp"),
            format!(".api.{ts}.log.tmp"),
            format!("duck-out.{ts}.log"),
            format!("api-2.{ts}.log"),
            format!("api-2.{ts}.log.gz"),
            format!("api.{ts}.log.gz"),
            "duck-out.log".to_string(),
            ".hidden.tmp".to_string(),
            "notes.tmp".to_string(),
            format!("duck.{ts}.txt"),
        ];
        for name in &files {
            fs::write(d.join(name), b"x").unwrap();
        }
        // A directory named like an archive is not one.
        fs::create_dir(d.join(format!("dir.{ts}.log"))).unwrap();

        let found = recover(d).unwrap();
        assert_eq!(
            found,
            Recovered {
                removed_temps: vec![d.join(&files[1]), d.join(&files[0])],
                uncompressed: vec![d.join(&files[2])],
                superseded: vec![d.join(&files[3])],
            }
        );
        assert!(!d.join(&files[0]).exists() && !d.join(&files[1]).exists());
        for name in &files[2..] {
            assert!(d.join(name).exists(), "{name}");
        }
        // Idempotent.
        assert!(recover(d).unwrap().removed_temps.is_empty());
        assert_eq!(recover(&d.join("missing")).unwrap(), Recovered::default());
    }

    /// Creates `n` archives of `stem`, one per hour from `start`, each `size` bytes,
    /// alternating compressed and not; returns their paths oldest first.
    fn make_archives(
        dir: &Path,
        stem: &str,
        start: DateTime<Utc>,
        n: usize,
        size: usize,
    ) -> Vec<PathBuf> {
        (0..n)
            .map(|i| {
                let at = start + TimeDelta::hours(i as i64);
                let path = archive_path(dir, stem, at, i % 3 != 0);
                fs::write(&path, vec![b'x'; size]).unwrap();
                path
            })
            .collect()
    }

    fn surviving(dir: &Path, stem: &str) -> Vec<PathBuf> {
        list_archives(dir, stem)
            .unwrap()
            .into_iter()
            .map(|a| a.path)
            .collect()
    }

    #[test]
    fn retention_by_count() {
        let dir = TempDir::new().unwrap();
        let d = dir.path();
        let start = utc(2026, 3, 1, 0, 0, 0, 0);
        let duck = make_archives(d, "duck", start, 6, 10);
        let duck_out = make_archives(d, "duck-out", start, 6, 10);
        fs::write(d.join("duck.log"), b"live").unwrap();
        let r = Retention {
            retain: 2,
            ..Retention::default()
        };
        let now = start + TimeDelta::days(1);
        assert_eq!(apply_retention(d, "duck", &r, now).unwrap(), duck[..4]);
        assert_eq!(surviving(d, "duck"), duck[4..]);
        assert_eq!(surviving(d, "duck-out"), duck_out);
        assert!(d.join("duck.log").exists());
        // Nothing more to do; retain = 0 is no limit.
        assert!(apply_retention(d, "duck", &r, now).unwrap().is_empty());
        assert!(apply_retention(d, "duck-out", &Retention::default(), now)
            .unwrap()
            .is_empty());
        assert!(apply_retention(&d.join("missing"), "duck", &r, now)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn retention_by_age() {
        let dir = TempDir::new().unwrap();
        let d = dir.path();
        let start = utc(2026, 3, 1, 0, 0, 0, 0);
        let api = make_archives(d, "api", start, 10, 10);
        let api_2 = make_archives(d, "api-2", start, 10, 10);
        let r = Retention {
            max_age: Some(Duration::from_secs(3 * 3600)),
            ..Retention::default()
        };
        // Archives at hours 0..=9; now = hour 10; older than 3 h means before hour 7.
        let now = start + TimeDelta::hours(10);
        assert_eq!(apply_retention(d, "api", &r, now).unwrap(), api[..7]);
        assert_eq!(surviving(d, "api"), api[7..]);
        assert_eq!(surviving(d, "api-2"), api_2);
        // An age beyond chrono's range deletes nothing.
        let forever = Retention {
            max_age: Some(Duration::from_secs(u64::MAX)),
            ..Retention::default()
        };
        assert!(apply_retention(d, "api-2", &forever, now)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn retention_by_size_and_combined() {
        let dir = TempDir::new().unwrap();
        let d = dir.path();
        let start = utc(2026, 3, 1, 0, 0, 0, 0);
        let duck = make_archives(d, "duck", start, 8, 100);
        let duck_out = make_archives(d, "duck-out", start, 8, 100);
        let r = Retention {
            max_total_size: Some(350),
            ..Retention::default()
        };
        let now = start + TimeDelta::days(1);
        assert_eq!(apply_retention(d, "duck", &r, now).unwrap(), duck[..5]);
        assert_eq!(surviving(d, "duck"), duck[5..]);
        assert_eq!(surviving(d, "duck-out"), duck_out);

        // Size counts only what the other rules left: retain 6 and age remove the first
        // three, then 500 bytes of the five left must shrink to 200.
        let r = Retention {
            retain: 6,
            max_age: Some(Duration::from_secs(5 * 3600 + 1)),
            max_total_size: Some(200),
        };
        let now = start + TimeDelta::hours(8);
        assert_eq!(
            apply_retention(d, "duck-out", &r, now).unwrap(),
            duck_out[..6]
        );
        assert_eq!(surviving(d, "duck-out"), duck_out[6..]);
        // A limit below the newest archive's size removes everything.
        let r = Retention {
            max_total_size: Some(0),
            ..Retention::default()
        };
        assert_eq!(apply_retention(d, "duck", &r, now).unwrap(), duck[5..]);
        assert_eq!(surviving(d, "duck-out"), duck_out[6..]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn retention_only_touches_its_stem_and_keeps_the_newest(
            stems in prop::sample::subsequence(
                vec!["duck", "duck-out", "duckling", "api", "api-2", "api-gw", "my.app.v2-out", "my.app"],
                2..=3,
            ),
            archives in prop::collection::vec((0usize..3, 0i64..3_000, any::<bool>()), 0..40),
            retain in 0u32..8,
            target in 0usize..3,
        ) {
            let dir = TempDir::new().unwrap();
            let d = dir.path();
            let base = utc(2026, 3, 1, 0, 0, 0, 0);
            let mut made: Vec<Vec<PathBuf>> = vec![Vec::new(); stems.len()];
            for (stem, micros, compressed) in archives {
                let i = stem % stems.len();
                // Many times collide, so the 1 µs bump is exercised too.
                let path = archive_path(d, stems[i], base + TimeDelta::microseconds(micros), compressed);
                prop_assert!(!path.exists());
                fs::write(&path, b"x").unwrap();
                made[i].push(path);
            }
            let target = target % stems.len();
            let r = Retention { retain, ..Retention::default() };
            let deleted = apply_retention(d, stems[target], &r, base).unwrap();

            let mut mine = made[target].clone();
            mine.sort_by_key(|p| parse_archive_name(p.file_name().unwrap().to_str().unwrap()).unwrap().at);
            let keep = if retain == 0 { mine.len() } else { mine.len().min(retain as usize) };
            let cut = mine.len() - keep;
            prop_assert_eq!(&deleted, &mine[..cut].to_vec());
            prop_assert_eq!(surviving(d, stems[target]), mine[cut..].to_vec());
            for (i, paths) in made.iter().enumerate().filter(|&(i, _)| i != target) {
                for path in paths {
                    prop_assert!(path.exists(), "{} of {} deleted", path.display(), stems[i]);
                }
            }
        }
    }

    /// Compression speed against `gzip -6`, both by wall clock on the same ~100 MiB of
    /// log text (page-cached). Ours includes its fsyncs; gzip's does not.
    #[test]
    #[ignore = "benchmark: cargo test --release --lib rotate::archive::tests::throughput -- --ignored --nocapture"]
    fn throughput_against_gzip() {
        let dir = TempDir::new().unwrap();
        let d = dir.path();
        let src = d.join("bench-out.log");
        fs::write(&src, log_text(100 * 1024 * 1024)).unwrap();
        let len = fs::metadata(&src).unwrap().len();
        let mb = len as f64 / 1e6;
        println!("input: {len} bytes of log text");
        for round in 1..=2 {
            let dest = archive_path(d, "bench-out", Utc::now(), true);
            let started = Instant::now();
            let stats = write_archive(&src, 0..len, &dest, Some(6)).unwrap();
            let ours = started.elapsed().as_secs_f64();
            fs::remove_file(&dest).unwrap();

            let gz_out = d.join("gzip-out.gz");
            let started = Instant::now();
            let status = std::process::Command::new("gzip")
                .args(["-6", "-c"])
                .arg(&src)
                .stdout(File::create(&gz_out).unwrap())
                .status();
            let theirs = started.elapsed().as_secs_f64();
            let gzip_size = fs::metadata(&gz_out).map(|m| m.len()).unwrap_or(0);
            println!(
                "round {round}: write_archive level 6: {:.1} MB/s ({ours:.2} s, {} -> {} bytes, ratio {:.2}) | gzip -6: {} ({theirs:.2} s, {gzip_size} bytes)",
                mb / ours,
                stats.bytes_in,
                stats.bytes_out,
                stats.bytes_in as f64 / stats.bytes_out as f64,
                match status {
                    Ok(s) if s.success() => format!("{:.1} MB/s", mb / theirs),
                    other => format!("not run ({other:?})"),
                },
            );
        }
    }
}
