//! The file source: finds PM2's log files, follows each one by identity, and turns new
//! bytes into [`Record`](crate::record::Record)s with the read checkpoint that makes
//! them resumable. It never talks to the index; it sends [`Batch`]es down a channel.

pub mod checkpoint;
pub mod early;
pub mod identity;
pub mod reader;
pub mod rescue;
pub mod splitter;
pub mod tailer;

pub use checkpoint::Checkpoint;
pub use early::{BusChunk, BusNote, EarlyLines};
pub use tailer::{
    Batch, FileState, Followed, GrowthHook, TailCommand, TailMsg, Tailer, TailerLinks,
    TailerOptions,
};
