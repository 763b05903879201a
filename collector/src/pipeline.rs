//! Wiring: starting every stage with its settings, keeping the handles, stopping them front to
//! back.
//!
//! ```text
//! ebpf ─▶ discover ─Control/dirty─▶ reader×R ─Vec<WorkItem>─▶ worker×W ─Batch─▶ sink×S
//!            │                                                                   │ ack
//!            └──── open(identity, offset) ───▶ deliver (tracker, checkpointer) ◀─┘
//! ```
//! Every arrow is a bounded queue. Stages start back to front — checkpoints, sinks, workers,
//! the kernel link, readers, discovery (whose start-up scan hands existing files to the
//! readers), the checkpointer, the eBPF thread — and stop front to back: the eBPF
//! thread and discovery stop, readers stop reading and close the worker queues, workers drain
//! them, emit pending multi-line records and close the sink queues, sinks drain, make
//! everything durable and acknowledge it, and the final checkpoint is written. The whole
//! sequence is bounded by `pipeline.shutdown_timeout`; past it, sinks stuck retrying give up
//! and the exit reports what was not acknowledged.
//!
//! This module sits above the configuration (it reads a whole [`Config`]) and hands each
//! stage its own settings; what each stage does lives in that stage. The API is not part of a
//! pipeline: it lives as long as the process and reports on the pipeline that runs
//! ([`Running::health`]).

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam::channel::{Receiver, Sender, bounded};

use crate::api::Health;
use crate::config::Config;
use crate::deliver::checkpoint::CheckpointError;
use crate::deliver::checkpointer::{self, Checkpointer, CheckpointerError};
use crate::deliver::drain::{self, SidecarSettings};
use crate::discover::kernel::{self as kernel_link, KernelFeed};
use crate::discover::{Discovery, DiscoveryError};
use crate::ebpf::{Containers, EbpfError};
use crate::file::OwnFiles;
use crate::liveness::Liveness;
use crate::metrics::Metrics;
use crate::read::WakeSource;
use crate::read::budget;
use crate::read::buffer::BufferPool;
use crate::read::control;
use crate::read::reader::{self, ReaderShared};
use crate::sink::driver::{self, SinkError, SinkHealth};
use crate::work::{Worker, route};

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
    /// A sink could not be created.
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// A pipe between stages could not be created.
    #[error("cannot create a pipe: {source}")]
    Pipe {
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// `discovery: ebpf` was configured and the eBPF programs could not be loaded.
    #[error("discovery: ebpf is configured, but {0}")]
    Ebpf(#[source] EbpfError),
    /// The checkpoint file could not be read (a damaged one is set aside, not an error).
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The checkpointer could not start.
    #[error(transparent)]
    Checkpointer(#[from] CheckpointerError),
    /// Shutdown ended with failures; each is listed.
    #[error("shutdown was not clean:\n  - {}", failures.join("\n  - "))]
    Unclean {
        /// What went wrong.
        failures: Vec<String>,
    },
}

type Thread = JoinHandle<Result<(), String>>;

/// A running pipeline.
pub struct Running {
    /// Metrics of this pipeline.
    pub metrics: Arc<Metrics>,
    /// Acknowledged offsets.
    pub tracker: Arc<crate::deliver::ack::AckTracker>,
    health: Arc<Health>,
    stop_discovery: Option<OwnedFd>,
    stop_readers: Option<Sender<()>>,
    discovery: Option<Thread>,
    readers: Vec<Thread>,
    workers: Vec<Thread>,
    sinks: Vec<Thread>,
    abandon: Arc<AtomicBool>,
    failures: Receiver<String>,
    shutdown_timeout: Duration,
    checkpointer: Option<Checkpointer>,
    stop_ebpf: Option<OwnedFd>,
    ebpf: Option<Thread>,
    /// Containers running, from the eBPF lifecycle events (empty without eBPF).
    pub containers: Arc<Containers>,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("readers", &self.readers.len())
            .field("workers", &self.workers.len())
            .field("sinks", &self.sinks.len())
            .finish_non_exhaustive()
    }
}

/// Spawns a named thread whose error, if any, is reported on `failures` and returned.
fn spawn<E: std::fmt::Display>(
    name: String,
    failures: &Sender<String>,
    body: impl FnOnce() -> Result<(), E> + Send + 'static,
) -> Result<Thread, PipelineError> {
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

fn pipe() -> Result<(OwnedFd, OwnedFd), PipelineError> {
    rustix::pipe::pipe().map_err(|e| PipelineError::Pipe { source: e.into() })
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
    metrics.configure(&config.metrics);
    std::fs::create_dir_all(&config.data_dir).map_err(|source| PipelineError::DataDir {
        path: config.data_dir.clone(),
        source,
    })?;
    // Checkpoints are loaded before discovery's first scan, so files resume where they were
    // acknowledged.
    let (store, tracker) = checkpointer::resume(&config.data_dir, &metrics)?;
    let (failures_tx, failures) = bounded(64);
    let abandon = Arc::new(AtomicBool::new(false));
    let queue = config.pipeline.queue_batches;

    // Sinks, and the routes (distinct sets of sinks) that sources map onto. The files sinks
    // write are announced before discovery's first scan, which never reads them.
    let own_files = Arc::new(OwnFiles::default());
    let mut health = Health {
        liveness: Arc::new(Liveness::new(config.api.stall_timeout)),
        ..Health::default()
    };
    let mut sink_queues = Vec::new();
    let mut sinks = Vec::new();
    for settings in &config.sinks {
        let (tx, rx) = bounded(queue);
        // Offsets past what this sink wrote may be taken from its journal only where no
        // other sink takes the same records.
        let alone = config.sinks.iter().all(|other| {
            other.name == settings.name || other.inputs.iter().all(|&i| !settings.receives(i))
        });
        let journal = alone.then_some((config.data_dir.as_path(), &tracker));
        let sink = crate::sink::create(settings, &metrics, &own_files, journal)?;
        let sink_health = Arc::new(SinkHealth::new(&settings.name));
        health.sinks.push(Arc::clone(&sink_health));
        sink_queues.push(metrics.queue_sender(format!("sink:{}", settings.name), tx));
        let (name, metrics, abandon) = (
            settings.name.clone(),
            Arc::clone(&metrics),
            Arc::clone(&abandon),
        );
        let heart = health.liveness.heart(&format!("sink-{name}"));
        sinks.push(spawn(
            format!("sink-{}", settings.name),
            &failures_tx,
            move || driver::run(sink, &name, rx, sink_health, metrics, abandon, heart),
        )?);
    }
    let (routes, source_routes) = route::build(&config.sources, &config.sinks, &sink_queues);
    drop(sink_queues);
    let routes = Arc::new(routes);
    let source_routes = Arc::new(source_routes);

    // Workers.
    let mut worker_queues = Vec::new();
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
        )
        .with_heart(health.liveness.heart(&format!("worker-{index}")));
        workers.push(spawn(format!("worker-{index}"), &failures_tx, move || {
            worker.run()
        })?);
        worker_queues.push(metrics.queue_sender(format!("worker:{index}"), tx));
    }
    drop(routes);

    // The kernel: loaded before discovery's first scan, so every directory it watches is
    // registered with the kernel from the start.
    let mut kernel = kernel_link::load(config.discovery).map_err(PipelineError::Ebpf)?;
    let dirty_flags = kernel.as_ref().and_then(|k| k.dirty_flags());
    let hook_wakes = config.reader.wake == WakeSource::WriteHook;
    if hook_wakes && kernel.is_none() {
        tracing::warn!(
            "reader.wake: write_hook needs the eBPF programs, which are not loaded; inotify wakes readers"
        );
    }
    let hook_wakes = hook_wakes && kernel.is_some();
    let (link, feed): (_, Option<KernelFeed>) = match &mut kernel {
        Some(kernel) => {
            let (link, feed) = kernel_link::link(kernel, hook_wakes)
                .map_err(|source| PipelineError::Pipe { source })?;
            (link, Some(feed))
        }
        None => (None, None),
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
    let max_open_files = config
        .reader
        .max_open_files
        .unwrap_or_else(budget::default_max_open_files);
    tracing::debug!(max_open_files, "open-file budget of the readers");
    let budget = Arc::new(budget::FileBudget::new(max_open_files));
    for index in 0..config.reader.threads {
        let (handle, inbox) = control::channel_sharing(&budget);
        handles.push(handle);
        let shared = ReaderShared {
            pool: Arc::clone(&pool),
            workers: worker_queues.clone(),
            shutdown: readers_stopped.clone(),
            metrics: Arc::clone(&metrics),
            tracker: Arc::clone(&tracker),
            max_open_deleted: config.reader.max_open_deleted,
            max_deleted_bytes: config.reader.max_deleted_bytes,
            dirty_flags: dirty_flags.clone(),
            rearm: hook_wakes,
            close_idle: config.reader.close_idle,
            gone_linger: crate::read::reader::GONE_LINGER,
            heart: health.liveness.heart(&format!("reader-{index}")),
            stall_for_test: std::env::var_os("RINGTAIL_TEST_STALL_READER").is_some(),
        };
        let backend = config.reader.backend;
        readers.push(spawn(format!("reader-{index}"), &failures_tx, move || {
            reader::run(index, backend, inbox, shared)
        })?);
    }
    drop(worker_queues);

    // Discovery: its start-up scan hands existing files to the readers.
    let (stop_read, stop_discovery) = pipe()?;
    let mut discovery = Discovery::new(
        config.sources.clone(),
        handles,
        stop_read,
        &metrics,
        Arc::clone(&tracker),
        link,
        &config.kubernetes,
        own_files,
        Arc::clone(&health.readiness),
    )?;
    discovery.set_linger(config.reader.linger);
    if let Some(gate) = std::env::var_os("RINGTAIL_TEST_HOLD_DISCOVERY") {
        let gate = std::path::PathBuf::from(gate);
        tracing::warn!(gate = %gate.display(), "RINGTAIL_TEST_HOLD_DISCOVERY: discovery's first turn waits for this file (test only)");
        discovery.hold_first_turn(gate);
    }
    if let (Some(kernel), Some(feed)) = (&mut kernel, &feed) {
        feed.startup_files(kernel);
    }
    let discovery = spawn("discovery".to_string(), &failures_tx, move || {
        discovery.run()
    })?;

    let checkpointer = Checkpointer::start(
        store,
        Arc::clone(&tracker),
        Arc::clone(&metrics),
        Arc::clone(&health.readiness),
        &config.checkpoints,
        health.liveness.heart("checkpointer"),
    )?;

    let containers = Arc::new(Containers::default());
    let (stop_ebpf, ebpf) = match (kernel, feed) {
        (Some(kernel), Some(feed)) => {
            let (stop_read, stop_write) = pipe()?;
            let (containers, metrics) = (Arc::clone(&containers), Arc::clone(&metrics));
            // Write-hook misses slow the readers' wake-ups when the hook is what wakes them:
            // published every second then. Otherwise the thread has no timer.
            let counters_every = hook_wakes.then_some(Duration::from_secs(1));
            let thread = spawn("ebpf".to_string(), &failures_tx, move || {
                kernel.run(stop_read, containers, metrics, counters_every, |event| {
                    feed.route(event)
                })
            })?;
            (Some(stop_write), Some(thread))
        }
        _ => (None, None),
    };

    Ok(Running {
        metrics,
        tracker,
        health: Arc::new(health),
        stop_discovery: Some(stop_discovery),
        stop_readers: Some(stop_readers),
        discovery: Some(discovery),
        readers,
        workers,
        sinks,
        abandon,
        failures,
        shutdown_timeout: config.pipeline.shutdown_timeout,
        checkpointer: Some(checkpointer),
        stop_ebpf,
        ebpf,
        containers,
    })
}

impl Running {
    /// What `/healthz` reports on for this pipeline: its sinks and failures.
    pub fn health(&self) -> Arc<Health> {
        Arc::clone(&self.health)
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

    /// Sidecar mode, after a SIGTERM: keeps everything running until what the app wrote is
    /// delivered (see [`drain::drain`]). Returns whether it drained.
    pub fn drain(&self, settings: &SidecarSettings) -> bool {
        drain::drain(&self.tracker, settings)
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
        // The final checkpoint comes after the sinks have stopped.
        if let Some(checkpointer) = self.checkpointer.take()
            && let Err(failure) = checkpointer.stop()
        {
            failures.push(failure);
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(PipelineError::Unclean { failures })
        }
    }
}

type Outcome = std::thread::Result<Result<(), String>>;

/// How long stages get to notice `abandon` after the shutdown timeout: longer than the longest
/// sink retry delay.
const ABANDON_GRACE: Duration = Duration::from_secs(6);

/// Joins `handle` if it finishes before `deadline`; gives it back otherwise.
fn wait(handle: Thread, deadline: Instant) -> Result<Outcome, Thread> {
    while !handle.is_finished() {
        if Instant::now() >= deadline {
            return Err(handle);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(handle.join())
}

fn collect(outcome: Result<Outcome, Thread>, stage: &str, failures: &mut Vec<String>) {
    match outcome {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(message))) => failures.push(message),
        Ok(Err(_)) => failures.push(format!("a {stage} thread panicked")),
        Err(_) => failures.push(format!(
            "a {stage} thread did not stop within the shutdown timeout; the records it held are not acknowledged and will be read again"
        )),
    }
}
