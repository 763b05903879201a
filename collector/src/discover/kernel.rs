//! Discovery's link to the eBPF programs ([`crate::ebpf`]): loading them as `discovery`
//! says, and routing their events — files opened for writing and files with new data to
//! discovery, container starts and stops to the log.
//!
//! The eBPF thread holds a [`KernelFeed`], discovery the matching [`KernelLink`]: a bounded
//! queue of events plus a pipe that is written when some are queued, so discovery's poll
//! wakes on it. When the queue is full or the kernel lost events, a flag asks discovery to
//! rescan instead: what it misses, a rescan finds.
//!
//! Owns the link between the two threads; it may not decide what an event means (discovery
//! does).

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crossbeam::channel::{Receiver, Sender, unbounded};

use crate::ebpf::{ContainerEvent, EbpfError, Kernel, KernelEvent, WatchedDirs};

/// Files reported opened by the kernel, waiting for discovery; past it, a rescan.
const KERNEL_QUEUE: usize = 65_536;

/// Where kernel events come from (`discovery`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiscoveryMode {
    /// eBPF when it loads (privileges, tracefs), inotify otherwise; the log says which and why.
    Auto,
    /// eBPF or refuse to start.
    Ebpf,
    /// inotify only; the eBPF programs are not loaded.
    Inotify,
}

/// Loads the eBPF programs as `mode` says: `None` means inotify alone (configured, or `auto`
/// and the programs did not load); the log says which and why.
pub fn load(mode: DiscoveryMode) -> Result<Option<Kernel>, EbpfError> {
    match mode {
        DiscoveryMode::Inotify => {
            tracing::info!(
                mode = "inotify",
                "discovery: inotify (configured); eBPF programs not loaded"
            );
            Ok(None)
        }
        DiscoveryMode::Auto | DiscoveryMode::Ebpf => match Kernel::load() {
            Ok(kernel) => {
                tracing::info!(
                    mode = "ebpf",
                    "discovery: eBPF programs loaded (container lifecycle from cgroup tracepoints, files opened for writing from open tracepoints); renames, deletions and new data from inotify"
                );
                Ok(Some(kernel))
            }
            Err(e) if mode == DiscoveryMode::Auto => {
                tracing::warn!(mode = "inotify", reason = %e, "discovery: eBPF unavailable, using inotify alone; container lifecycle events are off");
                Ok(None)
            }
            Err(e) => Err(e),
        },
    }
}

/// What discovery gets from the eBPF side: the kernel's watched-directory map and its
/// events.
#[derive(Debug)]
pub struct KernelLink {
    /// Directories the kernel reports opens in.
    pub dirs: WatchedDirs,
    /// The events.
    pub events: KernelEvents,
    /// Whether the write hook wakes readers (`reader.wake: write_hook`): then inotify is not
    /// asked for modify events.
    pub hook_wakes: bool,
}

/// The files the kernel reports opened or dirty, a pipe that is written to when some are
/// queued, and a flag set when events were lost.
#[derive(Debug)]
pub struct KernelEvents {
    /// Files opened for writing in watched directories ([`KernelEvent::FileOpened`]) and
    /// known files that have new data ([`KernelEvent::FileDirty`]).
    opened: Receiver<KernelEvent>,
    /// Readable when `opened` has news (or `reconcile` was set).
    wake: OwnedFd,
    /// Set when kernel events were lost: rescan everything.
    reconcile: Arc<AtomicBool>,
}

impl KernelEvents {
    /// The pipe that is readable when events are queued (to poll it).
    pub fn wake(&self) -> &OwnedFd {
        &self.wake
    }

    /// The kernel events queued now, and whether events were lost.
    pub fn take(&self) -> (Vec<KernelEvent>, bool) {
        let mut sink = [0u8; 256];
        while matches!(rustix::io::read(&self.wake, &mut sink), Ok(n) if n > 0) {}
        let events: Vec<KernelEvent> = self.opened.try_iter().collect();
        let reconcile = self.reconcile.swap(false, Ordering::AcqRel);
        (events, reconcile)
    }
}

/// The eBPF thread's end of the link.
#[derive(Debug)]
pub struct KernelFeed {
    opened: Sender<KernelEvent>,
    wake: OwnedFd,
    reconcile: Arc<AtomicBool>,
}

/// Connects `kernel` to discovery: discovery's end (`None` when the kernel's watched-directory
/// map was taken already), and the eBPF thread's. `hook_wakes`: the write hook wakes readers.
pub fn link(
    kernel: &mut Kernel,
    hook_wakes: bool,
) -> std::io::Result<(Option<KernelLink>, KernelFeed)> {
    // Unbounded, held to KERNEL_QUEUE by `KernelFeed::queue`: a bounded crossbeam channel
    // allocates and touches every slot up front (several MiB resident for a queue that is
    // nearly always empty); this one's memory follows what it holds.
    let (opened_tx, opened_rx) = unbounded();
    let (wake_read, wake_write) = rustix::pipe::pipe_with(
        rustix::pipe::PipeFlags::NONBLOCK | rustix::pipe::PipeFlags::CLOEXEC,
    )?;
    let reconcile = Arc::new(AtomicBool::new(false));
    let link = kernel.take_watched_dirs().map(|dirs| KernelLink {
        dirs,
        events: KernelEvents {
            opened: opened_rx,
            wake: wake_read,
            reconcile: Arc::clone(&reconcile),
        },
        hook_wakes,
    });
    let feed = KernelFeed {
        opened: opened_tx,
        wake: wake_write,
        reconcile,
    };
    Ok((link, feed))
}

impl KernelFeed {
    /// Hands discovery the files open for writing in watched directories at start-up (their
    /// writers opened them before the open hook watched the directories; the write hook
    /// follows them from now on).
    pub fn startup_files(&self, kernel: &mut Kernel) {
        match kernel.open_files() {
            Ok(files) => {
                tracing::info!(
                    files = files.len(),
                    "files open for writing in watched directories at start-up (iter/task_file); their writers are followed by the write hook"
                );
                for file in files {
                    if !self.queue(KernelEvent::FileOpened(file)) {
                        self.reconcile.store(true, Ordering::Release);
                    }
                }
                let _ = rustix::io::write(&self.wake, &[1]);
            }
            Err(e) => tracing::warn!(
                error = %e,
                "cannot list the files open at start-up; their writers' new data is seen through inotify only"
            ),
        }
    }

    /// Queues `event` for discovery; `false` when [`KERNEL_QUEUE`] events wait already (or
    /// discovery is gone). This thread is the queue's only sender, so the check holds.
    fn queue(&self, event: KernelEvent) -> bool {
        self.opened.len() < KERNEL_QUEUE && self.opened.send(event).is_ok()
    }

    /// Routes one event from the eBPF thread.
    pub fn route(&self, event: KernelEvent) {
        match event {
            event @ KernelEvent::Container(ContainerEvent::Started { .. }) => {
                if let KernelEvent::Container(ContainerEvent::Started {
                    cgroup_id,
                    container_id,
                    path,
                }) = &event
                {
                    tracing::info!(container = %container_id, cgroup_id, cgroup = %path, "container started");
                }
                // Discovery asks the runtime for a new pod's labels before its files open; a
                // full pipe only costs that head start (a miss asks anyway).
                if self.queue(event) {
                    let _ = rustix::io::write(&self.wake, &[1]);
                }
            }
            KernelEvent::Container(ContainerEvent::Stopped {
                cgroup_id,
                container_id,
            }) => {
                tracing::info!(container = %container_id, cgroup_id, "container stopped");
            }
            event @ (KernelEvent::FileOpened(_) | KernelEvent::FileDirty { .. }) => {
                if !self.queue(event) {
                    // Discovery is behind: what it misses, a rescan finds.
                    self.reconcile.store(true, Ordering::Release);
                }
                // Full pipe: a wake-up is pending already.
                let _ = rustix::io::write(&self.wake, &[1]);
            }
            KernelEvent::Lost { .. } => {
                self.reconcile.store(true, Ordering::Release);
                let _ = rustix::io::write(&self.wake, &[1]);
            }
        }
    }
}
