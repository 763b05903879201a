//! Kernel events through eBPF: loading ringtail's programs and turning their ring-buffer
//! events into container lifecycle events.
//!
//! What runs today:
//! - the `cgroup:cgroup_mkdir` / `cgroup_rmdir` tracepoints report every cgroup created or
//!   removed, with its id (the inode of its cgroup2 directory) and path; a path that names a
//!   container (`cri-containerd-<id>.scope`, `docker-<id>.scope`, `crio-<id>.scope`, or a
//!   64-hex-digit last component, as the cgroupfs driver names it) becomes a container
//!   started/stopped event, kept in a table of running containers and counted;
//! - the `syscalls:sys_exit_open*`/`creat` tracepoints report files opened for writing in the
//!   directories discovery watches ([`WatchedDirs`]), with the writer's pid and fd, so
//!   discovery can open a new file through the writer's own descriptor
//!   (`/proc/<pid>/fd/<fd>`) — even when it is already unlinked.
//!
//! Kernel struct offsets come from the running kernel's BTF ([`btf`]).
//!
//! The tracepoint record layout is read from its tracefs `format` file at load time (tracefs
//! is mounted if it is not) and passed to the programs as read-only globals. A failed
//! ring-buffer reservation in the kernel is counted per CPU and published as
//! `ringtail_ebpf_ringbuf_drops_total`.
//!
//! - [`load`]: loading the programs and the thread that drains their ring buffer.
//! - [`events`]: the events they report, and the running containers.
//! - [`maps`]: the maps user space shares with them.
//! - [`btf`]: kernel struct offsets from BTF.
//!
//! The programs themselves are in `collector-ebpf/`, the layouts both sides share in
//! `ebpf-common/`. It owns the kernel side; it may not touch files being read or records.

pub mod btf;
pub mod events;
pub mod load;
pub mod maps;

pub use events::{ContainerEvent, Containers, FileOpened, KernelEvent, container_id, monotonic_ns};
pub use load::{EbpfError, Kernel};
pub use maps::{DirtyFlags, WatchedDirs, kernel_dev, user_dev};
