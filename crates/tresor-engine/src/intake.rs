//! Intake: what a vault server checks before it stores, or relies on, an object that an
//! untrusted writer (a host agent) uploaded.
//!
//! An agent holds its repository's key, so it can seal anything: an authentication tag
//! proves only that *some* key holder made the bytes. What keeps a compromised host from
//! destroying the points already stored is that the server accepts only objects that
//! are exactly what they claim to be:
//!
//! - a **pack** is accepted when its name is the hash of its bytes, its trailer opens,
//!   its blobs lie back to back from the header to the trailer with no gap, overlap or
//!   duplicate, and every blob authenticates; a blob whose id the repository already
//!   holds, and every tree node, also decompresses to its recorded length and hashes to
//!   its id (tree nodes also decode). So every second copy of a stored blob is a
//!   genuine copy: no upload can shadow a stored blob with other bytes under its id,
//!   and what stored points reference stays what it was. (A new data blob is only
//!   authenticated: nothing stored references it yet; see `check_pack`.)
//! - an **index file** is accepted when every pack it names is stored and the entries it
//!   lists for that pack are exactly the pack's own (authenticated) trailer. An index
//!   can therefore never claim a blob is somewhere it is not, nor leave part of a pack out.
//! - a **manifest** is accepted on upload when it opens under its name; it becomes a
//!   recovery point only through [`check_point`]: every tree node it reaches is read and
//!   checked, and every chunk is listed by the index as data.
//!
//! Packs are immutable once stored (uploads are create-only), so what was checked at
//! upload stays true; the index files that list them can be re-checked at any time.
//! Garbage collection decides liveness from the points the server itself accepted (see
//! `gc::GcOptions::points`), never from a listing of what agents wrote.

use std::collections::HashSet;

use tresor_format::blob::{blob_aad, open_blob, BlobKind, Compression};
use tresor_format::index::IndexFile;
pub use tresor_format::manifest::is_point_id;
use tresor_format::manifest::Manifest;
use tresor_format::pack::{
    decode_footer, decode_trailer, pack_name, read_pack_entries, PackEntry, PACK_FOOTER_LEN,
    PACK_HEADER_LEN,
};
use tresor_format::tree::{TreeNode, TREE_HEADER_LEN};
use tresor_format::ChunkId;
use tresor_storage::ObjectKind;

use crate::{Error, Repository, Result};

/// Refusal of one object, naming it.
fn rejected(object: String, reason: impl Into<String>) -> Error {
    Error::Rejected {
        object,
        reason: reason.into(),
    }
}

/// The largest pack a writer makes: the pack size, plus the blob that crossed it, plus
/// a trailer. Anything bigger was not made by Tresor.
pub fn max_pack_bytes(repo: &Repository) -> usize {
    let c = repo.config();
    2 * c.pack_size as usize + 2 * c.chunk_size as usize + (16 << 20)
}

fn is_hex_name(name: &str) -> bool {
    name.len() == 64
        && name
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The largest plaintext a blob of `kind` can have in this repository.
fn max_raw_len(repo: &Repository, kind: BlobKind) -> u64 {
    let c = repo.config();
    match kind {
        BlobKind::Data => c.chunk_size as u64,
        BlobKind::Tree => TREE_HEADER_LEN as u64 + 32 * c.tree_fanout as u64,
    }
}

/// Checks an uploaded pack (see the module's text); returns its entries, in blob order.
pub fn check_pack(repo: &Repository, name: &str, bytes: &[u8]) -> Result<Vec<PackEntry>> {
    let object = format!("data/{name}");
    if !is_hex_name(name) {
        return Err(rejected(object, "a pack's name is 64 lowercase hex digits"));
    }
    if bytes.len() > max_pack_bytes(repo) {
        return Err(rejected(
            object,
            format!(
                "{} bytes is more than a pack of this repository can hold ({})",
                bytes.len(),
                max_pack_bytes(repo)
            ),
        ));
    }
    if pack_name(bytes) != name {
        return Err(rejected(object, "its name is not the hash of its bytes"));
    }
    let mut entries = read_pack_entries(repo.sealer(), bytes)
        .map_err(|e| rejected(object.clone(), e.to_string()))?;
    if entries.is_empty() {
        return Err(rejected(object, "it holds no blob"));
    }
    entries.sort_by_key(|e| e.offset);
    let trailer_len = decode_footer(&bytes[bytes.len() - PACK_FOOTER_LEN..])
        .map_err(|e| rejected(object.clone(), e.to_string()))? as u64;
    let blob_area_end = (bytes.len() - PACK_FOOTER_LEN) as u64 - trailer_len;
    let mut expected_at = PACK_HEADER_LEN as u64;
    let mut seen = HashSet::with_capacity(entries.len());
    let index = repo.index();
    let mut opened = bytes.to_vec();
    for e in &entries {
        if e.offset as u64 != expected_at {
            return Err(rejected(
                object,
                format!(
                    "blob {} starts at {} where the previous one ends at {expected_at}",
                    e.id, e.offset
                ),
            ));
        }
        if !seen.insert(e.id) {
            return Err(rejected(object, format!("blob {} is listed twice", e.id)));
        }
        if e.raw_len as u64 > max_raw_len(repo, e.kind) {
            return Err(rejected(
                object,
                format!(
                    "blob {} claims {} bytes, more than a {:?} blob of this repository holds",
                    e.id, e.raw_len, e.kind
                ),
            ));
        }
        expected_at += e.sealed_len as u64;
        // Opened in place, in one copy of the pack.
        let sealed = &mut opened[e.offset as usize..expected_at as usize];
        // A second copy of a stored blob, and every tree node, is opened whole and
        // re-hashed: a copy is as good as the original wherever the index or a
        // collection uses it, and nodes are small. A data blob the repository does not
        // hold yet is authenticated only: nothing stored references its id, so only
        // points made from now on (by this writer) can, and decompressing and hashing
        // every new chunk would cost the server about as much CPU as compressing it
        // cost the writer.
        if e.kind == BlobKind::Tree || index.contains(&e.id) {
            let plain = open_blob(
                repo.sealer(),
                repo.id_key(),
                e.kind,
                &e.id,
                e.compression,
                e.raw_len,
                sealed,
            )
            .map_err(|err| rejected(object.clone(), err.to_string()))?;
            if e.kind == BlobKind::Tree {
                TreeNode::decode(&plain).map_err(|err| {
                    rejected(object.clone(), format!("tree node {}: {err}", e.id))
                })?;
            }
        } else {
            let payload = repo
                .sealer()
                .open_in_place(&blob_aad(&e.id, e.kind), sealed)
                .map_err(|_| {
                    rejected(
                        object.clone(),
                        format!("blob {}: authentication failed (damaged or tampered)", e.id),
                    )
                })?;
            if e.compression == Compression::None && payload.len() != e.raw_len as usize {
                return Err(rejected(
                    object,
                    format!(
                        "blob {}: {} bytes stored uncompressed where {} are recorded",
                        e.id,
                        payload.len(),
                        e.raw_len
                    ),
                ));
            }
        }
    }
    if expected_at != blob_area_end {
        return Err(rejected(
            object,
            format!("its blobs end at {expected_at} but its trailer starts at {blob_area_end}"),
        ));
    }
    Ok(entries)
}

/// The entries of a stored pack, from its own trailer (read by range: footer, then
/// trailer), in blob order.
pub fn stored_pack_entries(repo: &Repository, name: &str) -> Result<Vec<PackEntry>> {
    let size = repo.backend().size(ObjectKind::Pack, name)?;
    pack_entries_of_size(repo, name, size)
}

/// [`stored_pack_entries`] when the pack's size is known.
pub fn pack_entries_of_size(repo: &Repository, name: &str, size: u64) -> Result<Vec<PackEntry>> {
    let object = format!("data/{name}");
    let min = (PACK_HEADER_LEN + PACK_FOOTER_LEN) as u64;
    if size < min {
        return Err(rejected(
            object,
            format!("{size} bytes is too short for a pack"),
        ));
    }
    let backend = repo.backend();
    let footer = backend.get_range(
        ObjectKind::Pack,
        name,
        size - PACK_FOOTER_LEN as u64,
        PACK_FOOTER_LEN,
    )?;
    let trailer_len =
        decode_footer(&footer).map_err(|e| rejected(object.clone(), e.to_string()))? as u64;
    if trailer_len > size - min {
        return Err(rejected(object, "its trailer is longer than the pack"));
    }
    let mut trailer = backend.get_range(
        ObjectKind::Pack,
        name,
        size - PACK_FOOTER_LEN as u64 - trailer_len,
        trailer_len as usize,
    )?;
    let mut entries =
        decode_trailer(repo.sealer(), &mut trailer).map_err(|e| rejected(object, e.to_string()))?;
    entries.sort_by_key(|e| e.offset);
    Ok(entries)
}

/// Checks an uploaded index file against the stored packs it names; returns it.
pub fn check_index(repo: &Repository, name: &str, bytes: &[u8]) -> Result<IndexFile> {
    let object = format!("index/{name}");
    if !is_hex_name(name) {
        return Err(rejected(
            object,
            "an index file's name is 64 lowercase hex digits",
        ));
    }
    if blake3::hash(bytes).to_hex().as_str() != name {
        return Err(rejected(object, "its name is not the hash of its bytes"));
    }
    let file = IndexFile::open(repo.sealer(), bytes)
        .map_err(|e| rejected(object.clone(), e.to_string()))?;
    let mut named = HashSet::new();
    for p in &file.packs {
        let pack = p.name();
        if !named.insert(pack.clone()) {
            return Err(rejected(object, format!("it lists pack {pack} twice")));
        }
        let size = match repo.backend().size(ObjectKind::Pack, &pack) {
            Ok(size) => size,
            Err(e) if e.is_not_found() => {
                return Err(rejected(
                    object,
                    format!(
                    "it lists pack {pack}, which is not stored (packs go up before their index)"
                ),
                ))
            }
            Err(e) => return Err(e.into()),
        };
        let stored = pack_entries_of_size(repo, &pack, size)?;
        let mut listed = p.entries.clone();
        listed.sort_by_key(|e| e.offset);
        if listed != stored {
            return Err(rejected(
                object,
                format!("what it lists for pack {pack} is not what the pack holds"),
            ));
        }
    }
    Ok(file)
}

/// Checks an uploaded manifest: it opens under its name. It is not a recovery point
/// until [`check_point`] accepted it.
pub fn check_manifest(repo: &Repository, name: &str, bytes: &[u8]) -> Result<Manifest> {
    let object = format!("points/{name}");
    if !is_point_id(name) {
        return Err(rejected(
            object,
            "a recovery point's name is 32 lowercase hex digits",
        ));
    }
    let m = Manifest::open(repo.sealer(), name, bytes)
        .map_err(|e| rejected(object.clone(), e.to_string()))?;
    check_disks(repo, &object, &m)?;
    Ok(m)
}

/// Disk names become file names on restore: plain names only.
fn check_disks(repo: &Repository, object: &str, m: &Manifest) -> Result<()> {
    let mut names = HashSet::new();
    for d in &m.disks {
        let plain = !d.name.is_empty()
            && d.name.len() <= 255
            && d.name != "."
            && d.name != ".."
            && !d
                .name
                .chars()
                .any(|c| c == '/' || c == '\\' || c.is_control());
        if !plain {
            return Err(rejected(
                object.to_string(),
                format!("disk name {:?} is not a plain file name", d.name),
            ));
        }
        if !names.insert(d.name.as_str()) {
            return Err(rejected(
                object.to_string(),
                format!("disk {:?} is listed twice", d.name),
            ));
        }
        if d.chunk_size != repo.config().chunk_size || d.fanout != repo.config().tree_fanout {
            return Err(rejected(
                object.to_string(),
                format!(
                    "disk {:?} uses chunks of {} and fan-out {}, not the repository's {} and {}",
                    d.name,
                    d.chunk_size,
                    d.fanout,
                    repo.config().chunk_size,
                    repo.config().tree_fanout
                ),
            ));
        }
    }
    Ok(())
}

/// Checks that the stored point `id` references only what is stored and valid: every
/// tree node it reaches is read (authenticated, hashed, decoded, of the right level and
/// width) and every chunk is listed by the index as a data blob. A point found wanting
/// is checked once more after the index files are read again: a refusal must never come
/// from an index loaded before the writer's last index file (a server that keeps its
/// index current with [`Repository::add_index_file`] rarely needs the second look).
pub fn check_point(repo: &Repository, id: &str) -> Result<Manifest> {
    match walk_point(repo, id) {
        Err(Error::Rejected { .. }) => {
            repo.reload_index()?;
            walk_point(repo, id)
        }
        other => other,
    }
}

fn walk_point(repo: &Repository, id: &str) -> Result<Manifest> {
    let object = format!("points/{id:?}");
    if !is_point_id(id) {
        return Err(rejected(
            object,
            "a recovery point's id is 32 lowercase hex digits",
        ));
    }
    let object = format!("points/{id}");
    let m = match repo.load_point(id) {
        Ok(m) => m,
        Err(e @ Error::PointNotFound { .. }) => return Err(e),
        Err(Error::Format(e)) => return Err(rejected(object, e.to_string())),
        Err(e) => return Err(e),
    };
    check_disks(repo, &object, &m)?;
    let index = repo.index();
    for d in &m.disks {
        let mut problem: Option<String> = None;
        let walked = crate::tree::walk_chunks(
            repo,
            d.root,
            d.shape(),
            &mut |chunk, cid: ChunkId| match index.get(&cid) {
                Some(loc) if loc.kind == BlobKind::Data => Ok(()),
                found => {
                    problem = Some(format!(
                        "disk {:?}: chunk {cid} at offset {} is {}",
                        d.name,
                        chunk * d.chunk_size as u64,
                        if found.is_some() {
                            "a tree node, not data"
                        } else {
                            "not stored"
                        }
                    ));
                    Err(Error::Cancelled)
                }
            },
            &mut |_, _| Ok(()),
        );
        if let Some(p) = problem {
            return Err(rejected(object, p));
        }
        match walked {
            Ok(()) => {}
            Err(Error::Storage(s)) if !s.is_not_found() => return Err(Error::Storage(s)),
            Err(e) => {
                return Err(rejected(
                    object,
                    format!("disk {:?}: its tree cannot be read: {e}", d.name),
                ))
            }
        }
    }
    Ok(m)
}
