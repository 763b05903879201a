//! Sources: what a `sources` entry says about the files it reads, and the context each of
//! its open files carries through the pipeline.
//!
//! - [`Source`]: globs, container filter, and the settings of every stage its files pass
//!   through (cutting, processors, tags, where reading starts).
//! - [`FileCtx`]: one open file — its number, path, identity, source and container metadata —
//!   shared by readers, workers and sinks.
//! - [`glob`]: path globs and the directories that must be watched to see their files.
//! - [`index`]: the sources of a path, found through its ancestors.
//! - [`declare`]: sources made from what containers declare in their environment.
//!
//! Owns which files belong to a source; it may not touch how they are found, read or cut.

pub mod declare;
pub mod glob;
pub mod index;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::container::FileMeta;
use crate::container::filter::{ContainerFilter, PodKeys};
use crate::cut::CutSettings;
use crate::cut::decode::Format;
use crate::file::{FileId, FileIdentity};
use crate::process::Processor;
use glob::{ExcludePattern, PathPattern};

/// Where reading starts in a file that exists when ringtail starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadFrom {
    /// From offset 0: nothing already in the file is missed.
    Beginning,
    /// From the current end: only new lines.
    End,
}

/// A validated source.
#[derive(Debug, Clone)]
pub struct Source {
    /// Index in the configuration's sources.
    pub index: usize,
    /// Unique name.
    pub name: String,
    /// Globs of the files to read.
    pub paths: Vec<PathPattern>,
    /// Globs of files to skip.
    pub exclude: Vec<ExcludePattern>,
    /// How its files are cut into records: format, line limit, partial lines, multiline.
    pub cut: CutSettings,
    /// Static tags.
    pub tags: BTreeMap<String, String>,
    /// Start position for files present at start-up.
    pub read_from: ReadFrom,
    /// Which containers' files this source reads.
    pub containers: ContainerFilter,
    /// Whether this source reads what containers declare (`RINGTAIL_LOGS_*`, see
    /// [`declare`]) instead of globs of its own.
    pub declared: bool,
    /// For a source made from one container's declaration: which one.
    pub origin: Option<Arc<Origin>>,
    /// Processors applied to each record, in order, after multiline.
    pub processors: Arc<[Processor]>,
    /// Which of the pod's labels and annotations its records carry.
    pub pod_keys: PodKeys,
}

impl Source {
    /// A source named `name` reading `format`, every other setting at its default (no globs:
    /// tests and tools that build sources in code add what they need).
    pub fn new(index: usize, name: &str, format: Format) -> Self {
        Self {
            index,
            name: name.to_string(),
            paths: Vec::new(),
            exclude: Vec::new(),
            cut: CutSettings::new(format),
            tags: BTreeMap::new(),
            read_from: ReadFrom::Beginning,
            containers: ContainerFilter::default(),
            declared: false,
            origin: None,
            processors: Arc::from(Vec::new()),
            pod_keys: PodKeys::default(),
        }
    }

    /// Whether this source reads the file at `path` (its globs; see also
    /// [`containers`](Self::containers)).
    pub fn matches(&self, path: &Path) -> bool {
        self.paths.iter().any(|p| p.is_match(path))
            && !self.exclude.iter().any(|e| e.is_match(path))
    }

    /// Whether files of this source can exist under directory `dir`.
    pub fn may_contain(&self, dir: &Path) -> bool {
        self.paths.iter().any(|p| p.may_contain(dir))
    }
}

/// What a file declared by a container carries besides its source settings (see
/// [`declare`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The declaration's name.
    pub name: String,
    /// The declaring container's id.
    pub container_id: String,
    /// Kafka topic of its records, replacing the sink's topic.
    pub topic: Option<String>,
    /// The container's root as seen from the host (`/proc/<pid>/root`), for in-container
    /// files: they are opened relative to it and may not resolve outside it.
    pub root: Option<PathBuf>,
    /// The files' metadata: the declaring container's.
    pub meta: Arc<FileMeta>,
}

/// Everything a worker needs to know about a file to turn its bytes into records.
#[derive(Debug, Clone)]
pub struct FileCtx {
    /// The file.
    pub id: FileId,
    /// Path the file was found at (or renamed to).
    pub path: PathBuf,
    /// Identity of the file.
    pub identity: FileIdentity,
    /// The source it belongs to.
    pub source: Arc<Source>,
    /// Its container and node, resolved when it was opened.
    pub meta: Arc<FileMeta>,
}
