//! The audit log's hash chain: how an entry is encoded and hashed, and walking a log
//! to find the first entry that does not fit (FORMAT.md, appendix "Audit log").
//!
//! Each entry's hash covers its fields and the hash of the entry before it, so an
//! entry altered, removed, inserted or moved in the middle of the log breaks the
//! chain at that entry or the next. (Removing entries from the end leaves a shorter
//! chain that still holds: [`Verification`] gives the last hash, for keeping
//! elsewhere and comparing later.)
//!
//! Pure: no database, no clock.

use ring::digest;

use crate::{AuditRow, NewAudit};

/// The version of the encoding; written into every hashed entry.
pub const AUDIT_ENCODING_VERSION: u8 = 1;

/// What every encoded entry begins with (length-prefixed like the fields): hashes of
/// audit entries are never hashes of anything else. Never change.
pub const AUDIT_DOMAIN: &[u8] = b"tresor-audit-entry";

/// The `prev_hash` of the first entry.
pub const GENESIS: [u8; 32] = [0u8; 32];

/// An entry's fields, as they are hashed.
#[derive(Debug, Clone, Copy)]
pub struct AuditFields<'a> {
    pub seq: u64,
    /// Milliseconds since the Unix epoch (the catalogue's precision).
    pub time_ms: i64,
    pub actor_kind: &'a str,
    pub actor: &'a str,
    pub origin: &'a str,
    pub vault: &'a str,
    pub action: &'a str,
    pub object: &'a str,
    pub result: &'a str,
    pub detail: &'a str,
    pub prev_hash: &'a [u8; 32],
}

impl<'a> AuditFields<'a> {
    pub fn of(row: &'a AuditRow) -> AuditFields<'a> {
        AuditFields {
            seq: row.seq,
            time_ms: row.time.as_millisecond(),
            actor_kind: &row.actor_kind,
            actor: &row.actor,
            origin: &row.origin,
            vault: &row.vault,
            action: &row.action,
            object: &row.object,
            result: &row.result,
            detail: &row.detail,
            prev_hash: &row.prev_hash,
        }
    }
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    // Fields are short (the service bounds them); a length beyond u32 cannot be
    // written by it, and would be cut here only with its length saying so.
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

/// The canonical encoding (version 1):
///
/// ```text
/// u32 len || "tresor-audit-entry"
/// u8  version (1)
/// u64 seq
/// i64 time (ms since the epoch)
/// then, each as u32 len || UTF-8 bytes:
///     actor_kind, actor, origin, vault, action, object, result, detail
/// 32  prev_hash
/// ```
///
/// Integers little-endian.
pub fn encode(f: &AuditFields) -> Vec<u8> {
    let mut out =
        Vec::with_capacity(128 + f.actor.len() + f.object.len() + f.detail.len() + f.action.len());
    put_bytes(&mut out, AUDIT_DOMAIN);
    out.push(AUDIT_ENCODING_VERSION);
    out.extend_from_slice(&f.seq.to_le_bytes());
    out.extend_from_slice(&f.time_ms.to_le_bytes());
    for s in [
        f.actor_kind,
        f.actor,
        f.origin,
        f.vault,
        f.action,
        f.object,
        f.result,
        f.detail,
    ] {
        put_bytes(&mut out, s.as_bytes());
    }
    out.extend_from_slice(f.prev_hash);
    out
}

/// SHA-256 of the encoding.
pub fn entry_hash(f: &AuditFields) -> [u8; 32] {
    let d = digest::digest(&digest::SHA256, &encode(f));
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Why an entry does not fit the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Break {
    /// Its hash is not the hash of its fields: it was altered.
    Hash,
    /// Its `prev_hash` is not the previous entry's hash: an entry before it was
    /// removed, inserted or moved, or this one was.
    Link,
    /// Its seq does not follow the previous one's (`expected`): entries are missing.
    Gap { expected: u64 },
}

impl std::fmt::Display for Break {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Break::Hash => write!(f, "its hash does not match its contents (altered)"),
            Break::Link => write!(
                f,
                "it does not link to the entry before it (an entry was removed, inserted or moved)"
            ),
            Break::Gap { expected } => write!(
                f,
                "seq {expected} is missing before it (entries were removed)"
            ),
        }
    }
}

/// What walking a log found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    /// Entries that were checked (up to and including a broken one).
    pub entries: u64,
    /// The last entry that fits and its hash (none for an empty log or when the
    /// first entry is broken).
    pub last_good: Option<(u64, [u8; 32])>,
    /// The first entry that does not fit, and why.
    pub broken: Option<(u64, Break)>,
}

/// Walks a log in seq order, entry by entry (a log is read in pages).
#[derive(Debug, Clone)]
pub struct ChainCheck {
    expected_seq: u64,
    prev: [u8; 32],
    v: Verification,
}

impl Default for ChainCheck {
    fn default() -> Self {
        ChainCheck {
            expected_seq: 1,
            prev: GENESIS,
            v: Verification {
                entries: 0,
                last_good: None,
                broken: None,
            },
        }
    }
}

impl ChainCheck {
    /// Checks the next entry; false once the chain is broken (the rest is not read).
    pub fn push(&mut self, row: &AuditRow) -> bool {
        if self.v.broken.is_some() {
            return false;
        }
        self.v.entries += 1;
        let why = if row.seq != self.expected_seq {
            Some(Break::Gap {
                expected: self.expected_seq,
            })
        } else if entry_hash(&AuditFields::of(row)) != row.hash {
            Some(Break::Hash)
        } else if row.prev_hash != self.prev {
            Some(Break::Link)
        } else {
            None
        };
        match why {
            Some(b) => {
                self.v.broken = Some((row.seq, b));
                false
            }
            None => {
                self.expected_seq = row.seq + 1;
                self.prev = row.hash;
                self.v.last_good = Some((row.seq, row.hash));
                true
            }
        }
    }

    /// The seq to read from next.
    pub fn next_seq(&self) -> u64 {
        self.expected_seq
    }

    pub fn finish(self) -> Verification {
        self.v
    }
}

/// Checks a whole log given in seq order.
pub fn verify_chain<'a>(rows: impl IntoIterator<Item = &'a AuditRow>) -> Verification {
    let mut c = ChainCheck::default();
    for r in rows {
        if !c.push(r) {
            break;
        }
    }
    c.finish()
}

/// Links a new entry to the log whose last hash is `prev` (`GENESIS` for the first):
/// sets its seq, prev_hash and hash. What a store does inside the transaction that
/// inserts it.
pub fn chain(entry: &NewAudit, seq: u64, prev: [u8; 32]) -> AuditRow {
    let mut row = AuditRow {
        seq,
        time: entry.time,
        actor_kind: entry.actor_kind.clone(),
        actor: entry.actor.clone(),
        origin: entry.origin.clone(),
        vault: entry.vault.clone(),
        action: entry.action.clone(),
        object: entry.object.clone(),
        result: entry.result.clone(),
        detail: entry.detail.clone(),
        prev_hash: prev,
        hash: [0; 32],
    };
    // The time as stored: milliseconds (what is hashed is what is read back).
    if let Ok(t) = jiff::Timestamp::from_millisecond(row.time.as_millisecond()) {
        row.time = t;
    }
    row.hash = entry_hash(&AuditFields::of(&row));
    row
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(action: &str, object: &str) -> NewAudit {
        NewAudit {
            time: "2026-03-01T10:00:00.123Z".parse().unwrap(),
            actor_kind: "admin".into(),
            actor: "admin".into(),
            origin: "192.0.2.7".into(),
            vault: "v1".into(),
            action: action.into(),
            object: object.into(),
            result: "Succeeded".into(),
            detail: String::new(),
        }
    }

    fn log(n: u64) -> Vec<AuditRow> {
        let mut prev = GENESIS;
        (1..=n)
            .map(|seq| {
                let r = chain(&entry("vault.create", &format!("v{seq}")), seq, prev);
                prev = r.hash;
                r
            })
            .collect()
    }

    #[test]
    fn encoding_is_byte_exact() {
        let prev = [0xabu8; 32];
        let f = AuditFields {
            seq: 2,
            time_ms: 1000,
            actor_kind: "admin",
            actor: "ops",
            origin: "::1",
            vault: "",
            action: "token.delete",
            object: "t1",
            result: "Succeeded",
            detail: "x",
            prev_hash: &prev,
        };
        let mut want = Vec::new();
        want.extend_from_slice(&[18, 0, 0, 0]);
        want.extend_from_slice(b"tresor-audit-entry");
        want.push(1);
        want.extend_from_slice(&[2, 0, 0, 0, 0, 0, 0, 0]);
        want.extend_from_slice(&[0xe8, 3, 0, 0, 0, 0, 0, 0]);
        for s in [
            "admin",
            "ops",
            "::1",
            "",
            "token.delete",
            "t1",
            "Succeeded",
            "x",
        ] {
            want.extend_from_slice(&(s.len() as u32).to_le_bytes());
            want.extend_from_slice(s.as_bytes());
        }
        want.extend_from_slice(&prev);
        assert_eq!(encode(&f), want);
        // Golden: changing the encoding changes every hash ever written.
        assert_eq!(
            hex(&entry_hash(&f)),
            hex(&{
                let d = digest::digest(&digest::SHA256, &want);
                let mut o = [0u8; 32];
                o.copy_from_slice(d.as_ref());
                o
            })
        );
        // Lengths keep fields apart: moving a byte between two fields changes the hash.
        let g = AuditFields {
            actor_kind: "admino",
            actor: "ps",
            ..f
        };
        assert_ne!(entry_hash(&f), entry_hash(&g));
        // Negative times (before 1970) encode as two's complement.
        let h = AuditFields { time_ms: -1, ..f };
        assert_eq!(&encode(&h)[31..39], &[0xff; 8]);
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn a_whole_log_verifies() {
        let l = log(5);
        assert_eq!(l[0].prev_hash, GENESIS);
        let v = verify_chain(&l);
        assert_eq!(v.entries, 5);
        assert_eq!(v.broken, None);
        assert_eq!(v.last_good, Some((5, l[4].hash)));
        let empty = verify_chain(&[]);
        assert_eq!(
            (empty.entries, empty.last_good, empty.broken),
            (0, None, None)
        );
    }

    #[test]
    fn an_altered_field_is_found() {
        for field in 0..9 {
            let mut l = log(4);
            let r = &mut l[2];
            match field {
                0 => r.object = "other".into(),
                1 => r.actor = "mallory".into(),
                2 => r.actor_kind = "agent".into(),
                3 => r.origin = "10.0.0.1".into(),
                4 => r.action = "vault.update".into(),
                5 => r.result = "Forbidden".into(),
                6 => r.detail = "x".into(),
                7 => r.vault = "v2".into(),
                _ => r.time = "2027-01-01T00:00:00Z".parse().unwrap(),
            }
            assert_eq!(
                verify_chain(&l).broken,
                Some((3, Break::Hash)),
                "field {field}"
            );
        }
        // Altered and re-hashed: the next entry's link breaks.
        let mut l = log(4);
        l[1].object = "other".into();
        l[1].hash = entry_hash(&AuditFields::of(&l[1]));
        assert_eq!(verify_chain(&l).broken, Some((3, Break::Link)));
        // The last entry altered and re-hashed cannot be told from a real one: the
        // last hash, kept elsewhere, shows it.
        let mut l = log(4);
        let before = verify_chain(&l).last_good;
        l[3].object = "other".into();
        l[3].hash = entry_hash(&AuditFields::of(&l[3]));
        assert_ne!(verify_chain(&l).last_good, before);
    }

    #[test]
    fn a_removed_entry_is_found() {
        let mut l = log(5);
        l.remove(2);
        let v = verify_chain(&l);
        assert_eq!(v.broken, Some((4, Break::Gap { expected: 3 })));
        assert_eq!(v.last_good.map(|g| g.0), Some(2));
        // The first removed.
        let mut l = log(3);
        l.remove(0);
        assert_eq!(
            verify_chain(&l).broken,
            Some((2, Break::Gap { expected: 1 }))
        );
        // Removed and the later ones renumbered (and re-hashed): the link breaks.
        let mut l = log(5);
        l.remove(2);
        for (i, r) in l.iter_mut().enumerate().skip(2) {
            r.seq = i as u64 + 1;
            r.hash = entry_hash(&AuditFields::of(r));
        }
        assert_eq!(verify_chain(&l).broken, Some((3, Break::Link)));
    }

    #[test]
    fn swapped_entries_are_found() {
        // Two entries' contents swapped, each keeping its seq.
        let mut l = log(5);
        let (a, b) = (l[1].clone(), l[2].clone());
        l[1] = AuditRow { seq: 2, ..b };
        l[2] = AuditRow { seq: 3, ..a };
        assert_eq!(verify_chain(&l).broken, Some((2, Break::Hash)));
        // Swapped with their seqs (read in seq order, that is the same log); swapped
        // and re-hashed under the new seqs: the links break.
        let mut l = log(5);
        l.swap(1, 2);
        l[1].seq = 2;
        l[2].seq = 3;
        for r in &mut l[1..3] {
            r.hash = entry_hash(&AuditFields::of(r));
        }
        assert_eq!(verify_chain(&l).broken, Some((2, Break::Link)));
    }
}
