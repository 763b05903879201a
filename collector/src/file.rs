//! What a file *is*, independent of its path: the number ringtail gives it while it is open
//! ([`FileId`]), its device and inode ([`FileIdentity`]), a hash of its first bytes
//! ([`Fingerprint`]) that tells a recycled inode from the same file, and which files are
//! ringtail's own outputs ([`OwnFiles`]).
//!
//! Shared vocabulary at the bottom of the crate: every stage names files with these, and
//! this module imports nothing from ringtail.
//!
//! Owns how a file is named and recognised; it may not open, read or track files.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A file being read, for as long as ringtail has it open. Assigned by discovery, never reused
/// within one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId(pub u64);

impl fmt::Display for FileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// What a file *is*, independent of its path: the device and inode it lives on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileIdentity {
    /// `st_dev` of the file.
    pub dev: u64,
    /// `st_ino` of the file.
    pub ino: u64,
}

impl FileIdentity {
    /// The identity of the file `meta` describes.
    pub fn of(meta: &std::fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }
}

/// When the open file `file` was created, in nanoseconds since the epoch — `statx`'s
/// `stx_btime`, which ext4, XFS, btrfs and tmpfs keep (`None` where the file system does not):
/// with the device and inode, it tells a new file on a recycled inode from the file the inode
/// held before, even when their first bytes are the same.
pub fn birth_time(file: &std::fs::File) -> Option<u64> {
    use rustix::fs::{AtFlags, StatxFlags, statx};
    let stat = statx(file, "", AtFlags::EMPTY_PATH, StatxFlags::BTIME).ok()?;
    if !StatxFlags::from_bits_retain(stat.stx_mask).contains(StatxFlags::BTIME) {
        return None;
    }
    let seconds = u64::try_from(stat.stx_btime.tv_sec).ok()?;
    Some(seconds * 1_000_000_000 + u64::from(stat.stx_btime.tv_nsec))
}

/// The files ringtail itself writes — sink outputs, their rotations, dead-letter files — by
/// identity. Discovery never reads one of them, whatever the globs say (a hard link, a
/// configuration merged from several files): reading its own output would feed it back
/// forever. Sinks add a file when they create or find it and remove it when they delete it,
/// so a recycled inode is not taken for theirs.
#[derive(Debug, Default)]
pub struct OwnFiles {
    identities: std::sync::Mutex<std::collections::HashSet<FileIdentity>>,
}

impl OwnFiles {
    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<FileIdentity>> {
        self.identities.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `identity` is one of ringtail's outputs.
    pub fn add(&self, identity: FileIdentity) {
        self.lock().insert(identity);
    }

    /// The file at `path`, if there is one, is one of ringtail's outputs.
    pub fn add_path(&self, path: &std::path::Path) {
        if let Ok(meta) = std::fs::metadata(path) {
            self.add(FileIdentity::of(&meta));
        }
    }

    /// The file at `path`, if there is one, is about to be deleted: no longer an output.
    pub fn remove_path(&self, path: &std::path::Path) {
        if let Ok(meta) = std::fs::metadata(path) {
            self.lock().remove(&FileIdentity::of(&meta));
        }
    }

    /// Whether `identity` is one of ringtail's outputs.
    pub fn contains(&self, identity: &FileIdentity) -> bool {
        self.lock().contains(identity)
    }
}

/// Bytes at the start of a file that make up its fingerprint: enough to hold a timestamp and
/// the start of the first line, so two files on a recycled inode differ.
pub const FINGERPRINT_BYTES: usize = 256;

/// A hash of a file's first bytes, and how many bytes it covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Fingerprint {
    /// Bytes covered (at most [`FINGERPRINT_BYTES`]; fewer while the file is shorter).
    pub len: u32,
    /// CRC-32 of those bytes.
    pub crc: u32,
}

impl Fingerprint {
    /// The fingerprint of a file whose first bytes are `head` (only the first
    /// [`FINGERPRINT_BYTES`] count).
    pub fn of(head: &[u8]) -> Self {
        let head = &head[..head.len().min(FINGERPRINT_BYTES)];
        Self {
            len: head.len() as u32,
            crc: crc32fast::hash(head),
        }
    }

    /// Whether a file whose first bytes are `head` is the file this fingerprint was taken of:
    /// it must have at least `len` bytes, and they must hash the same.
    pub fn matches(&self, head: &[u8]) -> bool {
        let len = self.len as usize;
        head.len() >= len && crc32fast::hash(&head[..len]) == self.crc
    }

    /// Whether it covers as many bytes as fingerprints ever do.
    pub fn is_full(&self) -> bool {
        self.len as usize >= FINGERPRINT_BYTES
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fingerprint_matches_only_the_same_first_bytes() {
        let fp = Fingerprint::of(b"hello world\n");
        assert_eq!(fp.len, 12);
        assert!(
            fp.matches(b"hello world\nand more lines\n"),
            "the file grew"
        );
        assert!(!fp.matches(b"hello"), "shorter: truncated or another file");
        assert!(!fp.matches(b"HELLO world\nand more\n"), "other bytes");
        let long = vec![b'x'; 1000];
        let full = Fingerprint::of(&long);
        assert!(full.is_full());
        assert_eq!(full.len as usize, FINGERPRINT_BYTES);
        assert!(Fingerprint::of(b"").matches(b"anything"));
    }
}
