//! Sinks: where encoded batches go, and when they count as delivered.
//!
//! - [`driver`]: the thread that drives one sink — retry with backoff, health — and the
//!   [`driver::Sink`] trait every sink implements.
//! - [`file`](mod@file): NDJSON (or text) to a file, optionally zstd-compressed, with size-based
//!   rotation.
//! - [`stdout`]: records to standard output.
//! - [`kafka`]: one Kafka message per record, acknowledged when the broker has them all.
//! - [`http`]: HTTP delivery shared by the HTTP sinks: client, senders, retry.
//! - [`otlp`]: OTLP/HTTP log export, one request per batch.
//! - [`elasticsearch`]: the `_bulk` API (Elasticsearch, OpenSearch), daily indices.
//! - [`dead_letter`]: the file records refused for good go to.
//! - [`tls`]: TLS client settings (HTTP sinks, Kafka).
//! - [`blackhole`]: counts and discards (benchmarks).
//! - [`template`]: per-record templates for Kafka topics and keys.
//! - [`dead_letter`]: the file records refused for good go to.
//! - [`tls`]: TLS client settings (HTTP sinks, Kafka).
//!
//! Each sink's settings type lives with the sink; [`SinkSettings`] is what every sink has in
//! common (name, inputs, encoding) and [`create`] makes the sink a [`SinkKind`] names. A sink
//! owns its destination; it may not touch how batches were made, only acknowledge them.

pub mod blackhole;
pub mod dead_letter;
pub mod driver;
pub mod elasticsearch;
pub mod file;
pub mod http;
pub mod kafka;
pub mod otlp;
pub mod stdout;
pub mod template;
pub mod tls;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::deliver::ack::AckTracker;
use crate::encode::Encoding;
use crate::file::OwnFiles;
use crate::metrics::Metrics;
use driver::{Sink, SinkError};
use elasticsearch::{Bulk, ElasticsearchSinkSettings};
use file::FileSinkSettings;
use http::sender::HttpSink;
use kafka::KafkaSinkSettings;
use otlp::{Otlp, OtlpSinkSettings};

/// A validated sink.
#[derive(Debug, Clone)]
pub struct SinkSettings {
    /// Unique name.
    pub name: String,
    /// Indices of the sources it receives, ascending.
    pub inputs: Vec<usize>,
    /// How records are written.
    pub encoding: Encoding,
    /// Kind and settings.
    pub kind: SinkKind,
}

impl SinkSettings {
    /// Whether the sink receives the records of source `index` (a binary search: a sink can
    /// take 20,000 sources).
    pub fn receives(&self, index: usize) -> bool {
        self.inputs.binary_search(&index).is_ok()
    }
}

/// What kind of sink.
#[derive(Debug, Clone)]
pub enum SinkKind {
    /// Records to standard output.
    Stdout,
    /// Records to a file.
    File(FileSinkSettings),
    /// Counts and discards (benchmarks).
    Blackhole,
    /// Records to Kafka topics.
    Kafka(KafkaSinkSettings),
    /// Records to an OTLP/HTTP endpoint.
    Otlp(OtlpSinkSettings),
    /// Records indexed in Elasticsearch or OpenSearch.
    Elasticsearch(ElasticsearchSinkSettings),
}

impl SinkKind {
    /// The file records refused for good go to, if the sink has one.
    pub fn dead_letter(&self) -> Option<&std::path::Path> {
        match self {
            SinkKind::Kafka(kafka) => kafka.dead_letter.as_deref(),
            SinkKind::Otlp(otlp) => otlp.http.dead_letter.as_deref(),
            SinkKind::Elasticsearch(es) => es.http.dead_letter.as_deref(),
            _ => None,
        }
    }

    /// Whether the sink takes a batch's records one by one (so the workers index them), rather
    /// than the batch whole.
    pub fn takes_records_one_by_one(&self) -> bool {
        matches!(
            self,
            SinkKind::Kafka(_) | SinkKind::Otlp(_) | SinkKind::Elasticsearch(_)
        )
    }
}

/// Where a file sink named `name` keeps its journal under `data_dir`: the name as it is
/// where it is a plain file name, hex-encoded where it is not.
pub fn journal_path(data_dir: &Path, name: &str) -> PathBuf {
    let plain = !name.is_empty()
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    let file = if plain {
        format!("{name}.journal")
    } else {
        let hex: String = name.bytes().map(|b| format!("{b:02x}")).collect();
        format!("x-{hex}.journal")
    };
    data_dir.join("sinks").join(file)
}

/// Creates the sink `settings` describe (a Kafka producer connects in the background); the
/// files it writes are announced in `own`, so they are never read. `journal` (`data_dir` and
/// the acknowledgement tracker) is given where the sink is the only sink of every source it
/// takes: a file sink then keeps a journal and leaves no duplicates after a crash.
pub fn create(
    settings: &SinkSettings,
    metrics: &Metrics,
    own: &Arc<OwnFiles>,
    journal: Option<(&Path, &Arc<AckTracker>)>,
) -> Result<Box<dyn Sink>, SinkError> {
    let name = &settings.name;
    Ok(match &settings.kind {
        SinkKind::Stdout => Box::new(stdout::StdoutSink::new(name)),
        SinkKind::Blackhole => Box::new(blackhole::BlackholeSink),
        SinkKind::File(file) => Box::new(file::FileSink::new(
            name,
            file.clone(),
            Arc::clone(own),
            journal.map(|(dir, tracker)| (journal_path(dir, name), Arc::clone(tracker))),
        )?),
        SinkKind::Kafka(kafka) => Box::new(kafka::KafkaSink::new(
            name,
            kafka.clone(),
            settings.encoding,
            metrics,
            own,
        )?),
        SinkKind::Otlp(otlp) => Box::new(HttpSink::new(
            name,
            Otlp { json: otlp.json },
            otlp.http.clone(),
            settings.encoding,
            metrics,
            own,
        )?),
        SinkKind::Elasticsearch(es) => Box::new(HttpSink::new(
            name,
            Bulk::new(es.clone()),
            es.http.clone(),
            settings.encoding,
            metrics,
            own,
        )?),
    })
}
