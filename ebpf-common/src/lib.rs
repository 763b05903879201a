//! What ringtail's eBPF programs and user space agree on: map names, sizes, event layouts.
//!
//! Every struct is `#[repr(C)]`, `Copy`, with explicit padding and a size assertion, so both
//! sides read the same bytes; map names and limits are constants here, never repeated string
//! literals. Kernel and user space build this crate for different targets (`bpfel-unknown-none`
//! and the host), so it is `no_std` and has no dependencies.
#![no_std]

/// Name of the ring buffer map that carries events to user space.
pub const EVENTS_MAP: &str = "EVENTS";
/// Size of the ring buffer in bytes (a power of two, a multiple of the page size).
pub const EVENTS_BYTES: u32 = 1 << 20;
/// Name of the per-CPU counter array.
pub const COUNTERS_MAP: &str = "COUNTERS";
/// Index in [`COUNTERS_MAP`]: ring-buffer reservations that failed (events lost).
pub const COUNTER_RESERVE_FAILED: u32 = 0;
/// Index in [`COUNTERS_MAP`]: cgroup directories created.
pub const COUNTER_CGROUP_MKDIR: u32 = 1;
/// Index in [`COUNTERS_MAP`]: cgroup directories removed.
pub const COUNTER_CGROUP_RMDIR: u32 = 2;
/// Number of counters.
pub const COUNTERS: u32 = 3;

/// Global: byte offset of `root` (the hierarchy id) in the cgroup tracepoint record.
pub const GLOBAL_CGROUP_ROOT_OFFSET: &str = "CGROUP_ROOT_OFFSET";
/// Global: byte offset of `level` in the `cgroup:cgroup_mkdir`/`rmdir` tracepoint record.
pub const GLOBAL_CGROUP_LEVEL_OFFSET: &str = "CGROUP_LEVEL_OFFSET";
/// Global: byte offset of `id` in the cgroup tracepoint record.
pub const GLOBAL_CGROUP_ID_OFFSET: &str = "CGROUP_ID_OFFSET";
/// Global: byte offset of the `path` `__data_loc` word in the cgroup tracepoint record.
pub const GLOBAL_CGROUP_PATH_OFFSET: &str = "CGROUP_PATH_OFFSET";

/// Bytes of a cgroup path carried in an event (longer paths are cut; see `path_len`).
pub const CGROUP_PATH_BYTES: usize = 256;

/// [`CgroupEvent::kind`]: a cgroup directory was created.
pub const KIND_CGROUP_MKDIR: u32 = 1;
/// [`CgroupEvent::kind`]: a cgroup directory was removed.
pub const KIND_CGROUP_RMDIR: u32 = 2;

/// A cgroup was created or removed (container started or stopped).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct CgroupEvent {
    /// [`KIND_CGROUP_MKDIR`] or [`KIND_CGROUP_RMDIR`].
    pub kind: u32,
    /// Depth in the hierarchy (the root is 0).
    pub level: u32,
    /// Cgroup id: the inode number of the cgroup2 directory.
    pub id: u64,
    /// Bytes of `path` filled, without the terminating NUL.
    pub path_len: u32,
    /// Hierarchy id (`root` in the tracepoint): tells cgroup2 from the v1 hierarchies of a
    /// hybrid system, where one container has a directory in each.
    pub root: u32,
    /// The cgroup path relative to the hierarchy root (e.g. `/kubepods.slice/...`), NUL-ended
    /// when shorter than the buffer.
    pub path: [u8; CGROUP_PATH_BYTES],
}

const _: () = assert!(core::mem::size_of::<CgroupEvent>() == 24 + CGROUP_PATH_BYTES);
