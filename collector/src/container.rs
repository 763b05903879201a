//! Which container a log file belongs to, and what is known about that container.
//!
//! Owns the container metadata of a file, from two places on the host (no API server, no
//! runtime socket):
//! - **paths**: the kubelet's `/var/log/pods/<namespace>_<pod>_<pod-uid>/<container>/<restart>.log`
//!   and its symlinks `/var/log/containers/<pod>_<namespace>_<container>-<container-id>.log`;
//!   Docker's json-file driver, `/var/lib/docker/containers/<id>/<id>-json.log`. Files are
//!   rotated in place (`0.log.20240101-000000`, `<id>-json.log.1`), so the file name itself
//!   is not checked, only the directories (and a leading restart number).
//! - **runtime state** ([`crate::runtime`]): the OCI bundle (`config.json`) the runtime
//!   wrote for each container adds the container id, the image, the process environment and
//!   the annotations.
//!
//! [`FileMeta`] is resolved once when a file is opened and travels with it
//! ([`crate::source::FileCtx`]), so records read after the pod is gone keep their metadata.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

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

/// Resolves the [`FileMeta`] of files: path conventions first, then the runtime's bundle.
#[derive(Debug)]
pub struct Resolver {
    bundles: crate::runtime::Bundles,
    node: Option<String>,
    /// The last answer: a file is usually resolved twice in a row (selecting its source,
    /// then opening it).
    last: Option<(std::path::PathBuf, Arc<FileMeta>)>,
}

impl Resolver {
    /// A resolver reading bundles under `runtime_dirs`, for files on node `node`.
    pub fn new(runtime_dirs: Vec<std::path::PathBuf>, node: Option<String>) -> Self {
        Self {
            bundles: crate::runtime::Bundles::new(runtime_dirs),
            node,
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
    pub fn bundles(&mut self) -> &mut crate::runtime::Bundles {
        &mut self.bundles
    }

    /// The node's name.
    pub fn node(&self) -> Option<&str> {
        self.node.as_deref()
    }
}

/// One rule of a source's `containers` filter: every field it sets must match.
#[derive(Debug, Clone, Default)]
pub struct ContainerMatcher {
    /// The pod's namespace.
    pub namespace: Option<regex::Regex>,
    /// The pod's name.
    pub pod: Option<regex::Regex>,
    /// The container's name.
    pub container: Option<regex::Regex>,
    /// Environment variables of the container's process, by name.
    pub env: BTreeMap<String, regex::Regex>,
    /// OCI annotations of the container, by name.
    pub annotations: BTreeMap<String, regex::Regex>,
}

impl ContainerMatcher {
    /// Whether `container` matches every field this rule sets. A value the container does
    /// not have (no namespace, no such variable) does not match.
    pub fn matches(&self, container: &Container) -> bool {
        let field = |re: &Option<regex::Regex>, value: &Option<String>| match re {
            None => true,
            Some(re) => value.as_deref().is_some_and(|v| re.is_match(v)),
        };
        let map = |res: &BTreeMap<String, regex::Regex>, values: &BTreeMap<String, String>| {
            res.iter()
                .all(|(k, re)| values.get(k).is_some_and(|v| re.is_match(v)))
        };
        field(&self.namespace, &container.namespace)
            && field(&self.pod, &container.pod)
            && field(&self.container, &container.name)
            && map(&self.env, &container.env)
            && map(&self.annotations, &container.annotations)
    }

    /// Whether this rule needs the runtime's bundle (env or annotations).
    pub fn needs_bundle(&self) -> bool {
        !self.env.is_empty() || !self.annotations.is_empty()
    }
}

/// A source's `containers` filter: which containers' files the source reads.
#[derive(Debug, Clone, Default)]
pub struct ContainerFilter {
    /// A file is read only if its container matches one of these (when there are any).
    pub include: Vec<ContainerMatcher>,
    /// A file is not read if its container matches one of these.
    pub exclude: Vec<ContainerMatcher>,
}

impl ContainerFilter {
    /// Whether the filter has any rule.
    pub fn is_empty(&self) -> bool {
        self.include.is_empty() && self.exclude.is_empty()
    }

    /// Whether a file of `container` (`None`: the file belongs to no container) is read.
    /// With `include` rules, a file of no container is not read; `exclude` rules never
    /// exclude it.
    pub fn admits(&self, container: Option<&Container>) -> bool {
        let included = self.include.is_empty()
            || container.is_some_and(|c| self.include.iter().any(|m| m.matches(c)));
        let excluded = container.is_some_and(|c| self.exclude.iter().any(|m| m.matches(c)));
        included && !excluded
    }
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

    #[test]
    fn filters_include_then_exclude() {
        let re = |s: &str| Some(regex::Regex::new(s).unwrap());
        let web = Container {
            namespace: Some("shop".into()),
            pod: Some("web-1".into()),
            name: Some("nginx".into()),
            env: [("TEAM".to_string(), "payments".to_string())].into(),
            ..Container::default()
        };
        let system = Container {
            namespace: Some("kube-system".into()),
            pod: Some("coredns".into()),
            name: Some("coredns".into()),
            ..Container::default()
        };
        let everything = ContainerFilter::default();
        assert!(everything.admits(Some(&web)) && everything.admits(None));
        let no_system = ContainerFilter {
            exclude: vec![ContainerMatcher {
                namespace: re("^kube-"),
                ..ContainerMatcher::default()
            }],
            ..ContainerFilter::default()
        };
        assert!(no_system.admits(Some(&web)));
        assert!(!no_system.admits(Some(&system)));
        assert!(
            no_system.admits(None),
            "exclude rules never exclude non-container files"
        );
        let payments = ContainerFilter {
            include: vec![ContainerMatcher {
                env: [("TEAM".to_string(), regex::Regex::new("^payments$").unwrap())].into(),
                ..ContainerMatcher::default()
            }],
            exclude: vec![ContainerMatcher {
                namespace: re("^shop$"),
                container: re("^sidecar$"),
                ..ContainerMatcher::default()
            }],
        };
        assert!(payments.admits(Some(&web)));
        assert!(!payments.admits(Some(&system)), "no TEAM variable");
        assert!(!payments.admits(None), "include rules need a container");
        let sidecar = Container {
            name: Some("sidecar".into()),
            ..web.clone()
        };
        assert!(!payments.admits(Some(&sidecar)));
    }
}
