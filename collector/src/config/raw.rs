//! The raw configuration layer: what the YAML file says, before any of it is checked.
//!
//! Every field is optional or a plain string with its source position ([`Spanned`]) so that
//! validation can report *all* problems at once, each with its line. Unknown keys are rejected
//! (`deny_unknown_fields`); [`deserialize_collecting`] removes each unknown key it meets and
//! tries again, so one run reports every unknown key instead of only the first.
//!
//! Owns the YAML's shape; it may not check values (validation does).

use std::collections::BTreeMap;

use marked_yaml::{Node, Spanned};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::config::problem::Problem;

/// The `api` section: where `/metrics`, `/livez`, `/readyz` and `/healthz` are served.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApi {
    /// Socket address to listen on, e.g. `127.0.0.1:9100`. Port 0 picks a free port.
    pub listen: Option<Spanned<String>>,
    /// A reader, worker, sink or checkpoint thread working this long without progress makes
    /// `/livez` fail, e.g. `60s`.
    pub stall_timeout: Option<Spanned<String>>,
}

/// The `sidecar` section: ringtail runs in the app's pod (see `pipeline::SidecarSettings`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSidecar {
    /// After SIGTERM, stop once everything is delivered and no file grew for this long.
    pub drain_quiet: Option<Spanned<String>>,
    /// After SIGTERM, stop after this long at most.
    pub drain_max: Option<Spanned<String>>,
}

/// The `metrics` section: what `/metrics` keeps.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMetrics {
    /// How long the series of a container whose files are all closed are kept, e.g. `1h`.
    pub container_ttl: Option<Spanned<String>>,
}

/// The `reader` section: how files are read.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReader {
    /// `io_uring` (default; falls back to `pread` when the kernel refuses io_uring) or `pread`.
    pub backend: Option<Spanned<String>>,
    /// Number of reader threads; each owns one io_uring.
    pub threads: Option<Spanned<String>>,
    /// Bytes read from one file per round (the per-file budget), e.g. `512KiB`.
    pub chunk_size: Option<Spanned<String>>,
    /// Upper bound on read buffers held between readers and workers, e.g. `64MiB`.
    pub buffer_memory: Option<Spanned<String>>,
    /// Where to start in files that exist when ringtail starts: `beginning` or `end`.
    pub read_from: Option<Spanned<String>>,
    /// Most deleted (or moved-away) files held open until read to their end; past it the
    /// oldest is closed and its unread bytes are counted in `lost_bytes`.
    pub max_open_deleted: Option<Spanned<String>>,
    /// Most unread bytes held in deleted (or moved-away) files, e.g. `2GiB`; past it the
    /// oldest is closed and its unread bytes are counted in `lost_bytes`, with its path.
    pub max_deleted_bytes: Option<Spanned<String>>,
    /// What wakes a reader when a file has new data: `inotify` or `write_hook`.
    pub wake: Option<Spanned<String>>,
    /// Most files open at once (default: the open-file limit less a reserve); past it, idle
    /// files are closed to make room and new files wait.
    pub max_open_files: Option<Spanned<String>>,
    /// A file read to its end and idle this long is closed, e.g. `5m`; its next write opens
    /// it again.
    pub close_idle: Option<Spanned<String>>,
    /// How long discovery gathers write events before it wakes the readers, e.g. `10ms`;
    /// `0` wakes them at each event.
    pub linger: Option<Spanned<String>>,
}

/// The `checkpoints` section: how acknowledged offsets are saved under `data_dir`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCheckpoints {
    /// How often the checkpoint file is written (when something changed), e.g. `1s`.
    pub interval: Option<Spanned<String>>,
    /// Checkpoints of files not seen for this long are dropped, e.g. `24h`.
    pub forget_after: Option<Spanned<String>>,
}

/// The `pipeline` section: worker threads and queues.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPipeline {
    /// Number of worker threads that frame, decode and encode (default: one per CPU).
    pub workers: Option<Spanned<String>>,
    /// Capacity, in batches, of each queue between stages.
    pub queue_batches: Option<Spanned<String>>,
    /// Encoded bytes after which a worker hands a batch to the sinks, e.g. `1MiB`.
    pub batch_size: Option<Spanned<String>>,
    /// How long shutdown waits for sinks to acknowledge what was read, e.g. `25s`.
    pub shutdown_timeout: Option<Spanned<String>>,
}

/// The `limits` section: resource ceilings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    /// Memory ceiling of the process, e.g. `512MiB` (a DaemonSet's memory limit): buffers
    /// that are not set explicitly are sized from it, and explicit ones must fit.
    pub memory: Option<Spanned<String>>,
    /// Reader plus worker threads, e.g. `2` (a DaemonSet's CPU limit).
    pub cpu: Option<Spanned<String>>,
}

/// The `kubernetes` section: the node and where the container runtime keeps its state.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKubernetes {
    /// The node's name put into every record (default: the `NODE_NAME` environment variable).
    pub node_name: Option<Spanned<String>>,
    /// Directories of the runtimes' OCI bundles (default: containerd's and cri-o's).
    pub runtime_dirs: Option<Vec<Spanned<String>>>,
    /// The runtime's CRI socket for pod labels and annotations: a path, or `none`
    /// (default: containerd's or cri-o's, whichever exists).
    pub cri_socket: Option<Spanned<String>>,
}

/// A source's `kubernetes` block: which of the pod's labels and annotations its records carry.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSourceKubernetes {
    /// The pod's labels.
    pub labels: Option<RawKeys>,
    /// The pod's annotations.
    pub annotations: Option<RawKeys>,
}

/// Keys kept (`include` globs: only those) and dropped (`exclude` globs).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKeys {
    /// Keep only keys matching one of these globs.
    #[serde(default)]
    pub include: Vec<Spanned<String>>,
    /// Drop keys matching one of these globs.
    #[serde(default)]
    pub exclude: Vec<Spanned<String>>,
}

/// A source's `containers` block: which containers' files it reads.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawContainers {
    /// Read only files of containers that match one of these rules.
    #[serde(default)]
    pub include: Vec<RawContainerMatcher>,
    /// Skip files of containers that match one of these rules.
    #[serde(default)]
    pub exclude: Vec<RawContainerMatcher>,
}

/// One rule of a `containers` filter; every field given must match (regexes).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawContainerMatcher {
    /// Regex on the pod's namespace.
    pub namespace: Option<Spanned<String>>,
    /// Regex on the pod's name.
    pub pod: Option<Spanned<String>>,
    /// Regex on the container's name.
    pub container: Option<Spanned<String>>,
    /// Regexes on environment variables of the container's process, by name.
    #[serde(default)]
    pub env: BTreeMap<String, Spanned<String>>,
    /// Regexes on annotations (the container's OCI annotations, else the pod's), by name.
    #[serde(default)]
    pub annotations: BTreeMap<String, Spanned<String>>,
    /// Regexes on the pod's labels, by key.
    #[serde(default)]
    pub labels: BTreeMap<String, Spanned<String>>,
}

/// One entry of `sources`: a set of files and how to read them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSource {
    /// Unique name of the source, used in metrics and in sink `inputs`.
    pub name: Option<Spanned<String>>,
    /// Absolute path globs (`*`, `?`, `[..]`, `{a,b}`, `**` for any depth).
    #[serde(default)]
    pub paths: Vec<Spanned<String>>,
    /// Globs of paths to skip; a pattern without `/` is matched against the file name.
    #[serde(default)]
    pub exclude: Vec<Spanned<String>>,
    /// Line format: `raw` (default), `cri` or `docker`.
    pub format: Option<Spanned<String>>,
    /// How lines are joined into multi-line records; absent means one record per line.
    pub multiline: Option<RawMultiline>,
    /// Longest line (and longest joined partial line) kept; longer ones are cut, e.g. `256KiB`.
    pub max_line_bytes: Option<Spanned<String>>,
    /// Static tags added to every record of this source.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Where to start in files that exist at start-up: `beginning` or `end` (overrides `reader`).
    pub read_from: Option<Spanned<String>>,
    /// Which containers' files this source reads (by namespace, pod, container, env,
    /// annotations); files the filter rejects are offered to the next source.
    pub containers: Option<RawContainers>,
    /// Which of the pod's labels and annotations records carry.
    pub kubernetes: Option<RawSourceKubernetes>,
    /// `true`: read the logs containers declare in their environment (`RINGTAIL_LOGS_*`)
    /// instead of `paths`.
    pub declared: Option<Spanned<String>>,
    /// How long an unfinished line (no newline, or a partial without its end) waits for
    /// more data before it is emitted as it is, e.g. `5s`.
    pub partial_timeout: Option<Spanned<String>>,
    /// Processors applied in order after multiline.
    #[serde(default)]
    pub processors: Vec<RawProcessor>,
}

/// One entry of a source's `processors`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProcessor {
    /// `json`, `regex`, `nginx`, `apache`, `csv`, `timestamp`, `add_fields`, `drop` or
    /// `keep`.
    #[serde(rename = "type")]
    pub kind: Option<Spanned<String>>,
    /// `json`: levels of nested objects flattened into `a.b` keys (default 1).
    pub depth: Option<Spanned<String>>,
    /// `json`: keep the message once parsed (default `true`).
    pub keep_source: Option<Spanned<String>>,
    /// `regex`, `drop`, `keep`: the regex.
    pub pattern: Option<Spanned<String>>,
    /// `regex`: names of the capture groups in order (default: the groups' own names).
    pub keys: Option<Vec<Spanned<String>>>,
    /// `csv`: column names.
    pub columns: Option<Vec<Spanned<String>>>,
    /// `csv`: one-byte delimiter (default `,`).
    pub delimiter: Option<Spanned<String>>,
    /// `add_fields`: static fields.
    pub fields: Option<BTreeMap<String, Spanned<String>>>,
    /// `drop`, `keep`: the field to match (`message` or an extracted field).
    pub field: Option<Spanned<String>>,
    /// `timestamp`: `leading` (default) or `field:<name>`.
    pub from: Option<Spanned<String>>,
    /// `timestamp`: `auto` (default) or a layout with `%Y %m %d %e %b %H %M %S %f %z`.
    pub format: Option<Spanned<String>>,
    /// `timestamp`: the zone of times written without one, `+hh:mm` or `Z` (default).
    pub utc_offset: Option<Spanned<String>>,
    /// `timestamp`: take the level word after a leading timestamp as `level` (default
    /// `true`).
    pub level: Option<Spanned<String>>,
}

/// The `multiline` block of a source.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMultiline {
    /// A built-in rule set: `java`, `python`, `node` or `go` stack traces.
    pub preset: Option<Spanned<String>>,
    /// `auto`: learn each stream's record-start shape from its first lines.
    pub mode: Option<Spanned<String>>,
    /// Regex: a line that matches begins a new record; other lines join the current one.
    pub start: Option<Spanned<String>>,
    /// Regex: a line that matches joins the current record; other lines begin a new one.
    #[serde(rename = "continue")]
    pub continue_: Option<Spanned<String>>,
    /// Regex: a line that matches ends the current record.
    pub end: Option<Spanned<String>>,
    /// Most lines in one record; the next line begins a new record.
    pub max_lines: Option<Spanned<String>>,
    /// Most bytes in one record; the next line begins a new record, e.g. `1MiB`.
    pub max_bytes: Option<Spanned<String>>,
    /// A pending record is emitted once no line of its stream was written for this long,
    /// e.g. `500ms`.
    pub timeout: Option<Spanned<String>>,
}

/// One entry of `sinks`: where records go.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSink {
    /// Unique name of the sink, used in metrics and `/healthz`.
    pub name: Option<Spanned<String>>,
    /// `stdout`, `file`, `kafka`, `otlp`, `elasticsearch` or `blackhole`.
    #[serde(rename = "type")]
    pub kind: Option<Spanned<String>>,
    /// Names of the sources whose records this sink receives (default: all sources).
    pub inputs: Option<Vec<Spanned<String>>>,
    /// `json` (default): one JSON object per record with its metadata; `text`: the message
    /// alone and a newline.
    pub encoding: Option<Spanned<String>>,
    /// `file` only: the output path.
    pub path: Option<Spanned<String>>,
    /// `file`: `none` (default) or `zstd`; `kafka`: `zstd` (default), `lz4`, `snappy`,
    /// `gzip` or `none`; `otlp`: `gzip` (default), `zstd` or `none`.
    pub compression: Option<Spanned<String>>,
    /// `file` only: zstd level, 1 to 19 (default 3).
    pub zstd_level: Option<Spanned<String>>,
    /// `file` only: size-based rotation.
    pub rotate: Option<RawRotate>,
    /// `file` only: how often written data is fsynced and acknowledged, e.g. `1s`.
    pub sync_interval: Option<Spanned<String>>,
    /// `kafka` only: bootstrap brokers, `host:port[,host:port…]`.
    pub brokers: Option<Spanned<String>>,
    /// `kafka` only: the topic, a template such as `logs-{k8s.namespace}`.
    pub topic: Option<Spanned<String>>,
    /// `kafka` only: the message key, a template (default: the file's identity).
    pub key: Option<Spanned<String>>,
    /// `kafka` only: `all` (default), `1` or `0`.
    pub acks: Option<Spanned<String>>,
    /// `kafka` only: how long librdkafka waits to fill a batch, e.g. `5ms`.
    pub linger: Option<Spanned<String>>,
    /// `kafka` only: most bytes in one produce batch, e.g. `1MiB`.
    pub batch_size: Option<Spanned<String>>,
    /// `kafka` and HTTP sinks: where records the destination refuses for good go (NDJSON
    /// with the reason); without it such a record stops the pipeline.
    pub dead_letter: Option<Spanned<String>>,
    /// `kafka` only: librdkafka properties passed through (TLS, SASL, …).
    pub properties: Option<std::collections::BTreeMap<String, Spanned<String>>>,
    /// HTTP sinks (`otlp`): the base URL, e.g. `http://127.0.0.1:4318`.
    pub endpoint: Option<Spanned<String>>,
    /// HTTP sinks: several base URLs, used in turn.
    pub endpoints: Option<Vec<Spanned<String>>>,
    /// HTTP sinks: extra request headers; values may be `${VAR}` or `${file:/path}`.
    pub headers: Option<BTreeMap<String, Spanned<String>>>,
    /// HTTP and Kafka sinks: TLS client settings (`tls: {}` for TLS with the default roots).
    pub tls: Option<RawTls>,
    /// `kafka` only: SASL authentication.
    pub sasl: Option<RawSasl>,
    /// `elasticsearch` only: the index of each record, a template with date directives,
    /// e.g. `logs-{k8s.namespace}-%Y.%m.%d`.
    pub index: Option<Spanned<String>>,
    /// `elasticsearch` only: `index` (default) or `create` (data streams).
    pub op_type: Option<Spanned<String>>,
    /// `elasticsearch` only: the ingest pipeline.
    pub pipeline: Option<Spanned<String>>,
    /// `elasticsearch` only: authentication.
    pub auth: Option<RawAuth>,
    /// HTTP sinks: timeout of one request, e.g. `30s`.
    pub timeout: Option<Spanned<String>>,
    /// HTTP sinks: requests in flight at once (default 4).
    pub max_in_flight: Option<Spanned<String>>,
    /// HTTP sinks: longest wait between retries, e.g. `30s`.
    pub retry_max: Option<Spanned<String>>,
}

/// The `auth` block of an Elasticsearch sink: `username` and `password` (basic), `api_key`,
/// or `bearer`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuth {
    /// Basic authentication's user.
    pub username: Option<Spanned<String>>,
    /// Basic authentication's password.
    pub password: Option<Spanned<String>>,
    /// An API key, base64 `id:key` as Elasticsearch issues it (`Authorization: ApiKey …`).
    pub api_key: Option<Spanned<String>>,
    /// A bearer token (`Authorization: Bearer …`).
    pub bearer: Option<Spanned<String>>,
}

/// The `sasl` block of a Kafka sink.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSasl {
    /// `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    pub mechanism: Option<Spanned<String>>,
    /// The user.
    pub username: Option<Spanned<String>>,
    /// The password (use `${VAR}` or `${file:/path}`).
    pub password: Option<Spanned<String>>,
}

/// The `tls` block of a sink.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    /// PEM file of the certificate authorities to trust (instead of the built-in roots).
    pub ca_file: Option<Spanned<String>>,
    /// PEM file of the client certificate chain.
    pub cert_file: Option<Spanned<String>>,
    /// PEM file of the client's private key.
    pub key_file: Option<Spanned<String>>,
    /// `false` turns certificate verification off (default `true`).
    pub verify: Option<Spanned<String>>,
}

/// The `rotate` block of a file sink.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRotate {
    /// The active file is rotated once it reaches this size on disk, e.g. `100MiB`.
    pub max_bytes: Option<Spanned<String>>,
    /// Rotated files kept (`path.1` is the newest); older ones are deleted.
    pub max_files: Option<Spanned<String>>,
}

/// Deserializes `node` into `T`, recording every problem in `problems`.
///
/// An unknown key is recorded, removed from a copy of the node, and deserialization is tried
/// again, so every unknown key in the node is reported. Any other error is recorded and ends
/// the attempt. Returns the value when everything but unknown keys was fine: the caller then
/// validates it and finds the remaining problems, while the recorded ones keep the whole
/// configuration invalid.
pub fn deserialize_collecting<T: DeserializeOwned>(
    node: &Node,
    path: &str,
    problems: &mut Vec<Problem>,
) -> Option<T> {
    let mut node = node.clone();
    // Each retry removes one key, so this ends; the cap guards against a marked_yaml error
    // that names a key we then fail to find.
    for _ in 0..256 {
        match marked_yaml::from_node::<T>(&node) {
            Ok(value) => return Some(value),
            Err(error) => {
                let mark = error.start_mark().or_else(|| node.span().start().copied());
                let sub_path = error.path().filter(|p| !p.is_empty() && *p != ".");
                let full_path = match sub_path {
                    Some(sub) if path.is_empty() => sub.to_string(),
                    Some(sub) if sub.starts_with('[') => format!("{path}{sub}"),
                    Some(sub) => format!("{path}.{sub}"),
                    None => path.to_string(),
                };
                let unknown = matches!(&*error, marked_yaml::Error::UnknownFieldError(..));
                problems.push(Problem::at(
                    mark.as_ref(),
                    full_path,
                    lowercase_first(&error.to_string_without_path()),
                ));
                if !unknown || !remove_key_at(&mut node, mark.as_ref()) {
                    return None;
                }
            }
        }
    }
    None
}

/// Removes the mapping key that starts at `mark`, anywhere under `node`.
fn remove_key_at(node: &mut Node, mark: Option<&marked_yaml::Marker>) -> bool {
    let Some(mark) = mark else { return false };
    match node {
        Node::Mapping(map) => {
            let before = map.len();
            map.retain(|key, _| key.span().start() != Some(mark));
            if map.len() != before {
                return true;
            }
            map.iter_mut()
                .any(|(_, value)| remove_key_at(value, Some(mark)))
        }
        Node::Sequence(seq) => seq.iter_mut().any(|value| remove_key_at(value, Some(mark))),
        Node::Scalar(_) => false,
    }
}

/// Error text of marked_yaml starts with a capital; ours read as one sentence after a path.
fn lowercase_first(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The message of a marked_yaml error without the path it prefixes.
trait WithoutPath {
    fn to_string_without_path(&self) -> String;
}

impl WithoutPath for marked_yaml::FromNodeError {
    fn to_string_without_path(&self) -> String {
        (**self).to_string()
    }
}
