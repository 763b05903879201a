//! The bulk request and the reading of bulk responses.

use super::*;
use crate::cut::decode::{Entry, Format};
use crate::deliver::ack::{AckHandle, AckTracker};
use crate::deliver::batch::RecordRef;
use crate::encode::{EncodeStats, FileFields, encode};
use crate::file::{FileId, FileIdentity};
use crate::metrics::Metrics;
use crate::source::{Origin, Source};

fn file(path: &str, origin: Option<(&str, Option<&str>)>) -> Arc<FileCtx> {
    let mut source = Source::new(0, "pods", Format::Cri);
    source.cut.max_line_bytes = 1024;
    let path = std::path::PathBuf::from(path);
    let meta = Arc::new(crate::container::FileMeta {
        container: crate::container::of_path(&path),
        node: None,
    });
    source.origin = origin.map(|(name, topic)| {
        Arc::new(Origin {
            name: name.into(),
            container_id: "c0ffee".into(),
            topic: topic.map(str::to_string),
            root: None,
            meta: Arc::clone(&meta),
        })
    });
    Arc::new(FileCtx {
        id: FileId(1),
        identity: FileIdentity { dev: 1, ino: 1 },
        source: Arc::new(source),
        meta,
        path,
    })
}

/// A batch of JSON records: (file, message, time).
fn batch(files: Vec<Arc<FileCtx>>, records: &[(u32, &str, &str)]) -> Batch {
    let mut data = Vec::new();
    let mut index = RecordIndex {
        records: Vec::new(),
        files,
    };
    for (i, (file, message, time)) in records.iter().enumerate() {
        let entry = Entry {
            offset: i as u64,
            message: message.as_bytes(),
            stream: Stream::Stdout,
            time: time.as_bytes(),
            truncated: false,
            error: None,
        };
        let fields = FileFields::of(&index.files[*file as usize]);
        encode(&mut data, &entry, &fields, &mut EncodeStats::default());
        index.records.push(RecordRef {
            end: data.len() as u32,
            file: *file,
            stream: Stream::Stdout,
        });
    }
    Batch {
        data: Bytes::from(data),
        records: records.len() as u64,
        ack: AckHandle::new(
            1,
            Vec::new(),
            Arc::new(AckTracker::new(Arc::new(Metrics::new()))),
        ),
        index: Some(Arc::new(index)),
    }
}

fn bulk(index: &str, op_type: OpType, pipeline: Option<&str>) -> Bulk {
    Bulk::new(ElasticsearchSinkSettings {
        http: HttpSettings {
            endpoints: vec!["http://es:9200".into()],
            headers: Vec::new(),
            compression: crate::sink::http::HttpCompression::None,
            tls: Default::default(),
            timeout: std::time::Duration::from_secs(1),
            max_in_flight: 1,
            retry_max: std::time::Duration::from_secs(1),
            dead_letter: None,
        },
        index: Template::parse(index).unwrap(),
        op_type,
        pipeline: pipeline.map(str::to_string),
    })
}

/// The (action, document) pairs of a body.
fn pairs(body: &[u8]) -> Vec<(serde_json::Value, serde_json::Value)> {
    let lines: Vec<serde_json::Value> = body
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    lines
        .chunks(2)
        .map(|c| (c[0].clone(), c[1].clone()))
        .collect()
}

#[test]
fn records_go_to_the_daily_index_of_their_own_time_with_a_timestamp() {
    let files = vec![
        file("/var/log/pods/Shop_web-1_u/app/0.log", None),
        file("/var/log/pods/ops_job_u/c/0.log", Some(("ACCESS", None))),
        file(
            "/var/log/pods/ops_job_u/d/0.log",
            Some(("AUDIT", Some("Audit-Trail-%Y"))),
        ),
    ];
    let batch = batch(
        files,
        &[
            (0, "late", "2026-12-05T23:59:59.999999999Z"),
            (0, "early", "2026-12-06T00:00:00.000000001Z"),
            (0, "offset", "2026-12-06T01:30:00+02:00"),
            (1, "declared", "2026-12-06T10:00:00Z"),
            (2, "target", "2026-12-06T10:00:00Z"),
        ],
    );
    let protocol = bulk(
        "logs-{k8s.namespace}-%Y.%m.%d",
        OpType::Create,
        Some("geo ip"),
    );
    assert_eq!(protocol.path(), "/_bulk?pipeline=geo%20ip");
    let payload = protocol.payload(&batch).unwrap();
    let mut body = Vec::new();
    protocol.body(&payload, &mut body);
    let pairs = pairs(&body);
    let indices: Vec<&str> = pairs
        .iter()
        .map(|(a, _)| a["create"]["_index"].as_str().unwrap())
        .collect();
    assert_eq!(
        indices,
        [
            "logs-shop-2026.12.05",
            "logs-shop-2026.12.06",
            "logs-shop-2026.12.05",
            "access-2026.12.06",
            "audit-trail-2026"
        ]
    );
    let (_, doc) = &pairs[0];
    assert_eq!(doc["@timestamp"], "2026-12-05T23:59:59.999Z");
    assert_eq!(doc["message"], "late");
    assert_eq!(doc["time"], "2026-12-05T23:59:59.999999999Z");
    assert_eq!(doc["k8s"]["namespace"], "Shop");
    assert_eq!(
        pairs[2].1["@timestamp"], "2026-12-05T23:30:00.000Z",
        "in UTC"
    );
    let index_op = bulk("x", OpType::Index, None);
    let mut body = Vec::new();
    index_op.body(&payload, &mut body);
    assert!(body.starts_with(b"{\"index\":{\"_index\":\"logs-shop-2026.12.05\"}}\n"));
}

#[test]
fn errors_true_retries_only_the_items_that_may_pass_and_refuses_the_rest() {
    let files = vec![file("/var/log/pods/shop_web-1_u/app/0.log", None)];
    let records: Vec<(u32, &str, &str)> = ["a", "b", "c", "d"]
        .iter()
        .map(|m| (0, *m, "2026-12-06T10:00:00Z"))
        .collect();
    let batch = batch(files, &records);
    let protocol = bulk("logs", OpType::Index, None);
    let mut payload = protocol.payload(&batch).unwrap();
    assert!(matches!(
        protocol.accepted(&mut payload, br#"{"took":3,"errors":false,"items":[]}"#),
        Verdict::Done(r) if r.is_empty()
    ));
    let response = br#"{"took":3,"errors":true,"items":[
        {"index":{"_index":"logs","status":201,"result":"created"}},
        {"index":{"_index":"logs","status":429,"error":{"type":"es_rejected_execution_exception","reason":"queue full"}}},
        {"index":{"_index":"logs","status":400,"error":{"type":"mapper_parsing_exception","reason":"failed to parse field [x]"}}},
        {"index":{"_index":"logs","status":503,"error":{"type":"unavailable_shards_exception","reason":"primary not active"}}}]}"#;
    match protocol.accepted(&mut payload, response) {
        Verdict::Again(refused, reason) => {
            assert_eq!(refused.len(), 1);
            assert!(
                refused[0]
                    .reason
                    .contains("mapper_parsing_exception: failed to parse field [x]")
            );
            let doc: serde_json::Value =
                serde_json::from_slice(refused[0].record.as_ref().unwrap()).unwrap();
            assert_eq!(doc["message"], "c");
            assert!(reason.contains("2 bulk item(s) to retry"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    // Only b and d are sent again.
    let mut body = Vec::new();
    protocol.body(&payload, &mut body);
    let messages: Vec<String> = pairs(&body)
        .iter()
        .map(|(_, d)| d["message"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(messages, ["b", "d"]);
    // An unreadable body: the whole request again.
    assert!(matches!(
        protocol.accepted(&mut payload, b"<html>proxy</html>"),
        Verdict::Again(r, _) if r.is_empty()
    ));
    let (first, second) = protocol.split(payload).unwrap();
    assert_eq!((first.items.len(), second.items.len()), (1, 1));
    assert!(protocol.split(first).is_err());
}

#[test]
fn index_names_are_made_legal() {
    assert_eq!(legal_index("Logs/My App:2026"), "logs_my_app_2026");
    assert_eq!(legal_index("_-x"), "x");
    assert_eq!(legal_index(""), "ringtail");
    assert_eq!(legal_index(&"a".repeat(300)).len(), 255);
}
