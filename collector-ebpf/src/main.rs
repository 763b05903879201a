//! ringtail's eBPF programs.
//!
//! Container lifecycle: the `cgroup:cgroup_mkdir` and `cgroup:cgroup_rmdir` tracepoints send a
//! [`CgroupEvent`](ringtail_ebpf_common::CgroupEvent) — cgroup id, level and path — through the
//! `EVENTS` ring buffer, and count themselves in the per-CPU `COUNTERS` array, which also
//! counts failed ring-buffer reservations (events user space never saw). The record layout of
//! a tracepoint is read by user space from its `format` file at load time and passed in as
//! read-only globals; nothing about it is hard-coded here.
//!
//! On the host this crate compiles to an empty binary, so workspace-wide commands work; the
//! real object is built for `bpfel-unknown-none` by `xtask::build_ebpf` (from the collector's
//! build script and from `cargo xtask build-ebpf`).
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

#[cfg(target_arch = "bpf")]
mod programs {
    use aya_ebpf::helpers::bpf_probe_read_kernel_str_bytes;
    use aya_ebpf::macros::{map, tracepoint};
    use aya_ebpf::maps::{PerCpuArray, RingBuf};
    use aya_ebpf::programs::TracePointContext;
    use aya_ebpf::EbpfContext;
    use ringtail_ebpf_common::{
        CgroupEvent, COUNTERS, COUNTER_CGROUP_MKDIR, COUNTER_CGROUP_RMDIR, COUNTER_RESERVE_FAILED,
        EVENTS_BYTES, KIND_CGROUP_MKDIR, KIND_CGROUP_RMDIR,
    };

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
