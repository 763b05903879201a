//! Opening a file safely, and deciding where reading it starts.
//!
//! - **Safe open**: below a glob root every path component must be a real directory or file
//!   at the moment it is opened — the root is opened as configured (the operator's choice),
//!   and what lies below it with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`, so a pod
//!   directory swapped for a symlink to a host directory is refused at open time, whatever
//!   happened between the event and the open. Directories are opened the same way before
//!   they are watched or listed ([`Opener::open_dir`]), so every watch (and the kernel's copy
//!   of it) is on a directory that was checked. A file that is itself a symlink (kubelet's
//!   `/var/log/containers/*.log`) is followed only into a glob root or the runtime log
//!   directories, and again with no symlink below that root; anything else is refused,
//!   logged once and counted (`ringtail_symlinks_refused_total`). A container's declared
//!   file is opened inside the container's root (`RESOLVE_IN_ROOT`: symlinks resolve as the
//!   container sees them, never outside). A file the kernel reported opened is opened
//!   through the writer's own descriptor (`/proc/<pid>/fd/<fd>`) only once it is unlinked
//!   (its directory was a checked, watched one); while its path names it, through the path.
//!   `O_NONBLOCK`: a FIFO matching a glob cannot hang discovery.
//! - **Resume decision**: a checkpoint of the last run that matches the file (identity and
//!   fingerprint) resumes at its acknowledged offset; a recycled inode or a file truncated
//!   while ringtail was down is read from 0; a file new at a first start under
//!   `read_from: end` from its end.
//!
//! Owns the symlink policy and the resume rule; it may not touch which files exist or who
//! reads them.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::ffi::OsStr;
use std::fs::{File, Metadata};
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use crate::compressed::Codec;
use crate::deliver::ack::{AckTracker, Resume};
use crate::discover::waiting::is_exhausted;
use crate::file::{FINGERPRINT_BYTES, FileIdentity, Fingerprint, birth_time};
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
    /// When the path is a symlink: where it leads (a second path of the same file, whose
    /// directory is watched too: the kernel reports writes in the target's directory).
    pub target: Option<PathBuf>,
}

/// A compressed rotation being opened (see [`crate::compressed`]).
#[derive(Debug, Clone, Copy)]
pub struct Compressed<'a> {
    /// Its format.
    pub codec: Codec,
    /// The name of the file it is a rotation of: the part of its name a source's glob
    /// matches (`0.log` of `0.log.20261206-110000.gz`).
    pub stem: &'a str,
}

/// Where reading a file starts, and what it was decided with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Start {
    /// The offset.
    pub offset: u64,
    /// The fingerprint of the file's first bytes.
    pub fingerprint: Fingerprint,
    /// The file's birth time, where the file system keeps one.
    pub born: Option<u64>,
}

/// How the directories on the way to a path are trusted.
#[derive(Debug, Clone, Copy)]
enum Anchor<'a> {
    /// Below this glob root: every component after it must be a real directory or file.
    Beneath(&'a Path),
    /// Inside this container root: symlinks resolve as the container sees them.
    InRoot(&'a Path),
    /// At or above the glob roots, which the operator configured: resolved as written.
    Trusted,
}

/// The symlink policy's state and the counters of opening.
pub struct Opener {
    /// The glob roots of the sources, each with the source it counts refusals for.
    roots: HashMap<PathBuf, String>,
    /// The roots of declared in-container sources (`/proc/<pid>/root`).
    container_roots: HashSet<PathBuf>,
    /// Where a symlink matching a glob may lead (see [`symlink_roots`]), as written and
    /// canonical.
    symlink_roots: BTreeSet<PathBuf>,
    /// Paths refused already (logged once each).
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
        let mut opener = Self {
            roots: HashMap::new(),
            container_roots: HashSet::new(),
            symlink_roots: BTreeSet::new(),
            refused_links: HashSet::new(),
            symlinks_refused: metrics.symlinks_refused.clone(),
            truncations: metrics.truncations.clone(),
            resumed: 0,
        };
        opener.set_sources(sources);
        opener
    }

    /// The sources changed (containers declared some, or went away): their roots are the
    /// anchors from now on.
    pub fn set_sources(&mut self, sources: &[Arc<Source>]) {
        self.roots.clear();
        for source in sources
            .iter()
            .filter(|s| s.origin.as_ref().is_none_or(|o| o.root.is_none()))
        {
            for pattern in &source.paths {
                self.roots
                    .entry(pattern.root.clone())
                    .or_insert_with(|| source.name.clone());
            }
        }
        self.container_roots = sources
            .iter()
            .filter_map(|s| s.origin.as_ref().and_then(|o| o.root.clone()))
            .collect();
        self.symlink_roots = symlink_roots(sources);
    }

    /// Files resumed from a checkpoint so far.
    pub fn resumed(&self) -> usize {
        self.resumed
    }

    /// Opens `path` for `source`; for a file the kernel reported opened (`via`), through the
    /// writer's descriptor once the path no longer names it. `Ok(None)`: not a file to read
    /// (gone, refused, not a regular file); what is worth saying is logged. `Err`: out of
    /// descriptors ([`is_exhausted`]), worth trying again.
    pub fn open(
        &mut self,
        path: &Path,
        via: Option<&Via<'_>>,
        source: &Source,
    ) -> io::Result<Option<Opened>> {
        if let Some(via) = via.filter(|v| !v.linked) {
            // Unlinked already: only the writer's descriptor leads to it, in a directory that
            // was checked before it was watched.
            let file = match File::open(via.path) {
                Ok(file) => file,
                Err(e) if is_exhausted(&e) => return Err(e),
                Err(_) => return Ok(None),
            };
            let Ok(meta) = file.metadata() else {
                return Ok(None);
            };
            return Ok(
                (FileIdentity::of(&meta) == via.identity && meta.is_file()).then_some(Opened {
                    file,
                    meta,
                    linked: false,
                    target: None,
                }),
            );
        }
        let opened = match self.anchor(path) {
            Anchor::InRoot(root) => open_in_root(root, path, OFlags::RDONLY | OFlags::NONBLOCK)
                .map(|fd| (File::from(fd), None))
                .map_err(Refused::Io),
            _ => self.open_file(path),
        };
        let (file, target) = match opened {
            Ok(opened) => opened,
            Err(Refused::Io(e)) if is_gone(&e) => return Ok(None),
            Err(Refused::Io(e)) if is_exhausted(&e) => return Err(e),
            Err(Refused::Io(e)) if is_symlink_refusal(&e) => {
                self.refused(path, None, source_name(source));
                return Ok(None);
            }
            Err(Refused::Io(e)) => {
                tracing::warn!(file = %path.display(), error = %e, "cannot open file");
                return Ok(None);
            }
            Err(Refused::Outside(target)) => {
                self.refused(path, Some(&target), source_name(source));
                return Ok(None);
            }
        };
        match file.metadata() {
            Ok(meta) if meta.is_file() => Ok(Some(Opened {
                file,
                meta,
                linked: true,
                target,
            })),
            Ok(_) => Ok(None),
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "cannot stat file");
                Ok(None)
            }
        }
    }

    /// Opens the directory `dir` to watch and list it, with the same checks as files: below a
    /// glob root, no symlink on the way. `Ok(None)`: gone, not a directory, or refused (logged
    /// once, counted). `Err`: out of descriptors ([`is_exhausted`]), worth trying again.
    pub fn open_dir(&mut self, dir: &Path) -> io::Result<Option<OwnedFd>> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY;
        let anchor = self.anchor(dir);
        let opened = match anchor {
            Anchor::Beneath(root) => open_beneath(root, dir, flags),
            Anchor::InRoot(root) => open_in_root(root, dir, flags),
            Anchor::Trusted => rustix::fs::open(dir, flags | OFlags::CLOEXEC, Mode::empty())
                .map_err(io::Error::from),
        };
        match opened {
            Ok(fd) => Ok(Some(fd)),
            Err(e) if is_gone(&e) || e.raw_os_error() == Some(libc_enotdir()) => Ok(None),
            Err(e) if is_exhausted(&e) => Err(e),
            Err(e) if is_symlink_refusal(&e) => {
                let source = match anchor {
                    Anchor::Beneath(root) => self.roots.get(root).cloned(),
                    _ => None,
                };
                self.refused(dir, None, source);
                Ok(None)
            }
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot open directory");
                Ok(None)
            }
        }
    }

    /// How the directories on the way to `path` are trusted: the deepest glob (or container)
    /// root it lies below.
    fn anchor(&self, path: &Path) -> Anchor<'_> {
        // Ancestors come deepest first: the first one found is the deepest.
        if let Some(root) = path.ancestors().find_map(|a| self.container_roots.get(a)) {
            return Anchor::InRoot(root);
        }
        path.ancestors()
            .skip(1)
            .find_map(|a| self.roots.get_key_value(a))
            .map_or(Anchor::Trusted, |(r, _)| Anchor::Beneath(r))
    }

    /// Opens the file at `path` (not in a container): its directory as [`anchor`] says, the
    /// file itself with no symlink followed — or, when it is a symlink, its target below the
    /// allowed root it lies in. Returns the file and, for a symlink, its target.
    fn open_file(&self, path: &Path) -> Result<(File, Option<PathBuf>), Refused> {
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            return Err(Refused::Io(io::Error::from(io::ErrorKind::NotFound)));
        };
        let dir_flags = OFlags::PATH | OFlags::DIRECTORY;
        let dir = match self.anchor(parent) {
            Anchor::Beneath(root) => open_beneath(root, parent, dir_flags)?,
            _ => rustix::fs::open(parent, dir_flags | OFlags::CLOEXEC, Mode::empty())
                .map_err(io::Error::from)?,
        };
        let stat =
            rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW).map_err(io::Error::from)?;
        let file_flags = OFlags::RDONLY | OFlags::NONBLOCK;
        if FileType::from_raw_mode(stat.st_mode) != FileType::Symlink {
            // Checked above, and again by the open itself (a link swapped in is refused).
            let fd = rustix::fs::openat2(
                &dir,
                name,
                file_flags | OFlags::CLOEXEC,
                Mode::empty(),
                ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS,
            )
            .map_err(io::Error::from)?;
            return Ok((File::from(fd), None));
        }
        let link = rustix::fs::readlinkat(&dir, name, Vec::new()).map_err(io::Error::from)?;
        let target = normalize(&parent.join(OsStr::from_bytes(link.as_bytes())));
        let Some(root) = target
            .ancestors()
            .skip(1)
            .find_map(|a| self.symlink_roots.get(a))
        else {
            return Err(Refused::Outside(target));
        };
        let fd = open_beneath(root, &target, file_flags)?;
        Ok((File::from(fd), Some(target)))
    }

    /// A path refused by the symlink policy: counted, and logged once.
    fn refused(&mut self, path: &Path, target: Option<&Path>, source: Option<String>) {
        if let Some(source) = source {
            self.symlinks_refused
                .get_or_create(&Metrics::source(&source))
                .inc();
        }
        if self.refused_links.insert(path.to_path_buf()) {
            match target {
                Some(target) => tracing::warn!(
                    file = %path.display(),
                    target = %target.display(),
                    allowed = ?self.symlink_roots.iter().take(8).collect::<Vec<_>>(),
                    allowed_count = self.symlink_roots.len(),
                    "refusing a symlink that leads outside the log directories"
                ),
                None => tracing::warn!(
                    path = %path.display(),
                    "refusing a path with a symlink below its glob root (a directory swapped for a link)"
                ),
            }
        }
    }

    /// Where reading `opened` (found at `path`, for `source`) starts, from the checkpoints
    /// the tracker loaded. `startup`: found by the start-up scan. `only_resume`: read only if
    /// a checkpoint matches (a file outside the globs, rotated while ringtail was down).
    /// `compressed`: a compressed rotation, whose offsets and fingerprint are in uncompressed
    /// bytes. `None`: not read.
    #[expect(
        clippy::too_many_arguments,
        reason = "each is a separate fact about the file found"
    )]
    pub fn start(
        &mut self,
        tracker: &AckTracker,
        path: &Path,
        opened: &Opened,
        source: &Source,
        startup: bool,
        only_resume: bool,
        compressed: Option<Compressed<'_>>,
    ) -> Option<Start> {
        if let Some(compressed) = compressed {
            return self.start_compressed(tracker, path, opened, only_resume, compressed);
        }
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
        let born = birth_time(&opened.file);
        let offset = match tracker.resume(identity, born, head, size) {
            Resume::At { offset } => {
                tracing::debug!(file = %path.display(), offset, "resuming from checkpoint");
                self.resumed += 1;
                offset
            }
            // A file outside the globs is read only to finish what its checkpoint began.
            _ if only_resume => return None,
            // Only compressed rotations are matched to the files being read.
            Resume::Reading { .. } => return None,
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
            born,
        })
    }
}

impl Opener {
    /// [`start`](Self::start) for a compressed rotation: its first uncompressed bytes are
    /// matched against its own checkpoint, the files this run reads (the file it was
    /// compressed from, still there: not read) and the last run's checkpoints of files it may
    /// have been compressed from (resumed at that file's offset).
    fn start_compressed(
        &mut self,
        tracker: &AckTracker,
        path: &Path,
        opened: &Opened,
        only_resume: bool,
        compressed: Compressed<'_>,
    ) -> Option<Start> {
        let mut head = [0u8; FINGERPRINT_BYTES];
        let head = match crate::compressed::head(compressed.codec, &opened.file, &mut head) {
            Ok(n) => &head[..n],
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "cannot read compressed rotation");
                return None;
            }
        };
        let born = birth_time(&opened.file);
        let dir = path.parent().unwrap_or(Path::new("/"));
        let identity = FileIdentity::of(&opened.meta);
        let offset = match tracker.resume_compressed(identity, born, head, dir, compressed.stem) {
            Resume::At { offset } => {
                tracing::info!(file = %path.display(), offset, format = compressed.codec.name(), "compressed rotation of a file the last run had not read to its end: resuming inside it");
                self.resumed += 1;
                offset
            }
            Resume::Reading { path: reading } => {
                tracing::debug!(file = %path.display(), reading = %reading.display(), "compressed rotation of a file being read: not read");
                return None;
            }
            _ if only_resume => return None,
            _ => {
                tracing::info!(file = %path.display(), format = compressed.codec.name(), "compressed rotation written and compressed while ringtail was down: reading it whole");
                0
            }
        };
        Some(Start {
            offset,
            fingerprint: Fingerprint::of(head),
            born,
        })
    }
}

/// Whether `opened` is the file that had birth time `born` and first-bytes `fingerprint`
/// before: the same birth time where the file system keeps one, otherwise the same first
/// bytes, all [`FINGERPRINT_BYTES`] of them. A shorter fingerprint (a file that short, or one
/// read no further) could be a new file that begins alike (a banner) on the same inode: it
/// is taken for one, read again rather than lost.
pub fn is_same_file(opened: &Opened, born: Option<u64>, fingerprint: Fingerprint) -> bool {
    if let (Some(then), Some(now)) = (born, birth_time(&opened.file)) {
        return then == now;
    }
    let mut head = [0u8; FINGERPRINT_BYTES];
    fingerprint.is_full()
        && read_head(&opened.file, &mut head).is_ok_and(|n| fingerprint.matches(&head[..n]))
}

/// Where a symlink that matches a glob may lead: the sources' glob roots and
/// [`RUNTIME_LOG_DIRS`], each as written and canonical (the link's target is compared as
/// written: kubelet writes the path it was configured with).
fn symlink_roots(sources: &[Arc<Source>]) -> BTreeSet<PathBuf> {
    sources
        .iter()
        .filter(|s| s.origin.as_ref().is_none_or(|o| o.root.is_none()))
        .flat_map(|s| s.paths.iter().map(|p| p.root.clone()))
        .chain(RUNTIME_LOG_DIRS.iter().map(PathBuf::from))
        .flat_map(|root| [std::fs::canonicalize(&root).ok(), Some(root)])
        .flatten()
        .collect()
}

/// What a directory entry is, for discovery's scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// A directory (not a symlink to one).
    Dir,
    /// A regular file or a symlink (whose target the open checks).
    File,
    /// Anything else.
    Other,
}

/// The entries of the directory open as `dir` (consumed), each with what it is.
pub fn list(dir: OwnedFd) -> io::Result<Vec<(std::ffi::OsString, Entry)>> {
    let mut entries = Vec::new();
    for entry in rustix::fs::Dir::read_from(&dir)? {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        let kind = match entry.file_type() {
            FileType::Unknown => {
                rustix::fs::statat(&dir, entry.file_name(), AtFlags::SYMLINK_NOFOLLOW)
                    .map(|st| FileType::from_raw_mode(st.st_mode))
                    .unwrap_or(FileType::Unknown)
            }
            kind => kind,
        };
        let kind = match kind {
            FileType::Directory => Entry::Dir,
            FileType::RegularFile | FileType::Symlink => Entry::File,
            _ => Entry::Other,
        };
        entries.push((OsStr::from_bytes(name).to_os_string(), kind));
    }
    Ok(entries)
}

/// Why a file was not opened.
enum Refused {
    /// It is a symlink leading outside every allowed root.
    Outside(PathBuf),
    /// The open failed (ELOOP / EXDEV: a symlink below the root).
    Io(io::Error),
}

impl From<io::Error> for Refused {
    fn from(e: io::Error) -> Self {
        Refused::Io(e)
    }
}

fn is_gone(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound
}

/// `openat2` refuses a symlink with `ELOOP` (`RESOLVE_NO_SYMLINKS`) and an escape from the
/// root with `EXDEV` (`RESOLVE_BENEATH`).
fn is_symlink_refusal(e: &io::Error) -> bool {
    [rustix::io::Errno::LOOP, rustix::io::Errno::XDEV]
        .iter()
        .any(|errno| e.raw_os_error() == Some(errno.raw_os_error()))
}

fn libc_enotdir() -> i32 {
    rustix::io::Errno::NOTDIR.raw_os_error()
}

fn source_name(source: &Source) -> Option<String> {
    Some(source.name.clone())
}

/// `path` with `.` and `..` resolved as text (a symlink's target is checked, then opened
/// with no symlink below its root, so text is all that is needed here).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
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

/// Opens `path`, which lies below the glob root `root`, with `flags`: the root as written,
/// everything below it refusing any symlink (`RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`), so a
/// directory swapped for a link — before the event or between the event and this open — is
/// refused, not followed.
fn open_beneath(root: &Path, path: &Path, flags: OFlags) -> io::Result<OwnedFd> {
    let below = path
        .strip_prefix(root)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "the path is outside its root"))?;
    let root = rustix::fs::open(
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let below = if below.as_os_str().is_empty() {
        Path::new(".")
    } else {
        below
    };
    Ok(rustix::fs::openat2(
        &root,
        below,
        flags | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS,
    )?)
}

/// Opens `path`, which lies under a container's `root` (`/proc/<pid>/root`), resolving every
/// symlink on the way as the container would — inside its root, never outside it.
fn open_in_root(root: &Path, path: &Path, flags: OFlags) -> io::Result<OwnedFd> {
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
    let inner = if inner.as_os_str().is_empty() {
        Path::new(".")
    } else {
        inner
    };
    Ok(rustix::fs::openat2(
        &dir,
        inner,
        flags | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_normalized_as_text() {
        assert_eq!(
            normalize(Path::new("/var/log/containers/../pods/ns_p_u/c/0.log")),
            PathBuf::from("/var/log/pods/ns_p_u/c/0.log")
        );
        assert_eq!(normalize(Path::new("/a/./b/../../c")), PathBuf::from("/c"));
        assert_eq!(normalize(Path::new("/../x")), PathBuf::from("/x"));
    }

    #[test]
    #[allow(clippy::unwrap_used, reason = "tests fail loudly on broken invariants")]
    fn the_same_file_is_told_by_its_birth_time_or_else_its_first_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        let text = format!("first line\n{}\n", "x".repeat(FINGERPRINT_BYTES));
        std::fs::write(&path, &text).unwrap();
        let file = File::open(&path).unwrap();
        let meta = file.metadata().unwrap();
        let born = birth_time(&file);
        let opened = Opened {
            file,
            meta,
            linked: true,
            target: None,
        };
        let head = Fingerprint::of(text.as_bytes());
        let other = Fingerprint::of(text.replace("first", "other").as_bytes());
        // No birth time known: all the first bytes decide; fewer decide nothing.
        assert!(is_same_file(&opened, None, head));
        assert!(!is_same_file(&opened, None, other));
        assert!(!is_same_file(
            &opened,
            None,
            Fingerprint::of(b"first line\n")
        ));
        assert!(!is_same_file(&opened, None, Fingerprint::of(b"")));
        // A birth time known on both sides decides alone (tmpfs keeps one).
        if let Some(born) = born {
            assert!(is_same_file(&opened, Some(born), other));
            assert!(!is_same_file(&opened, Some(born + 1), head));
        }
    }
}
