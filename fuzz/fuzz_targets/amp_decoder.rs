//! Feeds arbitrary bytes to the amp decoder in arbitrary chunks: it must never panic,
//! and whatever it accepts must survive being encoded and decoded again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use logagg::pm2::amp::{encode, Decoder};

fuzz_target!(|data: &[u8]| {
    // The first byte picks a chunk size, so the same input is also read in pieces.
    let Some((&chunk, bytes)) = data.split_first() else {
        return;
    };
    let mut decoder = Decoder::with_max_frame_len(1 << 20);
    for part in bytes.chunks(usize::from(chunk).max(1)) {
        decoder.push(part);
        loop {
            match decoder.next_frame() {
                Ok(Some(args)) => {
                    let mut again = Decoder::new();
                    again.push(&encode(&args));
                    let frame = again.next_frame().expect("re-encoded frame decodes");
                    assert_eq!(frame.map(|f| f.len()), Some(args.len()));
                    assert_eq!(again.buffered(), 0);
                }
                Ok(None) => break,
                Err(e) if e.is_fatal() => return,
                Err(_) => {}
            }
        }
    }
});
