//! Scheduling priority of the daemon's background threads (compression), so tailing,
//! indexing and the API get a core first on a busy two-core machine.

/// How much nicer than the daemon a background thread is: at +10 the kernel gives it
/// about a tenth of the CPU time of a thread at the daemon's own level when both want a
/// core, and all of it when nothing else runs, so ingest is not slowed on an idle machine.
const BACKGROUND_NICE: libc::c_int = 10;

/// Makes the calling thread, and every thread it starts from now on (Linux threads
/// inherit their creator's nice value), background work. Best effort: a failure only
/// costs latency, so it is logged and ignored.
pub fn background() {
    // SAFETY: gettid, getpriority and setpriority read and set a scheduling attribute of
    // the calling thread and touch no memory of ours. On Linux the nice value belongs to
    // each thread, and PRIO_PROCESS with a thread id names that thread alone.
    unsafe {
        let tid = libc::gettid() as libc::id_t;
        *libc::__errno_location() = 0;
        let now = libc::getpriority(libc::PRIO_PROCESS, tid);
        if now == -1 && *libc::__errno_location() != 0 {
            tracing::debug!(error = %std::io::Error::last_os_error(), "cannot read a thread's priority");
            return;
        }
        let nicer = (now + BACKGROUND_NICE).min(19);
        if libc::setpriority(libc::PRIO_PROCESS, tid, nicer) != 0 {
            tracing::debug!(error = %std::io::Error::last_os_error(), "cannot lower a thread's priority");
        }
    }
}

/// The calling thread's nice value.
#[cfg(test)]
pub fn current() -> libc::c_int {
    // SAFETY: as above.
    unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn background_is_nicer_for_the_thread_and_its_children_only() {
        let before = current();
        let (own, child) = std::thread::spawn(|| {
            background();
            let own = current();
            let child = std::thread::spawn(current).join().unwrap();
            (own, child)
        })
        .join()
        .unwrap();
        assert_eq!(own, (before + BACKGROUND_NICE).min(19));
        assert_eq!(child, own, "threads started later inherit it");
        assert_eq!(current(), before, "the caller's other threads keep theirs");
    }
}
