//! Resolving a file's [`FileMeta`]: its path's conventions first, then the runtime's bundle;
//! and the node's `kubernetes` settings it needs.
//!
//! Owns the resolving and its one-answer cache; it may not decide which files are read.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::container::bundles::{Bundles, DEFAULT_RUNTIME_DIRS};
use crate::container::{FileMeta, of_path};

/// The node and where the container runtime keeps its state (`kubernetes`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubernetesSettings {
    /// The node's name, put into every record.
    pub node_name: Option<String>,
    /// Directories of the runtimes' OCI bundles.
    pub runtime_dirs: Vec<PathBuf>,
}

impl Default for KubernetesSettings {
    fn default() -> Self {
        Self {
            node_name: None,
            runtime_dirs: DEFAULT_RUNTIME_DIRS.iter().map(PathBuf::from).collect(),
        }
    }
}

/// Resolves the [`FileMeta`] of files: path conventions first, then the runtime's bundle.
#[derive(Debug)]
pub struct Resolver {
    bundles: Bundles,
    node: Option<String>,
    /// The last answer: a file is usually resolved twice in a row (selecting its source,
    /// then opening it).
    last: Option<(PathBuf, Arc<FileMeta>)>,
}

impl Resolver {
    /// A resolver reading the bundles under `settings.runtime_dirs`, for files on node
    /// `settings.node_name`.
    pub fn new(settings: &KubernetesSettings) -> Self {
        Self {
            bundles: Bundles::new(settings.runtime_dirs.clone()),
            node: settings.node_name.clone(),
            last: None,
        }
    }

    /// The metadata of the file at `path`.
    pub fn resolve(&mut self, path: &Path) -> Arc<FileMeta> {
        if let Some((last, meta)) = &self.last
            && last == path
        {
            return Arc::clone(meta);
        }
        let container = of_path(path).map(|mut c| {
            self.bundles.complete(&mut c);
            c
        });
        let meta = Arc::new(FileMeta {
            container,
            node: self.node.clone(),
        });
        self.last = Some((path.to_path_buf(), Arc::clone(&meta)));
        meta
    }

    /// Whether the runtime's bundle of the container of `path` is known (listing the
    /// runtime directories again if needed). Not cached.
    pub fn found_bundle(&mut self, path: &Path) -> bool {
        self.last = None;
        of_path(path).is_some_and(|mut c| self.bundles.complete(&mut c))
    }

    /// Whether any runtime directory exists on this node.
    pub fn runtime_present(&self) -> bool {
        self.bundles.dirs().iter().any(|d| d.is_dir())
    }

    /// Forgets the last answer (the file at that path changed).
    pub fn forget(&mut self) {
        self.last = None;
    }

    /// The runtime's bundles.
    pub fn bundles(&mut self) -> &mut Bundles {
        &mut self.bundles
    }

    /// The node's name.
    pub fn node(&self) -> Option<&str> {
        self.node.as_deref()
    }
}
