//! The Elasticsearch sink (also OpenSearch): records indexed with the `_bulk` API, one
//! request per batch, each record an action line and its JSON document with `@timestamp`.
//!
//! - **Index per record**: the `index` template (fields as for Kafka topics, e.g.
//!   `logs-{k8s.namespace}-%Y.%m.%d`) rendered per file and stream, then its date directives
//!   (`%Y`, `%m`, `%d`, `%H`) from the record's own time (UTC) — so a record written at
//!   23:59:59 lands in that day's index whenever it is read (Log-pilot's daily indices). A
//!   container's declaration (`RINGTAIL_LOGS_<NAME>`) chooses its own index: its `_TOPIC`
//!   when set, else `<name>-%Y.%m.%d` (Log-pilot's `$name` → index). Index names are made
//!   legal: lowercase, `\ / * ? " < > | , # :` and spaces become `_`.
//! - **`@timestamp`**: the record's time in RFC 3339 UTC with milliseconds (the `date` type's
//!   precision), or the time it was read when the runtime wrote none.
//! - **`op_type`**: `index` (default) or `create` (required by data streams).
//! - **Responses**: HTTP 200 with `errors: true` is not a success. Every item is read, in
//!   order: 2xx is accepted; 429 and 5xx items are sent again — alone, never the accepted
//!   ones; any other status (a 400 mapping error) refuses that record for good (dead letter
//!   with the item's `error.type` and `reason`, or the pipeline stops). The batch is
//!   acknowledged when every item is settled. A 2xx body that cannot be read leaves the
//!   request's fate unknown: it is sent again whole (duplicates over loss).
//! - Retries, backoff, 413 splitting and every other status belong to the HTTP delivery
//!   ([`crate::sink::http::sender`]).
//!
//! Owns the bulk request and the reading of its response; it may not touch how records are
//! encoded (JSON) or sent.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use serde::Deserialize;

use crate::cut::decode::Stream;
use crate::deliver::batch::{Batch, RecordIndex};
use crate::encode::json_time;
use crate::sink::http::HttpSettings;
use crate::sink::http::sender::{Protocol, Refusal, Verdict};
use crate::sink::template::Template;
use crate::source::FileCtx;
use crate::timestamp::{Civil, now_nanos, parse_rfc3339};

/// How documents are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpType {
    /// `index`: add or replace.
    Index,
    /// `create`: add only (data streams).
    Create,
}

/// An Elasticsearch sink's settings.
#[derive(Debug, Clone)]
pub struct ElasticsearchSinkSettings {
    /// Endpoints, compression, TLS, retries, headers (authentication included).
    pub http: HttpSettings,
    /// The index of each record: a template, then date directives.
    pub index: Template,
    /// `index` or `create`.
    pub op_type: OpType,
    /// The ingest pipeline, if any.
    pub pipeline: Option<String>,
}

/// The `_bulk` protocol.
#[derive(Debug)]
pub struct Bulk {
    settings: ElasticsearchSinkSettings,
    path: String,
}

impl Bulk {
    /// The protocol for `settings`.
    pub fn new(settings: ElasticsearchSinkSettings) -> Self {
        let path = match &settings.pipeline {
            Some(pipeline) => format!("/_bulk?pipeline={}", query_escape(pipeline)),
            None => "/_bulk".to_string(),
        };
        Self { settings, path }
    }
}

/// One document of a request.
#[derive(Debug, Clone)]
struct Item {
    /// Position among the batch's records.
    record: u32,
    /// Its index.
    index: Arc<str>,
    /// `@timestamp`.
    timestamp: [u8; 24],
}

/// A request's documents: those of a batch still to be indexed.
#[derive(Debug)]
pub struct Payload {
    data: Bytes,
    index: Arc<RecordIndex>,
    items: Vec<Item>,
}

impl Payload {
    /// The JSON of record `i` (without its newline).
    fn record(&self, i: u32) -> &[u8] {
        let i = i as usize;
        let start = match i {
            0 => 0,
            _ => self.index.records[i - 1].end as usize,
        };
        let end = self.index.records[i].end as usize;
        let record = &self.data[start..end];
        record.strip_suffix(b"\n").unwrap_or(record)
    }
}

impl Protocol for Bulk {
    type Payload = Payload;

    fn path(&self) -> &str {
        &self.path
    }

    fn content_type(&self) -> &'static str {
        "application/x-ndjson"
    }

    fn payload(&self, batch: &Batch) -> Result<Payload, String> {
        let index = batch.index.clone().ok_or(
            "the batch carries no record index (internal error: the route was built without one)",
        )?;
        let mut payload = Payload {
            data: batch.data.clone(),
            index: Arc::clone(&index),
            items: Vec::with_capacity(index.records.len()),
        };
        // Index names per (file, stream) and day, timestamps per distinct time text: most
        // records of a batch share them.
        let mut templates: HashMap<(usize, Stream), String> = HashMap::new();
        let mut names: HashMap<(usize, Stream, i64), Arc<str>> = HashMap::new();
        let now = now_nanos();
        // Records of a batch mostly share their second: its calendar date is reused.
        let mut second = (i64::MIN, Civil::from_nanos(0));
        for (i, r) in index.records.iter().enumerate() {
            let file = &index.files[r.file as usize];
            let record = payload.record(i as u32);
            let nanos = json_time(record).and_then(parse_rfc3339).unwrap_or(now);
            let this_second = nanos.div_euclid(1_000_000_000);
            if this_second != second.0 {
                second = (this_second, Civil::from_nanos(nanos));
            }
            let civil = Civil {
                nanos: nanos.rem_euclid(1_000_000_000) as u32,
                ..second.1
            };
            let key = Arc::as_ptr(file) as usize;
            let template = templates
                .entry((key, r.stream))
                .or_insert_with(|| self.template(file, r.stream));
            // The span of time one name covers: an hour with `%H`, else a day.
            let unit: i64 = if template.contains("%H") {
                3_600_000_000_000
            } else {
                86_400_000_000_000
            };
            let bucket = if template.contains('%') {
                nanos.div_euclid(unit)
            } else {
                0
            };
            let name = names
                .entry((key, r.stream, bucket))
                .or_insert_with(|| {
                    let mut name = String::with_capacity(template.len() + 8);
                    civil.format_into(template, &mut name);
                    legal_index(&name).into()
                })
                .clone();
            payload.items.push(Item {
                record: i as u32,
                index: name,
                timestamp: civil.rfc3339_millis_bytes(),
            });
        }
        Ok(payload)
    }

    fn records(&self, payload: &Payload) -> u64 {
        payload.items.len() as u64
    }

    fn body(&self, payload: &Payload, out: &mut Vec<u8>) {
        let action: &[u8] = match self.settings.op_type {
            OpType::Index => b"{\"index\":{\"_index\":\"",
            OpType::Create => b"{\"create\":{\"_index\":\"",
        };
        out.reserve(payload.data.len() + payload.items.len() * 96);
        for item in &payload.items {
            out.extend_from_slice(action);
            // Legal index names need no escaping.
            out.extend_from_slice(item.index.as_bytes());
            out.extend_from_slice(b"\"}}\n{\"@timestamp\":\"");
            out.extend_from_slice(&item.timestamp);
            out.push(b'"');
            let record = payload.record(item.record);
            // `{…}` → `{"@timestamp":"…",…}`.
            match record.strip_prefix(b"{") {
                Some(rest) if rest != b"}" => {
                    out.push(b',');
                    out.extend_from_slice(rest);
                }
                _ => out.push(b'}'),
            }
            out.push(b'\n');
        }
    }

    fn accepted(&self, payload: &mut Payload, response: &[u8]) -> Verdict {
        let parsed: BulkResponse = match serde_json::from_slice(response) {
            Ok(parsed) => parsed,
            Err(e) => {
                return Verdict::Again(
                    Vec::new(),
                    format!("unreadable bulk response ({e}); sending the request again"),
                );
            }
        };
        if !parsed.errors {
            return Verdict::Done(Vec::new());
        }
        if parsed.items.len() != payload.items.len() {
            return Verdict::Again(
                Vec::new(),
                format!(
                    "the bulk response has {} items for {} documents; sending the request again",
                    parsed.items.len(),
                    payload.items.len()
                ),
            );
        }
        let mut refusals = Vec::new();
        let mut again = Vec::new();
        let mut reason = String::new();
        for (item, result) in payload.items.iter().zip(parsed.items) {
            let Some(result) = result.into_values().next() else {
                again.push(item.clone());
                continue;
            };
            match result.status {
                200..=299 => {}
                429 | 500..=599 => {
                    if reason.is_empty() {
                        reason = format!(
                            "bulk item status {}: {}",
                            result.status,
                            describe(&result.error)
                        );
                    }
                    again.push(item.clone());
                }
                status => refusals.push(Refusal {
                    destination: ("index", item.index.to_string()),
                    reason: format!("bulk item status {status}: {}", describe(&result.error)),
                    record: Some(payload.record(item.record).to_vec()),
                    count: 1,
                }),
            }
        }
        if again.is_empty() {
            return Verdict::Done(refusals);
        }
        let retried = again.len();
        payload.items = again;
        Verdict::Again(
            refusals,
            format!("{retried} bulk item(s) to retry ({reason})"),
        )
    }

    fn split(&self, payload: Payload) -> Result<(Payload, Payload), Payload> {
        if payload.items.len() < 2 {
            return Err(payload);
        }
        let mut first = payload;
        let second_items = first.items.split_off(first.items.len() / 2);
        let second = Payload {
            data: first.data.clone(),
            index: Arc::clone(&first.index),
            items: second_items,
        };
        Ok((first, second))
    }

    fn refuse_all(&self, payload: &Payload, reason: &str) -> Vec<Refusal> {
        payload
            .items
            .iter()
            .map(|item| Refusal {
                destination: ("index", item.index.to_string()),
                reason: reason.to_string(),
                record: Some(payload.record(item.record).to_vec()),
                count: 1,
            })
            .collect()
    }
}

impl Bulk {
    /// The index template text of records of `file` on `stream`, before date directives.
    fn template(&self, file: &FileCtx, stream: Stream) -> String {
        match &file.source.origin {
            Some(origin) => match &origin.topic {
                Some(target) => target.clone(),
                None => format!("{}-%Y.%m.%d", origin.name.to_ascii_lowercase()),
            },
            None => self.settings.index.render(file, stream),
        }
    }
}

/// `name` as a legal index name: lowercase, forbidden characters as `_`, not starting with
/// `-`, `_` or `+`, at most 255 bytes.
fn legal_index(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if matches!(
                c,
                '\\' | '/' | '*' | '?' | '"' | '<' | '>' | '|' | ',' | '#' | ':' | ' '
            ) || c.is_control()
            {
                '_'
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect();
    while out.starts_with(['-', '_', '+']) {
        out.remove(0);
    }
    if out.is_empty() || out == "." || out == ".." {
        out = "ringtail".to_string();
    }
    while out.len() > 255 {
        out.pop();
    }
    out
}

/// `text` for a URL query value.
fn query_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A `_bulk` response: `errors`, and each item's result under its action.
#[derive(Debug, Deserialize)]
struct BulkResponse {
    errors: bool,
    #[serde(default)]
    items: Vec<HashMap<String, ItemResult>>,
}

#[derive(Debug, Deserialize)]
struct ItemResult {
    status: u16,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

/// `type: reason` of an item's error.
fn describe(error: &Option<serde_json::Value>) -> String {
    match error {
        Some(serde_json::Value::Object(e)) => format!(
            "{}: {}",
            e.get("type").and_then(|t| t.as_str()).unwrap_or("error"),
            e.get("reason").and_then(|t| t.as_str()).unwrap_or("")
        ),
        Some(other) => other.to_string(),
        None => "no reason given".to_string(),
    }
}

#[cfg(test)]
mod tests;
