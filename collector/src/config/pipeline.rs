//! The `pipeline` section: the settings of the wiring itself.
//!
//! Owns this section's rules and defaults; the wiring (`pipeline.rs`) reads the result.

use std::time::Duration;

use crate::config::problem::Problem;
use crate::config::raw::RawPipeline;
use crate::config::scalar::{count, duration, size};

/// Encoded bytes per batch: large enough to amortise a write or a queue hop, small enough to
/// keep latency to the sink in the low milliseconds at full speed. Each worker holds a batch
/// filling and its spares, so at everyday rates, where a round fills them, the batch size is
/// resident memory: 512 KiB against 1 MiB measured 28–29 MiB against 30–33 MiB at 10 MB/s
/// (bench `node-cost-10mb`, JSON records), with the same peak throughput to the blackhole,
/// files and Kafka within this VM's noise.
pub const DEFAULT_BATCH_BYTES: usize = 512 * 1024;
/// Batches per queue: with 512 KiB batches, at most 8 MiB wait between two stages.
pub const DEFAULT_QUEUE_BATCHES: usize = 16;
/// Kubernetes sends SIGKILL 30 s after SIGTERM by default; finish before that.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(25);

/// The wiring's settings (`pipeline`): worker threads, the capacity of every queue between
/// stages, the batch size and the shutdown bound. No stage owns them — `pipeline.rs`, above
/// configuration, reads them to wire the stages — so they are defined here.
#[derive(Debug, Clone)]
pub struct PipelineSettings {
    /// Worker threads.
    pub workers: usize,
    /// Capacity of each queue, in batches.
    pub queue_batches: usize,
    /// Encoded bytes per batch.
    pub batch_bytes: usize,
    /// Bound on the wait for sink acknowledgements at shutdown.
    pub shutdown_timeout: Duration,
}

/// The `pipeline` section.
pub(super) fn pipeline(raw: RawPipeline, problems: &mut Vec<Problem>) -> PipelineSettings {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    PipelineSettings {
        workers: count(
            raw.workers.as_ref(),
            "pipeline.workers",
            cpus,
            1..=256,
            problems,
        ),
        queue_batches: count(
            raw.queue_batches.as_ref(),
            "pipeline.queue_batches",
            DEFAULT_QUEUE_BATCHES,
            1..=4096,
            problems,
        ),
        batch_bytes: size(
            raw.batch_size.as_ref(),
            "pipeline.batch_size",
            DEFAULT_BATCH_BYTES,
            1024..=256 << 20,
            problems,
        ),
        shutdown_timeout: duration(
            raw.shutdown_timeout.as_ref(),
            "pipeline.shutdown_timeout",
            DEFAULT_SHUTDOWN_TIMEOUT,
            problems,
        ),
    }
}
