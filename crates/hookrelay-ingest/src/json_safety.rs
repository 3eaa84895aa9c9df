//! Whether every consumer can parse a body: nesting depth, unpaired surrogate escapes and
//! numbers beyond an f64, checked in one pass over JSON already known to be well formed. Pure.

use crate::event::ParseError;

/// How deep a body may nest: the consumers' JSON parsers bound recursion (serde_json at 128
/// levels, the envelope adding one; Python near 1,000), and a message no consumer can read would
/// fail on every receive until it reached the dead-letter queue.
pub const MAX_BODY_DEPTH: usize = 100;

/// Whether every consumer can parse `json` (already known to be well-formed JSON): it nests at
/// most [`MAX_BODY_DEPTH`] levels, holds no unpaired surrogate escape (`"\ud800"`, which
/// JavaScript's `JSON.stringify` can emit and serde_json refuses) and no number beyond an f64's
/// range (`1e400`). One pass; strings are skipped with memchr, so string-heavy bodies cost
/// little.
pub fn consumers_can_read(json: &str) -> Result<(), ParseError> {
    let bytes = json.as_bytes();
    let mut depth = 0usize;
    let mut at = 0;
    while at < bytes.len() {
        match bytes[at] {
            b'"' => {
                at = string_end(bytes, at + 1)?;
                continue;
            }
            b'{' | b'[' => {
                depth += 1;
                if depth > MAX_BODY_DEPTH {
                    return Err(ParseError::TooDeep);
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            b'-' | b'0'..=b'9' => {
                let end = bytes[at..]
                    .iter()
                    .position(|b| !matches!(b, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'))
                    .map_or(bytes.len(), |len| at + len);
                // Only an exponent, or more digits than any f64 has, can leave its range: other
                // numbers are not parsed at all (most bodies' numbers are short and plain).
                let token = &json[at..end];
                let may_overflow = token.len() > 300 || token.bytes().any(|b| b | 0x20 == b'e');
                if may_overflow && !token.parse::<f64>().is_ok_and(f64::is_finite) {
                    return Err(ParseError::NumberOutOfRange);
                }
                at = end;
                continue;
            }
            _ => {}
        }
        at += 1;
    }
    Ok(())
}

/// The index after the closing quote of the string whose content starts at `at`, checking its
/// `\u` escapes pair up.
fn string_end(bytes: &[u8], mut at: usize) -> Result<usize, ParseError> {
    let hex4 = |from: usize| {
        bytes
            .get(from..from + 4)
            .and_then(|digits| std::str::from_utf8(digits).ok())
            .and_then(|digits| u16::from_str_radix(digits, 16).ok())
    };
    while let Some(offset) = memchr::memchr2(b'"', b'\\', &bytes[at..]) {
        at += offset;
        if bytes[at] == b'"' {
            return Ok(at + 1);
        }
        // A backslash: `\uXXXX` is checked, any other escape is two bytes.
        if bytes.get(at + 1) != Some(&b'u') {
            at += 2;
            continue;
        }
        match hex4(at + 2) {
            Some(0xD800..=0xDBFF) => {
                let low = (bytes.get(at + 6..at + 8) == Some(b"\\u".as_slice()))
                    .then(|| hex4(at + 8))
                    .flatten();
                if !matches!(low, Some(0xDC00..=0xDFFF)) {
                    return Err(ParseError::LoneSurrogate);
                }
                at += 12;
            }
            Some(0xDC00..=0xDFFF) => return Err(ParseError::LoneSurrogate),
            _ => at += 6,
        }
    }
    Ok(bytes.len())
}
