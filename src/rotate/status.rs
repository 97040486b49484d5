//! What the rotator has done to each live file, for `GET /api/status` and `logagg status`:
//! last rotation, the method it used, errors, and bytes possibly lost by copytruncate.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::Serialize;

#[derive(Clone, Debug, Default, Serialize)]
pub struct FileRotation {
    pub rotations: u64,
    pub last_rotation: Option<DateTime<Utc>>,
    pub last_method: Option<&'static str>,
    /// Bytes written between copy and truncate in copytruncate rotations: lines that
    /// may be missing from the archives and the index.
    pub copytruncate_lost_bytes: u64,
    pub last_error: Option<String>,
    pub last_error_at: Option<DateTime<Utc>>,
}

/// Per live file path.
pub type RotationBoard = Arc<Mutex<BTreeMap<PathBuf, FileRotation>>>;

/// Applies `f` to the entry of `path`, creating it.
pub fn update(board: &RotationBoard, path: &std::path::Path, f: impl FnOnce(&mut FileRotation)) {
    if let Ok(mut b) = board.lock() {
        f(b.entry(path.to_path_buf()).or_default());
    }
}
