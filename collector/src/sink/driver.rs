//! The thread that drives one sink, and what every sink shares: the [`Sink`] trait, its
//! errors, retry with backoff and the health `/healthz` reports.
//!
//! Each sink runs on its own thread ([`run`]) and drains a bounded queue of [`Batch`]es. A sink
//! acknowledges a batch only when it is durable at its destination: the file sink after
//! `fsync` (grouped, off the write path), stdout after the write, the blackhole at once. A
//! failed write is retried with backoff — never dropped — while the queue fills and the
//! pipeline slows down behind it; `/healthz` reports the sink as degraded meanwhile. Errors
//! that retrying cannot fix (a closed stdout, a failed `fsync`, after which the kernel may have
//! dropped the data) stop the pipeline so that a restart resumes from acknowledged offsets.
//!
//! Owns retry, health and the sink thread; it may not touch a destination (each sink does).

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam::channel::{Receiver, RecvTimeoutError};
use prometheus_client::metrics::counter::Counter;

use crate::deliver::batch::Batch;
use crate::liveness::Heart;
use crate::metrics::Metrics;

/// Why a sink failed.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// Writing failed; retried unless `fatal`.
    #[error("sink `{sink}`: {action} {target}: {source}")]
    Io {
        /// The sink.
        sink: String,
        /// What was being done (`write to`, `fsync`, `rotate`, …).
        action: &'static str,
        /// The file or stream.
        target: String,
        /// Retrying cannot help.
        fatal: bool,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// Shutdown gave up waiting for the sink.
    #[error("sink `{sink}`: gave up at shutdown with unacknowledged data")]
    Abandoned {
        /// The sink.
        sink: String,
    },
}

impl SinkError {
    fn is_fatal(&self) -> bool {
        match self {
            SinkError::Io { fatal, .. } => *fatal,
            SinkError::Abandoned { .. } => true,
        }
    }
}

/// A destination for batches.
pub trait Sink: Send {
    /// Writes `batch`. On error nothing of the batch is lost: calling `write` again with the
    /// same batch resumes where it stopped. The sink acknowledges the batch (now or later)
    /// once it is durable.
    fn write(&mut self, batch: &Batch) -> Result<(), SinkError>;

    /// When time-driven work (such as a group fsync) is next due.
    fn deadline(&self) -> Option<Instant> {
        None
    }

    /// Does the time-driven work.
    fn on_deadline(&mut self) -> Result<(), SinkError> {
        Ok(())
    }

    /// Makes everything written durable and acknowledges it (shutdown).
    fn close(&mut self) -> Result<(), SinkError>;
}

/// Health of one sink, for `/healthz`.
#[derive(Debug)]
pub struct SinkHealth {
    /// The sink.
    pub name: String,
    healthy: AtomicBool,
    last_error: Mutex<Option<String>>,
}

impl SinkHealth {
    /// A healthy sink.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            healthy: AtomicBool::new(true),
            last_error: Mutex::new(None),
        }
    }

    /// Whether the last operation succeeded.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// The last error, while unhealthy.
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Records the outcome of the last operation: `None` for success.
    pub(crate) fn set(&self, error: Option<String>) {
        self.healthy.store(error.is_none(), Ordering::Relaxed);
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = error;
    }
}

/// First retry delay after a failed write.
const RETRY_MIN: Duration = Duration::from_millis(100);
/// Longest retry delay: a freed disk is noticed within this long.
const RETRY_MAX: Duration = Duration::from_secs(5);

/// Drives one sink until its queue is closed and drained, then closes it. `abandon` is set by
/// shutdown when it stops waiting; a sink stuck retrying then gives up.
pub fn run(
    mut sink: Box<dyn Sink>,
    name: &str,
    input: Receiver<Batch>,
    health: Arc<SinkHealth>,
    metrics: Arc<Metrics>,
    abandon: Arc<AtomicBool>,
    heart: Arc<Heart>,
) -> Result<(), SinkError> {
    let label = Metrics::sink(name);
    let records = metrics.sink_records.get_or_create_owned(&label);
    let bytes = metrics.sink_bytes.get_or_create_owned(&label);
    let errors = metrics.sink_errors.get_or_create_owned(&label);
    let depth = metrics.queue(&format!("sink:{name}"));
    let retry = Retry {
        name,
        health: &health,
        errors: &errors,
        abandon: &abandon,
        heart: &heart,
    };
    loop {
        heart.wait();
        let received = match sink.deadline() {
            Some(at) => input.recv_deadline(at),
            None => input.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        heart.work();
        depth.set(input.len() as i64);
        match received {
            Ok(batch) => {
                retry.until_done(|| sink.write(&batch))?;
                records.inc_by(batch.records);
                bytes.inc_by(batch.data.len() as u64);
            }
            Err(RecvTimeoutError::Timeout) => retry.until_done(|| sink.on_deadline())?,
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    retry.until_done(|| sink.close())
}

struct Retry<'a> {
    name: &'a str,
    health: &'a SinkHealth,
    errors: &'a Counter,
    abandon: &'a AtomicBool,
    heart: &'a Heart,
}

impl Retry<'_> {
    fn until_done(&self, mut op: impl FnMut() -> Result<(), SinkError>) -> Result<(), SinkError> {
        let mut delay = RETRY_MIN;
        loop {
            match op() {
                Ok(()) => {
                    if !self.health.is_healthy() {
                        tracing::info!(sink = self.name, "sink recovered");
                        self.health.set(None);
                    }
                    return Ok(());
                }
                Err(e) => {
                    self.errors.inc();
                    self.health.set(Some(e.to_string()));
                    if e.is_fatal() {
                        return Err(e);
                    }
                    if self.abandon.load(Ordering::Relaxed) {
                        return Err(SinkError::Abandoned {
                            sink: self.name.to_string(),
                        });
                    }
                    tracing::warn!(sink = self.name, error = %e, retry_in = ?delay, "sink write failed; retrying (nothing is dropped)");
                    // Waiting on the destination is not a stall: an outage must not restart
                    // the collector.
                    self.heart.wait();
                    std::thread::sleep(delay);
                    self.heart.work();
                    delay = (delay * 2).min(RETRY_MAX);
                }
            }
        }
    }
}

/// Whether an I/O error on an output stream cannot be fixed by retrying.
pub(crate) fn is_fatal_stream_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::BrokenPipe | io::ErrorKind::InvalidInput
    ) || e.raw_os_error() == Some(rustix::io::Errno::BADF.raw_os_error())
}

/// Writes `data[*written..]` with `write`, advancing `*written`, so that a retry after an error
/// resumes exactly where the last attempt stopped.
pub(crate) fn write_resumable(
    written: &mut usize,
    data: &[u8],
    mut write: impl FnMut(&[u8]) -> io::Result<usize>,
) -> io::Result<()> {
    while *written < data.len() {
        match write(&data[*written..]) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "write returned 0 bytes",
                ));
            }
            Ok(n) => *written += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resumable_writes_continue_after_an_error() {
        let data = b"0123456789";
        let mut out = Vec::new();
        let mut written = 0;
        let mut calls = 0;
        let mut flaky = |chunk: &[u8]| -> io::Result<usize> {
            calls += 1;
            if calls == 2 {
                return Err(io::Error::from_raw_os_error(28)); // ENOSPC
            }
            let n = chunk.len().min(3);
            out.extend_from_slice(&chunk[..n]);
            Ok(n)
        };
        assert!(write_resumable(&mut written, data, &mut flaky).is_err());
        assert_eq!(written, 3);
        write_resumable(&mut written, data, &mut flaky).unwrap();
        assert_eq!(out, data, "every byte written exactly once");
    }
}
