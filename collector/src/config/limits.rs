//! Resource ceilings (`limits`): sizing the buffers the file does not set from the memory and
//! CPU ceilings, and checking that everything fits.
//!
//! Owns the buffer arithmetic; it may not change a size the file sets explicitly, only refuse
//! it.

use std::sync::Arc;

use marked_yaml::{Marker, Spanned};

use crate::config::pipeline::{DEFAULT_QUEUE_BATCHES, PipelineSettings};
use crate::config::problem::Problem;
use crate::config::raw::RawLimits;
use crate::config::scalar::{count, size};
use crate::read::{DEFAULT_BUFFER_MEMORY, ReaderSettings};
use crate::sink::kafka::DEFAULT_KAFKA_QUEUE_BYTES;
use crate::sink::{SinkKind, SinkSettings};
use crate::source::Source;
use crate::work::output::held_per_part;
use crate::work::route;

/// Resource ceilings (`limits`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitsConfig {
    /// Memory ceiling of the process, in bytes.
    pub memory: usize,
    /// Reader plus worker threads, when limited.
    pub cpu: Option<usize>,
    /// Bytes of buffered data the configuration allows: read buffers, sink queues, workers'
    /// open batches and spare buffers, Kafka producer queues, HTTP requests in flight
    /// (≤ `memory` − [`MEMORY_OVERHEAD`]).
    pub buffered: usize,
    /// Which sizing settings the file gives explicitly.
    pub(super) explicit: Explicit,
}

/// Memory the process needs besides buffered data, kept out of the `limits.memory` budget:
/// code and libraries (~12 MiB), eBPF maps and the allocator's own state (~30 MiB at rest),
/// per-file state (~20 KiB per busy file: a thousand files take ~20 MiB) and what the
/// allocator keeps of freed batches under churn (measured: up to ~25 MiB), with some margin.
pub const MEMORY_OVERHEAD: usize = 104 << 20;
/// The default memory ceiling: a DaemonSet's usual 512 MiB limit.
pub const DEFAULT_MEMORY_LIMIT: usize = 512 << 20;

/// Which sizing settings the file gives explicitly (the others are derived from `limits`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Explicit {
    /// `reader.threads`.
    pub threads: bool,
    /// `reader.buffer_memory`.
    pub buffer_memory: bool,
    /// `pipeline.workers`.
    pub workers: bool,
    /// `pipeline.queue_batches`.
    pub queue_batches: bool,
}

/// Applies `limits`: sizes what is not explicit from the memory and CPU ceilings, and checks
/// that everything fits (workers not set explicitly are held to what a quarter of the
/// budget keeps for their batches). Buffered data = read buffers + each sink's queue + what
/// each worker keeps per output part (the batch filling and its spares, [`held_per_part`]; a
/// part per encoding of each distinct set of sinks that `sources` deliver to) + each Kafka
/// sink's producer queue + each HTTP sink's requests in flight (three batches' worth each:
/// the batch, its body, the compressed body); it must stay within `limits.memory` −
/// [`MEMORY_OVERHEAD`].
pub(super) fn apply_limits(
    raw: &RawLimits,
    explicit: Explicit,
    reader: &mut ReaderSettings,
    pipeline: &mut PipelineSettings,
    sources: &[Arc<Source>],
    sinks: &mut [SinkSettings],
    problems: &mut Vec<Problem>,
) -> LimitsConfig {
    let memory = size(
        raw.memory.as_ref(),
        "limits.memory",
        DEFAULT_MEMORY_LIMIT,
        (MEMORY_OVERHEAD + (16 << 20))..=1 << 44,
        problems,
    );
    let cpu = raw
        .cpu
        .as_ref()
        .map(|c| count(Some(c), "limits.cpu", 1, 1..=1024, problems));
    let at = |s: &Option<Spanned<String>>| s.as_ref().and_then(|s| s.span().start()).copied();
    let limits = LimitsConfig {
        memory,
        cpu,
        buffered: 0,
        explicit,
    };
    let at = Marks {
        memory: at(&raw.memory),
        cpu: at(&raw.cpu),
    };
    size_buffers(limits, at, reader, pipeline, sources, sinks, problems)
}

/// Where the ceilings were given, for problems that name them.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Marks {
    pub memory: Option<Marker>,
    pub cpu: Option<Marker>,
}

/// Sizes what is not explicit for the ceilings `limits` holds and checks that everything
/// fits (see [`apply_limits`]); returns the ceilings with the buffered total. Run again on
/// the merged configuration of a pipeline directory, whose sources and sinks come from files
/// the settings' own pass did not see ([`super::dir`]).
pub(super) fn size_buffers(
    limits: LimitsConfig,
    at: Marks,
    reader: &mut ReaderSettings,
    pipeline: &mut PipelineSettings,
    sources: &[Arc<Source>],
    sinks: &mut [SinkSettings],
    problems: &mut Vec<Problem>,
) -> LimitsConfig {
    let LimitsConfig {
        memory,
        cpu,
        explicit,
        ..
    } = limits;
    if let Some(cpu) = cpu {
        if !explicit.threads {
            reader.threads = 1;
        }
        if !explicit.workers {
            pipeline.workers = cpu.saturating_sub(reader.threads).max(1);
        }
        if reader.threads + pipeline.workers > cpu.max(2) {
            problems.push(Problem::at(
                at.cpu.as_ref(),
                "limits.cpu",
                format!(
                    "reader.threads ({}) + pipeline.workers ({}) exceed limits.cpu ({cpu})",
                    reader.threads, pipeline.workers
                ),
            ));
        }
    }
    let budget = memory.saturating_sub(MEMORY_OVERHEAD);
    // Each worker keeps a batch and spares per output part: workers not set explicitly are
    // held to what a quarter of the budget keeps, so a large node's CPU count does not
    // crowd out the other buffers (at the defaults: 16 workers).
    let parts = route::parts(sources, sinks);
    let held = parts * held_per_part(pipeline.batch_bytes);
    if !explicit.workers && held > 0 {
        pipeline.workers = pipeline.workers.min((budget / 4 / held).max(1));
    }
    let kafka_sinks = sinks
        .iter()
        .filter(|s| matches!(s.kind, SinkKind::Kafka(_)))
        .count();
    // Shares of what the workers' open batches leave: 40% read buffers, 25% sink queues,
    // 25% Kafka producer queues, 10% slack.
    let open_batches = pipeline.workers * held;
    // Each HTTP request in flight holds its batch, the request body and its compressed copy.
    let http_in_flight: usize = sinks
        .iter()
        .map(|s| match &s.kind {
            SinkKind::Otlp(o) => o.http.max_in_flight,
            SinkKind::Elasticsearch(e) => e.http.max_in_flight,
            _ => 0,
        })
        .sum::<usize>()
        * 3
        * pipeline.batch_bytes;
    let rest = budget.saturating_sub(open_batches + http_in_flight);
    if !explicit.buffer_memory {
        let chunks = (rest * 2 / 5 / reader.chunk_bytes).max(2);
        reader.buffer_memory =
            (chunks * reader.chunk_bytes).min(DEFAULT_BUFFER_MEMORY.max(2 * reader.chunk_bytes));
    }
    let kafka_queue = (rest / 4)
        .checked_div(kafka_sinks)
        .map_or(0, |q| q.clamp(4 << 20, DEFAULT_KAFKA_QUEUE_BYTES));
    for sink in sinks.iter_mut() {
        if let SinkKind::Kafka(k) = &mut sink.kind {
            k.queue_bytes = kafka_queue;
        }
    }
    if !explicit.queue_batches && !sinks.is_empty() {
        let per_queue = rest / 4 / sinks.len();
        pipeline.queue_batches = (per_queue / pipeline.batch_bytes).clamp(2, DEFAULT_QUEUE_BATCHES);
    }
    let queues = sinks.len() * pipeline.queue_batches * pipeline.batch_bytes;
    let buffered =
        reader.buffer_memory + queues + open_batches + kafka_sinks * kafka_queue + http_in_flight;
    if buffered > budget {
        problems.push(Problem::at(
            at.memory.as_ref(),
            "limits.memory",
            format!(
                "the buffers add up to {} MiB (read buffers {} MiB, sink queues {} MiB, open batches and their spares {} MiB, Kafka queues {} MiB, HTTP requests in flight {} MiB), over limits.memory ({} MiB) minus {} MiB for the process itself; lower reader.buffer_memory, pipeline.queue_batches, pipeline.batch_size or max_in_flight, or raise limits.memory",
                buffered >> 20,
                reader.buffer_memory >> 20,
                queues >> 20,
                open_batches >> 20,
                (kafka_sinks * kafka_queue) >> 20,
                http_in_flight >> 20,
                memory >> 20,
                MEMORY_OVERHEAD >> 20
            ),
        ));
    }
    LimitsConfig {
        memory,
        cpu,
        buffered,
        explicit,
    }
}
