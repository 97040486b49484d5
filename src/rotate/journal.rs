//! The collapse journal: what a collapse rotation is about to do, written down before it
//! starts, so that a crash at any point is resolved at the next start. A collapse cuts
//! the front of a live file in place while the index's last commit may still describe the
//! file as it was; the journal says which of the two the file now is.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tracing::{info, warn};
use xxhash_rust::xxh3::xxh3_64;

use crate::tail::identity::{FileKey, Fingerprint, HEAD_BYTES};
use crate::tail::Checkpoint;

/// One collapse in progress.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub key: FileKey,
    pub path: PathBuf,
    /// Bytes removed from the front.
    pub len: u64,
    /// The file's `base` before the collapse (see [`Checkpoint::base`]).
    pub base_before: u64,
    /// Length of the file when the entry was written.
    pub size_before: u64,
    /// Hash of the first [`HEAD_BYTES`] (or fewer) bytes before, and of the bytes that
    /// become the first ones after.
    pub head_before: u64,
    pub head_after: u64,
    pub archive: PathBuf,
}

/// The journal file under `data_dir`.
pub struct Journal {
    path: PathBuf,
    entries: Vec<Entry>,
}

impl Journal {
    pub fn open(data_dir: &Path) -> io::Result<Journal> {
        let path = data_dir.join("collapse-journal.json");
        let entries = match fs::read(&path) {
            Ok(bytes) if bytes.is_empty() => Vec::new(),
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                warn!(path = %path.display(), error = %e, "unreadable collapse journal; ignoring it");
                Vec::new()
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        Ok(Journal { path, entries })
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn add(&mut self, entry: Entry) -> io::Result<()> {
        self.entries.push(entry);
        self.save()
    }

    /// Keeps only the entries `keep` says are still needed.
    pub fn retain(&mut self, keep: impl FnMut(&Entry) -> bool) -> io::Result<()> {
        let before = self.entries.len();
        self.entries.retain(keep);
        if self.entries.len() != before {
            self.save()?;
        }
        Ok(())
    }

    /// Writes the journal durably: temp file, fsync, rename, fsync of the directory.
    fn save(&self) -> io::Result<()> {
        let tmp = self.path.with_extension("json.tmp");
        let mut f = File::create(&tmp)?;
        f.write_all(&serde_json::to_vec(&self.entries).map_err(io::Error::other)?)?;
        f.sync_all()?;
        fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}

/// A journal entry for cutting `len` bytes from the front of `file`.
pub fn entry_for(
    file: &File,
    key: FileKey,
    path: &Path,
    len: u64,
    base_before: u64,
    archive: &Path,
) -> io::Result<Entry> {
    let size_before = file.metadata()?.len();
    Ok(Entry {
        key,
        path: path.to_path_buf(),
        len,
        base_before,
        size_before,
        head_before: hash_at(file, 0, size_before)?,
        head_after: hash_at(file, len, size_before)?,
        archive: archive.to_path_buf(),
    })
}

fn hash_at(file: &File, at: u64, size: u64) -> io::Result<u64> {
    let n = size.saturating_sub(at).min(HEAD_BYTES) as usize;
    let mut buf = vec![0u8; n];
    file.read_exact_at(&mut buf, at)?;
    Ok(xxh3_64(&buf))
}

/// Settles every journal entry against the checkpoints the index committed, before the
/// tailer starts: a collapse that happened but whose shifted checkpoint was not committed
/// gets its checkpoint shifted here; one that never happened has its archive removed,
/// since those bytes are still in the live file. Then the journal is emptied.
pub fn reconcile(journal: &mut Journal, checkpoints: &mut [Checkpoint]) -> io::Result<()> {
    for e in journal.entries().to_vec() {
        let Some(cp) = checkpoints.iter_mut().find(|cp| cp.key == e.key) else {
            continue;
        };
        if cp.base >= e.base_before + e.len {
            continue; // the index already has the collapsed view
        }
        let Ok(file) = File::open(&e.path) else {
            continue;
        };
        let meta = file.metadata()?;
        if FileKey::of(&meta) != e.key {
            continue;
        }
        let size = meta.len();
        let head_len = e.size_before.min(HEAD_BYTES);
        let collapsed = if size < head_len {
            true // only a collapse makes an appended-to file shorter
        } else if e.head_before == e.head_after {
            // Content that repeats with the block size looks the same either way; the
            // file only shrinks through a collapse.
            size < e.size_before
        } else {
            hash_at(&file, 0, head_len)? != e.head_before
        };
        if collapsed {
            info!(path = %e.path.display(), len = e.len, "finishing an interrupted collapse rotation");
            cp.offset = cp.offset.saturating_sub(e.len);
            cp.base = e.base_before + e.len;
            cp.fingerprint = Fingerprint::of(&file, size)?;
        } else {
            info!(archive = %e.archive.display(), "collapse never happened; removing its archive");
            remove_if_there(&e.archive)?;
            let tmp_name = format!(
                ".{}.tmp",
                e.archive
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            );
            if let Some(dir) = e.archive.parent() {
                remove_if_there(&dir.join(tmp_name))?;
            }
        }
    }
    journal.retain(|_| false)
}

fn remove_if_there(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}
