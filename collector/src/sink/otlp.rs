//! The OTLP sink: records to any OpenTelemetry Protocol endpoint over HTTP (OTLP/HTTP,
//! protobuf) — an OpenTelemetry Collector, Loki 3, Elastic, Grafana Cloud, Datadog.
//!
//! Workers encode each record as an OTLP `LogRecord` ([`crate::encode::otlp`]); a request
//! is one batch: an `ExportLogsServiceRequest` with one `ResourceLogs` per file in the batch
//! (the file's Kubernetes resource attributes), each with one `ScopeLogs` (scope `ringtail`)
//! holding the file's records in order. It goes to `<endpoint>/v1/logs`.
//!
//! A 2xx response is read as an `ExportLogsServiceResponse`: a `partial_success` with
//! `rejected_log_records > 0` means the receiver refused that many records for good, without
//! saying which; they are counted and reported like any refusal (a dead-letter line with the
//! count and the receiver's message, or the pipeline stops). Retries, backoff and every other
//! status are the HTTP delivery's ([`crate::sink::http::sender`]).
//!
//! Owns the request's shape and the response's meaning; it may not touch how records are
//! encoded (the encoder does) or sent (the sender does).

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;

use crate::deliver::batch::{Batch, RecordIndex};
use crate::encode::otlp::{resource, wire};
use crate::encode::otlp_json::resource_json;
use crate::sink::http::HttpSettings;
use crate::sink::http::sender::{Protocol, Refusal, Verdict};

/// An OTLP sink's settings.
#[derive(Debug, Clone)]
pub struct OtlpSinkSettings {
    /// Endpoints, compression, TLS, retries.
    pub http: HttpSettings,
    /// OTLP's JSON encoding instead of protobuf.
    pub json: bool,
}

/// The path OTLP/HTTP receivers take logs at.
pub const LOGS_PATH: &str = "/v1/logs";

/// OTLP/HTTP with protobuf bodies, or JSON ones.
#[derive(Debug, Default, Clone, Copy)]
pub struct Otlp {
    /// JSON bodies (records encoded by [`crate::encode::otlp_json`]).
    pub json: bool,
}

/// A request's records: a range of a batch's records.
#[derive(Debug)]
pub struct Payload {
    data: Bytes,
    index: Arc<RecordIndex>,
    records: Range<usize>,
}

// Field numbers.
const REQUEST_RESOURCE_LOGS: u32 = 1;
const RESOURCE: u32 = 1;
const SCOPE_LOGS: u32 = 2;
const SCOPE: u32 = 1;
const SCOPE_NAME: u32 = 1;
const SCOPE_VERSION: u32 = 2;
const RESPONSE_PARTIAL_SUCCESS: u32 = 1;
const PARTIAL_REJECTED: u32 = 1;
const PARTIAL_MESSAGE: u32 = 2;

impl Payload {
    /// Byte range of record `i` in the batch's data.
    fn span(&self, i: usize) -> Range<usize> {
        let start = match i {
            0 => 0,
            _ => self.index.records[i - 1].end as usize,
        };
        start..self.index.records[i].end as usize
    }
}

impl Protocol for Otlp {
    type Payload = Payload;

    fn path(&self) -> &str {
        LOGS_PATH
    }

    fn content_type(&self) -> &'static str {
        if self.json {
            "application/json"
        } else {
            "application/x-protobuf"
        }
    }

    fn payload(&self, batch: &Batch) -> Result<Payload, String> {
        let index = batch.index.clone().ok_or(
            "the batch carries no record index (internal error: the route was built without one)",
        )?;
        let records = 0..index.records.len();
        Ok(Payload {
            data: batch.data.clone(),
            index,
            records,
        })
    }

    fn records(&self, payload: &Payload) -> u64 {
        payload.records.len() as u64
    }

    fn body(&self, payload: &Payload, out: &mut Vec<u8>) {
        let (order, spans) = by_file(payload);
        if self.json {
            return json_body(payload, &order, &spans, out);
        }
        let files = &payload.index.files;
        let mut scope = Vec::with_capacity(32);
        wire::bytes(&mut scope, SCOPE_NAME, b"ringtail");
        wire::bytes(
            &mut scope,
            SCOPE_VERSION,
            env!("CARGO_PKG_VERSION").as_bytes(),
        );
        out.reserve(payload.data.len() + order.len() * 512);
        for file in order {
            let list = &spans[file as usize];
            let resource = resource(&files[file as usize]);
            let records: usize = list.iter().map(|r| r.len()).sum();
            let scope_logs = wire::bytes_len(scope.len()) + records;
            let resource_logs = wire::bytes_len(resource.len()) + wire::bytes_len(scope_logs);
            wire::len_tag(out, REQUEST_RESOURCE_LOGS);
            wire::varint(out, resource_logs as u64);
            wire::bytes(out, RESOURCE, &resource);
            wire::len_tag(out, SCOPE_LOGS);
            wire::varint(out, scope_logs as u64);
            wire::bytes(out, SCOPE, &scope);
            for span in list {
                out.extend_from_slice(&payload.data[span.clone()]);
            }
        }
    }

    fn accepted(&self, payload: &mut Payload, response: &[u8]) -> Verdict {
        let (rejected, message) = if self.json {
            partial_success_json(response)
        } else {
            partial_success(response)
        };
        if rejected == 0 {
            if !message.is_empty() {
                tracing::warn!(message = %message, "OTLP receiver accepted the records with a warning");
            }
            return Verdict::Done(Vec::new());
        }
        let count = rejected.min(payload.records.len() as u64);
        Verdict::Done(vec![Refusal {
            destination: ("endpoint", LOGS_PATH.to_string()),
            reason: format!(
                "OTLP partial success: {rejected} of {} records rejected: {message}",
                payload.records.len()
            ),
            record: None,
            count,
        }])
    }

    fn split(&self, payload: Payload) -> Result<(Payload, Payload), Payload> {
        if payload.records.len() < 2 {
            return Err(payload);
        }
        let middle = payload.records.start + payload.records.len() / 2;
        let second = Payload {
            data: payload.data.clone(),
            index: Arc::clone(&payload.index),
            records: middle..payload.records.end,
        };
        let first = Payload {
            records: payload.records.start..middle,
            ..payload
        };
        Ok((first, second))
    }

    fn refuse_all(&self, payload: &Payload, reason: &str) -> Vec<Refusal> {
        payload
            .records
            .clone()
            .map(|i| {
                // Each record is a `log_records` field: the `LogRecord` follows its tag and
                // length; a JSON record is an object and a newline.
                let field = &payload.data[payload.span(i)];
                if self.json {
                    return Refusal {
                        destination: ("endpoint", LOGS_PATH.to_string()),
                        reason: reason.to_string(),
                        record: Some(field.strip_suffix(b"\n").unwrap_or(field).to_vec()),
                        count: 1,
                    };
                }
                let record = wire::read_fields(field)
                    .ok()
                    .and_then(|f| match f.first() {
                        Some(wire::Read::Bytes(_, record)) => Some(record.to_vec()),
                        _ => None,
                    })
                    .unwrap_or_else(|| field.to_vec());
                Refusal {
                    destination: ("endpoint", LOGS_PATH.to_string()),
                    reason: reason.to_string(),
                    record: Some(record),
                    count: 1,
                }
            })
            .collect()
    }
}

/// The records of each file of `payload`: the files in order of first appearance, and each
/// file's record spans (indexed by file).
fn by_file(payload: &Payload) -> (Vec<u32>, Vec<Vec<Range<usize>>>) {
    let mut order: Vec<u32> = Vec::new();
    let mut spans: Vec<Vec<Range<usize>>> = vec![Vec::new(); payload.index.files.len()];
    for i in payload.records.clone() {
        let file = payload.index.records[i].file as usize;
        let Some(list) = spans.get_mut(file) else {
            continue;
        };
        if list.is_empty() {
            order.push(file as u32);
        }
        list.push(payload.span(i));
    }
    (order, spans)
}

/// The JSON request: `{"resourceLogs":[{"resource":…,"scopeLogs":[{"scope":…,
/// "logRecords":[…]}]},…]}`, one resource per file.
fn json_body(payload: &Payload, order: &[u32], spans: &[Vec<Range<usize>>], out: &mut Vec<u8>) {
    out.reserve(payload.data.len() + order.len() * 768 + 32);
    out.extend_from_slice(b"{\"resourceLogs\":[");
    for (n, &file) in order.iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"resource\":");
        out.extend_from_slice(&resource_json(&payload.index.files[file as usize]));
        out.extend_from_slice(b",\"scopeLogs\":[{\"scope\":{\"name\":\"ringtail\",\"version\":\"");
        out.extend_from_slice(env!("CARGO_PKG_VERSION").as_bytes());
        out.extend_from_slice(b"\"},\"logRecords\":[");
        for (k, span) in spans[file as usize].iter().enumerate() {
            if k > 0 {
                out.push(b',');
            }
            let record = &payload.data[span.clone()];
            out.extend_from_slice(record.strip_suffix(b"\n").unwrap_or(record));
        }
        out.extend_from_slice(b"]}]}");
    }
    out.extend_from_slice(b"]}");
}

/// [`partial_success`] of a JSON response (`{"partialSuccess":{"rejectedLogRecords":"2",
/// "errorMessage":"…"}}`; the count may be a string or a number).
fn partial_success_json(response: &[u8]) -> (u64, String) {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(response) else {
        return (0, String::new());
    };
    let partial = &value["partialSuccess"];
    let rejected = match &partial["rejectedLogRecords"] {
        serde_json::Value::String(s) => s.parse().unwrap_or(0),
        other => other.as_u64().unwrap_or(0),
    };
    let message = partial["errorMessage"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    (rejected, message)
}

/// `rejected_log_records` and `error_message` of an `ExportLogsServiceResponse` (0 and
/// empty for an empty or unreadable body: the status already said the request was taken).
fn partial_success(response: &[u8]) -> (u64, String) {
    let Ok(fields) = wire::read_fields(response) else {
        return (0, String::new());
    };
    let mut rejected = 0;
    let mut message = String::new();
    for field in fields {
        if let wire::Read::Bytes(RESPONSE_PARTIAL_SUCCESS, partial) = field {
            for inner in wire::read_fields(partial).unwrap_or_default() {
                match inner {
                    wire::Read::Varint(PARTIAL_REJECTED, n) => rejected = n as i64,
                    wire::Read::Bytes(PARTIAL_MESSAGE, text) => {
                        message = String::from_utf8_lossy(text).into_owned()
                    }
                    _ => {}
                }
            }
        }
    }
    (rejected.max(0) as u64, message)
}

#[cfg(test)]
mod tests;
