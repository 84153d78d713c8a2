//! Golden-file tests: every repository format, pinned byte for byte.
//!
//! The files under `tests/golden/` were produced by this file from fixed inputs: a fixed
//! master key ([`master_key`]), fixed plaintexts and fixed nonces (the `*_with_nonce`
//! sealing functions). The tests check that
//! 1. encoding the fixed inputs reproduces the golden bytes exactly (every format whose
//!    encoding is deterministic);
//! 2. decoding the golden bytes yields exactly the expected values, and a hand-written
//!    parser that follows `FORMAT.md` finds every field where the document says it is;
//! 3. flipping any single byte of the golden pack, index file, manifest or sealed tree
//!    blob is detected: an error, never wrong data;
//! 4. a wrong key (or passphrase, or name) fails with an authentication error;
//! 5. another magic number or format version is refused with the right error variant.
//!
//! Two golden files cannot be reproduced: `key_file.json` (Argon2 salt and wrapping
//! nonce are random) and `gc_state.bin` (`GcState::seal` takes a random nonce). They were
//! generated once and are only decoded.
//!
//! **Updating.** Run `TRESOR_UPDATE_GOLDEN=1 cargo test -p tresor-format --test golden`
//! to rewrite the golden files from the current code instead of comparing with them
//! (the key file and the GC state are rewritten only when missing or no longer decoding
//! to the expected values). Do that only for an intended format change: then review
//! the binary diff, bump the format's version or magic as `FORMAT.md` requires, and
//! record the change in its "Changes" section. Without the variable, a missing or
//! different golden file is a failure.
//!
//! The compressed payloads (a zstd-compressed data blob, the index file) depend on the
//! zstd library's encoder, which is pinned by `Cargo.lock`; a zstd upgrade that changes
//! its output changes those bytes without changing the format (readers accept any valid
//! zstd frame). Regenerate then, after checking that the old golden files still decode
//! (test 2 on the old files) — that is the compatibility that matters.

use std::path::PathBuf;

use jiff::Timestamp;
use tresor_crypto::{KdfParams, MasterKey, Sealer};
use tresor_format::blob::{blob_aad, open_blob, seal_blob_with_nonce, BlobKind, Compression};
use tresor_format::config::RepoConfig;
use tresor_format::gc_state::GcState;
use tresor_format::index::{IndexFile, IndexedPack};
use tresor_format::key_file::KeyFile;
use tresor_format::magic::*;
use tresor_format::manifest::{BackupStats, Consistency, DiskEntry, Manifest};
use tresor_format::pack::{read_pack_entries, PackBuilder, PackEntry};
use tresor_format::tree::{TreeNode, TreeShape};
use tresor_format::{ChunkId, Error};

// ---------------------------------------------------------------------------------------
// Fixed inputs
// ---------------------------------------------------------------------------------------

/// Data key 00 01 .. 1f, chunk id key 80 81 .. 9f.
fn master_key() -> MasterKey {
    MasterKey::from_bytes(
        std::array::from_fn(|i| i as u8),
        std::array::from_fn(|i| 0x80 + i as u8),
    )
}

/// Another key: everything sealed by [`master_key`] must fail to open with it.
fn other_key() -> MasterKey {
    MasterKey::from_bytes([0x5a; 32], std::array::from_fn(|i| 0x80 + i as u8))
}

const PASSPHRASE: &[u8] = b"correct horse battery staple";
/// The smallest KDF parameters `tresor-crypto` accepts: golden tests stay fast.
const FAST_KDF: KdfParams = KdfParams {
    m_cost: 8192,
    t_cost: 1,
    p_cost: 1,
};

const REPO_ID: &str = "7265706f7369746f7279206964203031";
const POINT_ID: &str = "0123456789abcdef0123456789abcdef";
const PARENT_ID: &str = "fedcba9876543210fedcba9876543210";
const WRITER_ID: &str = "00112233445566778899aabbccddeeff";

const NONCE_CHUNK0: [u8; 12] = [0x01; 12];
const NONCE_CHUNK2: [u8; 12] = [0x02; 12];
const NONCE_TREE: [u8; 12] = [0x03; 12];
const NONCE_TRAILER: [u8; 12] = [0x04; 12];
const NONCE_INDEX: [u8; 12] = [0x05; 12];
const NONCE_MANIFEST: [u8; 12] = [0x06; 12];

/// The blob zstd level of the engine.
const ZSTD_LEVEL: i32 = 1;

const CHUNK_SIZE: u32 = 4096;
const FANOUT: u32 = 4;
/// Disk `vda`: 3 chunks: chunk 0 compressible text, chunk 1 zeros, chunk 2 (short, the
/// end of the disk) incompressible.
const VDA_SIZE: u64 = 2 * CHUNK_SIZE as u64 + 3000;
/// Disk `vdb`: 256 chunks of zeros: depth 4 with fan-out 4, root ZERO.
const VDB_SIZE: u64 = 256 * CHUNK_SIZE as u64;

/// Expected chunk ids: keyed BLAKE3 with key 80 81 .. 9f. Pinned independently of the
/// golden files: they change only if the id function changes.
const CHUNK0_ID: &str = "f2411d3ce12d3fdaee6973d2a14e8a6813a85fcd2fa7f0cdb1ff39fbfa899558";
const CHUNK2_ID: &str = "7d4e7270038f81ba8f5c160612514727aa89672497dbd11ed1ffac3f02e06ef9";
const TREE_ID: &str = "fb6375acbcabce32efcdc7662b7dee38f4199060dea5d32b6263d636a8bcf6fe";

fn created() -> Timestamp {
    "2026-11-26T01:00:00Z".parse().unwrap()
}

/// 4096 bytes of text: compresses to a small fraction.
fn chunk0() -> Vec<u8> {
    let line = b"Tresor golden chunk 0: compressible text, repeated to fill the chunk.\n";
    line.iter()
        .copied()
        .cycle()
        .take(CHUNK_SIZE as usize)
        .collect()
}

/// 3000 pseudo-random bytes (BLAKE3 output stream): zstd cannot shrink them by 1/32.
fn chunk2() -> Vec<u8> {
    let mut out = vec![0u8; 3000];
    blake3::Hasher::new()
        .update(b"tresor golden incompressible chunk")
        .finalize_xof()
        .fill(&mut out);
    out
}

fn id_of(data: &[u8]) -> ChunkId {
    master_key().chunk_id_key().id_of(data)
}

fn hex_id(text: &str) -> ChunkId {
    ChunkId::from_hex(text).unwrap()
}

/// The leaf of disk `vda`.
fn tree_node() -> TreeNode {
    TreeNode {
        level: 0,
        children: vec![id_of(&chunk0()), ChunkId::ZERO, id_of(&chunk2())],
    }
}

struct BuiltPack {
    name: String,
    bytes: Vec<u8>,
    entries: Vec<PackEntry>,
}

/// A pack with data chunk 0 (zstd), data chunk 2 (stored) and the tree node, in that order.
fn build_pack() -> BuiltPack {
    let key = master_key();
    let sealer = key.sealer();
    let mut compressor = zstd::bulk::Compressor::new(ZSTD_LEVEL).unwrap();
    let mut scratch = Vec::new();
    let mut builder = PackBuilder::new();
    let node = tree_node().encode();
    let blobs: [(BlobKind, Vec<u8>, [u8; 12]); 3] = [
        (BlobKind::Data, chunk0(), NONCE_CHUNK0),
        (BlobKind::Data, chunk2(), NONCE_CHUNK2),
        (BlobKind::Tree, node, NONCE_TREE),
    ];
    for (kind, plain, nonce) in blobs {
        let id = id_of(&plain);
        let mut sealed = Vec::new();
        let meta = seal_blob_with_nonce(
            &sealer,
            nonce,
            &mut compressor,
            &mut scratch,
            kind,
            &id,
            &plain,
            &mut sealed,
        );
        builder.add(kind, id, meta, &sealed);
    }
    let pack = builder.finish_with_nonce(&sealer, NONCE_TRAILER);
    BuiltPack {
        name: pack.name,
        bytes: pack.bytes,
        entries: pack.entries,
    }
}

fn index_file(pack: &BuiltPack) -> IndexFile {
    IndexFile {
        packs: vec![IndexedPack {
            pack_id: *blake3::hash(&pack.bytes).as_bytes(),
            entries: pack.entries.clone(),
        }],
    }
}

fn manifest() -> Manifest {
    Manifest {
        version: 1,
        id: POINT_ID.into(),
        name: "vm1".into(),
        created: created(),
        consistency: Consistency::FileSystemConsistent,
        parent: Some(PARENT_ID.into()),
        expires: Some("2027-11-26T01:00:00Z".parse().unwrap()),
        disks: vec![
            DiskEntry {
                name: "vda".into(),
                size: VDA_SIZE,
                chunk_size: CHUNK_SIZE,
                fanout: FANOUT,
                depth: 1,
                root: id_of(&tree_node().encode()),
            },
            DiskEntry {
                name: "vdb".into(),
                size: VDB_SIZE,
                chunk_size: CHUNK_SIZE,
                fanout: FANOUT,
                depth: 4,
                root: ChunkId::ZERO,
            },
        ],
        host: "kvm1".into(),
        vm_config: Some(serde_json::json!({"memory_mib": 2048, "vcpus": 2})),
        stats: BackupStats {
            bytes_read: 3 * CHUNK_SIZE as u64,
            data_bytes: CHUNK_SIZE as u64 + 3000,
            bytes_added: 1234,
            chunks_added: 2,
            chunks_reused: 0,
            tree_nodes_added: 1,
            duration_ms: 42,
        },
    }
}

fn config() -> RepoConfig {
    RepoConfig {
        format: "tresor-repository".into(),
        version: 1,
        id: REPO_ID.into(),
        chunk_size: CHUNK_SIZE,
        tree_fanout: FANOUT,
        pack_size: 1 << 20,
        created: created(),
    }
}

fn gc_state() -> GcState {
    GcState {
        version: 1,
        created: created(),
        condemned: vec![id_of(b"condemned blob 1"), id_of(b"condemned blob 2")],
        writers: vec![WRITER_ID.into()],
    }
}

// ---------------------------------------------------------------------------------------
// Golden file plumbing
// ---------------------------------------------------------------------------------------

fn updating() -> bool {
    std::env::var_os("TRESOR_UPDATE_GOLDEN").is_some_and(|v| v == "1")
}

fn golden_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

fn write_golden(name: &str, bytes: &[u8]) {
    static TMP: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let path = golden_path(name);
    if std::fs::read(&path).is_ok_and(|old| old == bytes) {
        return;
    }
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    // Tests run in parallel and several encode the same file: write a temp file of this
    // call's own and rename it, so that no reader ever sees half a file.
    let n = TMP.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_extension(format!("tmp{}-{n}", std::process::id()));
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    eprintln!("rewrote golden file {}", path.display());
}

fn read_golden(name: &str) -> Vec<u8> {
    let path = golden_path(name);
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "golden file {} missing ({e}); generate it with TRESOR_UPDATE_GOLDEN=1",
            path.display()
        )
    })
}

/// The golden bytes of a deterministic format: compares `fresh` with the file (or, when
/// updating, rewrites the file) and returns the bytes.
fn golden(name: &str, fresh: &[u8]) -> Vec<u8> {
    if updating() {
        write_golden(name, fresh);
        return fresh.to_vec();
    }
    let stored = read_golden(name);
    if stored != fresh {
        let at = stored
            .iter()
            .zip(fresh)
            .position(|(a, b)| a != b)
            .unwrap_or(stored.len().min(fresh.len()));
        panic!(
            "{name}: the encoding changed (golden {} bytes, now {} bytes, first difference \
             at offset {at}). A format change needs a new version: see FORMAT.md. If the \
             change is intended, rerun with TRESOR_UPDATE_GOLDEN=1.",
            stored.len(),
            fresh.len()
        );
    }
    stored
}

/// The golden bytes of a format sealed with a random nonce: generated once, then decoded.
fn golden_random(name: &str, generate: impl FnOnce() -> Vec<u8>, valid: impl Fn(&[u8]) -> bool) {
    if updating() {
        let keep = std::fs::read(golden_path(name)).is_ok_and(|b| valid(&b));
        if !keep {
            write_golden(name, &generate());
        }
    }
}

fn pack_golden() -> Vec<u8> {
    golden("pack.bin", &build_pack().bytes)
}

fn index_golden() -> Vec<u8> {
    let pack = build_pack();
    golden(
        "index.bin",
        &index_file(&pack).seal_with_nonce(&master_key().sealer(), NONCE_INDEX),
    )
}

fn manifest_golden() -> Vec<u8> {
    golden(
        "manifest.bin",
        &manifest().seal_with_nonce(&master_key().sealer(), NONCE_MANIFEST),
    )
}

fn tree_golden() -> Vec<u8> {
    golden("tree_node.bin", &tree_node().encode())
}

fn config_golden() -> Vec<u8> {
    golden("config.json", &config().encode())
}

/// The golden key file (generated once: random salt and nonce).
fn key_file_golden() -> Vec<u8> {
    const NAME: &str = "key_file.json";
    let opens_known_key = |bytes: &[u8]| -> bool {
        let Ok(k) = KeyFile::decode(bytes) else {
            return false;
        };
        let Ok(w) = k.wrapped() else { return false };
        let Ok(key) = w.unwrap_key(PASSPHRASE) else {
            return false;
        };
        k.kdf.m_cost == Some(FAST_KDF.m_cost)
            && key.chunk_id_key().id_of(b"x") == master_key().chunk_id_key().id_of(b"x")
            && key
                .sealer()
                .open(b"", &master_key().sealer().seal(b"", b"x"))
                .is_ok()
    };
    golden_random(
        NAME,
        || {
            let wrapped = master_key().wrap(PASSPHRASE, FAST_KDF).unwrap();
            KeyFile::new(REPO_ID, "kvm1", created(), &wrapped).encode()
        },
        opens_known_key,
    );
    read_golden(NAME)
}

/// The golden GC state (generated once: random nonce).
fn gc_state_golden() -> Vec<u8> {
    const NAME: &str = "gc_state.bin";
    golden_random(
        NAME,
        || gc_state().seal(&master_key().sealer()),
        |b| GcState::open(&master_key().sealer(), b).is_ok_and(|s| s == gc_state()),
    );
    read_golden(NAME)
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn sha256_8(text: &str) -> [u8; 8] {
    let d = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    d.as_ref()[..8].try_into().unwrap()
}

/// Opens every blob a pack's trailer lists; the first error, if any.
fn open_whole_pack(
    sealer: &Sealer,
    key: &MasterKey,
    pack: &[u8],
) -> tresor_format::Result<Vec<Vec<u8>>> {
    let entries = read_pack_entries(sealer, pack)?;
    let id_key = key.chunk_id_key();
    entries
        .iter()
        .map(|e| {
            let mut sealed = pack[e.offset as usize..(e.offset + e.sealed_len) as usize].to_vec();
            open_blob(
                sealer,
                &id_key,
                e.kind,
                &e.id,
                e.compression,
                e.raw_len,
                &mut sealed,
            )
        })
        .collect()
}

/// Each byte flipped three ways.
fn flips(bytes: &[u8]) -> impl Iterator<Item = (usize, Vec<u8>)> + '_ {
    (0..bytes.len()).flat_map(move |i| {
        [0x01u8, 0x80, 0xff].into_iter().map(move |m| {
            let mut b = bytes.to_vec();
            b[i] ^= m;
            (i, b)
        })
    })
}

// ---------------------------------------------------------------------------------------
// 1 + 2: encoding reproduces the golden bytes; decoding yields the expected values
// ---------------------------------------------------------------------------------------

#[test]
fn chunk_ids_are_keyed_blake3() {
    assert_eq!(id_of(&chunk0()), hex_id(CHUNK0_ID));
    assert_eq!(id_of(&chunk2()), hex_id(CHUNK2_ID));
    assert_eq!(id_of(&tree_node().encode()), hex_id(TREE_ID));
    let id_key: [u8; 32] = std::array::from_fn(|i| 0x80 + i as u8);
    assert_eq!(
        id_of(&chunk0()).0,
        *blake3::keyed_hash(&id_key, &chunk0()).as_bytes()
    );
}

#[test]
fn tree_node_golden_decodes() {
    let bytes = tree_golden();
    assert_eq!(TreeNode::decode(&bytes).unwrap(), tree_node());
    // FORMAT.md: magic (8) | level u8 | reserved (3) | count u32 LE | count × id (32)
    assert_eq!(bytes.len(), 16 + 3 * 32);
    assert_eq!(bytes[..8], TREE_MAGIC_V1);
    assert_eq!(bytes[8], 0);
    assert_eq!(bytes[9..12], [0, 0, 0]);
    assert_eq!(le32(&bytes, 12), 3);
    assert_eq!(bytes[16..48], hex_id(CHUNK0_ID).0);
    assert_eq!(bytes[48..80], [0u8; 32]);
    assert_eq!(bytes[80..112], hex_id(CHUNK2_ID).0);
    assert_eq!(id_of(&bytes), hex_id(TREE_ID));
}

#[test]
fn pack_golden_decodes_and_every_blob_opens() {
    let bytes = pack_golden();
    let key = master_key();
    let sealer = key.sealer();
    let id_key = key.chunk_id_key();

    // The name of a pack is the hex BLAKE3 of its bytes.
    assert_eq!(build_pack().name, blake3::hash(&bytes).to_hex().to_string());

    let entries = read_pack_entries(&sealer, &bytes).unwrap();
    assert_eq!(entries, build_pack().entries);
    let expect: [(BlobKind, Compression, u32, Vec<u8>); 3] = [
        (BlobKind::Data, Compression::Zstd, 4096, chunk0()),
        (BlobKind::Data, Compression::None, 3000, chunk2()),
        (BlobKind::Tree, Compression::Zstd, 112, tree_node().encode()),
    ];
    let ids = [CHUNK0_ID, CHUNK2_ID, TREE_ID];
    let mut offset = 16;
    for ((e, (kind, compression, raw_len, plain)), id) in entries.iter().zip(&expect).zip(ids) {
        assert_eq!(e.kind, *kind);
        assert_eq!(e.compression, *compression);
        assert_eq!(e.raw_len, *raw_len);
        assert_eq!(e.id, hex_id(id));
        assert_eq!(e.offset, offset, "blobs are back to back after the header");
        offset += e.sealed_len;
        match e.compression {
            Compression::None => assert_eq!(e.sealed_len, e.raw_len + 28),
            // Kept only because it saves more than raw_len / 32.
            Compression::Zstd => assert!(e.sealed_len - 28 + e.raw_len / 32 < e.raw_len),
        }
        let mut sealed = bytes[e.offset as usize..(e.offset + e.sealed_len) as usize].to_vec();
        let got = open_blob(
            &sealer,
            &id_key,
            e.kind,
            &e.id,
            e.compression,
            e.raw_len,
            &mut sealed,
        )
        .unwrap();
        assert_eq!(&got, plain);
    }
    assert_eq!(
        TreeNode::decode(&open_whole_pack(&sealer, &key, &bytes).unwrap()[2]).unwrap(),
        tree_node()
    );

    // FORMAT.md, by hand: header, blobs, trailer, footer.
    assert_eq!(bytes[..8], PACK_MAGIC_V1);
    assert_eq!(bytes[8..16], [0u8; 8]);
    let n = bytes.len();
    assert_eq!(bytes[n - 8..], PACK_MAGIC_V1);
    assert_eq!(bytes[n - 12..n - 8], [0u8; 4]);
    let trailer_len = le32(&bytes, n - 16) as usize;
    assert_eq!(trailer_len, 12 + 4 + 3 * 48 + 16);
    let trailer_at = n - 16 - trailer_len;
    assert_eq!(
        trailer_at, offset as usize,
        "the trailer follows the last blob"
    );
    assert_eq!(bytes[trailer_at..trailer_at + 12], NONCE_TRAILER);
    let trailer = sealer
        .open(PACK_TRAILER_AAD, &bytes[trailer_at..n - 16])
        .unwrap();
    assert_eq!(le32(&trailer, 0), 3);
    for (i, e) in entries.iter().enumerate() {
        let r = &trailer[4 + 48 * i..4 + 48 * (i + 1)];
        assert_eq!(r[0], e.kind as u8);
        assert_eq!(r[1], e.compression as u8);
        assert_eq!(r[2..4], [0, 0]);
        assert_eq!(le32(r, 4), e.offset);
        assert_eq!(le32(r, 8), e.sealed_len);
        assert_eq!(le32(r, 12), e.raw_len);
        assert_eq!(r[16..48], e.id.0);
    }
    // Blobs, by hand: nonce | AES-256-GCM(payload) | tag, AAD = id || kind.
    let nonces = [NONCE_CHUNK0, NONCE_CHUNK2, NONCE_TREE];
    for (e, nonce) in entries.iter().zip(nonces) {
        let sealed = &bytes[e.offset as usize..(e.offset + e.sealed_len) as usize];
        assert_eq!(sealed[..12], nonce);
        let mut aad = e.id.0.to_vec();
        aad.push(e.kind as u8);
        assert_eq!(aad, blob_aad(&e.id, e.kind));
        let payload = sealer.open(&aad, sealed).unwrap();
        let plain = match e.compression {
            Compression::None => payload,
            Compression::Zstd => zstd::stream::decode_all(&payload[..]).unwrap(),
        };
        assert_eq!(id_of(&plain), e.id);
    }
}

#[test]
fn index_golden_decodes() {
    let bytes = index_golden();
    let key = master_key();
    let sealer = key.sealer();
    let pack = pack_golden();
    let index = IndexFile::open(&sealer, &bytes).unwrap();
    assert_eq!(index, index_file(&build_pack()));
    assert_eq!(index.packs.len(), 1);
    assert_eq!(
        index.packs[0].name(),
        blake3::hash(&pack).to_hex().to_string()
    );
    assert_eq!(
        index.packs[0].entries,
        read_pack_entries(&sealer, &pack).unwrap(),
        "an index lists exactly what the pack's trailer lists"
    );

    // FORMAT.md, by hand: seal(INDEX_AAD, zstd(plaintext)).
    assert_eq!(bytes[..12], NONCE_INDEX);
    let plain =
        zstd::stream::decode_all(&sealer.open(b"tresor index v1", &bytes).unwrap()[..]).unwrap();
    assert_eq!(plain[..8], INDEX_MAGIC_V1);
    assert_eq!(le32(&plain, 8), 1);
    assert_eq!(le32(&plain, 12), 0);
    assert_eq!(plain[16..48], *blake3::hash(&pack).as_bytes());
    assert_eq!(le32(&plain, 48), 3);
    assert_eq!(plain.len(), 16 + 32 + 4 + 3 * 48);
}

#[test]
fn manifest_golden_decodes() {
    let bytes = manifest_golden();
    let sealer = master_key().sealer();
    let m = Manifest::open(&sealer, POINT_ID, &bytes).unwrap();
    assert_eq!(m, manifest());
    assert_eq!(m.disks[0].chunks(), 3);
    assert_eq!(m.disks[0].shape(), TreeShape::for_chunks(3, FANOUT));
    assert_eq!(m.disks[1].chunks(), 256);
    assert_eq!(m.disks[1].shape(), TreeShape::for_chunks(256, FANOUT));
    assert_eq!(m.disks[1].shape().span(3), 256);
    assert_eq!(m.total_size(), VDA_SIZE + VDB_SIZE);

    // FORMAT.md, by hand: seal("tresor recovery point v1" || id, magic || JSON).
    assert_eq!(bytes[..12], NONCE_MANIFEST);
    let aad = format!("tresor recovery point v1{POINT_ID}");
    let plain = sealer.open(aad.as_bytes(), &bytes).unwrap();
    assert_eq!(plain[..8], POINT_MAGIC_V1);
    let json: serde_json::Value = serde_json::from_slice(&plain[8..]).unwrap();
    assert_eq!(json["version"], 1);
    assert_eq!(json["id"], POINT_ID);
    assert_eq!(json["created"], "2026-11-26T01:00:00Z");
    assert_eq!(json["consistency"], "FileSystemConsistent");
    assert_eq!(json["disks"][0]["root"], TREE_ID);
    assert_eq!(json["disks"][1]["root"], "0".repeat(64));
    let text = std::str::from_utf8(&plain[8..]).unwrap();
    assert!(
        text.starts_with(r#"{"version":1,"id":"0123456789abcdef0123456789abcdef","name":"vm1","#)
    );
}

#[test]
fn config_golden_decodes() {
    let bytes = config_golden();
    assert_eq!(RepoConfig::decode(&bytes).unwrap(), config());
    let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "format": "tresor-repository", "version": 1, "id": REPO_ID,
            "chunk_size": 4096, "tree_fanout": 4, "pack_size": 1048576,
            "created": "2026-11-26T01:00:00Z"
        })
    );
}

#[test]
fn key_file_golden_unwraps_to_the_known_key() {
    let bytes = key_file_golden();
    let k = KeyFile::decode(&bytes).unwrap();
    assert_eq!(k.format, "tresor-key");
    assert_eq!(k.version, 1);
    assert_eq!(k.repository, REPO_ID);
    assert_eq!(k.hostname, "kvm1");
    assert_eq!(k.created, created());
    assert_eq!(k.kdf.algorithm, "argon2id");
    assert_eq!(
        (k.kdf.m_cost, k.kdf.t_cost, k.kdf.p_cost),
        (Some(8192), Some(1), Some(1))
    );
    let wrapped = k.wrapped().unwrap();
    assert_eq!(wrapped.salt.len(), 16);
    assert_eq!(wrapped.sealed.len(), 12 + 64 + 16);

    // Unwrapping with the passphrase yields the known master key: same chunk ids, and
    // it opens what the known key sealed (the golden pack and index).
    let key = wrapped.unwrap_key(PASSPHRASE).unwrap();
    assert_eq!(key.chunk_id_key().id_of(&chunk0()), hex_id(CHUNK0_ID));
    let opened = open_whole_pack(&key.sealer(), &key, &pack_golden()).unwrap();
    assert_eq!(opened[0], chunk0());
    IndexFile::open(&key.sealer(), &index_golden()).unwrap();

    // The rest of the encoding is deterministic: re-encoding reproduces the file.
    assert_eq!(
        KeyFile::new(REPO_ID, "kvm1", created(), &wrapped).encode(),
        bytes
    );
    assert_eq!(k.encode(), bytes);

    // A wrong passphrase is refused as such.
    assert!(matches!(
        wrapped.unwrap_key(b"wrong passphrase"),
        Err(tresor_crypto::Error::WrongPassphrase)
    ));
    // So is a damaged wrapped key.
    let mut damaged = wrapped.clone();
    damaged.sealed[40] ^= 1;
    assert!(matches!(
        damaged.unwrap_key(PASSPHRASE),
        Err(tresor_crypto::Error::WrongPassphrase)
    ));
}

#[test]
fn gc_state_golden_decodes() {
    let bytes = gc_state_golden();
    let sealer = master_key().sealer();
    assert_eq!(GcState::open(&sealer, &bytes).unwrap(), gc_state());

    // FORMAT.md, by hand: seal(GC_AAD, zstd(magic || JSON)).
    let plain =
        zstd::stream::decode_all(&sealer.open(b"tresor gc state v1", &bytes).unwrap()[..]).unwrap();
    assert_eq!(plain[..8], GC_MAGIC_V1);
    let json: serde_json::Value = serde_json::from_slice(&plain[8..]).unwrap();
    assert_eq!(json["version"], 1);
    assert_eq!(json["writers"][0], WRITER_ID);
    assert_eq!(json["condemned"][0], id_of(b"condemned blob 1").to_hex());
}

// ---------------------------------------------------------------------------------------
// 3: any single damaged byte is detected
// ---------------------------------------------------------------------------------------

#[test]
fn every_flipped_pack_byte_is_detected() {
    let bytes = pack_golden();
    let key = master_key();
    let sealer = key.sealer();
    for (i, bad) in flips(&bytes) {
        if let Ok(blobs) = open_whole_pack(&sealer, &key, &bad) {
            panic!(
                "pack byte {i} damaged ({:02x} -> {:02x}) and every blob still opened ({} blobs)",
                bytes[i],
                bad[i],
                blobs.len()
            );
        }
    }
}

#[test]
fn every_flipped_tree_blob_byte_is_detected() {
    let pack = pack_golden();
    let key = master_key();
    let sealer = key.sealer();
    let id_key = key.chunk_id_key();
    let e = read_pack_entries(&sealer, &pack).unwrap()[2];
    assert_eq!(e.kind, BlobKind::Tree);
    let sealed = &pack[e.offset as usize..(e.offset + e.sealed_len) as usize];
    for (i, mut bad) in flips(sealed) {
        let r = open_blob(
            &sealer,
            &id_key,
            e.kind,
            &e.id,
            e.compression,
            e.raw_len,
            &mut bad,
        );
        assert!(
            matches!(r, Err(Error::BlobCorrupt { id, .. }) if id == e.id),
            "tree blob byte {i}: {r:?}"
        );
    }
    // A key holder's mistake is caught too: a node sealed under the wrong id (its
    // plaintext changed after hashing) does not open.
    let plain = tree_golden();
    for (i, bad_plain) in flips(&plain).step_by(7) {
        let mut compressor = zstd::bulk::Compressor::new(ZSTD_LEVEL).unwrap();
        let mut sealed = Vec::new();
        let meta = seal_blob_with_nonce(
            &sealer,
            NONCE_TREE,
            &mut compressor,
            &mut Vec::new(),
            BlobKind::Tree,
            &e.id,
            &bad_plain,
            &mut sealed,
        );
        let r = open_blob(
            &sealer,
            &id_key,
            BlobKind::Tree,
            &e.id,
            meta.compression,
            meta.raw_len,
            &mut sealed,
        );
        assert!(
            matches!(&r, Err(Error::BlobCorrupt { reason, .. }) if reason.contains("does not match its id")),
            "tree plaintext byte {i}: {r:?}"
        );
    }
}

#[test]
fn every_flipped_index_byte_is_detected() {
    let bytes = index_golden();
    let sealer = master_key().sealer();
    for (i, bad) in flips(&bytes) {
        let r = IndexFile::open(&sealer, &bad);
        assert!(
            matches!(r, Err(Error::Authentication { what: "index file" })),
            "index byte {i}: {r:?}"
        );
    }
}

#[test]
fn every_flipped_manifest_byte_is_detected() {
    let bytes = manifest_golden();
    let sealer = master_key().sealer();
    for (i, bad) in flips(&bytes) {
        let r = Manifest::open(&sealer, POINT_ID, &bad);
        assert!(
            matches!(r, Err(Error::Authentication { .. })),
            "manifest byte {i}: {r:?}"
        );
    }
}

#[test]
fn truncated_objects_are_refused() {
    let key = master_key();
    let sealer = key.sealer();
    let pack = pack_golden();
    for len in 0..pack.len() {
        assert!(
            open_whole_pack(&sealer, &key, &pack[..len]).is_err(),
            "pack cut at {len}"
        );
        assert!(open_whole_pack(&sealer, &key, &pack[pack.len() - len..]).is_err());
    }
    let index = index_golden();
    for len in 0..index.len() {
        assert!(
            IndexFile::open(&sealer, &index[..len]).is_err(),
            "index cut at {len}"
        );
    }
    let manifest = manifest_golden();
    for len in 0..manifest.len() {
        assert!(Manifest::open(&sealer, POINT_ID, &manifest[..len]).is_err());
    }
    let tree = tree_golden();
    for len in 0..tree.len() {
        assert!(
            TreeNode::decode(&tree[..len]).is_err(),
            "tree node cut at {len}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// 4: a wrong key, kind or name is an authentication error
// ---------------------------------------------------------------------------------------

#[test]
fn wrong_key_is_an_authentication_error() {
    let wrong = other_key().sealer();
    let pack = pack_golden();
    assert!(matches!(
        read_pack_entries(&wrong, &pack),
        Err(Error::Authentication {
            what: "pack trailer"
        })
    ));
    // Each blob, even with its entry known.
    let key = master_key();
    for e in read_pack_entries(&key.sealer(), &pack).unwrap() {
        let mut sealed = pack[e.offset as usize..(e.offset + e.sealed_len) as usize].to_vec();
        let r = open_blob(
            &wrong,
            &key.chunk_id_key(),
            e.kind,
            &e.id,
            e.compression,
            e.raw_len,
            &mut sealed,
        );
        assert!(
            matches!(&r, Err(Error::BlobCorrupt { reason, .. }) if reason.contains("authentication failed")),
            "{r:?}"
        );
    }
    assert!(matches!(
        IndexFile::open(&wrong, &index_golden()),
        Err(Error::Authentication { what: "index file" })
    ));
    assert!(matches!(
        Manifest::open(&wrong, POINT_ID, &manifest_golden()),
        Err(Error::Authentication { .. })
    ));
    assert!(matches!(
        GcState::open(&wrong, &gc_state_golden()),
        Err(Error::Authentication { what: "gc state" })
    ));
}

#[test]
fn blobs_are_bound_to_their_id_and_kind() {
    let pack = pack_golden();
    let key = master_key();
    let sealer = key.sealer();
    let id_key = key.chunk_id_key();
    let entries = read_pack_entries(&sealer, &pack).unwrap();
    let sealed_of =
        |e: &PackEntry| pack[e.offset as usize..(e.offset + e.sealed_len) as usize].to_vec();
    for e in &entries {
        // Another kind.
        let other_kind = match e.kind {
            BlobKind::Data => BlobKind::Tree,
            BlobKind::Tree => BlobKind::Data,
        };
        let r = open_blob(
            &sealer,
            &id_key,
            other_kind,
            &e.id,
            e.compression,
            e.raw_len,
            &mut sealed_of(e),
        );
        assert!(matches!(r, Err(Error::BlobCorrupt { .. })), "{r:?}");
        // Another blob's id.
        for other in entries.iter().filter(|o| o.id != e.id) {
            let r = open_blob(
                &sealer,
                &id_key,
                e.kind,
                &other.id,
                e.compression,
                e.raw_len,
                &mut sealed_of(e),
            );
            assert!(matches!(r, Err(Error::BlobCorrupt { .. })), "{r:?}");
        }
        // A wrong id key: the content no longer matches its id.
        let r = open_blob(
            &sealer,
            &other_key_ids(),
            e.kind,
            &e.id,
            e.compression,
            e.raw_len,
            &mut sealed_of(e),
        );
        assert!(
            matches!(&r, Err(Error::BlobCorrupt { reason, .. }) if reason.contains("does not match its id")),
            "{r:?}"
        );
        // A wrong recorded length.
        let r = open_blob(
            &sealer,
            &id_key,
            e.kind,
            &e.id,
            e.compression,
            e.raw_len - 1,
            &mut sealed_of(e),
        );
        assert!(matches!(r, Err(Error::BlobCorrupt { .. })), "{r:?}");
    }
}

fn other_key_ids() -> tresor_crypto::ChunkIdKey {
    MasterKey::from_bytes(std::array::from_fn(|i| i as u8), [0x77; 32]).chunk_id_key()
}

#[test]
fn a_manifest_is_bound_to_its_name() {
    let r = Manifest::open(&master_key().sealer(), PARENT_ID, &manifest_golden());
    assert!(matches!(r, Err(Error::Authentication { .. })), "{r:?}");
}

// ---------------------------------------------------------------------------------------
// 5: another magic or version is refused with the right variant
// ---------------------------------------------------------------------------------------

#[test]
fn magic_numbers_are_derived_from_versioned_strings() {
    assert_eq!(PACK_MAGIC_V1, sha256_8("tresor pack v1"));
    assert_eq!(INDEX_MAGIC_V1, sha256_8("tresor index v1"));
    assert_eq!(TREE_MAGIC_V1, sha256_8("tresor tree node v1"));
    assert_eq!(POINT_MAGIC_V1, sha256_8("tresor recovery point v1"));
    assert_eq!(GC_MAGIC_V1, sha256_8("tresor gc state v1"));
    assert_eq!(INDEX_AAD, b"tresor index v1");
    assert_eq!(PACK_TRAILER_AAD, b"tresor pack trailer v1");
    assert_eq!(POINT_AAD, b"tresor recovery point v1");
    assert_eq!(GC_AAD, b"tresor gc state v1");
}

#[test]
fn pack_of_another_version_is_refused() {
    let sealer = master_key().sealer();
    let v2 = sha256_8("tresor pack v2");
    let good = pack_golden();
    let n = good.len();

    let mut both = good.clone();
    both[..8].copy_from_slice(&v2);
    both[n - 8..].copy_from_slice(&v2);
    assert!(matches!(
        read_pack_entries(&sealer, &both),
        Err(Error::BadMagic { what: "pack" })
    ));
    let mut footer = good.clone();
    footer[n - 8..].copy_from_slice(&v2);
    assert!(matches!(
        read_pack_entries(&sealer, &footer),
        Err(Error::BadMagic {
            what: "pack footer"
        })
    ));
    let mut reserved = good.clone();
    reserved[8] = 1;
    assert!(matches!(
        read_pack_entries(&sealer, &reserved),
        Err(Error::Malformed { .. })
    ));
    let mut reserved = good;
    reserved[n - 12] = 1;
    assert!(matches!(
        read_pack_entries(&sealer, &reserved),
        Err(Error::Malformed { .. })
    ));
}

#[test]
fn index_of_another_version_is_refused() {
    let sealer = master_key().sealer();
    let mut plain =
        zstd::stream::decode_all(&sealer.open(INDEX_AAD, &index_golden()).unwrap()[..]).unwrap();
    plain[..8].copy_from_slice(&sha256_8("tresor index v2"));
    let sealed = sealer.seal(INDEX_AAD, &zstd::bulk::compress(&plain, 3).unwrap());
    assert!(matches!(
        IndexFile::open(&sealer, &sealed),
        Err(Error::BadMagic { what: "index file" })
    ));
    let mut reserved =
        zstd::stream::decode_all(&sealer.open(INDEX_AAD, &index_golden()).unwrap()[..]).unwrap();
    reserved[12] = 1;
    let sealed = sealer.seal(INDEX_AAD, &zstd::bulk::compress(&reserved, 3).unwrap());
    assert!(matches!(
        IndexFile::open(&sealer, &sealed),
        Err(Error::Malformed { .. })
    ));
    // Sealed with a later version's associated data: refused before anything is read.
    let later = sealer.seal(
        b"tresor index v2",
        &zstd::bulk::compress(&plain, 3).unwrap(),
    );
    assert!(matches!(
        IndexFile::open(&sealer, &later),
        Err(Error::Authentication { .. })
    ));
}

#[test]
fn tree_node_of_another_version_is_refused() {
    let mut plain = tree_golden();
    plain[..8].copy_from_slice(&sha256_8("tresor tree node v2"));
    assert!(matches!(
        TreeNode::decode(&plain),
        Err(Error::BadMagic { what: "tree node" })
    ));
    let mut reserved = tree_golden();
    reserved[10] = 1;
    assert!(matches!(
        TreeNode::decode(&reserved),
        Err(Error::Malformed { .. })
    ));
    let mut extra = tree_golden();
    extra.push(0);
    assert!(matches!(
        TreeNode::decode(&extra),
        Err(Error::Malformed { .. })
    ));
}

#[test]
fn manifest_of_another_version_is_refused() {
    let sealer = master_key().sealer();
    let aad = [POINT_AAD, POINT_ID.as_bytes()].concat();
    let plain = sealer.open(&aad, &manifest_golden()).unwrap();

    let mut magic = plain.clone();
    magic[..8].copy_from_slice(&sha256_8("tresor recovery point v2"));
    assert!(matches!(
        Manifest::open(&sealer, POINT_ID, &sealer.seal(&aad, &magic)),
        Err(Error::BadMagic { .. })
    ));

    let mut json: serde_json::Value = serde_json::from_slice(&plain[8..]).unwrap();
    json["version"] = 2.into();
    json["disks"] = "a field a newer version changed".into();
    let v2 = [&POINT_MAGIC_V1[..], &serde_json::to_vec(&json).unwrap()].concat();
    assert!(matches!(
        Manifest::open(&sealer, POINT_ID, &sealer.seal(&aad, &v2)),
        Err(Error::UnsupportedVersion {
            found: 2,
            supported: 1,
            ..
        })
    ));

    // A name that is not the one sealed inside.
    let mut renamed: serde_json::Value = serde_json::from_slice(&plain[8..]).unwrap();
    renamed["id"] = PARENT_ID.into();
    let renamed = [&POINT_MAGIC_V1[..], &serde_json::to_vec(&renamed).unwrap()].concat();
    assert!(matches!(
        Manifest::open(&sealer, POINT_ID, &sealer.seal(&aad, &renamed)),
        Err(Error::Malformed { .. })
    ));

    // Shapes no writer produces.
    for (field, value) in [("chunk_size", 3000u64), ("fanout", 1), ("depth", 2)] {
        let mut bad: serde_json::Value = serde_json::from_slice(&plain[8..]).unwrap();
        bad["disks"][0][field] = value.into();
        let bad = [&POINT_MAGIC_V1[..], &serde_json::to_vec(&bad).unwrap()].concat();
        assert!(
            matches!(
                Manifest::open(&sealer, POINT_ID, &sealer.seal(&aad, &bad)),
                Err(Error::Malformed { .. })
            ),
            "{field} = {value}"
        );
    }
}

#[test]
fn config_of_another_version_is_refused() {
    let golden = config_golden();
    let edit = |field: &str, value: serde_json::Value| {
        let mut json: serde_json::Value = serde_json::from_slice(&golden).unwrap();
        json[field] = value;
        RepoConfig::decode(&serde_json::to_vec(&json).unwrap())
    };
    assert!(matches!(
        edit("version", 2.into()),
        Err(Error::UnsupportedVersion {
            found: 2,
            supported: 1,
            ..
        })
    ));
    // A later version may change any other field: still refused as a newer version.
    let mut v2: serde_json::Value = serde_json::from_slice(&golden).unwrap();
    v2["version"] = 2.into();
    v2["chunk_size"] = serde_json::json!({"min": 4096, "max": 65536});
    v2.as_object_mut().unwrap().remove("tree_fanout");
    assert!(matches!(
        RepoConfig::decode(&serde_json::to_vec(&v2).unwrap()),
        Err(Error::UnsupportedVersion { found: 2, .. })
    ));
    assert!(matches!(
        RepoConfig::decode(br#"{"format":"other","version":1}"#),
        Err(Error::BadMagic { .. })
    ));
    assert!(matches!(
        edit("format", "restic".into()),
        Err(Error::BadMagic { .. })
    ));
    assert!(matches!(
        edit("chunk_size", 5000.into()),
        Err(Error::Malformed { .. })
    ));
    assert!(matches!(
        edit("chunk_size", 2048.into()),
        Err(Error::Malformed { .. })
    ));
    assert!(matches!(
        edit("tree_fanout", 1.into()),
        Err(Error::Malformed { .. })
    ));
    assert!(matches!(
        edit("pack_size", 4096.into()),
        Err(Error::Malformed { .. })
    ));
    // Unknown fields are ignored (a later compatible writer may add some).
    assert!(edit("comment", "added later".into()).is_ok());
}

#[test]
fn key_file_of_another_version_is_refused() {
    let golden = key_file_golden();
    let edit = |path: &[&str], value: serde_json::Value| {
        let mut json: serde_json::Value = serde_json::from_slice(&golden).unwrap();
        let mut at = &mut json;
        for p in path {
            at = &mut at[*p];
        }
        *at = value;
        KeyFile::decode(&serde_json::to_vec(&json).unwrap())
    };
    assert!(matches!(
        edit(&["version"], 2.into()),
        Err(Error::UnsupportedVersion {
            found: 2,
            supported: 1,
            ..
        })
    ));
    let mut v2: serde_json::Value = serde_json::from_slice(&golden).unwrap();
    v2["version"] = 2.into();
    v2["kdf"] = "a field a newer version changed".into();
    assert!(matches!(
        KeyFile::decode(&serde_json::to_vec(&v2).unwrap()),
        Err(Error::UnsupportedVersion { found: 2, .. })
    ));
    assert!(matches!(
        edit(&["format"], "other-key".into()),
        Err(Error::BadMagic { .. })
    ));
    assert!(matches!(
        edit(&["kdf", "algorithm"], "scrypt".into()),
        Err(Error::Malformed { .. })
    ));
    // KDF parameters below the accepted minimum are refused when unwrapping (a downgrade).
    let weak = edit(&["kdf", "m_cost"], 1024.into()).unwrap();
    assert!(matches!(
        weak.wrapped().unwrap().unwrap_key(PASSPHRASE),
        Err(tresor_crypto::Error::KdfParams(_))
    ));
}

#[test]
fn gc_state_of_another_version_is_refused() {
    let sealer = master_key().sealer();
    let plain =
        zstd::stream::decode_all(&sealer.open(GC_AAD, &gc_state_golden()).unwrap()[..]).unwrap();
    let reseal = |plain: &[u8]| sealer.seal(GC_AAD, &zstd::bulk::compress(plain, 3).unwrap());

    let mut magic = plain.clone();
    magic[..8].copy_from_slice(&sha256_8("tresor gc state v2"));
    assert!(matches!(
        GcState::open(&sealer, &reseal(&magic)),
        Err(Error::BadMagic { what: "gc state" })
    ));
    let mut json: serde_json::Value = serde_json::from_slice(&plain[8..]).unwrap();
    json["version"] = 2.into();
    json["condemned"] = "a field a newer version changed".into();
    let v2 = [&GC_MAGIC_V1[..], &serde_json::to_vec(&json).unwrap()].concat();
    assert!(matches!(
        GcState::open(&sealer, &reseal(&v2)),
        Err(Error::UnsupportedVersion {
            found: 2,
            supported: 1,
            ..
        })
    ));
}

#[test]
fn format_md_states_the_constants_of_the_code() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../FORMAT.md");
    let doc = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let spaced = |b: &[u8]| {
        b.iter()
            .map(|x| format!("{x:02x}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    for (magic, text) in [
        (PACK_MAGIC_V1, "tresor pack v1"),
        (INDEX_MAGIC_V1, "tresor index v1"),
        (TREE_MAGIC_V1, "tresor tree node v1"),
        (POINT_MAGIC_V1, "tresor recovery point v1"),
        (GC_MAGIC_V1, "tresor gc state v1"),
    ] {
        let row = format!("| `{text}` | `{}` |", spaced(&magic));
        assert!(doc.contains(&row), "FORMAT.md lacks the row {row}");
    }
    for aad in [
        INDEX_AAD,
        PACK_TRAILER_AAD,
        POINT_AAD,
        GC_AAD,
        b"tresor master key v1",
    ] {
        let text = format!(
            "`{}` ({} bytes)",
            std::str::from_utf8(aad).unwrap(),
            aad.len()
        );
        assert!(doc.contains(&text), "FORMAT.md lacks {text}");
    }
    // The example pack footer.
    let pack = pack_golden();
    let footer = spaced(&pack[pack.len() - 16..]);
    let footer = format!(
        "`{}  {}  {}`",
        &footer[..11],
        &footer[12..23],
        &footer[24..]
    );
    assert!(
        doc.contains(&footer),
        "FORMAT.md lacks the example footer {footer}"
    );
}
