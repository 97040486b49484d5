//! The `logagg` binary: parse arguments, run, turn the result into an exit code. A closed
//! stdout (`logagg search x | head -3`) is success, not an error.

use std::process::ExitCode;

use clap::Parser;

// glibc's allocator keeps the memory of freed index buffers mapped, which made the
// daemon's resident size more than twice its live heap on a backlog.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

extern "C" {
    /// mimalloc's own (libmimalloc-sys builds it; its Rust bindings do not name the
    /// option used here).
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
}

/// `mi_option_arena_eager_commit` in mimalloc v3's `mi_option_e` (include/mimalloc.h of
/// the libmimalloc-sys version in Cargo.lock).
const MI_OPTION_ARENA_EAGER_COMMIT: std::ffi::c_int = 4;

/// By default mimalloc commits its whole first arena chunk up front on Linux and then
/// never gives back what was freed in it: an idle daemon kept 25 MiB it did not use
/// (40 MiB resident with 200 files; 19 MiB without). This must happen before the first
/// allocation, which Rust's runtime makes before `main`, hence a constructor
/// (`.init_array` runs before the runtime starts).
extern "C" fn tune_allocator() {
    // SAFETY: sets one mimalloc option; called before any allocation, on one thread.
    unsafe { mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 0) }
}

#[used]
#[link_section = ".init_array"]
static TUNE_ALLOCATOR: extern "C" fn() = tune_allocator;

fn main() -> ExitCode {
    let cli = logagg::cli::Cli::parse();
    match logagg::cli::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("logagg: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
