//! Processors: fields extracted from records, static fields, and dropping by a field's value.
//!
//! Owns what happens to a record between multiline and encoding, per source, in the order
//! configured: `json`, `regex`, `nginx`, `apache`, `csv` extract fields from the message;
//! `timestamp` takes the record's own time (and level) from it; `add_fields` adds static
//! ones; `drop` / `keep` filter on a field's value. Extracted values
//! borrow from the message wherever they can ([`Value::Str`], [`Value::Json`]): the only copy
//! of a value is the one the encoder writes into the batch (escaped JSON), except for the
//! rare value that needs unescaping (a quoted CSV field with `""`, a JSON string key with
//! escapes).
//!
//! A record a parsing processor cannot parse keeps its message, gets an `error` naming the
//! processor, and is counted — never dropped. Records are dropped only by `drop` / `keep`,
//! which is configuration, and counted too.
//!
//! Owns the processors and the order they run in; it may not encode (the encoder writes the
//! fields).

pub mod access;
pub mod csv;
pub mod fields;
pub mod json;
pub mod time;

use std::borrow::Cow;

use crate::cut::decode::Entry;
pub use fields::{Fields, ParseError, Value};

/// One configured processor.
#[derive(Debug, Clone)]
pub enum Processor {
    /// The message is a JSON object: its members become fields, nested objects flattened
    /// to `a.b` keys down to `depth` levels (deeper ones stay JSON).
    Json {
        /// Levels of nested objects flattened (1: top-level members only).
        depth: usize,
        /// Whether the message stays in the record once parsed.
        keep_source: bool,
    },
    /// A regex on the message: named groups, or unnamed groups named by `keys`.
    Regex {
        /// The pattern.
        pattern: regex::bytes::Regex,
        /// Names of the capture groups in order (named groups' own names by default).
        keys: Vec<String>,
    },
    /// nginx's default `combined` access-log format.
    Nginx,
    /// Apache's `combined` access-log format.
    Apache,
    /// Comma-separated (or other delimiter) values with the given column names.
    Csv {
        /// Column names, in order.
        columns: Vec<String>,
        /// The delimiter byte.
        delimiter: u8,
    },
    /// Static fields.
    AddFields {
        /// Key and value pairs.
        fields: Vec<(String, String)>,
    },
    /// Drops records whose `field` matches.
    Drop {
        /// `message` or an extracted field.
        field: String,
        /// The pattern.
        pattern: regex::bytes::Regex,
    },
    /// Keeps only records whose `field` matches.
    Keep {
        /// `message` or an extracted field.
        field: String,
        /// The pattern.
        pattern: regex::bytes::Regex,
    },
    /// The record's own time (and level) from its leading timestamp or a field.
    Timestamp(time::TimeRule),
}

impl Processor {
    /// The processor's name, as configured (`type`).
    pub fn name(&self) -> &'static str {
        match self {
            Processor::Json { .. } => "json",
            Processor::Regex { .. } => "regex",
            Processor::Nginx => "nginx",
            Processor::Apache => "apache",
            Processor::Csv { .. } => "csv",
            Processor::AddFields { .. } => "add_fields",
            Processor::Drop { .. } => "drop",
            Processor::Keep { .. } => "keep",
            Processor::Timestamp(_) => "timestamp",
        }
    }
}

/// What became of a record.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Encode it.
    Keep,
    /// A `drop` or `keep` processor (its index) removed it.
    Dropped(usize),
}

/// Counters of the processors, added to by each call; the caller publishes and resets them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ProcessStats {
    /// Records a parsing processor could not parse (kept, with `error`).
    pub failed: u64,
    /// Records removed by `drop` / `keep`.
    pub dropped: u64,
}

/// Runs `processors` on `entry`: extracted fields go to `fields`; a parse failure sets
/// `error` (the first one wins) and the record goes on.
pub fn run<'a>(
    processors: &'a [Processor],
    entry: &Entry<'a>,
    fields: &mut Fields<'a>,
    error: &mut Option<ParseError>,
    stats: &mut ProcessStats,
) -> Outcome {
    let message = entry.message;
    for (i, processor) in processors.iter().enumerate() {
        let parsed: Result<(), ParseError> = match processor {
            Processor::Json { depth, keep_source } => {
                json::parse(message, *depth, fields).map(|()| {
                    if !keep_source {
                        fields.drop_message = true;
                    }
                })
            }
            Processor::Regex { pattern, keys } => match pattern.captures(message) {
                Some(captures) => {
                    for (key, group) in keys.iter().zip(captures.iter().skip(1)) {
                        if let Some(group) = group {
                            fields.push(key.as_str(), Value::Bytes(group.as_bytes()));
                        }
                    }
                    Ok(())
                }
                None => Err("regex: the message does not match"),
            },
            Processor::Nginx => access::nginx(message, fields),
            Processor::Timestamp(rule) => time::stamp(rule, message, fields),
            Processor::Apache => access::apache(message, fields),
            Processor::Csv { columns, delimiter } => {
                csv::parse(message, *delimiter, columns, fields)
            }
            Processor::AddFields { fields: add } => {
                for (k, v) in add {
                    fields.push(k.as_str(), Value::Str(Cow::Borrowed(v.as_str())));
                }
                Ok(())
            }
            Processor::Drop { field, pattern } | Processor::Keep { field, pattern } => {
                let value = match field.as_str() {
                    "message" => Some(Cow::Borrowed(message)),
                    key => fields.get(key).map(value_bytes),
                };
                let matched = value.is_some_and(|v| pattern.is_match(&v));
                let keep = matches!(processor, Processor::Keep { .. });
                if matched != keep {
                    stats.dropped += 1;
                    return Outcome::Dropped(i);
                }
                Ok(())
            }
        };
        if let Err(e) = parsed {
            stats.failed += 1;
            error.get_or_insert(e);
        }
    }
    Outcome::Keep
}

/// A field's value as bytes, for matching (`drop`/`keep`).
fn value_bytes<'v>(value: &'v Value<'_>) -> Cow<'v, [u8]> {
    match value {
        Value::Str(s) => Cow::Borrowed(s.as_bytes()),
        Value::Bytes(b) => Cow::Borrowed(b),
        Value::Int(i) => Cow::Owned(i.to_string().into_bytes()),
        Value::Json(j) => match json::unquoted(j) {
            Cow::Borrowed(s) => Cow::Borrowed(s.as_bytes()),
            Cow::Owned(s) => Cow::Owned(s.into_bytes()),
        },
        Value::Null => Cow::Borrowed(b""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cut::decode::Stream;
    use fields::fields_json;

    fn entry(message: &[u8]) -> Entry<'_> {
        Entry {
            offset: 0,
            message,
            stream: Stream::Stdout,
            time: b"",
            truncated: false,
            error: None,
        }
    }

    fn encoded(fields: &Fields<'_>) -> serde_json::Value {
        let mut value = serde_json::json!({"x": 1});
        if !fields.pairs.is_empty() {
            value["fields"] = fields_json(fields);
        }
        value
    }

    #[test]
    fn a_chain_extracts_adds_and_filters() {
        let chain = vec![
            Processor::Regex {
                pattern: regex::bytes::Regex::new(r"^(?P<level>\w+) (?P<msg>.*)$").unwrap(),
                keys: vec!["level".into(), "msg".into()],
            },
            Processor::AddFields {
                fields: vec![("team".into(), "web".into())],
            },
            Processor::Drop {
                field: "level".into(),
                pattern: regex::bytes::Regex::new("^DEBUG$").unwrap(),
            },
        ];
        let mut stats = ProcessStats::default();
        let line = entry(b"INFO started \"ok\"");
        let mut fields = Fields::default();
        let mut error = None;
        assert_eq!(
            run(&chain, &line, &mut fields, &mut error, &mut stats),
            Outcome::Keep
        );
        assert_eq!(error, None);
        assert_eq!(
            encoded(&fields),
            serde_json::json!({"x": 1, "fields": {"level": "INFO", "msg": "started \"ok\"", "team": "web"}})
        );
        let debug = entry(b"DEBUG noise");
        let mut fields = Fields::default();
        assert_eq!(
            run(&chain, &debug, &mut fields, &mut error, &mut stats),
            Outcome::Dropped(2)
        );
        // No match: kept, with an error, and the later processors still run.
        let odd = entry(b"no-space-here");
        let mut fields = Fields::default();
        let mut error = None;
        assert_eq!(
            run(&chain, &odd, &mut fields, &mut error, &mut stats),
            Outcome::Keep
        );
        assert_eq!(error, Some("regex: the message does not match"));
        assert_eq!(
            encoded(&fields),
            serde_json::json!({"x": 1, "fields": {"team": "web"}})
        );
        assert_eq!(
            stats,
            ProcessStats {
                failed: 1,
                dropped: 1
            }
        );
    }

    #[test]
    fn keep_keeps_only_matches_and_later_keys_win() {
        let chain = vec![Processor::Keep {
            field: "message".into(),
            pattern: regex::bytes::Regex::new("ERROR").unwrap(),
        }];
        let mut stats = ProcessStats::default();
        let (mut f, mut e) = (Fields::default(), None);
        assert_eq!(
            run(&chain, &entry(b"an ERROR here"), &mut f, &mut e, &mut stats),
            Outcome::Keep
        );
        assert_eq!(
            run(&chain, &entry(b"all fine"), &mut f, &mut e, &mut stats),
            Outcome::Dropped(0)
        );
        let mut fields = Fields::default();
        fields.push("a", Value::Int(1));
        fields.push("b", Value::Null);
        fields.push("a", Value::Json("[1,2]"));
        assert_eq!(
            encoded(&fields),
            serde_json::json!({"x": 1, "fields": {"b": null, "a": [1, 2]}})
        );
    }
}
