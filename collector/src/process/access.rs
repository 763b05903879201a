//! The `nginx` and `apache` processors: the default `combined` access-log formats.
//!
//! nginx: `$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent
//! "$http_referer" "$http_user_agent"`; Apache: `%h %l %u %t "%r" %>s %b "%{Referer}i"
//! "%{User-agent}i"`. Hand-written scanners (no regex), values borrowed from the message;
//! `status` and the byte count are integers, `-` is null, and the request line is also split
//! into `method`, `path` and `protocol` when it has those three parts. Whatever follows the
//! last quoted field (extra variables of an extended format) is ignored.
//!
//! Owns these two formats; it may not decide what happens to a record that does not parse (that
//! is [`crate::process::run`]).

use std::borrow::Cow;

use crate::process::fields::{Fields, ParseError, Value};

/// Parses an nginx `combined` line.
pub fn nginx<'a>(message: &'a [u8], fields: &mut Fields<'a>) -> Result<(), ParseError> {
    const ERROR: ParseError = "nginx: not a combined access-log line";
    let parsed = combined(message).ok_or(ERROR)?;
    if parsed.ident != b"-" {
        return Err(ERROR);
    }
    let before = fields.pairs.len();
    fields.push("remote_addr", text(parsed.host));
    fields.push("remote_user", text(parsed.user));
    fields.push("time_local", text(parsed.time));
    request(parsed.request, fields);
    fields.push("status", parsed.status);
    match parsed.bytes {
        Value::Int(_) => fields.push("body_bytes_sent", parsed.bytes),
        _ => {
            fields.pairs.truncate(before);
            return Err(ERROR);
        }
    }
    fields.push("http_referer", text(parsed.referer));
    fields.push("http_user_agent", text(parsed.agent));
    Ok(())
}

/// Parses an Apache `combined` line.
pub fn apache<'a>(message: &'a [u8], fields: &mut Fields<'a>) -> Result<(), ParseError> {
    let parsed = combined(message).ok_or("apache: not a combined access-log line")?;
    fields.push("remote_host", text(parsed.host));
    fields.push("remote_logname", text(parsed.ident));
    fields.push("remote_user", text(parsed.user));
    fields.push("time", text(parsed.time));
    request(parsed.request, fields);
    fields.push("status", parsed.status);
    fields.push("bytes", parsed.bytes);
    fields.push("referer", text(parsed.referer));
    fields.push("user_agent", text(parsed.agent));
    Ok(())
}

struct Combined<'a> {
    host: &'a [u8],
    ident: &'a [u8],
    user: &'a [u8],
    time: &'a [u8],
    request: &'a [u8],
    status: Value<'a>,
    bytes: Value<'a>,
    referer: &'a [u8],
    agent: &'a [u8],
}

fn combined(message: &[u8]) -> Option<Combined<'_>> {
    let mut c = Cursor { rest: message };
    let host = c.token()?;
    let ident = c.token()?;
    let user = c.token()?;
    let time = c.bracketed()?;
    let request = c.quoted()?;
    let status = match c.number()? {
        Value::Int(n) if (100..1000).contains(&n) => Value::Int(n),
        _ => return None,
    };
    let bytes = c.number()?;
    let referer = c.quoted()?;
    let agent = c.quoted()?;
    Some(Combined {
        host,
        ident,
        user,
        time,
        request,
        status,
        bytes,
        referer,
        agent,
    })
}

/// `-` is null; anything else text.
fn text(value: &[u8]) -> Value<'_> {
    if value == b"-" {
        Value::Null
    } else {
        Value::Bytes(value)
    }
}

fn request<'a>(line: &'a [u8], fields: &mut Fields<'a>) {
    fields.push("request", text(line));
    let mut parts = line.split(|&b| b == b' ');
    if let (Some(method), Some(path), Some(protocol), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
        && !method.is_empty()
        && protocol.starts_with(b"HTTP/")
    {
        fields.push(Cow::Borrowed("method"), Value::Bytes(method));
        fields.push(Cow::Borrowed("path"), Value::Bytes(path));
        fields.push(Cow::Borrowed("protocol"), Value::Bytes(protocol));
    }
}

struct Cursor<'a> {
    rest: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn skip_space(&mut self) {
        let n = self.rest.iter().take_while(|&&b| b == b' ').count();
        self.rest = &self.rest[n..];
    }

    /// A run of non-space bytes.
    fn token(&mut self) -> Option<&'a [u8]> {
        self.skip_space();
        let n = self.rest.iter().take_while(|&&b| b != b' ').count();
        if n == 0 {
            return None;
        }
        let (token, rest) = self.rest.split_at(n);
        self.rest = rest;
        Some(token)
    }

    /// `[…]`, without the brackets.
    fn bracketed(&mut self) -> Option<&'a [u8]> {
        self.skip_space();
        let inner = self.rest.strip_prefix(b"[")?;
        let end = memchr::memchr(b']', inner)?;
        self.rest = &inner[end + 1..];
        Some(&inner[..end])
    }

    /// `"…"`, without the quotes; a backslash escapes the next byte (Apache writes `\"`,
    /// nginx `\x22`); escapes are kept as logged.
    fn quoted(&mut self) -> Option<&'a [u8]> {
        self.skip_space();
        let inner = self.rest.strip_prefix(b"\"")?;
        let mut i = 0;
        while i < inner.len() {
            match inner[i] {
                b'\\' => i += 2,
                b'"' => {
                    self.rest = &inner[i + 1..];
                    return Some(&inner[..i]);
                }
                _ => i += 1,
            }
        }
        None
    }

    /// A decimal integer, or `-` (null).
    fn number(&mut self) -> Option<Value<'a>> {
        let token = self.token()?;
        if token == b"-" {
            return Some(Value::Null);
        }
        if token.len() > 18 || !token.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let n = token
            .iter()
            .fold(0i64, |n, &d| n * 10 + i64::from(d - b'0'));
        Some(Value::Int(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::process::fields::fields_json as json;

    #[test]
    fn nginx_combined_lines_become_typed_fields() {
        let line = br#"203.0.113.7 - alice [10/Oct/2023:13:55:36 +0000] "GET /shop/cart?id=12 HTTP/1.1" 200 2326 "https://example.com/a b" "Mozilla/5.0 (X11; Linux x86_64) \x22quoted\x22""#;
        let mut f = Fields::default();
        nginx(line, &mut f).unwrap();
        assert_eq!(
            json(&f),
            serde_json::json!({
                "remote_addr": "203.0.113.7", "remote_user": "alice",
                "time_local": "10/Oct/2023:13:55:36 +0000",
                "request": "GET /shop/cart?id=12 HTTP/1.1", "method": "GET",
                "path": "/shop/cart?id=12", "protocol": "HTTP/1.1",
                "status": 200, "body_bytes_sent": 2326,
                "http_referer": "https://example.com/a b",
                "http_user_agent": "Mozilla/5.0 (X11; Linux x86_64) \\x22quoted\\x22"
            })
        );
        // A probe's junk request and no user.
        let junk =
            br#"198.51.100.2 - - [10/Oct/2023:13:55:37 +0000] "\x16\x03\x01" 400 157 "-" "-""#;
        let mut f = Fields::default();
        nginx(junk, &mut f).unwrap();
        let v = json(&f);
        assert_eq!(v["status"], 400);
        assert_eq!(v["remote_user"], serde_json::Value::Null);
        assert!(v.get("method").is_none());
    }

    #[test]
    fn apache_combined_lines_become_typed_fields() {
        let line = br#"127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 304 - "http://www.example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav) \"x\"""#;
        let mut f = Fields::default();
        apache(line, &mut f).unwrap();
        let v = json(&f);
        assert_eq!(v["remote_host"], "127.0.0.1");
        assert_eq!(v["remote_logname"], serde_json::Value::Null);
        assert_eq!(v["remote_user"], "frank");
        assert_eq!(v["status"], 304);
        assert_eq!(v["bytes"], serde_json::Value::Null);
        assert_eq!(v["path"], "/apache_pb.gif");
        assert_eq!(
            v["user_agent"],
            "Mozilla/4.08 [en] (Win98; I ;Nav) \\\"x\\\""
        );
    }

    #[test]
    fn malformed_lines_are_errors_and_add_nothing() {
        for bad in [
            &b""[..],
            b"plain text",
            br#"1.2.3.4 - - [10/Oct/2023:13:55:36 +0000] "GET / HTTP/1.1" abc 12 "-" "-""#,
            br#"1.2.3.4 - - [10/Oct/2023:13:55:36 +0000 "GET / HTTP/1.1" 200 12 "-" "-""#,
            br#"1.2.3.4 - - [10/Oct/2023:13:55:36 +0000] "GET / HTTP/1.1" 200 12 "-" "unterminated"#,
            br#"1.2.3.4 - - [t] "GET / HTTP/1.1" 99 12 "-" "-""#,
        ] {
            let mut f = Fields::default();
            assert!(nginx(bad, &mut f).is_err(), "{}", String::from_utf8_lossy(bad));
            assert!(apache(bad, &mut f).is_err(), "{}", String::from_utf8_lossy(bad));
            assert!(f.pairs.is_empty());
        }
        // nginx writes `-` for ident and a number of bytes, always.
        let mut f = Fields::default();
        assert!(nginx(br#"1.2.3.4 x - [t] "GET / HTTP/1.1" 200 - "-" "-""#, &mut f).is_err());
        assert!(f.pairs.is_empty());
    }
}
