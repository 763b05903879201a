//! A Kubernetes node, as far as this machine allows: a containerd of its own (Debian's 1.6,
//! with its built-in CRI plugin and runc) driven over CRI the way the kubelet drives it, so
//! that pods' containers write **real CRI log files** under
//! `<log_dir>/<container>/<attempt>.log`, split, timestamped and interleaved by containerd
//! itself.
//!
//! Everything lives under the directory given to [`CriNode::start`] — containerd's root,
//! state, sockets, config, log, runc's state — except the shims' sockets, which containerd 1.6
//! always puts in `/run/containerd/s/<hash of the socket path and id>` (unique, removed by
//! the shim). The pods' cgroups go under a cgroup of the node's own
//! (`/ringtail-test-<pid>-<n>`), so nodes of tests running in parallel never meet. No
//! network: the images (a pause image and an app image, both a busybox-static rootfs) are
//! built here as an OCI image tarball and imported with `ctr`.
//!
//! The API is synchronous (a current-thread tokio runtime inside drives the gRPC client), and
//! every call panics with the tail of containerd's log when something fails.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hyper_util::rt::TokioIo;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::{
    ContainerConfig, ContainerMetadata, ContainerState, ContainerStatusRequest,
    CreateContainerRequest, ImageSpec, ImageStatusRequest, KeyValue, LinuxContainerConfig,
    LinuxContainerSecurityContext, LinuxPodSandboxConfig, LinuxSandboxSecurityContext,
    ListPodSandboxRequest, Mount, NamespaceMode, NamespaceOption, PodSandboxConfig,
    PodSandboxMetadata, RemovePodSandboxRequest, RunPodSandboxRequest, StartContainerRequest,
    StopContainerRequest, StopPodSandboxRequest, VersionRequest,
};
use sha2::{Digest, Sha256};
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

/// The pause image of every pod (busybox `sleep`), as containerd's `sandbox_image`.
pub const PAUSE_IMAGE: &str = "localhost/ringtail/pause:1";
/// The image of the containers started by [`CriNode::run_container`]: a busybox-static rootfs
/// with every applet linked in `/bin` (`sh`, `echo`, `printf`, `seq`, `sleep`, `cat`, ...).
pub const APP_IMAGE: &str = "localhost/ringtail/busybox:1";

const CONTAINERD: &str = "containerd";
const CTR: &str = "ctr";
const RUNC: &str = "/usr/sbin/runc";
const BUSYBOX: &str = "/usr/bin/busybox";
/// The containerd namespace of the CRI plugin.
const K8S_NAMESPACE: &str = "k8s.io";
/// How long start-up, an RPC or a cleanup step may take: generous, the tests share two cores
/// with other test binaries.
const PATIENCE: Duration = Duration::from_secs(60);

/// A running containerd with its CRI plugin, stopped (with every pod) when dropped.
pub struct CriNode {
    dir: PathBuf,
    socket: PathBuf,
    containerd: Child,
    runtime: tokio::runtime::Runtime,
    client: RuntimeServiceClient<Channel>,
    images: ImageServiceClient<Channel>,
    /// `/ringtail-test-<pid>-<n>`: the cgroup under which every pod of this node goes.
    cgroup_root: String,
    /// Sandbox ids of the pods not removed yet.
    pods: Mutex<Vec<String>>,
}

/// A pod sandbox started by [`CriNode::run_pod`].
#[derive(Debug, Clone)]
pub struct Pod {
    /// The sandbox id (64 hex digits), also the sandbox container's id.
    pub id: String,
    /// The pod's Kubernetes namespace.
    pub namespace: String,
    /// The pod's name.
    pub name: String,
    /// The pod's uid.
    pub uid: String,
    /// The pod's log directory (`log_directory` of the sandbox config).
    pub log_dir: PathBuf,
    /// The pod's cgroup parent, kubelet-style: `<node cgroup>/kubepods/besteffort/pod<uid>`.
    pub cgroup_parent: String,
    /// The sandbox config it was created with (passed again with each container, as the
    /// kubelet does).
    pub config: PodSandboxConfig,
}

/// A container started by [`CriNode::run_container`].
#[derive(Debug, Clone)]
pub struct Container {
    /// The container id (64 hex digits).
    pub id: String,
    /// The sandbox id of its pod.
    pub pod_id: String,
    /// Its name in the pod.
    pub name: String,
    /// Its attempt (the kubelet's restart count).
    pub attempt: u32,
    /// Its CRI log file: `<pod log_dir>/<name>/<attempt>.log`.
    pub log_path: PathBuf,
}

impl CriNode {
    /// Starts containerd with everything under `dir` (which must exist and stay short enough
    /// for a unix socket path), waits until its CRI service answers `Version`, and imports the
    /// pause and app images.
    ///
    /// containerd dies with the thread that started it (`PR_SET_PDEATHSIG`): keep the node in
    /// the thread that created it.
    pub fn start(dir: &Path) -> CriNode {
        let dir = dir
            .canonicalize()
            .unwrap_or_else(|e| panic!("the node directory {}: {e}", dir.display()));
        let socket = dir.join("containerd.sock");
        // sun_path is 108 bytes; the ttrpc socket adds 6.
        assert!(
            socket.as_os_str().len() < 100,
            "the node directory {} is too long for containerd's socket paths",
            dir.display()
        );
        static NODES: AtomicU32 = AtomicU32::new(0);
        let cgroup_root = format!(
            "/ringtail-test-{}-{}",
            std::process::id(),
            NODES.fetch_add(1, Ordering::Relaxed)
        );
        let config = dir.join("containerd.toml");
        std::fs::write(&config, containerd_config(&dir, &socket)).expect("write containerd.toml");
        let log = std::fs::File::create(dir.join("containerd.log")).expect("create containerd.log");
        let mut command = Command::new(CONTAINERD);
        command
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log file"))
            .stderr(log);
        // SAFETY: only an async-signal-safe prctl between fork and exec.
        unsafe {
            use std::os::unix::process::CommandExt;
            command.pre_exec(|| {
                rustix::process::set_parent_process_death_signal(Some(
                    rustix::process::Signal::KILL,
                ))
                .map_err(std::io::Error::from)
            });
        }
        let containerd = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {CONTAINERD} (Debian `containerd`): {e}"));

        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let channel = {
            let _context = runtime.enter();
            let path = socket.clone();
            Endpoint::from_static("http://localhost")
                .connect_timeout(Duration::from_secs(5))
                .timeout(PATIENCE)
                .connect_with_connector_lazy(tower::service_fn(move |_: Uri| {
                    let path = path.clone();
                    async move {
                        Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(path).await?))
                    }
                }))
        };
        let mut node = CriNode {
            client: RuntimeServiceClient::new(channel.clone()),
            images: ImageServiceClient::new(channel),
            dir,
            socket,
            containerd,
            runtime,
            cgroup_root,
            pods: Mutex::new(Vec::new()),
        };
        // From here on a panic drops `node`, which cleans up.
        node.wait_ready();
        node.import_images();
        node
    }

    /// The node's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// containerd's gRPC socket (for `ctr --address`).
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// containerd's process id.
    pub fn containerd_pid(&self) -> u32 {
        self.containerd.id()
    }

    /// Where containerd puts the OCI bundles of the running containers (sandboxes included):
    /// `<state>/io.containerd.runtime.v2.task/k8s.io`, each `<container id>/config.json`. A
    /// bundle goes away when its task is deleted, i.e. soon after the container exits.
    pub fn bundle_dir(&self) -> PathBuf {
        self.dir
            .join("state/io.containerd.runtime.v2.task")
            .join(K8S_NAMESPACE)
    }

    /// The cgroup (relative to a hierarchy's root) under which all of this node's pods go.
    pub fn cgroup_root(&self) -> &str {
        &self.cgroup_root
    }

    /// Runs a pod sandbox like the kubelet would for a host-network pod: labels
    /// `io.kubernetes.pod.{name,namespace,uid}`, annotations `kubernetes.io/config.{seen,source}`,
    /// log directory `log_dir` (the kubelet's is `/var/log/pods/<namespace>_<name>_<uid>`; it
    /// is created here if missing), cgroup parent `<node cgroup>/kubepods/besteffort/pod<uid>`.
    pub fn run_pod(&self, namespace: &str, name: &str, uid: &str, log_dir: &Path) -> Pod {
        self.run_pod_with(namespace, name, uid, log_dir, &[], &[])
    }

    /// [`run_pod`](Self::run_pod) with the pod's own labels and annotations added (as the
    /// kubelet passes a pod's metadata on).
    pub fn run_pod_with(
        &self,
        namespace: &str,
        name: &str,
        uid: &str,
        log_dir: &Path,
        labels: &[(&str, &str)],
        annotations: &[(&str, &str)],
    ) -> Pod {
        std::fs::create_dir_all(log_dir)
            .unwrap_or_else(|e| panic!("create {}: {e}", log_dir.display()));
        let cgroup_parent = format!("{}/kubepods/besteffort/pod{uid}", self.cgroup_root);
        let mut pod_labels = map(labels);
        pod_labels.extend(map(&[
            ("io.kubernetes.pod.name", name),
            ("io.kubernetes.pod.namespace", namespace),
            ("io.kubernetes.pod.uid", uid),
        ]));
        let mut pod_annotations = map(annotations);
        pod_annotations.extend(map(&[
            ("kubernetes.io/config.source", "api"),
            ("kubernetes.io/config.seen", &rfc3339_now()),
        ]));
        let config = PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: name.to_owned(),
                uid: uid.to_owned(),
                namespace: namespace.to_owned(),
                attempt: 0,
            }),
            // Host network: no hostname, no DNS config (the node's resolv.conf is used).
            hostname: String::new(),
            log_directory: log_dir.to_str().expect("a UTF-8 log directory").to_owned(),
            labels: pod_labels,
            annotations: pod_annotations,
            linux: Some(LinuxPodSandboxConfig {
                cgroup_parent: cgroup_parent.clone(),
                security_context: Some(LinuxSandboxSecurityContext {
                    namespace_options: Some(namespace_options()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut client = self.client.clone();
        let request = RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: String::new(),
        };
        let id = self
            .call("RunPodSandbox", client.run_pod_sandbox(request))
            .pod_sandbox_id;
        self.pods.lock().expect("the pod list").push(id.clone());
        Pod {
            id,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            uid: uid.to_owned(),
            log_dir: log_dir.to_owned(),
            cgroup_parent,
            config,
        }
    }

    /// Creates and starts container `name` (attempt 0) of `pod` from [`APP_IMAGE`], running
    /// `command` (e.g. `["/bin/sh", "-c", "..."]`) with `env`; its log goes to
    /// `<pod log_dir>/<name>/0.log`, the kubelet's layout.
    pub fn run_container(
        &self,
        pod: &Pod,
        name: &str,
        command: &[&str],
        env: &[(&str, &str)],
    ) -> Container {
        self.run_container_attempt(pod, name, 0, command, env)
    }

    /// [`run_container`](Self::run_container) for a given attempt (the kubelet's restart
    /// count): log file `<name>/<attempt>.log`, annotation
    /// `io.kubernetes.container.restartCount`. A (pod, name, attempt) can be created once.
    pub fn run_container_attempt(
        &self,
        pod: &Pod,
        name: &str,
        attempt: u32,
        command: &[&str],
        env: &[(&str, &str)],
    ) -> Container {
        self.create_and_start(pod, name, attempt, command, env, &[])
    }

    /// [`run_container`](Self::run_container) with host directories or files mounted into
    /// the container: `(host path, container path, read-only)`, as the kubelet mounts volumes
    /// (an emptyDir is a host directory).
    pub fn run_container_with_mounts(
        &self,
        pod: &Pod,
        name: &str,
        command: &[&str],
        env: &[(&str, &str)],
        mounts: &[(&Path, &str, bool)],
    ) -> Container {
        self.create_and_start(pod, name, 0, command, env, mounts)
    }

    fn create_and_start(
        &self,
        pod: &Pod,
        name: &str,
        attempt: u32,
        command: &[&str],
        env: &[(&str, &str)],
        mounts: &[(&Path, &str, bool)],
    ) -> Container {
        let labels = map(&[
            ("io.kubernetes.container.name", name),
            ("io.kubernetes.pod.name", &pod.name),
            ("io.kubernetes.pod.namespace", &pod.namespace),
            ("io.kubernetes.pod.uid", &pod.uid),
        ]);
        let hash = format!("{:08x}", fnv1a(name.as_bytes()) as u32);
        let restart_count = attempt.to_string();
        let annotations = map(&[
            ("io.kubernetes.container.hash", &hash),
            ("io.kubernetes.container.restartCount", &restart_count),
            (
                "io.kubernetes.container.terminationMessagePath",
                "/dev/termination-log",
            ),
            ("io.kubernetes.container.terminationMessagePolicy", "File"),
            ("io.kubernetes.pod.terminationGracePeriod", "30"),
        ]);
        let log_path = format!("{name}/{attempt}.log");
        let config = ContainerConfig {
            metadata: Some(ContainerMetadata {
                name: name.to_owned(),
                attempt,
            }),
            image: Some(ImageSpec {
                image: APP_IMAGE.to_owned(),
                ..Default::default()
            }),
            command: command.iter().map(|s| (*s).to_owned()).collect(),
            envs: env
                .iter()
                .map(|(key, value)| KeyValue {
                    key: (*key).to_owned(),
                    value: (*value).to_owned(),
                })
                .collect(),
            labels,
            annotations,
            mounts: mounts
                .iter()
                .map(|(host, container, readonly)| Mount {
                    host_path: host.to_str().expect("a UTF-8 host path").to_owned(),
                    container_path: (*container).to_owned(),
                    readonly: *readonly,
                    ..Default::default()
                })
                .collect(),
            log_path: log_path.clone(),
            linux: Some(LinuxContainerConfig {
                security_context: Some(LinuxContainerSecurityContext {
                    namespace_options: Some(namespace_options()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut client = self.client.clone();
        let request = CreateContainerRequest {
            pod_sandbox_id: pod.id.clone(),
            config: Some(config),
            sandbox_config: Some(pod.config.clone()),
        };
        let id = self
            .call("CreateContainer", client.create_container(request))
            .container_id;
        let request = StartContainerRequest {
            container_id: id.clone(),
        };
        self.call("StartContainer", client.start_container(request));
        Container {
            id,
            pod_id: pod.id.clone(),
            name: name.to_owned(),
            attempt,
            log_path: pod.log_dir.join(log_path),
        }
    }

    /// Waits until `container` has exited (as CRI reports it, i.e. its output is in its log
    /// file) and returns its exit code; panics after `timeout`.
    pub fn wait_exited(&self, container: &Container, timeout: Duration) -> i32 {
        let deadline = Instant::now() + timeout;
        loop {
            let status = self.container_status(container, false);
            let state = status.status.as_ref().map(|s| s.state);
            if state == Some(ContainerState::ContainerExited as i32) {
                return status.status.map_or(-1, |s| s.exit_code);
            }
            if Instant::now() > deadline {
                self.fail(&format!(
                    "container {} ({}) has not exited after {timeout:?}: {status:?}",
                    container.name, container.id
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The host pid of `container`'s init process while it runs (CRI's verbose status).
    pub fn container_pid(&self, container: &Container) -> Option<u32> {
        let status = self.container_status(container, true);
        let info = status.info.get("info")?;
        let info: serde_json::Value = serde_json::from_str(info).ok()?;
        let pid = info.get("pid")?.as_u64()?;
        (pid != 0).then_some(pid as u32)
    }

    /// CRI's `ContainerStatus` of `container`.
    pub fn container_status(
        &self,
        container: &Container,
        verbose: bool,
    ) -> k8s_cri::v1::ContainerStatusResponse {
        let mut client = self.client.clone();
        let request = ContainerStatusRequest {
            container_id: container.id.clone(),
            verbose,
        };
        self.call("ContainerStatus", client.container_status(request))
    }

    /// Stops `container` as the kubelet does when a pod is deleted: SIGTERM, then SIGKILL
    /// after `grace` (the pod's termination grace period). Returns once it has exited.
    pub fn stop_container(&self, container: &Container, grace: Duration) {
        let mut client = self.client.clone();
        let request = StopContainerRequest {
            container_id: container.id.clone(),
            timeout: grace.as_secs() as i64,
        };
        self.call("StopContainer", client.stop_container(request));
    }

    /// Stops the pod's sandbox: its containers are killed (SIGKILL, as with a zero grace
    /// period), its pause process too; the sandbox and the containers stay until
    /// [`remove_pod`](Self::remove_pod).
    pub fn stop_pod(&self, pod: &Pod) {
        let mut client = self.client.clone();
        let request = StopPodSandboxRequest {
            pod_sandbox_id: pod.id.clone(),
        };
        self.call("StopPodSandbox", client.stop_pod_sandbox(request));
    }

    /// Stops and removes the pod, its containers with it (their log files stay, as with the
    /// kubelet until it cleans up).
    pub fn remove_pod(&self, pod: &Pod) {
        self.stop_pod(pod);
        let mut client = self.client.clone();
        let request = RemovePodSandboxRequest {
            pod_sandbox_id: pod.id.clone(),
        };
        self.call("RemovePodSandbox", client.remove_pod_sandbox(request));
        self.pods
            .lock()
            .expect("the pod list")
            .retain(|id| *id != pod.id);
    }

    /// The last lines of containerd's log.
    pub fn log_tail(&self) -> String {
        log_tail(&self.dir.join("containerd.log"), 60)
    }

    /// Runs one RPC on the node's runtime; panics with containerd's log tail if it fails.
    fn call<T>(
        &self,
        what: &str,
        rpc: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> T {
        match self.runtime.block_on(rpc) {
            Ok(response) => response.into_inner(),
            Err(status) => self.fail(&format!("CRI {what} failed: {status}")),
        }
    }

    fn fail(&self, what: &str) -> ! {
        panic!(
            "{what}\n--- tail of {}/containerd.log ---\n{}",
            self.dir.display(),
            self.log_tail()
        )
    }

    /// Waits until the CRI service answers `Version` (it answers `Unimplemented` until the
    /// plugin is up).
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Ok(Some(status)) = self.containerd.try_wait() {
                self.fail(&format!("containerd exited at start-up: {status}"));
            }
            let mut client = self.client.clone();
            let request = VersionRequest {
                version: "v1".to_owned(),
            };
            let last = match self.runtime.block_on(client.version(request)) {
                Ok(version) if !version.get_ref().runtime_api_version.is_empty() => return,
                Ok(version) => format!("{:?}", version.get_ref()),
                Err(status) => status.to_string(),
            };
            if Instant::now() > deadline {
                self.fail(&format!(
                    "the CRI service did not answer Version in {PATIENCE:?}: {last}"
                ));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Imports the images with `ctr` and waits until the CRI plugin has seen them.
    fn import_images(&self) {
        let tarball = self.dir.join("images.tar");
        std::fs::write(&tarball, images_tarball()).expect("write images.tar");
        let output = Command::new(CTR)
            .arg("--address")
            .arg(&self.socket)
            .args(["--namespace", K8S_NAMESPACE, "images", "import"])
            .arg(&tarball)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {CTR}: {e}"));
        if !output.status.success() {
            self.fail(&format!(
                "ctr images import failed ({}): {}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        let _ = std::fs::remove_file(&tarball);
        // The CRI plugin learns of imported images from containerd's events.
        let deadline = Instant::now() + PATIENCE;
        for image in [PAUSE_IMAGE, APP_IMAGE] {
            loop {
                let mut client = self.images.clone();
                let request = ImageStatusRequest {
                    image: Some(ImageSpec {
                        image: image.to_owned(),
                        ..Default::default()
                    }),
                    verbose: false,
                };
                if self
                    .call("ImageStatus", client.image_status(request))
                    .image
                    .is_some()
                {
                    break;
                }
                if Instant::now() > deadline {
                    self.fail(&format!("the CRI plugin does not see image {image}"));
                }
                std::thread::sleep(Duration::from_millis(25));
            }
        }
    }

    /// Stops and removes every pod containerd knows (not only those recorded: a failed call
    /// may have left one).
    fn remove_all_pods(&self) -> Result<(), String> {
        let mut client = self.client.clone();
        let list = self
            .runtime
            .block_on(client.list_pod_sandbox(ListPodSandboxRequest { filter: None }))
            .map_err(|e| format!("ListPodSandbox: {e}"))?
            .into_inner();
        let mut errors = Vec::new();
        for sandbox in list.items {
            let id = sandbox.id;
            let stop = StopPodSandboxRequest {
                pod_sandbox_id: id.clone(),
            };
            if let Err(e) = self.runtime.block_on(client.stop_pod_sandbox(stop)) {
                errors.push(format!("StopPodSandbox {id}: {e}"));
            }
            let remove = RemovePodSandboxRequest {
                pod_sandbox_id: id.clone(),
            };
            if let Err(e) = self.runtime.block_on(client.remove_pod_sandbox(remove)) {
                errors.push(format!("RemovePodSandbox {id}: {e}"));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }

    /// Stops containerd: SIGTERM, then SIGKILL after 10 s.
    fn stop_containerd(&mut self) {
        if let Ok(Some(_)) = self.containerd.try_wait() {
            return;
        }
        signal(self.containerd.id(), rustix::process::Signal::TERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.containerd.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.containerd.kill();
        let _ = self.containerd.wait();
    }

    /// Kills what is left of this node's processes: shims still serving this containerd, and
    /// any process in the node's cgroups.
    fn kill_leftovers(&self) -> Vec<String> {
        let mut killed = Vec::new();
        let address = self.socket.to_string_lossy().into_owned();
        if let Ok(entries) = std::fs::read_dir("/proc") {
            for entry in entries.flatten() {
                let Some(pid) = entry
                    .file_name()
                    .to_str()
                    .and_then(|s| s.parse::<u32>().ok())
                else {
                    continue;
                };
                let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
                    continue;
                };
                let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
                let is_our_shim = args
                    .first()
                    .is_some_and(|a| a.ends_with(b"containerd-shim-runc-v2"))
                    && args
                        .windows(2)
                        .any(|w| w[0] == b"-address" && w[1] == address.as_bytes());
                if is_our_shim {
                    signal(pid, rustix::process::Signal::KILL);
                    killed.push(format!("shim {pid}"));
                }
            }
        }
        // Every container process is in every hierarchy: collect them once.
        let mut pids = std::collections::BTreeSet::new();
        for hierarchy in cgroup_hierarchies() {
            let root = hierarchy.join(self.cgroup_root.trim_start_matches('/'));
            for cgroup in cgroup_tree(&root) {
                let procs =
                    std::fs::read_to_string(cgroup.join("cgroup.procs")).unwrap_or_default();
                pids.extend(procs.lines().filter_map(|l| l.trim().parse::<u32>().ok()));
            }
        }
        for pid in pids {
            signal(pid, rustix::process::Signal::KILL);
            killed.push(format!("{pid} in cgroup {}", self.cgroup_root));
        }
        killed
    }

    /// Removes the node's cgroups (deepest first) in every hierarchy, waiting a little for
    /// killed processes to leave them.
    fn remove_cgroups(&self) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut left = Vec::new();
        for hierarchy in cgroup_hierarchies() {
            let root = hierarchy.join(self.cgroup_root.trim_start_matches('/'));
            let mut tree = cgroup_tree(&root);
            tree.reverse();
            for cgroup in tree {
                while let Err(e) = std::fs::remove_dir(&cgroup) {
                    if e.kind() == std::io::ErrorKind::NotFound {
                        break;
                    }
                    if Instant::now() > deadline {
                        left.push(format!("{}: {e}", cgroup.display()));
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
        left
    }
}

impl Drop for CriNode {
    /// Removes every pod, stops containerd, kills whatever of the node is left, removes its
    /// cgroups and unmounts everything under its directory, so that it can be deleted.
    fn drop(&mut self) {
        let mut problems = Vec::new();
        if matches!(self.containerd.try_wait(), Ok(None))
            && let Err(e) = self.remove_all_pods()
        {
            problems.push(e);
        }
        self.stop_containerd();
        let killed = self.kill_leftovers();
        if !killed.is_empty() {
            problems.push(format!("killed leftover processes: {}", killed.join(", ")));
        }
        problems.extend(self.remove_cgroups());
        let unmounted = unmount_under(&self.dir);
        if !unmounted.is_empty() {
            problems.push(format!("unmounted leftovers: {}", unmounted.join(", ")));
        }
        if !problems.is_empty() {
            eprintln!(
                "CriNode in {}: cleanup: {}\n--- tail of containerd.log ---\n{}",
                self.dir.display(),
                problems.join("\n  "),
                self.log_tail()
            );
        }
    }
}

/// Mount points under `dir` (from `/proc/self/mountinfo`), deepest first.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut mounts: Vec<PathBuf> = mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|field| PathBuf::from(unescape_mountinfo(field)))
        .filter(|mount| mount.starts_with(dir))
        .collect();
    mounts.sort_by_key(|m| std::cmp::Reverse(m.as_os_str().len()));
    mounts.dedup();
    mounts
}

/// Unmounts (lazily) everything under `dir`; returns what it unmounted.
fn unmount_under(dir: &Path) -> Vec<String> {
    let mut unmounted = Vec::new();
    // Stacked mounts need more than one pass.
    for _ in 0..10 {
        let mounts = mounts_under(dir);
        if mounts.is_empty() {
            break;
        }
        for mount in mounts {
            match rustix::mount::unmount(&mount, rustix::mount::UnmountFlags::DETACH) {
                Ok(()) => unmounted.push(mount.display().to_string()),
                Err(e) => eprintln!("CriNode: cannot unmount {}: {e}", mount.display()),
            }
        }
    }
    unmounted
}

/// `\040` and friends in a mountinfo path field.
fn unescape_mountinfo(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            out.push(
                (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0'),
            );
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The mounted cgroup hierarchies: `/sys/fs/cgroup` alone with cgroup v2, else each v1
/// controller's (and the hybrid `unified`) mount.
fn cgroup_hierarchies() -> Vec<PathBuf> {
    let base = Path::new("/sys/fs/cgroup");
    if base.join("cgroup.controllers").exists() {
        return vec![base.to_owned()];
    }
    let mut hierarchies = Vec::new();
    if let Ok(entries) = std::fs::read_dir(base) {
        for entry in entries.flatten() {
            let path = entry.path();
            // `cpu,cpuacct`-style links point at a hierarchy listed under its own name.
            if entry.file_type().is_ok_and(|t| t.is_dir()) && path.join("cgroup.procs").exists() {
                hierarchies.push(path);
            }
        }
    }
    hierarchies
}

/// `root` and every cgroup below it, parents before children (empty if `root` is missing).
fn cgroup_tree(root: &Path) -> Vec<PathBuf> {
    let mut tree = Vec::new();
    if !root.is_dir() {
        return tree;
    }
    let mut next = vec![root.to_owned()];
    while let Some(dir) = next.pop() {
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries.flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    next.push(entry.path());
                }
            }
        }
        tree.push(dir);
    }
    // Depth-first pops give parents before children, but siblings' subtrees interleave;
    // sorting by depth keeps "parents first" for all.
    tree.sort_by_key(|p| p.components().count());
    tree
}

fn signal(pid: u32, signal: rustix::process::Signal) {
    if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
        let _ = rustix::process::kill_process(pid, signal);
    }
}

/// The kubelet's namespaces for a host-network pod: node network, a pid namespace per
/// container, the pod's IPC namespace.
fn namespace_options() -> NamespaceOption {
    NamespaceOption {
        network: NamespaceMode::Node as i32,
        pid: NamespaceMode::Container as i32,
        ipc: NamespaceMode::Pod as i32,
        ..Default::default()
    }
}

fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Now as RFC 3339 UTC with nanoseconds, like the kubelet's `kubernetes.io/config.seen`.
fn rfc3339_now() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        now.subsec_nanos()
    )
}

fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| format!("({e})"));
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// containerd's configuration: everything under `dir`, only the overlayfs and native
/// snapshotters, the CRI plugin with runc, no CNI (host-network pods only), the streaming
/// server on a free loopback port.
fn containerd_config(dir: &Path, socket: &Path) -> String {
    let d = dir.display();
    let s = socket.display();
    format!(
        r#"version = 2
root = "{d}/root"
state = "{d}/state"
temp = "{d}/tmp"
disabled_plugins = [
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.internal.v1.tracing",
  "io.containerd.tracing.processor.v1.otlp",
]

[grpc]
  address = "{s}"

[ttrpc]
  address = "{s}.ttrpc"

[debug]
  address = ""
  level = "info"

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  # root here lacks CAP_SYS_RESOURCE: never lower an oom_score_adj below containerd's.
  restrict_oom_score_adj = true
  disable_apparmor = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  max_container_log_line_size = 16384

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{d}/cni/bin"
    conf_dir = "{d}/cni/conf"

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "{RUNC}"
        Root = "{d}/runc"
        SystemdCgroup = false
"#
    )
}

/// The OCI image tarball with [`PAUSE_IMAGE`] and [`APP_IMAGE`], built once per process.
fn images_tarball() -> &'static [u8] {
    static TARBALL: OnceLock<Vec<u8>> = OnceLock::new();
    TARBALL.get_or_init(build_images_tarball)
}

fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

/// An OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/*`) as a tar: one
/// uncompressed busybox layer shared by two images that differ in their entrypoint.
fn build_images_tarball() -> Vec<u8> {
    let layer = busybox_layer();
    let layer_digest = sha256_digest(&layer);
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let mut blobs: Vec<(String, Vec<u8>)> = Vec::new();
    let mut manifests = Vec::new();
    let images: [(&str, &[&str], &[&str]); 2] = [
        (PAUSE_IMAGE, &["/bin/sleep", "2147483647"], &[]),
        (APP_IMAGE, &[], &["/bin/sh"]),
    ];
    for (name, entrypoint, cmd) in images {
        let config = serde_json::json!({
            "architecture": arch,
            "os": "linux",
            "config": {
                "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                "Entrypoint": if entrypoint.is_empty() { serde_json::Value::Null } else { serde_json::json!(entrypoint) },
                "Cmd": if cmd.is_empty() { serde_json::Value::Null } else { serde_json::json!(cmd) },
                "WorkingDir": "/",
            },
            "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        })
        .to_string()
        .into_bytes();
        let config_digest = sha256_digest(&config);
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": config.len(),
            },
            "layers": [{
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": layer_digest,
                "size": layer.len(),
            }],
        })
        .to_string()
        .into_bytes();
        let manifest_digest = sha256_digest(&manifest);
        let tag = name.rsplit_once(':').map_or("latest", |(_, tag)| tag);
        manifests.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": manifest.len(),
            "platform": {"architecture": arch, "os": "linux"},
            "annotations": {
                "io.containerd.image.name": name,
                "org.opencontainers.image.ref.name": tag,
            },
        }));
        blobs.push((config_digest, config));
        blobs.push((manifest_digest, manifest));
    }
    blobs.push((layer_digest, layer));
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests,
    })
    .to_string();

    let mut tar = TarWriter::new();
    tar.file("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#, 0o644);
    tar.file("index.json", index.as_bytes(), 0o644);
    tar.dir("blobs/", 0o755);
    tar.dir("blobs/sha256/", 0o755);
    for (digest, bytes) in blobs {
        let hex = digest.trim_start_matches("sha256:");
        tar.file(&format!("blobs/sha256/{hex}"), &bytes, 0o644);
    }
    tar.finish()
}

/// The rootfs: `/bin/busybox` (busybox-static) with every applet linked beside it, `/etc`
/// with a root user, and the usual mount points.
fn busybox_layer() -> Vec<u8> {
    let busybox = std::fs::read(BUSYBOX).unwrap_or_else(|e| {
        panic!("{BUSYBOX}: {e} (Debian `busybox-static` provides the containers' rootfs)")
    });
    let list = Command::new(BUSYBOX)
        .arg("--list")
        .output()
        .expect("busybox --list");
    let applets = String::from_utf8_lossy(&list.stdout).into_owned();
    let mut tar = TarWriter::new();
    for dir in ["bin/", "dev/", "etc/", "proc/", "root/", "sys/", "var/"] {
        tar.dir(dir, 0o755);
    }
    tar.dir("tmp/", 0o1777);
    tar.file("bin/busybox", &busybox, 0o755);
    for applet in applets.lines().map(str::trim) {
        if !applet.is_empty() && applet != "busybox" && !applet.contains('/') {
            tar.symlink(&format!("bin/{applet}"), "busybox");
        }
    }
    tar.file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n", 0o644);
    tar.file("etc/group", b"root:x:0:\n", 0o644);
    tar.finish()
}

/// A tar archive in memory, with fixed owners and times so that the digests are stable.
struct TarWriter(tar::Builder<Vec<u8>>);

impl TarWriter {
    fn new() -> TarWriter {
        TarWriter(tar::Builder::new(Vec::new()))
    }

    fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(1_700_000_000);
        header.set_size(size);
        header
    }

    fn file(&mut self, path: &str, bytes: &[u8], mode: u32) {
        let mut header = Self::header(tar::EntryType::Regular, mode, bytes.len() as u64);
        self.0
            .append_data(&mut header, path, bytes)
            .expect("append a tar file");
    }

    fn dir(&mut self, path: &str, mode: u32) {
        let mut header = Self::header(tar::EntryType::Directory, mode, 0);
        self.0
            .append_data(&mut header, path, std::io::empty())
            .expect("append a tar directory");
    }

    fn symlink(&mut self, path: &str, target: &str) {
        let mut header = Self::header(tar::EntryType::Symlink, 0o777, 0);
        self.0
            .append_link(&mut header, path, target)
            .expect("append a tar symlink");
    }

    fn finish(self) -> Vec<u8> {
        self.0.into_inner().expect("finish the tar")
    }
}
