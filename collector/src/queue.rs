//! The bounded queues between stages: a sender that publishes the queue's depth.
//!
//! Shared vocabulary: every stage that hands work on sends through a [`QueueSender`]; its
//! depth gauge comes from [`crate::metrics::Metrics::queue_sender`]. Imports nothing from
//! ringtail.
//!
//! Owns the depth's bookkeeping; it may not decide what is sent.

use crossbeam::channel::{SendError, Sender};
use prometheus_client::metrics::gauge::Gauge;

/// The sending side of a bounded queue, with the queue's depth gauge.
///
/// The depth is published by senders — just before a send that may block and just after it —
/// as well as by the receiver after each receive, so it stays true while the receiver is busy
/// or blocked (a stalled sink is exactly when the depth matters).
#[derive(Debug)]
pub struct QueueSender<T> {
    /// The queue's name in metrics (`worker:0`, `sink:out`).
    pub name: String,
    /// The queue.
    pub tx: Sender<T>,
    /// Its depth gauge.
    pub depth: Gauge,
}

impl<T> Clone for QueueSender<T> {
    fn clone(&self) -> Self {
        Self {
            name: self.name.clone(),
            tx: self.tx.clone(),
            depth: self.depth.clone(),
        }
    }
}

impl<T> QueueSender<T> {
    /// Sends, blocking while the queue is full; fails when the receiver is gone.
    pub fn send(&self, item: T) -> Result<(), SendError<T>> {
        self.observe();
        let sent = self.tx.send(item);
        self.observe();
        sent
    }

    /// Publishes the current depth.
    pub fn observe(&self) {
        self.depth.set(self.tx.len() as i64);
    }
}
