//! Opening a file safely, and deciding where reading it starts.
//!
//! - **Safe open**: through the writer's own descriptor when the kernel reported it
//!   (`/proc/<pid>/fd/<fd>`, which works even after the file was unlinked); a container's
//!   declared file inside the container's root (`RESOLVE_IN_ROOT`: symlinks resolve as the
//!   container sees them, never outside); any other file by its canonical path with no
//!   symlink followed at open time — and a symlink matching a glob only when it leads into a
//!   glob root or the runtime log directories (a container's `0.log -> /etc/shadow` is
//!   refused, logged once and counted). `O_NONBLOCK`: a FIFO matching a glob cannot hang
//!   discovery.
//! - **Resume decision**: a checkpoint of the last run that matches the file (identity and
//!   fingerprint) resumes at its acknowledged offset; a recycled inode or a file truncated
//!   while ringtail was down is read from 0; a file new at a first start under
//!   `read_from: end` from its end.
//!
//! Owns the symlink policy and the resume rule; it may not touch which files exist or who
//! reads them.

use std::collections::HashSet;
use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use crate::deliver::ack::{AckTracker, Resume};
use crate::file::{FINGERPRINT_BYTES, FileIdentity, Fingerprint};
use crate::metrics::{Metrics, SourceLabel};
use crate::source::{ReadFrom, Source};

/// Directories outside every glob root that a symlink matching a glob may still lead to: the
/// kubelet's pod logs and Docker's container logs (`/var/log/containers/*.log` are symlinks
/// into the first, or the second with Docker).
const RUNTIME_LOG_DIRS: [&str; 2] = ["/var/log/pods", "/var/lib/docker/containers"];

/// A second way to a file: the writer's descriptor, as `/proc/<pid>/fd/<fd>`.
#[derive(Debug)]
pub struct Via<'a> {
    /// `/proc/<pid>/fd/<fd>`.
    pub path: &'a Path,
    /// The file the kernel reported; `path` is used only while it still leads there.
    pub identity: FileIdentity,
    /// Whether the file's path still names it.
    pub linked: bool,
}

/// A file opened, not yet handed to a reader.
#[derive(Debug)]
pub struct Opened {
    /// The open file.
    pub file: File,
    /// Its metadata at open time (a regular file).
    pub meta: Metadata,
    /// Whether its path still names it (see [`Via::linked`]).
    pub linked: bool,
}

/// Where reading a file starts, and the fingerprint it was decided with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Start {
    /// The offset.
    pub offset: u64,
    /// The fingerprint of the file's first bytes.
    pub fingerprint: Fingerprint,
}

/// The symlink policy's state and the counters of opening.
pub struct Opener {
    /// Where a symlink matching a glob may lead (see [`symlink_roots`]), canonical.
    symlink_roots: Vec<PathBuf>,
    /// Symlinks refused already (logged once each).
    refused_links: HashSet<PathBuf>,
    symlinks_refused: Family<SourceLabel, Counter>,
    truncations: Family<SourceLabel, Counter>,
    /// Files resumed from a checkpoint.
    resumed: usize,
}

impl std::fmt::Debug for Opener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opener")
            .field("symlink_roots", &self.symlink_roots)
            .finish_non_exhaustive()
    }
}

impl Opener {
    /// The policy for the globs of `sources`.
    pub fn new(sources: &[Arc<Source>], metrics: &Metrics) -> Self {
        Self {
            symlink_roots: symlink_roots(sources),
            refused_links: HashSet::new(),
            symlinks_refused: metrics.symlinks_refused.clone(),
            truncations: metrics.truncations.clone(),
            resumed: 0,
        }
    }

    /// Files resumed from a checkpoint so far.
    pub fn resumed(&self) -> usize {
        self.resumed
    }

    /// Opens `path` for `source`, trying first `via` (a writer's `/proc/<pid>/fd/<fd>`) while
    /// it is still the file with the expected identity. `None`: not a file to read (gone,
    /// refused, not a regular file, or unlinked and not reachable through its writer); what
    /// is worth saying is logged.
    pub fn open(&mut self, path: &Path, via: Option<&Via<'_>>, source: &Source) -> Option<Opened> {
        let through_writer = via.and_then(|via| {
            let file = open_nonblocking(via.path).ok()?;
            let meta = file.metadata().ok()?;
            (FileIdentity::of(&meta) == via.identity).then_some(file)
        });
        let linked = via.is_none_or(|v| v.linked);
        let opened = match through_writer {
            Some(file) => Ok(file),
            None if !linked => return None,
            None => match source.origin.as_ref().and_then(|o| o.root.as_ref()) {
                Some(root) => open_in_root(root, path),
                None => open_no_symlinks(&self.contained(path, source)?),
            },
        };
        let file = match opened {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "cannot open file");
                return None;
            }
        };
        match file.metadata() {
            Ok(meta) if meta.is_file() => Some(Opened { file, meta, linked }),
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "cannot stat file");
                None
            }
        }
    }

    /// Where reading `opened` (found at `path`, for `source`) starts, from the checkpoints
    /// the tracker loaded. `startup`: found by the start-up scan. `only_resume`: read only if
    /// a checkpoint matches (a file outside the globs, rotated while ringtail was down).
    /// `None`: not read.
    pub fn start(
        &mut self,
        tracker: &AckTracker,
        path: &Path,
        opened: &Opened,
        source: &Source,
        startup: bool,
        only_resume: bool,
    ) -> Option<Start> {
        let identity = FileIdentity::of(&opened.meta);
        let size = opened.meta.len();
        let mut head = [0u8; FINGERPRINT_BYTES];
        let head = match read_head(&opened.file, &mut head) {
            Ok(n) => &head[..n],
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "cannot read file");
                return None;
            }
        };
        // `read_from: end` skips what is there on a first start; after a run that saved
        // checkpoints, a file without one appeared while ringtail was down: all of it is new.
        let fresh_offset =
            if startup && source.read_from == ReadFrom::End && tracker.previous_save().is_none() {
                size
            } else {
                0
            };
        let offset = match tracker.resume(identity, head, size) {
            Resume::At { offset } => {
                tracing::debug!(file = %path.display(), offset, "resuming from checkpoint");
                self.resumed += 1;
                offset
            }
            // A file outside the globs is read only to finish what its checkpoint began.
            _ if only_resume => return None,
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
        Some(Start {
            offset,
            fingerprint: Fingerprint::of(head),
        })
    }

    /// The path to open for `path`: itself, or for a symlink its canonical target — if that
    /// lies within [`symlink_roots`]. A symlink leading elsewhere is refused, logged once and
    /// counted.
    fn contained(&mut self, path: &Path, source: &Source) -> Option<PathBuf> {
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
}

/// The canonical target of `path` when it is a symlink: a second path of the same file,
/// whose directory must be watched too (the kernel reports writes in the target's directory).
pub fn symlink_target(path: &Path) -> Option<PathBuf> {
    std::fs::symlink_metadata(path)
        .is_ok_and(|m| m.file_type().is_symlink())
        .then(|| std::fs::canonicalize(path).ok())
        .flatten()
}

/// Where a symlink that matches a glob may lead: the sources' glob roots and
/// [`RUNTIME_LOG_DIRS`], canonical (roots that do not exist yet keep their written form).
fn symlink_roots(sources: &[Arc<Source>]) -> Vec<PathBuf> {
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

/// Opens `path` for reading without blocking on it (a FIFO).
fn open_nonblocking(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)
}

/// The first bytes of `file`, for its fingerprint.
fn read_head(file: &File, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match file.read_at(buf, 0) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// Opens `path`, which lies under a container's `root` (`/proc/<pid>/root`), resolving every
/// symlink on the way as the container would — inside its root, never outside it.
fn open_in_root(root: &Path, path: &Path) -> io::Result<File> {
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
    Ok(File::from(fd))
}

/// Opens `path` (canonical, checked) refusing any symlink on the way, so a link swapped in
/// after the check is not followed.
fn open_no_symlinks(path: &Path) -> io::Result<File> {
    use rustix::fs::{Mode, OFlags, ResolveFlags};
    let fd = rustix::fs::openat2(
        rustix::fs::CWD,
        path,
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::NO_SYMLINKS,
    )?;
    Ok(File::from(fd))
}
