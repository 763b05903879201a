//! The container runtime's state on the host: the OCI bundles of running containers.
//!
//! Owns finding and reading bundles, nothing else. containerd keeps one bundle per container
//! at `<state>/io.containerd.runtime.v2.task/<namespace>/<id>/config.json`, cri-o at
//! `/run/containers/storage/overlay-containers/<id>/userdata/config.json`. A bundle's
//! `config.json` holds the annotations the CRI runtime set (pod, namespace, container name,
//! image, sandbox), the process environment and the root filesystem; containerd writes the
//! init process's pid beside it (`init.pid`).
//!
//! [`Bundles`] is an index by container id and by (namespace, pod, container name), filled by
//! listing the runtime directories when a lookup misses (a new container), so nothing is
//! polled. A bundle that disappears (its container was removed) stays known for a while, so
//! a file found late still gets its container's metadata.
//!
//! It may not touch log files: it reads the runtime's state only.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use serde::Deserialize;

use crate::container::Container;

/// Where the runtimes keep their bundles, by default (as mounted on the host).
pub const DEFAULT_RUNTIME_DIRS: [&str; 2] = [
    "/run/containerd/io.containerd.runtime.v2.task",
    "/run/containers/storage/overlay-containers",
];

/// Bundles whose directory disappeared, kept for late lookups.
const GONE_KEPT: usize = 4096;

/// Why a bundle could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// `config.json` could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// `config.json` is not an OCI runtime spec.
    #[error("{path} is not an OCI runtime config: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: serde_json::Error,
    },
}

/// One container's bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle {
    /// The bundle directory.
    pub dir: PathBuf,
    /// What the bundle says about its container (id, pod, namespace, name, image, env,
    /// annotations).
    pub container: Container,
    /// Whether this is a pod sandbox (the pause container), not an application container.
    pub sandbox: bool,
    /// The sandbox the container runs in.
    pub sandbox_id: Option<String>,
    /// The pod's log directory (containerd: the sandbox's, given to its containers).
    pub log_directory: Option<PathBuf>,
    /// The container's log file (cri-o).
    pub log_path: Option<PathBuf>,
    /// The root filesystem as the host sees it (`root.path`, relative to the bundle).
    pub rootfs: Option<PathBuf>,
    /// When the bundle was written (its `config.json`'s mtime).
    pub created: SystemTime,
}

impl Bundle {
    /// The container's init process, while it runs (containerd's `init.pid`, cri-o's
    /// `pidfile`).
    pub fn pid(&self) -> Option<u32> {
        ["init.pid", "pidfile"].iter().find_map(|name| {
            let text = std::fs::read_to_string(self.dir.join(name)).ok()?;
            text.trim().parse().ok().filter(|&pid: &u32| pid > 0)
        })
    }

    /// Reads the bundle in `dir`, whose container id is `id`.
    pub fn read(dir: &Path, id: &str) -> Result<Bundle, BundleError> {
        let path = dir.join("config.json");
        let bytes = std::fs::read(&path).map_err(|source| BundleError::Read {
            path: path.clone(),
            source,
        })?;
        let created = std::fs::metadata(&path)
            .and_then(|m| m.modified())
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let spec: Spec =
            serde_json::from_slice(&bytes).map_err(|source| BundleError::Parse { path, source })?;
        Ok(Bundle::from_spec(dir, id, spec, created))
    }

    fn from_spec(dir: &Path, id: &str, spec: Spec, created: SystemTime) -> Bundle {
        let a = &spec.annotations;
        let first = |keys: &[&str]| keys.iter().find_map(|k| a.get(*k).cloned());
        let log_directory = first(&["io.kubernetes.cri.sandbox-log-directory"]).map(PathBuf::from);
        let uid_from_log_dir = log_directory.as_ref().and_then(|d| {
            let name = d.file_name()?.to_str()?;
            name.splitn(3, '_').nth(2).map(str::to_string)
        });
        let restart = first(&["io.kubernetes.container.restartCount"])
            .and_then(|n| n.parse().ok())
            .or_else(|| {
                // cri-o: `{"name":"app","attempt":2}`.
                let meta = first(&["io.kubernetes.cri-o.Metadata"])?;
                let meta: serde_json::Value = serde_json::from_str(&meta).ok()?;
                meta.get("attempt")?.as_u64()?.try_into().ok()
            });
        let kind = first(&[
            "io.kubernetes.cri.container-type",
            "io.kubernetes.cri-o.ContainerType",
        ]);
        let env = spec
            .process
            .map(|p| p.env)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|kv| {
                let (k, v) = kv.split_once('=')?;
                Some((k.to_string(), v.to_string()))
            })
            .collect();
        let rootfs = spec.root.map(|r| {
            let path = PathBuf::from(r.path);
            if path.is_absolute() {
                path
            } else {
                dir.join(path)
            }
        });
        let sandbox_id = first(&[
            "io.kubernetes.cri.sandbox-id",
            "io.kubernetes.cri-o.SandboxID",
        ]);
        let log_path = first(&["io.kubernetes.cri-o.LogPath"]).map(PathBuf::from);
        Bundle {
            dir: dir.to_path_buf(),
            container: Container {
                namespace: first(&[
                    "io.kubernetes.cri.sandbox-namespace",
                    "io.kubernetes.pod.namespace",
                ]),
                pod: first(&["io.kubernetes.cri.sandbox-name", "io.kubernetes.pod.name"]),
                pod_uid: first(&["io.kubernetes.cri.sandbox-uid", "io.kubernetes.pod.uid"])
                    .or(uid_from_log_dir),
                name: first(&[
                    "io.kubernetes.cri.container-name",
                    "io.kubernetes.container.name",
                ]),
                restart,
                id: Some(id.to_string()),
                image: first(&[
                    "io.kubernetes.cri.image-name",
                    "io.kubernetes.cri-o.ImageName",
                    "io.kubernetes.cri-o.Image",
                ]),
                env,
                annotations: spec.annotations,
                pod_labels: None,
            },
            sandbox: kind.as_deref() == Some("sandbox"),
            sandbox_id,
            log_directory,
            log_path,
            rootfs,
            created,
        }
    }
}

/// The parts of an OCI runtime spec that are read.
#[derive(Debug, Deserialize)]
struct Spec {
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    process: Option<Process>,
    root: Option<Root>,
}

#[derive(Debug, Deserialize)]
struct Process {
    #[serde(default)]
    env: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct Root {
    path: String,
}

/// The bundles of the configured runtime directories, by container id.
#[derive(Debug, Default)]
pub struct Bundles {
    dirs: Vec<PathBuf>,
    by_id: HashMap<String, Arc<Bundle>>,
    /// Application containers by (namespace, pod, name), oldest first.
    by_name: HashMap<(String, String, String), Vec<String>>,
    /// Bundle directories listed at the last scan.
    present: HashSet<PathBuf>,
    /// Ids whose bundle disappeared, oldest first.
    gone: VecDeque<String>,
    /// Bundles that failed to read, and how often.
    failed: HashMap<PathBuf, u32>,
}

impl Bundles {
    /// An index of the bundles under `dirs` (missing directories are fine: that runtime is
    /// not used on this node). Nothing is read until the first lookup.
    pub fn new(dirs: Vec<PathBuf>) -> Self {
        Self {
            dirs,
            ..Self::default()
        }
    }

    /// Number of bundles known (present and recently gone).
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether no bundle is known.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// The bundle of container `id`.
    pub fn get(&self, id: &str) -> Option<&Arc<Bundle>> {
        self.by_id.get(id)
    }

    /// Every application container known (present and recently gone).
    pub fn containers(&self) -> impl Iterator<Item = &Arc<Bundle>> {
        self.by_id.values().filter(|b| !b.sandbox)
    }

    /// The application containers whose bundle was present at the last [`scan`](Self::scan).
    pub fn present(&self) -> impl Iterator<Item = &Arc<Bundle>> {
        self.containers().filter(|b| self.present.contains(&b.dir))
    }

    /// The configured runtime directories.
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// Completes `container` (from a log path) with what its bundle says; lists the runtime
    /// directories again when it is not known yet. Returns whether a bundle was found.
    pub fn complete(&mut self, container: &mut Container) -> bool {
        if self.dirs.is_empty() {
            return false;
        }
        let found = match self.find(container) {
            Some(bundle) => Some(bundle),
            None => {
                self.scan();
                self.find(container)
            }
        };
        match found {
            Some(bundle) => {
                container.fill_from(&bundle.container);
                true
            }
            None => false,
        }
    }

    fn find(&self, c: &Container) -> Option<Arc<Bundle>> {
        if let Some(id) = &c.id {
            return self.by_id.get(id).cloned();
        }
        let key = (c.namespace.clone()?, c.pod.clone()?, c.name.clone()?);
        let ids = self.by_name.get(&key)?;
        // The newest container of that name in that pod (of the same pod UID when both say).
        ids.iter()
            .rev()
            .filter_map(|id| self.by_id.get(id))
            .find(|b| match (&c.pod_uid, &b.container.pod_uid) {
                (Some(mine), Some(theirs)) => mine == theirs,
                _ => true,
            })
            .cloned()
    }

    /// Lists the runtime directories: reads new bundles, marks vanished ones gone.
    pub fn scan(&mut self) {
        let mut present = HashSet::new();
        let mut found = Vec::new();
        for root in &self.dirs {
            let Ok(entries) = std::fs::read_dir(root) else {
                continue;
            };
            for entry in entries.flatten() {
                let dir = entry.path();
                let Some(name) = dir.file_name().and_then(|n| n.to_str()).map(str::to_string)
                else {
                    continue;
                };
                if dir.join("config.json").is_file() {
                    found.push((dir, name));
                } else if dir.join("userdata/config.json").is_file() {
                    found.push((dir.join("userdata"), name));
                } else if let Ok(inner) = std::fs::read_dir(&dir) {
                    // containerd: one level of runtime namespaces (`k8s.io`, `moby`).
                    for entry in inner.flatten() {
                        let bundle = entry.path();
                        if let Some(id) = bundle.file_name().and_then(|n| n.to_str())
                            && bundle.join("config.json").is_file()
                        {
                            found.push((bundle.clone(), id.to_string()));
                        }
                    }
                }
            }
        }
        for (dir, id) in found {
            present.insert(dir.clone());
            if self.present.contains(&dir) && self.by_id.contains_key(&id) {
                continue;
            }
            match Bundle::read(&dir, &id) {
                Ok(bundle) => {
                    self.failed.remove(&dir);
                    self.insert(bundle);
                }
                Err(error) => {
                    // Possibly caught half-written: tried again at the next scan, logged
                    // once if it keeps failing.
                    let tries = self.failed.entry(dir).or_default();
                    *tries += 1;
                    if *tries == 3 {
                        tracing::warn!(%error, "container bundle unreadable; its files get metadata from their paths only");
                    }
                }
            }
        }
        let vanished: Vec<String> = self
            .by_id
            .iter()
            .filter(|(_, b)| !present.contains(&b.dir) && self.present.contains(&b.dir))
            .map(|(id, _)| id.clone())
            .collect();
        self.gone.extend(vanished);
        while self.gone.len() > GONE_KEPT {
            if let Some(id) = self.gone.pop_front() {
                self.remove(&id);
            }
        }
        self.failed.retain(|dir, _| present.contains(dir));
        self.present = present;
    }

    fn insert(&mut self, mut bundle: Bundle) {
        let Some(id) = bundle.container.id.clone() else {
            return;
        };
        // containerd names the pod only on the sandbox: fill from it.
        if let Some(sandbox) = bundle
            .sandbox_id
            .as_ref()
            .filter(|s| **s != id)
            .and_then(|s| self.by_id.get(s))
        {
            let pod = Container {
                namespace: sandbox.container.namespace.clone(),
                pod: sandbox.container.pod.clone(),
                pod_uid: sandbox.container.pod_uid.clone(),
                ..Container::default()
            };
            bundle.container.fill_from(&pod);
            if bundle.log_directory.is_none() {
                bundle.log_directory.clone_from(&sandbox.log_directory);
            }
        }
        if !bundle.sandbox
            && let (Some(ns), Some(pod), Some(name)) = (
                &bundle.container.namespace,
                &bundle.container.pod,
                &bundle.container.name,
            )
        {
            let ids = self
                .by_name
                .entry((ns.clone(), pod.clone(), name.clone()))
                .or_default();
            ids.retain(|i| *i != id);
            ids.push(id.clone());
        }
        let sandbox = bundle.sandbox;
        self.by_id.insert(id.clone(), Arc::new(bundle));
        if sandbox {
            // Containers read before their sandbox (listing order) get the pod now.
            let members: Vec<String> = self
                .by_id
                .values()
                .filter(|b| b.sandbox_id.as_deref() == Some(&id) && !b.sandbox)
                .filter_map(|b| b.container.id.clone())
                .collect();
            for member in members {
                if let Some(b) = self.by_id.remove(&member) {
                    self.insert(Arc::unwrap_or_clone(b));
                }
            }
        }
    }

    fn remove(&mut self, id: &str) {
        if let Some(b) = self.by_id.remove(id)
            && let (Some(ns), Some(pod), Some(name)) =
                (&b.container.namespace, &b.container.pod, &b.container.name)
        {
            let key = (ns.clone(), pod.clone(), name.clone());
            if let Some(ids) = self.by_name.get_mut(&key) {
                ids.retain(|i| i != id);
                if ids.is_empty() {
                    self.by_name.remove(&key);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SANDBOX: &str = "aaaa000000000000000000000000000000000000000000000000000000000000";
    const APP: &str = "bbbb000000000000000000000000000000000000000000000000000000000000";

    fn write_bundle(root: &Path, id: &str, annotations: serde_json::Value, env: &[&str]) {
        let dir = root.join("k8s.io").join(id);
        std::fs::create_dir_all(&dir).unwrap();
        let spec = serde_json::json!({
            "ociVersion": "1.0.2",
            "process": {"args": ["sh"], "env": env, "cwd": "/"},
            "root": {"path": "rootfs"},
            "annotations": annotations,
        });
        std::fs::write(dir.join("config.json"), spec.to_string()).unwrap();
    }

    #[test]
    fn containerd_bundles_name_pod_container_image_and_env() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        write_bundle(
            root,
            APP,
            serde_json::json!({
                "io.kubernetes.cri.container-type": "container",
                "io.kubernetes.cri.container-name": "web",
                "io.kubernetes.cri.image-name": "registry/web:1.2",
                "io.kubernetes.cri.sandbox-id": SANDBOX,
            }),
            &["PATH=/bin", "TEAM=payments", "EQ=a=b"],
        );
        write_bundle(
            root,
            SANDBOX,
            serde_json::json!({
                "io.kubernetes.cri.container-type": "sandbox",
                "io.kubernetes.cri.sandbox-id": SANDBOX,
                "io.kubernetes.cri.sandbox-name": "shop-1",
                "io.kubernetes.cri.sandbox-namespace": "shop",
                "io.kubernetes.cri.sandbox-log-directory": "/var/log/pods/shop_shop-1_uid-1",
            }),
            &[],
        );
        let mut bundles = Bundles::new(vec![root.to_path_buf()]);
        let mut from_path =
            crate::container::of_path(Path::new("/var/log/pods/shop_shop-1_uid-1/web/0.log"))
                .unwrap();
        assert!(bundles.complete(&mut from_path));
        assert_eq!(from_path.id.as_deref(), Some(APP));
        assert_eq!(from_path.image.as_deref(), Some("registry/web:1.2"));
        assert_eq!(
            from_path.env.get("TEAM").map(String::as_str),
            Some("payments")
        );
        assert_eq!(from_path.env.get("EQ").map(String::as_str), Some("a=b"));
        let app = bundles.get(APP).unwrap();
        assert_eq!(app.container.pod_uid.as_deref(), Some("uid-1"));
        assert_eq!(
            app.rootfs,
            Some(root.join("k8s.io").join(APP).join("rootfs"))
        );
        assert!(bundles.get(SANDBOX).unwrap().sandbox);
        assert_eq!(bundles.containers().count(), 1);

        // Another pod UID with the same names is a different pod.
        let mut other =
            crate::container::of_path(Path::new("/var/log/pods/shop_shop-1_uid-2/web/0.log"))
                .unwrap();
        assert!(!bundles.complete(&mut other));
        assert_eq!(other.id, None);

        // Removed: still known, for files found late.
        std::fs::remove_dir_all(root.join("k8s.io")).unwrap();
        bundles.scan();
        let mut late =
            crate::container::of_path(Path::new("/var/log/pods/shop_shop-1_uid-1/web/0.log"))
                .unwrap();
        assert!(bundles.complete(&mut late));
        assert_eq!(late.image.as_deref(), Some("registry/web:1.2"));
    }

    #[test]
    fn crio_bundles_and_broken_ones() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join(APP).join("userdata");
        std::fs::create_dir_all(&dir).unwrap();
        let spec = serde_json::json!({
            "annotations": {
                "io.kubernetes.pod.namespace": "ns",
                "io.kubernetes.pod.name": "p",
                "io.kubernetes.pod.uid": "u",
                "io.kubernetes.container.name": "c",
                "io.kubernetes.cri-o.ContainerType": "container",
                "io.kubernetes.cri-o.ImageName": "img:1",
                "io.kubernetes.cri-o.Metadata": "{\"name\":\"c\",\"attempt\":2}",
                "io.kubernetes.cri-o.LogPath": "/var/log/pods/ns_p_u/c/2.log",
            }
        });
        std::fs::write(dir.join("config.json"), spec.to_string()).unwrap();
        let broken = tmp.path().join("broken");
        std::fs::create_dir_all(&broken).unwrap();
        std::fs::write(broken.join("config.json"), "{not json").unwrap();
        let mut bundles = Bundles::new(vec![tmp.path().to_path_buf(), "/nonexistent".into()]);
        let mut c = Container {
            id: Some(APP.into()),
            ..Container::default()
        };
        assert!(bundles.complete(&mut c));
        assert_eq!(
            (c.namespace.as_deref(), c.pod.as_deref(), c.name.as_deref()),
            (Some("ns"), Some("p"), Some("c"))
        );
        assert_eq!(c.restart, Some(2));
        assert_eq!(c.image.as_deref(), Some("img:1"));
        let b = bundles.get(APP).unwrap();
        assert_eq!(
            b.log_path,
            Some(PathBuf::from("/var/log/pods/ns_p_u/c/2.log"))
        );
        assert_eq!(bundles.len(), 1);
    }
}
