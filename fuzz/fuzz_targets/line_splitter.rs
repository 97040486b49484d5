//! Feeds arbitrary bytes to the line splitter in arbitrary chunks with an arbitrary line
//! limit: it must never panic, never emit a piece longer than the limit or containing a
//! newline, and the pieces, put back at their offsets, must be the input up to the
//! newlines (and one CR before each) that were cut away.
#![no_main]

use libfuzzer_sys::fuzz_target;
use logagg::tail::splitter::LineSplitter;

fuzz_target!(|data: &[u8]| {
    // The first byte picks the limit, the second the chunk size.
    let [max, chunk, bytes @ ..] = data else {
        return;
    };
    let max = usize::from(*max).max(4);
    let mut splitter = LineSplitter::new(max, 0);
    let mut pieces: Vec<(u64, Vec<u8>)> = Vec::new();
    for part in bytes.chunks(usize::from(*chunk).max(1)) {
        splitter.push(part, |p| pieces.push((p.offset, p.bytes.to_vec())));
    }
    splitter.flush(|p| pieces.push((p.offset, p.bytes.to_vec())));
    assert_eq!(splitter.resume_offset(), bytes.len() as u64);
    let mut pos = 0usize;
    for (offset, piece) in &pieces {
        let offset = *offset as usize;
        assert!(piece.len() <= max, "piece longer than the limit");
        assert!(!piece.contains(&b'\n'), "a newline inside a piece");
        let gap = &bytes[pos..offset];
        assert!(matches!(gap, b"" | b"\n" | b"\r\n"), "bytes lost: {gap:?}");
        assert_eq!(&bytes[offset..offset + piece.len()], &piece[..]);
        pos = offset + piece.len();
    }
    assert!(matches!(&bytes[pos..], b"" | b"\n" | b"\r\n" | b"\r"));
});
