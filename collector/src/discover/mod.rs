//! Discovery: which files to read, and when they have new data — driven by inotify events
//! and, with eBPF, by the kernel's reports of files opened for writing.
//!
//! At start-up every source's glob root is scanned (and watched); after that, nothing is
//! polled: the kernel reports each change.
//!
//! - A watched directory is a glob root, a directory below one (within the glob's depth), or
//!   an ancestor of a root that does not exist yet (so the root is noticed when it appears).
//! - A created (or moved-in) file that matches a source is opened and handed to a reader
//!   ([`Control::Open`](crate::read::control::Control::Open)); a write to a known file marks it
//!   dirty.
//! - A file is known by its identity (device, inode): a rename within the watched directories
//!   — kubelet and logrotate rotation — keeps the file, its reader state and its offset, even
//!   when the new name no longer matches the glob, so lines written to a rotated file are not
//!   lost. The same file seen under a second path (a symlink) is read once.
//! - A deleted or moved-away file is gone: its reader reads it to the end, then closes it. A
//!   `MOVED_FROM` is resolved only after every queued event is read, because its `MOVED_TO`
//!   half may follow in the next read.
//! - The watermark: when a read finds inotify's queue empty (after the start-up scan, and
//!   after each batch of events), every file created before that read has been handled;
//!   the tracker saves that time with the checkpoints (not while files wait for descriptors
//!   or for their container's bundle).
//! - On an inotify queue overflow everything is rescanned and every known file marked dirty:
//!   events may be lost, data is not.
//! - With eBPF ([`kernel`]), every watched directory is also registered with the kernel, which
//!   reports files opened for writing in it with the writer's pid and fd. A new file is then
//!   opened through the writer's own descriptor (`/proc/<pid>/fd/<fd>`), which works even
//!   after the file was unlinked — a short-lived pod's log deleted before inotify's event was
//!   handled is still read. Lost kernel events (full ring buffer) trigger a rescan.
//! - Every file opened is checked against the checkpoints of the last run ([`open`]): the
//!   same file (identity and fingerprint) resumes at its acknowledged offset. At start-up, a
//!   file whose name no longer matches any glob but whose identity has a checkpoint — rotated
//!   while ringtail was down — is read from its checkpoint to its end too; one without a
//!   checkpoint whose name is a rotation of a matching name (`<name>.<suffix>`) and that
//!   was created after the last run's discovery watermark (saved with its checkpoints: until
//!   then that run had found every file created) — created and rotated away while ringtail
//!   was down or behind — is read whole; a compressed rotation (`.gz`, `.zst`) is read decoded,
//!   resuming at the offset of the file it was compressed from ([`rotated`]).
//!
//! The parts, each owning its state:
//! - [`watches`]: inotify's watches and the kernel's mirror of them;
//! - [`registry`]: the files handed to readers, by path and identity, and dirty marks;
//! - [`open`]: opening a file safely and deciding where reading starts;
//! - [`declared`]: the sources containers declare;
//! - [`kernel`]: the link to the eBPF programs.
//!
//! This module is the event loop and its decisions: which source a path belongs to, what an
//! event means. Discovery may not read file contents beyond a fingerprint, nor touch what
//! readers and workers do with a file.

pub mod declared;
pub mod kernel;
pub mod open;
pub mod registry;
mod retry;
mod rotated;
mod wait;
pub mod waiting;
pub mod watches;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use inotify::{EventMask, WatchDescriptor};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use crate::container::resolver::{KubernetesSettings, Resolver};
use crate::deliver::ack::AckTracker;
use crate::ebpf::{ContainerEvent, FileOpened, KernelEvent};
use crate::file::{FileIdentity, OwnFiles};
use crate::metrics::{KindLabel, Metrics, SourceLabel};
use crate::read::budget::Slot;
use crate::read::control::ReaderHandle;
use crate::readiness::Readiness;
use crate::source::Source;
use crate::source::index::SourceIndex;
use declared::Declarations;
use kernel::{KernelEvents, KernelLink};
use open::{Compressed, Opener, Via};
use registry::{NewFile, Registry, RegistryError};
use waiting::{Rescans, Waiting};
use watches::{Watched, Watches};

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
    /// Files can no longer be handed on (every reader has stopped).
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

/// Longest wait of an empty container log for its container's bundle.
const META_WAIT: Duration = Duration::from_millis(500);

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

impl EventCounters {
    fn new(metrics: &Metrics) -> Self {
        let kind = |kind| {
            metrics
                .discovery_events
                .get_or_create_owned(&KindLabel { kind })
        };
        Self {
            create: kind("create"),
            modify: kind("modify"),
            close_write: kind("close_write"),
            delete: kind("delete"),
            moved: kind("move"),
            overflow: kind("overflow"),
            kernel_open: kind("kernel_open"),
            kernel_dirty: kind("kernel_dirty"),
            reconcile: kind("reconcile"),
        }
    }
}

/// The discovery thread's state.
pub struct Discovery {
    watches: Watches,
    registry: Registry,
    opener: Opener,
    declarations: Declarations,
    /// Container metadata of files.
    resolver: Resolver,
    tracker: Arc<AckTracker>,
    kernel: Option<KernelEvents>,
    stop: OwnedFd,
    /// The sources files are matched against: declared ones, then the configured ones.
    sources: SourceIndex,
    /// Paths a glob matched but every matching source's container filter rejected.
    filtered: HashSet<PathBuf>,
    files_filtered: Family<SourceLabel, Counter>,
    /// Source of each `MOVED_FROM` path that matched one, by cookie, until its `MOVED_TO`.
    unopened_moves: HashMap<u32, Arc<Source>>,
    /// inotify events the last drain read (see [`wait`]).
    drained: usize,
    /// Times inotify woke discovery since the last hand-off of marks (see [`wait`]).
    round_wakes: u32,
    /// A bundle directory changed: containers may have started or gone.
    runtime_changed: bool,
    /// Compressed rotations the start-up scan found, considered after every other file
    /// (`None` once the scan is done; see [`rotated`]).
    compressed_later: Option<Vec<PathBuf>>,
    /// Empty container logs waiting for their container's bundle, with their deadline.
    deferred: HashMap<PathBuf, Instant>,
    /// The files ringtail writes: never read.
    own_files: Arc<OwnFiles>,
    own_files_refused: Family<SourceLabel, Counter>,
    /// Own files a glob matched, logged once each.
    own_logged: HashSet<PathBuf>,
    /// Files and directories that wait for a descriptor.
    waiting: Waiting,
    /// The readers were asked to make room since the last retry of what waits.
    room_asked: bool,
    /// When the directories inotify refused are rescanned.
    rescans: Rescans,
    counters: EventCounters,
    /// A file whose existence the first turn waits for (tests only, see
    /// [`hold_first_turn`](Self::hold_first_turn)).
    first_turn_gate: Option<PathBuf>,
}

/// Bytes of inotify events read at once.
const EVENT_BUFFER: usize = 64 * 1024;
/// How long discovery waits after an event for the rest of its burst before handling them,
/// when readers' wake-ups linger (`reader.linger` above zero).
const GATHER: Duration = Duration::from_millis(2);

impl std::fmt::Debug for Discovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Discovery")
            .field("dirs", &self.watches.len())
            .field("files", &self.registry.len())
            .finish_non_exhaustive()
    }
}

impl Discovery {
    /// Sets up inotify and scans every source's root: files found now are handed to the
    /// readers before this returns. `stop` is the read end of a pipe whose write end is closed
    /// to stop [`run`](Self::run). The files in `own_files` (ringtail's outputs) are never read.
    /// What cannot be opened for lack of descriptors waits, reported in `readiness`.
    #[expect(
        clippy::too_many_arguments,
        reason = "the wiring hands discovery each of the pieces it is connected to"
    )]
    pub fn new(
        sources: Vec<Arc<Source>>,
        readers: Vec<ReaderHandle>,
        stop: OwnedFd,
        metrics: &Metrics,
        tracker: Arc<AckTracker>,
        kernel: Option<KernelLink>,
        kubernetes: &KubernetesSettings,
        own_files: Arc<OwnFiles>,
        readiness: Arc<Readiness>,
    ) -> Result<Self, DiscoveryError> {
        let (kernel_dirs, kernel, hook_wakes) = match kernel {
            Some(link) => (Some(link.dirs), Some(link.events), link.hook_wakes),
            None => (None, None, false),
        };
        let watches = Watches::new(kernel_dirs, hook_wakes, metrics, Arc::clone(&readiness))
            .map_err(|source| DiscoveryError::Init { source })?;
        let declarations = Declarations::new(&sources, metrics);
        let mut discovery = Self {
            watches,
            registry: Registry::new(readers, Arc::clone(&tracker), kernel.is_some()),
            opener: Opener::new(&sources, metrics),
            sources: SourceIndex::new(declarations.configured().to_vec()),
            declarations,
            resolver: Resolver::new(kubernetes),
            tracker,
            kernel,
            stop,
            filtered: HashSet::new(),
            files_filtered: metrics.files_filtered.clone(),
            unopened_moves: HashMap::new(),
            drained: 0,
            round_wakes: 0,
            first_turn_gate: None,
            runtime_changed: false,
            deferred: HashMap::new(),
            compressed_later: Some(Vec::new()),
            own_files,
            own_files_refused: metrics.own_files_refused.clone(),
            own_logged: HashSet::new(),
            waiting: Waiting::new(metrics, readiness),
            room_asked: false,
            rescans: Rescans::default(),
            counters: EventCounters::new(metrics),
        };
        discovery.scan_roots(true)?;
        discovery.sync_declarations(true)?;
        discovery.consider_compressed_later()?;
        // What happened during the scan (a file renamed after its directory was listed) is
        // in inotify's queue: handled now, and then the watermark says every file created
        // so far has been found.
        discovery.drain_events(&mut vec![0u8; EVENT_BUFFER])?;
        discovery.tracker.report_gone_while_down();
        discovery.flush_dirty();
        tracing::info!(
            directories = discovery.watches.len(),
            files = discovery.registry.len(),
            resumed_from_checkpoints = discovery.opener.resumed(),
            "discovery started: inotify watches the directories"
        );
        Ok(discovery)
    }

    /// Number of files currently known.
    pub fn files(&self) -> usize {
        self.registry.len()
    }

    /// Identities (`st_dev`, inode) of the files currently known.
    pub fn identities(&self) -> HashSet<(u64, u64)> {
        self.registry.identities()
    }

    /// Makes the thread's first turn wait until `gate` exists, as a slow first turn under
    /// load would: tests use it to have events queue up behind the start-up scan.
    pub fn hold_first_turn(&mut self, gate: PathBuf) {
        self.first_turn_gate = Some(gate);
    }

    /// Handles events until the stop pipe is closed.
    pub fn run(mut self) -> Result<(), DiscoveryError> {
        let mut buffer = vec![0u8; EVENT_BUFFER];
        if let Some(gate) = self.first_turn_gate.take() {
            // A stop during the wait is seen again by the first turn, which handles it.
            while !gate.exists() && !self.wait_for_stop(Duration::from_millis(10))? {}
        }
        loop {
            let hold_inotify = self.holds_inotify();
            let Some(ready) = self.wait(hold_inotify)? else {
                continue;
            };
            let (events_ready, stop, kernel_ready) = (ready.events, ready.stop, ready.kernel);
            self.round_wakes += u32::from(events_ready);
            // A burst of writes to many files is one batch of events: a short pause gathers
            // it (new files wait for it too, so it stays far below how long a short-lived
            // file lives); the readers' wake-up waits for the linger (`flush_dirty`).
            let stop = if !stop && self.registry.lingers() && (events_ready || kernel_ready) {
                self.wait_for_stop(GATHER)?
            } else {
                stop
            };
            // Kernel events are taken first and handled after inotify's queue is drained:
            // inotify queues its events in the syscall that causes them, so every inotify
            // event about what happened before a kernel event was sent is queued by then.
            // Handled the other way round, a new file opened under a name that was just
            // renamed away would be matched with the old file's queued events.
            let kernel = if kernel_ready || stop {
                self.kernel.as_ref().map(KernelEvents::take)
            } else {
                None
            };
            // Held events are read before the held marks go out, so they go with them.
            if events_ready || kernel.is_some() || hold_inotify {
                self.drain_events(&mut buffer)?;
            }
            if let Some((events, reconcile)) = kernel {
                self.kernel_events(events, reconcile)?;
            }
            if !self.deferred.is_empty() {
                self.retry_deferred()?;
            }
            self.retry_waiting()?;
            self.rescan_unwatched()?;
            if ready.parked && self.registry.take_park_signals() {
                // Writes to the quiet directories' files are heard again, from now on.
                self.wake_quiet();
            }
            // New data of known files reaches the readers once the linger is over.
            self.flush_dirty();
            if stop {
                // Events already queued still count: a file created and renamed away just
                // before shutdown must reach the tracker (and so the final checkpoint), or
                // the next run would not find it under its new name.
                self.drain_events(&mut buffer)?;
                self.wake_quiet();
                self.registry.flush_dirty_now();
                return Ok(());
            }
        }
    }

    /// Sets how long write events are gathered before the readers are woken
    /// ([`ReaderSettings::linger`](crate::read::ReaderSettings::linger)).
    pub fn set_linger(&mut self, linger: Duration) {
        self.registry.set_linger(linger);
    }

    /// Rescans every root and marks every known file dirty: after lost events, files are
    /// found again and read to their ends.
    fn rescan(&mut self) -> Result<(), DiscoveryError> {
        self.scan_roots(false)?;
        self.registry.mark_all_dirty();
        Ok(())
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
                    if let Some(id) = self.registry.with_identity(&FileIdentity { dev, ino }) {
                        self.registry.mark_dirty(id);
                    }
                }
                // A new cgroup may be a new pod's: its labels are asked for now.
                KernelEvent::Container(ContainerEvent::Started { .. }) => {
                    self.resolver.pod_may_have_appeared();
                }
                KernelEvent::Container(_) | KernelEvent::Lost { .. } => {}
            }
        }
        if reconcile {
            self.counters.reconcile.inc();
            tracing::warn!("kernel events were lost; rescanning all watched directories");
            self.rescan()?;
        }
        self.flush_dirty();
        Ok(())
    }

    /// A file in a watched directory was opened for writing.
    fn file_opened(&mut self, f: FileOpened) -> Result<(), DiscoveryError> {
        let Some(dir) = self.watches.dir_of_key(&f.dir) else {
            return Ok(());
        };
        let path = dir.join(&f.name);
        let identity = FileIdentity {
            dev: f.dev,
            ino: f.ino,
        };
        if let Some(id) = self.registry.with_identity(&identity) {
            self.registry.mark_dirty(id);
            return Ok(());
        }
        if self.registry.read_before(&identity, f.time_ns) {
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
        let via = Via {
            path: &via,
            identity,
            linked,
        };
        self.open_via(&path, Some(&via), source, false, false, None)
    }

    /// Reads and handles every queued event, then resolves moves and wakes readers.
    fn drain_events(&mut self, buffer: &mut [u8]) -> Result<(), DiscoveryError> {
        // inotify queues an event in the system call that causes it: when a read finds the
        // queue empty, every file created before that read has been handled.
        let mut emptied_at = unix_nanos();
        self.drained = 0;
        while let Some(events) = self
            .watches
            .read_events(buffer)
            .map_err(|source| DiscoveryError::Events { source })?
        {
            for event in events {
                self.drained += 1;
                self.event(event.wd, event.mask, event.cookie, event.name.as_deref())?;
            }
            emptied_at = unix_nanos();
        }
        self.unopened_moves.clear();
        if std::mem::take(&mut self.runtime_changed) {
            // A new bundle may be a new pod's: its labels are asked for now.
            self.resolver.pod_may_have_appeared();
            self.sync_declarations(false)?;
        }
        self.registry.settle_moves()?;
        self.flush_dirty();
        self.publish_watermark(emptied_at);
        Ok(())
    }

    /// Every file created before `at` has been found: tells the tracker, unless files wait
    /// (for a descriptor, for their container's bundle), which are not registered yet.
    fn publish_watermark(&self, at: u64) {
        if self.waiting.is_empty() && self.deferred.is_empty() {
            self.tracker.discovered_until(at);
        }
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
        let dir = match self.watches.watched(&wd, mask) {
            Watched::Dir(dir) => dir,
            Watched::Runtime => {
                self.runtime_changed = true;
                return Ok(());
            }
            Watched::Unknown => return Ok(()),
        };
        let Some(name) = name else {
            // DELETE_SELF / MOVE_SELF of a watched directory: its files report their own
            // deletion or move; forget the watch (MOVE_SELF keeps the watch alive).
            if mask.contains(EventMask::MOVE_SELF) {
                self.watches.unwatch_tree(&dir);
            }
            return Ok(());
        };
        let path = dir.join(name);
        if mask.contains(EventMask::ISDIR) {
            if mask.intersects(EventMask::CREATE | EventMask::MOVED_TO) {
                self.counters.create.inc();
                self.resolver.directory_created(&path);
                self.scan_dir(&path, false)?;
            } else if mask.contains(EventMask::MOVED_FROM) {
                self.counters.moved.inc();
                self.watches.unwatch_tree(&path);
                for (p, id) in self.registry.under(&path) {
                    self.registry.moved_away(&p, id);
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
            match self.registry.at(&path) {
                Some(id) => {
                    self.registry.mark_dirty(id);
                    if mask.contains(EventMask::MODIFY) && self.registry.writes_may_wait() {
                        self.watches.quiet(&wd);
                    }
                }
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
            if let Some(id) = self.registry.at(&path) {
                self.registry.moved_away(&path, id);
            }
        } else if mask.contains(EventMask::DELETE) {
            self.counters.delete.inc();
            self.filtered.remove(&path);
            self.registry.deleted(&path)?;
        }
        Ok(())
    }

    /// A file appeared by rename: if it is a file we know (rotation), it keeps its identity;
    /// otherwise it is a new file.
    fn moved_in(&mut self, path: &Path, from: Option<Arc<Source>>) -> Result<(), DiscoveryError> {
        if let Ok(meta) = std::fs::metadata(path)
            && let Some(id) = self.registry.with_identity(&FileIdentity::of(&meta))
        {
            self.registry.relink(id, path)?;
            return Ok(());
        }
        match from {
            Some(source) => self.open(path, source, false, false),
            None => self.consider(path, false),
        }
    }

    /// Scans every source root (or, for a root that does not exist yet, its nearest existing
    /// ancestor, so the root is seen when it is created).
    fn scan_roots(&mut self, startup: bool) -> Result<(), DiscoveryError> {
        let sources = self.sources.all().to_vec();
        self.scan_roots_of(&sources, startup)
    }

    /// [`scan_roots`](Self::scan_roots) for `sources` only. The roots of a source declared
    /// by a container are scanned only within the container's root.
    fn scan_roots_of(
        &mut self,
        sources: &[Arc<Source>],
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
        // Where each scan starts, once: a scan covers the directories below its start that
        // may hold files, so a start below another one is left out (20,000 sources whose
        // roots do not exist yet start at the same parent).
        let mut starts = BTreeSet::new();
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
            starts.insert(start.to_path_buf());
        }
        let mut scanned: HashSet<PathBuf> = HashSet::new();
        for start in starts {
            // Sorted: a start comes after every start above it.
            if start.ancestors().skip(1).any(|a| scanned.contains(a)) {
                continue;
            }
            self.scan_dir(&start, startup)?;
            scanned.insert(start);
        }
        Ok(())
    }

    /// Brings the declared sources up to date with the containers present: a new container's
    /// declarations become sources (their roots scanned now), a removed container's sources
    /// are dropped (files already open are still read to their end).
    fn sync_declarations(&mut self, startup: bool) -> Result<(), DiscoveryError> {
        if !self.declarations.wanted() {
            return Ok(());
        }
        self.watches.watch_runtime(self.resolver.bundles().dirs());
        let node = self.resolver.node().map(str::to_string);
        let (bundles, cri) = self.resolver.bundles_and_runtime();
        let Some(changed) = self.declarations.sync(bundles, node.as_deref(), cri) else {
            return Ok(());
        };
        self.opener.set_sources(&changed.sources);
        self.sources = SourceIndex::new(changed.sources);
        self.filtered.clear();
        self.scan_roots_of(&changed.added, startup)
    }

    /// Whether `dir` must be watched: files of a source can be in it or below it, or it is on
    /// the way to a root.
    fn interesting(&self, dir: &Path) -> bool {
        self.sources.watches(dir)
    }

    /// Watches `dir` and the interesting directories below it, and considers their files.
    /// Each directory is opened once, with the symlink checks of [`open`], and that open
    /// directory is what is watched and listed.
    fn scan_dir(&mut self, dir: &Path, startup: bool) -> Result<(), DiscoveryError> {
        let mut stack = vec![dir.to_path_buf()];
        while let Some(dir) = stack.pop() {
            if !self.interesting(&dir) {
                continue;
            }
            let fd = match self.opener.open_dir(&dir) {
                Ok(Some(fd)) => fd,
                Ok(None) => continue,
                Err(e) => {
                    self.waiting.dir(&dir, startup, &e);
                    continue;
                }
            };
            // Watch before listing: a file created between the two is seen either way.
            self.watches.watch(&dir, fd.as_fd());
            let entries = match open::list(fd) {
                Ok(entries) => entries,
                Err(e) if waiting::is_exhausted(&e) => {
                    self.waiting.dir(&dir, startup, &e);
                    continue;
                }
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), error = %e, "cannot list directory");
                    continue;
                }
            };
            for (name, kind) in entries {
                let path = dir.join(name);
                match kind {
                    open::Entry::Dir => stack.push(path),
                    // A known path still naming its file; otherwise (a file replaced where no
                    // event told, in a directory inotify refused) the new file is considered
                    // and the old one, losing its path, is read to its end.
                    open::Entry::File => match self.registry.at(&path) {
                        Some(id) if self.registry.still_names(id, &path) => {
                            self.registry.mark_dirty(id)
                        }
                        _ => self.consider(&path, startup)?,
                    },
                    open::Entry::Other => {}
                }
            }
        }
        Ok(())
    }

    /// The first source whose globs match `path` and whose container filter admits the
    /// file's container. A path every matching source's filter rejects is remembered (until
    /// it is deleted or renamed), logged at debug level and counted once.
    fn select(&mut self, path: &Path) -> Option<Arc<Source>> {
        if self.filtered.contains(path) {
            return None;
        }
        let mut rejected_by = None;
        for source in self.sources.matching(path) {
            // A pod that opted out (`ringtail.io/exclude: "true"`) is read by no source.
            if self.resolver.asks_runtime()
                && crate::container::opted_out(self.resolver.resolve(path).container.as_ref())
            {
                rejected_by.get_or_insert(source);
                break;
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
        match self.select(path) {
            Some(source) => self.open(path, source, startup, false),
            None if startup => self.consider_rotated(path),
            None => Ok(()),
        }
    }

    /// Opens `path` for `source` unless it is known. `only_resume`: only if a checkpoint of
    /// the last run matches it.
    fn open(
        &mut self,
        path: &Path,
        source: Arc<Source>,
        startup: bool,
        only_resume: bool,
    ) -> Result<(), DiscoveryError> {
        self.open_via(path, None, source, startup, only_resume, None)
    }

    /// Like [`open`](Self::open), trying first `via` (a writer's `/proc/<pid>/fd/<fd>`),
    /// used when it is still the file with the expected identity; then hands the file to a
    /// reader. `compressed`: the file is a compressed rotation, read decoded.
    fn open_via(
        &mut self,
        path: &Path,
        via: Option<&Via<'_>>,
        source: Arc<Source>,
        startup: bool,
        only_resume: bool,
        compressed: Option<Compressed<'_>>,
    ) -> Result<(), DiscoveryError> {
        // A slot in the readers' open-file budget first; a file unlinked already (reachable
        // only through its writer) cannot wait for one.
        let budget = Arc::clone(self.registry.budget());
        let slot = if via.is_some_and(|v| !v.linked) {
            Slot::force(&budget)
        } else {
            match Slot::acquire(&budget) {
                Some(slot) => slot,
                None => {
                    self.waiting.limited(path, startup, budget.max());
                    if !self.room_asked {
                        self.room_asked = true;
                        self.registry.make_room(budget.max() / 2);
                    }
                    return Ok(());
                }
            }
        };
        let opened = match self.opener.open(path, via, &source) {
            Ok(Some(opened)) => opened,
            Ok(None) => return Ok(()),
            Err(e) => {
                // Out of descriptors below the budget (a limit lowered at run time, other
                // users of descriptors): a quarter of the open files are asked to go.
                self.waiting.file(path, startup, &e);
                if !self.room_asked {
                    self.room_asked = true;
                    self.registry.make_room(budget.open() * 3 / 4);
                }
                return Ok(());
            }
        };
        let identity = FileIdentity::of(&opened.meta);
        if self.own_files.contains(&identity) {
            self.own_files_refused
                .get_or_create(&Metrics::source(&source.name))
                .inc();
            if self.own_logged.insert(path.to_path_buf()) {
                tracing::warn!(file = %path.display(), source = %source.name, "not read: it is one of ringtail's own outputs (a sink's file, a rotation or a dead-letter file), which would be read back forever");
            }
            return Ok(());
        }
        if let Some(id) = self.registry.with_identity(&identity) {
            self.registry.relink(id, path)?;
            return Ok(());
        }
        // A kernel report about a file read to its end and closed already, handled late (the
        // start-up listing of a writer whose file was replaced meanwhile) or listed again
        // while its writer still holds it: not read a second time.
        if via.is_some()
            && let Some((born, fingerprint)) = self.registry.gone_file(&identity)
            && open::is_same_file(&opened, born, fingerprint)
        {
            return Ok(());
        }
        if opened.linked
            && !startup
            && opened.meta.len() == 0
            && source.origin.is_none()
            && self.await_bundle(path)
        {
            return Ok(());
        }
        let Some(start) = self.opener.start(
            &self.tracker,
            path,
            &opened,
            &source,
            startup,
            only_resume,
            compressed,
        ) else {
            return Ok(());
        };
        // A symlink's writes are reported in its target's directory: watch that too (opened
        // with the same checks).
        let target = opened.target.clone();
        if let Some(parent) = target.as_deref().and_then(Path::parent)
            && let Ok(Some(fd)) = self.opener.open_dir(parent)
        {
            self.watches.watch(parent, fd.as_fd());
        }
        let origin_meta = source.origin.as_ref().map(|o| Arc::clone(&o.meta));
        let resolver = &mut self.resolver;
        self.registry.hand_out(
            NewFile {
                path: path.to_path_buf(),
                target,
                linked: opened.linked,
                identity,
                fingerprint: start.fingerprint,
                born: start.born,
                offset: start.offset,
                source,
                file: opened.file,
                codec: compressed.map(|c| c.codec),
            },
            || origin_meta.unwrap_or_else(|| resolver.resolve(path)),
        )?;
        slot.keep();
        self.resolver.forget();
        Ok(())
    }
}

/// Now, in ns since the Unix epoch (the clock file times are in).
fn unix_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests;
