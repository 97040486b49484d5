//! The timeline: a tantivy index on disk holding every record, and the read checkpoints of
//! every file in each commit's payload, so what is indexed and where reading resumes can
//! never disagree after a crash.

pub(crate) mod cores;
pub mod document;
pub mod histogram;
pub(crate) mod lookups;
pub mod merges;
pub mod order;
pub mod schema;
pub mod search;
pub mod tokenizer;
pub mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tantivy::directory::MmapDirectory;
use tantivy::{Index, IndexReader, ReloadPolicy};

use crate::tail::checkpoint::CheckpointSet;
pub use schema::Fields;
pub use search::{Hit, Order, SearchError, SearchRequest, SearchResult};
pub use writer::{Committed, Indexer, IndexerOptions};

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("index at {path}: {source}")]
    Open {
        path: String,
        source: tantivy::TantivyError,
    },
    #[error("index at {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("index at {path}: the stored checkpoints are unreadable: {source}")]
    Payload {
        path: String,
        source: serde_json::Error,
    },
    #[error("index at {path} was built with another schema; move it aside to start a new one")]
    SchemaMismatch { path: String },
    #[error(
        "index at {path} is in format {found:?}, written by another version of logagg, and \
         this one reads format {FORMAT:?}; move it aside to start a new one"
    )]
    OtherFormat { path: String, found: String },
}

/// What is written in [`FORMAT_FILE`]. Format 2: the term dictionaries' blocks are not
/// compressed (tantivy built without zstd, which cannot read format 1's).
pub const FORMAT: &str = "2";

/// Names the index's format, beside tantivy's files in the index directory; an index
/// without it is format 1.
pub const FORMAT_FILE: &str = "logagg-format";

/// An open timeline: the index, its field handles and a reader that the writer reloads
/// after each commit.
#[derive(Clone)]
pub struct Timeline {
    pub index: Index,
    pub fields: Fields,
    pub reader: IndexReader,
    /// What searches learn once per segment: timestamp bounds per block, sort-key
    /// columns, exact counts of queries (`index::order`).
    pub segments: Arc<order::SegmentCache>,
    /// tantivy's `meta.json`, rewritten by every commit and every merge.
    pub meta: PathBuf,
}

impl Timeline {
    /// Opens the index in `dir`, creating it when absent.
    pub fn open(dir: &Path) -> Result<Timeline, IndexError> {
        let path = dir.display().to_string();
        std::fs::create_dir_all(dir).map_err(|source| IndexError::Io {
            path: path.clone(),
            source,
        })?;
        check_format(dir)?;
        let (schema, fields) = schema::build();
        let mmap = MmapDirectory::open(dir).map_err(|e| IndexError::Open {
            path: path.clone(),
            source: e.into(),
        })?;
        let index = Index::open_or_create(mmap, schema).map_err(|source| match source {
            tantivy::TantivyError::SchemaError(_) => {
                IndexError::SchemaMismatch { path: path.clone() }
            }
            source => IndexError::Open {
                path: path.clone(),
                source,
            },
        })?;
        index
            .tokenizers()
            .register("default", tokenizer::MessageTokenizer::new());
        // Reloaded by the indexer: after each of its commits, and when merges that
        // ended later changed the segments (`Indexer::pick_up_merges`).
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(|source| IndexError::Open {
                path: path.clone(),
                source,
            })?;
        Ok(Timeline {
            index,
            fields,
            reader,
            segments: Arc::default(),
            meta: dir.join("meta.json"),
        })
    }

    /// The checkpoints stored with the last commit (empty for a new index).
    pub fn checkpoints(&self) -> Result<CheckpointSet, IndexError> {
        let path = "timeline".to_string();
        let metas = self.index.load_metas().map_err(|source| IndexError::Open {
            path: path.clone(),
            source,
        })?;
        match metas.payload {
            None => Ok(CheckpointSet::default()),
            Some(p) => {
                serde_json::from_str(&p).map_err(|source| IndexError::Payload { path, source })
            }
        }
    }
}

/// Refuses an index of another format, and marks a directory holding no index yet with
/// this one before tantivy writes there (so a crash in between leaves nothing unmarked).
fn check_format(dir: &Path) -> Result<(), IndexError> {
    let path = dir.display().to_string();
    let io = |source| IndexError::Io {
        path: path.clone(),
        source,
    };
    let marker = dir.join(FORMAT_FILE);
    if !dir.join("meta.json").exists() {
        return std::fs::write(&marker, format!("{FORMAT}\n")).map_err(io);
    }
    let found = match std::fs::read_to_string(&marker) {
        Ok(text) => text.trim().to_string(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "1".to_string(),
        Err(e) => return Err(io(e)),
    };
    if found == FORMAT {
        Ok(())
    } else {
        Err(IndexError::OtherFormat { path, found })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A new index is marked with this format and opens again; one without the mark (as
    /// every index before format 2) or with another is refused with its path and both
    /// formats named, and left as it was.
    #[test]
    fn an_index_of_another_format_is_refused_and_left_alone() {
        let dir = tempfile::TempDir::new().unwrap();
        let index = dir.path().join("index");
        drop(Timeline::open(&index).unwrap());
        assert_eq!(
            std::fs::read_to_string(index.join(FORMAT_FILE)).unwrap(),
            "2\n"
        );
        drop(Timeline::open(&index).unwrap());

        let before = std::fs::read(index.join("meta.json")).unwrap();
        for (mark, found) in [(None, "1"), (Some("3\n"), "3")] {
            match mark {
                None => std::fs::remove_file(index.join(FORMAT_FILE)).unwrap(),
                Some(text) => std::fs::write(index.join(FORMAT_FILE), text).unwrap(),
            }
            let err = Timeline::open(&index)
                .err()
                .expect("an index of another format opened");
            assert_eq!(
                err.to_string(),
                format!(
                    "index at {} is in format \"{found}\", written by another version of \
                     logagg, and this one reads format \"2\"; move it aside to start a new one",
                    index.display()
                )
            );
            assert_eq!(std::fs::read(index.join("meta.json")).unwrap(), before);
            assert_eq!(
                std::fs::read_to_string(index.join(FORMAT_FILE))
                    .ok()
                    .as_deref(),
                mark
            );
        }
    }
}
