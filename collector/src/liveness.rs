//! Liveness: whether ringtail's threads still make progress, for `/livez`.
//!
//! A backend outage is not a reason to restart a collector: its sink keeps retrying, the
//! queues fill, and reading waits — every thread is either working or waiting on the next
//! stage, and a restart would only re-send what was in flight. What a restart does fix is a
//! thread stuck inside its own work (a read that never returns, a deadlock, a disk that hangs
//! an `fsync`). So each long-lived thread (readers, workers, sinks, the checkpointer) holds a
//! [`Heart`] and says when it starts working ([`Heart::work`]) and when it waits — for input,
//! for a full queue downstream, between retries ([`Heart::wait`]). A thread that has been
//! working for longer than `api.stall_timeout` without waiting once is stalled, and `/livez`
//! answers 503.
//!
//! Shared vocabulary at the bottom of the crate: it imports nothing from ringtail.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// The default `api.stall_timeout`.
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(60);

/// The hearts of one pipeline's threads.
#[derive(Debug)]
pub struct Liveness {
    start: Instant,
    stall_timeout: Duration,
    hearts: Mutex<Vec<Weak<Heart>>>,
}

impl Default for Liveness {
    fn default() -> Self {
        Self::new(DEFAULT_STALL_TIMEOUT)
    }
}

/// One thread's progress.
#[derive(Debug)]
pub struct Heart {
    name: String,
    start: Instant,
    /// Milliseconds since `start` (plus one) when the thread began its current work; 0 while
    /// it waits.
    working_since: AtomicU64,
}

impl Heart {
    /// A heart no [`Liveness`] watches (a thread started outside a pipeline, tests).
    pub fn detached(name: &str) -> Arc<Heart> {
        Arc::new(Heart {
            name: name.to_string(),
            start: Instant::now(),
            working_since: AtomicU64::new(0),
        })
    }

    fn now(&self) -> u64 {
        self.start.elapsed().as_millis() as u64 + 1
    }

    /// The thread starts (or goes on with) work.
    pub fn work(&self) {
        self.working_since.store(self.now(), Ordering::Relaxed);
    }

    /// The thread waits: for input, for room downstream, between retries.
    pub fn wait(&self) {
        self.working_since.store(0, Ordering::Relaxed);
    }

    /// How long the thread has been working without waiting, if it is working.
    fn working_for(&self) -> Option<Duration> {
        match self.working_since.load(Ordering::Relaxed) {
            0 => None,
            since => Some(Duration::from_millis(self.now().saturating_sub(since))),
        }
    }
}

impl Liveness {
    /// Hearts that count as stalled after `stall_timeout` of work without a wait.
    pub fn new(stall_timeout: Duration) -> Self {
        Self {
            start: Instant::now(),
            stall_timeout,
            hearts: Mutex::new(Vec::new()),
        }
    }

    /// A heart for the thread `name`, waiting; it counts until the thread drops it.
    pub fn heart(&self, name: &str) -> Arc<Heart> {
        let heart = Arc::new(Heart {
            name: name.to_string(),
            start: self.start,
            working_since: AtomicU64::new(0),
        });
        let mut hearts = self.hearts.lock().unwrap_or_else(|e| e.into_inner());
        hearts.retain(|h| h.strong_count() > 0);
        hearts.push(Arc::downgrade(&heart));
        heart
    }

    /// The threads working without a wait for longer than the stall timeout, and for how
    /// long.
    pub fn stalled(&self) -> Vec<(String, Duration)> {
        let hearts = self.hearts.lock().unwrap_or_else(|e| e.into_inner());
        hearts
            .iter()
            .filter_map(Weak::upgrade)
            .filter_map(|h| {
                let working = h.working_for()?;
                (working > self.stall_timeout).then(|| (h.name.clone(), working))
            })
            .collect()
    }

    /// The stall timeout.
    pub fn stall_timeout(&self) -> Duration {
        self.stall_timeout
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_is_stalled_only_while_it_works_past_the_timeout() {
        let liveness = Liveness::new(Duration::from_millis(50));
        let reader = liveness.heart("reader-0");
        let sink = liveness.heart("sink-out");
        assert!(
            liveness.stalled().is_empty(),
            "waiting hearts are not stalled"
        );
        reader.work();
        sink.work();
        std::thread::sleep(Duration::from_millis(80));
        sink.wait();
        let stalled = liveness.stalled();
        assert_eq!(stalled.len(), 1);
        assert_eq!(stalled[0].0, "reader-0");
        assert!(stalled[0].1 >= Duration::from_millis(80));
        reader.work();
        assert!(liveness.stalled().is_empty(), "work again is progress");
        reader.work();
        std::thread::sleep(Duration::from_millis(80));
        drop(reader);
        assert!(
            liveness.stalled().is_empty(),
            "an ended thread is not stalled"
        );
    }
}
