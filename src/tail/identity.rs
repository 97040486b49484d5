//! File identity: a log file is known by what it is, not by where it is. A rename keeps
//! the identity (so its offset carries over); a new file that happens to reuse an old
//! inode does not, because the first bytes differ.

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64;

/// How many leading bytes of a file make its fingerprint. Enough to hold a timestamp and
/// the start of a first line, so two files on a reused inode are told apart.
pub const HEAD_BYTES: u64 = 256;

/// Device and inode: what the kernel says the file is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FileKey {
    pub dev: u64,
    pub ino: u64,
}

impl FileKey {
    pub fn of(meta: &std::fs::Metadata) -> FileKey {
        FileKey {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }
}

/// A hash of the first `head_len` bytes. A young file has fewer than [`HEAD_BYTES`]; its
/// fingerprint is widened as it grows (see [`Fingerprint::refresh`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    pub head_len: u64,
    pub head_hash: u64,
}

impl Fingerprint {
    /// The fingerprint of `file` as it is now, `size` being its current length.
    pub fn of(file: &File, size: u64) -> io::Result<Fingerprint> {
        let head_len = size.min(HEAD_BYTES);
        let head = read_head(file, head_len)?;
        Ok(Fingerprint {
            head_len: head.len() as u64,
            head_hash: xxh3_64(&head),
        })
    }

    /// Whether `file` (now `size` bytes long) still starts with the bytes this fingerprint
    /// was taken from. A file shorter than the fingerprint was truncated or replaced.
    pub fn matches(&self, file: &File, size: u64) -> io::Result<bool> {
        if size < self.head_len {
            return Ok(false);
        }
        let head = read_head(file, self.head_len)?;
        Ok(head.len() as u64 == self.head_len && xxh3_64(&head) == self.head_hash)
    }

    /// Checks the file against this fingerprint and, if it matches and the file has grown
    /// past a short fingerprint, widens it. Returns false when the file is not the same.
    pub fn refresh(&mut self, file: &File, size: u64) -> io::Result<bool> {
        if !self.matches(file, size)? {
            return Ok(false);
        }
        if self.head_len < HEAD_BYTES && size > self.head_len {
            *self = Fingerprint::of(file, size)?;
        }
        Ok(true)
    }
}

fn read_head(file: &File, len: u64) -> io::Result<Vec<u8>> {
    read_at_most(file, 0, len)
}

/// Up to `len` bytes of `file` from `at` (fewer at its end).
pub(super) fn read_at_most(file: &File, at: u64, len: u64) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len as usize];
    let mut filled = 0;
    while filled < buf.len() {
        match file.read_at(&mut buf[filled..], at + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(filled);
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn short_fingerprint_widens_and_detects_replacement() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let mut f = File::create(&path).unwrap();
        f.write_all(b"hello\n").unwrap();
        let r = File::open(&path).unwrap();
        let mut fp = Fingerprint::of(&r, 6).unwrap();
        assert_eq!(fp.head_len, 6);
        f.write_all(&[b'x'; 400]).unwrap();
        assert!(fp.refresh(&r, 406).unwrap());
        assert_eq!(fp.head_len, HEAD_BYTES);
        // Truncated and rewritten with other bytes: no longer the same file.
        f.set_len(0).unwrap();
        let mut f2 = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f2.write_all(&[b'y'; 300]).unwrap();
        assert!(!fp.refresh(&r, 300).unwrap());
        assert!(!fp.matches(&r, 10).unwrap());
    }
}
