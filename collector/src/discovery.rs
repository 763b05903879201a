//! Discovery: which files to read, and when they have new data — driven by inotify events.
//!
//! The eBPF discovery of a later issue produces the same events; this is the mode that works
//! everywhere. At start-up every source's glob root is scanned (and watched); after that,
//! nothing is polled: the kernel reports each change.
//!
//! - A watched directory is a glob root, a directory below one (within the glob's depth), or an
//!   ancestor of a root that does not exist yet (so the root is noticed when it appears).
//! - A created (or moved-in) file that matches a source is opened and handed to a reader
//!   ([`Control::Open`]); a write to a known file marks it dirty.
//! - A file is known by its identity (device, inode): a rename within the watched directories
//!   — kubelet and logrotate rotation — keeps the file, its reader state and its offset, even
//!   when the new name no longer matches the glob, so lines written to a rotated file are not
//!   lost. The same file seen under a second path (a symlink) is read once.
//! - A deleted or moved-away file is [`Control::Gone`]: its reader reads it to the end, then
//!   closes it. A `MOVED_FROM` is resolved only after every queued event is read, because its
//!   `MOVED_TO` half may follow in the next read.
//! - On an inotify queue overflow everything is rescanned and every known file marked dirty:
//!   events may be lost, data is not.
//! - With eBPF ([`KernelLink`]), every watched directory is also registered with the kernel,
//!   which reports files opened for writing in it with the writer's pid and fd. A new file is
//!   then opened through the writer's own descriptor (`/proc/<pid>/fd/<fd>`), which works even
//!   after the file was unlinked — a short-lived pod's log deleted before inotify's event was
//!   handled is still read. Lost kernel events (full ring buffer) trigger a rescan.
//! - Every file opened is checked against the checkpoints of the last run
//!   ([`AckTracker::resume`]): the same file (identity and fingerprint) resumes at its
//!   acknowledged offset. At start-up, a file whose name no longer matches any glob but whose
//!   identity has a checkpoint — rotated while ringtail was down — is read from its checkpoint
//!   to its end too; one without a checkpoint whose name is a rotation of a matching name
//!   (`<name>.<suffix>`) and that changed after the last run's last checkpoint — created and
//!   rotated away while ringtail was down — is read whole.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fs::OpenOptions;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use crate::ack::{AckTracker, Resume};
use crate::checkpoint::{FINGERPRINT_BYTES, Fingerprint};
use crate::config::{KubernetesConfig, ReadFrom, SourceConfig};
use crate::container::{FileMeta, Resolver};
use crate::declare;
use crate::ebpf::{FileOpened, KernelEvent, WatchedDirs};
use crate::metrics::{KindLabel, Metrics, SourceLabel};
use crate::reader::{Control, ReaderHandle};
use crate::runtime::Bundle;
use crate::source::{FileCtx, FileIdentity, SourceId};
use ringtail_ebpf_common::DirKey;

/// Why discovery could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// inotify could not be initialised.
    #[error("cannot initialise inotify: {source}")]
    Init {
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// Waiting for or reading events failed.
    #[error("cannot read inotify events: {source}")]
    Events {
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// Every reader has stopped.
    #[error("all readers have stopped")]
    ReadersGone,
}

/// How long a closed file's identity is remembered against late kernel reports.
const RECENTLY_GONE: std::time::Duration = std::time::Duration::from_secs(60);

/// Longest wait of an empty container log for its container's bundle.
const META_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

const DIR_MASK: WatchMask = WatchMask::CREATE
    .union(WatchMask::MODIFY)
    .union(WatchMask::CLOSE_WRITE)
    .union(WatchMask::MOVED_FROM)
    .union(WatchMask::MOVED_TO)
    .union(WatchMask::DELETE)
    .union(WatchMask::DELETE_SELF)
    .union(WatchMask::MOVE_SELF)
    .union(WatchMask::ONLYDIR);

struct Tracked {
    /// The paths the file is known under (usually one; a symlink adds its target).
    paths: Vec<PathBuf>,
    /// When discovery opened it (monotonic ns).
    opened_ns: u64,
    identity: FileIdentity,
    reader: usize,
}

struct EventCounters {
    create: Counter,
    modify: Counter,
    close_write: Counter,
    delete: Counter,
    moved: Counter,
    overflow: Counter,
    kernel_open: Counter,
    kernel_dirty: Counter,
    reconcile: Counter,
}

/// The inotify discovery thread's state.
pub struct Discovery {
    inotify: Inotify,
    sources: Vec<Arc<SourceConfig>>,
    readers: Vec<ReaderHandle>,
    stop: OwnedFd,
    dirs: HashMap<WatchDescriptor, PathBuf>,
    watched: HashMap<PathBuf, WatchDescriptor>,
    files: HashMap<PathBuf, SourceId>,
    tracked: HashMap<SourceId, Tracked>,
    identities: HashMap<FileIdentity, SourceId>,
    maybe_gone: Vec<SourceId>,
    /// Source of each `MOVED_FROM` path that matched one, by cookie, until its `MOVED_TO`.
    unopened_moves: HashMap<u32, Arc<SourceConfig>>,
    dirty: Vec<Vec<SourceId>>,
    next_id: u64,
    counters: EventCounters,
    watch_errors_logged: u32,
    tracker: Arc<AckTracker>,
    truncations: Family<SourceLabel, Counter>,
    /// Files resumed from a checkpoint.
    resumed: usize,
    kernel: Option<KernelLink>,
    /// Files read and closed recently, with when discovery had opened them (monotonic ns): a
    /// kernel report of an opening *before* that, arriving after inotify's events were
    /// handled, is about the file already read; a later one is a new file on a recycled inode.
    /// Pruned after a minute.
    recently_gone: HashMap<FileIdentity, (std::time::Instant, u64)>,
    /// Where a symlink matching a glob may lead ([`symlink_roots`]), canonical.
    symlink_roots: Vec<PathBuf>,
    /// Symlinks refused already (logged once each).
    refused_links: HashSet<PathBuf>,
    symlinks_refused: Family<SourceLabel, Counter>,
    /// Watched directories by their kernel key, and back.
    dir_keys: HashMap<DirKey, PathBuf>,
    key_of_dir: HashMap<PathBuf, DirKey>,
    /// Container metadata of files.
    resolver: Resolver,
    /// Paths a glob matched but every matching source's container filter rejected.
    filtered: HashSet<PathBuf>,
    files_filtered: Family<SourceLabel, Counter>,
    /// The configured sources that have globs; `sources` is the declared ones, then these.
    configured: Vec<Arc<SourceConfig>>,
    /// The configured sources with `declared: true`.
    declaring: Vec<Arc<SourceConfig>>,
    /// Sources made from containers' declarations, by container id (empty: it declares
    /// nothing this node reads).
    declared: HashMap<String, Vec<Arc<SourceConfig>>>,
    /// inotify watches of the runtime's bundle directories (only with declaring sources).
    runtime_dirs: HashMap<WatchDescriptor, PathBuf>,
    runtime_watched: HashSet<PathBuf>,
    /// A bundle directory changed: containers may have started or gone.
    runtime_changed: bool,
    declarations_active: Gauge,
    declarations_refused: Counter,
    /// Empty container logs waiting for their container's bundle, with their deadline.
    deferred: HashMap<PathBuf, std::time::Instant>,
}

/// What discovery gets from the eBPF side: the kernel's watched-directory map, the files it
/// reports opened, a pipe that is written to when some are queued, and a flag set when
/// events were lost.
#[derive(Debug)]
pub struct KernelLink {
    /// Directories the kernel reports opens in.
    pub dirs: WatchedDirs,
    /// Files opened for writing in them ([`KernelEvent::FileOpened`]) and known files
    /// that have new data ([`KernelEvent::FileDirty`]).
    pub opened: crossbeam::channel::Receiver<KernelEvent>,
    /// Readable when `opened` has news (or `reconcile` was set).
    pub wake: OwnedFd,
    /// Set when kernel events were lost: rescan everything.
    pub reconcile: Arc<std::sync::atomic::AtomicBool>,
    /// Whether the write hook wakes readers (`reader.wake: write_hook`): then inotify is not
    /// asked for modify events.
    pub hook_wakes: bool,
}

impl std::fmt::Debug for Discovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Discovery")
            .field("dirs", &self.dirs.len())
            .field("files", &self.tracked.len())
            .finish_non_exhaustive()
    }
}

impl Discovery {
    /// Sets up inotify and scans every source's root: files found now are handed to the
    /// readers before this returns. `stop` is the read end of a pipe whose write end is closed
    /// to stop [`run`](Self::run).
    pub fn new(
        sources: Vec<Arc<SourceConfig>>,
        readers: Vec<ReaderHandle>,
        stop: OwnedFd,
        metrics: &Metrics,
        tracker: Arc<AckTracker>,
        kernel: Option<KernelLink>,
        kubernetes: &KubernetesConfig,
    ) -> Result<Self, DiscoveryError> {
        let inotify = Inotify::init().map_err(|source| DiscoveryError::Init { source })?;
        let kind = |kind| {
            metrics
                .discovery_events
                .get_or_create_owned(&KindLabel { kind })
        };
        let dirty = readers.iter().map(|_| Vec::new()).collect();
        let sources_for_roots = sources.clone();
        let (declaring, configured): (Vec<_>, Vec<_>) =
            sources.iter().cloned().partition(|s| s.declared);
        let mut discovery = Self {
            inotify,
            sources,
            readers,
            stop,
            dirs: HashMap::new(),
            watched: HashMap::new(),
            files: HashMap::new(),
            tracked: HashMap::new(),
            identities: HashMap::new(),
            maybe_gone: Vec::new(),
            unopened_moves: HashMap::new(),
            dirty,
            next_id: 1,
            counters: EventCounters {
                create: kind("create"),
                modify: kind("modify"),
                close_write: kind("close_write"),
                delete: kind("delete"),
                moved: kind("move"),
                overflow: kind("overflow"),
                kernel_open: kind("kernel_open"),
                kernel_dirty: kind("kernel_dirty"),
                reconcile: kind("reconcile"),
            },
            watch_errors_logged: 0,
            symlink_roots: symlink_roots(&sources_for_roots),
            refused_links: HashSet::new(),
            symlinks_refused: metrics.symlinks_refused.clone(),
            tracker,
            truncations: metrics.truncations.clone(),
            resumed: 0,
            kernel,
            recently_gone: HashMap::new(),
            dir_keys: HashMap::new(),
            key_of_dir: HashMap::new(),
            resolver: Resolver::new(
                kubernetes.runtime_dirs.clone(),
                kubernetes.node_name.clone(),
            ),
            filtered: HashSet::new(),
            files_filtered: metrics.files_filtered.clone(),
            configured,
            declaring,
            declared: HashMap::new(),
            runtime_dirs: HashMap::new(),
            runtime_watched: HashSet::new(),
            runtime_changed: false,
            declarations_active: metrics.declarations_active.clone(),
            declarations_refused: metrics.declarations_refused.clone(),
            deferred: HashMap::new(),
        };
        discovery.sources = discovery.configured.clone();
        discovery.scan_roots(true)?;
        discovery.sync_declarations(true)?;
        discovery.flush_dirty()?;
        tracing::info!(
            directories = discovery.dirs.len(),
            files = discovery.tracked.len(),
            resumed_from_checkpoints = discovery.resumed,
            "discovery started: inotify watches the directories"
        );
        Ok(discovery)
    }

    /// Number of files currently known.
    pub fn files(&self) -> usize {
        self.tracked.len()
    }

    /// Identities (`st_dev`, inode) of the files currently known.
    pub fn identities(&self) -> std::collections::HashSet<(u64, u64)> {
        self.identities.keys().map(|i| (i.dev, i.ino)).collect()
    }

    /// Handles events until the stop pipe is closed.
    pub fn run(mut self) -> Result<(), DiscoveryError> {
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let (events_ready, stop, kernel_ready) = {
                let mut fds = vec![
                    rustix::event::PollFd::new(&self.inotify, rustix::event::PollFlags::IN),
                    rustix::event::PollFd::new(&self.stop, rustix::event::PollFlags::IN),
                ];
                if let Some(k) = &self.kernel {
                    fds.push(rustix::event::PollFd::new(
                        &k.wake,
                        rustix::event::PollFlags::IN,
                    ));
                }
                let timeout = self.next_deferred().map(|at| {
                    let wait = at.saturating_duration_since(std::time::Instant::now());
                    rustix::time::Timespec {
                        tv_sec: wait.as_secs() as i64,
                        tv_nsec: i64::from(wait.subsec_nanos()),
                    }
                });
                match rustix::event::poll(&mut fds, timeout.as_ref()) {
                    Ok(_) => {}
                    Err(rustix::io::Errno::INTR) => continue,
                    Err(e) => return Err(DiscoveryError::Events { source: e.into() }),
                }
                (
                    !fds[0].revents().is_empty(),
                    !fds[1].revents().is_empty(),
                    fds.get(2).is_some_and(|f| !f.revents().is_empty()),
                )
            };
            // Kernel events are taken first and handled after inotify's queue is drained:
            // inotify queues its events in the syscall that causes them, so every inotify
            // event about what happened before a kernel event was sent is queued by then.
            // Handled the other way round, a new file opened under a name that was just
            // renamed away would be matched with the old file's queued events.
            let kernel = if kernel_ready || stop {
                self.take_kernel_events()
            } else {
                None
            };
            if events_ready || kernel.is_some() {
                self.drain_events(&mut buffer)?;
            }
            if let Some((events, reconcile)) = kernel {
                self.kernel_events(events, reconcile)?;
            }
            if !self.deferred.is_empty() {
                self.retry_deferred()?;
            }
            if stop {
                // Events already queued still count: a file created and renamed away just
                // before shutdown must reach the tracker (and so the final checkpoint), or
                // the next run would not find it under its new name.
                self.drain_events(&mut buffer)?;
                return Ok(());
            }
        }
    }

    /// Rescans every root and marks every known file dirty: after lost events, files are
    /// found again and read to their ends.
    fn rescan(&mut self) -> Result<(), DiscoveryError> {
        self.scan_roots(false)?;
        let all: Vec<(SourceId, usize)> =
            self.tracked.iter().map(|(id, t)| (*id, t.reader)).collect();
        for (id, reader) in all {
            self.dirty[reader].push(id);
        }
        Ok(())
    }

    /// The kernel events queued now, and whether events were lost (`None` without eBPF).
    fn take_kernel_events(&mut self) -> Option<(Vec<KernelEvent>, bool)> {
        let k = self.kernel.as_ref()?;
        let mut sink = [0u8; 256];
        while matches!(rustix::io::read(&k.wake, &mut sink), Ok(n) if n > 0) {}
        let events: Vec<KernelEvent> = k.opened.try_iter().collect();
        let reconcile = k.reconcile.swap(false, std::sync::atomic::Ordering::AcqRel);
        Some((events, reconcile))
    }

    /// Handles the files the kernel reported opened or dirty, and a rescan when events were
    /// lost.
    fn kernel_events(
        &mut self,
        events: Vec<KernelEvent>,
        reconcile: bool,
    ) -> Result<(), DiscoveryError> {
        for event in events {
            match event {
                KernelEvent::FileOpened(f) => {
                    self.counters.kernel_open.inc();
                    self.file_opened(f)?;
                }
                KernelEvent::FileDirty { dev, ino } => {
                    self.counters.kernel_dirty.inc();
                    if let Some(&id) = self.identities.get(&FileIdentity { dev, ino }) {
                        self.mark_dirty(id);
                    }
                }
                KernelEvent::Container(_) | KernelEvent::Lost { .. } => {}
            }
        }
        if reconcile {
            self.counters.reconcile.inc();
            tracing::warn!("kernel events were lost; rescanning all watched directories");
            self.rescan()?;
        }
        self.flush_dirty()
    }

    /// A file in a watched directory was opened for writing.
    fn file_opened(&mut self, f: FileOpened) -> Result<(), DiscoveryError> {
        let Some(dir) = self.dir_keys.get(&f.dir) else {
            return Ok(());
        };
        let path = dir.join(&f.name);
        let identity = FileIdentity {
            dev: f.dev,
            ino: f.ino,
        };
        if let Some(&id) = self.identities.get(&identity) {
            self.mark_dirty(id);
            return Ok(());
        }
        if self
            .recently_gone
            .get(&identity)
            .is_some_and(|&(_, opened_ns)| f.time_ns <= opened_ns)
        {
            return Ok(());
        }
        let Some(source) = self.select(&path) else {
            return Ok(());
        };
        let via = PathBuf::from(format!("/proc/{}/fd/{}", f.pid, f.fd));
        // Already unlinked (or replaced) before we got here: only the writer's descriptor
        // leads to it. It is read to its current end and closed, since no later event will
        // name it (following its later writes needs the kernel write hook).
        let linked =
            std::fs::symlink_metadata(&path).is_ok_and(|m| FileIdentity::of(&m) == identity);
        let via = Some(Via {
            path: &via,
            identity,
            linked,
        });
        self.open_via(&path, via, source, false, false)
    }

    /// Reads and handles every queued event, then resolves moves and wakes readers.
    fn drain_events(&mut self, buffer: &mut [u8]) -> Result<(), DiscoveryError> {
        loop {
            let events: Vec<(WatchDescriptor, EventMask, u32, Option<PathBuf>)> =
                match self.inotify.read_events(buffer) {
                    Ok(events) => events
                        .map(|e| {
                            (
                                e.wd,
                                e.mask,
                                e.cookie,
                                e.name.map(|n: &OsStr| PathBuf::from(n)),
                            )
                        })
                        .collect(),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(source) => return Err(DiscoveryError::Events { source }),
                };
            for (wd, mask, cookie, name) in events {
                self.event(wd, mask, cookie, name.as_deref())?;
            }
        }
        self.unopened_moves.clear();
        if std::mem::take(&mut self.runtime_changed) {
            self.sync_declarations(false)?;
        }
        for id in std::mem::take(&mut self.maybe_gone) {
            let relinked = self.tracked.get(&id).is_some_and(|t| !t.paths.is_empty());
            if !relinked {
                self.gone(id)?;
            }
        }
        self.flush_dirty()
    }

    fn event(
        &mut self,
        wd: WatchDescriptor,
        mask: EventMask,
        cookie: u32,
        name: Option<&Path>,
    ) -> Result<(), DiscoveryError> {
        if mask.contains(EventMask::Q_OVERFLOW) {
            self.counters.overflow.inc();
            tracing::warn!("inotify queue overflowed; rescanning all watched directories");
            self.rescan()?;
            return Ok(());
        }
        if self.runtime_dirs.contains_key(&wd) {
            if mask.contains(EventMask::IGNORED)
                && let Some(dir) = self.runtime_dirs.remove(&wd)
            {
                self.runtime_watched.remove(&dir);
            }
            self.runtime_changed = true;
            return Ok(());
        }
        if mask.contains(EventMask::IGNORED) {
            if let Some(dir) = self.dirs.remove(&wd) {
                self.watched.remove(&dir);
                self.forget_dir_key(&dir);
            }
            return Ok(());
        }
        let Some(dir) = self.dirs.get(&wd).cloned() else {
            return Ok(());
        };
        let Some(name) = name else {
            // DELETE_SELF / MOVE_SELF of a watched directory: its files report their own
            // deletion or move; forget the watch (MOVE_SELF keeps the watch alive).
            if mask.contains(EventMask::MOVE_SELF) {
                self.unwatch_tree(&dir);
            }
            return Ok(());
        };
        let path = dir.join(name);
        if mask.contains(EventMask::ISDIR) {
            if mask.intersects(EventMask::CREATE | EventMask::MOVED_TO) {
                self.counters.create.inc();
                self.scan_dir(&path, false)?;
            } else if mask.contains(EventMask::MOVED_FROM) {
                self.counters.moved.inc();
                self.unwatch_tree(&path);
                let under: Vec<(PathBuf, SourceId)> = self
                    .files
                    .iter()
                    .filter(|(p, _)| p.starts_with(&path))
                    .map(|(p, id)| (p.clone(), *id))
                    .collect();
                for (p, id) in under {
                    self.unlink(&p, id);
                    self.maybe_gone.push(id);
                }
            }
            return Ok(());
        }
        if mask.intersects(EventMask::MODIFY | EventMask::CLOSE_WRITE) {
            if mask.contains(EventMask::MODIFY) {
                self.counters.modify.inc();
            } else {
                self.counters.close_write.inc();
            }
            match self.files.get(&path) {
                Some(&id) => self.mark_dirty(id),
                None => self.consider(&path, false)?,
            }
        } else if mask.contains(EventMask::CREATE) {
            self.counters.create.inc();
            self.consider(&path, false)?;
        } else if mask.contains(EventMask::MOVED_TO) {
            self.counters.moved.inc();
            let from = self.unopened_moves.remove(&cookie);
            self.moved_in(&path, from)?;
        } else if mask.contains(EventMask::MOVED_FROM) {
            self.counters.moved.inc();
            // Remembered until the `MOVED_TO` half: if the file that arrives there is not
            // known — created, written and renamed within one batch of events, so its
            // creation found the path empty or holding its successor — it is read under its
            // new name for the source its old name matched.
            if let Some(source) = self.select(&path) {
                self.unopened_moves.insert(cookie, source);
            }
            self.filtered.remove(&path);
            if let Some(id) = self.files.get(&path).copied() {
                self.unlink(&path, id);
                self.maybe_gone.push(id);
            }
        } else if mask.contains(EventMask::DELETE) {
            self.counters.delete.inc();
            self.filtered.remove(&path);
            if let Some(id) = self.files.get(&path).copied() {
                self.unlink(&path, id);
                if self.tracked.get(&id).is_some_and(|t| t.paths.is_empty()) {
                    self.gone(id)?;
                }
            }
        }
        Ok(())
    }

    /// A file appeared by rename: if it is a file we know (rotation), it keeps its identity;
    /// otherwise it is a new file.
    fn moved_in(
        &mut self,
        path: &Path,
        from: Option<Arc<SourceConfig>>,
    ) -> Result<(), DiscoveryError> {
        if let Ok(meta) = std::fs::metadata(path) {
            let identity = FileIdentity::of(&meta);
            if let Some(&id) = self.identities.get(&identity) {
                self.relink(id, path);
                return Ok(());
            }
        }
        match from {
            Some(source) => self.open(path, source, false, false),
            None => self.consider(path, false),
        }
    }

    /// Scans every source root (or, for a root that does not exist yet, its nearest existing
    /// ancestor, so the root is seen when it is created).
    fn scan_roots(&mut self, startup: bool) -> Result<(), DiscoveryError> {
        let sources = self.sources.clone();
        self.scan_roots_of(&sources, startup)
    }

    /// [`scan_roots`](Self::scan_roots) for `sources` only. The roots of a source declared
    /// by a container are scanned only within the container's root.
    fn scan_roots_of(
        &mut self,
        sources: &[Arc<SourceConfig>],
        startup: bool,
    ) -> Result<(), DiscoveryError> {
        let roots: Vec<(PathBuf, Option<PathBuf>)> = sources
            .iter()
            .flat_map(|s| {
                let within = s.origin.as_ref().and_then(|o| o.root.clone());
                s.paths
                    .iter()
                    .map(move |p| (p.root.clone(), within.clone()))
            })
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        for (root, within) in roots {
            let mut start = root.as_path();
            while !start.is_dir() {
                match start.parent() {
                    Some(parent) => start = parent,
                    None => break,
                }
            }
            if within.as_ref().is_some_and(|w| !start.starts_with(w)) {
                // The container is gone already.
                continue;
            }
            let start = start.to_path_buf();
            self.scan_dir(&start, startup)?;
        }
        Ok(())
    }

    /// Watches the runtime's bundle directories (to depth 2: runtime namespace, bundle) so
    /// that a container's start and removal are seen.
    fn watch_runtime(&mut self) {
        let mask = WatchMask::CREATE
            | WatchMask::DELETE
            | WatchMask::MOVED_TO
            | WatchMask::MOVED_FROM
            | WatchMask::CLOSE_WRITE
            | WatchMask::ONLYDIR;
        let mut stack: Vec<(PathBuf, usize)> = self
            .resolver
            .bundles()
            .dirs()
            .iter()
            .map(|d| (d.clone(), 0))
            .collect();
        while let Some((dir, depth)) = stack.pop() {
            if !self.runtime_watched.contains(&dir) {
                match self.inotify.watches().add(&dir, mask) {
                    Ok(wd) => {
                        self.runtime_dirs.insert(wd, dir.clone());
                        self.runtime_watched.insert(dir.clone());
                    }
                    // Not there (that runtime is not used here) or gone meanwhile.
                    Err(_) => continue,
                }
            }
            if depth < 2
                && let Ok(entries) = std::fs::read_dir(&dir)
            {
                for entry in entries.flatten() {
                    if entry.file_type().is_ok_and(|t| t.is_dir()) {
                        stack.push((entry.path(), depth + 1));
                    }
                }
            }
        }
    }

    /// Brings the declared sources up to date with the containers present: a new container's
    /// declarations become sources (their roots scanned now), a removed container's sources
    /// are dropped (files already open are still read to their end).
    fn sync_declarations(&mut self, startup: bool) -> Result<(), DiscoveryError> {
        if self.declaring.is_empty() {
            return Ok(());
        }
        self.watch_runtime();
        self.resolver.bundles().scan();
        let node = self.resolver.node().map(str::to_string);
        let present: Vec<Arc<Bundle>> = self.resolver.bundles().present().cloned().collect();
        let mut present_ids = HashSet::new();
        let mut added = Vec::new();
        for bundle in present {
            let Some(id) = bundle.container.id.clone() else {
                continue;
            };
            present_ids.insert(id.clone());
            if self.declared.contains_key(&id) {
                continue;
            }
            let container = &bundle.container;
            if !self
                .declaring
                .iter()
                .any(|base| base.containers.admits(Some(container)))
            {
                self.declared.insert(id, Vec::new());
                continue;
            }
            let (declarations, mut problems) = declare::parse(&container.env);
            let pid = bundle.pid();
            if pid.is_none()
                && declarations
                    .iter()
                    .any(|d| matches!(d.target, declare::Target::Files(_)))
            {
                // Created, not started: its init.pid brings it back here.
                continue;
            }
            let meta = Arc::new(FileMeta {
                container: Some(container.clone()),
                node: node.clone(),
            });
            let mut sources = Vec::new();
            for base in &self.declaring {
                if !base.containers.admits(Some(container)) {
                    continue;
                }
                for declaration in &declarations {
                    match declare::source(base, declaration, &bundle, pid, Arc::clone(&meta)) {
                        Ok(source) => sources.push(Arc::new(source)),
                        Err(e) => problems.push(e),
                    }
                }
            }
            for problem in &problems {
                self.declarations_refused.inc();
                tracing::warn!(container = %container.label(), id = %id, %problem, "declared log not collected");
            }
            if !sources.is_empty() {
                let names: Vec<String> = sources
                    .iter()
                    .filter_map(|s| s.origin.as_ref())
                    .map(|o| o.name.clone())
                    .collect();
                tracing::info!(container = %container.label(), id = %id, declarations = ?names, "collecting the logs a container declares");
            }
            added.extend(sources.iter().cloned());
            self.declared.insert(id, sources);
        }
        let before = self.declared.len();
        self.declared.retain(|id, _| present_ids.contains(id));
        if added.is_empty() && before == self.declared.len() {
            return Ok(());
        }
        self.sources = self
            .declared
            .values()
            .flatten()
            .cloned()
            .chain(self.configured.iter().cloned())
            .collect();
        self.declarations_active
            .set(self.declared.values().map(|v| v.len() as i64).sum());
        self.filtered.clear();
        self.scan_roots_of(&added, startup)
    }

    /// Whether `dir` must be watched: files of a source can be in it or below it, or it is on
    /// the way to a root.
    fn interesting(&self, dir: &Path) -> bool {
        self.sources.iter().any(|s| {
            s.may_contain(dir)
                || s.paths
                    .iter()
                    .any(|p| p.root.starts_with(dir) && p.root != dir)
        })
    }

    /// Watches `dir` and the interesting directories below it, and considers their files.
    fn scan_dir(&mut self, dir: &Path, startup: bool) -> Result<(), DiscoveryError> {
        let mut stack = vec![dir.to_path_buf()];
        while let Some(dir) = stack.pop() {
            if !self.interesting(&dir) {
                continue;
            }
            // Watch before listing: a file created between the two is seen either way.
            self.watch(&dir);
            let entries = match std::fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) => {
                    if e.kind() != io::ErrorKind::NotFound {
                        tracing::warn!(dir = %dir.display(), error = %e, "cannot list directory");
                    }
                    continue;
                }
            };
            for entry in entries.flatten() {
                let path = entry.path();
                match entry.file_type() {
                    Ok(t) if t.is_dir() => stack.push(path),
                    Ok(t) if t.is_file() || t.is_symlink() => {
                        if self.files.contains_key(&path) {
                            if let Some(&id) = self.files.get(&path) {
                                self.mark_dirty(id);
                            }
                        } else {
                            self.consider(&path, startup)?;
                        }
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    fn watch(&mut self, dir: &Path) {
        if self.watched.contains_key(dir) {
            return;
        }
        let mask = if self.kernel.as_ref().is_some_and(|k| k.hook_wakes) {
            DIR_MASK.difference(WatchMask::MODIFY)
        } else {
            DIR_MASK
        };
        match self.inotify.watches().add(dir, mask) {
            Ok(wd) => {
                self.dirs.insert(wd.clone(), dir.to_path_buf());
                self.watched.insert(dir.to_path_buf(), wd);
                if let Some(k) = &mut self.kernel {
                    match k.dirs.insert(dir) {
                        Ok(key) => {
                            self.dir_keys.insert(key, dir.to_path_buf());
                            self.key_of_dir.insert(dir.to_path_buf(), key);
                        }
                        Err(e) => {
                            tracing::warn!(dir = %dir.display(), error = %e, "cannot register directory with the kernel; its new files are found by inotify only")
                        }
                    }
                }
            }
            Err(e) => {
                if self.watch_errors_logged < 20 {
                    self.watch_errors_logged += 1;
                    let hint = if e.raw_os_error() == Some(libc_enospc()) {
                        " (raise fs.inotify.max_user_watches)"
                    } else {
                        ""
                    };
                    tracing::error!(dir = %dir.display(), error = %e, "cannot watch directory{hint}; its files are found only on rescans");
                }
            }
        }
    }

    fn forget_dir_key(&mut self, dir: &Path) {
        if let Some(key) = self.key_of_dir.remove(dir) {
            self.dir_keys.remove(&key);
            if let Some(k) = &mut self.kernel {
                k.dirs.remove(&key);
            }
        }
    }

    /// Stops watching `dir` and everything below it.
    fn unwatch_tree(&mut self, dir: &Path) {
        let below: Vec<PathBuf> = self
            .watched
            .keys()
            .filter(|p| p.starts_with(dir))
            .cloned()
            .collect();
        for path in below {
            if let Some(wd) = self.watched.remove(&path) {
                self.dirs.remove(&wd);
                // The kernel may have dropped the watch already (directory deleted).
                let _ = self.inotify.watches().remove(wd);
            }
            self.forget_dir_key(&path);
        }
    }

    /// The source of a file that matches no glob but has a checkpoint: it was rotated to its
    /// current name while ringtail was not running.
    fn rotated_source(&self, path: &Path) -> Option<Arc<SourceConfig>> {
        let meta = std::fs::metadata(path).ok()?;
        let name = self.tracker.carried_source(FileIdentity::of(&meta))?;
        self.sources.iter().find(|s| s.name == name).cloned()
    }

    /// The source of a file that matches no glob and has no checkpoint, but is a rotation of
    /// a name that matches (`<name>.<suffix>`, not compressed) and changed after the last run
    /// last saved its checkpoints: it was written and rotated away while ringtail was down
    /// (a crash and a restart take longer than a busy log takes to rotate). It is read whole.
    fn rotated_while_down(&mut self, path: &Path) -> Option<Arc<SourceConfig>> {
        let saved = self.tracker.previous_save()?;
        let name = path.file_name()?.to_str()?;
        const COMPRESSED: [&str; 7] = [".gz", ".zst", ".bz2", ".xz", ".lz4", ".zip", ".Z"];
        if COMPRESSED.iter().any(|c| name.ends_with(c)) {
            return None;
        }
        let dir = path.parent()?;
        let base = name
            .match_indices('.')
            .rev()
            .map(|(i, _)| dir.join(&name[..i]))
            .find(|base| self.sources.iter().any(|s| s.matches(base)))?;
        let source = self.select(&base)?;
        let meta = std::fs::symlink_metadata(path).ok()?;
        let changed = meta.modified().ok()?;
        // No slack: a copy logrotate's copytruncate made while ringtail ran holds lines read
        // already, and is older than the last save of a clean stop.
        (meta.is_file() && changed >= saved).then_some(source)
    }

    /// Whether opening the (empty) container log at `path` waits for its container's bundle.
    /// The runtime creates a container's log file a moment before the container's bundle, so
    /// a file opened at once would miss the container id and image. An empty file loses
    /// nothing by waiting: its first write, or at the latest [`META_WAIT`], opens it.
    fn await_bundle(&mut self, path: &Path) -> bool {
        if !self.resolver.runtime_present() || self.resolver.found_bundle(path) {
            return false;
        }
        match self.deferred.get(path) {
            Some(&deadline) if std::time::Instant::now() >= deadline => {
                self.deferred.remove(path);
                false
            }
            Some(_) => true,
            None => {
                self.deferred
                    .insert(path.to_path_buf(), std::time::Instant::now() + META_WAIT);
                true
            }
        }
    }

    /// When the earliest deferred file is due.
    fn next_deferred(&self) -> Option<std::time::Instant> {
        self.deferred.values().min().copied()
    }

    /// Opens the deferred files that are due (their bundle never came).
    fn retry_deferred(&mut self) -> Result<(), DiscoveryError> {
        let now = std::time::Instant::now();
        let due: Vec<PathBuf> = self
            .deferred
            .iter()
            .filter(|(_, deadline)| **deadline <= now)
            .map(|(path, _)| path.clone())
            .collect();
        for path in due {
            if !self.files.contains_key(&path) {
                self.consider(&path, false)?;
            }
            self.deferred.remove(&path);
        }
        self.flush_dirty()
    }

    /// The first source whose globs match `path` and whose container filter admits the
    /// file's container. A path every matching source's filter rejects is remembered (until
    /// it is deleted or renamed), logged at debug level and counted once.
    fn select(&mut self, path: &Path) -> Option<Arc<SourceConfig>> {
        if self.filtered.contains(path) {
            return None;
        }
        let mut rejected_by = None;
        for source in &self.sources {
            if !source.matches(path) {
                continue;
            }
            if source.containers.is_empty() {
                return Some(Arc::clone(source));
            }
            let meta = self.resolver.resolve(path);
            if source.containers.admits(meta.container.as_ref()) {
                return Some(Arc::clone(source));
            }
            rejected_by.get_or_insert(source);
        }
        let source = rejected_by?;
        tracing::debug!(file = %path.display(), source = %source.name, "not read: its container is filtered out");
        self.files_filtered
            .get_or_create(&Metrics::source(&source.name))
            .inc();
        self.filtered.insert(path.to_path_buf());
        None
    }

    /// Opens `path` if it belongs to a source and is not known yet.
    fn consider(&mut self, path: &Path, startup: bool) -> Result<(), DiscoveryError> {
        let (source, only_resume) = match self.select(path) {
            Some(source) => (source, false),
            None if startup => {
                let carried = self
                    .tracker
                    .has_carried()
                    .then(|| self.rotated_source(path))
                    .flatten();
                match carried {
                    Some(source) => (source, true),
                    None => match self.rotated_while_down(path) {
                        Some(source) => {
                            tracing::info!(file = %path.display(), "rotated while ringtail was down and never read: reading it whole");
                            (source, false)
                        }
                        None => return Ok(()),
                    },
                }
            }
            None => return Ok(()),
        };
        self.open(path, source, startup, only_resume)
    }

    /// Opens `path` for `source` unless it is known. `only_resume`: only if a checkpoint of
    /// the last run matches it.
    fn open(
        &mut self,
        path: &Path,
        source: Arc<SourceConfig>,
        startup: bool,
        only_resume: bool,
    ) -> Result<(), DiscoveryError> {
        self.open_via(path, None, source, startup, only_resume)
    }

    /// Like [`open`](Self::open), trying first `via` (a writer's `/proc/<pid>/fd/<fd>`),
    /// used when it is still the file with the expected identity.
    fn open_via(
        &mut self,
        path: &Path,
        via: Option<Via<'_>>,
        source: Arc<SourceConfig>,
        startup: bool,
        only_resume: bool,
    ) -> Result<(), DiscoveryError> {
        // O_NONBLOCK: opening a FIFO that matches a glob must not hang discovery.
        let open = |p: &Path| {
            OpenOptions::new()
                .read(true)
                .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
                .open(p)
        };
        let through_writer = via.as_ref().and_then(|via| {
            let file = open(via.path).ok()?;
            let meta = file.metadata().ok()?;
            (FileIdentity::of(&meta) == via.identity).then_some(file)
        });
        let linked = via.as_ref().is_none_or(|v| v.linked);
        let opened = match through_writer {
            Some(file) => Ok(file),
            None if !linked => return Ok(()),
            None => match source.origin.as_ref().and_then(|o| o.root.as_ref()) {
                Some(root) => open_in_root(root, path),
                None => match self.contained(path, &source) {
                    Some(target) => open_no_symlinks(&target),
                    None => return Ok(()),
                },
            },
        };
        let file = match opened {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "cannot open file");
                return Ok(());
            }
        };
        let meta = match file.metadata() {
            Ok(meta) if meta.is_file() => meta,
            Ok(_) => return Ok(()),
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "cannot stat file");
                return Ok(());
            }
        };
        let identity = FileIdentity::of(&meta);
        if let Some(&id) = self.identities.get(&identity) {
            self.relink(id, path);
            return Ok(());
        }
        if linked
            && !startup
            && meta.len() == 0
            && source.origin.is_none()
            && self.await_bundle(path)
        {
            return Ok(());
        }
        let mut head = [0u8; FINGERPRINT_BYTES];
        let head = match read_head(&file, &mut head) {
            Ok(n) => &head[..n],
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "cannot read file");
                return Ok(());
            }
        };
        // `read_from: end` skips what is there on a first start; after a run that saved
        // checkpoints, a file without one appeared while ringtail was down: all of it is new.
        let fresh_offset = if startup
            && source.read_from == ReadFrom::End
            && self.tracker.previous_save().is_none()
        {
            meta.len()
        } else {
            0
        };
        let offset = match self.tracker.resume(identity, head, meta.len()) {
            Resume::At { offset } => {
                tracing::debug!(file = %path.display(), offset, "resuming from checkpoint");
                self.resumed += 1;
                offset
            }
            // A file outside the globs is read only to finish what its checkpoint began.
            _ if only_resume => return Ok(()),
            Resume::New => fresh_offset,
            Resume::Recycled { previous } => {
                tracing::info!(file = %path.display(), checkpoint_was_for = %previous.display(), "inode reused by another file (first bytes differ); reading it as a new file");
                fresh_offset
            }
            Resume::Truncated { offset, size } => {
                tracing::warn!(file = %path.display(), checkpoint = offset, size, "file was truncated while ringtail was not running; reading it again from the start");
                self.truncations
                    .get_or_create(&Metrics::source(&source.name))
                    .inc();
                0
            }
        };
        let fingerprint = Fingerprint::of(head);
        let id = SourceId(self.next_id);
        self.next_id += 1;
        let reader = (id.0 % self.readers.len() as u64) as usize;
        let mut paths = if linked {
            vec![path.to_path_buf()]
        } else {
            Vec::new()
        };
        // A symlink's writes are reported in its target's directory: watch that too (not
        // for a container's own files: their links resolve inside the container's root,
        // which the host's path resolution would not do).
        if linked
            && source.origin.is_none()
            && std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
            && let Ok(target) = std::fs::canonicalize(path)
        {
            if let Some(parent) = target.parent() {
                self.watch(parent);
            }
            self.files.insert(target.clone(), id);
            paths.push(target);
        }
        if linked {
            self.files.insert(path.to_path_buf(), id);
        }
        self.identities.insert(identity, id);
        self.tracked.insert(
            id,
            Tracked {
                paths,
                opened_ns: crate::ebpf::monotonic_ns(),
                identity,
                reader,
            },
        );
        self.tracker
            .open(id, identity, fingerprint, path, &source.name, offset);
        let meta = match &source.origin {
            Some(origin) => Arc::clone(&origin.meta),
            None => self.resolver.resolve(path),
        };
        self.resolver.forget();
        let ctx = Arc::new(FileCtx {
            id,
            path: path.to_path_buf(),
            identity,
            source,
            meta,
        });
        if !self.readers[reader].send(Control::Open {
            ctx,
            file,
            offset,
            fingerprint_len: fingerprint.len,
        }) {
            return Err(DiscoveryError::ReadersGone);
        }
        if !linked {
            tracing::debug!(file = %path.display(), "opened through its writer's descriptor after it was unlinked");
            self.gone(id)?;
        }
        Ok(())
    }

    /// The path to open for `path`: itself, or for a symlink its canonical target — if that
    /// lies within [`symlink_roots`]. A symlink leading elsewhere (a container's `0.log ->
    /// /etc/shadow`) is refused, logged once and counted.
    fn contained(&mut self, path: &Path, source: &SourceConfig) -> Option<PathBuf> {
        let target = match std::fs::canonicalize(path) {
            Ok(target) => target,
            // Gone meanwhile; opening reports it as usual.
            Err(_) => return Some(path.to_path_buf()),
        };
        let is_link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
        let parent_moved = path.parent().and_then(|p| std::fs::canonicalize(p).ok())
            != target.parent().map(Path::to_path_buf);
        if !is_link && !parent_moved {
            return Some(target);
        }
        if self
            .symlink_roots
            .iter()
            .any(|root| target.starts_with(root))
        {
            return Some(target);
        }
        self.symlinks_refused
            .get_or_create(&Metrics::source(&source.name))
            .inc();
        if self.refused_links.insert(path.to_path_buf()) {
            tracing::warn!(
                file = %path.display(),
                target = %target.display(),
                allowed = ?self.symlink_roots,
                "refusing a symlink that leads outside the log directories"
            );
        }
        None
    }

    /// A known file seen at `path`: a rename keeps it; a second name for a file still present
    /// under its first name (a symlink or hard link) is ignored so the file is read once.
    fn relink(&mut self, id: SourceId, path: &Path) {
        let Some(tracked) = self.tracked.get_mut(&id) else {
            return;
        };
        if tracked.paths.iter().any(|p| p == path) {
            self.mark_dirty(id);
            return;
        }
        if !tracked.paths.is_empty() {
            return;
        }
        tracked.paths.push(path.to_path_buf());
        let reader = tracked.reader;
        self.files.insert(path.to_path_buf(), id);
        self.tracker.renamed(id, path);
        self.readers[reader].send(Control::Renamed {
            id,
            path: path.to_path_buf(),
        });
        self.mark_dirty(id);
    }

    fn unlink(&mut self, path: &Path, id: SourceId) {
        self.files.remove(path);
        if let Some(t) = self.tracked.get_mut(&id) {
            t.paths.retain(|p| p != path);
        }
    }

    fn gone(&mut self, id: SourceId) -> Result<(), DiscoveryError> {
        let Some(tracked) = self.tracked.remove(&id) else {
            return Ok(());
        };
        for p in &tracked.paths {
            if self.files.get(p) == Some(&id) {
                self.files.remove(p);
            }
        }
        self.identities.remove(&tracked.identity);
        if self.kernel.is_some() {
            let now = std::time::Instant::now();
            self.recently_gone
                .retain(|_, (at, _)| now.duration_since(*at) < RECENTLY_GONE);
            self.recently_gone
                .insert(tracked.identity, (now, tracked.opened_ns));
        }
        if !self.readers[tracked.reader].send(Control::Gone { id }) {
            return Err(DiscoveryError::ReadersGone);
        }
        Ok(())
    }

    fn mark_dirty(&mut self, id: SourceId) {
        if let Some(t) = self.tracked.get(&id) {
            self.dirty[t.reader].push(id);
        }
    }

    fn flush_dirty(&mut self) -> Result<(), DiscoveryError> {
        for (reader, ids) in self.dirty.iter_mut().enumerate() {
            if !ids.is_empty() {
                self.readers[reader].mark_dirty(ids.drain(..));
            }
        }
        Ok(())
    }
}

/// A second way to a file: the writer's descriptor, as `/proc/<pid>/fd/<fd>`.
struct Via<'a> {
    path: &'a Path,
    /// The file the kernel reported; `path` is used only while it still leads there.
    identity: FileIdentity,
    /// Whether the file's path still names it.
    linked: bool,
}

/// The first bytes of `file`, for its fingerprint.
fn read_head(file: &std::fs::File, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match file.read_at(buf, 0) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

fn libc_enospc() -> i32 {
    rustix::io::Errno::NOSPC.raw_os_error()
}

/// Directories outside every glob root that a symlink matching a glob may still lead to: the
/// kubelet's pod logs and Docker's container logs (`/var/log/containers/*.log` are symlinks
/// into the first, or the second with Docker).
const RUNTIME_LOG_DIRS: [&str; 2] = ["/var/log/pods", "/var/lib/docker/containers"];

/// Where a symlink that matches a glob may lead: the sources' glob roots and
/// [`RUNTIME_LOG_DIRS`], canonical (roots that do not exist yet keep their written form).
fn symlink_roots(sources: &[Arc<SourceConfig>]) -> Vec<PathBuf> {
    let mut roots: Vec<PathBuf> = sources
        .iter()
        .flat_map(|s| s.paths.iter().map(|p| p.root.clone()))
        .chain(RUNTIME_LOG_DIRS.iter().map(PathBuf::from))
        .map(|root| std::fs::canonicalize(&root).unwrap_or(root))
        .collect();
    roots.sort();
    roots.dedup();
    roots
}

/// Opens `path`, which lies under a container's `root` (`/proc/<pid>/root`), resolving every
/// symlink on the way as the container would — inside its root, never outside it.
fn open_in_root(root: &Path, path: &Path) -> io::Result<std::fs::File> {
    use rustix::fs::{Mode, OFlags, ResolveFlags};
    let inner = path.strip_prefix(root).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "the path is outside the container's root",
        )
    })?;
    let dir = rustix::fs::open(
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let fd = rustix::fs::openat2(
        &dir,
        inner,
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT,
    )?;
    Ok(std::fs::File::from(fd))
}

/// Opens `path` (canonical, checked) refusing any symlink on the way, so a link swapped in
/// after the check is not followed.
fn open_no_symlinks(path: &Path) -> io::Result<std::fs::File> {
    use rustix::fs::{Mode, OFlags, ResolveFlags};
    let fd = rustix::fs::openat2(
        rustix::fs::CWD,
        path,
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::NO_SYMLINKS,
    )?;
    Ok(std::fs::File::from(fd))
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::time::Duration;

    use super::*;
    use crate::config::{ExcludePattern, Format, PathPattern};
    use crate::reader::{self, ReaderInbox};

    const WAIT: Duration = Duration::from_secs(5);

    fn source(globs: &[String], exclude: &[&str]) -> Arc<SourceConfig> {
        Arc::new(SourceConfig {
            paths: globs.iter().map(|g| PathPattern::new(g).unwrap()).collect(),
            exclude: exclude
                .iter()
                .map(|g| ExcludePattern::new(g).unwrap())
                .collect(),
            max_line_bytes: 1024,
            ..SourceConfig::new(0, "test", Format::Raw)
        })
    }

    struct Running {
        inbox: ReaderInbox,
        stop: Option<OwnedFd>,
        thread: Option<std::thread::JoinHandle<Result<(), DiscoveryError>>>,
    }

    impl Running {
        /// Discovery for `source` (its start-up scan done), not yet running.
        fn create(source: Arc<SourceConfig>) -> (Discovery, ReaderInbox, OwnedFd) {
            let (handle, inbox) = reader::channel();
            let (stop_read, stop_write) = rustix::pipe::pipe().unwrap();
            let metrics = Arc::new(Metrics::new());
            let tracker = Arc::new(AckTracker::new(Arc::clone(&metrics)));
            let discovery = Discovery::new(
                vec![source],
                vec![handle],
                stop_read,
                &metrics,
                tracker,
                None,
                &KubernetesConfig::default(),
            )
            .unwrap();
            (discovery, inbox, stop_write)
        }

        fn start(source: Arc<SourceConfig>) -> (Running, usize) {
            let (discovery, inbox, stop_write) = Self::create(source);
            let files = discovery.files();
            (Self::run(discovery, inbox, stop_write), files)
        }

        fn run(discovery: Discovery, inbox: ReaderInbox, stop: OwnedFd) -> Running {
            Running {
                inbox,
                stop: Some(stop),
                thread: Some(std::thread::spawn(move || discovery.run())),
            }
        }

        fn next(&self) -> Control {
            self.inbox
                .next_control(WAIT)
                .expect("a control message within 5 s")
        }

        fn quiet(&self) -> bool {
            self.inbox
                .next_control(Duration::from_millis(300))
                .is_none()
        }

        fn stop(mut self) {
            drop(self.stop.take());
            let result = self.thread.take().unwrap().join().unwrap();
            assert!(result.is_ok(), "{result:?}");
        }
    }

    fn opened(control: Control) -> (SourceId, PathBuf) {
        match control {
            Control::Open { ctx, offset, .. } => {
                assert_eq!(offset, 0);
                (ctx.id, ctx.path.clone())
            }
            other => panic!("expected Open, got {other:?}"),
        }
    }

    #[test]
    fn existing_new_renamed_and_deleted_files() {
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("logs");
        std::fs::create_dir_all(&logs).unwrap();
        std::fs::write(logs.join("a.log"), b"x\n").unwrap();
        let glob = format!("{}/**/*.log", logs.display());
        let (d, files) = Running::start(source(&[glob], &["*.gz"]));
        assert_eq!(files, 1);
        let (_, path) = opened(d.next());
        assert_eq!(path, logs.join("a.log"));

        // A new directory and a file in it.
        std::fs::create_dir_all(logs.join("pod/app")).unwrap();
        std::fs::write(logs.join("pod/app/0.log"), b"y\n").unwrap();
        let (id, path) = opened(d.next());
        assert_eq!(path, logs.join("pod/app/0.log"));

        // Rotation by rename keeps the file, although the new name does not match the glob.
        std::fs::rename(
            logs.join("pod/app/0.log"),
            logs.join("pod/app/0.log.20240101"),
        )
        .unwrap();
        match d.next() {
            Control::Renamed { id: renamed, path } => {
                assert_eq!(renamed, id);
                assert_eq!(path, logs.join("pod/app/0.log.20240101"));
            }
            other => panic!("expected Renamed, got {other:?}"),
        }
        std::fs::OpenOptions::new()
            .append(true)
            .open(logs.join("pod/app/0.log.20240101"))
            .unwrap()
            .write_all(b"more\n")
            .unwrap();
        let deadline = std::time::Instant::now() + WAIT;
        while !d.inbox.dirty_ids().contains(&id) {
            assert!(
                std::time::Instant::now() < deadline,
                "a write to the rotated file marks it dirty"
            );
            std::thread::sleep(Duration::from_millis(10));
        }

        // Deleted: gone (the reader drains it).
        std::fs::remove_file(logs.join("pod/app/0.log.20240101")).unwrap();
        assert!(matches!(d.next(), Control::Gone { id: gone } if gone == id));

        // Not matching, or excluded: nothing.
        std::fs::write(logs.join("notes.txt"), b"z\n").unwrap();
        std::fs::write(logs.join("old.log.gz"), b"z\n").unwrap();
        assert!(d.quiet());
        d.stop();
    }

    #[test]
    fn a_root_created_after_start_is_watched() {
        let dir = tempfile::tempdir().unwrap();
        let glob = format!("{}/later/deep/*.log", dir.path().display());
        let (d, files) = Running::start(source(&[glob], &[]));
        assert_eq!(files, 0);
        std::fs::create_dir_all(dir.path().join("later/deep")).unwrap();
        std::fs::write(dir.path().join("later/deep/x.log"), b"x\n").unwrap();
        let (_, path) = opened(d.next());
        assert_eq!(path, dir.path().join("later/deep/x.log"));
        // Deeper than the glob allows: not watched, not read.
        std::fs::create_dir_all(dir.path().join("later/deep/deeper")).unwrap();
        std::fs::write(dir.path().join("later/deep/deeper/y.log"), b"y\n").unwrap();
        assert!(d.quiet());
        d.stop();
    }

    #[test]
    fn two_files_with_the_same_content_are_two_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.log"), b"same line\n").unwrap();
        std::fs::write(dir.path().join("b.log"), b"same line\n").unwrap();
        let glob = format!("{}/*.log", dir.path().display());
        let (d, files) = Running::start(source(&[glob], &[]));
        assert_eq!(files, 2, "identity is the inode, not the content");
        let mut paths = vec![opened(d.next()).1, opened(d.next()).1];
        paths.sort();
        assert_eq!(
            paths,
            vec![dir.path().join("a.log"), dir.path().join("b.log")]
        );
        d.stop();
    }

    #[test]
    fn a_file_created_and_renamed_before_discovery_looked_is_read_under_its_new_name() {
        let dir = tempfile::tempdir().unwrap();
        let glob = format!("{}/*.log", dir.path().display());
        let (discovery, inbox, stop) = Running::create(source(&[glob], &[]));
        // All of this happens before discovery reads a single event.
        std::fs::write(dir.path().join("0.log"), b"first file\n").unwrap();
        std::fs::rename(dir.path().join("0.log"), dir.path().join("0.log.1")).unwrap();
        std::fs::write(dir.path().join("0.log"), b"second file\n").unwrap();
        let d = Running::run(discovery, inbox, stop);
        let mut paths = Vec::new();
        while let Some(control) = d.inbox.next_control(Duration::from_millis(500)) {
            if let Control::Open { ctx, .. } = control {
                paths.push(ctx.path.clone());
            }
        }
        d.stop();
        paths.sort();
        assert_eq!(
            paths,
            vec![dir.path().join("0.log"), dir.path().join("0.log.1")],
            "both files are read"
        );
    }

    #[test]
    fn a_file_seen_through_a_symlink_is_read_once() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("real.log"), b"x\n").unwrap();
        std::os::unix::fs::symlink(dir.path().join("real.log"), dir.path().join("link.log"))
            .unwrap();
        let glob = format!("{}/*.log", dir.path().display());
        let (d, files) = Running::start(source(&[glob], &[]));
        assert_eq!(files, 1);
        opened(d.next());
        assert!(d.quiet());
        d.stop();
    }
}
