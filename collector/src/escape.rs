//! JSON string escaping: the one place that decides how bytes go into a JSON string.
//!
//! The hot path scans 16 bytes at a time (SSE2; 8 with bit tricks elsewhere) for bytes that
//! need attention and copies clean runs whole: a typical ASCII log line is one scan and one
//! copy, with no separate UTF-8 validation. Invalid UTF-8 is written as U+FFFD and reported,
//! so callers can keep the exact bytes beside it (base64).
//!
//! Used by decoding (is a CRI timestamp safe to copy unescaped?), encoding (records), and
//! sinks (dead letters). Shared vocabulary: imports nothing from ringtail.
//!
//! Owns the escaping rules; it may not know what a record is.

use base64::Engine;

/// Appends the standard base64 of `input` to `out`.
pub fn base64_extend(input: &[u8], out: &mut Vec<u8>) {
    base64::engine::general_purpose::STANDARD.encode_extend(input, out);
}

/// `base64::Engine::encode_string` wants a `String`; this appends to bytes instead.
trait EncodeExtend {
    fn encode_extend(&self, input: &[u8], out: &mut Vec<u8>);
}

impl<E: Engine> EncodeExtend for E {
    fn encode_extend(&self, input: &[u8], out: &mut Vec<u8>) {
        let start = out.len();
        let len = base64::encoded_len(input.len(), true).unwrap_or(0);
        out.resize(start + len, 0);
        let written = self.encode_slice(input, &mut out[start..]).unwrap_or(0);
        out.truncate(start + written);
    }
}

/// Appends `s` to `out` as the inside of a JSON string. Returns `false` when `s` is not valid
/// UTF-8; each invalid sequence is then written as U+FFFD.
///
/// The common case — a line of printable ASCII — is one vector scan and one copy; only from
/// the first byte that needs attention on is the rest validated as UTF-8 and escaped.
pub fn write_escaped(out: &mut Vec<u8>, s: &[u8]) -> bool {
    let plain = plain_prefix(s);
    out.extend_from_slice(&s[..plain]);
    let s = &s[plain..];
    if s.is_empty() {
        return true;
    }
    if simdutf8::basic::from_utf8(s).is_ok() {
        escape_valid(out, s);
        return true;
    }
    for chunk in s.utf8_chunks() {
        escape_valid(out, chunk.valid().as_bytes());
        if !chunk.invalid().is_empty() {
            out.extend_from_slice("\u{FFFD}".as_bytes());
        }
    }
    false
}

/// `s` as text that keeps every byte: valid UTF-8 as it is, each byte of an invalid sequence
/// as `\xNN` — for file names, which on Linux are bytes (a record's `file`, a template's
/// `{file}`); unlike a message, a name has no `_base64` twin, so it must not be lossy.
pub fn bytes_as_text(s: &[u8]) -> std::borrow::Cow<'_, str> {
    if let Ok(text) = simdutf8::basic::from_utf8(s) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for chunk in s.utf8_chunks() {
        out.push_str(chunk.valid());
        for byte in chunk.invalid() {
            out.push_str(&format!("\\x{byte:02x}"));
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Length of the longest prefix of `s` that goes into a JSON string as it is, with no escaping
/// and no UTF-8 check: printable ASCII (and DEL) other than `"` and `\\`.
#[inline]
pub fn plain_prefix(s: &[u8]) -> usize {
    scan::<true>(s)
}

/// Index of the first byte of `s` that must be escaped in a JSON string (a control byte, `"`
/// or `\\`) or, with `STOP_AT_HIGH`, that is not ASCII; `s.len()` when there is none.
#[inline]
fn scan<const STOP_AT_HIGH: bool>(s: &[u8]) -> usize {
    #[cfg(target_arch = "x86_64")]
    return scan_sse2::<STOP_AT_HIGH>(s);
    #[cfg(not(target_arch = "x86_64"))]
    {
        let start = scan_swar::<STOP_AT_HIGH>(s);
        let stops = |b: u8| b < 0x20 || b == b'"' || b == b'\\' || (STOP_AT_HIGH && b >= 0x80);
        s[start..]
            .iter()
            .position(|&b| stops(b))
            .map_or(s.len(), |p| start + p)
    }
}

/// [`scan`] with SSE2, 16 bytes at a time; the last partial block is covered by one more
/// 16-byte load that overlaps the block before it, so short strings need no byte loop.
#[cfg(target_arch = "x86_64")]
#[inline]
fn scan_sse2<const STOP_AT_HIGH: bool>(s: &[u8]) -> usize {
    use std::arch::x86_64::{
        __m128i, _mm_and_si128, _mm_cmpeq_epi8, _mm_cmpgt_epi8, _mm_cmplt_epi8, _mm_loadu_si128,
        _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
    };
    let stops = |b: u8| b < 0x20 || b == b'"' || b == b'\\' || (STOP_AT_HIGH && b >= 0x80);
    if s.len() < 16 {
        return s.iter().position(|&b| stops(b)).unwrap_or(s.len());
    }
    // SAFETY: SSE2 is part of the x86_64 baseline, so every intrinsic here is available on any
    // CPU this code runs on. The only memory accesses are 16-byte unaligned loads (`loadu`) at
    // offsets `at` with `at + 16 <= s.len()` (checked by the loop, and `s.len() >= 16` above for
    // the final overlapping load), so they stay inside `s`.
    unsafe {
        let space = _mm_set1_epi8(0x20);
        let quote = _mm_set1_epi8(b'"' as i8);
        let backslash = _mm_set1_epi8(b'\\' as i8);
        let minus_one = _mm_set1_epi8(-1);
        let block = |at: usize| -> u32 {
            let v = _mm_loadu_si128(s.as_ptr().add(at).cast::<__m128i>());
            // A signed compare: bytes >= 0x80 are negative, so "below 0x20" catches them too;
            // when they may pass, keep only the non-negative ones.
            let mut low = _mm_cmplt_epi8(v, space);
            if !STOP_AT_HIGH {
                low = _mm_and_si128(low, _mm_cmpgt_epi8(v, minus_one));
            }
            let special = _mm_or_si128(
                low,
                _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)),
            );
            _mm_movemask_epi8(special) as u32
        };
        let mut i = 0;
        while i + 16 <= s.len() {
            let mask = block(i);
            if mask != 0 {
                return i + mask.trailing_zeros() as usize;
            }
            i += 16;
        }
        if i < s.len() {
            let last = s.len() - 16;
            // Lanes before `i` were checked already.
            let mask = block(last) >> (i - last);
            if mask != 0 {
                return i + mask.trailing_zeros() as usize;
            }
        }
        s.len()
    }
}

/// The portable part of [`scan`]: whole 8-byte words, with bit tricks. Returns the start of the
/// first word holding a stop byte, or where the last whole word ends.
#[cfg(any(test, not(target_arch = "x86_64")))]
fn scan_swar<const STOP_AT_HIGH: bool>(s: &[u8]) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let zero_byte = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    let mut i = 0;
    while let Some(word) = s.get(i..i + 8) {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(word);
        let w = u64::from_le_bytes(bytes);
        // Non-zero when a byte is below 0x20 (high bytes excluded by `!w`), `"` or `\\`.
        let mut hit = (w.wrapping_sub(ONES * 0x20) & !w & HIGHS)
            | zero_byte(w ^ (ONES * u64::from(b'"')))
            | zero_byte(w ^ (ONES * u64::from(b'\\')));
        if STOP_AT_HIGH {
            hit |= w & HIGHS;
        }
        if hit != 0 {
            return i;
        }
        i += 8;
    }
    i
}

/// Escapes valid UTF-8: copies runs that need nothing, escapes the bytes between them.
fn escape_valid(out: &mut Vec<u8>, s: &[u8]) {
    let mut rest = s;
    loop {
        let run = scan::<false>(rest);
        out.extend_from_slice(&rest[..run]);
        let Some(&b) = rest.get(run) else { return };
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(&[
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[usize::from(b >> 4)],
                    HEX[usize::from(b & 15)],
                ]);
            }
        }
        rest = &rest[run + 1..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_keep_every_byte_as_text() {
        assert_eq!(
            bytes_as_text(b"/var/log/caf\xc3\xa9.log"),
            "/var/log/caf\u{e9}.log"
        );
        assert_eq!(
            bytes_as_text(b"/x/app-\xff\xfe.log"),
            "/x/app-\\xff\\xfe.log"
        );
        assert_eq!(bytes_as_text(b"a\xc3"), "a\\xc3", "a cut sequence too");
    }
    use proptest::prelude::*;

    #[test]
    fn plain_prefix_stops_at_the_first_byte_that_needs_attention() {
        let line = b"0123456789abcdef0123456789abcdef-tail";
        assert_eq!(plain_prefix(line), line.len());
        for (i, special) in [
            (0, b'"'),
            (5, b'\\'),
            (15, b'\n'),
            (16, 0x00),
            (17, 0xc3),
            (33, 0x7f),
        ] {
            let mut v = line.to_vec();
            v[i] = special;
            let expect = if special == 0x7f { v.len() } else { i };
            assert_eq!(plain_prefix(&v), expect, "byte {special:#x} at {i}");
        }
        assert_eq!(plain_prefix(b""), 0);
    }

    proptest! {
        #[test]
        fn scans_match_a_byte_loop(bytes in proptest::collection::vec(
            prop_oneof![8 => 0x20u8..0x7f, 1 => any::<u8>(), 1 => Just(b'"'), 1 => Just(b'\\')],
            0..100,
        )) {
            let escape = |b: u8| b < 0x20 || b == b'"' || b == b'\\';
            let naive_plain = bytes.iter().position(|&b| escape(b) || b >= 0x80).unwrap_or(bytes.len());
            let naive_escape = bytes.iter().position(|&b| escape(b)).unwrap_or(bytes.len());
            prop_assert_eq!(plain_prefix(&bytes), naive_plain);
            prop_assert_eq!(scan::<false>(&bytes), naive_escape);
            // The portable version, which other architectures use, finds the word to look in.
            let word = scan_swar::<true>(&bytes);
            prop_assert!(word <= naive_plain && (word == naive_plain || naive_plain - word < 8));
            let word = scan_swar::<false>(&bytes);
            prop_assert!(word <= naive_escape && (word == naive_escape || naive_escape - word < 8));
        }

        #[test]
        fn any_valid_string_round_trips(s in any::<String>()) {
            let mut out = Vec::new();
            prop_assert!(write_escaped(&mut out, s.as_bytes()));
            let json = format!("\"{}\"", String::from_utf8(out).unwrap());
            let back: String = serde_json::from_str(&json).unwrap();
            prop_assert_eq!(back, s);
        }

    }
}
