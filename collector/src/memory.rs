//! The process's heap and the OS: mimalloc's settings for a collector that runs beside
//! everything else on a node, and giving freed memory back — after start-up, and when a thread
//! goes idle after a burst (mimalloc returns a thread's freed pages only when that thread
//! allocates again, and an idle thread does not).
//!
//! Owns every call into mimalloc's C interface.

/// mimalloc's option numbers (`mi_option_t` in the mimalloc v3 `mimalloc.h` that
/// libmimalloc-sys builds; the crate names only some). Checked against its option count.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
const MI_OPTION_ALLOW_THP: libmimalloc_sys::mi_option_t = 43;
const _: () = assert!(
    libmimalloc_sys::_mi_option_last == 47,
    "mimalloc's options moved"
);
/// mimalloc v3's default purge delay (ms): freed memory goes back to the OS this long after.
const PURGE_DELAY_MS: std::ffi::c_long = 1000;

/// A resident set that follows what the heap holds, on nodes where ringtail runs beside
/// everything else: no transparent huge pages (mimalloc asks for them on its arenas, and a
/// touched byte then makes 2 MiB resident: 20 MiB of an idle collector's 40 measured here),
/// and freed memory given back at once while the pipeline starts (see
/// [`release_start_up_memory`]).
pub fn keep_the_heap_small() {
    // SAFETY: prctl(PR_SET_THP_DISABLE) takes integers only and changes how the kernel backs
    // this process's future page faults; mi_option_set stores an integer option.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
        libmimalloc_sys::mi_option_set(MI_OPTION_ALLOW_THP, 0);
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0);
    }
}

/// Gives back to the OS what starting a pipeline freed: parsing the kernel's BTF for the eBPF
/// programs allocates tens of MiB, which mimalloc would otherwise keep resident (counted
/// against a DaemonSet's memory limit for the life of the process). Purging was immediate
/// until now, so the peak stays low too; from here on it is delayed again as by default, so
/// a busy pipeline does not give memory back only to ask for it again.
pub fn release_start_up_memory() {
    // SAFETY: mi_collect only walks and purges this thread's mimalloc heap (and abandoned
    // pages); it takes no pointers and mimalloc is the global allocator of this binary.
    // mi_option_set stores an integer option.
    unsafe {
        libmimalloc_sys::mi_collect(true);
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS);
    }
}

/// Gives back to the OS what this thread freed and mimalloc still holds (its pages are
/// purged at once, whatever the purge delay): what a thread calls when it goes idle after a
/// burst, not on a hot path (it walks the thread's heap).
pub fn give_back_freed() {
    // SAFETY: as in `release_start_up_memory`: mi_collect takes no pointers and only walks
    // and purges this thread's heap and abandoned pages.
    unsafe { libmimalloc_sys::mi_collect(true) };
}
