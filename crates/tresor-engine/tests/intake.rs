//! Intake and garbage collection against a writer that holds the key and lies: every
//! forged object is refused with what is wrong, and no forged index can make garbage
//! collection remove what a recovery point needs.
//!
//! The attacker here does what a compromised host agent can do: it has the passphrase,
//! so it opens the key file and seals whatever it likes.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::TestDisk;
use rand::{RngCore, SeedableRng};
use tresor_crypto::{ChunkIdKey, Sealer};
use tresor_engine::backup::{self, BackupRequest, DiskSource};
use tresor_engine::restore::{self, OutputFormat, RestoreRequest};
use tresor_engine::{gc, intake, verify, Error, Manifest, Repository};
use tresor_format::blob::{seal_blob, BlobKind};
use tresor_format::index::{IndexFile, IndexedPack};
use tresor_format::key_file::KeyFile;
use tresor_format::manifest::DiskEntry;
use tresor_format::pack::{read_pack_entries, PackBuilder};
use tresor_format::tree::{TreeNode, TreeShape};
use tresor_format::ChunkId;
use tresor_storage::{Backend, ObjectKind};

const PW: &[u8] = b"intake test";
const CHUNK: usize = 8192;
const DISK: usize = 2 << 20;

fn init(path: &Path) -> Repository {
    common::small_repository(path, PW, CHUNK)
}

fn disk(seed: u64) -> Vec<u8> {
    let mut data = vec![0u8; DISK];
    rand::rngs::StdRng::seed_from_u64(seed).fill_bytes(&mut data);
    data[DISK / 2..DISK / 2 + 64 * 1024].fill(0);
    data
}

fn backup(repo: &Repository, data: &[u8], parent: Option<Manifest>) -> Manifest {
    let source = Arc::new(TestDisk {
        data: data.to_vec(),
        holes: Vec::new(),
    });
    let mut req = BackupRequest::new(
        "vm1",
        vec![DiskSource {
            name: "vda".into(),
            source,
            dirty: None,
        }],
    );
    req.parent = parent;
    backup::run(repo, req).unwrap()
}

fn restores_to(repo: &Repository, point: &Manifest, expected: &[u8], dir: &Path) {
    let out = dir.join(format!("restored-{}", point.id));
    restore::run(
        repo,
        RestoreRequest {
            point,
            disk: "vda",
            output: &out,
            format: OutputFormat::Raw,
            overwrite: true,
            progress: None,
            workers: 2,
        },
    )
    .unwrap();
    assert!(
        std::fs::read(&out).unwrap() == expected,
        "point {} restores byte for byte",
        point.id
    );
}

/// What the attacker derives from the passphrase: the keys that seal and name blobs.
fn attacker_keys(backend: &dyn Backend) -> (Sealer, ChunkIdKey) {
    let name = &backend.list(ObjectKind::Key).unwrap()[0].name;
    let key = KeyFile::decode(&backend.get(ObjectKind::Key, name).unwrap())
        .unwrap()
        .wrapped()
        .unwrap()
        .unwrap_key(PW)
        .unwrap();
    (key.sealer(), key.chunk_id_key())
}

fn sealed(
    sealer: &Sealer,
    kind: BlobKind,
    id: &ChunkId,
    plain: &[u8],
) -> (tresor_format::blob::SealedBlob, Vec<u8>) {
    let mut compressor = zstd::bulk::Compressor::new(1).unwrap();
    let (mut scratch, mut out) = (Vec::new(), Vec::new());
    let meta = seal_blob(
        sealer,
        &mut compressor,
        &mut scratch,
        kind,
        id,
        plain,
        &mut out,
    );
    (meta, out)
}

fn refused(r: Result<impl std::fmt::Debug, Error>, what: &str) -> String {
    match r {
        Err(Error::Rejected { object, reason }) => format!("{object}: {reason}"),
        other => panic!("{what}: expected a refusal, got {other:?}"),
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    repo: Repository,
    points: Vec<(Manifest, Vec<u8>)>,
    out: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let repo = init(&dir.path().join("repo"));
    let first = disk(1);
    let p1 = backup(&repo, &first, None);
    let mut second = first.clone();
    second[..CHUNK * 3].fill(7);
    let p2 = backup(&repo, &second, Some(p1.clone()));
    // As a server holds it: its index knows every index file stored.
    repo.reload_index().unwrap();
    Fixture {
        _dir: dir,
        repo,
        points: vec![(p1, first), (p2, second)],
        out: tempfile::tempdir().unwrap(),
    }
}

fn packs(repo: &Repository) -> Vec<String> {
    let mut names: Vec<String> = repo
        .backend()
        .list(ObjectKind::Pack)
        .unwrap()
        .into_iter()
        .map(|o| o.name)
        .collect();
    names.sort();
    names
}

#[test]
fn what_a_writer_stores_passes_intake() {
    let f = fixture();
    let b = f.repo.backend();
    for p in packs(&f.repo) {
        let bytes = b.get(ObjectKind::Pack, &p).unwrap();
        intake::check_pack(&f.repo, &p, &bytes).unwrap();
    }
    for i in b.list(ObjectKind::Index).unwrap() {
        let bytes = b.get(ObjectKind::Index, &i.name).unwrap();
        intake::check_index(&f.repo, &i.name, &bytes).unwrap();
    }
    for (p, _) in &f.points {
        let bytes = b.get(ObjectKind::Point, &p.id).unwrap();
        intake::check_manifest(&f.repo, &p.id, &bytes).unwrap();
        intake::check_point(&f.repo, &p.id).unwrap();
    }
}

#[test]
fn forged_packs_are_refused() {
    let f = fixture();
    let b = f.repo.backend();
    let (sealer, id_key) = attacker_keys(b.as_ref());
    // A pack of data chunks, and one chunk in it.
    let (bytes, victim) = packs(&f.repo)
        .iter()
        .map(|p| b.get(ObjectKind::Pack, p).unwrap())
        .find_map(|bytes| {
            let first = read_pack_entries(&sealer, &bytes).unwrap()[0];
            (first.kind == BlobKind::Data).then_some((bytes, first))
        })
        .unwrap();

    // One byte changed, renamed after its new hash: the blob no longer authenticates.
    let mut flipped = bytes.clone();
    flipped[victim.offset as usize + 20] ^= 1;
    let name = blake3::hash(&flipped).to_hex().to_string();
    let why = refused(intake::check_pack(&f.repo, &name, &flipped), "flipped byte");
    assert!(why.contains("authentication"), "{why}");
    // The real bytes under another name.
    let why = refused(
        intake::check_pack(&f.repo, &"0".repeat(64), &bytes),
        "wrong name",
    );
    assert!(why.contains("name"), "{why}");

    // The attack that matters: other bytes sealed under a stored blob's id. If it were
    // accepted, an index could point restores at it, and GC could drop the real copy.
    let mut forged = PackBuilder::new();
    let (meta, blob) = sealed(&sealer, victim.kind, &victim.id, &vec![0x55u8; CHUNK]);
    forged.add(victim.kind, victim.id, meta, &blob);
    let pack = forged.finish(&sealer);
    let why = refused(
        intake::check_pack(&f.repo, &pack.name, &pack.bytes),
        "shadowing blob",
    );
    assert!(why.contains("does not match its id"), "{why}");

    // A genuine blob listed twice.
    let plain = vec![3u8; CHUNK];
    let id = id_key.id_of(&plain);
    let (meta, blob) = sealed(&sealer, BlobKind::Data, &id, &plain);
    let mut twice = PackBuilder::new();
    twice.add(BlobKind::Data, id, meta, &blob);
    twice.add(BlobKind::Data, id, meta, &blob);
    let pack = twice.finish(&sealer);
    let why = refused(
        intake::check_pack(&f.repo, &pack.name, &pack.bytes),
        "duplicate",
    );
    assert!(why.contains("twice"), "{why}");

    // A blob claiming more plaintext than a chunk of this repository holds.
    let big = vec![9u8; CHUNK * 2];
    let big_id = id_key.id_of(&big);
    let (meta, blob) = sealed(&sealer, BlobKind::Data, &big_id, &big);
    let mut oversized = PackBuilder::new();
    oversized.add(BlobKind::Data, big_id, meta, &blob);
    let pack = oversized.finish(&sealer);
    let why = refused(
        intake::check_pack(&f.repo, &pack.name, &pack.bytes),
        "oversized",
    );
    assert!(why.contains("claims"), "{why}");

    // A well-made pack of genuine blobs is accepted.
    let mut good = PackBuilder::new();
    let (meta, blob) = sealed(&sealer, BlobKind::Data, &id, &plain);
    good.add(BlobKind::Data, id, meta, &blob);
    let pack = good.finish(&sealer);
    intake::check_pack(&f.repo, &pack.name, &pack.bytes).unwrap();
}

#[test]
fn forged_index_files_are_refused() {
    let f = fixture();
    let b = f.repo.backend();
    let (sealer, _) = attacker_keys(b.as_ref());
    let real = packs(&f.repo);
    let mut pack_id = [0u8; 32];
    hex::decode_to_slice(&real[0], &mut pack_id).unwrap();
    let entries = read_pack_entries(&sealer, &b.get(ObjectKind::Pack, &real[0]).unwrap()).unwrap();
    let check = |file: IndexFile| {
        let (name, bytes) = file.seal(&sealer);
        intake::check_index(&f.repo, &name, &bytes)
    };

    // The demonstrated attack: an index that leaves out a real pack's blobs.
    let why = refused(
        check(IndexFile {
            packs: vec![IndexedPack {
                pack_id,
                entries: entries[1..].to_vec(),
            }],
        }),
        "omitted blob",
    );
    assert!(why.contains("not what the pack holds"), "{why}");
    // Real blobs claimed to be in a pack that does not exist.
    let why = refused(
        check(IndexFile {
            packs: vec![IndexedPack {
                pack_id: [7u8; 32],
                entries: entries.clone(),
            }],
        }),
        "missing pack",
    );
    assert!(why.contains("not stored"), "{why}");
    // A blob moved to another offset.
    let mut moved = entries.clone();
    moved[0].offset += 1;
    refused(
        check(IndexFile {
            packs: vec![IndexedPack {
                pack_id,
                entries: moved,
            }],
        }),
        "moved blob",
    );
    // The truth is accepted.
    check(IndexFile {
        packs: vec![IndexedPack { pack_id, entries }],
    })
    .unwrap();
}

#[test]
fn points_that_reference_what_is_not_stored_are_refused() {
    let f = fixture();
    let b = f.repo.backend();
    let (sealer, id_key) = attacker_keys(b.as_ref());
    let mut point = f.points[1].0.clone();

    // A root that was never stored.
    point.id = "a".repeat(32);
    point.disks[0].root = ChunkId([5u8; 32]);
    b.put(ObjectKind::Point, &point.id, &point.seal(&sealer))
        .unwrap();
    let why = refused(intake::check_point(&f.repo, &point.id), "missing root");
    assert!(why.contains("cannot be read"), "{why}");

    // A genuine tree node (stored in a genuine pack, listed by a true index) whose
    // chunk is not stored.
    let shape = TreeShape::for_chunks(1, 4);
    let node = TreeNode {
        level: 0,
        children: vec![ChunkId([6u8; 32])],
    };
    let plain = node.encode();
    let node_id = id_key.id_of(&plain);
    let (meta, blob) = sealed(&sealer, BlobKind::Tree, &node_id, &plain);
    let mut builder = PackBuilder::new();
    builder.add(BlobKind::Tree, node_id, meta, &blob);
    let pack = builder.finish(&sealer);
    intake::check_pack(&f.repo, &pack.name, &pack.bytes).unwrap();
    b.put(ObjectKind::Pack, &pack.name, &pack.bytes).unwrap();
    let mut pack_id = [0u8; 32];
    hex::decode_to_slice(&pack.name, &mut pack_id).unwrap();
    let (name, bytes) = IndexFile {
        packs: vec![IndexedPack {
            pack_id,
            entries: pack.entries.clone(),
        }],
    }
    .seal(&sealer);
    intake::check_index(&f.repo, &name, &bytes).unwrap();
    b.put(ObjectKind::Index, &name, &bytes).unwrap();
    point.id = "b".repeat(32);
    point.disks = vec![DiskEntry {
        name: "vda".into(),
        size: CHUNK as u64,
        chunk_size: CHUNK as u32,
        fanout: 4,
        depth: shape.depth,
        root: node_id,
    }];
    b.put(ObjectKind::Point, &point.id, &point.seal(&sealer))
        .unwrap();
    let why = refused(intake::check_point(&f.repo, &point.id), "missing chunk");
    assert!(why.contains("not stored"), "{why}");

    // A disk name that would leave the restore folder.
    point.id = "c".repeat(32);
    point.disks[0].name = "../../etc/passwd".into();
    let bytes = point.seal(&sealer);
    let why = refused(
        intake::check_manifest(&f.repo, &point.id, &bytes),
        "disk name",
    );
    assert!(why.contains("plain file name"), "{why}");
    // A prefix of a real point is not a point id.
    refused(
        intake::check_point(&f.repo, &f.points[0].0.id[..8]),
        "prefix",
    );
}

/// The index as an attacker could have left it before intake checks existed (a
/// forged index file, which a garbage collection then folded into the only index):
/// every data blob "moved" to a pack that does not exist, so that the real data packs
/// look empty. Garbage collection from the catalogue stops without removing anything,
/// and every point still restores; once the index is rebuilt, collection works again.
#[test]
fn a_forged_index_already_stored_cannot_make_gc_remove_live_packs() {
    let f = fixture();
    let b = f.repo.backend();
    let (sealer, _) = attacker_keys(b.as_ref());
    let before = packs(&f.repo);
    let mut forged = IndexFile::default();
    let mut data_entries = Vec::new();
    for p in &before {
        let entries = read_pack_entries(&sealer, &b.get(ObjectKind::Pack, p).unwrap()).unwrap();
        let (data, tree): (Vec<_>, Vec<_>) =
            entries.into_iter().partition(|e| e.kind == BlobKind::Data);
        data_entries.extend(data);
        if !tree.is_empty() {
            let mut pack_id = [0u8; 32];
            hex::decode_to_slice(p, &mut pack_id).unwrap();
            forged.packs.push(IndexedPack {
                pack_id,
                entries: tree,
            });
        }
    }
    forged.packs.push(IndexedPack {
        pack_id: [0xffu8; 32],
        entries: data_entries,
    });
    let (forged_name, forged) = forged.seal(&sealer);
    // Intake refuses it; here it is written straight to storage, in place of the index.
    refused(
        intake::check_index(&f.repo, &forged_name, &forged),
        "forged index",
    );
    for i in b.list(ObjectKind::Index).unwrap() {
        b.delete(ObjectKind::Index, &i.name).unwrap();
    }
    b.put(ObjectKind::Index, &forged_name, &forged).unwrap();

    let catalogue: Vec<String> = f.points.iter().map(|(p, _)| p.id.clone()).collect();
    let opts = gc::GcOptions {
        repack_threshold: 0.0,
        points: Some(catalogue.clone()),
    };
    let stopped = gc::run(&f.repo, &opts, None).unwrap_err().to_string();
    assert!(stopped.contains("without removing anything"), "{stopped}");
    let after = packs(&f.repo);
    assert!(
        before.iter().all(|p| after.contains(p)),
        "no pack was removed"
    );

    // The operator repairs the index from the packs; every point restores.
    b.delete(ObjectKind::Index, &forged_name).unwrap();
    gc::rebuild_index(&f.repo).unwrap();
    for (p, data) in &f.points {
        restores_to(&f.repo, p, data, f.out.path());
    }
    // Collection from the catalogue: the first point leaves it (retention), its manifest
    // stays behind in storage, yet only the second point's blobs are kept.
    let opts = gc::GcOptions {
        repack_threshold: 0.0,
        points: Some(vec![catalogue[1].clone()]),
    };
    let report = gc::run(&f.repo, &opts, None).unwrap();
    assert!(report.blobs_removed > 0, "{report}");
    let (p2, data2) = &f.points[1];
    restores_to(&f.repo, p2, data2, f.out.path());
    let v = verify::run(&f.repo, Some(&p2.id), None).unwrap();
    assert!(v.damaged_points.is_empty());
}

/// A listed point whose manifest is gone stops collection: its blobs would be swept.
#[test]
fn a_catalogued_point_missing_from_storage_stops_collection() {
    let f = fixture();
    let b = f.repo.backend();
    let before = packs(&f.repo);
    let ids: Vec<String> = f.points.iter().map(|(p, _)| p.id.clone()).collect();
    let saved = b.get(ObjectKind::Point, &ids[0]).unwrap();
    b.delete(ObjectKind::Point, &ids[0]).unwrap();
    let opts = gc::GcOptions {
        repack_threshold: 0.0,
        points: Some(ids.clone()),
    };
    let stopped = gc::run(&f.repo, &opts, None).unwrap_err().to_string();
    assert!(stopped.contains(&ids[0]), "{stopped}");
    assert_eq!(packs(&f.repo), before);
    b.put(ObjectKind::Point, &ids[0], &saved).unwrap();
    for (p, data) in &f.points {
        restores_to(&f.repo, p, data, f.out.path());
    }
}
