//! The `json` processor: a message that is a JSON object becomes fields.
//!
//! Members are read without copying: keys borrow from the message (unless they contain
//! escapes) and values stay JSON text ([`Value::Json`]), written into the output as they
//! are. Nested objects are flattened into `parent.child` keys down to the configured depth;
//! deeper values stay JSON.
//!
//! Owns reading the object; it may not decide what happens to a record that does not parse.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::process::fields::{Fields, ParseError, Value};

/// Parses `message` as a JSON object into `fields`, flattening `depth` levels.
pub fn parse<'a>(
    message: &'a [u8],
    depth: usize,
    fields: &mut Fields<'a>,
) -> Result<(), ParseError> {
    let text = std::str::from_utf8(message).map_err(|_| "json: the message is not UTF-8")?;
    let before = fields.pairs.len();
    if flatten(text, None, depth.max(1), fields).is_err() {
        fields.pairs.truncate(before);
        return Err("json: the message is not a JSON object");
    }
    Ok(())
}

fn flatten<'a>(
    text: &'a str,
    prefix: Option<&str>,
    depth: usize,
    fields: &mut Fields<'a>,
) -> Result<(), serde_json::Error> {
    let Members(members) = serde_json::from_str(text)?;
    for (key, value) in members {
        let key: Cow<'a, str> = match prefix {
            Some(p) => Cow::Owned(format!("{p}.{key}")),
            None => key,
        };
        let raw = value.get();
        if depth > 1 && raw.trim_start().starts_with('{') {
            flatten(raw, Some(&key), depth - 1, fields)?;
        } else {
            fields.push(key, Value::Json(raw));
        }
    }
    Ok(())
}

/// The members of an object, in order, keys borrowed when they can be.
struct Members<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

/// An object key, borrowed from the input unless it has escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
            fn visit_string<E>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct MembersVisitor;
        impl<'de> Visitor<'de> for MembersVisitor {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members<'de>, A::Error> {
                let mut members = Vec::new();
                while let Some((Key(k), v)) = map.next_entry::<Key<'de>, &'de RawValue>()? {
                    members.push((k, v));
                }
                Ok(Members(members))
            }
        }
        d.deserialize_map(MembersVisitor)
    }
}

/// The text of a JSON string value, unescaped (for matching); other JSON as it is.
pub fn unquoted(raw: &str) -> Cow<'_, str> {
    if raw.starts_with('"') {
        match serde_json::from_str::<Cow<'_, str>>(raw) {
            Ok(s) => s,
            Err(_) => Cow::Borrowed(raw),
        }
    } else {
        Cow::Borrowed(raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(message: &str, depth: usize) -> Result<serde_json::Value, ParseError> {
        let mut f = Fields::default();
        parse(message.as_bytes(), depth, &mut f)?;
        Ok(crate::process::fields::fields_json(&f))
    }

    #[test]
    fn objects_become_fields_nested_ones_flattened_to_the_depth() {
        let msg = r#"{"level":"info","msg":"a \"quoted\"\nline","n":12.5,"ok":true,"none":null,
            "http":{"status":200,"req":{"path":"/x","h":{"a":1}}},"list":[1,{"b":2}],"k\u00e9y":"v"}"#;
        assert_eq!(
            fields(msg, 1).unwrap(),
            serde_json::json!({"level":"info","msg":"a \"quoted\"\nline","n":12.5,"ok":true,
                "none":null,"http":{"status":200,"req":{"path":"/x","h":{"a":1}}},
                "list":[1,{"b":2}],"kéy":"v"})
        );
        assert_eq!(
            fields(msg, 2).unwrap()["http.req"],
            serde_json::json!({"path":"/x","h":{"a":1}})
        );
        let deep = fields(msg, 5).unwrap();
        assert_eq!(deep["http.status"], 200);
        assert_eq!(deep["http.req.path"], "/x");
        assert_eq!(deep["http.req.h.a"], 1);
    }

    #[test]
    fn what_is_not_an_object_is_an_error_and_adds_nothing() {
        for bad in [
            "",
            "plain text",
            "[1,2]",
            "\"str\"",
            "{\"a\":1",
            "{\"a\":1} trailing",
            "{\"a\":{\"b\":}}",
        ] {
            let mut f = Fields::default();
            assert!(parse(bad.as_bytes(), 3, &mut f).is_err(), "{bad}");
            assert!(f.pairs.is_empty(), "{bad}");
        }
        let mut f = Fields::default();
        assert_eq!(
            parse(b"{\"a\":\"\xff\"}", 1, &mut f),
            Err("json: the message is not UTF-8")
        );
    }

    #[test]
    fn string_values_unquote_for_matching() {
        assert_eq!(unquoted(r#""a\"b""#), "a\"b");
        assert_eq!(unquoted("12"), "12");
    }
}
