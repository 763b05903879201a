//! Record-start shapes: how the first line of a log record begins — a timestamp in one of the
//! common layouts, a JSON object, a level word — recognised by hand, byte by byte, without a
//! regex on the hot path.
//!
//! `mode: auto` learns one shape per file and stream from its first lines and then joins every
//! line that does not begin with it to the record before; the presets use
//! [`starts_record`] to tell a log record's next line from the continuation of its message.
//!
//! Owns the shapes; it may not decide what is joined.

/// A record-start shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Shape {
    /// ISO 8601 / RFC 3339 date and time, `T` or space between them:
    /// `2024-01-06 10:00:00`, `2024-01-06T10:00:00.123Z`.
    Iso8601,
    /// Date with slashes, as Go's `log` prints it: `2024/01/06 10:00:00`.
    SlashDate,
    /// A BSD syslog timestamp: `Jan  6 10:00:00`.
    Syslog,
    /// klog / glog: level letter, `MMDD`, time: `I0106 10:00:00.000000`.
    Klog,
    /// A time of day alone (logback's default `%d{HH:mm:ss.SSS}`): `10:00:00.123`.
    Clock,
    /// A JSON object (`{` at the start of the line).
    Json,
    /// logfmt with a time or level key first: `time=…`, `ts=…`, `level=…`.
    Logfmt,
    /// A level word: `ERROR`, `INFO:root:…`, `[WARN]`.
    Level,
}

impl Shape {
    /// Every shape, most specific first (the order [`shape_of`] tries them in).
    pub const ALL: [Shape; 8] = [
        Shape::Iso8601,
        Shape::SlashDate,
        Shape::Syslog,
        Shape::Klog,
        Shape::Clock,
        Shape::Json,
        Shape::Logfmt,
        Shape::Level,
    ];

    /// The shape's name (metric label, logs).
    pub fn name(self) -> &'static str {
        match self {
            Shape::Iso8601 => "iso8601",
            Shape::SlashDate => "slash_date",
            Shape::Syslog => "syslog",
            Shape::Klog => "klog",
            Shape::Clock => "clock",
            Shape::Json => "json",
            Shape::Logfmt => "logfmt",
            Shape::Level => "level",
        }
    }

    /// Its index in [`Shape::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// Whether `line` begins with this shape.
    pub fn matches(self, line: &[u8]) -> bool {
        let line = strip_bracket(line);
        match self {
            Shape::Iso8601 => date(line, b'-') && time_at(line, 10, b"T "),
            Shape::SlashDate => date(line, b'/') && time_at(line, 10, b" "),
            Shape::Syslog => syslog(line),
            Shape::Klog => klog(line),
            Shape::Clock => clock(line),
            // Only at the very start: an indented `{` is inside a pretty-printed object.
            Shape::Json => line.first() == Some(&b'{'),
            Shape::Logfmt => logfmt(line),
            Shape::Level => level(line),
        }
    }
}

/// The shape `line` begins with, if any (the most specific one).
pub fn shape_of(line: &[u8]) -> Option<Shape> {
    Shape::ALL.into_iter().find(|shape| shape.matches(line))
}

/// Whether `line` begins like a log record: a timestamp, a level word, a JSON object.
pub fn starts_record(line: &[u8]) -> bool {
    shape_of(line).is_some()
}

/// `line` without one leading `[` (`[2024-01-06 …]`, `[INFO]`).
fn strip_bracket(line: &[u8]) -> &[u8] {
    line.strip_prefix(b"[").unwrap_or(line)
}

fn digits(line: &[u8], from: usize, n: usize) -> bool {
    line.get(from..from + n)
        .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
}

fn byte_at(line: &[u8], at: usize, one_of: &[u8]) -> bool {
    line.get(at).is_some_and(|b| one_of.contains(b))
}

/// `YYYY<sep>MM<sep>DD` at the start.
fn date(line: &[u8], sep: u8) -> bool {
    digits(line, 0, 4)
        && byte_at(line, 4, &[sep])
        && digits(line, 5, 2)
        && byte_at(line, 7, &[sep])
        && digits(line, 8, 2)
}

/// `<one of seps>HH:MM` at `at`.
fn time_at(line: &[u8], at: usize, seps: &[u8]) -> bool {
    byte_at(line, at, seps)
        && digits(line, at + 1, 2)
        && byte_at(line, at + 3, b":")
        && digits(line, at + 4, 2)
}

/// `HH:MM:SS` at `at`.
fn hms(line: &[u8], at: usize) -> bool {
    digits(line, at, 2)
        && byte_at(line, at + 2, b":")
        && digits(line, at + 3, 2)
        && byte_at(line, at + 5, b":")
        && digits(line, at + 6, 2)
}

const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// `Mmm dd hh:mm:ss` (day padded with a space or a zero).
fn syslog(line: &[u8]) -> bool {
    line.get(..3)
        .is_some_and(|m| MONTHS.iter().any(|month| m == *month))
        && byte_at(line, 3, b" ")
        && byte_at(line, 4, b" 0123")
        && digits(line, 5, 1)
        && byte_at(line, 6, b" ")
        && hms(line, 7)
}

/// `Lmmdd hh:mm:ss.` with `L` one of `IWEF`.
fn klog(line: &[u8]) -> bool {
    byte_at(line, 0, b"IWEF")
        && digits(line, 1, 4)
        && byte_at(line, 5, b" ")
        && hms(line, 6)
        && byte_at(line, 14, b".")
}

/// `hh:mm:ss` followed by `.`, `,` or a space.
fn clock(line: &[u8]) -> bool {
    hms(line, 0) && byte_at(line, 8, b"., ")
}

/// `time=`, `ts=`, `level=` or `lvl=` first.
fn logfmt(line: &[u8]) -> bool {
    [&b"time="[..], b"ts=", b"level=", b"lvl="]
        .iter()
        .any(|key| line.starts_with(key))
}

/// The level words records begin with, upper case as loggers print them.
pub const LEVELS: [&[u8]; 12] = [
    b"TRACE",
    b"DEBUG",
    b"INFO",
    b"NOTICE",
    b"WARNING",
    b"WARN",
    b"ERROR",
    b"SEVERE",
    b"CRITICAL",
    b"FATAL",
    b"ALERT",
    b"EMERG",
];

/// A level word followed by a separator (`:`, space, `]`, `|`, `-`) or the end.
fn level(line: &[u8]) -> bool {
    LEVELS.iter().any(|word| {
        line.starts_with(word)
            && line
                .get(word.len())
                .is_none_or(|b| matches!(b, b':' | b' ' | b']' | b'|' | b'-' | b'\t'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_layouts_are_recognised() {
        let cases: [(&str, Option<Shape>); 22] = [
            ("2024-01-06 10:00:00,123 INFO x", Some(Shape::Iso8601)),
            ("2024-01-06T10:00:00.123Z stdout", Some(Shape::Iso8601)),
            ("[2024-01-06 10:00:00] x", Some(Shape::Iso8601)),
            ("2024-01-06", None),
            ("2024/01/06 10:00:00 x", Some(Shape::SlashDate)),
            ("Jan  6 10:00:00 host app[1]: x", Some(Shape::Syslog)),
            ("Dec 16 10:00:00 host", Some(Shape::Syslog)),
            ("Foo 16 10:00:00 host", None),
            (
                "I1206 10:00:00.000000    1 main.go:10] x",
                Some(Shape::Klog),
            ),
            ("E1206 10:00:00.5 x", Some(Shape::Klog)),
            ("X1206 10:00:00.5 x", None),
            ("10:00:00.123 [main] INFO x", Some(Shape::Clock)),
            ("{\"level\":\"info\"}", Some(Shape::Json)),
            ("  {", None),
            ("time=2024-01-06T10:00:00Z level=info", Some(Shape::Logfmt)),
            ("level=info msg=x", Some(Shape::Logfmt)),
            ("INFO:root:x", Some(Shape::Level)),
            ("[WARN] x", Some(Shape::Level)),
            ("ERROR", Some(Shape::Level)),
            ("INFORMATION is not a level", None),
            ("\tat com.example.A.b(A.java:1)", None),
            ("Traceback (most recent call last):", None),
        ];
        for (line, shape) in cases {
            assert_eq!(shape_of(line.as_bytes()), shape, "{line}");
        }
    }

    #[test]
    fn names_and_indices_follow_the_list() {
        for (i, shape) in Shape::ALL.into_iter().enumerate() {
            assert_eq!(shape.index(), i);
            assert!(!shape.name().is_empty());
        }
    }
}
