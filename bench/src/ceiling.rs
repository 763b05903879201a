//! The Kafka broker's ceiling: a plain rdkafka producer with the Kafka sink's own settings
//! (zstd, `acks=all`, idempotent, the same linger, batch size and queue bounds) sending
//! pre-built messages as fast as it can to a Tansu broker, every delivery report awaited.
//! What ringtail → Kafka reaches is compared with it (`ringtail-bench kafka-ceiling`).
//!
//! Owns the ceiling measurement; the broker is [`crate::kafka`]'s.

use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;

use crate::kafka::{Broker, TOPIC};
use crate::measure::cpu_seconds;
use crate::workload::{Rng, Shape, record_lines};

/// What the ceiling run measured.
#[derive(Debug, Clone, Copy)]
pub struct Ceiling {
    /// Messages delivered (acknowledged by the broker).
    pub messages: u64,
    /// Their payload bytes.
    pub bytes: u64,
    /// From the first send to the last delivery report.
    pub seconds: f64,
    /// This process's CPU time (the producer's threads) over that interval.
    pub cpu_seconds: f64,
    /// The topic's partitions (the broker creates it on first use).
    pub partitions: usize,
}

impl Ceiling {
    /// Payload megabytes (10^6) per second.
    pub fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.seconds.max(1e-9)
    }

    /// Messages per second.
    pub fn messages_per_s(&self) -> f64 {
        self.messages as f64 / self.seconds.max(1e-9)
    }
}

/// Why the ceiling could not be measured.
#[derive(Debug, thiserror::Error)]
pub enum CeilingError {
    /// The producer could not be made.
    #[error("cannot create a Kafka producer for {broker}: {source}")]
    Producer {
        /// The broker's address.
        broker: String,
        /// librdkafka's error.
        source: rdkafka::error::KafkaError,
    },
    /// A message was refused for good.
    #[error("the producer refused a message: {reason}")]
    Refused {
        /// librdkafka's error.
        reason: String,
    },
    /// Deliveries did not finish in time.
    #[error("{waiting} messages still waiting for the broker after {timeout:?}")]
    Stalled {
        /// Messages not acknowledged.
        waiting: i32,
        /// How long it waited.
        timeout: Duration,
    },
}

/// How many bytes of distinct lines the ceiling cycles through.
const DISTINCT_BYTES: u64 = 64 << 20;

/// Sends `bytes` of `size`-byte messages (log lines of the workload's shape, so that zstd
/// sees text like ringtail's) to `broker`, and waits for every delivery report. With `keys`
/// above 0 the messages carry one of that many keys shaped like the Kafka sink's default
/// (a file's `device:inode`), in runs of 64 KiB as the workload writes its files: what
/// ringtail sends for that many files. With 0, no key.
pub fn measure(
    broker: &Broker,
    bytes: u64,
    size: usize,
    keys: usize,
) -> Result<Ceiling, CeilingError> {
    // The Kafka sink's settings (collector/src/sink/kafka.rs): its defaults, `acks: all`.
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", &broker.address)
        .set("compression.codec", "zstd")
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("batch.size", (1 << 20).to_string())
        .set("message.timeout.ms", "0")
        .set(
            "queue.buffering.max.kbytes",
            ((64 << 20) / 1024).to_string(),
        )
        .set("queue.buffering.max.messages", "200000")
        .create()
        .map_err(|source| CeilingError::Producer {
            broker: broker.address.clone(),
            source,
        })?;
    // Pre-built and distinct over 64 MiB, sent in turn: a batch (1 MiB) never holds the same
    // line twice, so zstd works on text as varied as the workload's, not on repeats it
    // would compress for free.
    let shape = Shape {
        line_min: size,
        line_max: size,
        ..Shape::default()
    };
    let mut rng = Rng::new(7);
    let distinct = (DISTINCT_BYTES / size.max(1) as u64).min(bytes / size.max(1) as u64 + 1);
    let lines: Vec<Vec<u8>> = (0..distinct)
        .map(|n| {
            let mut line = record_lines(&mut rng, "s0", n, &shape, false).concat();
            line.truncate(size);
            line.into_bytes()
        })
        .collect();
    let keys: Vec<Vec<u8>> = (0..keys)
        .map(|n| format!("2049:{}", 1_048_576 + n * 7919).into_bytes())
        .collect();
    let run = ((64 << 10) / size.max(1) as u64).max(1);
    let count = (bytes / size as u64).max(1);
    let cpu_before = cpu_seconds(std::process::id()).unwrap_or(0.0);
    let started = Instant::now();
    let mut sent_bytes = 0;
    for n in 0..count {
        let payload = &lines[(n % lines.len() as u64) as usize];
        let mut record = BaseRecord::<[u8], [u8]>::to(TOPIC).payload(payload.as_slice());
        if !keys.is_empty() {
            record = record.key(keys[((n / run) % keys.len() as u64) as usize].as_slice());
        }
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((e, back)) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) => {
                    // Backpressure, as in the sink: wait for room.
                    record = back;
                    std::thread::sleep(Duration::from_micros(200));
                }
                Err((e, _)) => {
                    return Err(CeilingError::Refused {
                        reason: e.to_string(),
                    });
                }
            }
        }
        sent_bytes += payload.len() as u64;
    }
    let timeout = Duration::from_secs(300);
    if producer.flush(timeout).is_err() {
        return Err(CeilingError::Stalled {
            waiting: producer.in_flight_count(),
            timeout,
        });
    }
    let partitions = producer
        .client()
        .fetch_metadata(Some(TOPIC), Duration::from_secs(10))
        .ok()
        .and_then(|m| m.topics().first().map(|t| t.partitions().len()))
        .unwrap_or(0);
    Ok(Ceiling {
        partitions,
        messages: count,
        bytes: sent_bytes,
        seconds: started.elapsed().as_secs_f64(),
        cpu_seconds: cpu_seconds(std::process::id()).unwrap_or(0.0) - cpu_before,
    })
}
