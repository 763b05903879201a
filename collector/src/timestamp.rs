//! Timestamps as records carry them: RFC 3339 text (what containerd, CRI-O and Docker write)
//! to nanoseconds since the Unix epoch, and back to the text and calendar dates sinks need
//! (`@timestamp`, a daily index such as `logs-%Y.%m.%d`, OTLP's `time_unix_nano`).
//!
//! Civil dates use Howard Hinnant's `days_from_civil` / `civil_from_days` algorithms
//! (proleptic Gregorian, UTC), so no time-zone database is needed: a timestamp with an offset
//! is converted to UTC.
//!
//! Owns the conversion; it may not decide which timestamp a record has.

use std::time::{SystemTime, UNIX_EPOCH};

/// Nanoseconds since the Unix epoch of an RFC 3339 timestamp such as
/// `2024-01-02T03:04:05.123456789Z` or `2024-01-02 03:04:05+02:00` (a space for the `T`,
/// any number of fraction digits, nanoseconds kept), or `None` when `text` is not one.
pub fn parse_rfc3339(text: &[u8]) -> Option<i64> {
    let digits = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = text.get(range)?;
        part.iter().try_fold(0i64, |n, &b| {
            b.is_ascii_digit().then(|| n * 10 + i64::from(b - b'0'))
        })
    };
    let year = digits(0..4)?;
    let month = digits(5..7)?;
    let day = digits(8..10)?;
    let hour = digits(11..13)?;
    let minute = digits(14..16)?;
    let second = digits(17..19)?;
    if text.get(4) != Some(&b'-')
        || text.get(7) != Some(&b'-')
        || !matches!(text.get(10), Some(b'T' | b't' | b' '))
        || text.get(13) != Some(&b':')
        || text.get(16) != Some(&b':')
        || !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut at = 19;
    let mut nanos = 0i64;
    if text.get(at) == Some(&b'.') {
        at += 1;
        let start = at;
        while let Some(b) = text.get(at).filter(|b| b.is_ascii_digit()) {
            if at - start < 9 {
                nanos = nanos * 10 + i64::from(b - b'0');
            }
            at += 1;
        }
        if at == start {
            return None;
        }
        for _ in (at - start)..9 {
            nanos *= 10;
        }
    }
    let offset = match text.get(at)? {
        b'Z' | b'z' if at + 1 == text.len() => 0,
        sign @ (b'+' | b'-') if at + 6 == text.len() && text.get(at + 3) == Some(&b':') => {
            let minutes = digits(at + 1..at + 3)? * 60 + digits(at + 4..at + 6)?;
            if *sign == b'+' { minutes } else { -minutes }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset * 60;
    seconds.checked_mul(1_000_000_000)?.checked_add(nanos)
}

/// Nanoseconds since the Unix epoch, now.
pub fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// Nanoseconds since the Unix epoch of a date, a second of that day and nanoseconds within
/// it, written `offset` seconds east of UTC; `None` past the range of an `i64`.
pub fn nanos_from_civil(
    year: i64,
    month: i64,
    day: i64,
    second_of_day: i64,
    nanos: i64,
    offset: i64,
) -> Option<i64> {
    let seconds = days_from_civil(year, month, day)
        .checked_mul(86_400)?
        .checked_add(second_of_day - offset)?;
    seconds.checked_mul(1_000_000_000)?.checked_add(nanos)
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The UTC calendar date and time of a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    /// Year.
    pub year: i64,
    /// Month, 1 to 12.
    pub month: u32,
    /// Day of the month, 1 to 31.
    pub day: u32,
    /// Hour, 0 to 23.
    pub hour: u32,
    /// Minute.
    pub minute: u32,
    /// Second.
    pub second: u32,
    /// Nanoseconds within the second.
    pub nanos: u32,
}

impl Civil {
    /// The UTC date and time `nanos` after the Unix epoch.
    pub fn from_nanos(nanos: i64) -> Self {
        let seconds = nanos.div_euclid(1_000_000_000);
        let sub = nanos.rem_euclid(1_000_000_000) as u32;
        let days = seconds.div_euclid(86_400);
        let in_day = seconds.rem_euclid(86_400) as u32;
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = yoe + era * 400 + i64::from(month <= 2);
        Self {
            year,
            month,
            day,
            hour: in_day / 3600,
            minute: in_day / 60 % 60,
            second: in_day % 60,
            nanos: sub,
        }
    }

    /// RFC 3339 in UTC with milliseconds, `2024-01-02T03:04:05.123Z` (what Elasticsearch's
    /// `date` type keeps).
    pub fn rfc3339_millis(&self) -> String {
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            self.year,
            self.month,
            self.day,
            self.hour,
            self.minute,
            self.second,
            self.nanos / 1_000_000
        )
    }

    /// [`rfc3339_millis`](Self::rfc3339_millis) without allocating: 24 bytes (years 0 to
    /// 9999).
    pub fn rfc3339_millis_bytes(&self) -> [u8; 24] {
        let mut out = *b"0000-00-00T00:00:00.000Z";
        let mut put = |at: usize, digits: usize, mut value: u64| {
            for i in (0..digits).rev() {
                out[at + i] = b'0' + (value % 10) as u8;
                value /= 10;
            }
        };
        put(0, 4, self.year.clamp(0, 9999) as u64);
        put(5, 2, u64::from(self.month));
        put(8, 2, u64::from(self.day));
        put(11, 2, u64::from(self.hour));
        put(14, 2, u64::from(self.minute));
        put(17, 2, u64::from(self.second));
        put(20, 3, u64::from(self.nanos / 1_000_000));
        out
    }

    /// RFC 3339 in UTC with nanoseconds, `2024-01-02T03:04:05.123456789Z`: 30 bytes (years
    /// 0 to 9999).
    pub fn rfc3339_nanos_bytes(&self) -> [u8; 30] {
        let mut out = [0u8; 30];
        out[..24].copy_from_slice(&self.rfc3339_millis_bytes());
        let mut sub = self.nanos;
        for i in (20..29).rev() {
            out[i] = b'0' + (sub % 10) as u8;
            sub /= 10;
        }
        out[29] = b'Z';
        out
    }

    /// Appends `format` with `%Y` (year), `%m` (month), `%d` (day), `%H` (hour) and `%%`
    /// replaced; any other character is copied.
    pub fn format_into(&self, format: &str, out: &mut String) {
        use std::fmt::Write;
        let mut chars = format.chars();
        while let Some(c) = chars.next() {
            if c != '%' {
                out.push(c);
                continue;
            }
            // Writing to a String cannot fail.
            let _ = match chars.next() {
                Some('Y') => write!(out, "{:04}", self.year),
                Some('m') => write!(out, "{:02}", self.month),
                Some('d') => write!(out, "{:02}", self.day),
                Some('H') => write!(out, "{:02}", self.hour),
                Some('%') => write!(out, "%"),
                Some(other) => write!(out, "%{other}"),
                None => write!(out, "%"),
            };
        }
    }
}

/// Whether `format` uses only the directives [`Civil::format_into`] knows; the first unknown
/// one otherwise.
pub fn unknown_directive(format: &str) -> Option<String> {
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c == '%' {
            match chars.next() {
                Some('Y' | 'm' | 'd' | 'H' | '%') => {}
                Some(other) => return Some(format!("%{other}")),
                None => return Some("%".to_string()),
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_parses_to_utc_nanoseconds() {
        assert_eq!(parse_rfc3339(b"1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339(b"2024-01-02T03:04:05.123456789Z"),
            Some(1_704_164_645_123_456_789)
        );
        // Trailing zeros trimmed (containerd), a short fraction, a space, an offset.
        assert_eq!(
            parse_rfc3339(b"2024-01-02T03:04:05.5Z"),
            Some(1_704_164_645_500_000_000)
        );
        assert_eq!(
            parse_rfc3339(b"2024-01-02 05:04:05+02:00"),
            Some(1_704_164_645_000_000_000)
        );
        assert_eq!(
            parse_rfc3339(b"2024-01-01T23:04:05-04:00"),
            Some(1_704_164_645_000_000_000)
        );
        for bad in [
            &b""[..],
            b"2024-01-02",
            b"2024-13-02T03:04:05Z",
            b"2024-01-02T03:04:05",
            b"2024-01-02T03:04:05.Z",
            b"2024-01-02T03:04:05Zjunk",
            b"2024/01/02T03:04:05Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn civil_dates_round_trip_and_format() {
        for text in [
            &b"2024-02-29T23:59:59.999Z"[..],
            b"1999-12-31T00:00:00.000Z",
            b"2100-03-01T12:30:00.001Z",
        ] {
            let nanos = parse_rfc3339(text).unwrap();
            assert_eq!(
                Civil::from_nanos(nanos).rfc3339_millis().as_bytes(),
                text,
                "round trip"
            );
            assert_eq!(&Civil::from_nanos(nanos).rfc3339_millis_bytes()[..], text);
        }
        let civil = Civil::from_nanos(parse_rfc3339(b"2026-12-06T07:05:00Z").unwrap());
        let mut out = String::new();
        civil.format_into("logs-%Y.%m.%d-%H %% %q", &mut out);
        assert_eq!(out, "logs-2026.12.06-07 % %q");
        assert_eq!(unknown_directive("logs-%Y.%m.%d"), None);
        assert_eq!(unknown_directive("logs-%y"), Some("%y".into()));
    }
}
