//! Dirty extents: the byte ranges of a disk that changed since a parent backup.
//!
//! An incremental backup reads only these ranges and takes everything else from the
//! parent recovery point, so the set must never miss a change. It comes from a QEMU
//! dirty bitmap or from a file an operator provides (see [`DirtyExtents::load`]).

use std::fmt::Write as _;
use std::path::Path;

use serde_json::Value;

use crate::{Error, Result};

/// A normalized set of byte ranges: sorted, non-overlapping, and with touching ranges
/// merged, so that membership queries are a binary search and the ranges can be
/// handed to a reader as they are.
///
/// Ranges are half-open (`offset .. offset + len`). Ranges whose end would exceed
/// `u64::MAX` are cut at `u64::MAX`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirtyExtents {
    /// `(start, end)` with `start < end`, sorted, and `ranges[i].1 < ranges[i + 1].0`.
    ranges: Vec<(u64, u64)>,
}

impl DirtyExtents {
    /// An empty set: nothing changed (yet). Ranges are added with [`Self::insert`].
    pub fn new() -> DirtyExtents {
        DirtyExtents::default()
    }

    /// Builds the set from `(offset, len)` pairs in any order, overlapping or not.
    ///
    /// Sorts once and merges, which is much cheaper than inserting one by one when a
    /// dirty bitmap yields hundreds of thousands of ranges.
    pub fn from_ranges<I: IntoIterator<Item = (u64, u64)>>(ranges: I) -> DirtyExtents {
        let mut v: Vec<(u64, u64)> = ranges
            .into_iter()
            .filter(|&(_, len)| len > 0)
            .map(|(off, len)| (off, off.saturating_add(len)))
            .collect();
        v.sort_unstable();
        let mut out: Vec<(u64, u64)> = Vec::with_capacity(v.len());
        for (start, end) in v {
            match out.last_mut() {
                Some(last) if start <= last.1 => last.1 = last.1.max(end),
                _ => out.push((start, end)),
            }
        }
        DirtyExtents { ranges: out }
    }

    /// Marks `offset .. offset + len` as changed, merging it with every range it
    /// overlaps or touches. An empty range changes nothing.
    pub fn insert(&mut self, offset: u64, len: u64) {
        if len == 0 {
            return;
        }
        let (mut start, mut end) = (offset, offset.saturating_add(len));
        // First range that overlaps or touches the new one (its end reaches `start`)...
        let i = self.ranges.partition_point(|r| r.1 < start);
        // ...and the first one after it that starts past `end` (does not touch).
        let j = i + self.ranges[i..].partition_point(|r| r.0 <= end);
        if i < j {
            start = start.min(self.ranges[i].0);
            end = end.max(self.ranges[j - 1].1);
        }
        self.ranges.splice(i..j, [(start, end)]);
    }

    /// The ranges as `(offset, len)`, in ascending order, non-overlapping and
    /// non-touching.
    pub fn iter(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.ranges.iter().map(|&(start, end)| (start, end - start))
    }

    /// Whether any byte of `offset .. offset + len` changed, i.e. whether a chunk must
    /// be read again rather than taken from the parent backup. `O(log n)`: it is asked
    /// for every chunk of a disk. An empty range intersects nothing.
    pub fn intersects(&self, offset: u64, len: u64) -> bool {
        if len == 0 {
            return false;
        }
        let end = offset.saturating_add(len);
        // The first range that ends after `offset`; it intersects iff it starts before `end`.
        let i = self.ranges.partition_point(|r| r.1 <= offset);
        self.ranges.get(i).is_some_and(|r| r.0 < end)
    }

    /// The number of changed bytes, for progress estimates and reports.
    pub fn total_bytes(&self) -> u64 {
        self.ranges.iter().map(|&(start, end)| end - start).sum()
    }

    /// The number of (merged) ranges.
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Drops everything at or past `size`: a bitmap or file may cover more than the
    /// disk (granularity rounding, a shrunk disk), and reading past the end is an error.
    pub fn clamp(&mut self, size: u64) {
        let keep = self.ranges.partition_point(|r| r.0 < size);
        self.ranges.truncate(keep);
        if let Some(last) = self.ranges.last_mut() {
            last.1 = last.1.min(size);
        }
    }

    /// Reads a dirty extents file an operator (or a script) provides.
    ///
    /// Two formats are accepted, told apart by the first non-space character:
    ///
    /// - Text: one extent per line, `OFFSET LENGTH` in bytes, each decimal or `0x`-hex.
    ///   `#` starts a comment; blank lines are ignored.
    /// - JSON (starts with `[`): an array of objects with `start` and `length`, which
    ///   is also what `qemu-img map --output=json` prints for an overlay whose backing
    ///   file is the parent's state. Entries with `"depth"` of 1 or more come from the
    ///   backing file and are not dirty; all others are, zeroed ones included (a region
    ///   zeroed since the parent has changed, and must not restore the parent's bytes).
    ///   Other fields are ignored.
    ///
    /// Zero-length extents are accepted and ignored. Errors name the line or entry and
    /// what is wrong with it.
    pub fn load(path: &Path) -> Result<DirtyExtents> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Open {
            path: path.display().to_string(),
            source,
        })?;
        let parsed = if text.trim_start().starts_with('[') {
            parse_json(&text)
        } else {
            parse_text(&text)
        };
        parsed.map_err(|reason| Error::DirtyExtentsFile {
            path: path.display().to_string(),
            reason,
        })
    }

    /// Writes the set in the text form [`Self::load`] reads, so a computed set can be
    /// inspected, edited and fed back.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut out = String::from("# Tresor dirty extents: OFFSET LENGTH (bytes)\n");
        for (off, len) in self.iter() {
            // Writing to a String cannot fail.
            let _ = writeln!(out, "{off} {len}");
        }
        std::fs::write(path, out).map_err(|source| Error::Write {
            path: path.display().to_string(),
            source,
        })
    }
}

impl FromIterator<(u64, u64)> for DirtyExtents {
    /// Same as [`DirtyExtents::from_ranges`], so `(offset, len)` iterators can `collect()`.
    fn from_iter<I: IntoIterator<Item = (u64, u64)>>(iter: I) -> Self {
        DirtyExtents::from_ranges(iter)
    }
}

/// Parses a decimal or `0x`-hex byte count.
fn parse_number(s: &str) -> Option<u64> {
    if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        // from_str_radix would accept a sign; a sign here is a typo.
        if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u64::from_str_radix(hex, 16).ok()
    } else {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    }
}

/// Describes why `s` is not a byte count (bad syntax or too big).
fn number_error(what: &str, s: &str) -> String {
    let digits_ok = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()),
        None => !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()),
    };
    if digits_ok {
        format!("{what} `{s}` does not fit in 64 bits")
    } else {
        format!("{what} `{s}` is not a decimal or 0x-hex number")
    }
}

fn parse_text(text: &str) -> std::result::Result<DirtyExtents, String> {
    let mut ranges = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let content = line.split('#').next().unwrap_or("").trim();
        if content.is_empty() {
            continue;
        }
        let fields: Vec<&str> = content.split_whitespace().collect();
        let [off, len] = fields[..] else {
            return Err(format!(
                "line {n}: expected 2 fields `OFFSET LENGTH`, found {} in `{content}`",
                fields.len()
            ));
        };
        let offset = parse_number(off)
            .ok_or_else(|| format!("line {n}: {}", number_error("offset", off)))?;
        let length = parse_number(len)
            .ok_or_else(|| format!("line {n}: {}", number_error("length", len)))?;
        if offset.checked_add(length).is_none() {
            return Err(format!(
                "line {n}: offset {offset} + length {length} overflows 64 bits"
            ));
        }
        ranges.push((offset, length));
    }
    Ok(DirtyExtents::from_ranges(ranges))
}

fn parse_json(text: &str) -> std::result::Result<DirtyExtents, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?;
    let Value::Array(entries) = value else {
        return Err("the JSON is not an array".to_string());
    };
    let mut ranges = Vec::with_capacity(entries.len());
    for (i, entry) in entries.iter().enumerate() {
        let at = || format!("entry {i} (counting from 0)");
        let Value::Object(obj) = entry else {
            return Err(format!("{}: expected an object, found `{entry}`", at()));
        };
        let number = |key: &str| -> std::result::Result<u64, String> {
            match obj.get(key) {
                None => Err(format!("{}: missing \"{key}\"", at())),
                Some(v) => v.as_u64().ok_or_else(|| {
                    format!(
                        "{}: \"{key}\" must be a non-negative integer, found `{v}`",
                        at()
                    )
                }),
            }
        };
        let number_opt = |key: &str| -> std::result::Result<Option<u64>, String> {
            if obj.contains_key(key) {
                number(key).map(Some)
            } else {
                Ok(None)
            }
        };
        let flag = |key: &str| -> std::result::Result<Option<bool>, String> {
            match obj.get(key) {
                None => Ok(None),
                Some(Value::Bool(b)) => Ok(Some(*b)),
                Some(v) => Err(format!(
                    "{}: \"{key}\" must be true or false, found `{v}`",
                    at()
                )),
            }
        };
        let start = number("start")?;
        let length = number("length")?;
        if start.checked_add(length).is_none() {
            return Err(format!(
                "{}: start {start} + length {length} overflows 64 bits",
                at()
            ));
        }
        // Validated for clear errors on malformed maps, but they do not decide
        // dirtiness: a zeroed or discarded region in the top layer has changed.
        flag("data")?;
        flag("zero")?;
        if number_opt("depth")?.unwrap_or(0) > 0 {
            continue;
        }
        ranges.push((start, length));
    }
    Ok(DirtyExtents::from_ranges(ranges))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ranges: &[(u64, u64)]) -> Vec<(u64, u64)> {
        let mut d = DirtyExtents::new();
        for &(o, l) in ranges {
            d.insert(o, l);
        }
        let v: Vec<_> = d.iter().collect();
        assert_eq!(
            DirtyExtents::from_ranges(ranges.iter().copied()),
            d,
            "from_ranges != insert"
        );
        v
    }

    #[test]
    fn insert_merges() {
        assert_eq!(set(&[]), []);
        assert_eq!(set(&[(10, 0)]), []);
        assert_eq!(set(&[(10, 5)]), [(10, 5)]);
        // disjoint, out of order
        assert_eq!(set(&[(100, 10), (10, 5)]), [(10, 5), (100, 10)]);
        // touching on either side merges
        assert_eq!(set(&[(10, 5), (15, 5)]), [(10, 10)]);
        assert_eq!(set(&[(15, 5), (10, 5)]), [(10, 10)]);
        // overlapping
        assert_eq!(set(&[(10, 10), (15, 10)]), [(10, 15)]);
        // contained
        assert_eq!(set(&[(10, 100), (20, 5)]), [(10, 100)]);
        // one range bridging and swallowing several
        assert_eq!(
            set(&[(0, 1), (10, 1), (20, 1), (30, 1), (40, 1), (5, 26)]),
            [(0, 1), (5, 26), (40, 1)]
        );
        // a gap of one byte is kept
        assert_eq!(set(&[(0, 10), (11, 10)]), [(0, 10), (11, 10)]);
        // saturation at the top of the address space
        assert_eq!(set(&[(u64::MAX - 5, 100)]), [(u64::MAX - 5, 5)]);
    }

    #[test]
    fn counts_and_clamp() {
        let mut d = DirtyExtents::from_ranges([(0, 10), (100, 50), (1000, 1000)]);
        assert_eq!((d.len(), d.total_bytes(), d.is_empty()), (3, 1060, false));
        d.clamp(1500);
        assert_eq!(
            d.iter().collect::<Vec<_>>(),
            [(0, 10), (100, 50), (1000, 500)]
        );
        d.clamp(1000);
        assert_eq!(d.iter().collect::<Vec<_>>(), [(0, 10), (100, 50)]);
        d.clamp(120);
        assert_eq!(d.iter().collect::<Vec<_>>(), [(0, 10), (100, 20)]);
        d.clamp(100);
        assert_eq!(d.iter().collect::<Vec<_>>(), [(0, 10)]);
        d.clamp(0);
        assert!(d.is_empty());
        assert_eq!((d.len(), d.total_bytes()), (0, 0));
    }

    #[test]
    fn intersects_boundaries() {
        let d = DirtyExtents::from_ranges([(100, 50), (300, 1)]);
        assert!(!d.intersects(0, 100)); // ends where the range starts
        assert!(d.intersects(0, 101));
        assert!(d.intersects(149, 1));
        assert!(!d.intersects(150, 150)); // starts where it ends, ends where the next starts
        assert!(d.intersects(150, 151));
        assert!(d.intersects(120, 5)); // inside
        assert!(d.intersects(0, 1000)); // around
        assert!(!d.intersects(301, u64::MAX));
        assert!(!d.intersects(120, 0)); // empty
        assert!(!DirtyExtents::new().intersects(0, u64::MAX));
    }

    /// Compares insert, from_ranges, intersects and total_bytes with a bitmap model.
    #[test]
    fn matches_a_bitmap_model() {
        const N: usize = 512;
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _round in 0..200 {
            let mut model = [false; N];
            let mut d = DirtyExtents::new();
            let mut pairs = Vec::new();
            for _ in 0..next() % 12 {
                let off = next() % N as u64;
                let len = next() % 40 % (N as u64 - off);
                model[off as usize..(off + len) as usize].fill(true);
                d.insert(off, len);
                pairs.push((off, len));
            }
            assert_eq!(DirtyExtents::from_ranges(pairs), d);
            // Normalized: sorted, non-touching, non-empty.
            let v: Vec<_> = d.iter().collect();
            assert!(v.iter().all(|&(_, l)| l > 0));
            assert!(v.windows(2).all(|w| w[0].0 + w[0].1 < w[1].0), "{v:?}");
            let mut rebuilt = [false; N];
            for (o, l) in v {
                rebuilt[o as usize..(o + l) as usize].fill(true);
            }
            assert_eq!(rebuilt, model);
            assert_eq!(d.total_bytes(), model.iter().filter(|&&b| b).count() as u64);
            for _ in 0..50 {
                let off = next() % N as u64;
                let len = next() % 64 % (N as u64 - off + 1);
                let expect = model[off as usize..(off + len) as usize].iter().any(|&b| b);
                assert_eq!(d.intersects(off, len), expect, "{off}+{len} in {d:?}");
            }
        }
    }

    fn load_str(content: &str) -> Result<DirtyExtents> {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), content).unwrap();
        DirtyExtents::load(f.path())
    }

    /// The `reason` of a load error, checking the error names the file.
    fn load_err(content: &str) -> String {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), content).unwrap();
        match DirtyExtents::load(f.path()) {
            Err(e @ Error::DirtyExtentsFile { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains(&f.path().display().to_string()), "{msg}");
                let Error::DirtyExtentsFile { reason, .. } = e else {
                    unreachable!()
                };
                reason
            }
            other => panic!("expected DirtyExtentsFile error for {content:?}, got {other:?}"),
        }
    }

    #[test]
    fn text_format() {
        let d = load_str(
            "# changed since yesterday\n\
             \n\
             0 4096\n\
             \t0x10000   0x1000   # hex, with a comment\r\n\
             4096 100\n\
             0X20000 0x0\n\
             \x20  # indented comment\n\
             1048576 65536",
        )
        .unwrap();
        assert_eq!(
            d.iter().collect::<Vec<_>>(),
            [(0, 4196), (65536, 4096), (1048576, 65536)]
        );

        assert!(load_str("").unwrap().is_empty());
        assert!(load_str("# nothing\n\n").unwrap().is_empty());
    }

    #[test]
    fn text_format_errors() {
        let cases = [
            (
                "0 10\n5\n",
                "line 2: expected 2 fields `OFFSET LENGTH`, found 1 in `5`",
            ),
            (
                "0 10 20\n",
                "line 1: expected 2 fields `OFFSET LENGTH`, found 3",
            ),
            (
                "# c\n\nabc 10\n",
                "line 3: offset `abc` is not a decimal or 0x-hex number",
            ),
            (
                "0 ten\n",
                "line 1: length `ten` is not a decimal or 0x-hex number",
            ),
            ("0x 10\n", "line 1: offset `0x` is not"),
            ("0xg1 10\n", "line 1: offset `0xg1` is not"),
            ("-5 10\n", "line 1: offset `-5` is not"),
            ("+5 10\n", "line 1: offset `+5` is not"),
            ("0x+5 10\n", "line 1: offset `0x+5` is not"),
            ("1.5 10\n", "line 1: offset `1.5` is not"),
            ("0,10\n", "line 1: expected 2 fields"),
            (
                "0 18446744073709551616\n",
                "line 1: length `18446744073709551616` does not fit in 64 bits",
            ),
            (
                "0x10000000000000000 1\n",
                "line 1: offset `0x10000000000000000` does not fit",
            ),
            (
                "18446744073709551615 1\n",
                "line 1: offset 18446744073709551615 + length 1 overflows",
            ),
        ];
        for (input, expect) in cases {
            let reason = load_err(input);
            assert!(
                reason.starts_with(expect),
                "input {input:?}: got {reason:?}, expected {expect:?}"
            );
        }
    }

    #[test]
    fn json_qemu_img_map() {
        // Shape of `qemu-img map --output=json` on a qcow2 with a backing file.
        let map = r#"
        [{ "start": 0, "length": 65536, "depth": 0, "present": true, "zero": false, "data": true, "compressed": false, "offset": 327680},
        { "start": 65536, "length": 131072, "depth": 1, "present": false, "zero": true, "data": false, "compressed": false},
        { "start": 196608, "length": 65536, "depth": 0, "present": true, "zero": true, "data": false, "compressed": false},
        { "start": 262144, "length": 65536, "depth": 0, "present": true, "zero": false, "data": true, "compressed": false, "offset": 393216},
        { "start": 327680, "length": 4096, "depth": 0, "present": true, "zero": false, "data": true, "compressed": false, "offset": 458752},
        { "start": 1048576, "length": 1048576, "depth": 0, "present": true, "zero": true, "data": true, "compressed": false, "offset": 1000000}
        ]
        "#;
        let d = load_str(map).unwrap();
        assert_eq!(
            d.iter().collect::<Vec<_>>(),
            [
                (0, 65536),
                (196608, 65536 + 65536 + 4096),
                (1048576, 1048576)
            ]
        );

        // Plain {start, length} objects, unordered and overlapping; no flags means dirty.
        let d = load_str(r#"[{"start": 100, "length": 10}, {"start": 0, "length": 105}, {"start": 500, "length": 0}]"#)
            .unwrap();
        assert_eq!(d.iter().collect::<Vec<_>>(), [(0, 110)]);
        assert!(load_str("  \n[]").unwrap().is_empty());
    }

    #[test]
    fn json_errors() {
        let cases = [
            (
                r#"[{"start": 0}]"#,
                r#"entry 0 (counting from 0): missing "length""#,
            ),
            (
                r#"[{"start": 0, "length": 1}, {"length": 1}]"#,
                r#"entry 1 (counting from 0): missing "start""#,
            ),
            (
                r#"[{"start": -1, "length": 1}]"#,
                r#"entry 0 (counting from 0): "start" must be a non-negative integer, found `-1`"#,
            ),
            (
                r#"[{"start": 0, "length": "1"}]"#,
                r#"entry 0 (counting from 0): "length" must be a non-negative integer, found `"1"`"#,
            ),
            (
                r#"[{"start": 0.5, "length": 1}]"#,
                r#"entry 0 (counting from 0): "start" must be"#,
            ),
            (
                r#"[{"start": 0, "length": 1, "data": "no"}]"#,
                r#"entry 0 (counting from 0): "data" must be true or false"#,
            ),
            (
                r#"[{"start": 0, "length": 1, "zero": 1}]"#,
                r#"entry 0 (counting from 0): "zero" must be true or false"#,
            ),
            (
                r#"[[0, 1]]"#,
                "entry 0 (counting from 0): expected an object, found `[0,1]`",
            ),
            (
                r#"[{"start": 18446744073709551615, "length": 2}]"#,
                "entry 0 (counting from 0): start 18446744073709551615 + length 2 overflows",
            ),
            (r#"[{"start": 0, "length": 1},]"#, "invalid JSON: "),
            ("[", "invalid JSON: "),
        ];
        for (input, expect) in cases {
            let reason = load_err(input);
            assert!(
                reason.starts_with(expect),
                "input {input:?}: got {reason:?}, expected {expect:?}"
            );
        }
        // Not starting with `[` means text, and JSON objects are not valid text.
        assert!(load_err(r#"{"start": 0, "length": 1}"#).starts_with("line 1: expected 2 fields"));
    }

    #[test]
    fn error_messages_and_missing_file() {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), "0 x\n").unwrap();
        let msg = DirtyExtents::load(f.path()).unwrap_err().to_string();
        assert!(
            msg.contains("line 1: length `x` is not a decimal or 0x-hex number"),
            "{msg}"
        );
        assert!(msg.contains("Expected one extent per line"), "{msg}");

        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none.txt");
        assert!(matches!(
            DirtyExtents::load(&missing),
            Err(Error::Open { .. })
        ));
    }

    #[test]
    fn save_load_roundtrip() {
        let d = DirtyExtents::from_ranges([
            (0, 1),
            (4096, 65536),
            (1 << 40, 12345),
            (u64::MAX - 10, 10),
        ]);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("dirty.txt");
        d.save(&p).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.starts_with('#'), "{text}");
        assert!(text.contains("\n4096 65536\n"), "{text}");
        let back = DirtyExtents::load(&p).unwrap();
        assert_eq!(back, d);
        assert_eq!(back.len(), 4);

        // Saving into a missing directory reports the path.
        let bad = dir.path().join("no/such/dir.txt");
        match d.save(&bad) {
            Err(Error::Write { path, .. }) => assert_eq!(path, bad.display().to_string()),
            other => panic!("expected Write error, got {other:?}"),
        }

        let collected: DirtyExtents = d.iter().collect();
        assert_eq!(collected, d);
    }
}
