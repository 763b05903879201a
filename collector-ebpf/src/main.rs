//! ringtail's eBPF programs.
//!
//! For now this holds only the container-lifecycle counters: the `cgroup:cgroup_mkdir` and
//! `cgroup:cgroup_rmdir` tracepoints count events per CPU. User space does not load it yet;
//! the eBPF discovery issue turns it into the event source of discovery (lifecycle events,
//! files opened for writing, new data) and loads it at start-up. It is built by
//! `cargo xtask build-ebpf` so that the toolchain path is exercised from the first commit.
//!
//! On the host this crate compiles to an empty binary, so workspace-wide commands work.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

#[cfg(target_arch = "bpf")]
mod programs {
    use aya_ebpf::macros::{map, tracepoint};
    use aya_ebpf::maps::PerCpuArray;
    use aya_ebpf::programs::TracePointContext;

    /// Index of the cgroup-created counter in [`CGROUP_EVENTS`].
    const MKDIR: u32 = 0;
    /// Index of the cgroup-removed counter in [`CGROUP_EVENTS`].
    const RMDIR: u32 = 1;

    /// Cgroup lifecycle events seen, per CPU.
    #[map]
    static CGROUP_EVENTS: PerCpuArray<u64> = PerCpuArray::with_max_entries(2, 0);

    #[tracepoint(category = "cgroup", name = "cgroup_mkdir")]
    pub fn cgroup_mkdir(_ctx: TracePointContext) -> u32 {
        count(MKDIR);
        0
    }

    #[tracepoint(category = "cgroup", name = "cgroup_rmdir")]
    pub fn cgroup_rmdir(_ctx: TracePointContext) -> u32 {
        count(RMDIR);
        0
    }

    fn count(index: u32) {
        if let Some(slot) = CGROUP_EVENTS.get_ptr_mut(index) {
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
