//! The OTLP request and response, checked by decoding with prost (an independent protobuf
//! implementation) against the message definitions of `opentelemetry-proto`.

use super::*;
use crate::cut::decode::{Entry, Format, Stream};
use crate::deliver::ack::{AckHandle, AckTracker};
use crate::deliver::batch::RecordRef;
use crate::encode::EncodeStats;
use crate::encode::otlp::encode_otlp;
use crate::file::{FileId, FileIdentity};
use crate::metrics::Metrics;
use crate::process::{Fields, Value};
use crate::source::{FileCtx, Source};
use prost::Message;

const OTLP: Otlp = Otlp { json: false };
const OTLP_JSON: Otlp = Otlp { json: true };

#[derive(Clone, PartialEq, Message)]
struct ExportLogsServiceRequest {
    #[prost(message, repeated, tag = "1")]
    resource_logs: Vec<ResourceLogs>,
}
#[derive(Clone, PartialEq, Message)]
struct ResourceLogs {
    #[prost(message, optional, tag = "1")]
    resource: Option<Resource>,
    #[prost(message, repeated, tag = "2")]
    scope_logs: Vec<ScopeLogs>,
}
#[derive(Clone, PartialEq, Message)]
struct Resource {
    #[prost(message, repeated, tag = "1")]
    attributes: Vec<KeyValue>,
}
#[derive(Clone, PartialEq, Message)]
struct ScopeLogs {
    #[prost(message, optional, tag = "1")]
    scope: Option<Scope>,
    #[prost(message, repeated, tag = "2")]
    log_records: Vec<LogRecord>,
}
#[derive(Clone, PartialEq, Message)]
struct Scope {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(string, tag = "2")]
    version: String,
}
#[derive(Clone, PartialEq, Message)]
struct LogRecord {
    #[prost(fixed64, tag = "1")]
    time_unix_nano: u64,
    #[prost(fixed64, tag = "11")]
    observed_time_unix_nano: u64,
    #[prost(int32, tag = "2")]
    severity_number: i32,
    #[prost(string, tag = "3")]
    severity_text: String,
    #[prost(message, optional, tag = "5")]
    body: Option<AnyValue>,
    #[prost(message, repeated, tag = "6")]
    attributes: Vec<KeyValue>,
}
#[derive(Clone, PartialEq, Message)]
struct KeyValue {
    #[prost(string, tag = "1")]
    key: String,
    #[prost(message, optional, tag = "2")]
    value: Option<AnyValue>,
}
#[derive(Clone, PartialEq, Message)]
struct AnyValue {
    #[prost(string, optional, tag = "1")]
    string_value: Option<String>,
    #[prost(bool, optional, tag = "2")]
    bool_value: Option<bool>,
    #[prost(int64, optional, tag = "3")]
    int_value: Option<i64>,
    #[prost(bytes = "vec", optional, tag = "7")]
    bytes_value: Option<Vec<u8>>,
}

fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a AnyValue> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
}

fn file(path: &str, id: u64) -> Arc<FileCtx> {
    let mut source = Source::new(0, "pods", Format::Cri);
    source.cut.max_line_bytes = 1024;
    source.tags.insert("team".into(), "blue".into());
    let path = std::path::PathBuf::from(path);
    let mut container = crate::container::of_path(&path);
    if let Some(c) = container.as_mut() {
        c.id = Some("c0ffee".into());
        c.image = Some("nginx:1.27".into());
    }
    Arc::new(FileCtx {
        id: FileId(id),
        identity: FileIdentity { dev: 1, ino: id },
        source: Arc::new(source),
        meta: Arc::new(crate::container::FileMeta {
            container,
            node: Some("node-1".into()),
        }),
        path,
    })
}

/// A batch of records from two files, interleaved: (file 0, file 1, file 0, file 1 …).
fn batch(messages: &[&[u8]]) -> Batch {
    let files = vec![
        file("/var/log/pods/shop_web-1_uid-1/nginx/3.log", 1),
        file("/var/log/pods/ops_job-2_uid-2/runner/0.log", 2),
    ];
    let mut data = Vec::new();
    let mut scratch = Vec::new();
    let mut index = RecordIndex {
        records: Vec::new(),
        files,
    };
    let mut stats = EncodeStats::default();
    for (i, message) in messages.iter().enumerate() {
        let mut fields = Fields::default();
        fields.push("level", Value::Str("WARN".into()));
        fields.push("status", Value::Int(503));
        let entry = Entry {
            offset: i as u64 * 100,
            message,
            stream: if i % 2 == 0 {
                Stream::Stdout
            } else {
                Stream::Stderr
            },
            time: b"2026-12-06T10:00:00.000000123Z",
            truncated: i == 2,
            error: None,
        };
        encode_otlp(
            &mut data,
            &mut scratch,
            &entry,
            Some(&fields),
            7,
            &mut stats,
        );
        index.records.push(RecordRef {
            end: data.len() as u32,
            file: (i % 2) as u32,
            stream: entry.stream,
        });
    }
    let tracker = Arc::new(AckTracker::new(Arc::new(Metrics::new())));
    Batch {
        data: Bytes::from(data),
        records: messages.len() as u64,
        ack: AckHandle::new(1, Vec::new(), tracker),
        index: Some(Arc::new(index)),
    }
}

#[test]
fn a_request_has_one_resource_per_file_with_its_kubernetes_attributes() {
    let batch = batch(&[b"zero", b"one", b"two \xff bad", b"three"]);
    let payload = OTLP.payload(&batch).unwrap();
    let mut body = Vec::new();
    OTLP.body(&payload, &mut body);
    let request = ExportLogsServiceRequest::decode(&body[..]).unwrap();
    assert_eq!(request.resource_logs.len(), 2, "one per file");
    let first = &request.resource_logs[0];
    let attrs = &first.resource.as_ref().unwrap().attributes;
    let text = |key: &str| attr(attrs, key).and_then(|v| v.string_value.clone());
    assert_eq!(text("k8s.namespace.name").as_deref(), Some("shop"));
    assert_eq!(text("k8s.pod.name").as_deref(), Some("web-1"));
    assert_eq!(text("k8s.pod.uid").as_deref(), Some("uid-1"));
    assert_eq!(text("k8s.container.name").as_deref(), Some("nginx"));
    assert_eq!(text("container.id").as_deref(), Some("c0ffee"));
    assert_eq!(text("container.image.name").as_deref(), Some("nginx:1.27"));
    assert_eq!(text("k8s.node.name").as_deref(), Some("node-1"));
    assert_eq!(
        text("log.file.path").as_deref(),
        Some("/var/log/pods/shop_web-1_uid-1/nginx/3.log")
    );
    assert_eq!(text("team").as_deref(), Some("blue"), "source tags");
    assert_eq!(
        attr(attrs, "k8s.container.restart_count").and_then(|v| v.int_value),
        Some(3)
    );
    let scope = &first.scope_logs[0];
    assert_eq!(scope.scope.as_ref().unwrap().name, "ringtail");
    let records = &scope.log_records;
    assert_eq!(records.len(), 2, "file 0's records, in order");
    assert_eq!(
        records[0].body.as_ref().unwrap().string_value.as_deref(),
        Some("zero")
    );
    // Invalid UTF-8 is sent exactly, as bytes.
    assert_eq!(
        records[1].body.as_ref().unwrap().bytes_value.as_deref(),
        Some(&b"two \xff bad"[..])
    );
    let r = &records[0];
    assert_eq!(r.time_unix_nano, 1_796_551_200_000_000_123);
    assert_eq!(r.observed_time_unix_nano, 7);
    assert_eq!(r.severity_text, "WARN");
    assert_eq!(r.severity_number, 13);
    assert_eq!(
        attr(&r.attributes, "log.iostream")
            .and_then(|v| v.string_value.clone())
            .as_deref(),
        Some("stdout")
    );
    assert_eq!(
        attr(&r.attributes, "status").and_then(|v| v.int_value),
        Some(503)
    );
    assert_eq!(
        attr(&r.attributes, "log.file.offset").and_then(|v| v.int_value),
        Some(0)
    );
    assert_eq!(
        attr(&records[1].attributes, "ringtail.truncated").and_then(|v| v.bool_value),
        Some(true)
    );
    let second = &request.resource_logs[1].scope_logs[0].log_records;
    assert_eq!(second.len(), 2);
    assert_eq!(
        second[1].body.as_ref().unwrap().string_value.as_deref(),
        Some("three")
    );
}

#[test]
fn a_split_request_holds_each_record_once() {
    let batch = batch(&[b"a", b"b", b"c", b"d", b"e"]);
    let payload = OTLP.payload(&batch).unwrap();
    let (first, second) = OTLP.split(payload).unwrap();
    let mut bodies = Vec::new();
    for part in [&first, &second] {
        let mut body = Vec::new();
        OTLP.body(part, &mut body);
        let request = ExportLogsServiceRequest::decode(&body[..]).unwrap();
        for resource in request.resource_logs {
            for record in &resource.scope_logs[0].log_records {
                bodies.push(record.body.clone().unwrap().string_value.unwrap());
            }
        }
    }
    bodies.sort();
    assert_eq!(bodies, ["a", "b", "c", "d", "e"]);
    let (one, _) = OTLP.split(first).unwrap();
    assert!(OTLP.split(one).is_err(), "one record cannot be split");
    // A refusal of a whole request names each record with its LogRecord.
    let refusals = OTLP.refuse_all(&second, "HTTP 400");
    assert_eq!(refusals.len(), 3);
    let record = LogRecord::decode(&refusals[0].record.clone().unwrap()[..]).unwrap();
    assert_eq!(record.body.unwrap().string_value.as_deref(), Some("c"));
}

#[test]
fn partial_success_counts_rejected_records() {
    let batch = batch(&[b"a", b"b", b"c"]);
    let mut payload = OTLP.payload(&batch).unwrap();
    assert!(matches!(OTLP.accepted(&mut payload, b""), Verdict::Done(r) if r.is_empty()));
    // ExportLogsServiceResponse { partial_success { rejected_log_records: 2, error_message } }
    let response = b"\x0a\x0b\x08\x02\x12\x07too old";
    match OTLP.accepted(&mut payload, response) {
        Verdict::Done(refusals) => {
            assert_eq!(refusals.len(), 1);
            assert_eq!(refusals[0].count, 2);
            assert!(refusals[0].reason.contains("too old"));
            assert!(refusals[0].record.is_none());
        }
        other => panic!("{other:?}"),
    }
    // A warning only (no rejected records) is a success.
    let warning = b"\x0a\x06\x12\x04slow";
    assert!(matches!(OTLP.accepted(&mut payload, warning), Verdict::Done(r) if r.is_empty()));
}

#[test]
fn the_json_encoding_carries_the_same_resources_and_records() {
    use crate::encode::otlp_json::encode_otlp_json;
    let protobuf = batch(&[b"zero", b"one", b"two \xff bad"]);
    // The same records, JSON-encoded.
    let mut data = Vec::new();
    let mut index = RecordIndex {
        records: Vec::new(),
        files: protobuf.index.as_ref().unwrap().files.clone(),
    };
    for (i, message) in [&b"zero"[..], b"one", b"two \xff bad"].iter().enumerate() {
        let mut fields = Fields::default();
        fields.push("level", Value::Str("WARN".into()));
        let entry = Entry {
            offset: i as u64 * 100,
            message,
            stream: Stream::Stdout,
            time: b"2026-12-06T10:00:00.000000123Z",
            truncated: false,
            error: None,
        };
        encode_otlp_json(
            &mut data,
            &entry,
            Some(&fields),
            7,
            &mut EncodeStats::default(),
        );
        index.records.push(RecordRef {
            end: data.len() as u32,
            file: (i % 2) as u32,
            stream: Stream::Stdout,
        });
    }
    let batch = Batch {
        data: Bytes::from(data),
        records: 3,
        ack: protobuf.ack.clone(),
        index: Some(Arc::new(index)),
    };
    let payload = OTLP_JSON.payload(&batch).unwrap();
    let mut body = Vec::new();
    OTLP_JSON.body(&payload, &mut body);
    let request: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let resources = request["resourceLogs"].as_array().unwrap();
    assert_eq!(resources.len(), 2);
    let attrs = resources[0]["resource"]["attributes"].as_array().unwrap();
    let get = |key: &str| {
        attrs
            .iter()
            .find(|a| a["key"] == key)
            .map(|a| a["value"].clone())
    };
    assert_eq!(get("k8s.pod.name").unwrap()["stringValue"], "web-1");
    assert_eq!(get("k8s.container.restart_count").unwrap()["intValue"], "3");
    let scope = &resources[0]["scopeLogs"][0];
    assert_eq!(scope["scope"]["name"], "ringtail");
    let records = scope["logRecords"].as_array().unwrap();
    assert_eq!(records.len(), 2);
    assert_eq!(records[0]["body"]["stringValue"], "zero");
    assert_eq!(records[0]["timeUnixNano"], "1796551200000000123");
    assert_eq!(records[0]["observedTimeUnixNano"], "7");
    assert_eq!(records[0]["severityNumber"], 13);
    assert_eq!(records[0]["severityText"], "WARN");
    assert_eq!(
        records[1]["body"]["bytesValue"], "dHdvIP8gYmFk",
        "exact bytes, base64"
    );
    let partial = br#"{"partialSuccess":{"rejectedLogRecords":"1","errorMessage":"late"}}"#;
    let mut payload = payload;
    match OTLP_JSON.accepted(&mut payload, partial) {
        Verdict::Done(r) => assert_eq!((r.len(), r[0].count), (1, 1)),
        other => panic!("{other:?}"),
    }
    assert!(matches!(OTLP_JSON.accepted(&mut payload, b"{}"), Verdict::Done(r) if r.is_empty()));
    let refused = OTLP_JSON.refuse_all(&payload, "HTTP 400");
    let record: serde_json::Value =
        serde_json::from_slice(refused[0].record.as_ref().unwrap()).unwrap();
    assert_eq!(record["body"]["stringValue"], "zero");
}
