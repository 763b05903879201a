//! Starting, wiring and stopping the pipeline.
//!
//! ```text
//! discovery ─Control/dirty─▶ reader×R ─Vec<WorkItem>─▶ worker×W ─Batch─▶ sink×S ─ack─▶ tracker
//! ```
//! Every arrow is a bounded queue. Shutdown goes front to back: discovery stops, readers stop
//! reading and close the worker queues, workers drain them, emit pending multi-line records
//! and close the sink queues, sinks drain, make everything durable and acknowledge it, and the
//! final checkpoint is written. The whole sequence is bounded by `pipeline.shutdown_timeout`;
//! past it, sinks stuck retrying give up and the exit reports what was not acknowledged.
//!
//! Checkpoints: loaded from `data_dir` before discovery's first scan (so files resume where
//! they were acknowledged), written by a checkpointer thread every `checkpoints.interval` when
//! they changed, and once more after the sinks have stopped.

use std::collections::BTreeMap;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam::channel::{Receiver, Sender, bounded, select};

use crate::ack::AckTracker;
use crate::api::{Api, ApiError, Health};
use crate::buffer::BufferPool;
use crate::checkpoint::{CheckpointError, Entry, Store};
use crate::config::{Config, DiscoveryMode, Encoding, SinkKind, WakeSource};
use crate::discovery::KernelLink;
use crate::discovery::{Discovery, DiscoveryError};
use crate::ebpf::{ContainerEvent, Containers, Kernel, KernelEvent};
use crate::metrics::Metrics;
use crate::reader::{MAX_FILES_PER_ROUND, Reader, ReaderShared};
use crate::sink::{self, Sink, SinkHealth};
use crate::worker::{Route, Worker};

/// Why the pipeline could not start or did not stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// `data_dir` could not be created.
    #[error("cannot create data_dir {path}: {source}")]
    DataDir {
        /// The directory.
        path: std::path::PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// A thread could not be started.
    #[error("cannot start thread {name}: {source}")]
    Thread {
        /// The thread.
        name: String,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// Discovery could not start.
    #[error(transparent)]
    Discovery(#[from] DiscoveryError),
    /// The API could not start.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// A sink could not be created.
    #[error(transparent)]
    Sink(#[from] sink::SinkError),
    /// The stop pipe of discovery could not be created.
    #[error("cannot create a pipe: {source}")]
    Pipe {
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// `discovery: ebpf` was configured and the eBPF programs could not be loaded.
    #[error("discovery: ebpf is configured, but {0}")]
    Ebpf(#[source] crate::ebpf::EbpfError),
    /// The checkpoint file could not be read (a damaged one is set aside, not an error).
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// Shutdown ended with failures; each is listed.
    #[error("shutdown was not clean:\n  - {}", failures.join("\n  - "))]
    Unclean {
        /// What went wrong.
        failures: Vec<String>,
    },
}

/// A running pipeline.
pub struct Running {
    /// Metrics of this pipeline.
    pub metrics: Arc<Metrics>,
    /// Acknowledged offsets.
    pub tracker: Arc<AckTracker>,
    health: Arc<Health>,
    api: Option<Api>,
    stop_discovery: Option<OwnedFd>,
    stop_readers: Option<Sender<()>>,
    discovery: Option<JoinHandle<Result<(), String>>>,
    readers: Vec<JoinHandle<Result<(), String>>>,
    workers: Vec<JoinHandle<Result<(), String>>>,
    sinks: Vec<JoinHandle<Result<(), String>>>,
    abandon: Arc<AtomicBool>,
    failures: Receiver<String>,
    shutdown_timeout: Duration,
    checkpointer: Option<Checkpointer>,
    stop_ebpf: Option<OwnedFd>,
    ebpf: Option<JoinHandle<Result<(), String>>>,
    /// Containers running, from the eBPF lifecycle events (empty without eBPF).
    pub containers: Arc<Containers>,
}

/// The checkpointer thread, and what the final write needs.
struct Checkpointer {
    stop: Sender<()>,
    thread: JoinHandle<CheckpointWriter>,
}

/// Writes checkpoints when they changed; a failed write is logged, counted and retried.
struct CheckpointWriter {
    store: Store,
    tracker: Arc<AckTracker>,
    metrics: Arc<Metrics>,
    forget_after: Duration,
    last: Option<Vec<Entry>>,
    failing: bool,
}

impl CheckpointWriter {
    fn write(&mut self) -> Result<(), CheckpointError> {
        let entries = self.tracker.snapshot(self.forget_after);
        if self.last.as_ref() == Some(&entries) {
            return Ok(());
        }
        match self.store.save(&entries) {
            Ok(()) => {
                self.metrics.checkpoint_writes.inc();
                if self.failing {
                    self.failing = false;
                    tracing::info!(path = %self.store.path().display(), "checkpoints are written again");
                }
                self.last = Some(entries);
                Ok(())
            }
            Err(e) => {
                self.metrics.checkpoint_errors.inc();
                if !self.failing {
                    self.failing = true;
                    tracing::error!(error = %e, "cannot write checkpoints; delivery goes on, and a restart would re-read more than usual until a write succeeds");
                }
                Err(e)
            }
        }
    }
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("api", &self.api)
            .finish_non_exhaustive()
    }
}

/// Spawns a named thread whose error, if any, is reported on `failures` and returned.
fn spawn<E: std::fmt::Display>(
    name: String,
    failures: &Sender<String>,
    body: impl FnOnce() -> Result<(), E> + Send + 'static,
) -> Result<JoinHandle<Result<(), String>>, PipelineError> {
    let failures = failures.clone();
    let thread_name = name.clone();
    std::thread::Builder::new()
        .name(name.clone())
        .spawn(move || {
            body().map_err(|e| {
                let message = format!("{thread_name}: {e}");
                tracing::error!("{message}");
                let _ = failures.try_send(message.clone());
                message
            })
        })
        .map_err(|source| PipelineError::Thread { name, source })
}

/// Starts every stage of the pipeline for `config`.
pub fn start(config: &Config) -> Result<Running, PipelineError> {
    start_with_metrics(config, Arc::new(Metrics::new()))
}

/// [`start`] with metrics that outlive this pipeline: a configuration reload starts a new
/// pipeline on the same metrics, so counters keep counting.
pub fn start_with_metrics(
    config: &Config,
    metrics: Arc<Metrics>,
) -> Result<Running, PipelineError> {
    std::fs::create_dir_all(&config.data_dir).map_err(|source| PipelineError::DataDir {
        path: config.data_dir.clone(),
        source,
    })?;
    let store = Store::new(&config.data_dir);
    // The file's time is when the last run last saved it (written, then renamed into place).
    let saved = std::fs::metadata(store.path())
        .and_then(|m| m.modified())
        .ok();
    let loaded = match store.load() {
        Ok(entries) => entries,
        Err(e @ CheckpointError::Corrupt { .. }) => {
            metrics.checkpoint_corrupt.inc();
            tracing::error!(error = %e, "files are read as if new (from `read_from`)");
            Vec::new()
        }
        // Includes a damaged file that cannot be moved aside: the first write would replace
        // it, so ringtail refuses to start rather than destroy it.
        Err(e) => return Err(e.into()),
    };
    if !loaded.is_empty() {
        tracing::info!(path = %store.path().display(), files = loaded.len(), "loaded checkpoints");
    }
    let saved = saved.filter(|_| !loaded.is_empty());
    let tracker = Arc::new(AckTracker::with_previous_run(
        Arc::clone(&metrics),
        loaded,
        saved,
    ));
    let (failures_tx, failures) = bounded(64);
    let abandon = Arc::new(AtomicBool::new(false));
    let queue = config.pipeline.queue_batches;

    // Sinks, and the routes (distinct sets of sinks) that sources map onto.
    let mut health = Health::default();
    let mut sink_senders = Vec::new();
    let mut sinks = Vec::new();
    for sink_config in &config.sinks {
        let (tx, rx) = bounded(queue);
        let sink: Box<dyn Sink> = match &sink_config.kind {
            SinkKind::Stdout => Box::new(sink::stdout::StdoutSink::new(&sink_config.name)),
            SinkKind::Blackhole => Box::new(sink::blackhole::BlackholeSink),
            SinkKind::File(file) => {
                Box::new(sink::file::FileSink::new(&sink_config.name, file.clone())?)
            }
            SinkKind::Kafka(kafka) => Box::new(sink::kafka::KafkaSink::new(
                &sink_config.name,
                kafka.clone(),
                sink_config.encoding,
                &metrics,
            )?),
        };
        let sink_health = Arc::new(SinkHealth::new(&sink_config.name));
        health.sinks.push(Arc::clone(&sink_health));
        sink_senders.push(metrics.queue_sender(format!("sink:{}", sink_config.name), tx));
        let (name, metrics, abandon) = (
            sink_config.name.clone(),
            Arc::clone(&metrics),
            Arc::clone(&abandon),
        );
        sinks.push(spawn(
            format!("sink-{}", sink_config.name),
            &failures_tx,
            move || sink::run(sink, &name, rx, sink_health, metrics, abandon),
        )?);
    }
    let mut route_of_set: BTreeMap<Vec<usize>, usize> = BTreeMap::new();
    let mut routes = Vec::new();
    let mut source_routes = Vec::new();
    for source in &config.sources {
        let set: Vec<usize> = config
            .sinks
            .iter()
            .enumerate()
            .filter(|(_, s)| s.inputs.contains(&source.index))
            .map(|(i, _)| i)
            .collect();
        let route = *route_of_set.entry(set.clone()).or_insert_with(|| {
            // Each encoding the sinks use, once; an index where a Kafka sink takes it.
            let mut encodings: Vec<(Encoding, bool)> = Vec::new();
            for &i in &set {
                let sink = &config.sinks[i];
                let kafka = matches!(sink.kind, SinkKind::Kafka(_));
                match encodings.iter_mut().find(|(e, _)| *e == sink.encoding) {
                    Some((_, index)) => *index |= kafka,
                    None => encodings.push((sink.encoding, kafka)),
                }
            }
            encodings.sort();
            let sinks = set
                .iter()
                .map(|&i| {
                    let part = encodings
                        .iter()
                        .position(|(e, _)| *e == config.sinks[i].encoding)
                        .unwrap_or(0);
                    (sink_senders[i].clone(), part)
                })
                .collect();
            routes.push(Route { sinks, encodings });
            routes.len() - 1
        });
        source_routes.push(route);
    }
    drop(sink_senders);
    let routes = Arc::new(routes);
    let source_routes = Arc::new(source_routes);

    // Workers.
    let mut worker_senders = Vec::new();
    let mut workers = Vec::new();
    for index in 0..config.pipeline.workers {
        let (tx, rx) = bounded(queue);
        let worker = Worker::new(
            index,
            rx,
            Arc::clone(&routes),
            Arc::clone(&source_routes),
            Arc::clone(&tracker),
            Arc::clone(&metrics),
            config.pipeline.batch_bytes,
        );
        workers.push(spawn(format!("worker-{index}"), &failures_tx, move || {
            worker.run()
        })?);
        worker_senders.push(metrics.queue_sender(format!("worker:{index}"), tx));
    }
    drop(routes);

    // Kernel events: loaded before discovery's first scan, so every directory it watches is
    // registered with the kernel from the start.
    let containers = Arc::new(Containers::default());
    let kernel = match config.discovery {
        DiscoveryMode::Inotify => {
            tracing::info!(
                mode = "inotify",
                "discovery: inotify (configured); eBPF programs not loaded"
            );
            None
        }
        DiscoveryMode::Auto | DiscoveryMode::Ebpf => match Kernel::load() {
            Ok(kernel) => {
                tracing::info!(
                    mode = "ebpf",
                    "discovery: eBPF programs loaded (container lifecycle from cgroup tracepoints, files opened for writing from open tracepoints); renames, deletions and new data from inotify"
                );
                Some(kernel)
            }
            Err(e) if config.discovery == DiscoveryMode::Auto => {
                tracing::warn!(mode = "inotify", reason = %e, "discovery: eBPF unavailable, using inotify alone; container lifecycle events are off");
                None
            }
            Err(e) => return Err(PipelineError::Ebpf(e)),
        },
    };
    let dirty_flags = kernel.as_ref().and_then(Kernel::dirty_flags);
    let hook_wakes = config.reader.wake == WakeSource::WriteHook;
    if hook_wakes && kernel.is_none() {
        tracing::warn!(
            "reader.wake: write_hook needs the eBPF programs, which are not loaded; inotify wakes readers"
        );
    }
    let hook_wakes = hook_wakes && kernel.is_some();
    let (mut kernel, link, kernel_side) = match kernel {
        Some(mut kernel) => {
            let (opened_tx, opened_rx) = bounded(KERNEL_QUEUE);
            let (wake_read, wake_write) = rustix::pipe::pipe_with(
                rustix::pipe::PipeFlags::NONBLOCK | rustix::pipe::PipeFlags::CLOEXEC,
            )
            .map_err(|e| PipelineError::Pipe { source: e.into() })?;
            let reconcile = Arc::new(AtomicBool::new(false));
            let link = kernel.take_watched_dirs().map(|dirs| KernelLink {
                dirs,
                opened: opened_rx,
                wake: wake_read,
                reconcile: Arc::clone(&reconcile),
                hook_wakes,
            });
            (Some(kernel), link, Some((opened_tx, wake_write, reconcile)))
        }
        None => (None, None, None),
    };

    // Readers.
    let pool = BufferPool::new(
        config.reader.chunk_bytes,
        config.reader.buffer_memory,
        Arc::clone(&metrics),
    );
    let (stop_readers, readers_stopped) = bounded::<()>(0);
    let mut handles = Vec::new();
    let mut readers = Vec::new();
    for index in 0..config.reader.threads {
        let (handle, inbox) = crate::reader::channel();
        handles.push(handle);
        let shared = ReaderShared {
            pool: Arc::clone(&pool),
            workers: worker_senders.clone(),
            shutdown: readers_stopped.clone(),
            metrics: Arc::clone(&metrics),
            tracker: Arc::clone(&tracker),
            max_open_deleted: config.reader.max_open_deleted,
            dirty_flags: dirty_flags.clone(),
            rearm: hook_wakes,
        };
        let backend_kind = config.reader.backend;
        readers.push(spawn(format!("reader-{index}"), &failures_tx, move || {
            let (backend, fell_back) = crate::read::create(backend_kind, MAX_FILES_PER_ROUND as u32 * 2);
            match fell_back {
                Some(reason) => tracing::warn!(reader = index, %reason, "io_uring unavailable; reading with pread"),
                None => tracing::info!(reader = index, backend = backend.name(), "reader started"),
            }
            Reader::new(index, backend, inbox, shared).run()
        })?);
    }
    drop(worker_senders);

    // Discovery: its start-up scan hands existing files to the readers.
    let (stop_read, stop_write) =
        rustix::pipe::pipe().map_err(|e| PipelineError::Pipe { source: e.into() })?;
    let discovery = Discovery::new(
        config.sources.clone(),
        handles,
        stop_read,
        &metrics,
        Arc::clone(&tracker),
        link,
        &config.kubernetes,
    )?;
    if let (Some(kernel), Some((opened_tx, wake, reconcile))) = (&mut kernel, &kernel_side) {
        // Writers that opened their files before the open hook watched their directories.
        match kernel.open_files() {
            Ok(files) => {
                tracing::info!(
                    files = files.len(),
                    "files open for writing in watched directories at start-up (iter/task_file); their writers are followed by the write hook"
                );
                for file in files {
                    if opened_tx.try_send(KernelEvent::FileOpened(file)).is_err() {
                        reconcile.store(true, Ordering::Release);
                    }
                }
                let _ = rustix::io::write(wake, &[1]);
            }
            Err(e) => tracing::warn!(
                error = %e,
                "cannot list the files open at start-up; their writers' new data is seen through inotify only"
            ),
        }
    }
    let discovery = spawn("discovery".to_string(), &failures_tx, move || {
        discovery.run()
    })?;

    // Checkpoints: the first write comes right after the start-up scan, so checkpoints that
    // were claimed or forgotten are settled on disk at once.
    let mut writer = CheckpointWriter {
        store,
        tracker: Arc::clone(&tracker),
        metrics: Arc::clone(&metrics),
        forget_after: config.checkpoints.forget_after,
        last: None,
        failing: false,
    };
    let (stop_checkpointer, checkpointer_stopped) = bounded::<()>(0);
    let interval = config.checkpoints.interval;
    let opened = tracker.opened_signal();
    let checkpointer = std::thread::Builder::new()
        .name("checkpointer".to_string())
        .spawn(move || {
            let mut next = Instant::now();
            loop {
                // Errors are logged and counted inside; the next tick retries.
                let _ = writer.write();
                let now = Instant::now();
                if next <= now {
                    next = now + interval;
                }
                // New files are written soon (after a short pause that gathers a burst of
                // them), other changes at the interval.
                select! {
                    recv(checkpointer_stopped) -> _ => return writer,
                    recv(opened) -> _ => {
                        if checkpointer_stopped.recv_timeout(NEW_FILES_PAUSE).is_err_and(|e| e.is_disconnected()) {
                            return writer;
                        }
                    }
                    recv(crossbeam::channel::at(next)) -> _ => {}
                }
            }
        })
        .map_err(|source| PipelineError::Thread {
            name: "checkpointer".to_string(),
            source,
        })?;

    let (stop_ebpf, ebpf) = match (kernel, kernel_side) {
        (Some(kernel), Some((opened_tx, wake, reconcile))) => {
            let (stop_read, stop_write) =
                rustix::pipe::pipe().map_err(|e| PipelineError::Pipe { source: e.into() })?;
            let (containers, metrics) = (Arc::clone(&containers), Arc::clone(&metrics));
            let thread = spawn("ebpf".to_string(), &failures_tx, move || {
                kernel.run(stop_read, containers, metrics, |event| match event {
                    KernelEvent::Container(ContainerEvent::Started { cgroup_id, container_id, path }) => {
                        tracing::info!(container = %container_id, cgroup_id, cgroup = %path, "container started");
                    }
                    KernelEvent::Container(ContainerEvent::Stopped { cgroup_id, container_id }) => {
                        tracing::info!(container = %container_id, cgroup_id, "container stopped");
                    }
                    event @ (KernelEvent::FileOpened(_) | KernelEvent::FileDirty { .. }) => {
                        if opened_tx.try_send(event).is_err() {
                            // Discovery is behind: what it misses, a rescan finds.
                            reconcile.store(true, Ordering::Release);
                        }
                        // Full pipe: a wake-up is pending already.
                        let _ = rustix::io::write(&wake, &[1]);
                    }
                    KernelEvent::Lost { .. } => {
                        reconcile.store(true, Ordering::Release);
                        let _ = rustix::io::write(&wake, &[1]);
                    }
                })
            })?;
            (Some(stop_write), Some(thread))
        }
        _ => (None, None),
    };

    let health = Arc::new(health);
    let api = Api::start(config.api.listen, Arc::clone(&metrics), Arc::clone(&health))?;
    Ok(Running {
        metrics,
        tracker,
        health,
        api: Some(api),
        stop_discovery: Some(stop_write),
        stop_readers: Some(stop_readers),
        discovery: Some(discovery),
        readers,
        workers,
        sinks,
        abandon,
        failures,
        shutdown_timeout: config.pipeline.shutdown_timeout,
        checkpointer: Some(Checkpointer {
            stop: stop_checkpointer,
            thread: checkpointer,
        }),
        stop_ebpf,
        ebpf,
        containers,
    })
}

impl Running {
    /// The address the API listens on.
    pub fn api_addr(&self) -> Option<std::net::SocketAddr> {
        self.api.as_ref().map(Api::addr)
    }

    /// Failures reported by pipeline threads; a message means the pipeline must stop.
    pub fn failures(&self) -> &Receiver<String> {
        &self.failures
    }

    /// Records a failure for `/healthz`.
    pub fn mark_failed(&self, reason: &str) {
        *self
            .health
            .failure
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(reason.to_string());
    }

    /// Stops the pipeline in order and waits (bounded by the configured timeout) for every
    /// record read to be acknowledged.
    pub fn shutdown(mut self) -> Result<(), PipelineError> {
        let deadline = Instant::now() + self.shutdown_timeout;
        let mut failures = Vec::new();
        drop(self.stop_ebpf.take());
        if let Some(e) = self.ebpf.take() {
            collect(wait(e, deadline), "ebpf", &mut failures);
        }
        drop(self.stop_discovery.take());
        if let Some(d) = self.discovery.take() {
            collect(wait(d, deadline), "discovery", &mut failures);
        }
        drop(self.stop_readers.take());
        for (stage, handles) in [
            ("reader", std::mem::take(&mut self.readers)),
            ("worker", std::mem::take(&mut self.workers)),
            ("sink", std::mem::take(&mut self.sinks)),
        ] {
            for handle in handles {
                let outcome = match wait(handle, deadline) {
                    Ok(outcome) => Ok(outcome),
                    Err(handle) => {
                        // Past the deadline: sinks stuck retrying give up, which unblocks the
                        // stages waiting on them.
                        self.abandon.store(true, Ordering::Relaxed);
                        wait(handle, Instant::now() + ABANDON_GRACE)
                    }
                };
                collect(outcome, stage, &mut failures);
            }
        }
        if let Some(Checkpointer { stop, thread }) = self.checkpointer.take() {
            drop(stop);
            match thread.join() {
                Ok(mut writer) => {
                    if let Err(e) = writer.write() {
                        failures.push(format!("final checkpoint: {e}"));
                    } else {
                        tracing::info!(path = %writer.store.path().display(), files = writer.last.as_ref().map_or(0, Vec::len), "final checkpoint written");
                    }
                }
                Err(_) => failures.push("the checkpointer thread panicked".to_string()),
            }
        }
        if let Some(api) = self.api.take() {
            api.stop();
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(PipelineError::Unclean { failures })
        }
    }
}

type Outcome = std::thread::Result<Result<(), String>>;

/// Files reported opened by the kernel, waiting for discovery; past it, a rescan.
const KERNEL_QUEUE: usize = 65_536;

/// After files are opened, the checkpointer waits this long for more before writing.
const NEW_FILES_PAUSE: Duration = Duration::from_millis(5);

/// How long stages get to notice `abandon` after the shutdown timeout: longer than the longest
/// sink retry delay.
const ABANDON_GRACE: Duration = Duration::from_secs(6);

/// Joins `handle` if it finishes before `deadline`; gives it back otherwise.
fn wait(
    handle: JoinHandle<Result<(), String>>,
    deadline: Instant,
) -> Result<Outcome, JoinHandle<Result<(), String>>> {
    while !handle.is_finished() {
        if Instant::now() >= deadline {
            return Err(handle);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(handle.join())
}

fn collect(
    outcome: Result<Outcome, JoinHandle<Result<(), String>>>,
    stage: &str,
    failures: &mut Vec<String>,
) {
    match outcome {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(message))) => failures.push(message),
        Ok(Err(_)) => failures.push(format!("a {stage} thread panicked")),
        Err(_) => failures.push(format!(
            "a {stage} thread did not stop within the shutdown timeout; the records it held are not acknowledged and will be read again"
        )),
    }
}
