//! Validating one sink: what every sink has (name, inputs, encoding), then the fields of its
//! type, into a [`SinkSettings`].
//!
//! Owns the sinks' configuration rules; what a sink does is [`crate::sink`]'s.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use marked_yaml::{Node, Spanned};

use crate::config::http::{elasticsearch_sink, otlp_sink, tls};
use crate::config::problem::Problem;
use crate::config::raw::{RawRotate, RawSink};
use crate::config::scalar::{choice, count, duration, size, unique_name};
use crate::encode::Encoding;
use crate::sink::file::{
    Compression, DEFAULT_ROTATE_MAX_FILES, DEFAULT_SYNC_INTERVAL, DEFAULT_ZSTD_LEVEL,
    FileSinkSettings, Rotate,
};
use crate::sink::kafka::{
    DEFAULT_KAFKA_BATCH_BYTES, DEFAULT_KAFKA_LINGER, DEFAULT_KAFKA_QUEUE_BYTES, KafkaCompression,
    KafkaSinkSettings, SaslSettings, valid_topic,
};
use crate::sink::template::Template;
use crate::sink::{SinkKind, SinkSettings};
use crate::source::Source;

/// The sink `raw` (item `i` of `sinks`, at `node`): every field checked against its type.
/// `sources` are the sources' names and indices; its name goes into `names`.
pub(super) fn sink(
    raw: RawSink,
    node: &Node,
    i: usize,
    sources: &HashMap<String, usize>,
    names: &mut HashMap<String, usize>,
    problems: &mut Vec<Problem>,
) -> Option<SinkSettings> {
    let path = format!("sinks[{i}]");
    let before = problems.len();
    let name = unique_name(raw.name.as_ref(), node, &path, "sink", i, names, problems);
    let inputs = match &raw.inputs {
        None => sources.values().copied().collect::<Vec<_>>(),
        Some(list) => {
            if list.is_empty() {
                problems.push(Problem::node(
                    node,
                    format!("{path}.inputs"),
                    "must name at least one source",
                ));
            }
            let mut inputs = Vec::new();
            for (j, input) in list.iter().enumerate() {
                match sources.get(input.as_str()) {
                    Some(&index) => inputs.push(index),
                    None => problems.push(Problem::spanned(
                        input,
                        format!("{path}.inputs[{j}]"),
                        format!("no source is named `{}`", **input),
                    )),
                }
            }
            inputs
        }
    };
    let kind = match &raw.kind {
        None => {
            problems.push(Problem::node(
                node,
                format!("{path}.type"),
                "missing field `type`",
            ));
            None
        }
        Some(kind) => match kind.as_str() {
            "stdout" => {
                fields_for(&raw, &path, "stdout", problems);
                Some(SinkKind::Stdout)
            }
            "blackhole" => {
                fields_for(&raw, &path, "blackhole", problems);
                Some(SinkKind::Blackhole)
            }
            "file" => {
                fields_for(&raw, &path, "file", problems);
                file_sink(&raw, node, &path, problems).map(SinkKind::File)
            }
            "kafka" => {
                fields_for(&raw, &path, "kafka", problems);
                kafka_sink(&raw, node, &path, problems).map(SinkKind::Kafka)
            }
            "otlp" => {
                fields_for(&raw, &path, "otlp", problems);
                otlp_sink(&raw, node, &path, problems).map(SinkKind::Otlp)
            }
            "elasticsearch" => {
                fields_for(&raw, &path, "elasticsearch", problems);
                elasticsearch_sink(&raw, node, &path, problems).map(SinkKind::Elasticsearch)
            }
            other => {
                problems.push(Problem::spanned(
                    kind,
                    format!("{path}.type"),
                    format!("unknown sink type `{other}`, expected one of `stdout`, `file`, `kafka`, `otlp`, `elasticsearch`, `blackhole`"),
                ));
                None
            }
        },
    };
    let encoding = match raw.encoding.as_ref().map(|e| (e, e.as_str())) {
        // OTLP sinks take OTLP log records (their `encoding` is protobuf or json).
        _ if matches!(&kind, Some(SinkKind::Otlp(o)) if o.json) => Encoding::OtlpJson,
        _ if matches!(kind, Some(SinkKind::Otlp(_))) => Encoding::Otlp,
        None | Some((_, "json")) => Encoding::Json,
        Some((_, "text")) => Encoding::Text,
        Some((e, other)) => {
            problems.push(Problem::spanned(
                e,
                format!("{path}.encoding"),
                format!("unknown encoding `{other}`, expected `json` or `text`"),
            ));
            Encoding::Json
        }
    };
    if problems.len() != before {
        return None;
    }
    let mut inputs = inputs;
    inputs.sort_unstable();
    Some(SinkSettings {
        name: name?,
        inputs,
        encoding,
        kind: kind?,
    })
}

/// Reports every field set on a sink of `kind` that belongs to other kinds of sink.
fn fields_for(raw: &RawSink, path: &str, kind: &str, problems: &mut Vec<Problem>) {
    fn mark(s: &Option<Spanned<String>>) -> Option<Option<&marked_yaml::Marker>> {
        s.as_ref().map(|s| s.span().start())
    }
    const FILE: &[&str] = &["file"];
    const KAFKA: &[&str] = &["kafka"];
    const HTTP: &[&str] = &["otlp", "elasticsearch"];
    const TLS: &[&str] = &["kafka", "otlp", "elasticsearch"];
    const ELASTICSEARCH: &[&str] = &["elasticsearch"];
    const COMPRESSED: &[&str] = &["file", "kafka", "otlp", "elasticsearch"];
    const REFUSING: &[&str] = &["kafka", "otlp", "elasticsearch"];
    let fields = [
        ("path", mark(&raw.path), FILE),
        ("compression", mark(&raw.compression), COMPRESSED),
        ("zstd_level", mark(&raw.zstd_level), FILE),
        ("sync_interval", mark(&raw.sync_interval), FILE),
        ("rotate", raw.rotate.as_ref().map(|_| None), FILE),
        ("brokers", mark(&raw.brokers), KAFKA),
        ("topic", mark(&raw.topic), KAFKA),
        ("key", mark(&raw.key), KAFKA),
        ("acks", mark(&raw.acks), KAFKA),
        ("linger", mark(&raw.linger), KAFKA),
        ("batch_size", mark(&raw.batch_size), KAFKA),
        ("dead_letter", mark(&raw.dead_letter), REFUSING),
        ("properties", raw.properties.as_ref().map(|_| None), KAFKA),
        ("endpoint", mark(&raw.endpoint), HTTP),
        ("endpoints", raw.endpoints.as_ref().map(|_| None), HTTP),
        ("headers", raw.headers.as_ref().map(|_| None), HTTP),
        ("tls", raw.tls.as_ref().map(|_| None), TLS),
        ("sasl", raw.sasl.as_ref().map(|_| None), KAFKA),
        ("timeout", mark(&raw.timeout), HTTP),
        ("max_in_flight", mark(&raw.max_in_flight), HTTP),
        ("retry_max", mark(&raw.retry_max), HTTP),
        ("index", mark(&raw.index), ELASTICSEARCH),
        ("op_type", mark(&raw.op_type), ELASTICSEARCH),
        ("pipeline", mark(&raw.pipeline), ELASTICSEARCH),
        ("auth", raw.auth.as_ref().map(|_| None), ELASTICSEARCH),
    ];
    for (field, mark, kinds) in fields {
        if let Some(mark) = mark
            && !kinds.contains(&kind)
        {
            let owners = kinds
                .iter()
                .map(|k| format!("{k} sinks"))
                .collect::<Vec<_>>()
                .join(" and ");
            problems.push(Problem::at(
                mark,
                format!("{path}.{field}"),
                format!("`{field}` applies to {owners} only, not to `{kind}`"),
            ));
        }
    }
}

/// A Kafka sink's fields.
fn kafka_sink(
    raw: &RawSink,
    node: &Node,
    path: &str,
    problems: &mut Vec<Problem>,
) -> Option<KafkaSinkSettings> {
    let before = problems.len();
    let brokers = match &raw.brokers {
        Some(b)
            if b.split(',').all(|one| {
                one.trim()
                    .rsplit_once(':')
                    .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
            }) =>
        {
            Some(b.split(',').map(str::trim).collect::<Vec<_>>().join(","))
        }
        Some(b) => {
            problems.push(Problem::spanned(
                b,
                format!("{path}.brokers"),
                "must be `host:port`, or several separated by commas",
            ));
            None
        }
        None => {
            problems.push(Problem::node(
                node,
                format!("{path}.brokers"),
                "a kafka sink needs `brokers`",
            ));
            None
        }
    };
    let template =
        |value: &Spanned<String>, field: &str, problems: &mut Vec<Problem>| match Template::parse(
            value,
        ) {
            Ok(t) => Some(t),
            Err(e) => {
                problems.push(Problem::spanned(
                    value,
                    format!("{path}.{field}"),
                    e.to_string(),
                ));
                None
            }
        };
    let topic = match &raw.topic {
        Some(t) => {
            let topic = template(t, "topic", problems);
            if let Some(literal) = topic.as_ref().and_then(|t| t.as_literal())
                && !valid_topic(literal)
            {
                problems.push(Problem::spanned(
                    t,
                    format!("{path}.topic"),
                    "a topic is 1 to 249 characters from `a-z A-Z 0-9 . _ -`",
                ));
            }
            topic
        }
        None => {
            problems.push(Problem::node(
                node,
                format!("{path}.topic"),
                "a kafka sink needs `topic`",
            ));
            None
        }
    };
    let key = raw.key.as_ref().and_then(|k| template(k, "key", problems));
    let compression = choice(
        raw.compression.as_ref(),
        &format!("{path}.compression"),
        &[
            ("zstd", KafkaCompression::Zstd),
            ("lz4", KafkaCompression::Lz4),
            ("snappy", KafkaCompression::Snappy),
            ("gzip", KafkaCompression::Gzip),
            ("none", KafkaCompression::None),
        ],
        KafkaCompression::Zstd,
        problems,
    );
    let acks = choice(
        raw.acks.as_ref(),
        &format!("{path}.acks"),
        &[("all", "all"), ("1", "1"), ("0", "0")],
        "all",
        problems,
    )
    .to_string();
    let linger = duration(
        raw.linger.as_ref(),
        &format!("{path}.linger"),
        DEFAULT_KAFKA_LINGER,
        problems,
    );
    let batch_bytes = size(
        raw.batch_size.as_ref(),
        &format!("{path}.batch_size"),
        DEFAULT_KAFKA_BATCH_BYTES,
        1..=(1 << 31) - 1,
        problems,
    );
    let dead_letter = match &raw.dead_letter {
        Some(p) if Path::new(p.as_str()).is_absolute() => Some(PathBuf::from(p.as_str())),
        Some(p) => {
            problems.push(Problem::spanned(
                p,
                format!("{path}.dead_letter"),
                "must be an absolute path",
            ));
            None
        }
        None => None,
    };
    let properties = raw
        .properties
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.to_string()))
        .collect();
    let tls = raw.tls.as_ref().map(|t| tls(t, node, path, problems));
    let sasl = raw.sasl.as_ref().and_then(|sasl| {
        let mechanism = choice(
            sasl.mechanism.as_ref(),
            &format!("{path}.sasl.mechanism"),
            &[
                ("PLAIN", "PLAIN"),
                ("SCRAM-SHA-256", "SCRAM-SHA-256"),
                ("SCRAM-SHA-512", "SCRAM-SHA-512"),
            ],
            "SCRAM-SHA-512",
            problems,
        );
        let mut field = |value: &Option<Spanned<String>>, name: &str| match value {
            Some(v) => Some(v.to_string()),
            None => {
                problems.push(Problem::node(
                    node,
                    format!("{path}.sasl.{name}"),
                    format!("SASL needs `{name}`"),
                ));
                None
            }
        };
        let username = field(&sasl.username, "username");
        let password = field(&sasl.password, "password");
        Some(SaslSettings {
            mechanism,
            username: username?,
            password: password?,
        })
    });
    if problems.len() != before {
        return None;
    }
    Some(KafkaSinkSettings {
        brokers: brokers?,
        topic: topic?,
        key,
        compression,
        acks,
        linger,
        batch_bytes,
        dead_letter,
        properties,
        queue_bytes: DEFAULT_KAFKA_QUEUE_BYTES,
        tls,
        sasl,
    })
}

/// A file sink's fields.
fn file_sink(
    raw: &RawSink,
    node: &Node,
    path: &str,
    problems: &mut Vec<Problem>,
) -> Option<FileSinkSettings> {
    let before = problems.len();
    let out = match &raw.path {
        Some(p) if Path::new(p.as_str()).is_absolute() => Some(PathBuf::from(p.as_str())),
        Some(p) => {
            problems.push(Problem::spanned(
                p,
                format!("{path}.path"),
                "must be an absolute path",
            ));
            None
        }
        None => {
            problems.push(Problem::node(
                node,
                format!("{path}.path"),
                "a file sink needs `path`",
            ));
            None
        }
    };
    let level = match &raw.zstd_level {
        Some(level) => match level.parse::<i32>() {
            Ok(l) if (1..=19).contains(&l) => l,
            _ => {
                problems.push(Problem::spanned(
                    level,
                    format!("{path}.zstd_level"),
                    "must be a whole number from 1 to 19",
                ));
                DEFAULT_ZSTD_LEVEL
            }
        },
        None => DEFAULT_ZSTD_LEVEL,
    };
    let compression = choice(
        raw.compression.as_ref(),
        &format!("{path}.compression"),
        &[
            ("none", Compression::None),
            ("zstd", Compression::Zstd { level }),
        ],
        Compression::None,
        problems,
    );
    if raw.zstd_level.is_some() && compression == Compression::None {
        problems.push(Problem::at(
            raw.zstd_level.as_ref().and_then(|s| s.span().start()),
            format!("{path}.zstd_level"),
            "`zstd_level` needs `compression: zstd`",
        ));
    }
    let rotate = raw.rotate.as_ref().map(|r: &RawRotate| Rotate {
        max_bytes: size(
            r.max_bytes.as_ref(),
            &format!("{path}.rotate.max_bytes"),
            100 << 20,
            4096..=1 << 50,
            problems,
        ) as u64,
        max_files: count(
            r.max_files.as_ref(),
            &format!("{path}.rotate.max_files"),
            DEFAULT_ROTATE_MAX_FILES,
            1..=10_000,
            problems,
        ),
    });
    if let Some(r) = &raw.rotate
        && r.max_bytes.is_none()
    {
        problems.push(Problem::node(
            node,
            format!("{path}.rotate.max_bytes"),
            "rotation needs `max_bytes`",
        ));
    }
    let sync_interval = duration(
        raw.sync_interval.as_ref(),
        &format!("{path}.sync_interval"),
        DEFAULT_SYNC_INTERVAL,
        problems,
    );
    if problems.len() != before {
        return None;
    }
    Some(FileSinkSettings {
        path: out?,
        compression,
        rotate,
        sync_interval,
    })
}

/// A sink whose files a source would read — a file sink's output or one of its rotations, or
/// a Kafka sink's dead-letter file, matching a source's paths — would feed ringtail its own
/// output forever (12 bytes of input became 1.5 GB in 10 s): a problem, at the field that
/// names the file. (At run time discovery also refuses ringtail's own files by identity, for
/// what a configuration cannot show: hard links, merged directories.)
pub(super) fn read_back(
    sink: &SinkSettings,
    sources: &[Arc<Source>],
    node: &Node,
    i: usize,
    problems: &mut Vec<Problem>,
) {
    let (field, files): (&str, Vec<(PathBuf, Option<usize>)>) = match &sink.kind {
        SinkKind::File(file) => {
            let max_files = file
                .rotate
                .map_or(DEFAULT_ROTATE_MAX_FILES, |r| r.max_files);
            let rotations = (1..=max_files).map(|n| {
                (
                    PathBuf::from(format!("{}.{n}", file.path.display())),
                    Some(n),
                )
            });
            (
                "path",
                std::iter::once((file.path.clone(), None))
                    .chain(rotations)
                    .collect(),
            )
        }
        kind => match kind.dead_letter() {
            Some(path) => ("dead_letter", vec![(path.to_path_buf(), None)]),
            None => return,
        },
    };
    let at = node
        .as_mapping()
        .and_then(|m| m.get_node(field))
        .unwrap_or(node);
    for (file, rotation) in files {
        let Some(source) = sources.iter().find(|s| s.matches(&file)) else {
            continue;
        };
        let what = match rotation {
            Some(n) => format!("`{}` (rotation {n} of this sink's file)", file.display()),
            None => format!("`{}`", file.display()),
        };
        problems.push(Problem::node(
            at,
            format!("sinks[{i}].{field}"),
            format!(
                "{what} matches the paths of source `{}`: ringtail would read what it writes, forever; write it outside the sources' globs",
                source.name
            ),
        ));
        return;
    }
}
