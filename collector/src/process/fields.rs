//! What processors extract: [`Fields`] of one record, each a borrowed [`Value`] where it can
//! be, and the [`ParseError`] a parsing processor reports.
//!
//! Owns the values' shape; it may not encode them (that is [`crate::encode`]).

use std::borrow::Cow;

/// A field's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    /// Text (escaped when encoded).
    Str(Cow<'a, str>),
    /// Text as bytes, possibly not UTF-8 (a regex capture; escaped and repaired when
    /// encoded).
    Bytes(&'a [u8]),
    /// An integer.
    Int(i64),
    /// JSON text, written as it is (numbers, booleans, null, nested objects and arrays).
    Json(&'a str),
    /// No value (`-` in access logs).
    Null,
}

/// The fields extracted from one record, in order (a later value of a key replaces an
/// earlier one when encoded).
#[derive(Debug, Default)]
pub struct Fields<'a> {
    /// Key and value pairs.
    pub pairs: Vec<(Cow<'a, str>, Value<'a>)>,
    /// The message is not to be encoded (a `json` processor with `keep_source: false`
    /// parsed it whole).
    pub drop_message: bool,
    /// The record's own time (ns since the epoch) a `timestamp` processor found: it becomes
    /// the record's `time`, the runtime's becoming its `observed_time`.
    pub time: Option<i64>,
}

impl<'a> Fields<'a> {
    /// Adds a field.
    pub fn push(&mut self, key: impl Into<Cow<'a, str>>, value: Value<'a>) {
        self.pairs.push((key.into(), value));
    }

    /// The last value of `key`.
    pub fn get(&self, key: &str) -> Option<&Value<'a>> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }
}

/// Why a processor did not parse a record (goes into the record's `error`).
pub type ParseError = &'static str;

/// The fields as a JSON object, a later value of a key replacing an earlier one (as the
/// encoder writes them); `null` when there are none. What the processors' tests compare with.
#[cfg(test)]
pub(crate) fn fields_json(fields: &Fields<'_>) -> serde_json::Value {
    if fields.pairs.is_empty() {
        return serde_json::Value::Null;
    }
    let mut map = serde_json::Map::new();
    for (key, value) in &fields.pairs {
        let value = match value {
            Value::Str(s) => serde_json::Value::String(s.to_string()),
            Value::Bytes(b) => serde_json::Value::String(String::from_utf8_lossy(b).into_owned()),
            Value::Int(n) => serde_json::Value::from(*n),
            Value::Json(j) => serde_json::from_str(j).unwrap_or(serde_json::Value::Null),
            Value::Null => serde_json::Value::Null,
        };
        map.insert(key.to_string(), value);
    }
    serde_json::Value::Object(map)
}
