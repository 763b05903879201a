//! Pod labels and annotations from the container runtime, over its CRI socket — no API server.
//!
//! The kubelet hands every pod's labels and annotations to the runtime when it creates the
//! pod's sandbox (`PodSandboxConfig.labels` / `.annotations`), and the runtime serves them to
//! anyone on the node through `RuntimeService.ListPodSandbox` (containerd and cri-o alike). So
//! a collector on every node can know what platform teams route by (`app`, `team`, …) without
//! thousands of watches on the API server.
//!
//! The map is listed once at start-up, then when discovery sees a pod appear (its log
//! directory, its runtime bundle, its cgroup: [`Cri::hint`]), and once when a pod is asked for
//! that it does not hold — no timer polls. A pod's log files are written only once its sandbox
//! runs, so a listing begun after a file was found holds its pod: a miss waits for one
//! (listings at least [`LIST_SPACING`] apart, so a burst of new pods shares them), and a pod
//! that listing does not have either (another runtime's, or removed already) is not asked for
//! again for [`UNKNOWN_FOR`]. Pods that leave the list are kept (the last [`GONE_KEPT`]), so
//! files read after their pod was removed keep its labels.
//!
//! Listings run on their own thread. Each call has a deadline ([`CALL_TIMEOUT`]); a socket
//! that does not answer is logged once (and again when it answers), asked again at most every
//! [`FAILING_PAUSE`] in the background, and files opened meanwhile carry no labels without
//! waiting for it. Kubelet's own keys (`io.kubernetes.*`) are left out: they repeat what the
//! record says already.
//!
//! The messages are the few fields of CRI `runtime.v1` this needs, declared with prost's
//! derive (protobuf skips the rest), sent with tonic's gRPC client over the unix socket.
//!
//! Owns the connection to the runtime and the map of pods; it may not decide what records
//! carry.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use tonic::transport::{Channel, Endpoint};

/// Where runtimes put their CRI socket, in the order tried when none is configured.
pub const DEFAULT_SOCKETS: [&str; 2] = ["/run/containerd/containerd.sock", "/run/crio/crio.sock"];
/// How long one call to the runtime may take.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// Listings to find pods not in the map are at least this far apart.
pub const LIST_SPACING: Duration = Duration::from_millis(100);
/// A pod a fresh listing did not have is not asked for again for this long.
pub const UNKNOWN_FOR: Duration = Duration::from_secs(10);
/// While the runtime does not answer, it is asked again at most this often.
pub const FAILING_PAUSE: Duration = Duration::from_secs(10);
/// Pods remembered as unknown at most (expired ones are dropped past it).
const UNKNOWN_KEPT: usize = 4096;
/// Pods kept after they left the runtime's list.
pub const GONE_KEPT: usize = 4096;

/// gRPC method of `ListPodSandbox`.
const LIST_POD_SANDBOX: &str = "/runtime.v1.RuntimeService/ListPodSandbox";

/// Why the runtime could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum CriError {
    /// The client's runtime (a tokio runtime for the gRPC calls) could not start.
    #[error("cannot start the CRI client: {source}")]
    Start {
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// The call failed (no socket, refused, not CRI v1, …).
    #[error("CRI ListPodSandbox on {socket} failed: {status}")]
    Call {
        /// The socket.
        socket: PathBuf,
        /// What gRPC said.
        status: Box<tonic::Status>,
    },
    /// The connection could not be made ready.
    #[error("cannot connect to the CRI socket {socket}: {source}")]
    Connect {
        /// The socket.
        socket: PathBuf,
        /// What the transport said.
        #[source]
        source: tonic::transport::Error,
    },
    /// No answer within [`CALL_TIMEOUT`].
    #[error("CRI ListPodSandbox on {socket} did not answer within {timeout:?}")]
    Timeout {
        /// The socket.
        socket: PathBuf,
        /// The deadline.
        timeout: Duration,
    },
}

/// What the runtime knows of a pod that records carry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodLabels {
    /// The pod's labels, without kubelet's `io.kubernetes.*`.
    pub labels: BTreeMap<String, String>,
    /// The pod's annotations, without kubelet's `io.kubernetes.*`.
    pub annotations: BTreeMap<String, String>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ListPodSandboxRequest {}

#[derive(Clone, PartialEq, prost::Message)]
struct ListPodSandboxResponse {
    #[prost(message, repeated, tag = "1")]
    items: Vec<PodSandbox>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct PodSandbox {
    #[prost(message, optional, tag = "2")]
    metadata: Option<PodSandboxMetadata>,
    #[prost(map = "string, string", tag = "5")]
    labels: HashMap<String, String>,
    #[prost(map = "string, string", tag = "6")]
    annotations: HashMap<String, String>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct PodSandboxMetadata {
    #[prost(string, tag = "2")]
    uid: String,
}

/// The runtime's pods, by pod UID: a handle on the thread that lists them.
///
/// Listings run on their own thread (with its own small tokio runtime for the gRPC calls), so
/// a runtime that hangs costs discovery at most one wait of [`CALL_TIMEOUT`] — the first miss
/// after it stopped answering — and no wait at all while it keeps failing.
#[derive(Debug)]
pub struct Cri {
    socket: PathBuf,
    shared: Arc<Shared>,
    /// UIDs a listing made after they were asked for did not have, until when.
    unknown: HashMap<String, Instant>,
}

/// What the handle and the listing thread share.
#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    /// Notified when a listing is wanted, when one is done, and on stop.
    changed: Condvar,
}

/// The map of pods and the listings' progress.
#[derive(Debug, Default)]
struct State {
    pods: HashMap<String, Arc<PodLabels>>,
    /// UIDs no longer listed, oldest first.
    gone: VecDeque<String>,
    /// A listing is asked for and has not begun.
    wanted: bool,
    /// Listings begun, and listings done (answered or failed).
    begun: u64,
    done: u64,
    /// The last listing failed (logged once until one succeeds).
    failing: bool,
    /// The handle is gone: the thread ends.
    stop: bool,
}

impl Cri {
    /// A client of the runtime at `socket`: its listing thread is started; nothing is asked
    /// yet.
    pub fn new(socket: &Path) -> Result<Self, CriError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| CriError::Start { source })?;
        let channel = {
            let _context = runtime.enter();
            let path = socket.to_path_buf();
            Endpoint::from_static("http://localhost")
                .connect_timeout(CALL_TIMEOUT)
                .timeout(CALL_TIMEOUT)
                .connect_with_connector_lazy(tower::service_fn(move |_: http::Uri| {
                    let path = path.clone();
                    async move {
                        let stream = tokio::net::UnixStream::connect(path).await?;
                        Ok::<_, io::Error>(hyper_util::rt::TokioIo::new(stream))
                    }
                }))
        };
        let shared = Arc::new(Shared::default());
        let lister = Lister {
            socket: socket.to_path_buf(),
            runtime,
            channel,
            shared: Arc::clone(&shared),
        };
        std::thread::Builder::new()
            .name("cri".to_string())
            .spawn(move || lister.run())
            .map_err(|source| CriError::Start { source })?;
        Ok(Self {
            socket: socket.to_path_buf(),
            shared,
            unknown: HashMap::new(),
        })
    }

    /// The socket asked.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Number of pods known (listed now or kept after they left).
    pub fn pods(&self) -> usize {
        self.shared.lock().pods.len()
    }

    /// The labels of pod `uid`. A pod not known waits for a listing that begins after this
    /// call (listings are at least [`LIST_SPACING`] apart), unless one since it was first
    /// asked for did not have it, or the runtime is failing (then it is asked again in the
    /// background and the answer is `None` at once).
    pub fn pod(&mut self, uid: &str) -> Option<Arc<PodLabels>> {
        if let Some(pod) = self.shared.lock().pods.get(uid) {
            return Some(Arc::clone(pod));
        }
        let now = Instant::now();
        if self.unknown.get(uid).is_some_and(|until| now < *until) {
            return None;
        }
        let (pod, failing) = self.list_and_wait(|state| state.pods.get(uid).cloned());
        if pod.is_none() && !failing {
            if self.unknown.len() >= UNKNOWN_KEPT {
                self.unknown.retain(|_, until| now < *until);
            }
            if self.unknown.len() < UNKNOWN_KEPT {
                self.unknown.insert(uid.to_string(), now + UNKNOWN_FOR);
            }
        }
        pod
    }

    /// Lists the runtime's pods now and waits for the answer (at most [`LIST_SPACING`] and
    /// [`CALL_TIMEOUT`]); a failure is logged (once until a listing succeeds).
    pub fn refresh(&mut self) {
        self.list_and_wait(|_| ());
    }

    /// Asks for a listing without waiting for it: discovery saw a pod appear (its log
    /// directory, its runtime bundle, its cgroup), so that its labels are there by the time
    /// its files are opened. Listings asked for together are one.
    pub fn hint(&self) {
        let mut state = self.shared.lock();
        if !state.wanted {
            state.wanted = true;
            self.shared.changed.notify_all();
        }
    }

    /// Asks for a listing and waits until one begun after now is done (unless the runtime
    /// is failing); then `read` looks at the map. Returns what it read and whether the
    /// runtime is failing.
    fn list_and_wait<T>(&mut self, read: impl FnOnce(&State) -> T) -> (T, bool) {
        let mut state = self.shared.lock();
        state.wanted = true;
        self.shared.changed.notify_all();
        if !state.failing {
            // The next listing to begin is one begun after now.
            let target = state.begun + 1;
            let deadline = Instant::now() + LIST_SPACING + CALL_TIMEOUT + CALL_TIMEOUT / 4;
            while state.done < target && !state.failing {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                state = match self.shared.changed.wait_timeout(state, left) {
                    Ok((state, _)) => state,
                    Err(poisoned) => poisoned.into_inner().0,
                };
            }
        }
        (read(&state), state.failing)
    }
}

impl Drop for Cri {
    fn drop(&mut self) {
        // The thread ends after a call in progress (at most CALL_TIMEOUT); not waited for.
        self.shared.lock().stop = true;
        self.shared.changed.notify_all();
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic elsewhere while holding it leaves a map that is still consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The listing thread: owns the connection to the runtime.
struct Lister {
    socket: PathBuf,
    runtime: tokio::runtime::Runtime,
    channel: Channel,
    shared: Arc<Shared>,
}

impl Lister {
    /// Lists whenever a listing is wanted: at least [`LIST_SPACING`] after the last one, or
    /// [`FAILING_PAUSE`] while the runtime fails.
    fn run(self) {
        let mut last: Option<Instant> = None;
        loop {
            {
                let mut state = self.shared.lock();
                loop {
                    if state.stop {
                        return;
                    }
                    let pause = if state.failing {
                        FAILING_PAUSE
                    } else {
                        LIST_SPACING
                    };
                    let wait = last.map_or(Duration::ZERO, |l| pause.saturating_sub(l.elapsed()));
                    if state.wanted && wait.is_zero() {
                        break;
                    }
                    state = if state.wanted {
                        match self.shared.changed.wait_timeout(state, wait) {
                            Ok((state, _)) => state,
                            Err(poisoned) => poisoned.into_inner().0,
                        }
                    } else {
                        match self.shared.changed.wait(state) {
                            Ok(state) => state,
                            Err(poisoned) => poisoned.into_inner(),
                        }
                    };
                }
                state.wanted = false;
                state.begun += 1;
            }
            last = Some(Instant::now());
            let listed = self.list();
            let mut state = self.shared.lock();
            match listed {
                Ok(items) => {
                    if std::mem::take(&mut state.failing) {
                        tracing::info!(socket = %self.socket.display(), "the CRI socket answers again: records carry pod labels and annotations");
                    }
                    state.merge(items);
                }
                Err(error) => {
                    if !std::mem::replace(&mut state.failing, true) {
                        tracing::warn!(%error, "pod labels and annotations are not known while the runtime does not answer; files opened meanwhile carry none");
                    }
                }
            }
            state.done += 1;
            self.shared.changed.notify_all();
        }
    }

    fn list(&self) -> Result<Vec<PodSandbox>, CriError> {
        let socket = self.socket.clone();
        let mut grpc = tonic::client::Grpc::new(self.channel.clone());
        let call = async move {
            grpc.ready().await.map_err(|source| CriError::Connect {
                socket: socket.clone(),
                source,
            })?;
            let path = http::uri::PathAndQuery::from_static(LIST_POD_SANDBOX);
            let codec =
                tonic_prost::ProstCodec::<ListPodSandboxRequest, ListPodSandboxResponse>::default();
            grpc.unary(tonic::Request::new(ListPodSandboxRequest {}), path, codec)
                .await
                .map(|response| response.into_inner().items)
                .map_err(|status| CriError::Call {
                    socket,
                    status: Box::new(status),
                })
        };
        let socket = self.socket.clone();
        self.runtime
            .block_on(async { tokio::time::timeout(CALL_TIMEOUT, call).await })
            .map_err(|_| CriError::Timeout {
                socket,
                timeout: CALL_TIMEOUT,
            })?
    }
}

impl State {
    /// Takes in a listing: every pod listed is (again) current; those that left are kept,
    /// the oldest forgotten past [`GONE_KEPT`].
    fn merge(&mut self, items: Vec<PodSandbox>) {
        let mut listed = HashMap::with_capacity(items.len());
        for item in items {
            let Some(uid) = item.metadata.map(|m| m.uid).filter(|u| !u.is_empty()) else {
                continue;
            };
            let pod = PodLabels {
                labels: without_kubelet_keys(item.labels),
                annotations: without_kubelet_keys(item.annotations),
            };
            listed.insert(uid, Arc::new(pod));
        }
        let left: Vec<String> = self
            .pods
            .keys()
            .filter(|uid| !listed.contains_key(*uid) && !self.gone.contains(uid))
            .cloned()
            .collect();
        self.gone.retain(|uid| !listed.contains_key(uid));
        self.gone.extend(left);
        while self.gone.len() > GONE_KEPT {
            if let Some(uid) = self.gone.pop_front() {
                self.pods.remove(&uid);
            }
        }
        self.pods.extend(listed);
    }
}

/// `map` without kubelet's own keys (`io.kubernetes.*`).
fn without_kubelet_keys(map: HashMap<String, String>) -> BTreeMap<String, String> {
    map.into_iter()
        .filter(|(k, _)| !k.starts_with("io.kubernetes."))
        .collect()
}

/// The socket to ask: `configured`, else the first of [`DEFAULT_SOCKETS`] that exists.
pub fn find_socket(configured: Option<&Path>) -> Option<PathBuf> {
    match configured {
        Some(path) => Some(path.to_path_buf()),
        None => DEFAULT_SOCKETS
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sandbox(uid: &str, labels: &[(&str, &str)]) -> PodSandbox {
        PodSandbox {
            metadata: Some(PodSandboxMetadata {
                uid: uid.to_string(),
            }),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            annotations: HashMap::new(),
        }
    }

    #[test]
    fn pods_that_leave_the_list_are_kept_and_kubelet_keys_left_out() {
        let mut state = State::default();
        state.merge(vec![
            sandbox("a", &[("app", "web"), ("io.kubernetes.pod.name", "web-0")]),
            sandbox("b", &[("app", "db")]),
        ]);
        state.merge(vec![sandbox("b", &[("app", "db2")])]);
        let a = state.pods.get("a").unwrap();
        assert_eq!(
            a.labels,
            BTreeMap::from([("app".to_string(), "web".to_string())])
        );
        assert_eq!(state.pods.get("b").unwrap().labels["app"], "db2");
        assert_eq!(state.gone, VecDeque::from(["a".to_string()]));
        // Listed again: current again.
        state.merge(vec![sandbox("a", &[("app", "web")])]);
        assert!(state.gone.iter().all(|u| u != "a"));
    }

    #[test]
    fn a_socket_that_is_not_there_is_asked_again_only_after_a_pause() {
        let dir = tempfile::tempdir().unwrap();
        let mut cri = Cri::new(&dir.path().join("cri.sock")).unwrap();
        assert!(cri.pod("a").is_none());
        let state = cri.shared.lock();
        assert!(state.failing);
        assert_eq!(state.done, 1);
        drop(state);
        assert!(cri.pod("b").is_none());
        cri.hint();
        std::thread::sleep(LIST_SPACING * 3);
        let state = cri.shared.lock();
        assert_eq!(state.begun, 1, "within FAILING_PAUSE: not asked again");
        assert!(state.wanted, "asked again once the pause is over");
    }

    /// A runtime that accepts connections and never answers costs one wait of the call's
    /// deadline; while it keeps failing, lookups do not wait.
    #[test]
    fn a_hanging_socket_costs_one_deadline_then_no_wait() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("cri.sock");
        let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        let _held = std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming() {
                held.push(stream);
            }
        });
        let mut cri = Cri::new(&socket).unwrap();
        // Discovery's hint begins a listing without anyone waiting for it.
        cri.hint();
        std::thread::sleep(LIST_SPACING / 2);
        let state = cri.shared.lock();
        assert_eq!((state.begun, state.done), (1, 0));
        drop(state);
        let started = Instant::now();
        assert!(cri.pod("a").is_none());
        let first = started.elapsed();
        assert!(first >= CALL_TIMEOUT - LIST_SPACING, "{first:?}");
        assert!(first < CALL_TIMEOUT * 2, "{first:?}");
        let started = Instant::now();
        for uid in ["b", "c", "d"] {
            assert!(cri.pod(uid).is_none());
        }
        assert!(
            started.elapsed() < Duration::from_millis(100),
            "{:?}",
            started.elapsed()
        );
    }
}
