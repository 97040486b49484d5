//! Cuts a byte stream into lines. A line is emitted only when its newline arrives; the
//! unfinished tail is held (and its start offset is the safe resume point). A line longer
//! than the limit is cut into pieces so memory stays bounded whatever the input.

/// One line or piece, as bytes borrowed from the splitter or the input chunk.
pub struct Piece<'a> {
    pub bytes: &'a [u8],
    /// Offset in the file where this piece starts.
    pub offset: u64,
    /// True for every piece of a line longer than the limit, including its last one.
    pub split: bool,
    /// True when this piece is not the start of its line (a later piece of a long line).
    pub continuation: bool,
}

pub struct LineSplitter {
    max_line: usize,
    /// Bytes of the current unfinished line (at most `max_line`).
    pending: Vec<u8>,
    /// File offset where `pending` starts: everything before it has been emitted.
    pending_start: u64,
    /// The current line has already had a piece cut off.
    in_split: bool,
}

impl LineSplitter {
    pub fn new(max_line: usize, start: u64) -> LineSplitter {
        LineSplitter {
            max_line: max_line.max(4),
            pending: Vec::new(),
            pending_start: start,
            in_split: false,
        }
    }

    /// The offset of the first byte not yet emitted: where a restart must resume.
    pub fn resume_offset(&self) -> u64 {
        self.pending_start
    }

    /// The longest line emitted whole (newline not counted).
    pub fn max_line(&self) -> usize {
        self.max_line
    }

    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// The first `len` bytes of the file were cut away (collapse rotation): every offset
    /// moves back by that much. `len` never exceeds what was already emitted.
    pub fn shift_back(&mut self, len: u64) {
        debug_assert!(len <= self.pending_start);
        self.pending_start -= len.min(self.pending_start);
    }

    /// Forget everything and start again at `start` (after a truncation).
    pub fn reset(&mut self, start: u64) {
        self.pending.clear();
        self.pending_start = start;
        self.in_split = false;
    }

    /// Feeds the next chunk of the file (which must follow the previous one directly) and
    /// calls `emit` for every finished line or over-long piece, newline and CR stripped.
    pub fn push(&mut self, mut chunk: &[u8], mut emit: impl FnMut(Piece<'_>)) {
        while !chunk.is_empty() {
            match memchr::memchr(b'\n', chunk) {
                Some(nl) if self.pending.len() + nl <= self.max_line => {
                    let held = self.pending.len() as u64;
                    let split = self.in_split;
                    if self.pending.is_empty() {
                        emit(Piece {
                            bytes: trim_cr(&chunk[..nl]),
                            offset: self.pending_start,
                            split,
                            continuation: split,
                        });
                    } else {
                        self.pending.extend_from_slice(&chunk[..nl]);
                        emit(Piece {
                            bytes: trim_cr(&self.pending),
                            offset: self.pending_start,
                            split,
                            continuation: split,
                        });
                        self.pending.clear();
                    }
                    self.pending_start += held + nl as u64 + 1;
                    self.in_split = false;
                    chunk = &chunk[nl + 1..];
                }
                _ => {
                    // No newline within reach of the limit: hold what fits, cut a piece
                    // when the limit is reached.
                    let room = self.max_line - self.pending.len();
                    let take = chunk.len().min(room);
                    self.pending.extend_from_slice(&chunk[..take]);
                    chunk = &chunk[take..];
                    if self.pending.len() >= self.max_line {
                        self.cut_piece(&mut emit);
                    }
                }
            }
        }
    }

    /// Emits up to `max_line` bytes of the pending line as one piece, cut on a UTF-8
    /// character boundary so no character is broken in two.
    fn cut_piece(&mut self, emit: &mut impl FnMut(Piece<'_>)) {
        let mut cut = self.max_line.min(self.pending.len());
        let floor = cut.saturating_sub(3);
        while cut > floor && cut < self.pending.len() && is_continuation(self.pending[cut]) {
            cut -= 1;
        }
        if cut == floor && cut < self.pending.len() && is_continuation(self.pending[cut]) {
            cut = self.max_line.min(self.pending.len());
        }
        emit(Piece {
            bytes: &self.pending[..cut],
            offset: self.pending_start,
            split: true,
            continuation: self.in_split,
        });
        self.pending.drain(..cut);
        self.pending_start += cut as u64;
        self.in_split = true;
    }

    /// Emits the unfinished last line (the file was renamed away or deleted and no newline
    /// will come). Returns false when there was nothing held.
    pub fn flush(&mut self, mut emit: impl FnMut(Piece<'_>)) -> bool {
        if self.pending.is_empty() {
            return false;
        }
        emit(Piece {
            bytes: trim_cr(&self.pending),
            offset: self.pending_start,
            split: self.in_split,
            continuation: self.in_split,
        });
        self.pending_start += self.pending.len() as u64;
        self.pending.clear();
        self.in_split = false;
        true
    }
}

fn is_continuation(b: u8) -> bool {
    b & 0b1100_0000 == 0b1000_0000
}

pub(super) fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn run(max: usize, chunks: &[&[u8]]) -> (Vec<(Vec<u8>, u64, bool)>, LineSplitter) {
        let mut s = LineSplitter::new(max, 0);
        let mut out = Vec::new();
        for c in chunks {
            s.push(c, |p| out.push((p.bytes.to_vec(), p.offset, p.split)));
        }
        (out, s)
    }

    #[test]
    fn lines_wait_for_their_newline() {
        let (out, s) = run(100, &[b"ab", b"c\r\nde", b"f\n", b"gh"]);
        assert_eq!(
            out,
            vec![(b"abc".to_vec(), 0, false), (b"def".to_vec(), 5, false)]
        );
        assert_eq!(s.resume_offset(), 9);
        assert!(s.has_pending());
    }

    #[test]
    fn long_lines_are_cut_on_char_boundaries() {
        // 'é' is two bytes; a limit of 5 would cut one in half at byte 5.
        let line = "aaaéébb\n".as_bytes();
        let (out, _) = run(5, &[line]);
        let pieces: Vec<String> = out
            .iter()
            .map(|(b, _, _)| String::from_utf8(b.clone()).unwrap())
            .collect();
        assert_eq!(pieces.concat(), "aaaéébb");
        assert!(out.iter().all(|(_, _, split)| *split));
        assert!(out.iter().all(|(b, _, _)| b.len() <= 5));
    }

    proptest! {
        /// Whatever the chunking and limit, the emitted pieces plus the held tail give back
        /// the input exactly (with the newlines that were stripped), and offsets are exact.
        #[test]
        fn splitting_loses_and_doubles_nothing(
            data in proptest::collection::vec(prop_oneof![Just(b'\n'), Just(b'a'), Just(0xC3u8), Just(0xA9u8)], 0..400),
            cuts in proptest::collection::vec(0usize..400, 0..10),
            max in 4usize..40,
        ) {
            let mut bounds: Vec<usize> = cuts.into_iter().map(|c| c.min(data.len())).collect();
            bounds.push(0);
            bounds.push(data.len());
            bounds.sort();
            let mut s = LineSplitter::new(max, 0);
            let mut pieces: Vec<(u64, Vec<u8>)> = Vec::new();
            for w in bounds.windows(2) {
                s.push(&data[w[0]..w[1]], |p| pieces.push((p.offset, p.bytes.to_vec())));
            }
            s.flush(|p| pieces.push((p.offset, p.bytes.to_vec())));
            // Each piece is exactly the input at its offset, pieces follow each other
            // with at most the one newline between them, and they cover the input.
            let mut pos = 0u64;
            for (offset, bytes) in &pieces {
                prop_assert!(bytes.len() <= max);
                if *offset != pos {
                    prop_assert_eq!(*offset, pos + 1);
                    prop_assert_eq!(data[pos as usize], b'\n');
                }
                let start = *offset as usize;
                prop_assert_eq!(&data[start..start + bytes.len()], &bytes[..]);
                pos = *offset + bytes.len() as u64;
            }
            let end = if (pos as usize) < data.len() { pos + 1 } else { pos };
            prop_assert_eq!(end as usize, data.len());
        }
    }
}
