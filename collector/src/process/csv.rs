//! The `csv` processor: delimiter-separated values with configured column names.
//!
//! RFC 4180 quoting: a field in double quotes may hold the delimiter, and `""` stands for a
//! quote. Values borrow from the message, except a quoted field with `""` in it (unescaped
//! once). A line with another number of fields than columns is an error.
//!
//! Owns splitting and unquoting; it may not decide what happens to a record that does not
//! parse.

use std::borrow::Cow;

use crate::process::fields::{Fields, ParseError, Value};

/// Parses `message` into one field per column.
pub fn parse<'a>(
    message: &'a [u8],
    delimiter: u8,
    columns: &'a [String],
    fields: &mut Fields<'a>,
) -> Result<(), ParseError> {
    let before = fields.pairs.len();
    let mut rest = message;
    let mut n = 0;
    loop {
        let Some((value, after)) = field(rest, delimiter) else {
            fields.pairs.truncate(before);
            return Err("csv: an unterminated quoted field");
        };
        match columns.get(n) {
            Some(column) => fields.push(column.as_str(), value),
            None => {
                fields.pairs.truncate(before);
                return Err("csv: more fields than columns");
            }
        }
        n += 1;
        match after {
            Some(after) => rest = after,
            None => break,
        }
    }
    if n != columns.len() {
        fields.pairs.truncate(before);
        return Err("csv: fewer fields than columns");
    }
    Ok(())
}

/// One field at the start of `s`, and what follows its delimiter (`None` at the end).
fn field(s: &[u8], delimiter: u8) -> Option<(Value<'_>, Option<&[u8]>)> {
    let Some(inner) = s.strip_prefix(b"\"") else {
        return Some(match memchr::memchr(delimiter, s) {
            Some(i) => (Value::Bytes(&s[..i]), Some(&s[i + 1..])),
            None => (Value::Bytes(s), None),
        });
    };
    let mut i = 0;
    let mut escaped = false;
    loop {
        let q = i + memchr::memchr(b'"', &inner[i..])?;
        if inner.get(q + 1) == Some(&b'"') {
            escaped = true;
            i = q + 2;
            continue;
        }
        let body = &inner[..q];
        let after = &inner[q + 1..];
        let next = match after.first() {
            None => None,
            Some(&b) if b == delimiter => Some(&after[1..]),
            // Text after a closing quote: not RFC 4180.
            Some(_) => return None,
        };
        let value = if escaped {
            let text = String::from_utf8_lossy(body).replace("\"\"", "\"");
            Value::Str(Cow::Owned(text))
        } else {
            Value::Bytes(body)
        };
        return Some((value, next));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    use crate::process::fields::fields_json as json;

    #[test]
    fn quoted_commas_and_quotes() {
        let cols = columns(&["id", "name", "note", "empty"]);
        let mut f = Fields::default();
        parse(
            br#"7,"Smith, Jane","said ""hi"", left","#,
            b',',
            &cols,
            &mut f,
        )
        .unwrap();
        assert_eq!(
            json(&f),
            serde_json::json!({"id": "7", "name": "Smith, Jane", "note": "said \"hi\", left", "empty": ""})
        );
        let cols = columns(&["a", "b"]);
        let mut f = Fields::default();
        parse(b"x\ty", b'\t', &cols, &mut f).unwrap();
        assert_eq!(json(&f), serde_json::json!({"a": "x", "b": "y"}));
    }

    #[test]
    fn wrong_shapes_are_errors_and_add_nothing() {
        let cols = columns(&["a", "b"]);
        for bad in [
            &b"1,2,3"[..],
            b"1",
            b"\"unterminated,2",
            b"\"a\"x,2",
            b"1,\"open",
        ] {
            let mut f = Fields::default();
            assert!(
                parse(bad, b',', &cols, &mut f).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
            assert!(f.pairs.is_empty());
        }
    }
}
