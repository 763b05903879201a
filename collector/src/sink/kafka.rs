//! The Kafka sink: every record of a batch becomes one Kafka message, and the batch is
//! acknowledged only when the broker has acknowledged every one of them.
//!
//! librdkafka (the `rdkafka` crate, bundled build) does the protocol, batching, compression
//! (`compression`, zstd by default — done per produce batch, where it compresses best, so
//! ringtail does not compress records itself) and retries. It is configured so that it never
//! gives a message up on its own (`message.timeout.ms = 0`) and, with `acks: all`, as an
//! idempotent producer: retries create no duplicates and keep order within a partition.
//!
//! - **Per record**: the topic and key are rendered from templates ([`crate::sink::template`]) with
//!   the record's file and stream, from the batch's record index. The default key is the
//!   file's identity, so one file's records stay ordered in one partition.
//! - **Acknowledgement**: each batch has a `Delivery` counting its records still in flight,
//!   passed to librdkafka as the delivery opaque; the last delivery report acknowledges the
//!   batch to the checkpointer.
//! - **Backpressure**: a full librdkafka queue (`queue.buffering.max.*`, 64 MiB by default)
//!   makes `write` wait; while every broker is unreachable with records in flight, `write` and
//!   the periodic check fail (retried, nothing dropped), so `/healthz` shows the sink as
//!   degraded and no more is queued.
//! - **Errors a broker returns for good** (message too large, unknown topic, authorization,
//!   invalid record): logged with topic and reason and counted; the record goes to the
//!   `dead_letter` file when one is configured (then counts as delivered), otherwise the
//!   pipeline stops, so a restart resumes from the last acknowledged offsets. Any other
//!   failed delivery is sent again.
//!
//! Owns the producer and the dead-letter file; it may not touch batches beyond sending and
//! acknowledging them.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam::channel::{Receiver, Sender, unbounded};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use rdkafka::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};

use crate::cut::decode::Stream;
use crate::deliver::ack::AckHandle;
use crate::deliver::batch::Batch;
use crate::encode::Encoding;
use crate::file::OwnFiles;
use crate::metrics::Metrics;
use crate::sink::dead_letter::DeadLetter;
use crate::sink::driver::{Sink, SinkError};
use crate::sink::template::Template;
use crate::sink::tls::TlsSettings;
use crate::source::FileCtx;

/// Default librdkafka `linger.ms` of a Kafka sink.
pub const DEFAULT_KAFKA_LINGER: Duration = Duration::from_millis(5);
/// Default librdkafka `batch.size` of a Kafka sink.
pub const DEFAULT_KAFKA_BATCH_BYTES: usize = 1 << 20;
/// Kafka producer queue per sink, at most.
pub const DEFAULT_KAFKA_QUEUE_BYTES: usize = 64 << 20;

/// Compression of Kafka messages (done by librdkafka, per produce batch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KafkaCompression {
    /// zstd.
    Zstd,
    /// lz4.
    Lz4,
    /// snappy.
    Snappy,
    /// gzip.
    Gzip,
    /// None.
    None,
}

impl KafkaCompression {
    /// The librdkafka `compression.codec` value.
    pub fn codec(self) -> &'static str {
        match self {
            KafkaCompression::Zstd => "zstd",
            KafkaCompression::Lz4 => "lz4",
            KafkaCompression::Snappy => "snappy",
            KafkaCompression::Gzip => "gzip",
            KafkaCompression::None => "none",
        }
    }
}

/// A Kafka sink's settings.
#[derive(Debug, Clone)]
pub struct KafkaSinkSettings {
    /// Bootstrap brokers, `host:port[,host:port…]`.
    pub brokers: String,
    /// The topic of each record.
    pub topic: Template,
    /// The key of each record; `None`: the file's identity.
    pub key: Option<Template>,
    /// Compression.
    pub compression: KafkaCompression,
    /// `all`, `1` or `0`; `all` turns the idempotent producer on.
    pub acks: String,
    /// librdkafka's `linger.ms`.
    pub linger: Duration,
    /// librdkafka's `batch.size`.
    pub batch_bytes: usize,
    /// Where refused records go; `None`: a refused record stops the pipeline.
    pub dead_letter: Option<PathBuf>,
    /// librdkafka properties passed through, applied last.
    pub properties: std::collections::BTreeMap<String, String>,
    /// librdkafka's queue of messages waiting for delivery, in bytes
    /// (`queue.buffering.max.kbytes`), sized from `limits.memory`.
    pub queue_bytes: usize,
    /// TLS to the brokers; `None`: plaintext.
    pub tls: Option<TlsSettings>,
    /// SASL authentication; `None`: none.
    pub sasl: Option<SaslSettings>,
}

/// SASL authentication to Kafka brokers.
#[derive(Clone, PartialEq, Eq)]
pub struct SaslSettings {
    /// `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512` (librdkafka's `sasl.mechanism`).
    pub mechanism: &'static str,
    /// The user.
    pub username: String,
    /// The password (never printed).
    pub password: String,
}

impl std::fmt::Debug for SaslSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaslSettings")
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl KafkaSinkSettings {
    /// The librdkafka properties of `tls` and `sasl`: `security.protocol` and the
    /// `ssl.*`/`sasl.*` settings (applied before the `properties` pass-through).
    pub fn security_properties(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        let protocol = match (&self.tls, &self.sasl) {
            (None, None) => return out,
            (Some(_), None) => "ssl",
            (None, Some(_)) => "sasl_plaintext",
            (Some(_), Some(_)) => "sasl_ssl",
        };
        out.push(("security.protocol", protocol.to_string()));
        if let Some(tls) = &self.tls {
            let path = |p: &std::path::Path| p.display().to_string();
            if let Some(ca) = &tls.ca_file {
                out.push(("ssl.ca.location", path(ca)));
            }
            if let Some(cert) = &tls.cert_file {
                out.push(("ssl.certificate.location", path(cert)));
            }
            if let Some(key) = &tls.key_file {
                out.push(("ssl.key.location", path(key)));
            }
            if !tls.verify {
                out.push(("enable.ssl.certificate.verification", "false".to_string()));
            }
        }
        if let Some(sasl) = &self.sasl {
            out.push(("sasl.mechanism", sasl.mechanism.to_string()));
            out.push(("sasl.username", sasl.username.clone()));
            out.push(("sasl.password", sasl.password.clone()));
        }
        out
    }
}

/// Whether `topic` is a legal Kafka topic name.
pub fn valid_topic(topic: &str) -> bool {
    (1..=249).contains(&topic.len())
        && topic != "."
        && topic != ".."
        && topic
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// How long `write` waits on a full librdkafka queue before it reports the sink as stuck
/// (and is called again).
const QUEUE_FULL_PATIENCE: Duration = Duration::from_secs(2);
/// How often the sink looks at delivery failures while records are in flight.
const CHECK_EVERY: Duration = Duration::from_millis(50);
/// How long `close` waits for librdkafka per attempt.
const FLUSH_STEP: Duration = Duration::from_secs(1);
/// A batch unacknowledged for this long makes the sink degraded (a frozen or overloaded
/// broker may keep its connections open, so librdkafka reports nothing for a while).
const STALLED_AFTER: Duration = Duration::from_secs(10);

/// One batch on its way to Kafka.
#[derive(Debug)]
struct Delivery {
    /// Records not yet delivered, plus one while the batch is still being sent.
    remaining: AtomicU64,
    ack: AckHandle,
    sent: Instant,
    /// Where the batch's delivery time is observed, once, when its last record is done.
    latency: Histogram,
}

impl Delivery {
    /// One record (or the sending itself) is done; the last one acknowledges the batch and
    /// observes how long the whole batch took (once per batch: a clock read and a histogram
    /// update per record cost librdkafka's callback thread a tenth of its time at 1 M
    /// records/s).
    fn done(&self) {
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.latency.observe(self.sent.elapsed().as_secs_f64());
            self.ack.ack();
        }
    }
}

/// A delivery report the sink thread must act on.
enum Failed {
    /// A failure that sending again may fix.
    Retry(Pending),
    /// Refused for good.
    Refused(Pending, String),
}

/// What is needed to send a failed message again or dead-letter it.
struct Pending {
    topic: String,
    key: Option<Vec<u8>>,
    payload: Vec<u8>,
    delivery: Arc<Delivery>,
}

/// State shared by the sink and librdkafka's callbacks.
struct Shared {
    name: String,
    failed: Sender<Failed>,
    /// Set by the error callback when no broker can be reached; cleared by a delivery.
    brokers_down: AtomicBool,
    last_error: Mutex<Option<String>>,
    delivered: Counter,
    latency: Histogram,
}

/// librdkafka's callbacks.
struct Context {
    shared: Arc<Shared>,
}

impl ClientContext for Context {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        let sink = &self.shared.name;
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => tracing::error!(sink, facility, "librdkafka: {message}"),
            RDKafkaLogLevel::Warning => tracing::warn!(sink, facility, "librdkafka: {message}"),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(sink, facility, "librdkafka: {message}")
            }
            RDKafkaLogLevel::Debug => tracing::debug!(sink, facility, "librdkafka: {message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        let down = matches!(
            error.rdkafka_error_code(),
            Some(
                RDKafkaErrorCode::AllBrokersDown
                    | RDKafkaErrorCode::BrokerTransportFailure
                    | RDKafkaErrorCode::Resolve
                    | RDKafkaErrorCode::MessageTimedOut
            )
        );
        if down && !self.shared.brokers_down.swap(true, Ordering::AcqRel) {
            tracing::warn!(sink = %self.shared.name, %error, reason, "Kafka brokers unreachable; records stay queued and offsets do not advance");
        } else if !down {
            tracing::warn!(sink = %self.shared.name, %error, reason, "Kafka client error");
        }
        *self
            .shared
            .last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(format!("{error}: {reason}"));
    }
}

impl ProducerContext for Context {
    type DeliveryOpaque = Arc<Delivery>;

    fn delivery(&self, result: &DeliveryResult<'_>, delivery: Arc<Delivery>) {
        match result {
            Ok(_) => {
                // Read first: a write per record would bounce the flag's cache line between
                // this thread and the sink's.
                if self.shared.brokers_down.load(Ordering::Acquire)
                    && self.shared.brokers_down.swap(false, Ordering::AcqRel)
                {
                    tracing::info!(sink = %self.shared.name, "Kafka brokers reachable again");
                }
                self.shared.delivered.inc();
                delivery.done();
            }
            Err((error, message)) => {
                let copy = Pending {
                    topic: message.topic().to_string(),
                    key: message.key().map(<[u8]>::to_vec),
                    payload: message.payload().map(<[u8]>::to_vec).unwrap_or_default(),
                    delivery,
                };
                let failed = match refusal(error) {
                    Some(reason) => Failed::Refused(copy, reason),
                    None => Failed::Retry(copy),
                };
                // The sink owns the receiver for its whole life; if it is gone, so is the
                // pipeline, and the unacknowledged record is read again after a restart.
                let _ = self.shared.failed.send(failed);
            }
        }
    }
}

/// Why `error` means the broker will never take the record, or `None` when sending it again
/// may work.
fn refusal(error: &KafkaError) -> Option<String> {
    use RDKafkaErrorCode as E;
    let code = error.rdkafka_error_code()?;
    let permanent = matches!(
        code,
        E::MessageSizeTooLarge
            | E::InvalidMessageSize
            | E::MessageBatchTooLarge
            | E::InvalidMessage
            | E::InvalidRecord
            | E::UnknownTopicOrPartition
            | E::UnknownTopic
            | E::InvalidTopic
            | E::TopicAuthorizationFailed
            | E::ClusterAuthorizationFailed
            | E::PolicyViolation
            | E::InvalidRequiredAcks
            | E::UnsupportedForMessageFormat
    );
    permanent.then(|| error.to_string())
}

/// The Kafka sink.
pub struct KafkaSink {
    name: String,
    config: KafkaSinkSettings,
    producer: ThreadedProducer<Context>,
    shared: Arc<Shared>,
    failed: Receiver<Failed>,
    /// Failed deliveries to send again, oldest first (kept here while the queue is full).
    resend: VecDeque<Pending>,
    /// Batches handed to librdkafka, oldest first, until acknowledged.
    unacknowledged: VecDeque<Arc<Delivery>>,
    dead_letter: Option<DeadLetter>,
    /// How the records are encoded (a JSON record is dead-lettered as an object, text as a
    /// string).
    encoding: Encoding,
    /// The batch being sent: its data's address, the next record and its delivery, so that a
    /// `write` called again with the same batch resumes.
    sending: Option<(usize, usize, Arc<Delivery>)>,
    /// A permanent failure without a dead-letter file: the pipeline must stop.
    fatal: Option<String>,
    retried: Counter,
    refused: Counter,
    dead_lettered: Counter,
    in_flight: Gauge,
}

impl std::fmt::Debug for KafkaSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSink")
            .field("name", &self.name)
            .field("brokers", &self.config.brokers)
            .finish_non_exhaustive()
    }
}

impl KafkaSink {
    /// A producer for `config`; it connects in the background. Its dead-letter file is
    /// announced in `own`.
    pub fn new(
        name: &str,
        config: KafkaSinkSettings,
        encoding: Encoding,
        metrics: &Metrics,
        own: &OwnFiles,
    ) -> Result<Self, SinkError> {
        let label = Metrics::sink(name);
        let (failed_tx, failed) = unbounded();
        let shared = Arc::new(Shared {
            name: name.to_string(),
            failed: failed_tx,
            brokers_down: AtomicBool::new(false),
            last_error: Mutex::new(None),
            delivered: metrics.kafka_delivered.get_or_create_owned(&label),
            latency: metrics.kafka_delivery_seconds.get_or_create(&label).clone(),
        });
        let mut client = ClientConfig::new();
        client
            .set("bootstrap.servers", &config.brokers)
            .set("client.id", format!("ringtail-{name}"))
            .set("compression.codec", config.compression.codec())
            .set("acks", &config.acks)
            .set(
                "enable.idempotence",
                if config.acks == "all" {
                    "true"
                } else {
                    "false"
                },
            )
            .set("linger.ms", config.linger.as_millis().to_string())
            .set("batch.size", config.batch_bytes.to_string())
            // Never give a message up: librdkafka retries until the broker takes it.
            .set("message.timeout.ms", "0")
            // Bounded memory: a full queue is backpressure.
            .set(
                "queue.buffering.max.kbytes",
                (config.queue_bytes / 1024).max(1).to_string(),
            )
            .set("queue.buffering.max.messages", "200000")
            .set_log_level(RDKafkaLogLevel::Warning);
        for (key, value) in config.security_properties() {
            client.set(key, value);
        }
        for (key, value) in &config.properties {
            client.set(key, value);
        }
        let producer: ThreadedProducer<Context> = client
            .create_with_context(Context {
                shared: Arc::clone(&shared),
            })
            .map_err(|e| SinkError::Io {
                sink: name.to_string(),
                action: "create a Kafka producer for",
                target: config.brokers.clone(),
                fatal: true,
                source: std::io::Error::other(e.to_string()),
            })?;
        let dead_letter = match &config.dead_letter {
            Some(path) => Some(DeadLetter::open(name, path, own)?),
            None => None,
        };
        Ok(Self {
            name: name.to_string(),
            producer,
            shared,
            failed,
            resend: VecDeque::new(),
            unacknowledged: VecDeque::new(),
            dead_letter,
            sending: None,
            fatal: None,
            retried: metrics.kafka_retried.get_or_create_owned(&label),
            refused: metrics.kafka_refused.get_or_create_owned(&label),
            dead_lettered: metrics.kafka_dead_lettered.get_or_create_owned(&label),
            in_flight: metrics.kafka_in_flight.get_or_create_owned(&label),
            config,
            encoding,
        })
    }

    fn error(&self, action: &'static str, fatal: bool, message: String) -> SinkError {
        SinkError::Io {
            sink: self.name.clone(),
            action,
            target: self.config.brokers.clone(),
            fatal,
            source: std::io::Error::other(message),
        }
    }

    /// Sends one message, waiting while librdkafka's queue is full. A message refused at once
    /// for good (larger than `message.max.bytes`, a topic name librdkafka rejects) is dealt
    /// with here ([`Self::refused`]).
    fn produce(
        &mut self,
        topic: &str,
        key: Option<&[u8]>,
        payload: &[u8],
        delivery: &Arc<Delivery>,
    ) -> Result<(), SinkError> {
        let mut record = BaseRecord::with_opaque_to(topic, Arc::clone(delivery)).payload(payload);
        if let Some(key) = key {
            record = record.key(key);
        }
        // Read the clock only once the queue is full, not for every record.
        let mut waiting_since = None;
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    if waiting_since.get_or_insert_with(Instant::now).elapsed()
                        > QUEUE_FULL_PATIENCE
                    {
                        // `back` is dropped with its opaque: the record was not sent, and the
                        // caller sends it again.
                        drop(back);
                        return Err(self.error(
                            "queue records for",
                            false,
                            format!(
                                "librdkafka's queue is full ({} records in flight): the brokers are not keeping up",
                                self.producer.in_flight_count()
                            ),
                        ));
                    }
                    record = back;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err((error, back)) => {
                    let Some(reason) = refusal(&error) else {
                        drop(back);
                        return Err(self.error("send a record to", false, error.to_string()));
                    };
                    drop(back);
                    let message = Pending {
                        topic: topic.to_string(),
                        key: key.map(<[u8]>::to_vec),
                        payload: payload.to_vec(),
                        delivery: Arc::clone(delivery),
                    };
                    return self.refused(message, reason);
                }
            }
        }
    }

    /// A record the broker will never take: to the dead-letter file, or stop.
    fn refused(&mut self, message: Pending, reason: String) -> Result<(), SinkError> {
        self.refused.inc();
        tracing::error!(
            sink = %self.name,
            topic = %message.topic,
            bytes = message.payload.len(),
            reason = %reason,
            dead_letter = ?self.config.dead_letter,
            "Kafka refused a record for good"
        );
        let Some(dead) = &mut self.dead_letter else {
            let text = format!(
                "Kafka refused a record of {} bytes for topic `{}` for good ({reason}); no dead_letter file is configured, so the pipeline stops and the record is read again after a restart",
                message.payload.len(),
                message.topic
            );
            self.fatal = Some(text.clone());
            return Err(self.error("deliver to", true, text));
        };
        let written = dead.write(
            ("topic", &message.topic),
            &reason,
            Some((&message.payload, self.encoding)),
            1,
        );
        if let Err(e) = written {
            let path = dead.path().display().to_string();
            // Not done: the record stays unacknowledged, and stopping keeps it that way.
            let text = format!("cannot write dead-letter file {path}: {e}");
            self.fatal = Some(text.clone());
            return Err(self.error("write a dead letter of", true, text));
        }
        self.dead_lettered.inc();
        message.delivery.done();
        Ok(())
    }

    /// Acts on the delivery failures reported since the last call.
    fn handle_failures(&mut self) -> Result<(), SinkError> {
        if let Some(text) = &self.fatal {
            return Err(self.error("deliver to", true, text.clone()));
        }
        while let Ok(failed) = self.failed.try_recv() {
            match failed {
                Failed::Retry(message) => {
                    self.retried.inc();
                    self.resend.push_back(message);
                }
                Failed::Refused(message, reason) => self.refused(message, reason)?,
            }
        }
        while let Some(message) = self.resend.pop_front() {
            let sent = self.produce(
                &message.topic,
                message.key.as_deref(),
                &message.payload,
                &message.delivery,
            );
            if let Err(e) = sent {
                self.resend.push_front(message);
                return Err(e);
            }
        }
        self.in_flight
            .set(i64::from(self.producer.in_flight_count()));
        Ok(())
    }

    /// Fails while no broker is reachable and records wait, or while the oldest batch has
    /// waited [`STALLED_AFTER`], so the sink shows as degraded and queues nothing more.
    fn check_brokers(&mut self) -> Result<(), SinkError> {
        while self
            .unacknowledged
            .front()
            .is_some_and(|d| d.remaining.load(Ordering::Acquire) == 0)
        {
            self.unacknowledged.pop_front();
        }
        if let Some(oldest) = self.unacknowledged.front()
            && oldest.sent.elapsed() > STALLED_AFTER
        {
            let waited = oldest.sent.elapsed().as_secs();
            let records = self.producer.in_flight_count();
            return Err(self.error(
                "deliver to",
                false,
                format!("Kafka has not acknowledged a batch for {waited} s ({records} records in flight)"),
            ));
        }
        let waiting = self.producer.in_flight_count();
        if waiting > 0 && self.shared.brokers_down.load(Ordering::Acquire) {
            let reason = self
                .shared
                .last_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
                .unwrap_or_default();
            return Err(self.error(
                "reach",
                false,
                format!("no broker reachable ({reason}); {waiting} records wait to be delivered"),
            ));
        }
        Ok(())
    }
}

/// A (file, stream) of a batch: the file's context address and the stream.
type Origin = (usize, Stream);

/// The topic and key of one (file, stream).
type Target = (String, Option<Vec<u8>>);

/// Topic and key of each (file, stream) seen in one batch.
type Rendered = HashMap<Origin, Target>;

impl Sink for KafkaSink {
    fn write(&mut self, batch: &Batch) -> Result<(), SinkError> {
        self.handle_failures()?;
        self.check_brokers()?;
        let Some(index) = batch.index.as_ref() else {
            return Err(self.error(
                "route records to",
                true,
                "the batch carries no record index (internal error: the route was built without one)"
                    .to_string(),
            ));
        };
        let address = batch.data.as_ptr() as usize;
        let (start, delivery) = match &self.sending {
            Some((at, next, delivery)) if *at == address => (*next, Arc::clone(delivery)),
            _ => {
                let delivery = Arc::new(Delivery {
                    remaining: AtomicU64::new(index.records.len() as u64 + 1),
                    ack: batch.ack.clone(),
                    sent: Instant::now(),
                    latency: self.shared.latency.clone(),
                });
                (0, delivery)
            }
        };
        let mut rendered: Rendered = HashMap::new();
        // Records of one file come in runs: the last (file, stream) is kept at hand so that
        // most records skip the map.
        let mut last: Option<(Origin, Target)> = None;
        for (i, (record, file, stream)) in index.iter(&batch.data).enumerate().skip(start) {
            let at = (Arc::as_ptr(file) as usize, stream);
            let current = match last.take() {
                Some((seen, target)) if seen == at => (seen, target),
                other => {
                    if let Some((seen, target)) = other {
                        rendered.insert(seen, target);
                    }
                    let target = rendered
                        .remove(&at)
                        .unwrap_or_else(|| render(&self.config, file, stream));
                    (at, target)
                }
            };
            let (_, (topic, key)) = last.insert(current);
            if let Err(e) = self.produce(topic, key.as_deref(), record, &delivery) {
                self.sending = Some((address, i, delivery));
                return Err(e);
            }
        }
        self.sending = None;
        // Everything is queued: drop the sending guard.
        delivery.done();
        self.unacknowledged.push_back(delivery);
        self.in_flight
            .set(i64::from(self.producer.in_flight_count()));
        Ok(())
    }

    fn deadline(&self) -> Option<Instant> {
        (self.producer.in_flight_count() > 0 || !self.failed.is_empty() || !self.resend.is_empty())
            .then(|| Instant::now() + CHECK_EVERY)
    }

    fn on_deadline(&mut self) -> Result<(), SinkError> {
        self.handle_failures()?;
        self.check_brokers()
    }

    fn close(&mut self) -> Result<(), SinkError> {
        self.handle_failures()?;
        // flush only waits; records that fail meanwhile are handled on the next attempt.
        let _ = self.producer.flush(FLUSH_STEP);
        self.handle_failures()?;
        let waiting = self.producer.in_flight_count();
        if waiting > 0 || !self.failed.is_empty() || !self.resend.is_empty() {
            self.check_brokers()?;
            return Err(self.error(
                "flush",
                false,
                format!("{waiting} records not yet acknowledged by Kafka"),
            ));
        }
        Ok(())
    }
}

/// The topic and key of records of `file` on `stream`. A topic rendered from fields is made a
/// legal topic name (other characters become `_`).
fn render(config: &KafkaSinkSettings, file: &FileCtx, stream: Stream) -> (String, Option<Vec<u8>>) {
    // A container's declaration may name its own topic (`RINGTAIL_LOGS_<NAME>_TOPIC`).
    let declared = file.source.origin.as_ref().and_then(|o| o.topic.clone());
    let mut topic = declared.unwrap_or_else(|| config.topic.render(file, stream));
    if !valid_topic(&topic) {
        topic = topic
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                    c
                } else {
                    '_'
                }
            })
            .take(249)
            .collect();
    }
    let key = match &config.key {
        Some(template) => template.render(file, stream).into_bytes(),
        None => format!("{}:{}", file.identity.dev, file.identity.ino).into_bytes(),
    };
    (topic, Some(key))
}

#[cfg(test)]
mod tests;
