//! The second core of a search: work handed to threads that are already running and
//! parked, so handing it over costs a wake-up, not the start of a thread.
//!
//! Why not `std::thread::scope`: a new thread is queued behind whatever the other core is
//! running until the scheduler's next tick (a new task does not preempt; a woken one
//! does). On a two-core VM with the other core busy a new thread started 3.95 ms after
//! its spawn (p50) and a parked one woken through a channel 3 µs after; on the quiet
//! machine 41 µs and 9 µs. In the daemon the same search with a thread started per
//! share took 2.2-2.4 ms for one service and hour, 1.7-1.8 ms with the pool.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

/// The machine's cores, asked once (each asking is a system call).
fn count() -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Whether this machine has a second core for a search.
pub(crate) fn two() -> bool {
    count() >= 2
}

/// The searches' helper threads: one per core, parked when no search runs (no CPU when
/// idle). Made on the first search, by a thread at the daemon's own priority, which they
/// inherit. `None` when the threads cannot be started: the work then runs on the caller's
/// thread.
fn pool() -> Option<&'static rayon::ThreadPool> {
    static POOL: OnceLock<Option<rayon::ThreadPool>> = OnceLock::new();
    POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(count())
            .thread_name(|i| format!("logagg-search-{i}"))
            .build()
            .map_err(|e| tracing::warn!(error = %e, "searches run on one thread: cannot start their helpers"))
            .ok()
    })
    .as_ref()
}

/// Helper jobs handed to the pool and not yet done, queued or running.
static IN_POOL: AtomicUsize = AtomicUsize::new(0);

/// Runs `helper` on a helper thread while `mine` runs on this one, and returns both
/// results once both are done. `helper`'s panic comes back as `Err`. Both must be able to
/// finish without the other: the helper may start late, after `mine` has done all the
/// work (a queue both take from is the way to share it).
///
/// The helper is a pool thread when one is free; with every pool thread taken by other
/// searches, a thread started for it. Queued behind them instead, a search that had done
/// all its work would wait for another search's helper to finish before its own could
/// start, only to find nothing left.
pub(crate) fn beside<A: Send, B>(
    helper: impl FnOnce() -> A + Send,
    mine: impl FnOnce() -> B,
) -> (B, std::thread::Result<A>) {
    let Some(pool) = pool() else {
        let ours = mine();
        return (ours, std::panic::catch_unwind(AssertUnwindSafe(helper)));
    };
    if IN_POOL.fetch_add(1, Ordering::AcqRel) >= pool.current_num_threads() {
        IN_POOL.fetch_sub(1, Ordering::AcqRel);
        return std::thread::scope(|scope| {
            let theirs = scope.spawn(helper);
            let ours = mine();
            (ours, theirs.join())
        });
    }
    let mut theirs = None;
    let slot = &mut theirs;
    let ours = pool.in_place_scope(|scope| {
        scope.spawn(move |_| {
            *slot = Some(std::panic::catch_unwind(AssertUnwindSafe(helper)));
            IN_POOL.fetch_sub(1, Ordering::AcqRel);
        });
        mine()
    });
    // The scope returns only once the spawned job has run.
    let theirs = theirs.unwrap_or_else(|| Err(Box::new("the helper never ran")));
    (ours, theirs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_run_and_share_a_queue() {
        let next = AtomicUsize::new(0);
        let take = || {
            let mut mine = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= 1000 {
                    return mine;
                }
                mine.push(i);
            }
        };
        let (a, b) = beside(take, take);
        let mut all = [a, b.unwrap()].concat();
        all.sort_unstable();
        assert_eq!(all, (0..1000).collect::<Vec<_>>());
    }

    #[test]
    fn a_helpers_panic_is_an_error() {
        let (ours, theirs) = beside(|| -> u8 { panic!("boom") }, || 7);
        assert_eq!(ours, 7);
        let e = theirs.unwrap_err();
        assert_eq!(e.downcast_ref::<&str>(), Some(&"boom"));
    }

    #[test]
    fn the_helper_runs_on_another_thread() {
        let here = std::thread::current().id();
        let (_, there) = beside(|| std::thread::current().id(), || ());
        assert_ne!(there.unwrap(), here);
    }

    #[test]
    fn with_every_pool_thread_taken_the_helper_gets_a_thread_of_its_own() {
        let n = pool().unwrap().current_num_threads();
        // As if other searches' helpers held every pool thread.
        IN_POOL.fetch_add(n, Ordering::AcqRel);
        let (ours, there) = beside(|| std::thread::current().name().map(String::from), || 7);
        IN_POOL.fetch_sub(n, Ordering::AcqRel);
        assert_eq!(ours, 7);
        let there = there.unwrap();
        assert!(
            !there.as_deref().unwrap_or("").starts_with("logagg-search-"),
            "ran on {there:?}"
        );
    }
}
