//! Which container a log file belongs to, from where the runtime or the kubelet put it.
//!
//! Owns the path conventions only (no API server, no runtime socket):
//! - kubelet: `/var/log/pods/<namespace>_<pod>_<pod-uid>/<container>/<restart>.log` and the
//!   symlinks `/var/log/containers/<pod>_<namespace>_<container>-<container-id>.log`;
//! - Docker's json-file driver: `/var/lib/docker/containers/<id>/<id>-json.log`.
//!
//! Files are rotated in place (`0.log.20240101-000000`, `<id>-json.log.1`), so the file name
//! itself is not checked, only the directories. The full metadata (labels, annotations, image)
//! comes with issue #7.

use std::path::Path;

/// A container, as far as a log file's path tells.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Container {
    /// The pod's namespace (kubelet paths).
    pub namespace: Option<String>,
    /// The pod (kubelet paths).
    pub pod: Option<String>,
    /// The container's name in its pod (kubelet paths).
    pub name: Option<String>,
    /// The container id (`/var/log/containers` and Docker paths).
    pub id: Option<String>,
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
}

/// The container a file belongs to, from its path; `None` for other files.
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
        let (pod_dir, container) = (parts.get(i)?, parts.get(i + 1)?);
        parts.get(i + 2)?;
        let mut fields = pod_dir.splitn(3, '_');
        let (namespace, pod, _uid) = (fields.next()?, fields.next()?, fields.next()?);
        return Some(Container {
            namespace: some(namespace),
            pod: some(pod),
            name: some(container),
            id: None,
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

fn is_container_id(id: &str) -> bool {
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
