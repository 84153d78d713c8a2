//! The `Range` header of object reads, parsed without trusting it.
//!
//! Agents read parts of packs with `Range: bytes=FIRST-LAST` (one range, both ends
//! inclusive, as RFC 9110 §14.1.2 says). The parser is pure so that it can be tested
//! and fuzzed alone; the answer is always within the object, so a read is never
//! sized by the request.

/// What to send for a read of an object of `len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeRead {
    /// No `Range` header: the whole object.
    Whole,
    /// Bytes `start ..= end` (end < object length): 206 Partial Content.
    Part { start: u64, end: u64 },
}

/// Why a `Range` header cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RangeError {
    /// Not `bytes=FIRST-LAST`, `bytes=FIRST-` or `bytes=-SUFFIX` with decimal numbers:
    /// 400.
    #[error("the Range header {0:?} is not one byte range (bytes=FIRST-LAST)")]
    Malformed(String),
    /// A well-formed range that selects nothing of the object: 416.
    #[error("the range {range:?} lies outside the object of {len} bytes")]
    Unsatisfiable { range: String, len: u64 },
}

/// Headers longer than this are not a byte range any client of ours sends.
const MAX_HEADER: usize = 64;

fn number(text: &str) -> Option<u64> {
    // `u64::from_str` accepts a leading `+`; a range does not.
    if text.is_empty() || text.len() > 20 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Parses one `Range` header value against an object of `len` bytes.
pub fn parse_range(value: Option<&str>, len: u64) -> Result<RangeRead, RangeError> {
    let Some(value) = value else {
        return Ok(RangeRead::Whole);
    };
    let malformed = || RangeError::Malformed(value.chars().take(MAX_HEADER).collect());
    if value.len() > MAX_HEADER {
        return Err(malformed());
    }
    let spec = value.trim().strip_prefix("bytes=").ok_or_else(malformed)?;
    let (first, last) = spec.split_once('-').ok_or_else(malformed)?;
    let unsatisfiable = || RangeError::Unsatisfiable {
        range: value.to_string(),
        len,
    };
    let (start, end) = match (first.is_empty(), last.is_empty()) {
        // bytes=-N: the last N bytes.
        (true, false) => {
            let n = number(last).ok_or_else(malformed)?;
            if n == 0 || len == 0 {
                return Err(unsatisfiable());
            }
            (len - n.min(len), len - 1)
        }
        // bytes=A-: from A to the end.
        (false, true) => {
            let a = number(first).ok_or_else(malformed)?;
            if a >= len {
                return Err(unsatisfiable());
            }
            (a, len - 1)
        }
        (false, false) => {
            let (a, b) = (
                number(first).ok_or_else(malformed)?,
                number(last).ok_or_else(malformed)?,
            );
            if b < a {
                return Err(malformed());
            }
            if a >= len {
                return Err(unsatisfiable());
            }
            (a, b.min(len - 1))
        }
        (true, true) => return Err(malformed()),
    };
    Ok(RangeRead::Part { start, end })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        use RangeRead::*;
        let ok = |v: &str, len| parse_range(Some(v), len);
        assert_eq!(parse_range(None, 10), Ok(Whole));
        assert_eq!(ok("bytes=0-9", 10), Ok(Part { start: 0, end: 9 }));
        assert_eq!(ok("bytes=2-4", 10), Ok(Part { start: 2, end: 4 }));
        assert_eq!(ok("bytes=5-", 10), Ok(Part { start: 5, end: 9 }));
        assert_eq!(ok("bytes=-3", 10), Ok(Part { start: 7, end: 9 }));
        assert_eq!(ok("bytes=-30", 10), Ok(Part { start: 0, end: 9 }));
        // The end is clamped to the object, as RFC 9110 asks.
        assert_eq!(ok("bytes=8-1000", 10), Ok(Part { start: 8, end: 9 }));
        assert_eq!(
            ok("bytes=0-18446744073709551615", 10),
            Ok(Part { start: 0, end: 9 })
        );
        for bad in [
            "bytes=",
            "bytes=-",
            "bytes=4-2",
            "bytes=a-b",
            "bytes=+1-2",
            "bytes=1-2,4-5",
            "items=0-1",
            "bytes=0-99999999999999999999999",
            "bytes=1 - 2",
        ] {
            assert!(
                matches!(ok(bad, 10), Err(RangeError::Malformed(_))),
                "{bad}"
            );
        }
        for outside in [
            "bytes=10-20",
            "bytes=10-",
            "bytes=-0",
            "bytes=18446744073709551615-",
        ] {
            assert!(
                matches!(ok(outside, 10), Err(RangeError::Unsatisfiable { .. })),
                "{outside}"
            );
        }
        assert!(matches!(
            ok("bytes=0-0", 0),
            Err(RangeError::Unsatisfiable { .. })
        ));
        assert!(matches!(
            ok(&format!("bytes=0-{}", "9".repeat(100)), 10),
            Err(RangeError::Malformed(_))
        ));
    }
}
