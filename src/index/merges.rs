//! Which segments are merged, and how big a merge may get: tantivy's log-size levels,
//! with every merge's input capped in bytes so the daemon's memory stays bounded.
//!
//! A merge reads its input segments through their memory maps, and every page it reads
//! counts in the daemon's resident size until the inputs are dropped. tantivy's
//! `LogMergePolicy` merges a whole level at once: after a 1 GiB backlog that was one
//! merge of 140 segments, and the daemon's resident size rose from 180 MiB to 700 MiB
//! while it ran. Here a level is merged in pieces of at most [`MERGE_INPUT_BYTES`], one
//! merge at a time (the writer has one merge thread), and a segment that has reached
//! half that size is final: a long-lived index is a few dozen such segments, which the
//! search's per-block ranking reads as cheaply as a few large ones.

use std::collections::HashMap;
use std::path::PathBuf;

use tantivy::index::{SegmentId, SegmentMeta};
use tantivy::merge_policy::{LogMergePolicy, MergeCandidate, MergePolicy};

/// The most bytes of segment files one merge reads.
pub const MERGE_INPUT_BYTES: u64 = 64 << 20;
/// Fewest segments worth a merge: merging two would rewrite data for little gain.
const MIN_MERGE: usize = 4;

#[derive(Debug)]
pub struct BoundedMerges {
    /// Where the segment files are, to weigh them.
    dir: PathBuf,
    levels: LogMergePolicy,
}

impl BoundedMerges {
    pub fn new(dir: PathBuf) -> BoundedMerges {
        let mut levels = LogMergePolicy::default();
        levels.set_min_num_segments(MIN_MERGE);
        BoundedMerges { dir, levels }
    }

    /// Bytes of a segment's files on disk (files that cannot be read count as nothing:
    /// the merge would fail on them anyway, and tantivy retries later).
    fn bytes(&self, seg: &SegmentMeta) -> u64 {
        seg.list_files()
            .iter()
            .filter_map(|f| std::fs::metadata(self.dir.join(f)).ok())
            .map(|m| m.len())
            .sum()
    }
}

impl MergePolicy for BoundedMerges {
    fn compute_merge_candidates(&self, segments: &[SegmentMeta]) -> Vec<MergeCandidate> {
        // Each segment's files are weighed once per call (a few stats per segment,
        // once per commit).
        let sizes: HashMap<SegmentId, u64> =
            segments.iter().map(|s| (s.id(), self.bytes(s))).collect();
        let metas: Vec<SegmentMeta> = segments
            .iter()
            .filter(|s| sizes[&s.id()] <= MERGE_INPUT_BYTES / 2)
            .cloned()
            .collect();
        let size_of = |id| sizes.get(&id).copied().unwrap_or(0);
        let mut out = Vec::new();
        for MergeCandidate(level) in self.levels.compute_merge_candidates(&metas) {
            out.extend(
                split(level, size_of, MERGE_INPUT_BYTES, MIN_MERGE)
                    .into_iter()
                    .map(MergeCandidate),
            );
        }
        out
    }
}

/// Cuts one level's segments into groups of at most `cap` bytes, each of at least `min`
/// segments (a remainder too small to be worth a merge waits for more segments).
fn split<T: Copy>(level: Vec<T>, size_of: impl Fn(T) -> u64, cap: u64, min: usize) -> Vec<Vec<T>> {
    let mut out = Vec::new();
    let mut group = Vec::new();
    let mut bytes = 0;
    for id in level {
        let size = size_of(id);
        if !group.is_empty() && bytes + size > cap {
            if group.len() >= min {
                out.push(std::mem::take(&mut group));
            }
            group.clear();
            bytes = 0;
        }
        group.push(id);
        bytes += size;
    }
    if group.len() >= min {
        out.push(group);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::split;

    #[test]
    fn a_level_is_cut_into_merges_under_the_cap() {
        // Ten segments of 10 bytes under a 35-byte cap: three merges of three; the
        // last segment alone is not worth one.
        let level: Vec<u32> = (0..10).collect();
        assert_eq!(
            split(level, |_| 10, 35, 3),
            [vec![0, 1, 2], vec![3, 4, 5], vec![6, 7, 8]]
        );
    }

    #[test]
    fn groups_too_small_to_merge_are_left_alone() {
        // 30-byte segments under a 50-byte cap never make a group of two.
        assert!(split(vec![1, 2, 3], |_| 30, 50, 2).is_empty());
        // A whole level under the cap is one merge.
        assert_eq!(split(vec![1, 2, 3, 4], |_| 5, 100, 4), [vec![1, 2, 3, 4]]);
    }
}
