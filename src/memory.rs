//! The daemon's allocator (mimalloc, set in `main`): giving back memory it holds freed.

/// Returns the memory freed so far to the system at once, instead of after mimalloc's
/// purge delay (a second). Where mimalloc is not the global allocator (the library's
/// tests) it finds nothing to return.
pub fn release_freed() {
    // SAFETY: `mi_collect` takes no pointers and may be called from any thread.
    unsafe { libmimalloc_sys::mi_collect(true) }
}
