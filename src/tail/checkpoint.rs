//! A read checkpoint: how far one file has been read, by identity. The index stores the
//! set of checkpoints in every commit, so records and offsets can never disagree.

use serde::{Deserialize, Serialize};

use super::identity::{FileKey, Fingerprint};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub key: FileKey,
    pub fingerprint: Fingerprint,
    /// The path the file was last seen at (for people reading the state; the key is what
    /// identifies the file).
    pub path: String,
    /// The first byte not yet in the index, as a position in the file now.
    pub offset: u64,
    /// Bytes cut from the front of the file by collapse rotations: a record's offset is
    /// `base` plus its position in the file, so offsets stay unique and keep counting.
    #[serde(default)]
    pub base: u64,
}

/// What the index keeps in each commit's payload.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointSet {
    pub version: u32,
    pub files: Vec<Checkpoint>,
}
