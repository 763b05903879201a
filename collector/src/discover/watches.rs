//! The directories discovery watches: inotify watches, the kernel's watched-directory map
//! that mirrors them, and the watches of the container runtime's bundle directories.
//!
//! Every directory inotify watches for log files is also registered with the kernel (when
//! the eBPF programs run), which then reports files opened for writing in it by directory
//! key. A directory inotify refuses (`fs.inotify.max_user_watches` reached, most often) is
//! still registered with the kernel — its new files are reported opened — and is kept in the
//! *unwatched* set that discovery rescans; counted (`ringtail_watch_failures_total`), shown
//! (`ringtail_directories_unwatched`) and named in `/readyz` until a watch on it succeeds.
//! Owns both maps and keeps them in step; it may not decide which directories are
//! interesting (discovery's loop does, from the sources' globs).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask};
use ringtail_ebpf_common::DirKey;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;

use crate::ebpf::WatchedDirs;
use crate::metrics::Metrics;
use crate::readiness::Readiness;

/// The readiness condition while directories are unwatched.
const READINESS: &str = "watches";

const DIR_MASK: WatchMask = WatchMask::CREATE
    .union(WatchMask::MODIFY)
    .union(WatchMask::CLOSE_WRITE)
    .union(WatchMask::MOVED_FROM)
    .union(WatchMask::MOVED_TO)
    .union(WatchMask::DELETE)
    .union(WatchMask::DELETE_SELF)
    .union(WatchMask::MOVE_SELF)
    .union(WatchMask::ONLYDIR);

/// What a runtime bundle directory is watched for: containers created and removed.
const RUNTIME_MASK: WatchMask = WatchMask::CREATE
    .union(WatchMask::DELETE)
    .union(WatchMask::MOVED_TO)
    .union(WatchMask::MOVED_FROM)
    .union(WatchMask::CLOSE_WRITE)
    .union(WatchMask::ONLYDIR);

/// One inotify event, copied out of the read buffer.
#[derive(Debug)]
pub struct Event {
    /// The watch it is about.
    pub wd: WatchDescriptor,
    /// What happened.
    pub mask: EventMask,
    /// Pairs a `MOVED_FROM` with its `MOVED_TO`.
    pub cookie: u32,
    /// The entry's name in the watched directory, if the event is about an entry.
    pub name: Option<PathBuf>,
}

/// What a watch descriptor is.
#[derive(Debug)]
pub enum Watched {
    /// A directory of log files.
    Dir(PathBuf),
    /// A directory of the runtime's bundles.
    Runtime,
    /// A watch that is no longer known.
    Unknown,
}

/// inotify's watches and the kernel's mirror of them.
pub struct Watches {
    inotify: Inotify,
    mask: WatchMask,
    dirs: HashMap<WatchDescriptor, PathBuf>,
    watched: HashMap<PathBuf, WatchDescriptor>,
    /// The kernel's map, and the key of each directory in it (both ways).
    kernel: Option<WatchedDirs>,
    dir_keys: HashMap<DirKey, PathBuf>,
    key_of_dir: HashMap<PathBuf, DirKey>,
    errors_logged: u32,
    runtime: HashMap<WatchDescriptor, PathBuf>,
    runtime_watched: HashSet<PathBuf>,
    /// Directories not asked for modify events until the next hand-off (see [`Watches::quiet`]).
    quiet: HashSet<WatchDescriptor>,
    /// Directories of log files inotify refused, rescanned instead.
    unwatched: BTreeSet<PathBuf>,
    failures: Counter,
    unwatched_gauge: Gauge,
    readiness: Arc<Readiness>,
}

impl std::fmt::Debug for Watches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watches")
            .field("dirs", &self.dirs.len())
            .finish_non_exhaustive()
    }
}

impl Watches {
    /// No watches yet. `kernel`: the kernel's watched-directory map, when the eBPF programs
    /// run. `hook_wakes`: the write hook wakes readers, so inotify is not asked for modify
    /// events. Directories inotify refuses are counted in `metrics` and named in
    /// `readiness`.
    pub fn new(
        kernel: Option<WatchedDirs>,
        hook_wakes: bool,
        metrics: &Metrics,
        readiness: Arc<Readiness>,
    ) -> io::Result<Self> {
        let inotify = Inotify::init()?;
        Ok(Self {
            inotify,
            mask: if hook_wakes {
                DIR_MASK.difference(WatchMask::MODIFY)
            } else {
                DIR_MASK
            },
            dirs: HashMap::new(),
            watched: HashMap::new(),
            kernel,
            dir_keys: HashMap::new(),
            key_of_dir: HashMap::new(),
            errors_logged: 0,
            runtime: HashMap::new(),
            runtime_watched: HashSet::new(),
            quiet: HashSet::new(),
            unwatched: BTreeSet::new(),
            failures: metrics.watch_failures.clone(),
            unwatched_gauge: metrics.directories_unwatched.clone(),
            readiness,
        })
    }

    /// The inotify instance (to poll it).
    pub fn inotify(&self) -> &Inotify {
        &self.inotify
    }

    /// Number of directories watched for log files.
    pub fn len(&self) -> usize {
        self.dirs.len()
    }

    /// Whether no directory is watched for log files.
    pub fn is_empty(&self) -> bool {
        self.dirs.is_empty()
    }

    /// The events queued now; `None` when there are none (the queue is drained).
    pub fn read_events(&mut self, buffer: &mut [u8]) -> io::Result<Option<Vec<Event>>> {
        loop {
            match self.inotify.read_events(buffer) {
                Ok(events) => {
                    return Ok(Some(
                        events
                            .map(|e| Event {
                                wd: e.wd,
                                mask: e.mask,
                                cookie: e.cookie,
                                name: e.name.map(|n: &OsStr| PathBuf::from(n)),
                            })
                            .collect(),
                    ));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// What `wd` watches. An `IGNORED` event (the watch was removed) forgets it; the caller
    /// learns what it was.
    pub fn watched(&mut self, wd: &WatchDescriptor, mask: EventMask) -> Watched {
        let ignored = mask.contains(EventMask::IGNORED);
        if self.runtime.contains_key(wd) {
            if ignored && let Some(dir) = self.runtime.remove(wd) {
                self.runtime_watched.remove(&dir);
            }
            return Watched::Runtime;
        }
        if ignored {
            self.quiet.remove(wd);
            if let Some(dir) = self.dirs.remove(wd) {
                self.watched.remove(&dir);
                self.forget_key(&dir);
            }
            return Watched::Unknown;
        }
        self.dirs
            .get(wd)
            .map_or(Watched::Unknown, |dir| Watched::Dir(dir.clone()))
    }

    /// The directory the kernel knows by `key`.
    pub fn dir_of_key(&self, key: &DirKey) -> Option<&PathBuf> {
        self.dir_keys.get(key)
    }

    /// Watches `dir`, open as `fd` (opened by [`crate::discover::open`], so the watch is on
    /// the directory that path led to when it was checked, not on what it may lead to now), for
    /// log files, and registers it with the kernel; unless it is watched.
    pub fn watch(&mut self, dir: &Path, fd: BorrowedFd<'_>) {
        if self.watched.contains_key(dir) {
            return;
        }
        // inotify takes a path: the descriptor's own, which resolves to the open directory.
        let by_fd = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
        // The kernel reports files opened for writing in it, watched by inotify or not.
        if let Some(kernel) = &mut self.kernel
            && !self.key_of_dir.contains_key(dir)
        {
            match kernel.insert(fd) {
                Ok(key) => {
                    // A key names a directory by (device, inode): one deleted unseen may have
                    // left its inode, and its entry, to this one.
                    if let Some(previous) = self.dir_keys.insert(key, dir.to_path_buf())
                        && previous != dir
                    {
                        self.key_of_dir.remove(&previous);
                    }
                    self.key_of_dir.insert(dir.to_path_buf(), key);
                }
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), error = %e, "cannot register directory with the kernel; its new files are found by inotify only")
                }
            }
        }
        match self.inotify.watches().add(&by_fd, self.mask) {
            Ok(wd) => {
                self.dirs.insert(wd.clone(), dir.to_path_buf());
                self.watched.insert(dir.to_path_buf(), wd);
                if self.unwatched.remove(dir) {
                    tracing::info!(dir = %dir.display(), "directory watched at last");
                    self.unwatched_changed();
                }
            }
            Err(e) => {
                if self.unwatched.insert(dir.to_path_buf()) {
                    self.failures.inc();
                    self.unwatched_changed();
                }
                if self.errors_logged < 20 {
                    self.errors_logged += 1;
                    let hint = if e.raw_os_error() == Some(rustix::io::Errno::NOSPC.raw_os_error())
                    {
                        " (raise fs.inotify.max_user_watches)"
                    } else {
                        ""
                    };
                    tracing::error!(dir = %dir.display(), error = %e, "cannot watch directory{hint}; it is rescanned instead (every 0.5 s, backing off to 10 s while nothing new turns up), and with eBPF the kernel reports its new files");
                }
            }
        }
    }

    /// The directories inotify refused, to rescan.
    pub fn unwatched(&self) -> Vec<PathBuf> {
        self.unwatched.iter().cloned().collect()
    }

    /// Forgets unwatched directory `dir` (it is gone).
    pub fn forget_unwatched(&mut self, dir: &Path) {
        if self.unwatched.remove(dir) {
            self.forget_key(dir);
            self.unwatched_changed();
        }
    }

    fn unwatched_changed(&mut self) {
        let n = self.unwatched.len();
        self.unwatched_gauge
            .set(i64::try_from(n).unwrap_or(i64::MAX));
        self.readiness.set(
            READINESS,
            (n > 0).then(|| {
                format!(
                    "{n} directories could not be watched by inotify (raise fs.inotify.max_user_watches); they are rescanned every 0.5-10 s, so new data in them may come late"
                )
            }),
        );
    }

    /// Stops watching `dir` and everything below it.
    pub fn unwatch_tree(&mut self, dir: &Path) {
        let gone: Vec<PathBuf> = self
            .unwatched
            .iter()
            .filter(|p| p.starts_with(dir))
            .cloned()
            .collect();
        for path in gone {
            self.forget_unwatched(&path);
        }
        let below: Vec<PathBuf> = self
            .watched
            .keys()
            .filter(|p| p.starts_with(dir))
            .cloned()
            .collect();
        for path in below {
            if let Some(wd) = self.watched.remove(&path) {
                self.dirs.remove(&wd);
                self.quiet.remove(&wd);
                // The kernel may have dropped the watch already (directory deleted).
                let _ = self.inotify.watches().remove(wd);
            }
            self.forget_key(&path);
        }
    }

    fn forget_key(&mut self, dir: &Path) {
        if let Some(key) = self.key_of_dir.remove(dir) {
            // Only while the key is still this directory's (see `watch`).
            if self.dir_keys.get(&key).is_some_and(|d| d == dir) {
                self.dir_keys.remove(&key);
                if let Some(kernel) = &mut self.kernel {
                    kernel.remove(&key);
                }
            }
        }
    }

    /// Stops asking for `wd`'s modify events until [`wake_quiet`](Self::wake_quiet): its
    /// files were just marked dirty, so further writes to them until the marks are handed
    /// to the readers say nothing new, yet inotify would queue an event for each (folding a
    /// write only into the last event queued, when that is the same file's). A directory
    /// written a thousand times a second then costs one event per linger, not a thousand
    /// — in the writer's system calls too, which queue them. Returns whether it is quiet;
    /// not when inotify is not asked for modify events at all (the write hook wakes
    /// readers), or the directory's path no longer leads to the watched directory.
    pub fn quiet(&mut self, wd: &WatchDescriptor) -> bool {
        if !self.mask.contains(WatchMask::MODIFY) || self.quiet.contains(wd) {
            return self.quiet.contains(wd);
        }
        let Some(dir) = self.dirs.get(wd).cloned() else {
            return false;
        };
        if self.set_mask(wd, &dir, self.mask.difference(WatchMask::MODIFY)) {
            self.quiet.insert(wd.clone());
            true
        } else {
            false
        }
    }

    /// Whether some directory is quiet.
    pub fn any_quiet(&self) -> bool {
        !self.quiet.is_empty()
    }

    /// Asks every quiet directory for modify events again, and returns them: every file in
    /// them may have been written since it went quiet, and is to be read after this (a
    /// write after this call queues an event again, so a read after it misses nothing).
    pub fn wake_quiet(&mut self) -> HashSet<PathBuf> {
        let mut woken = HashSet::with_capacity(self.quiet.len());
        for wd in std::mem::take(&mut self.quiet) {
            if let Some(dir) = self.dirs.get(&wd).cloned() {
                // A directory whose path leads elsewhere now cannot be asked again: it was
                // moved or deleted, which inotify reports (MOVE_SELF, DELETE_SELF) and its
                // files' reads follow; its files are read once more all the same.
                self.set_mask(&wd, &dir, self.mask);
                woken.insert(dir);
            }
        }
        woken
    }

    /// Sets watch `wd` (of `dir`) to `mask`. inotify takes a path and changes the mask of
    /// the watch on whatever the path leads to now: when that is not `wd`'s directory, the
    /// change is undone (another watched directory's mask is restored; a watch just created
    /// on an unwatched one is removed) and this returns false.
    fn set_mask(&mut self, wd: &WatchDescriptor, dir: &Path, mask: WatchMask) -> bool {
        match self.inotify.watches().add(dir, mask) {
            Ok(got) if got == *wd => true,
            Ok(got) => {
                if let Some(other) = self.dirs.get(&got).cloned() {
                    let restore = if self.quiet.contains(&got) {
                        self.mask.difference(WatchMask::MODIFY)
                    } else {
                        self.mask
                    };
                    let _ = self.inotify.watches().add(&other, restore);
                } else if let Some(runtime) = self.runtime.get(&got).cloned() {
                    let _ = self.inotify.watches().add(&runtime, RUNTIME_MASK);
                } else {
                    let _ = self.inotify.watches().remove(got);
                }
                false
            }
            Err(e) => {
                tracing::debug!(dir = %dir.display(), error = %e, "cannot change the directory's inotify mask");
                false
            }
        }
    }

    /// Watches the runtime's bundle directories `roots` to depth 2 (runtime namespace,
    /// bundle), so that a container's start and removal are seen.
    pub fn watch_runtime(&mut self, roots: &[PathBuf]) {
        let mut stack: Vec<(PathBuf, usize)> = roots.iter().map(|d| (d.clone(), 0)).collect();
        while let Some((dir, depth)) = stack.pop() {
            if !self.runtime_watched.contains(&dir) {
                match self.inotify.watches().add(&dir, RUNTIME_MASK) {
                    Ok(wd) => {
                        self.runtime.insert(wd, dir.clone());
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
}
