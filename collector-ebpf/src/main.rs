//! ringtail's eBPF programs.
//!
//! Container lifecycle: the `cgroup:cgroup_mkdir` and `cgroup:cgroup_rmdir` tracepoints send a
//! [`CgroupEvent`](ringtail_ebpf_common::CgroupEvent) — cgroup id, level and path — through the
//! `EVENTS` ring buffer, and count themselves in the per-CPU `COUNTERS` array, which also
//! counts failed ring-buffer reservations (events user space never saw). The record layout of
//! a tracepoint is read by user space from its `format` file at load time and passed in as
//! read-only globals; nothing about it is hard-coded here.
//!
//! Files: the `syscalls:sys_exit_{open,openat,openat2,creat}` tracepoints look at the file a
//! successful open returned (through the task's fd table, with struct offsets from BTF passed
//! as globals); when it was opened for writing in a directory user space watches (the
//! `WATCHED_DIRS` map), a [`FileOpenedEvent`](ringtail_ebpf_common::FileOpenedEvent) — pid,
//! fd, device, inode, directory inode and name — goes to user space, the process joins
//! `PROCS` and the file `FILES`. Opens elsewhere cost the fd-table walk and one map lookup,
//! and produce nothing. The `iter/task_file` iterator does the same for every file already
//! open when ringtail starts, writing its records to the iterator's output.
//!
//! New data: a raw `sys_enter` tracepoint sees `write`, `pwrite64`, `writev`, `pwritev` and
//! `pwritev2`. Its fast path rejects every other syscall by number, then every process not in
//! `PROCS` (one bit per process id, an array lookup the verifier inlines) — no fd-table
//! walk. For a followed process it resolves the descriptor through the fd table, so descriptors made by `dup`, `dup2`, `fcntl(F_DUPFD)` or
//! inherited through `fork` (the raw `sched_process_fork` tracepoint adds children to
//! `PROCS`; `sched_process_exit` removes them) are followed, and a reused descriptor number is
//! never mistaken for the old file. A write to a file in `FILES` adds its byte count to the
//! file's `BYTES` entry and, only when the file was idle, marks it dirty and sends one
//! [`FileDirtyEvent`](ringtail_ebpf_common::FileDirtyEvent): a hot file wakes user space once
//! until user space has read it to the end and cleared the flag.
//!
//! On the host this crate compiles to an empty binary, so workspace-wide commands work; the
//! real object is built for `bpfel-unknown-none` by `xtask::build_ebpf` (from the collector's
//! build script and from `cargo xtask build-ebpf`).
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]
// `atomic_xadd`: the bpf target has no `fetch_add` (LLVM does not lower it for BPF).
#![cfg_attr(target_arch = "bpf", feature(core_intrinsics))]
#![cfg_attr(target_arch = "bpf", allow(internal_features))]

#[cfg(target_arch = "bpf")]
mod programs {
    use aya_ebpf::helpers::{
        bpf_get_current_pid_tgid, bpf_get_current_task, bpf_ktime_get_ns, bpf_probe_read_kernel,
        bpf_probe_read_kernel_str_bytes, bpf_probe_read_user, bpf_seq_write,
    };
    use aya_ebpf::macros::raw_tracepoint;
    use aya_ebpf::macros::{map, tracepoint};
    use aya_ebpf::maps::HashMap;
    use aya_ebpf::maps::{Array, PerCpuArray, RingBuf};
    use aya_ebpf::programs::{RawTracePointContext, TracePointContext};
    use aya_ebpf::EbpfContext;
    use core::ffi::c_void;
    use ringtail_ebpf_common::{
        CgroupEvent, DirKey, FileDirtyEvent, FileKey, FileOpenedEvent, COUNTERS,
        COUNTER_CGROUP_MKDIR, COUNTER_CGROUP_RMDIR, COUNTER_FILE_DIRTY, COUNTER_FILE_OPENED,
        COUNTER_IOV_PARTIAL, COUNTER_PROCS_FULL, COUNTER_RESERVE_FAILED, COUNTER_WATCHED_WRITES,
        EVENTS_BYTES, FILES_MAX, IOV_COUNTED, KIND_CGROUP_MKDIR, KIND_CGROUP_RMDIR,
        KIND_FILE_DIRTY, KIND_FILE_OPENED, PROCS_WORDS, WATCHED_DIRS_MAX,
    };

    #[no_mangle]
    static OFF_REGS_ARG0: u32 = 0;
    #[no_mangle]
    static OFF_REGS_ARG1: u32 = 0;
    #[no_mangle]
    static OFF_REGS_ARG2: u32 = 0;

    /// x86_64 syscall numbers (arch/x86/entry/syscalls/syscall_64.tbl).
    const SYS_WRITE: u64 = 1;
    const SYS_PWRITE64: u64 = 18;
    const SYS_WRITEV: u64 = 20;
    const SYS_PWRITEV: u64 = 296;
    const SYS_PWRITEV2: u64 = 328;

    /// One bit per process id: set for the processes the write hook follows. An array lookup
    /// is inlined by the verifier, so the fast path makes no helper call for it. User space
    /// sizes it to the kernel's `pid_max` at load time.
    #[map(name = "PROCS")]
    static PROCS: Array<u64> = Array::with_max_entries(PROCS_WORDS, 0);

    /// Whether the write hook follows process `tgid`.
    #[inline(always)]
    fn followed(tgid: u32) -> bool {
        PROCS
            .get(tgid >> 6)
            .is_some_and(|word| *word & (1u64 << (tgid & 63)) != 0)
    }

    #[map(name = "FILES")]
    static FILES: HashMap<FileKey, u64> = HashMap::with_max_entries(FILES_MAX, 0);

    #[map(name = "BYTES")]
    static BYTES: HashMap<FileKey, u64> = HashMap::with_max_entries(FILES_MAX, 0);

    #[raw_tracepoint(tracepoint = "sys_enter")]
    pub fn sys_enter(ctx: RawTracePointContext) -> i32 {
        let id: u64 = ctx.arg(1);
        if matches!(
            id,
            SYS_WRITE | SYS_PWRITE64 | SYS_WRITEV | SYS_PWRITEV | SYS_PWRITEV2
        ) {
            let _ = on_write(&ctx, id);
        }
        0
    }

    /// A process that holds a watched file for writing forks: the child holds it too.
    #[raw_tracepoint(tracepoint = "sched_process_fork")]
    pub fn sched_process_fork(ctx: RawTracePointContext) -> i32 {
        let _ = on_fork(&ctx);
        0
    }

    fn on_fork(ctx: &RawTracePointContext) -> Option<()> {
        let parent = (bpf_get_current_pid_tgid() >> 32) as u32;
        if !followed(parent) {
            return None;
        }
        let child_task: u64 = ctx.arg(1);
        let child: u32 = read(child_task, &OFF_TASK_TGID)?;
        if child != parent {
            // Not a new thread of the same process: a new process.
            follow_process(child);
        }
        Some(())
    }

    /// A process's main thread exits: it writes no more.
    #[raw_tracepoint(tracepoint = "sched_process_exit")]
    pub fn sched_process_exit(_ctx: RawTracePointContext) -> i32 {
        let pid_tgid = bpf_get_current_pid_tgid();
        let tgid = (pid_tgid >> 32) as u32;
        if tgid == pid_tgid as u32 && followed(tgid) {
            if let Some(word) = PROCS.get_ptr_mut(tgid >> 6) {
                // SAFETY: `word` points into the array's value; the update is atomic, so a
                // neighbour's bit set at the same time on another CPU is kept.
                unsafe {
                    core::intrinsics::atomic_and::<
                        u64,
                        u64,
                        { core::intrinsics::AtomicOrdering::Relaxed },
                    >(word, !(1u64 << (tgid & 63)));
                }
            }
        }
        0
    }

    fn follow_process(tgid: u32) {
        match PROCS.get_ptr_mut(tgid >> 6) {
            // SAFETY: as in `sched_process_exit`.
            Some(word) => unsafe {
                core::intrinsics::atomic_or::<
                    u64,
                    u64,
                    { core::intrinsics::AtomicOrdering::Relaxed },
                >(word, 1u64 << (tgid & 63));
            },
            // A process id beyond `pid_max` as user space read it.
            None => count(COUNTER_PROCS_FULL),
        }
    }

    /// The file behind descriptor `fd` of the current task (a `struct file *`).
    fn current_file(fd: u64) -> Option<u64> {
        // SAFETY: returns the current task pointer; it is only read through probe reads.
        let task = unsafe { bpf_get_current_task() };
        let files: u64 = read(task, &OFF_TASK_FILES)?;
        let fdt: u64 = read(files, &OFF_FILES_FDT)?;
        let max_fds: u32 = read(fdt, &OFF_FDT_MAX_FDS)?;
        if fd >= u64::from(max_fds) {
            return None;
        }
        let fd_array: u64 = read(fdt, &OFF_FDT_FD)?;
        // SAFETY: as in `read`: a probe read of the fd-th slot of the fd array.
        let file: u64 = unsafe { bpf_probe_read_kernel((fd_array + fd * 8) as *const u64).ok()? };
        (file != 0).then_some(file)
    }

    /// Bytes a vectored write asks for: the lengths of its first [`IOV_COUNTED`] buffers.
    fn iov_bytes(iov: u64, buffers: u64) -> u64 {
        if buffers > u64::from(IOV_COUNTED) {
            count(COUNTER_IOV_PARTIAL);
        }
        let mut total = 0u64;
        for i in 0..u64::from(IOV_COUNTED) {
            if i >= buffers {
                break;
            }
            // `struct iovec { void *iov_base; size_t iov_len; }`: the length is at +8.
            // SAFETY: a probe read of user memory; a bad address fails cleanly.
            match unsafe { bpf_probe_read_user((iov + i * 16 + 8) as *const u64) } {
                Ok(len) => total += len,
                Err(_) => break,
            }
        }
        total
    }

    fn on_write(ctx: &RawTracePointContext, id: u64) -> Option<()> {
        // Fast path: one bit rejects every process that never opened a watched file for
        // writing (nor descends from one that did).
        let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
        if !followed(tgid) {
            return None;
        }
        let regs: u64 = ctx.arg(0);
        let fd: u64 = read(regs, &OFF_REGS_ARG0)?;
        // The descriptor table says what `fd` is now, whatever dup, dup2, fcntl or fork did.
        let file = current_file(fd)?;
        let inode: u64 = read(file, &OFF_FILE_INODE)?;
        let ino: u64 = read(inode, &OFF_INODE_INO)?;
        let sb: u64 = read(inode, &OFF_INODE_SB)?;
        let dev: u32 = read(sb, &OFF_SB_DEV)?;
        let file = FileKey { dev, _pad: 0, ino };
        let dirty = FILES.get_ptr_mut(&file)?;
        count(COUNTER_WATCHED_WRITES);
        let bytes: u64 = if id == SYS_WRITE || id == SYS_PWRITE64 {
            read(regs, &OFF_REGS_ARG2).unwrap_or(0)
        } else {
            let iov: u64 = read(regs, &OFF_REGS_ARG1).unwrap_or(0);
            let count: u64 = read(regs, &OFF_REGS_ARG2).unwrap_or(0);
            iov_bytes(iov, count)
        };
        match BYTES.get_ptr_mut(&file) {
            // SAFETY: `total` points into the map's value for `file`; the add is atomic.
            Some(total) => unsafe {
                core::intrinsics::atomic_xadd::<
                    u64,
                    u64,
                    { core::intrinsics::AtomicOrdering::Relaxed },
                >(total, bytes);
            },
            None => {
                let _ = BYTES.insert(&file, &bytes, 0);
            }
        }
        // SAFETY: `dirty` points into the map's value for `file`. A plain word: two CPUs
        // racing past an idle flag send two events, which user space handles like one.
        unsafe {
            if *dirty != 0 {
                return None;
            }
            *dirty = 1;
        }
        count(COUNTER_FILE_DIRTY);
        let Some(mut entry) = EVENTS.reserve::<FileDirtyEvent>(0) else {
            count(COUNTER_RESERVE_FAILED);
            return None;
        };
        let event = entry.as_mut_ptr();
        // SAFETY: the reserved slot is exclusively ours; every field is written.
        unsafe {
            (*event).kind = KIND_FILE_DIRTY;
            (*event).dev = file.dev;
            (*event).ino = file.ino;
        }
        entry.submit(0);
        Some(())
    }

    /// Kernel struct offsets from BTF (see `ringtail_ebpf_common::offsets`).
    #[no_mangle]
    static OFF_TASK_FILES: u32 = 0;
    #[no_mangle]
    static OFF_FILES_FDT: u32 = 0;
    #[no_mangle]
    static OFF_FDT_FD: u32 = 0;
    #[no_mangle]
    static OFF_FDT_MAX_FDS: u32 = 0;
    #[no_mangle]
    static OFF_FILE_MODE: u32 = 0;
    #[no_mangle]
    static OFF_FILE_DENTRY: u32 = 0;
    #[no_mangle]
    static OFF_FILE_INODE: u32 = 0;
    #[no_mangle]
    static OFF_TASK_TGID: u32 = 0;
    #[no_mangle]
    static OFF_DENTRY_PARENT: u32 = 0;
    #[no_mangle]
    static OFF_DENTRY_INODE: u32 = 0;
    #[no_mangle]
    static OFF_DENTRY_NAME: u32 = 0;
    #[no_mangle]
    static OFF_INODE_INO: u32 = 0;
    #[no_mangle]
    static OFF_INODE_SB: u32 = 0;
    #[no_mangle]
    static OFF_SB_DEV: u32 = 0;
    #[no_mangle]
    static OFF_SYS_EXIT_RET: u32 = 0;

    /// `FMODE_WRITE` in `file.f_mode` (include/linux/fs.h).
    const FMODE_WRITE: u32 = 0x2;

    #[map(name = "WATCHED_DIRS")]
    static WATCHED_DIRS: HashMap<DirKey, u8> = HashMap::with_max_entries(WATCHED_DIRS_MAX, 0);

    /// Offsets in the cgroup tracepoint record, set by user space from the `format` file.
    /// `volatile` reads keep the compiler from folding the zero initial values.
    #[no_mangle]
    static CGROUP_ROOT_OFFSET: u32 = 0;
    #[no_mangle]
    static CGROUP_LEVEL_OFFSET: u32 = 0;
    #[no_mangle]
    static CGROUP_ID_OFFSET: u32 = 0;
    #[no_mangle]
    static CGROUP_PATH_OFFSET: u32 = 0;

    #[map(name = "EVENTS")]
    static EVENTS: RingBuf = RingBuf::with_byte_size(EVENTS_BYTES, 0);

    #[map(name = "COUNTERS")]
    static COUNTERS_ARRAY: PerCpuArray<u64> = PerCpuArray::with_max_entries(COUNTERS, 0);

    #[tracepoint(category = "cgroup", name = "cgroup_mkdir")]
    pub fn cgroup_mkdir(ctx: TracePointContext) -> u32 {
        count(COUNTER_CGROUP_MKDIR);
        cgroup_event(&ctx, KIND_CGROUP_MKDIR);
        0
    }

    #[tracepoint(category = "cgroup", name = "cgroup_rmdir")]
    pub fn cgroup_rmdir(ctx: TracePointContext) -> u32 {
        count(COUNTER_CGROUP_RMDIR);
        cgroup_event(&ctx, KIND_CGROUP_RMDIR);
        0
    }

    #[tracepoint(category = "syscalls", name = "sys_exit_openat")]
    pub fn sys_exit_openat(ctx: TracePointContext) -> u32 {
        file_opened(&ctx);
        0
    }

    #[tracepoint(category = "syscalls", name = "sys_exit_openat2")]
    pub fn sys_exit_openat2(ctx: TracePointContext) -> u32 {
        file_opened(&ctx);
        0
    }

    #[tracepoint(category = "syscalls", name = "sys_exit_open")]
    pub fn sys_exit_open(ctx: TracePointContext) -> u32 {
        file_opened(&ctx);
        0
    }

    #[tracepoint(category = "syscalls", name = "sys_exit_creat")]
    pub fn sys_exit_creat(ctx: TracePointContext) -> u32 {
        file_opened(&ctx);
        0
    }

    /// Reads a `T` at kernel address `base + offset`.
    fn read<T>(base: u64, offset: &u32) -> Option<T> {
        // SAFETY: bpf_probe_read_kernel copies from any kernel address and fails cleanly on a
        // bad one; the result is plain data.
        unsafe { bpf_probe_read_kernel((base as usize + global(offset)) as *const T).ok() }
    }

    fn file_opened(ctx: &TracePointContext) {
        let _ = try_file_opened(ctx);
    }

    /// A file open for writing in a watched directory.
    struct Watched {
        key: FileKey,
        dir_ino: u64,
        /// `dentry.d_name.name`: the file's name in its directory.
        name: u64,
    }

    /// What `file` (a `struct file *`) is, if it is open for writing in a watched directory.
    fn watched(file: u64) -> Option<Watched> {
        let mode: u32 = read(file, &OFF_FILE_MODE)?;
        if mode & FMODE_WRITE == 0 {
            return None;
        }
        let dentry: u64 = read(file, &OFF_FILE_DENTRY)?;
        let parent: u64 = read(dentry, &OFF_DENTRY_PARENT)?;
        let parent_inode: u64 = read(parent, &OFF_DENTRY_INODE)?;
        let dir_ino: u64 = read(parent_inode, &OFF_INODE_INO)?;
        let sb: u64 = read(parent_inode, &OFF_INODE_SB)?;
        let dev: u32 = read(sb, &OFF_SB_DEV)?;
        let key = DirKey {
            dev,
            _pad: 0,
            ino: dir_ino,
        };
        // SAFETY: a lookup in a hash map; the value is not kept.
        if unsafe { WATCHED_DIRS.get(&key) }.is_none() {
            return None;
        }
        let inode: u64 = read(dentry, &OFF_DENTRY_INODE)?;
        let ino: u64 = read(inode, &OFF_INODE_INO)?;
        let name: u64 = read(dentry, &OFF_DENTRY_NAME)?;
        Some(Watched {
            key: FileKey { dev, _pad: 0, ino },
            dir_ino,
            name,
        })
    }

    /// Fills `event` for `file`, opened as `fd` by process `pid`.
    ///
    /// # Safety
    /// `event` must point at writable memory for one `FileOpenedEvent`.
    unsafe fn fill_opened(event: *mut FileOpenedEvent, pid: u32, fd: u32, file: &Watched) {
        (*event).kind = KIND_FILE_OPENED;
        (*event).pid = pid;
        (*event).fd = fd;
        (*event).dev = file.key.dev;
        (*event).ino = file.key.ino;
        (*event).dir_ino = file.dir_ino;
        (*event).time_ns = bpf_ktime_get_ns();
        (*event)._pad = 0;
        (*event).name_len =
            match bpf_probe_read_kernel_str_bytes(file.name as *const u8, &mut (*event).name) {
                Ok(bytes) => bytes.len() as u32,
                Err(_) => 0,
            };
    }

    fn try_file_opened(ctx: &TracePointContext) -> Option<()> {
        // SAFETY: the offset comes from this tracepoint's format file; read_at fails cleanly.
        let ret: i64 = unsafe { ctx.read_at(global(&OFF_SYS_EXIT_RET)) }.ok()?;
        if ret < 0 {
            return None;
        }
        let fd = ret as u64;
        let file = watched(current_file(fd)?)?;
        let pid = (bpf_get_current_pid_tgid() >> 32) as u32;
        count(COUNTER_FILE_OPENED);
        follow_process(pid);
        // A new writer: user space opens and reads the file, then clears the flag.
        // BPF_NOEXIST (1): a file already known keeps its flag.
        let _ = FILES.insert(&file.key, &1, 1);
        let Some(mut entry) = EVENTS.reserve::<FileOpenedEvent>(0) else {
            count(COUNTER_RESERVE_FAILED);
            return None;
        };
        // SAFETY: the reserved slot is exclusively ours and sized for the event; every field
        // is written before submit (a failed name read leaves an empty name).
        unsafe { fill_opened(entry.as_mut_ptr(), pid, fd as u32, &file) };
        entry.submit(0);
        Some(())
    }

    /// `struct bpf_iter_meta`'s first member (kernel/bpf/bpf_iter.c); only `seq` is read.
    #[repr(C)]
    struct IterMeta {
        seq: *mut c_void,
    }

    /// The context of an `iter/task_file` program (`struct bpf_iter__task_file`): every
    /// member is 8-byte aligned. User space checks these offsets against the kernel's BTF
    /// before loading (the verifier only accepts constant offsets into the context).
    #[repr(C)]
    struct IterTaskFile {
        meta: *const IterMeta,
        task: u64,
        fd: u32,
        _pad: u32,
        file: u64,
    }

    /// Scratch space for the iterator's record (too big for the stack with the rest).
    #[map(name = "ITER_SCRATCH")]
    static ITER_SCRATCH: PerCpuArray<FileOpenedEvent> = PerCpuArray::with_max_entries(1, 0);

    /// Run by user space at start-up (and after lost events): every file open for writing
    /// in a watched directory, in any process. Its writer is followed by the write hook, the
    /// file's flag starts idle (user space reads it anyway), and a [`FileOpenedEvent`] is
    /// written to the iterator's output.
    #[no_mangle]
    #[link_section = "iter/task_file"]
    pub fn task_file(ctx: *mut c_void) -> i32 {
        let _ = try_task_file(ctx as *const IterTaskFile);
        0
    }

    fn try_task_file(ctx: *const IterTaskFile) -> Option<()> {
        // The task and file pointers are read as plain numbers (probe reads), so that the
        // BTF offsets passed as globals can be added to them.
        // SAFETY: probe reads of the context; they fail cleanly.
        let task: u64 = unsafe { bpf_probe_read_kernel(core::ptr::addr_of!((*ctx).task)) }.ok()?;
        // SAFETY: as above.
        let file: u64 = unsafe { bpf_probe_read_kernel(core::ptr::addr_of!((*ctx).file)) }.ok()?;
        // SAFETY: as above.
        let fd: u32 = unsafe { bpf_probe_read_kernel(core::ptr::addr_of!((*ctx).fd)) }.ok()?;
        if task == 0 || file == 0 {
            return None;
        }
        let watched = watched(file)?;
        let pid: u32 = read(task, &OFF_TASK_TGID)?;
        follow_process(pid);
        // BPF_NOEXIST (1): idle unless the hooks said otherwise already.
        let _ = FILES.insert(&watched.key, &0, 1);
        let event = ITER_SCRATCH.get_ptr_mut(0)?;
        // SAFETY: `event` is this CPU's scratch slot, sized for one event; `meta` is the
        // iterator's metadata, valid for the whole call; `seq` is its output.
        unsafe {
            fill_opened(event, pid, fd, &watched);
            let seq = (*(*ctx).meta).seq;
            bpf_seq_write(
                seq as *mut _,
                event as *const _,
                core::mem::size_of::<FileOpenedEvent>() as u32,
            );
        }
        Some(())
    }

    fn global(value: &u32) -> usize {
        // SAFETY: a read of a plain static; volatile so the loader's value is used.
        unsafe { core::ptr::read_volatile(value) as usize }
    }

    fn cgroup_event(ctx: &TracePointContext, kind: u32) {
        // Every fallible read comes before the reservation (the verifier wants the
        // reservation released on every path).
        // SAFETY: the offsets come from this tracepoint's format file; `read_at` reads with
        // bpf_probe_read, which fails cleanly on a bad address.
        let level: u32 = unsafe { ctx.read_at(global(&CGROUP_LEVEL_OFFSET)) }.unwrap_or(0);
        // SAFETY: as above.
        let root: u32 = unsafe { ctx.read_at(global(&CGROUP_ROOT_OFFSET)) }.unwrap_or(0);
        // SAFETY: as above.
        let id: u64 = unsafe { ctx.read_at(global(&CGROUP_ID_OFFSET)) }.unwrap_or(0);
        // SAFETY: as above.
        let loc: u32 = unsafe { ctx.read_at(global(&CGROUP_PATH_OFFSET)) }.unwrap_or(0);
        let Some(mut entry) = EVENTS.reserve::<CgroupEvent>(0) else {
            count(COUNTER_RESERVE_FAILED);
            return;
        };
        let event = entry.as_mut_ptr();
        // SAFETY: `event` points at the reserved, exclusively owned ring-buffer slot of
        // `size_of::<CgroupEvent>()` bytes; every field is written before submit.
        unsafe {
            (*event).kind = kind;
            (*event).level = level;
            (*event).id = id;
            (*event).root = root;
            // `__data_loc`: the low 16 bits are the string's offset in the record.
            let src = (ctx.as_ptr() as *const u8).add((loc & 0xffff) as usize);
            (*event).path_len = match bpf_probe_read_kernel_str_bytes(src, &mut (*event).path) {
                Ok(bytes) => bytes.len() as u32,
                Err(_) => 0,
            };
        }
        entry.submit(0);
    }

    fn count(index: u32) {
        if let Some(slot) = COUNTERS_ARRAY.get_ptr_mut(index) {
            // SAFETY: the pointer comes from the map lookup and points at this CPU's slot; a
            // program runs to completion on one CPU, so nothing else writes it meanwhile.
            unsafe { *slot += 1 };
        }
    }

    #[panic_handler]
    fn panic(_info: &core::panic::PanicInfo) -> ! {
        loop {}
    }
}

#[cfg(not(target_arch = "bpf"))]
fn main() {}
