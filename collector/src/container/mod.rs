//! Which container a log file belongs to, and what is known about that container.
//!
//! Owns the container metadata of a file, from three places on the node (no API server):
//! - **paths**: the kubelet's `/var/log/pods/<namespace>_<pod>_<pod-uid>/<container>/<restart>.log`
//!   and its symlinks `/var/log/containers/<pod>_<namespace>_<container>-<container-id>.log`;
//!   Docker's json-file driver, `/var/lib/docker/containers/<id>/<id>-json.log`. Files are
//!   rotated in place (`0.log.20240101-000000`, `<id>-json.log.1`), so the file name itself
//!   is not checked, only the directories (and a leading restart number).
//! - **runtime state** ([`bundles`]): the OCI bundle (`config.json`) the runtime
//!   wrote for each container adds the container id, the image, the process environment and
//!   the annotations.
//! - **the runtime's CRI socket** ([`cri`]): the pod's labels and annotations, which the
//!   kubelet handed to the runtime with the pod's sandbox.
//!
//! [`FileMeta`] is resolved once when a file is opened ([`resolver`]) and travels with it
//! ([`crate::source::FileCtx`]), so records read after the pod is gone keep their metadata.
//! A source's container filter ([`filter`]) decides which containers' files it reads.
//!
//! Shared vocabulary below the stages: it owns what is known about containers; it may not
//! touch files being read, queues or records.

pub mod bundles;
pub mod cri;
pub mod filter;
pub mod resolver;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use cri::PodLabels;

/// A container, as far as a log file's path and the runtime's state tell.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Container {
    /// The pod's namespace.
    pub namespace: Option<String>,
    /// The pod.
    pub pod: Option<String>,
    /// The pod's UID.
    pub pod_uid: Option<String>,
    /// The container's name in its pod.
    pub name: Option<String>,
    /// How many times the kubelet restarted the container (the log file's number).
    pub restart: Option<u32>,
    /// The container id.
    pub id: Option<String>,
    /// The image the container runs.
    pub image: Option<String>,
    /// The container process's environment (from the OCI bundle). Used by filters and
    /// declarations; never put into records (it may hold secrets).
    pub env: BTreeMap<String, String>,
    /// The OCI annotations of the container (from the OCI bundle).
    pub annotations: BTreeMap<String, String>,
    /// The pod's labels and annotations (from the runtime's CRI socket).
    pub pod_labels: Option<Arc<PodLabels>>,
}

impl Container {
    /// `<namespace>/<pod>/<container>` when known, else the container id.
    pub fn label(&self) -> String {
        match (&self.namespace, &self.pod, &self.name, &self.id) {
            (Some(ns), Some(pod), Some(name), _) => format!("{ns}/{pod}/{name}"),
            (_, _, _, Some(id)) => id.clone(),
            _ => String::new(),
        }
    }

    /// Fills what `other` knows and `self` does not.
    pub fn fill_from(&mut self, other: &Container) {
        fn fill<T: Clone>(mine: &mut Option<T>, theirs: &Option<T>) {
            if mine.is_none() {
                mine.clone_from(theirs);
            }
        }
        fill(&mut self.namespace, &other.namespace);
        fill(&mut self.pod, &other.pod);
        fill(&mut self.pod_uid, &other.pod_uid);
        fill(&mut self.name, &other.name);
        fill(&mut self.restart, &other.restart);
        fill(&mut self.id, &other.id);
        fill(&mut self.image, &other.image);
        fill(&mut self.pod_labels, &other.pod_labels);
        for (k, v) in &other.env {
            self.env.entry(k.clone()).or_insert_with(|| v.clone());
        }
        for (k, v) in &other.annotations {
            self.annotations
                .entry(k.clone())
                .or_insert_with(|| v.clone());
        }
    }
}

/// The pod annotation by which a pod opts out of collection.
pub const EXCLUDE_ANNOTATION: &str = "ringtail.io/exclude";

/// Whether the pod of `container` opted out of collection (`ringtail.io/exclude: "true"`).
pub fn opted_out(container: Option<&Container>) -> bool {
    container
        .and_then(|c| c.pod_labels.as_deref())
        .and_then(|p| p.annotations.get(EXCLUDE_ANNOTATION))
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// What records of one file carry besides their own fields: the file's container, if any,
/// and the node it runs on.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FileMeta {
    /// The container the file belongs to.
    pub container: Option<Container>,
    /// The node's name (`kubernetes.node_name`, by default the `NODE_NAME` environment
    /// variable the downward API sets).
    pub node: Option<String>,
}

/// The container a file belongs to, from its path alone; `None` for other files.
pub fn of_path(path: &Path) -> Option<Container> {
    let parts: Vec<&str> = path.iter().filter_map(|p| p.to_str()).collect();
    // Searched from the end, so that a host root mounted elsewhere (`/host/var/log/...`) works.
    let at = |dir: &[&str]| {
        parts
            .windows(dir.len())
            .rposition(|w| w == dir)
            .map(|i| i + dir.len())
    };
    let some = |s: &str| Some(s.to_string());
    if let Some(i) = at(&["var", "log", "pods"]) {
        let (pod_dir, container, file) = (parts.get(i)?, parts.get(i + 1)?, parts.get(i + 2)?);
        let mut fields = pod_dir.splitn(3, '_');
        let (namespace, pod, uid) = (fields.next()?, fields.next()?, fields.next()?);
        let digits = file.bytes().take_while(u8::is_ascii_digit).count();
        let restart = file
            .get(..digits)
            .filter(|_| file[digits..].starts_with(".log"))
            .and_then(|n| n.parse().ok());
        return Some(Container {
            namespace: some(namespace),
            pod: some(pod),
            pod_uid: some(uid),
            name: some(container),
            restart,
            ..Container::default()
        });
    }
    if let Some(i) = at(&["var", "log", "containers"]) {
        let name = parts.get(i)?;
        let stem = name.split(".log").next()?;
        let (rest, id) = stem.rsplit_once('-')?;
        if !is_container_id(id) {
            return None;
        }
        let mut fields = rest.splitn(3, '_');
        let (pod, namespace, container) = (fields.next()?, fields.next()?, fields.next()?);
        return Some(Container {
            namespace: some(namespace),
            pod: some(pod),
            name: some(container),
            id: some(id),
            ..Container::default()
        });
    }
    if let Some(i) = at(&["var", "lib", "docker", "containers"]) {
        let id = parts.get(i)?;
        parts.get(i + 1)?;
        return is_container_id(id).then(|| Container {
            id: some(id),
            ..Container::default()
        });
    }
    None
}

/// Whether `id` looks like a container id (64 hex digits).
pub fn is_container_id(id: &str) -> bool {
    id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn kubelet_and_docker_paths_name_their_container() {
        for (path, container) in [
            (
                "/var/log/pods/shop_web-7d9f_0f1e2d3c-aaaa-bbbb-cccc-000000000001/nginx/0.log"
                    .to_string(),
                "shop/web-7d9f/nginx".to_string(),
            ),
            (
                "/host/var/log/pods/kube-system_coredns-1_uid/coredns/3.log.20240101-000000"
                    .to_string(),
                "kube-system/coredns-1/coredns".to_string(),
            ),
            (
                format!("/var/log/containers/web-7d9f_shop_nginx-{ID}.log"),
                "shop/web-7d9f/nginx".to_string(),
            ),
            (
                format!("/var/lib/docker/containers/{ID}/{ID}-json.log.1"),
                ID.to_string(),
            ),
        ] {
            assert_eq!(
                of_path(Path::new(&path)).map(|c| c.label()),
                Some(container),
                "{path}"
            );
        }
        let kubelet =
            of_path(Path::new("/var/log/pods/shop_web-7d9f_0f1e-aa/nginx/3.log")).unwrap();
        assert_eq!(kubelet.pod_uid.as_deref(), Some("0f1e-aa"));
        assert_eq!(kubelet.restart, Some(3));
        let rotated = of_path(Path::new(
            "/var/log/pods/shop_web_uid/nginx/12.log.20240101-000000",
        ))
        .unwrap();
        assert_eq!(rotated.restart, Some(12));
        let odd = of_path(Path::new("/var/log/pods/shop_web_uid/nginx/app.log")).unwrap();
        assert_eq!(odd.restart, None);
        for path in [
            "/var/log/syslog",
            "/var/log/pods/not-a-pod-dir/c/0.log",
            "/var/log/pods/ns_pod_uid/0.log",
            "/var/log/containers/no-id.log",
            "/var/lib/docker/containers/short/short-json.log",
            "/tmp/var/log/app.log",
        ] {
            assert_eq!(of_path(Path::new(path)), None, "{path}");
        }
    }
}
