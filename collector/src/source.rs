//! Identifiers and per-file context shared by discovery, readers and workers.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use crate::config::SourceConfig;
use crate::container::FileMeta;

/// A file being read, for as long as ringtail has it open. Assigned by discovery, never reused
/// within one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceId(pub u64);

impl fmt::Display for SourceId {
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

/// Everything a worker needs to know about a file to turn its bytes into records.
#[derive(Debug, Clone)]
pub struct FileCtx {
    /// The file.
    pub id: SourceId,
    /// Path the file was found at (or renamed to).
    pub path: PathBuf,
    /// Identity of the file.
    pub identity: FileIdentity,
    /// The source it belongs to.
    pub source: Arc<SourceConfig>,
    /// Its container and node, resolved when it was opened.
    pub meta: Arc<FileMeta>,
}
