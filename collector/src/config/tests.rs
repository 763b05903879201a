use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;
use crate::cut::DEFAULT_MAX_LINE_BYTES;
use crate::cut::decode::Format;
use crate::cut::multiline::MultilineMode;
use crate::deliver::checkpoint::{DEFAULT_CHECKPOINT_FORGET_AFTER, DEFAULT_CHECKPOINT_INTERVAL};
use crate::discover::kernel::DiscoveryMode;
use crate::encode::Encoding;
use crate::read::{DEFAULT_BUFFER_MEMORY, DEFAULT_MAX_OPEN_DELETED, WakeSource};
use crate::sink::file::Compression;
use crate::sink::kafka::{DEFAULT_KAFKA_QUEUE_BYTES, KafkaCompression};

/// The configuration from the core-pipeline issue, as written.
const MINIMAL: &str = r#"data_dir: /var/lib/ringtail
api:
  listen: 127.0.0.1:9100
sources:
  - name: pods
    paths: ["/var/log/pods/**/*.log"]
    format: cri            # raw | cri | docker
    multiline:
      preset: java         # or start: '^\d{4}-' / continue: '^\s'
      timeout: 500ms
sinks:
  - name: out
    type: file             # stdout | file | kafka | blackhole
    path: /var/lib/ringtail/out.ndjson
"#;

fn problems_of(text: &str) -> Vec<Problem> {
    let (config, problems) = parse(text);
    assert!(config.is_none() || problems.is_empty());
    problems
}

fn has(problems: &[Problem], line: usize, path: &str, fragment: &str) -> bool {
    problems
        .iter()
        .any(|p| p.line == Some(line) && p.path == path && p.message.contains(fragment))
}

/// Whether a problem at `path`, on any line, says `fragment`.
fn reports(problems: &[Problem], path: &str, fragment: &str) -> bool {
    problems
        .iter()
        .any(|p| p.path == path && p.message.contains(fragment))
}

#[test]
fn the_minimal_configuration_works_as_written() {
    let (config, problems) = parse(MINIMAL);
    assert_eq!(problems, vec![]);
    let config = config.unwrap();
    assert_eq!(config.data_dir, Path::new("/var/lib/ringtail"));
    assert_eq!(config.api.listen.to_string(), "127.0.0.1:9100");
    let source = &config.sources[0];
    assert_eq!(source.name, "pods");
    assert_eq!(source.cut.format, Format::Cri);
    assert_eq!(source.cut.max_line_bytes, DEFAULT_MAX_LINE_BYTES);
    let ml = source.cut.multiline.as_ref().unwrap();
    assert_eq!(ml.timeout, Duration::from_millis(500));
    assert!(matches!(ml.mode, MultilineMode::Preset(_)));
    assert!(source.matches(Path::new("/var/log/pods/ns_p_u/c/0.log")));
    assert_eq!(config.sinks[0].inputs, vec![0]);
    match &config.sinks[0].kind {
        SinkKind::File(f) => {
            assert_eq!(f.path, Path::new("/var/lib/ringtail/out.ndjson"));
            assert_eq!(f.compression, Compression::None);
        }
        other => panic!("expected a file sink, got {other:?}"),
    }
}

#[test]
fn the_builtin_default_is_valid() {
    let (config, problems) = parse(BUILTIN_DEFAULT);
    assert_eq!(problems, vec![]);
    let config = config.unwrap();
    assert_eq!(config.sources.len(), 2);
    assert!(matches!(config.sinks[0].kind, SinkKind::Stdout));
    assert_eq!(config.sinks[0].inputs, vec![0, 1]);
}

#[test]
fn sinks_encode_json_unless_told_text() {
    let text = format!("{MINIMAL}  - name: raw\n    type: stdout\n    encoding: text\n");
    let (config, problems) = parse(&text);
    assert_eq!(problems, vec![]);
    let encodings: Vec<Encoding> = config.unwrap().sinks.iter().map(|s| s.encoding).collect();
    assert_eq!(encodings, vec![Encoding::Json, Encoding::Text]);
}

#[test]
fn every_problem_is_reported_with_its_line() {
    let text = r#"data_dir: relative/dir
colour: blue
reader:
  backend: mmap
  chunk_size: lots
sources:
  - name: pods
    paths: ["/var/log/[.log", "relative/*.log"]
    format: xml
    strat: x
    multiline:
      start: '(unclosed'
      timeout: soon
    max_line_bytes: 2GiB
    colour: red
  - name: pods
    paths: ["/var/log/*.log"]
sinks:
  - name: out
    type: file
    inputs: [nothere]
  - name: s2
    type: stdout
    path: /tmp/x
    encoding: xml
  - name: s3
    type: carrier-pigeon
"#;
    let problems = problems_of(text);
    let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
    let expect = [
        (1, "data_dir", "must be an absolute path"),
        (2, "colour", "unknown field `colour`"),
        (
            4,
            "reader.backend",
            "unknown value `mmap`, expected one of `io_uring`, `pread`",
        ),
        (5, "reader.chunk_size", "`lots` is not a size"),
        (8, "sources[0].paths[0]", "invalid glob `/var/log/[.log`"),
        (8, "sources[0].paths[1]", "is not an absolute path"),
        (9, "sources[0].format", "unknown value `xml`"),
        (10, "sources[0].strat", "unknown field `strat`"),
        (
            12,
            "sources[0].multiline.start",
            "invalid regex `(unclosed`",
        ),
        (
            13,
            "sources[0].multiline.timeout",
            "`soon` is not a duration",
        ),
        (14, "sources[0].max_line_bytes", "out of range"),
        (15, "sources[0].colour", "unknown field `colour`"),
        (16, "sources[1].name", "duplicate source name `pods`"),
        (21, "sinks[0].inputs[0]", "no source is named `nothere`"),
        (24, "sinks[1].path", "applies to file sinks only"),
        (
            25,
            "sinks[1].encoding",
            "unknown encoding `xml`, expected `json` or `text`",
        ),
        (27, "sinks[2].type", "unknown sink type `carrier-pigeon`"),
    ];
    for (line, path, fragment) in expect {
        assert!(
            has(&problems, line, path, fragment),
            "missing line {line} {path}: {fragment}\nall problems:\n{shown:#?}"
        );
    }
    assert!(
        reports(&problems, "sinks[0].path", "needs `path`"),
        "{shown:#?}"
    );
}

#[test]
fn unknown_fields_in_nested_blocks_are_all_reported() {
    let text = r#"sources:
  - name: a
    paths: ["/x/*.log"]
    multiline:
      preset: java
      flavour: strong
      colour: red
sinks:
  - name: out
    type: blackhole
    rotate:
      max_bytes: 1MiB
      every: day
"#;
    let problems = problems_of(text);
    assert!(
        has(
            &problems,
            6,
            "sources[0].multiline.flavour",
            "unknown field `flavour`"
        ),
        "{problems:#?}"
    );
    assert!(
        has(
            &problems,
            7,
            "sources[0].multiline.colour",
            "unknown field `colour`"
        ),
        "{problems:#?}"
    );
    assert!(
        has(
            &problems,
            13,
            "sinks[0].rotate.every",
            "unknown field `every`"
        ),
        "{problems:#?}"
    );
}

#[test]
fn missing_sources_and_sinks_are_problems() {
    let problems = problems_of("data_dir: /tmp\n");
    let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(paths, vec!["sources", "sinks"]);
    assert!(
        problems[1]
            .message
            .contains("at least one sink is required")
    );

    let problems = problems_of("sources:\n  - name: a\n    paths: [\"/x/*.log\"]\nsinks: []\n");
    assert!(
        problems
            .iter()
            .any(|p| p.path == "sinks" && p.line == Some(4)),
        "{problems:#?}"
    );
}

#[test]
fn a_source_without_a_sink_is_a_problem() {
    let text = r#"sources:
  - name: a
    paths: ["/x/*.log"]
  - name: b
    paths: ["/y/*.log"]
sinks:
  - name: out
    type: stdout
    inputs: [a]
"#;
    let problems = problems_of(text);
    assert!(
        has(
            &problems,
            4,
            "sources[1]",
            "source `b` is not an input of any sink"
        ),
        "{problems:#?}"
    );
}

#[test]
fn multiline_needs_exactly_one_rule() {
    let base = "sinks: [{name: o, type: stdout}]\nsources:\n  - name: a\n    paths: [\"/x/*.log\"]\n    multiline:\n";
    let problems = problems_of(&format!("{base}      timeout: 1s\n"));
    assert!(
        problems.iter().any(|p| p.message.contains("give one of")),
        "{problems:#?}"
    );
    let problems = problems_of(&format!("{base}      preset: java\n      start: '^x'\n"));
    assert!(
        problems.iter().any(|p| p.message.contains("exactly one")),
        "{problems:#?}"
    );
    let problems = problems_of(&format!("{base}      preset: cobol\n"));
    assert!(
        problems
            .iter()
            .any(|p| p.message.contains("unknown preset `cobol`")),
        "{problems:#?}"
    );
    let (config, problems) = parse(&format!(
        "{base}      start: '^\\d{{4}}-'\n      end: 'END$'\n      max_lines: 50\n"
    ));
    assert_eq!(problems, vec![]);
    let ml = config.unwrap().sources[0].cut.multiline.clone().unwrap();
    assert!(matches!(ml.mode, MultilineMode::Start(_)) && ml.end.is_some() && ml.max_lines == 50);
}

#[test]
fn multiline_auto_mode_and_the_node_preset() {
    let base = "sinks: [{name: o, type: stdout}]\nsources:\n  - name: a\n    paths: [\"/x/*.log\"]\n    multiline:\n";
    let (config, problems) = parse(&format!("{base}      mode: auto\n      max_lines: 20\n"));
    assert_eq!(problems, vec![]);
    let ml = config.unwrap().sources[0].cut.multiline.clone().unwrap();
    assert!(matches!(ml.mode, MultilineMode::Auto) && ml.max_lines == 20);
    let (config, problems) = parse(&format!("{base}      preset: node\n"));
    assert_eq!(problems, vec![]);
    let ml = config.unwrap().sources[0].cut.multiline.clone().unwrap();
    assert!(matches!(ml.mode, MultilineMode::Preset(_)));
    for (extra, message) in [
        (
            "      mode: guess\n",
            "unknown mode `guess`, expected `auto`",
        ),
        ("      mode: auto\n      preset: java\n", "exactly one"),
        (
            "      mode: auto\n      end: 'x'\n",
            "`end` cannot be combined with `mode: auto`",
        ),
    ] {
        let problems = problems_of(&format!("{base}{extra}"));
        assert!(
            problems.iter().any(|p| p.message.contains(message)),
            "{extra}: {problems:#?}"
        );
    }
}

#[test]
fn yaml_syntax_errors_have_a_line() {
    let problems = problems_of("sources:\n  - name: a\n    paths: [\"/x\"\nsinks: x\n");
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(problems[0].message.starts_with("invalid YAML"));
    assert!(problems[0].line.is_some());
    let problems = problems_of("- a list\n- at the top\n");
    assert_eq!(problems.len(), 1);
}

#[test]
fn file_sink_options_are_checked() {
    let text = r#"sources: [{name: a, paths: ["/x/*.log"]}]
sinks:
  - name: f
    type: file
    path: /tmp/out.zst
    compression: zstd
    zstd_level: 25
    rotate:
      max_files: 3
  - name: g
    type: file
    path: /tmp/out2
    zstd_level: 5
"#;
    let problems = problems_of(text);
    assert!(
        has(&problems, 7, "sinks[0].zstd_level", "from 1 to 19"),
        "{problems:#?}"
    );
    assert!(
        reports(&problems, "sinks[0].rotate.max_bytes", ""),
        "{problems:#?}"
    );
    assert!(
        has(
            &problems,
            13,
            "sinks[1].zstd_level",
            "needs `compression: zstd`"
        ),
        "{problems:#?}"
    );
}

#[test]
fn a_sink_whose_files_a_source_reads_is_refused() {
    let text = r#"sources:
  - name: host
    paths: ["/var/log/*.log", "/var/log/out/*.ndjson.*"]
sinks:
  - name: self
    type: file
    path: /var/log/ringtail.log
  - name: rotated
    type: file
    path: /var/log/out/all.ndjson
    rotate: {max_bytes: 1MiB, max_files: 2}
  - name: kafka
    type: kafka
    brokers: "k:9092"
    topic: t
    dead_letter: /var/log/dead.log
  - name: fine
    type: file
    path: /var/lib/ringtail/out.ndjson
"#;
    let problems = problems_of(text);
    assert!(
        has(
            &problems,
            7,
            "sinks[0].path",
            "matches the paths of source `host`"
        ),
        "{problems:#?}"
    );
    assert!(
        has(
            &problems,
            10,
            "sinks[1].path",
            "rotation 1 of this sink's file"
        ),
        "{problems:#?}"
    );
    assert!(
        has(
            &problems,
            16,
            "sinks[2].dead_letter",
            "ringtail would read what it writes"
        ),
        "{problems:#?}"
    );
    assert_eq!(problems.len(), 3, "{problems:#?}");
}

#[test]
fn an_unwritable_data_dir_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("a-file");
    std::fs::write(&blocker, b"").unwrap();
    let data_dir = blocker.join("data");
    let text = format!(
        "data_dir: {}\nsources: [{{name: a, paths: [\"/x/*.log\"]}}]\nsinks: [{{name: o, type: blackhole}}]\n",
        data_dir.display()
    );
    match load_str(&text, "test.yaml") {
        Err(ConfigError::Invalid { problems, .. }) => {
            assert_eq!(problems.len(), 1, "{problems:#?}");
            assert_eq!(problems[0].path, "data_dir");
            assert!(
                problems[0].message.contains("is not writable"),
                "{}",
                problems[0]
            );
        }
        other => panic!("expected an invalid configuration, got {other:?}"),
    }
    let ok = text.replace(
        &data_dir.display().to_string(),
        &dir.path().join("new/sub").display().to_string(),
    );
    assert!(
        load_str(&ok, "test.yaml").is_ok(),
        "a data_dir that can be created is fine"
    );
}

#[test]
fn error_display_lists_every_problem() {
    let err = load_str("data_dir: rel\nfoo: 1\n", "my.yaml").unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("my.yaml: 4 problems found:\n"), "{text}");
    assert!(
        text.contains("  - line 1, column 11: data_dir: must be an absolute path"),
        "{text}"
    );
    assert!(
        text.contains("  - line 2, column 1: foo: unknown field `foo`"),
        "{text}"
    );
}

#[test]
fn durability_and_discovery_settings_have_defaults_and_are_checked() {
    let (config, problems) = parse(MINIMAL);
    assert_eq!(problems, vec![]);
    let config = config.unwrap();
    assert_eq!(config.discovery, DiscoveryMode::Auto);
    assert_eq!(config.checkpoints.interval, DEFAULT_CHECKPOINT_INTERVAL);
    assert_eq!(
        config.checkpoints.forget_after,
        DEFAULT_CHECKPOINT_FORGET_AFTER
    );
    assert_eq!(config.reader.max_open_deleted, DEFAULT_MAX_OPEN_DELETED);

    let text = format!(
        "discovery: inotify\ncheckpoints:\n  interval: 250ms\n  forget_after: 2h\nreader:\n  max_open_deleted: 10\n{}",
        MINIMAL.split_once('\n').unwrap().1
    );
    let (config, problems) = parse(&text);
    assert_eq!(problems, vec![]);
    let config = config.unwrap();
    assert_eq!(config.discovery, DiscoveryMode::Inotify);
    assert_eq!(config.checkpoints.interval, Duration::from_millis(250));
    assert_eq!(config.checkpoints.forget_after, Duration::from_secs(7200));
    assert_eq!(config.reader.max_open_deleted, 10);

    let bad = format!(
        "discovery: fanotify\ncheckpoints:\n  interval: never\n  every: 1s\nreader:\n  max_open_deleted: 0\n{}",
        MINIMAL.split_once('\n').unwrap().1
    );
    let problems = problems_of(&bad);
    assert!(has(&problems, 1, "discovery", "fanotify"), "{problems:?}");
    assert!(
        has(&problems, 3, "checkpoints.interval", "not a duration"),
        "{problems:?}"
    );
    assert!(
        has(&problems, 4, "checkpoints.every", "unknown field"),
        "{problems:?}"
    );
    assert!(
        has(&problems, 6, "reader.max_open_deleted", ""),
        "{problems:?}"
    );

    // What wakes readers: inotify by default; the write hook only with eBPF.
    assert_eq!(config.reader.wake, WakeSource::Inotify);
    let hook = format!(
        "discovery: ebpf\nreader:\n  wake: write_hook\n{}",
        MINIMAL.split_once('\n').unwrap().1
    );
    let (config, problems) = parse(&hook);
    assert_eq!(problems, vec![]);
    assert_eq!(config.unwrap().reader.wake, WakeSource::WriteHook);
    let problems = problems_of(&hook.replace("discovery: ebpf", "discovery: inotify"));
    assert!(
        has(&problems, 3, "reader.wake", "needs the eBPF programs"),
        "{problems:?}"
    );
    let problems = problems_of(&hook.replace("write_hook", "fanotify"));
    assert!(has(&problems, 3, "reader.wake", "fanotify"), "{problems:?}");

    // How long write events are gathered: 25 ms by default, 0 (at each event) up to 1 s.
    let (config, _) = parse(MINIMAL);
    assert_eq!(config.unwrap().reader.linger, crate::read::DEFAULT_LINGER);
    let linger = |value: &str| {
        format!(
            "reader:\n  linger: {value}\n{}",
            MINIMAL.split_once('\n').unwrap().1
        )
    };
    for (value, expected) in [
        ("0", Duration::ZERO),
        ("0ms", Duration::ZERO),
        ("40ms", Duration::from_millis(40)),
    ] {
        let (config, problems) = parse(&linger(value));
        assert_eq!(problems, vec![], "{value}");
        assert_eq!(config.unwrap().reader.linger, expected, "{value}");
    }
    for (value, fragment) in [("2s", "must be from 0s to 1s"), ("soon", "not a duration")] {
        let problems = problems_of(&linger(value));
        assert!(
            has(&problems, 2, "reader.linger", fragment),
            "{value}: {problems:?}"
        );
    }
}

#[test]
fn kafka_sinks_are_validated_field_by_field() {
    let sources =
        "data_dir: /tmp\nsources:\n  - name: pods\n    paths: [\"/var/log/pods/**/*.log\"]\n";
    let good = format!(
        "{sources}sinks:\n  - name: k\n    type: kafka\n    brokers: \"a:9092, b:9093\"\n    topic: \"logs-{{k8s.namespace}}\"\n    key: \"{{file}}\"\n    compression: lz4\n    acks: \"1\"\n    linger: 20ms\n    batch_size: 2MiB\n    dead_letter: /tmp/dead.ndjson\n    properties:\n      security.protocol: ssl\n      message.max.bytes: 2000000\n"
    );
    let (config, problems) = parse(&good);
    assert_eq!(problems, vec![]);
    let config = config.unwrap();
    let SinkKind::Kafka(kafka) = &config.sinks[0].kind else {
        panic!("a kafka sink");
    };
    assert_eq!(kafka.brokers, "a:9092,b:9093");
    assert!(kafka.topic.as_literal().is_none());
    assert!(kafka.key.is_some());
    assert_eq!(kafka.compression, KafkaCompression::Lz4);
    assert_eq!(kafka.acks, "1");
    assert_eq!(kafka.linger, Duration::from_millis(20));
    assert_eq!(kafka.batch_bytes, 2 << 20);
    assert_eq!(
        kafka.dead_letter.as_deref(),
        Some(Path::new("/tmp/dead.ndjson"))
    );
    assert_eq!(kafka.properties["message.max.bytes"], "2000000");

    // Defaults.
    let (config, problems) = parse(&format!(
        "{sources}sinks:\n  - name: k\n    type: kafka\n    brokers: a:9092\n    topic: logs\n"
    ));
    assert_eq!(problems, vec![]);
    let SinkKind::Kafka(kafka) = &config.unwrap().sinks[0].kind else {
        panic!("a kafka sink");
    };
    assert_eq!(kafka.compression, KafkaCompression::Zstd);
    assert_eq!(kafka.acks, "all");
    assert!(kafka.key.is_none() && kafka.dead_letter.is_none());

    // Every problem, with its line.
    let bad = format!(
        "{sources}sinks:\n  - name: k\n    type: kafka\n    brokers: nohost\n    topic: \"logs-{{nope}}\"\n    compression: brotli\n    acks: two\n    dead_letter: relative.ndjson\n    path: /tmp/x\n  - name: f\n    type: file\n    path: /tmp/out.ndjson\n    topic: t\n  - name: k2\n    type: kafka\n    topic: \"bad topic!\"\n"
    );
    let problems = problems_of(&bad);
    for (line, path, fragment) in [
        (8, "sinks[0].brokers", "host:port"),
        (9, "sinks[0].topic", "unknown field `nope`"),
        (10, "sinks[0].compression", "brotli"),
        (11, "sinks[0].acks", "two"),
        (12, "sinks[0].dead_letter", "absolute"),
        (13, "sinks[0].path", "file sinks only"),
        (17, "sinks[1].topic", "kafka sinks only"),
        (20, "sinks[2].topic", "1 to 249 characters"),
    ] {
        assert!(
            has(&problems, line, path, fragment),
            "{path}: {problems:#?}"
        );
    }
    assert!(
        reports(&problems, "sinks[2].brokers", "needs `brokers`"),
        "{problems:#?}"
    );
}

#[test]
fn kubernetes_settings_and_container_filters_are_checked() {
    let text = r#"kubernetes:
  node_name: node-7
  runtime_dirs: [/host/run/containerd/io.containerd.runtime.v2.task]
sources:
  - name: shop
    paths: ["/var/log/pods/*/*/*.log"]
    format: cri
    containers:
      include:
        - namespace: '^shop$'
          env: {TEAM: '^payments$'}
      exclude:
        - container: '^istio-proxy$'
          annotations: {"io.kubernetes.cri.image-name": 'envoy'}
sinks:
  - {name: out, type: stdout}
"#;
    let (config, problems) = parse(text);
    assert_eq!(problems, vec![]);
    let config = config.unwrap();
    assert_eq!(config.kubernetes.node_name.as_deref(), Some("node-7"));
    assert_eq!(
        config.kubernetes.runtime_dirs,
        vec![PathBuf::from(
            "/host/run/containerd/io.containerd.runtime.v2.task"
        )]
    );
    let filter = &config.sources[0].containers;
    assert_eq!((filter.include.len(), filter.exclude.len()), (1, 1));
    assert!(filter.include[0].needs_bundle());
    let shop = crate::container::Container {
        namespace: Some("shop".into()),
        name: Some("web".into()),
        env: [("TEAM".to_string(), "payments".to_string())].into(),
        ..Default::default()
    };
    assert!(filter.admits(Some(&shop)));

    let bad = r#"kubernetes:
  node_name: ""
  runtime_dirs: [relative/dir]
  nodes: 3
sources:
  - name: s
    paths: ["/logs/*.log"]
    containers:
      include:
        - namespace: '('
          env: {A: '[z-a]'}
          images: {app: x}
sinks:
  - {name: out, type: stdout}
"#;
    let problems = problems_of(bad);
    assert!(
        has(&problems, 2, "kubernetes.node_name", "must not be empty"),
        "{problems:#?}"
    );
    assert!(
        has(&problems, 3, "kubernetes.runtime_dirs[0]", "absolute"),
        "{problems:#?}"
    );
    assert!(
        has(&problems, 4, "kubernetes.nodes", "unknown field"),
        "{problems:#?}"
    );
    assert!(
        has(
            &problems,
            10,
            "sources[0].containers.include[0].namespace",
            "invalid regex"
        ),
        "{problems:#?}"
    );
    assert!(
        has(
            &problems,
            11,
            "sources[0].containers.include[0].env.A",
            "invalid regex"
        ),
        "{problems:#?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.message.contains("unknown field `images`")),
        "{problems:#?}"
    );
}

#[test]
fn a_source_chooses_the_pod_labels_and_annotations_its_records_carry() {
    let text = "sources:\n  - name: s\n    paths: [\"/logs/*.log\"]\n    kubernetes:\n      labels: {include: [\"app\", \"team*\"]}\n      annotations: {exclude: [\"*\"]}\nsinks:\n  - {name: out, type: stdout}\n";
    let (config, problems) = parse(text);
    assert_eq!(problems, vec![]);
    let keys = &config.unwrap().sources[0].pod_keys;
    assert!(keys.labels.admits("app") && keys.labels.admits("team-lead"));
    assert!(!keys.labels.admits("version"));
    assert!(!keys.annotations.admits("example.com/owner"));
    let bad = "sources:\n  - name: s\n    paths: [\"/logs/*.log\"]\n    kubernetes:\n      labels: {include: [\"a[\"]}\nsinks:\n  - {name: out, type: stdout}\n";
    let problems = problems_of(bad);
    assert!(
        has(
            &problems,
            5,
            "sources[0].kubernetes.labels.include[0]",
            "invalid glob"
        ),
        "{problems:#?}"
    );
}

#[test]
fn the_metrics_section_sets_how_long_a_gone_container_keeps_its_series() {
    let text = |ttl: &str| {
        format!(
            "metrics:\n  container_ttl: {ttl}\nsources:\n  - name: s\n    paths: [\"/logs/*.log\"]\nsinks:\n  - {{name: out, type: stdout}}\n"
        )
    };
    let (config, problems) = parse(&text("10m"));
    assert_eq!(problems, vec![]);
    assert_eq!(
        config.unwrap().metrics.container_ttl,
        std::time::Duration::from_secs(600)
    );
    let problems = problems_of(&text("soon"));
    assert!(
        has(&problems, 2, "metrics.container_ttl", "not a duration"),
        "{problems:#?}"
    );
}

#[test]
fn the_sidecar_section_turns_sidecar_mode_on() {
    let base = "sources:\n  - name: s\n    paths: [\"/logs/*.log\"]\nsinks:\n  - {name: out, type: stdout}\n";
    let (config, _) = parse(base);
    assert_eq!(config.unwrap().sidecar, None);
    let (config, problems) = parse(&format!("sidecar: {{}}\n{base}"));
    assert_eq!(problems, vec![]);
    let sidecar = config.unwrap().sidecar.unwrap();
    assert_eq!(sidecar.drain_quiet, std::time::Duration::from_secs(2));
    assert_eq!(sidecar.drain_max, std::time::Duration::from_secs(25));
    let problems = problems_of(&format!("sidecar:\n  drain_quiet: 0s\n  drain: 1s\n{base}"));
    assert!(
        problems
            .iter()
            .any(|p| p.message.contains("unknown field `drain`")),
        "{problems:#?}"
    );
}

#[test]
fn the_cri_socket_is_a_path_or_none() {
    let config = |socket: &str| {
        format!(
            "kubernetes:\n  cri_socket: {socket}\nsources:\n  - name: s\n    paths: [\"/logs/*.log\"]\nsinks:\n  - {{name: out, type: stdout}}\n"
        )
    };
    use crate::container::resolver::CriSocket;
    let (parsed, problems) = parse(&config("/run/k3s/containerd/containerd.sock"));
    assert_eq!(problems, vec![]);
    assert_eq!(
        parsed.unwrap().kubernetes.cri_socket,
        CriSocket::At(PathBuf::from("/run/k3s/containerd/containerd.sock"))
    );
    let (parsed, _) = parse(&config("none"));
    assert_eq!(parsed.unwrap().kubernetes.cri_socket, CriSocket::Off);
    let (parsed, _) = parse(
        "sources:\n  - name: s\n    paths: [\"/logs/*.log\"]\nsinks:\n  - {name: out, type: stdout}\n",
    );
    assert_eq!(parsed.unwrap().kubernetes.cri_socket, CriSocket::Auto);
    let problems = problems_of(&config("containerd.sock"));
    assert!(
        has(
            &problems,
            2,
            "kubernetes.cri_socket",
            "absolute path, or `none`"
        ),
        "{problems:#?}"
    );
}

#[test]
fn processors_are_checked_field_by_field() {
    let good = r#"sources:
  - name: web
    paths: ["/logs/*.log"]
    processors:
      - type: nginx
      - {type: json, depth: 3, keep_source: false}
      - {type: regex, pattern: '^(?P<level>\w+) (?P<rest>.*)$'}
      - {type: regex, pattern: '^(\w+) (.*)$', keys: [a, b]}
      - {type: csv, columns: [a, b], delimiter: ";"}
      - {type: add_fields, fields: {team: web}}
      - {type: drop, field: level, pattern: '^DEBUG$'}
      - {type: keep, pattern: 'x'}
sinks:
  - {name: out, type: stdout}
"#;
    let (config, problems) = parse(good);
    assert_eq!(problems, vec![]);
    let names: Vec<&str> = config.unwrap().sources[0]
        .processors
        .iter()
        .map(|p| p.name())
        .collect();
    assert_eq!(
        names,
        vec![
            "nginx",
            "json",
            "regex",
            "regex",
            "csv",
            "add_fields",
            "drop",
            "keep"
        ]
    );

    let bad = r#"sources:
  - name: web
    paths: ["/logs/*.log"]
    processors:
      - type: yaml
      - {type: nginx, pattern: x}
      - {type: regex}
      - {type: regex, pattern: '(unclosed'}
      - {type: regex, pattern: 'no groups'}
      - {type: csv}
      - {type: csv, columns: [a], delimiter: ";;"}
      - {type: json, depth: 0}
      - {type: add_fields}
      - {depth: 2}
      - {type: keep, pattern: x, colour: red}
sinks:
  - {name: out, type: stdout}
"#;
    let problems = problems_of(bad);
    let expect = [
        (
            5,
            "sources[0].processors[0].type",
            "unknown processor `yaml`",
        ),
        (6, "sources[0].processors[1].pattern", "does not apply"),
        (7, "sources[0].processors[2].pattern", "needs a `pattern`"),
        (8, "sources[0].processors[3].pattern", "invalid regex"),
        (9, "sources[0].processors[4].keys", "0 capture group"),
        (10, "sources[0].processors[5].columns", "needs `columns`"),
        (
            11,
            "sources[0].processors[6].delimiter",
            "one ASCII character",
        ),
        (12, "sources[0].processors[7].depth", "from 1 to 16"),
        (13, "sources[0].processors[8].fields", "needs `fields`"),
        (14, "sources[0].processors[9].type", "missing field `type`"),
    ];
    for (line, path, fragment) in expect {
        assert!(
            has(&problems, line, path, fragment),
            "{path}: {problems:#?}"
        );
    }
    assert!(
        problems
            .iter()
            .any(|p| p.message.contains("unknown field `colour`")),
        "{problems:#?}"
    );
}

#[test]
fn timestamp_processors_are_checked() {
    let base = "sinks: [{name: o, type: stdout}]\nsources:\n  - name: a\n    paths: [\"/x/*.log\"]\n    processors:\n";
    let (config, problems) = parse(&format!(
        "{base}      - {{type: timestamp}}\n      - {{type: timestamp, from: 'field:ts', format: '%d/%b/%Y:%H:%M:%S %z', utc_offset: '+08:00', level: false}}\n"
    ));
    assert_eq!(problems, vec![]);
    let processors = config.unwrap().sources[0].processors.clone();
    let rules: Vec<&crate::process::time::TimeRule> = processors
        .iter()
        .filter_map(|p| match p {
            crate::process::Processor::Timestamp(rule) => Some(rule),
            _ => None,
        })
        .collect();
    assert_eq!(rules.len(), 2);
    assert!(rules[0].format.is_none() && rules[0].level && rules[0].utc_offset == 0);
    assert_eq!(
        rules[1].from,
        crate::process::time::TimeFrom::Field("ts".into())
    );
    assert!(!rules[1].level && rules[1].utc_offset == 8 * 3600);
    for (extra, path, fragment) in [
        (
            "{type: timestamp, from: trailing}",
            "from",
            "`leading` or `field:<name>`",
        ),
        (
            "{type: timestamp, format: '%Y %Q'}",
            "format",
            "unknown directive `%Q`",
        ),
        (
            "{type: timestamp, utc_offset: CET}",
            "utc_offset",
            "`+hh:mm`",
        ),
        (
            "{type: timestamp, level: maybe}",
            "level",
            "`true` or `false`",
        ),
        ("{type: timestamp, pattern: x}", "pattern", "does not apply"),
    ] {
        let problems = problems_of(&format!("{base}      - {extra}\n"));
        assert!(
            problems
                .iter()
                .any(|p| p.path == format!("sources[0].processors[0].{path}")
                    && p.message.contains(fragment)),
            "{extra}: {problems:#?}"
        );
    }
}

#[test]
fn limits_size_what_is_not_explicit_and_refuse_what_does_not_fit() {
    let base = |limits: &str, extra: &str| {
        format!(
            "{limits}{extra}sources:\n  - name: s\n    paths: [\"/logs/*.log\"]\nsinks:\n  - {{name: k, type: kafka, brokers: \"127.0.0.1:9092\", topic: t}}\n  - {{name: o, type: stdout}}\n"
        )
    };
    // Defaults fit a 512 MiB DaemonSet.
    let (config, problems) = parse(&base("", ""));
    assert_eq!(problems, vec![]);
    let config = config.unwrap();
    assert_eq!(config.limits.memory, 512 << 20);
    assert!(config.limits.buffered <= (512 << 20) - MEMORY_OVERHEAD);
    assert_eq!(config.reader.buffer_memory, DEFAULT_BUFFER_MEMORY);

    // A small ceiling shrinks the buffers that are not set, and threads follow limits.cpu.
    let (config, problems) = parse(&base("limits: {memory: 160MiB, cpu: 3}\n", ""));
    assert_eq!(problems, vec![]);
    let config = config.unwrap();
    assert!(
        config.limits.buffered <= (160 << 20) - MEMORY_OVERHEAD,
        "{:?}",
        config.limits
    );
    assert!(config.reader.buffer_memory < DEFAULT_BUFFER_MEMORY);
    assert_eq!((config.reader.threads, config.pipeline.workers), (1, 2));
    let kafka = config
        .sinks
        .iter()
        .find_map(|s| match &s.kind {
            SinkKind::Kafka(k) => Some(k.queue_bytes),
            _ => None,
        })
        .unwrap();
    assert!(kafka < DEFAULT_KAFKA_QUEUE_BYTES);

    // Explicit buffers that do not fit, and threads over the CPU limit, are problems.
    let problems = problems_of(&base(
        "limits:\n  memory: 160MiB\n  cpu: 2\n",
        "reader:\n  buffer_memory: 100MiB\npipeline:\n  workers: 4\n",
    ));
    assert!(
        has(&problems, 2, "limits.memory", "the buffers add up to"),
        "{problems:#?}"
    );
    assert!(
        has(&problems, 3, "limits.cpu", "exceed limits.cpu"),
        "{problems:#?}"
    );
    let problems = problems_of(&base("limits: {memory: 100MiB}\n", ""));
    assert!(
        problems.iter().any(|p| p.path == "limits.memory"),
        "{problems:#?}"
    );
}

#[test]
fn limits_count_a_batch_and_a_spare_per_worker_and_output_part() {
    // Source a goes to a JSON file and to text on stdout (one route, two encodings); source b
    // to stdout only (a second route, one encoding): three output parts per worker.
    let text = "reader:\n  buffer_memory: 8MiB\npipeline:\n  workers: 3\n  batch_size: 256KiB\n  queue_batches: 4\nsources:\n  - name: a\n    paths: [\"/a/*.log\"]\n  - name: b\n    paths: [\"/b/*.log\"]\nsinks:\n  - {name: f, type: file, path: /tmp/out.ndjson, inputs: [a]}\n  - {name: o, type: stdout, encoding: text, inputs: [a, b]}\n";
    let (config, problems) = parse(text);
    assert_eq!(problems, vec![]);
    let batch = 256 << 10;
    let held = crate::work::output::held_per_part(batch);
    assert_eq!(
        config.unwrap().limits.buffered,
        (8 << 20) + 2 * 4 * batch + 3 * 3 * held
    );

    // Workers not set are held to what a quarter of the budget keeps: at 128 MiB, 24 MiB of
    // buffers, a quarter of which keeps one worker's 4 MiB (512 KiB batches).
    let text = "limits: {memory: 128MiB}\nsources:\n  - name: a\n    paths: [\"/a/*.log\"]\nsinks:\n  - {name: o, type: stdout}\n";
    let (config, problems) = parse(text);
    assert_eq!(problems, vec![]);
    assert_eq!(config.unwrap().pipeline.workers, 1);
    let (config, _) = parse(&format!("pipeline: {{workers: 3}}\n{text}"));
    assert_eq!(config.unwrap().pipeline.workers, 3, "set explicitly: kept");
}

#[test]
fn http_sinks_are_validated_field_by_field() {
    let sources =
        "data_dir: /tmp\nsources:\n  - name: pods\n    paths: [\"/var/log/pods/**/*.log\"]\n";
    let (config, problems) = parse(&format!(
        "{sources}sinks:\n  - name: es\n    type: elasticsearch\n    endpoints: [\"https://a:9200/\", \"http://b:9200\"]\n    index: \"logs-{{k8s.namespace}}-%Y.%m.%d\"\n    op_type: create\n    auth: {{api_key: \"abc==\"}}\n    tls: {{ca_file: /etc/ca.pem, verify: \"false\"}}\n    max_in_flight: 2\n  - name: o\n    type: otlp\n    endpoint: http://c:4318/v1/logs\n    headers: {{X-Scope-OrgID: t1}}\n"
    ));
    assert_eq!(problems, vec![]);
    let config = config.unwrap();
    let SinkKind::Elasticsearch(es) = &config.sinks[0].kind else {
        panic!("an elasticsearch sink");
    };
    assert_eq!(es.http.endpoints, ["https://a:9200", "http://b:9200"]);
    assert_eq!(
        es.http.headers,
        [("Authorization".to_string(), "ApiKey abc==".to_string())]
    );
    assert_eq!(
        es.http.tls.ca_file.as_deref(),
        Some(Path::new("/etc/ca.pem"))
    );
    assert!(!es.http.tls.verify);
    assert_eq!(es.http.max_in_flight, 2);
    assert_eq!(config.sinks[0].encoding, crate::encode::Encoding::Json);
    let SinkKind::Otlp(otlp) = &config.sinks[1].kind else {
        panic!("an otlp sink");
    };
    assert_eq!(
        otlp.http.endpoints,
        ["http://c:4318"],
        "/v1/logs is added per request"
    );
    assert_eq!(config.sinks[1].encoding, crate::encode::Encoding::Otlp);

    let problems = problems_of(&format!(
        "{sources}sinks:\n  - name: es\n    type: elasticsearch\n    endpoint: ftp://x\n    index: \"logs-%y\"\n    encoding: text\n    auth: {{username: u, bearer: t}}\n    brokers: a:1\n  - name: o\n    type: otlp\n    encoding: text\n    compression: lz4\n    headers: {{\"bad name\": x}}\n"
    ));
    assert!(
        has(&problems, 8, "sinks[0].endpoint", "`http://` or `https://`"),
        "{problems:#?}"
    );
    assert!(
        has(
            &problems,
            9,
            "sinks[0].index",
            "unknown date directive `%y`"
        ),
        "{problems:#?}"
    );
    assert!(
        has(&problems, 10, "sinks[0].encoding", "only be `json`"),
        "{problems:#?}"
    );
    assert!(
        reports(&problems, "sinks[0].auth", "one of"),
        "{problems:#?}"
    );
    assert!(
        has(&problems, 12, "sinks[0].brokers", "kafka sinks only"),
        "{problems:#?}"
    );
    assert!(
        has(&problems, 15, "sinks[1].encoding", "`protobuf`, `json`"),
        "{problems:#?}"
    );
    assert!(
        has(
            &problems,
            16,
            "sinks[1].compression",
            "`gzip`, `zstd`, `none`"
        ),
        "{problems:#?}"
    );
    assert!(
        reports(&problems, "sinks[1].endpoint", "needs `endpoint`"),
        "{problems:#?}"
    );
    assert!(
        reports(&problems, "sinks[1].headers", "not a header name"),
        "{problems:#?}"
    );
}
