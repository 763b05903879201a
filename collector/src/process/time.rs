//! The `timestamp` processor: a record's own time — the timestamp its message begins with,
//! or an extracted field's value — parsed into the instant the record is stamped with, and the
//! level word that follows a leading timestamp taken as the `level` field.
//!
//! Formats: `auto` takes the layouts records begin with — ISO 8601 with `T` or a space, a
//! fraction after `.` or `,`, a zone (`Z`, `+02:00`, `+0200`) or none; `2024/01/06 10:00:00`;
//! syslog `Jan  6 10:00:00` and klog `I0106 10:00:00.000000` (no year: the current one, or the
//! year before when that would put the record more than a day ahead). A `format` with
//! `%Y %m %d %e %b %H %M %S %f %z %%` takes exactly that layout. A time without a zone is in
//! `utc_offset` (UTC by default).
//!
//! Owns parsing a record's own time; the instant is written by the encoders.

use crate::cut::multiline::shape::LEVELS;
use crate::process::fields::{Fields, ParseError, Value};
use crate::timestamp::{Civil, nanos_from_civil, now_nanos};

/// Where a record's time is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimeFrom {
    /// The start of the message (after one optional `[`).
    Leading,
    /// An extracted field's value, whole.
    Field(String),
}

/// A `timestamp` processor's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeRule {
    /// Where the time is.
    pub from: TimeFrom,
    /// Its layout; `None`: `auto`.
    pub format: Option<String>,
    /// Seconds east of UTC of times written without a zone.
    pub utc_offset: i64,
    /// Whether a level word after a leading timestamp becomes the `level` field.
    pub level: bool,
}

/// Stamps the record whose message is `message`: `fields.time` from its time, and `level`.
pub fn stamp<'a>(
    rule: &TimeRule,
    message: &'a [u8],
    fields: &mut Fields<'a>,
) -> Result<(), ParseError> {
    let (text, leading): (&[u8], bool) = match &rule.from {
        TimeFrom::Leading => (message.strip_prefix(b"[").unwrap_or(message), true),
        TimeFrom::Field(name) => match fields.get(name) {
            Some(Value::Str(s)) => (field_text(s.as_bytes(), message)?, false),
            Some(Value::Bytes(b)) => (*b, false),
            Some(Value::Json(j)) => (field_text(j.trim_matches('"').as_bytes(), message)?, false),
            _ => return Err("timestamp: the field is not there"),
        },
    };
    let parsed = match &rule.format {
        None => auto(text, rule.utc_offset),
        Some(format) => with_format(text, format, rule.utc_offset),
    };
    let Some((nanos, used)) = parsed else {
        return Err(if leading {
            "timestamp: the message does not begin with a timestamp"
        } else {
            "timestamp: the field is not a timestamp"
        });
    };
    if !leading && used != text.len() {
        return Err("timestamp: the field is not a timestamp");
    }
    fields.time = Some(nanos);
    if leading && rule.level {
        let klog = text
            .first()
            .filter(|_| klog_at(text))
            .and_then(|l| match l {
                b'I' => Some(&b"INFO"[..]),
                b'W' => Some(b"WARNING"),
                b'E' => Some(b"ERROR"),
                b'F' => Some(b"FATAL"),
                _ => None,
            });
        if let Some(level) = klog.or_else(|| level_after(&text[used..])) {
            fields.push("level", Value::Bytes(level));
        }
    }
    Ok(())
}

/// A field's text must be the message's own bytes to be borrowed for as long as the record;
/// an unescaped copy (rare) cannot be, and is not parsed.
fn field_text<'a>(value: &[u8], message: &'a [u8]) -> Result<&'a [u8], ParseError> {
    let outside = "timestamp: the field's value is not in the message";
    let start = (value.as_ptr() as usize)
        .checked_sub(message.as_ptr() as usize)
        .ok_or(outside)?;
    let end = start.checked_add(value.len()).ok_or(outside)?;
    message
        .get(start..end)
        .filter(|inside| inside.as_ptr() == value.as_ptr())
        .ok_or(outside)
}

/// The level word after a leading timestamp (spaces, a `]` closing the timestamp's bracket,
/// one `[` around the word allowed).
fn level_after(rest: &[u8]) -> Option<&[u8]> {
    let mut rest = rest;
    while let Some(b' ' | b'\t' | b']' | b'[' | b'|' | b'-') = rest.first() {
        rest = &rest[1..];
    }
    LEVELS.iter().find_map(|word| {
        (rest.starts_with(word)
            && rest
                .get(word.len())
                .is_none_or(|b| !b.is_ascii_alphanumeric()))
        .then(|| &rest[..word.len()])
    })
}

/// A number of exactly `n` digits at `at`.
fn number(text: &[u8], at: usize, n: usize) -> Option<i64> {
    let part = text.get(at..at + n)?;
    part.iter().try_fold(0i64, |v, &b| {
        b.is_ascii_digit().then(|| v * 10 + i64::from(b - b'0'))
    })
}

fn is(text: &[u8], at: usize, one_of: &[u8]) -> bool {
    text.get(at).is_some_and(|b| one_of.contains(b))
}

/// `HH:MM:SS` at `at`, then an optional fraction after `.` or `,`: (seconds of the day,
/// nanoseconds, bytes used from `at`).
fn clock(text: &[u8], at: usize) -> Option<(i64, i64, usize)> {
    let (h, m, s) = (
        number(text, at, 2)?,
        number(text, at + 3, 2)?,
        number(text, at + 6, 2)?,
    );
    if !is(text, at + 2, b":") || !is(text, at + 5, b":") || h > 23 || m > 59 || s > 60 {
        return None;
    }
    let mut used = 8;
    let mut nanos = 0;
    if is(text, at + used, b".,")
        && let Some((fraction, digits)) = fraction(text, at + used + 1)
    {
        nanos = fraction;
        used += 1 + digits;
    }
    Some((h * 3600 + m * 60 + s, nanos, used))
}

/// The digits of a fraction of a second at `at` (at least one; past nine, ignored):
/// (nanoseconds, digits used).
fn fraction(text: &[u8], at: usize) -> Option<(i64, usize)> {
    let digits = text
        .get(at..)?
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    if digits == 0 {
        return None;
    }
    let kept = &text[at..at + digits.min(9)];
    let nanos = kept.iter().fold(0i64, |n, &d| n * 10 + i64::from(d - b'0'))
        * 10i64.pow(9 - kept.len() as u32);
    Some((nanos, digits))
}

/// A zone at `at`: `Z`, `±HH:MM` or `±HHMM` → (seconds east, bytes used).
fn zone(text: &[u8], at: usize) -> Option<(i64, usize)> {
    match text.get(at)? {
        b'Z' | b'z' => Some((0, 1)),
        sign @ (b'+' | b'-') => {
            let h = number(text, at + 1, 2)?;
            let (m, used) = if is(text, at + 3, b":") {
                (number(text, at + 4, 2)?, 6)
            } else {
                (number(text, at + 3, 2)?, 5)
            };
            let east = h * 3600 + m * 60;
            Some((if *sign == b'+' { east } else { -east }, used))
        }
        _ => None,
    }
}

const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

fn month_name(text: &[u8], at: usize) -> Option<i64> {
    let name = text.get(at..at + 3)?;
    MONTHS.iter().position(|m| name == *m).map(|i| i as i64 + 1)
}

fn klog_at(text: &[u8]) -> bool {
    is(text, 0, b"IWEF") && number(text, 1, 4).is_some() && is(text, 5, b" ")
}

/// An instant from its parts; `year: None` takes the current year (or the one before, when
/// the current one would put it more than a day ahead).
fn instant(
    year: Option<i64>,
    month: i64,
    day: i64,
    second_of_day: i64,
    nanos: i64,
    offset: i64,
) -> Option<i64> {
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let at = |year| nanos_from_civil(year, month, day, second_of_day, nanos, offset);
    match year {
        Some(year) => at(year),
        None => {
            let now = now_nanos();
            let this = Civil::from_nanos(now).year;
            let guess = at(this)?;
            if guess > now + 86_400 * 1_000_000_000 {
                at(this - 1)
            } else {
                Some(guess)
            }
        }
    }
}

/// The `auto` layouts at the start of `text`: (nanoseconds since the epoch, bytes used).
fn auto(text: &[u8], offset: i64) -> Option<(i64, usize)> {
    // ISO 8601 / RFC 3339, or a date with slashes.
    for sep in [b'-', b'/'] {
        if is(text, 4, &[sep]) && is(text, 7, &[sep]) {
            let (y, mo, d) = (
                number(text, 0, 4)?,
                number(text, 5, 2)?,
                number(text, 8, 2)?,
            );
            let times: &[u8] = if sep == b'-' { b"T " } else { b" " };
            if !is(text, 10, times) {
                return None;
            }
            let (second, nanos, used) = clock(text, 11)?;
            let mut end = 11 + used;
            let mut east = offset;
            if sep == b'-'
                && let Some((zone_east, zone_used)) = zone(text, end)
            {
                east = zone_east;
                end += zone_used;
            }
            return Some((instant(Some(y), mo, d, second, nanos, east)?, end));
        }
    }
    // syslog: `Mmm dd HH:MM:SS`.
    if let Some(month) = month_name(text, 0)
        && is(text, 3, b" ")
    {
        let day = if is(text, 4, b" ") {
            number(text, 5, 1)?
        } else {
            number(text, 4, 2)?
        };
        if !is(text, 6, b" ") {
            return None;
        }
        let (second, nanos, used) = clock(text, 7)?;
        return Some((instant(None, month, day, second, nanos, offset)?, 7 + used));
    }
    // klog: `Lmmdd HH:MM:SS.ffffff`.
    if klog_at(text) {
        let (month, day) = (number(text, 1, 2)?, number(text, 3, 2)?);
        let (second, nanos, used) = clock(text, 6)?;
        return Some((instant(None, month, day, second, nanos, offset)?, 6 + used));
    }
    None
}

/// `text` in `format` (see the module documentation): (nanoseconds, bytes used).
fn with_format(text: &[u8], format: &str, offset: i64) -> Option<(i64, usize)> {
    let (mut year, mut month, mut day) = (None, 1, 1);
    let (mut hour, mut minute, mut second, mut nanos) = (0, 0, 0, 0);
    let mut east = offset;
    let mut at = 0;
    let mut spec = format.bytes();
    while let Some(c) = spec.next() {
        if c != b'%' {
            if text.get(at) != Some(&c) {
                return None;
            }
            at += 1;
            continue;
        }
        match spec.next()? {
            b'Y' => {
                year = Some(number(text, at, 4)?);
                at += 4;
            }
            b'm' => {
                month = number(text, at, 2)?;
                at += 2;
            }
            b'd' => {
                day = number(text, at, 2)?;
                at += 2;
            }
            b'e' => {
                day = if is(text, at, b" ") {
                    number(text, at + 1, 1)?
                } else {
                    number(text, at, 2)?
                };
                at += 2;
            }
            b'b' => {
                month = month_name(text, at)?;
                at += 3;
            }
            b'H' => {
                hour = number(text, at, 2)?;
                at += 2;
            }
            b'M' => {
                minute = number(text, at, 2)?;
                at += 2;
            }
            b'S' => {
                second = number(text, at, 2)?;
                at += 2;
            }
            b'f' => {
                let (fraction, digits) = fraction(text, at)?;
                nanos = fraction;
                at += digits;
            }
            b'z' => {
                let (zone_east, used) = zone(text, at)?;
                east = zone_east;
                at += used;
            }
            b'%' => {
                if text.get(at) != Some(&b'%') {
                    return None;
                }
                at += 1;
            }
            _ => return None,
        }
    }
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let second_of_day = hour * 3600 + minute * 60 + second;
    Some((instant(year, month, day, second_of_day, nanos, east)?, at))
}

/// The first directive of `format` the processor does not know, if any.
pub fn unknown_directive(format: &str) -> Option<String> {
    let mut spec = format.chars();
    while let Some(c) = spec.next() {
        if c == '%' {
            match spec.next() {
                Some('Y' | 'm' | 'd' | 'e' | 'b' | 'H' | 'M' | 'S' | 'f' | 'z' | '%') => {}
                Some(other) => return Some(format!("%{other}")),
                None => return Some("%".to_string()),
            }
        }
    }
    None
}

/// `+hh:mm`, `-hh:mm` or `Z` as seconds east of UTC.
pub fn parse_offset(text: &str) -> Option<i64> {
    let (east, used) = zone(text.as_bytes(), 0)?;
    (used == text.len()).then_some(east)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timestamp::parse_rfc3339;

    fn rule(from: TimeFrom, format: Option<&str>) -> TimeRule {
        TimeRule {
            from,
            format: format.map(str::to_string),
            utc_offset: 0,
            level: true,
        }
    }

    fn rfc(text: &str) -> i64 {
        parse_rfc3339(text.as_bytes()).unwrap()
    }

    fn stamped(rule: &TimeRule, message: &str) -> (Option<i64>, Option<String>) {
        let mut fields = Fields::default();
        let result = stamp(rule, message.as_bytes(), &mut fields);
        let level = fields.get("level").map(|v| match v {
            Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
            other => format!("{other:?}"),
        });
        assert_eq!(result.is_ok(), fields.time.is_some(), "{message}");
        (fields.time, level)
    }

    #[test]
    fn leading_timestamps_in_the_common_layouts() {
        let leading = rule(TimeFrom::Leading, None);
        let cases = [
            (
                "2026-12-06 20:13:26,700 ERROR traces: x",
                "2026-12-06T20:13:26.700Z",
                Some("ERROR"),
            ),
            (
                "2026-12-06T20:13:33.854Z INFO x",
                "2026-12-06T20:13:33.854Z",
                Some("INFO"),
            ),
            (
                "2026-12-06T20:13:33+02:00 [WARN] x",
                "2026-12-06T18:13:33Z",
                Some("WARN"),
            ),
            (
                "2026-12-06T20:13:33.123456789-0130 x",
                "2026-12-06T21:43:33.123456789Z",
                None,
            ),
            (
                "[2026-12-06 20:13:15.882] SEVERE x",
                "2026-12-06T20:13:15.882Z",
                Some("SEVERE"),
            ),
            (
                "2026/12/06 20:13:59 a message",
                "2026-12-06T20:13:59Z",
                None,
            ),
        ];
        for (message, time, level) in cases {
            assert_eq!(
                stamped(&leading, message),
                (Some(rfc(time)), level.map(str::to_string)),
                "{message}"
            );
        }
        for message in [
            "hello",
            "2026-13-06 20:13:59 x",
            "2026-12-06",
            "ERROR:root:x",
        ] {
            assert_eq!(stamped(&leading, message), (None, None), "{message}");
        }
    }

    #[test]
    fn yearless_layouts_take_the_current_year_and_klog_its_level_letter() {
        let leading = rule(TimeFrom::Leading, None);
        let year = Civil::from_nanos(now_nanos()).year;
        let (time, level) = stamped(&leading, "Jan  2 03:04:05 host app[1]: x");
        let expect = [year, year - 1]
            .map(|y| rfc(&format!("{y}-01-02T03:04:05Z")))
            .contains(&time.unwrap());
        assert!(expect && level.is_none());
        let (time, level) = stamped(&leading, "E0102 03:04:05.250000 1 main.go:10] x");
        let expect = [year, year - 1]
            .map(|y| rfc(&format!("{y}-01-02T03:04:05.25Z")))
            .contains(&time.unwrap());
        assert!(expect);
        assert_eq!(level.as_deref(), Some("ERROR"));
    }

    #[test]
    fn formats_fields_and_offsets() {
        let mut custom = rule(TimeFrom::Leading, Some("%d/%b/%Y:%H:%M:%S %z"));
        custom.level = false;
        assert_eq!(
            stamped(&custom, "06/Dec/2026:20:13:59 +0100 GET /"),
            (Some(rfc("2026-12-06T19:13:59Z")), None)
        );
        let mut local = rule(TimeFrom::Leading, None);
        local.utc_offset = parse_offset("+08:00").unwrap();
        assert_eq!(
            stamped(&local, "2026-12-06 08:00:00 x").0,
            Some(rfc("2026-12-06T00:00:00Z"))
        );
        let field = rule(TimeFrom::Field("ts".into()), None);
        let message = b"{\"ts\":\"2026-12-06T20:13:59.5Z\"}";
        let mut fields = Fields::default();
        fields.push("ts", Value::Bytes(&message[7..29]));
        assert_eq!(stamp(&field, message, &mut fields), Ok(()));
        assert_eq!(fields.time, Some(rfc("2026-12-06T20:13:59.5Z")));
        let mut fields = Fields::default();
        fields.push("ts", Value::Bytes(b"2026-12-06T20:13:59.5Z and more"));
        assert!(stamp(&field, b"", &mut fields).is_err());
        // An unescaped copy (not the message's bytes) is refused, wherever it lies.
        for message in [&b""[..], b"{\"ts\":\"x\"}"] {
            let mut fields = Fields::default();
            fields.push(
                "ts",
                Value::Str(String::from("2026-12-06T20:13:59Z").into()),
            );
            assert_eq!(
                stamp(&field, message, &mut fields),
                Err("timestamp: the field's value is not in the message")
            );
        }
        assert_eq!(unknown_directive("%Y-%m-%dT%H:%M:%S%z"), None);
        assert_eq!(unknown_directive("%Y %Q").as_deref(), Some("%Q"));
        assert_eq!(parse_offset("-05:30"), Some(-19_800));
        assert_eq!(parse_offset("8"), None);
    }
}
