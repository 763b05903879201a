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
///
/// The kernel maps all of it into user space twice (so that a record may wrap), and every
/// page counts in the collector's resident set from the start: 1 MiB cost 2 MiB of RSS, of
/// the 28–33 MiB the collector held at 10 MB/s. Events are few — a file's write sends one
/// only when the file was idle, so a busy node sends one per file per read round — and user
/// space drains them as they come; 256 KiB holds about 850 container starts or file opens
/// (288–312 bytes each, path and ring header included) not yet taken by user space. Past that,
/// reservations fail, are counted (`ringtail_ebpf_ringbuf_drops_total`) and trigger a rescan
/// that finds what was lost.
pub const EVENTS_BYTES: u32 = 256 << 10;
/// Name of the per-CPU counter array.
pub const COUNTERS_MAP: &str = "COUNTERS";
/// Index in [`COUNTERS_MAP`]: ring-buffer reservations that failed (events lost).
pub const COUNTER_RESERVE_FAILED: u32 = 0;
/// Index in [`COUNTERS_MAP`]: cgroup directories created.
pub const COUNTER_CGROUP_MKDIR: u32 = 1;
/// Index in [`COUNTERS_MAP`]: cgroup directories removed.
pub const COUNTER_CGROUP_RMDIR: u32 = 2;
/// Number of counters.
pub const COUNTERS: u32 = 8;

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

/// Name of the hash map of watched directories ([`DirKey`] → 1), filled by user space.
pub const WATCHED_DIRS_MAP: &str = "WATCHED_DIRS";
/// Most directories the kernel side can watch.
pub const WATCHED_DIRS_MAX: u32 = 1 << 17;
/// Index in [`COUNTERS_MAP`]: files opened for writing in a watched directory.
pub const COUNTER_FILE_OPENED: u32 = 3;

/// [`FileOpenedEvent::kind`]: a file in a watched directory was opened for writing.
pub const KIND_FILE_OPENED: u32 = 3;

/// Bytes of a file name carried in a [`FileOpenedEvent`].
pub const FILE_NAME_BYTES: usize = 256;

/// A directory, as the kernel names it.
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct DirKey {
    /// The kernel's `dev_t` of the file system (`major << 20 | minor`, not glibc's encoding).
    pub dev: u32,
    /// Explicit padding.
    pub _pad: u32,
    /// Inode number of the directory.
    pub ino: u64,
}

const _: () = assert!(core::mem::size_of::<DirKey>() == 16);

/// A file in a watched directory was opened for writing (`open`, `openat`, `openat2`, `creat`).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct FileOpenedEvent {
    /// [`KIND_FILE_OPENED`].
    pub kind: u32,
    /// Process (thread group) that opened it.
    pub pid: u32,
    /// The descriptor it got.
    pub fd: u32,
    /// The kernel's `dev_t` of the file system.
    pub dev: u32,
    /// Inode of the file.
    pub ino: u64,
    /// Inode of the directory it was opened in.
    pub dir_ino: u64,
    /// When it was opened (`CLOCK_MONOTONIC`, ns): tells a late report about a file already
    /// read from a new file on a recycled inode.
    pub time_ns: u64,
    /// Bytes of `name` filled.
    pub name_len: u32,
    /// Explicit padding.
    pub _pad: u32,
    /// The file's name in its directory (NUL-ended when shorter).
    pub name: [u8; FILE_NAME_BYTES],
}

const _: () = assert!(core::mem::size_of::<FileOpenedEvent>() == 48 + FILE_NAME_BYTES);

/// Globals holding kernel struct offsets (from BTF) and the syscall-exit record's `ret` offset.
pub mod offsets {
    /// `task_struct.files`.
    pub const TASK_FILES: &str = "OFF_TASK_FILES";
    /// `files_struct.fdt`.
    pub const FILES_FDT: &str = "OFF_FILES_FDT";
    /// `fdtable.fd`.
    pub const FDT_FD: &str = "OFF_FDT_FD";
    /// `fdtable.max_fds`.
    pub const FDT_MAX_FDS: &str = "OFF_FDT_MAX_FDS";
    /// `file.f_mode`.
    pub const FILE_MODE: &str = "OFF_FILE_MODE";
    /// `file.f_inode`.
    pub const FILE_INODE: &str = "OFF_FILE_INODE";
    /// `task_struct.tgid`.
    pub const TASK_TGID: &str = "OFF_TASK_TGID";
    /// `file.f_path.dentry`.
    pub const FILE_DENTRY: &str = "OFF_FILE_DENTRY";
    /// `dentry.d_parent`.
    pub const DENTRY_PARENT: &str = "OFF_DENTRY_PARENT";
    /// `dentry.d_inode`.
    pub const DENTRY_INODE: &str = "OFF_DENTRY_INODE";
    /// `dentry.d_name.name`.
    pub const DENTRY_NAME: &str = "OFF_DENTRY_NAME";
    /// `inode.i_ino`.
    pub const INODE_INO: &str = "OFF_INODE_INO";
    /// `inode.i_sb`.
    pub const INODE_SB: &str = "OFF_INODE_SB";
    /// `super_block.s_dev`.
    pub const SB_DEV: &str = "OFF_SB_DEV";
    /// `ret` in a `syscalls:sys_exit_*` tracepoint record.
    pub const SYS_EXIT_RET: &str = "OFF_SYS_EXIT_RET";
    /// `pt_regs.di` (first syscall argument on x86_64).
    pub const REGS_ARG0: &str = "OFF_REGS_ARG0";
    /// `pt_regs.si` (second syscall argument on x86_64).
    pub const REGS_ARG1: &str = "OFF_REGS_ARG1";
    /// `pt_regs.dx` (third syscall argument on x86_64).
    pub const REGS_ARG2: &str = "OFF_REGS_ARG2";
}

/// Index in [`COUNTERS_MAP`]: writes to watched files seen by the write hook.
pub const COUNTER_WATCHED_WRITES: u32 = 4;
/// Index in [`COUNTERS_MAP`]: idle→dirty transitions reported.
pub const COUNTER_FILE_DIRTY: u32 = 5;

/// Index in [`COUNTERS_MAP`]: a process that holds a watched file for writing could not be
/// added to [`PROCS_MAP`] (its id is beyond `pid_max` as read at load time): its writes are
/// not seen by the write hook.
pub const COUNTER_PROCS_FULL: u32 = 6;
/// Index in [`COUNTERS_MAP`]: vectored writes to watched files with more buffers than the hook
/// adds up ([`IOV_COUNTED`]); their bytes are counted in part.
pub const COUNTER_IOV_PARTIAL: u32 = 7;
/// Buffers of a `writev`/`pwritev`/`pwritev2` whose lengths the write hook adds up.
pub const IOV_COUNTED: u32 = 64;

/// Name of the bitmap of processes (one bit per thread-group id, 64 per `u64` word) that hold,
/// or held, a watched file open for writing: set by the open hook, the start-up iterator and
/// `fork`, cleared when the process exits. The write hook looks at a write's descriptor only
/// for these.
pub const PROCS_MAP: &str = "PROCS";
/// Words of [`PROCS_MAP`] in the object; user space sets the real size from the kernel's
/// `pid_max` (this covers the 64-bit default, 4,194,304).
pub const PROCS_WORDS: u32 = 1 << 16;
/// Name of the map of watched files' dirty flags ([`FileKey`] → `u64`): 1 once a write was
/// reported and user space has not read to the end since; user space sets it back to 0 (then
/// reads once more) when it has caught up. A file is watched by the write hook while it has
/// an entry here.
pub const FILES_MAP: &str = "FILES";
/// Name of the map of bytes written to watched files ([`FileKey`] → `u64`) through `write`,
/// `pwrite64` and the vectored writes. Only the kernel writes it.
pub const BYTES_MAP: &str = "BYTES";
/// Most files tracked by the write hook.
pub const FILES_MAX: u32 = 1 << 16;
/// Name of the `iter/task_file` program that reports files open for writing in watched
/// directories when ringtail starts (each record a [`FileOpenedEvent`]).
pub const ITER_PROGRAM: &str = "task_file";

/// [`FileDirtyEvent::kind`]: a watched file went from idle to dirty.
pub const KIND_FILE_DIRTY: u32 = 4;

/// A file, as the kernel names it.
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct FileKey {
    /// The kernel's `dev_t`.
    pub dev: u32,
    /// Explicit padding.
    pub _pad: u32,
    /// Inode number.
    pub ino: u64,
}

const _: () = assert!(core::mem::size_of::<FileKey>() == 16);

/// A watched file has new data and was idle.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct FileDirtyEvent {
    /// [`KIND_FILE_DIRTY`].
    pub kind: u32,
    /// The kernel's `dev_t`.
    pub dev: u32,
    /// Inode number.
    pub ino: u64,
}

const _: () = assert!(core::mem::size_of::<FileDirtyEvent>() == 16);
