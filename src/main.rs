//! The `logagg` binary: parse arguments, run, turn the result into an exit code. A closed
//! stdout (`logagg search x | head -3`) is success, not an error.

use std::process::ExitCode;

use clap::Parser;

// glibc's allocator keeps the memory of freed index buffers mapped, which made the
// daemon's resident size more than twice its live heap on a backlog.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
