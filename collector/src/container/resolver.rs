//! Resolving a file's [`FileMeta`]: its path's conventions first, then the runtime's bundle;
//! and the node's `kubernetes` settings it needs.
//!
//! Owns the resolving and its one-answer cache; it may not decide which files are read.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::container::bundles::{Bundles, DEFAULT_RUNTIME_DIRS};
use crate::container::cri::{self, Cri};
use crate::container::{FileMeta, of_path};

/// The node and where the container runtime keeps its state (`kubernetes`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubernetesSettings {
    /// The node's name, put into every record.
    pub node_name: Option<String>,
    /// Directories of the runtimes' OCI bundles.
    pub runtime_dirs: Vec<PathBuf>,
    /// Where pod labels and annotations are asked for.
    pub cri_socket: CriSocket,
}

/// The runtime's CRI socket (`kubernetes.cri_socket`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum CriSocket {
    /// The first of [`cri::DEFAULT_SOCKETS`] that exists.
    #[default]
    Auto,
    /// This socket.
    At(PathBuf),
    /// None: records carry no pod labels or annotations.
    Off,
}

impl Default for KubernetesSettings {
    fn default() -> Self {
        Self {
            node_name: None,
            runtime_dirs: DEFAULT_RUNTIME_DIRS.iter().map(PathBuf::from).collect(),
            cri_socket: CriSocket::Auto,
        }
    }
}

/// Resolves the [`FileMeta`] of files: path conventions first, then the runtime's bundle.
#[derive(Debug)]
pub struct Resolver {
    bundles: Bundles,
    node: Option<String>,
    /// The runtime's pods, for their labels and annotations.
    cri: Option<Cri>,
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
            cri: connect(&settings.cri_socket),
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
            if let (Some(cri), Some(uid)) = (self.cri.as_mut(), c.pod_uid.as_deref()) {
                c.pod_labels = cri.pod(uid);
            }
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

    /// Discovery saw something a new pod brings (a runtime bundle, a cgroup): the runtime's
    /// pods are listed in the background, so that its labels are known when its files open.
    pub fn pod_may_have_appeared(&self) {
        if let Some(cri) = &self.cri {
            cri.hint();
        }
    }

    /// A directory was created: if it is a pod's log directory (`…/var/log/pods/<pod>`, made
    /// by the kubelet just before the sandbox) or one of its containers'
    /// (`…/<pod>/<container>`, made once the sandbox runs, just before the container), the
    /// runtime's pods are listed in the background.
    pub fn directory_created(&self, dir: &Path) {
        if dir
            .ancestors()
            .skip(1)
            .take(2)
            .any(|a| a.ends_with("var/log/pods"))
        {
            self.pod_may_have_appeared();
        }
    }

    /// Whether pods' labels and annotations are asked of the runtime.
    pub fn asks_runtime(&self) -> bool {
        self.cri.is_some()
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

    /// The runtime's bundles, and its CRI client if it is asked.
    pub fn bundles_and_runtime(&mut self) -> (&mut Bundles, Option<&mut Cri>) {
        (&mut self.bundles, self.cri.as_mut())
    }

    /// The node's name.
    pub fn node(&self) -> Option<&str> {
        self.node.as_deref()
    }
}

/// The CRI client `socket` asks for, with the runtime's pods listed once; `None` when there is
/// no socket (said once) or it is turned off.
fn connect(socket: &CriSocket) -> Option<Cri> {
    let socket = match socket {
        CriSocket::Off => return None,
        CriSocket::At(path) => path.clone(),
        CriSocket::Auto => match cri::find_socket(None) {
            Some(path) => path,
            None => {
                tracing::info!(
                    tried = ?cri::DEFAULT_SOCKETS,
                    "no CRI socket on this node: records carry no pod labels or annotations (kubernetes.cri_socket names one)"
                );
                return None;
            }
        },
    };
    match Cri::new(&socket) {
        Ok(mut cri) => {
            cri.refresh();
            tracing::info!(socket = %socket.display(), pods = cri.pods(), "pod labels and annotations come from the runtime's CRI socket");
            Some(cri)
        }
        Err(error) => {
            tracing::warn!(%error, "records carry no pod labels or annotations");
            None
        }
    }
}
