//! Rotation of the live log files without cron and without losing a byte: [`rotator`]
//! decides when a file is due and how it is moved aside (PM2 `reloadLogs`, in-place
//! collapse, or copytruncate as the last resort); [`archive`] owns the archive files
//! (names, streamed gzip, crash recovery, retention); [`journal`] makes an interrupted
//! collapse recoverable; [`status`] records what was done for the status endpoint.

pub mod archive;
pub mod journal;
pub mod rotator;
pub mod status;

pub use rotator::{prepare, RotateMsg, Rotated, Rotator};
pub use status::RotationBoard;
