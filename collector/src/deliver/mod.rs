//! Delivery: what "delivered" means, from the batch a worker hands on to the checkpoint on
//! disk.
//!
//! - [`batch`]: what travels from workers to sinks.
//! - [`ack`]: a batch's acknowledgement by every sink it went to, and each file's
//!   acknowledged offset, applied in order whatever order acknowledgements come in.
//! - [`checkpoint`]: the checkpoint file under `data_dir` and its settings.
//! - [`checkpointer`]: loading checkpoints at start-up and the thread that writes them.
//! - [`drain`]: a sidecar's wait, after SIGTERM, until what the app wrote is delivered.
//!
//! Owns the acknowledgement contract; it may not touch how records are made or written.

pub mod ack;
pub mod batch;
pub mod checkpoint;
pub mod checkpointer;
pub mod drain;
