//! Compression helper of bench/rotation.sh: compresses one file with logagg's own
//! archive writer, `logagg::rotate::archive::write_archive`, exactly as the daemon does
//! when it compresses a rotated file (gzip through flate2/zlib-rs into a temporary file,
//! fsync, rename, fsync of the directory).
//!
//!     rot-compress SRC DEST [LEVEL]
//!
//! DEST is replaced if it exists. Prints one JSON line: bytes in and out, seconds.
//! bench/rotation.sh builds it as its own little crate in bench/work/rot-compress, with
//! logagg as a path dependency and the repository's Cargo.lock.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use logagg::rotate::archive::write_archive;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: rot-compress SRC DEST [LEVEL]");
        return ExitCode::from(2);
    }
    let src = PathBuf::from(&args[1]);
    let dest = PathBuf::from(&args[2]);
    let level: u32 = match args.get(3).map(|s| s.parse()) {
        None => 6,
        Some(Ok(l)) => l,
        Some(Err(e)) => {
            eprintln!("bad level: {e}");
            return ExitCode::from(2);
        }
    };
    let _ = std::fs::remove_file(&dest);
    let len = match std::fs::metadata(&src) {
        Ok(m) => m.len(),
        Err(e) => {
            eprintln!("{}: {e}", src.display());
            return ExitCode::FAILURE;
        }
    };
    let started = Instant::now();
    match write_archive(&src, 0..len, &dest, Some(level)) {
        Ok(stats) => {
            let secs = started.elapsed().as_secs_f64();
            println!(
                "{{\"bytes_in\":{},\"bytes_out\":{},\"seconds\":{secs:.6},\"level\":{level}}}",
                stats.bytes_in, stats.bytes_out
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("write_archive: {e}");
            ExitCode::FAILURE
        }
    }
}
